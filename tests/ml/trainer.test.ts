import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointMismatchError, epochDirName } from '../../ml/checkpoint';
import { train } from '../../ml/trainer';
import { quickConfig } from './quick-config';
import { data, fileBytes, numbers, scratchDirs } from './trainer-fixture';

const freshDir = scratchDirs('ml-trainer-');

test('the same seed gives identical metrics and weights; another seed does not', async () => {
  const [a, b, c] = [freshDir(), freshDir(), freshDir()];
  const first = await train(data, quickConfig(), { checkpointDir: a });
  const again = await train(data, quickConfig(), { checkpointDir: b });
  const other = await train(data, quickConfig({ seed: 2 }), { checkpointDir: c });

  expect(first.epochs).toHaveLength(4);
  expect(numbers(again.epochs)).toEqual(numbers(first.epochs));
  expect(fileBytes(b, 4, 'weights.bin').equals(fileBytes(a, 4, 'weights.bin'))).toBe(true);
  expect(other.epochs.map((m) => m.train_loss)).not.toEqual(first.epochs.map((m) => m.train_loss));
  expect(fileBytes(c, 4, 'weights.bin').equals(fileBytes(a, 4, 'weights.bin'))).toBe(false);
});

test('the reference recipe’s batch counts: floor(n / batch) train and valid batches per epoch', async () => {
  const batches: Array<[number, number, number]> = [];
  await train(data, quickConfig({ epochs: 1 }), { checkpointDir: freshDir(), onBatch: (e, b, of) => batches.push([e, b, of]) });
  expect(batches).toHaveLength(10); // 160 / 16
  expect(batches[9]).toEqual([1, 10, 10]);

  const capped: number[] = [];
  await train(data, quickConfig({ epochs: 1, trainBatches: 3 }), { checkpointDir: freshDir(), onBatch: (_e, b) => capped.push(b) });
  expect(capped).toEqual([1, 2, 3]);
});

// Resume, bit for bit, is tested for every engine in tests/kernel/trainer-engines.test.ts.

test('the scheduler and early stopping act on the valid loss, and early stopping ends the run', async () => {
  // lr far too large: the valid loss stops improving quickly.
  const out = await train(data, quickConfig({ epochs: 30, lr: 0.5, plateauPatience: 0, earlyStopPatience: 2 }), { checkpointDir: freshDir() });
  expect(out.stoppedEarly).toBe(true);
  expect(out.epochs.length).toBeLessThan(30);
  const bestLoss = Math.min(...out.epochs.map((m) => m.valid_loss));
  expect(out.best.valid_loss).toBe(bestLoss);
  // The last two epochs did not beat the best, so the run stopped right after them.
  expect(out.epochs.slice(-2).every((m) => m.valid_loss >= bestLoss)).toBe(true);
  expect(out.epochs.at(-1)!.lr).toBeLessThan(0.5);
});

test('a damaged newest checkpoint is discarded and its epoch recomputed to the same bits', async () => {
  const cfg = quickConfig({ epochs: 3 });
  const dir = freshDir();
  const straight = await train(data, cfg, { checkpointDir: dir });
  const reference = fileBytes(dir, 3, 'weights.bin');

  const weights = path.join(dir, epochDirName(3), 'weights.bin');
  const bytes = fs.readFileSync(weights);
  bytes[10] = bytes[10]! ^ 0xff;
  fs.writeFileSync(weights, bytes);
  fs.mkdirSync(path.join(dir, '.tmp-epoch-0004-leftover')); // an interrupted write

  const again = await train(data, cfg, { checkpointDir: dir });
  expect(again.resumedFromEpoch).toBe(2);
  expect(numbers(again.epochs)).toEqual(numbers(straight.epochs));
  expect(fileBytes(dir, 3, 'weights.bin').equals(reference)).toBe(true);
  expect(fs.readdirSync(dir).sort()).toEqual(['epoch-0001', 'epoch-0002', 'epoch-0003']);
});

test('a finished run returns its recorded result at once; another config in the same folder is refused', async () => {
  const dir = freshDir();
  const first = await train(data, quickConfig({ epochs: 2 }), { checkpointDir: dir });
  let batches = 0;
  const again = await train(data, quickConfig({ epochs: 2 }), { checkpointDir: dir, onBatch: () => (batches += 1) });
  expect(batches).toBe(0);
  expect(again.resumedFromEpoch).toBe(2);
  expect(again.epochs).toEqual(first.epochs);

  await expect(train(data, quickConfig({ epochs: 2, seed: 9 }), { checkpointDir: dir })).rejects.toThrow(CheckpointMismatchError);
});

test('it learns: accuracy far above chance on separable synthetic data within a few epochs', async () => {
  const out = await train(data, quickConfig({ epochs: 6, hidden: 16 }), { checkpointDir: freshDir() });
  expect(out.best.valid_acc).toBeGreaterThan(0.9); // chance is 0.25
  expect(out.epochs.at(-1)!.train_loss).toBeLessThan(out.epochs[0]!.train_loss / 2);
});

test('no tensor leaks: the tensor count is the same after every epoch, and back to the start after training', async () => {
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  await train(data, quickConfig({ epochs: 4, layers: 2, dropout: 0.2, pooling: 'last-valid' }), {
    checkpointDir: freshDir(),
    onEpoch: () => counts.push(tf.memory().numTensors),
  });
  expect(counts).toHaveLength(4);
  expect(new Set(counts).size).toBe(1);
  // 10 parameters and their two Adam moments are all that live during training.
  expect(counts[0]! - before).toBe(30);
  expect(tf.memory().numTensors).toBe(before);
});

test('invalid settings are rejected before any work, naming the setting', async () => {
  await expect(train(data, quickConfig({ hidden: 0 }), { checkpointDir: freshDir() })).rejects.toThrow('hidden must be a positive integer');
  await expect(train(data, quickConfig({ batchSize: 100 }), { checkpointDir: freshDir() })).rejects.toThrow(
    'valid split has 64 sequences, fewer than one batch of 100',
  );
});
