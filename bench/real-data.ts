import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import pino from 'pino';
import { dataset } from '../activities/dataset';
import { download } from '../activities/download';
import { padding } from '../activities/padding';
import type { PaddingResult } from '../activities/types';
import { LocalArtifactStore } from '../artifacts/local-store';
import { datasetParams } from '../activities/dataset';
import { downloadParams } from '../activities/download';
import { paddingParams } from '../activities/padding';

/**
 * The real padded gestures table, built by the project's own data steps into a store (cached
 * after the first call). Benchmarks read the archive from SWEEPS_DATA or ../shared/data.
 */
export async function realPadded(storeRoot: string): Promise<{ path: string; result: PaddingResult }> {
  const archive = resolve(process.env.SWEEPS_DATA ?? join(__dirname, '..', '..', '..', 'shared', 'data', 'gestures-dataset.zip'));
  if (!existsSync(archive)) throw new Error(`the gestures archive is not at ${archive}: set SWEEPS_DATA`);
  // The archive's folder is the one place this download may read a `file:` source from.
  const deps = { store: new LocalArtifactStore(storeRoot), logger: pino({ level: 'warn' }), dataRoots: [dirname(archive)] };
  const base = { sweepId: 'bench', inputs: {} };
  const dl = await download(
    { ...base, step: 'download', params: downloadParams.parse({ urls: [`file://${archive}`], md5: '7966323b95154f314e831c312e5cc33b' }) },
    deps,
  );
  const ds = await dataset({ ...base, step: 'dataset', params: datasetParams.parse({}), inputs: { download: dl } }, deps);
  const padded = await padding({ ...base, step: 'padding', params: paddingParams.parse({}), inputs: { dataset: ds } }, deps);
  return { path: deps.store.path(padded.ref, padded.table), result: padded };
}
