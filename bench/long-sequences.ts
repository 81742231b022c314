/**
 * Milliseconds per training step (forward, backward through time, Adam) as sequences get long:
 * batch 32, 3 features, GRU 64, 20 classes, every sequence T steps, at T = 100 (the baseline, run
 * in the same command) and T = 1,000 (and more with --lengths), for each engine, through the
 * trainer itself (ragged data, each batch padded to its own longest sequence):
 *
 *   npm run bench:long -- [--lengths 100,1000] [--engines tfjs,fused-gru,fused] [--steps 4]
 *
 * Prints one row per engine and length with the ratio to the same engine at the first length.
 * An engine that cannot train a length says why instead of a number.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { PaddedData, PaddedSplit } from '../ml/padded-data';
import { rngFor } from '../ml/rng';
import { train, type EngineChoice, type TrainConfig } from '../ml/trainer';

const BATCH = 32;
const FEATURES = 3;
const CLASSES = 20;

function split(count: number, steps: number, seed: number): PaddedSplit {
  const rng = rngFor(seed, 'bench-long');
  const values = rng.fillUniform(new Float32Array(count * steps * FEATURES), -1, 1);
  const offsets = Int32Array.from({ length: count + 1 }, (_, i) => i * steps * FEATURES);
  return { values, offsets, lengths: new Int32Array(count).fill(steps), labels: Int32Array.from({ length: count }, (_, i) => i % CLASSES), count };
}

async function msPerStep(engine: EngineChoice, steps: number, timed: number): Promise<number> {
  const data: PaddedData = {
    maxLength: steps,
    features: FEATURES,
    classes: CLASSES,
    train: split(BATCH * (timed + 1), steps, 1),
    valid: split(BATCH, steps, 2),
  };
  const cfg: TrainConfig = {
    pooling: 'mean',
    seed: 1,
    hidden: 64,
    layers: 1,
    dropout: 0,
    epochs: 1,
    batchSize: BATCH,
    batching: 'batch-max',
    lr: 1e-3,
    weightDecay: 1e-5,
    plateauFactor: 0.5,
    plateauPatience: 5,
    earlyStopPatience: 5,
    earlyStopDelta: 0,
    validBatches: 1,
    backend: 'auto',
    engine,
  };
  const dir = mkdtempSync(join(tmpdir(), 'sweeps-bench-long-'));
  const marks: number[] = [];
  try {
    await train(data, cfg, { checkpointDir: dir, onBatch: () => marks.push(performance.now()) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The first batch warms up (kernel load, graph shapes); time the ones after it.
  const gaps = marks.slice(1).map((t, i) => t - marks[i]!);
  return gaps.sort((a, b) => a - b)[gaps.length >> 1]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lengths: { type: 'string', default: '100,1000' },
      engines: { type: 'string', default: 'tfjs,fused-gru,fused' },
      steps: { type: 'string', default: '4' },
    },
  });
  const lengths = values.lengths.split(',').map(Number);
  const timed = Number(values.steps);
  console.log(`ms per training step: batch ${BATCH}, ${FEATURES} features, GRU 64, ${CLASSES} classes; median of ${timed} steps`);
  console.log('engine      T       ms/step   × first T   ms per timestep');
  for (const engine of values.engines.split(',') as EngineChoice[]) {
    let base: number | undefined;
    for (const T of lengths) {
      let ms: number;
      try {
        ms = await msPerStep(engine, T, timed);
      } catch (err) {
        console.log(`${engine.padEnd(10)} ${String(T).padStart(5)}   failed: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      base ??= ms;
      console.log(
        `${engine.padEnd(10)} ${String(T).padStart(5)} ${ms.toFixed(1).padStart(10)} ${(ms / base).toFixed(2).padStart(10)} ${(ms / T).toFixed(3).padStart(14)}`,
      );
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
