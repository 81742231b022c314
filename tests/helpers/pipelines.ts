import { pathToFileURL } from 'node:url';
import { GESTURES_MD5, gesturesArchive } from './fixtures';

/**
 * A small version of the seed study for tests: the real archive (or a served copy), a subset of
 * the sequences, and a train step with the given matrix and parameters. Everything is real; it
 * is only smaller.
 */
export function gesturesPipeline(options: {
  name: string;
  matrix: string;
  train: string;
  limit?: number;
  url?: string;
  concurrency?: number;
  report?: boolean;
}): string {
  const url = options.url ?? pathToFileURL(gesturesArchive()).href;
  return `name: ${options.name}
steps:
  download:
    uses: download
    with: { urls: ["${url}"], md5: ${GESTURES_MD5} }
  dataset:
    uses: dataset
    needs: [download]
    with: { limit: ${options.limit ?? 400} }
  padding:
    uses: padding
    needs: [dataset]
  train:
    uses: train
    needs: [padding]
    matrix: ${options.matrix}
    concurrency: ${options.concurrency ?? 2}
    with: ${options.train}
${
  options.report
    ? `  report:
    uses: report
    needs: [train]
    with: { baseline: last }
`
    : ''
}`;
}

/** A small pipeline on the real archive: `limit: 200` sequences, trials of 1 epoch of 2 batches. */
export function tinyPipeline(name: string, train: string, options: { trainWith?: string; limit?: number } = {}): string {
  return `name: ${name}
steps:
  download: { uses: download, with: { urls: ["file://${gesturesArchive()}"], md5: ${GESTURES_MD5} } }
  dataset: { uses: dataset, needs: [download], with: { limit: ${options.limit ?? 200} } }
  padding: { uses: padding, needs: [dataset] }
  train:
    uses: train
    needs: [padding]
${train}
    with: { ${options.trainWith ?? 'epochs: 1, hidden: 8, train_batches: 2, valid_batches: 1, backend: wasm'} }
  report: { uses: report, needs: [train] }
`;
}
