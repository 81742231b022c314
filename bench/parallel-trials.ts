/**
 * Do parallel trials really use every core? Runs the same two trials (real data, the reference
 * recipe, a few epochs) one after the other and then both at once, each in its own training
 * process as the worker runs them, and prints the wall times and their ratio.
 *
 *   node dist/bench/parallel-trials.js [--epochs 3] [--backend auto|tensorflow|wasm|cpu]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { trainInChildProcess } from '../ml/train-process';
import type { TrainConfig } from '../ml/trainer';
import { toConfig } from '../activities/train';
import { trainParams } from '../activities/train';
import { realPadded } from './real-data';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { epochs: { type: 'string', default: '3' }, backend: { type: 'string', default: 'auto' } } });
  const root = mkdtempSync(join(tmpdir(), 'bench-parallel-'));
  try {
    const { path } = await realPadded(join(root, 'store'));
    const config = (seed: number): TrainConfig =>
      toConfig(trainParams.parse({ seed, pooling: 'mean', epochs: Number(values.epochs), backend: values.backend }));
    let run = 0;
    const trial = async (seed: number) => {
      const outcome = await trainInChildProcess({ paddedPath: path, config: config(seed), checkpointDir: join(root, `ckpt-${run++}`) });
      return outcome.backend;
    };
    const time = async (f: () => Promise<unknown>) => {
      const t0 = performance.now();
      await f();
      return (performance.now() - t0) / 1000;
    };
    const backend = await trial(0); // warm the file cache and report the backend actually used
    const sequential = await time(async () => {
      await trial(1);
      await trial(2);
    });
    const parallel = await time(() => Promise.all([trial(1), trial(2)]));
    console.log(`cores ${availableParallelism()}, backend ${backend}, ${values.epochs} epochs per trial (81 batches each, real data)`);
    console.log(`two trials in sequence: ${sequential.toFixed(1)} s`);
    console.log(`two trials in parallel: ${parallel.toFixed(1)} s`);
    console.log(`parallel / sequential = ${(parallel / sequential).toFixed(2)} (0.50 would be perfect use of 2 cores)`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
