import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { kernelAvailable, type KernelKind } from '../../ml/kernel/load';
import { EngineMismatchError, resolveEngine, train, TrainingInterruptedError, type Engine, type TrainConfig } from '../../ml/trainer';
import { quickConfig } from '../ml/quick-config';
import { data, fileBytes, numbers, scratchDirs, tfjsNodeLoads } from '../ml/trainer-fixture';

/** train() with each engine: determinism, exact resume, no leaks, and agreement with the reference. */
const freshDir = scratchDirs('kernel-trainer-');

test('auto means the fused kernel wherever it loads (here)', async () => {
  expect(resolveEngine('auto')).toBe('fused');
  expect(resolveEngine()).toBe('fused');
  const out = await train(data, quickConfig({ epochs: 1 }), { checkpointDir: freshDir() });
  expect(out.engine).toBe('fused');
});

// `tfjs` too: tests/ml/trainer.test.ts now runs the default engine, and the reference path's
// determinism and resume must stay covered.
describe.each<[Engine]>([['fused'], ['fused-gru'], ['tfjs']])('engine %s', (engine) => {
  test('the same seed gives bit-identical metrics and weights', async () => {
    const [a, b] = [freshDir(), freshDir()];
    const first = await train(data, quickConfig({ engine }), { checkpointDir: a });
    const again = await train(data, quickConfig({ engine }), { checkpointDir: b });
    expect(first.engine).toBe(engine);
    expect(numbers(again.epochs)).toEqual(numbers(first.epochs));
    expect(fileBytes(b, 4, 'weights.bin').equals(fileBytes(a, 4, 'weights.bin'))).toBe(true);
    expect(fileBytes(b, 4, 'optimizer.bin').equals(fileBytes(a, 4, 'optimizer.bin'))).toBe(true);
  });

  describe.each<[string, Partial<TrainConfig>]>([
    ['mean pooling, batch-max', {}],
    [
      'max pooling, 2 layers, dropout, bucket',
      { pooling: 'max', layers: 2, dropout: 0.3, batching: 'bucket', lr: 0.05, plateauPatience: 0, earlyStopPatience: 4 },
    ],
  ])('resume (%s)', (_name, overrides) => {
    test('stopping after k epochs and resuming ends bit-identical to an uninterrupted run', async () => {
      const cfg = quickConfig({ epochs: 7, engine, ...overrides });
      const straightDir = freshDir();
      const straight = await train(data, cfg, { checkpointDir: straightDir });

      const resumedDir = freshDir();
      let finished = 0;
      await expect(train(data, cfg, { checkpointDir: resumedDir, onEpoch: () => (finished += 1), shouldStop: () => finished >= 3 })).rejects.toThrow(
        TrainingInterruptedError,
      );
      expect(fs.readdirSync(resumedDir).sort()).toEqual(['epoch-0001', 'epoch-0002', 'epoch-0003']);
      const resumed = await train(data, cfg, { checkpointDir: resumedDir });
      expect(resumed.resumedFromEpoch).toBe(3);
      expect(numbers(resumed.epochs)).toEqual(numbers(straight.epochs));
      expect(resumed.stoppedEarly).toBe(straight.stoppedEarly);
      const last = straight.epochs.length;
      for (const file of ['weights.bin', 'optimizer.bin']) {
        expect(fileBytes(resumedDir, last, file).equals(fileBytes(straightDir, last, file))).toBe(true);
      }
    });
  });

  test('no tensor leaks: the same tensor count after every epoch, and back to the start after training', async () => {
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    await train(data, quickConfig({ engine, epochs: 4, layers: 2, dropout: 0.2, pooling: 'last-valid' }), {
      checkpointDir: freshDir(),
      onEpoch: () => counts.push(tf.memory().numTensors),
    });
    expect(new Set(counts).size).toBe(1);
    expect(counts[0]! - before).toBe(30); // 10 parameters and their two Adam moments
    expect(tf.memory().numTensors).toBe(before);
  });

  // The op-by-op engine is the reference itself: the comparison exists for the fused engines only.
  if (engine !== 'tfjs')
    test('it trains as the op-by-op reference does: the same metrics up to float32 rounding', async () => {
      const cfg = quickConfig({ epochs: 5, pooling: 'mean-valid', hidden: 16 });
      const reference = await train(data, { ...cfg, engine: 'tfjs' }, { checkpointDir: freshDir() });
      const fused = await train(data, { ...cfg, engine }, { checkpointDir: freshDir() });
      fused.epochs.forEach((m, i) => {
        const r = reference.epochs[i]!;
        expect(Math.abs(m.train_loss - r.train_loss)).toBeLessThan(1e-4);
        expect(Math.abs(m.valid_loss - r.valid_loss)).toBeLessThan(1e-4);
        expect(m.valid_acc).toBeCloseTo(r.valid_acc, 6);
      });
      expect(fused.best.valid_acc).toBeGreaterThan(0.9);
    });
});

test('a checkpoint written by one engine resumes with another when allowed (equal up to rounding)', async () => {
  const dir = freshDir();
  await train(data, quickConfig({ epochs: 2, engine: 'tfjs' }), { checkpointDir: dir });
  const resumed = await train(data, quickConfig({ epochs: 4, engine: 'fused', allowEngineChange: true }), { checkpointDir: dir });
  expect(resumed.resumedFromEpoch).toBe(2);
  const reference = await train(data, quickConfig({ epochs: 4, engine: 'tfjs' }), { checkpointDir: freshDir() });
  resumed.epochs.forEach((m, i) => expect(Math.abs(m.valid_loss - reference.epochs[i]!.valid_loss)).toBeLessThan(1e-4));
});

test('the fused engine gives bit-identical results under every TensorFlow.js backend', async () => {
  const backends = ['wasm', 'cpu', ...(tfjsNodeLoads() ? (['tensorflow'] as const) : [])] as const;
  const runs = [];
  for (const backend of backends) {
    const dir = freshDir();
    runs.push({ dir, out: await train(data, quickConfig({ epochs: 2, engine: 'fused', backend }), { checkpointDir: dir }) });
  }
  expect(runs.map((r) => r.out.backend)).toEqual(backends);
  for (const r of runs.slice(1)) {
    expect(numbers(r.out.epochs)).toEqual(numbers(runs[0]!.out.epochs));
    expect(fileBytes(r.dir, 2, 'weights.bin').equals(fileBytes(runs[0]!.dir, 2, 'weights.bin'))).toBe(true);
  }
  await tf.setBackend('wasm');
});

/** Runs f with SWEEPS_KERNEL set to kind, then puts the variable back as it was. */
async function withKernel<T>(kind: KernelKind, f: () => Promise<T>): Promise<T> {
  const saved = process.env.SWEEPS_KERNEL;
  try {
    process.env.SWEEPS_KERNEL = kind;
    return await f();
  } finally {
    if (saved === undefined) delete process.env.SWEEPS_KERNEL;
    else process.env.SWEEPS_KERNEL = saved;
  }
}

const otherBuilds = (['wasm-relaxed', 'native', 'native-amx'] as const).filter((k) => kernelAvailable(k));
describe.each<[KernelKind]>(otherBuilds.map((k) => [k]))('the %s build of the kernel', (kind) => {
  test('trains as the WebAssembly one, up to rounding, and the outcome names it', async () => {
    // Hidden 32: a size the AMX path takes (multiples of 32; others run the AVX-512 code).
    const cfg = quickConfig({ epochs: 4, engine: 'fused', pooling: 'max', layers: 2, dropout: 0.2, hidden: 32 });
    const wasm = await withKernel('wasm', () => train(data, cfg, { checkpointDir: freshDir() }));
    const other = await withKernel(kind, () => train(data, cfg, { checkpointDir: freshDir() }));
    expect([wasm.kernel, other.kernel]).toEqual(['wasm', kind]);
    expect(other.computedBy).toBe(`fused (${kind} kernel)`);
    other.epochs.forEach((m, i) => {
      expect(Math.abs(m.train_loss - wasm.epochs[i]!.train_loss)).toBeLessThan(1e-4);
      expect(Math.abs(m.valid_loss - wasm.epochs[i]!.valid_loss)).toBeLessThan(1e-4);
    });
  });

  test('does not silently resume a checkpoint that gru.wasm computed (the rounding differs)', async () => {
    const dir = freshDir();
    await withKernel('wasm', () => train(data, quickConfig({ epochs: 2, engine: 'fused' }), { checkpointDir: dir }));
    await expect(withKernel(kind, () => train(data, quickConfig({ epochs: 3, engine: 'fused' }), { checkpointDir: dir }))).rejects.toThrow(EngineMismatchError);
  });
});

// AMX rounds differently from AVX-512 (bf16 split products): a checkpoint of one must not be resumed by
// the other silently, although both are the same addon.
(kernelAvailable('native') && kernelAvailable('native-amx') ? test : test.skip)(
  'a checkpoint the native AVX-512 kernel computed is not silently resumed on AMX tiles, nor the reverse',
  async () => {
    for (const [first, then] of [
      ['native', 'native-amx'],
      ['native-amx', 'native'],
    ] as const) {
      const dir = freshDir();
      await withKernel(first, () => train(data, quickConfig({ epochs: 2, engine: 'fused', hidden: 32 }), { checkpointDir: dir }));
      await expect(withKernel(then, () => train(data, quickConfig({ epochs: 3, engine: 'fused', hidden: 32 }), { checkpointDir: dir }))).rejects.toThrow(
        EngineMismatchError,
      );
    }
  },
);
