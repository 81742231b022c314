import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { buildDataset } from '../../activities/dataset';
import type { SequenceRecord } from '../../activities/dataset/readers/types';
import { buildPadded } from '../../activities/padding';
import { gatherBatch, planBatches } from '../../ml/batches';
import { paddedFromTable, type PaddedData } from '../../ml/padded-data';
import { rngFor } from '../../ml/rng';
import { train } from '../../ml/trainer';
import { quickConfig } from '../ml/quick-config';

/**
 * Any length from 1 to 5,000 timesteps: stored ragged, each batch padded to its own longest
 * sequence, so what memory holds follows the data and the batch being trained — not rows × the
 * longest sequence of the whole dataset.
 */
const FEATURES = 2;
const LONGEST = 5000;

function synthetic(): SequenceRecord[] {
  // 40 short sequences (1–40 steps) and two of 5,000; the class is the sign of the mean of feature 0.
  const lengths = [...Array.from({ length: 40 }, (_, i) => i + 1), LONGEST, LONGEST];
  return lengths.map((length, i) => {
    const label = i % 2 === 0 ? 'up' : 'down';
    const values = new Float32Array(length * FEATURES);
    for (let t = 0; t < length; t++) {
      values[t * FEATURES] = (label === 'up' ? 1 : -1) * (0.5 + 0.5 * Math.sin(t / 7 + i));
      values[t * FEATURES + 1] = Math.cos(t / 11 + i);
    }
    return { source: `s${i}`, group: '', label, values, length };
  });
}

function padded(layout: 'ragged' | 'padded'): { data: PaddedData; bytes: number } {
  const ds = buildDataset(
    { sequences: synthetic(), features: FEATURES, featureNames: ['a', 'b'], classNames: ['down', 'up'] },
    { split: { kind: 'random', seed: 1, valid_fraction: 0.25 } },
  );
  const built = buildPadded(tableFromIPC(ds.bytes), { batch_size: 4, layout });
  return { data: paddedFromTable(tableFromIPC(built.bytes)), bytes: built.bytes.length };
}

describe('sequences of 1 to 5,000 timesteps', () => {
  const ragged = padded('ragged');
  const real = synthetic().reduce((n, s) => n + s.length, 0);

  test('the ragged layout stores real steps only; padding every row to 5,000 would be about 20 times larger', () => {
    expect(ragged.data.maxLength).toBe(LONGEST);
    expect(ragged.data.train.values.length).toBe(real * FEATURES);
    const full = padded('padded');
    expect(full.data.train.values.length + full.data.valid.values.length).toBe(42 * LONGEST * FEATURES);
    expect(full.bytes / ragged.bytes).toBeGreaterThan(20);
  });

  test("a batch of short sequences is padded to its own longest, not to the dataset's 5,000", () => {
    const { train: split } = ragged.data;
    const short: number[] = [];
    for (let i = 0; i < split.count && short.length < 4; i++) if (split.lengths[i]! <= 40) short.push(i);
    const batch = gatherBatch(split, ragged.data.maxLength, FEATURES, Int32Array.from(short));
    expect(batch.steps).toBe(Math.max(...short.map((i) => split.lengths[i]!)));
    expect(batch.x.length).toBe(4 * batch.steps * FEATURES);
  });

  test.each(['tfjs', 'fused-gru', 'fused'] as const)(
    'length-1 and 5,000-step sequences train on the %s engine: finite losses, every batch at its own length',
    async (engine) => {
      const dir = mkdtempSync(join(tmpdir(), 'sweeps-long-'));
      try {
        // Bucketing puts the two 5,000-step rows into one batch; one epoch runs every batch.
        const cfg = quickConfig({ engine, batchSize: 4, batching: 'bucket', epochs: 1, hidden: 4 });
        const plan = planBatches(ragged.data.train, cfg.batchSize, cfg.batching, rngFor(cfg.seed, 'train-order', 1));
        const steps = plan.map((rows) => gatherBatch(ragged.data.train, ragged.data.maxLength, FEATURES, rows).steps);
        expect(Math.min(...steps)).toBeLessThan(10);
        expect(Math.max(...steps)).toBe(LONGEST);
        const seen: number[] = [];
        const outcome = await train(ragged.data, cfg, { checkpointDir: dir, onBatch: (_e, b) => seen.push(b) });
        expect(seen).toHaveLength(plan.length);
        expect(Number.isFinite(outcome.epochs[0]!.train_loss)).toBe(true);
        expect(Number.isFinite(outcome.epochs[0]!.valid_loss)).toBe(true);
        expect(outcome.engine).toBe(engine);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
