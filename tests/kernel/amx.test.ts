import { readFileSync } from 'node:fs';
import { initBackend } from '../../ml/backend';
import { FusedTrainer } from '../../ml/kernel/engine';
import { kernel, kernelAvailable, type Kernel } from '../../ml/kernel/load';
import { GruClassifier, type GruClassifierConfig } from '../../ml/model';
import { POOLINGS, type Pooling } from '../../ml/pooling';
import { rngFor, type Rng } from '../../ml/rng';
import { ADAM, modelAndTrainer, randomBatch, relativeError, tfjsGradients, worstGradient } from './helpers';

/**
 * The native kernel's AMX path (ml/kernel/amx-native.h, kind `native-amx`): where the CPU has
 * AMX it must be the path that runs, and it must match the op-by-op reference as the AVX-512
 * path (kind `native`, the same addon with AMX off) does. Shapes: hidden sizes that are multiples
 * of 32 (the tile path's condition), batches of 5 (one 16-row tile, mostly padding), 20 and 37
 * (two row tiles, then two plus one), and sequences long enough that the recurrent weights'
 * gradients are summed in chunks.
 */
const cpuFlags = (readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/);
const cpuHasAmx = cpuFlags.includes('amx_bf16') && cpuFlags.includes('amx_tile');
const hasNative = kernelAvailable('native');
const hasAmx = kernelAvailable('native-amx');
const TOLERANCE = 1e-5;

beforeAll(async () => {
  await initBackend('wasm');
});

// No silent skip: where the native kernel is built, the AMX kind is there exactly when
// /proc/cpuinfo lists the AMX flags.
test('the AMX kernel is available exactly where the CPU has AMX-BF16 tiles', () => {
  if (!hasNative) {
    console.warn('SKIPPING the AMX checks: no native kernel built on this machine (npm run build:kernel-native)');
    return;
  }
  expect(hasAmx).toBe(cpuHasAmx);
  expect(kernel('native').fn.amx_available?.()).toBe(cpuHasAmx ? 1 : 0);
  console.log(`AMX: CPU ${cpuHasAmx ? 'has' : 'lacks'} amx_bf16/amx_tile; native-amx kernel ${hasAmx ? 'used' : 'not available'}`);
});

test('auto keeps the AVX-512/AVX2 native kernel (the bits studies already ran with); SWEEPS_KERNEL=native-amx asks for the tiles', () => {
  if (!hasNative) return;
  expect(kernel('auto').kind).toBe('native');
  const saved = process.env.SWEEPS_KERNEL;
  try {
    process.env.SWEEPS_KERNEL = 'native-amx';
    if (hasAmx) expect(kernel().kind).toBe('native-amx');
    else expect(() => kernel()).toThrow('no AMX-BF16 tiles');
  } finally {
    if (saved === undefined) delete process.env.SWEEPS_KERNEL;
    else process.env.SWEEPS_KERNEL = saved;
  }
});

const amx = hasAmx ? describe : describe.skip;

amx('native-amx kernel', () => {
  const layersOnTiles = (): number => kernel('native-amx').fn.amx_layers!();

  test('its layers run on AMX tiles, and the native kernel’s (AMX off) do not', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 32, layers: 2, dropout: 0, classes: 5, pooling: 'mean' };
    const batch = randomBatch('amx-path', 8, 6, 3, 5);
    const a = modelAndTrainer(cfg, 6, 8, kernel('native-amx'), 'amx-init');
    const n = modelAndTrainer(cfg, 6, 8, kernel('native'), 'amx-init');
    try {
      const before = layersOnTiles();
      n.trainer.gradients(batch);
      n.trainer.evaluate(batch);
      expect(layersOnTiles()).toBe(before);
      a.trainer.gradients(batch);
      expect(layersOnTiles()).toBe(before + 2);
      a.trainer.evaluate(batch);
      expect(layersOnTiles()).toBe(before + 4);
    } finally {
      for (const t of [a, n]) {
        t.trainer.dispose();
        t.model.dispose();
      }
    }
  });

  describe.each<[string, number, number, number, number, number]>([
    ['B 5, T 7, hidden 32', 5, 7, 32, 1, 0],
    ['B 20, T 9, hidden 32, 2 layers', 20, 9, 32, 2, 0],
    ['B 37, T 5, hidden 64, 2 layers, dropout', 37, 5, 64, 2, 0.3],
    // (T − 1)·B = 760 rows: the weight gradients' tile product in two chunks (640 + 120).
    ['B 40, T 20, hidden 32', 40, 20, 32, 1, 0],
    // Hidden 96: three column pairs per gate, three row blocks of the weight gradients.
    ['B 9, T 12, hidden 96', 9, 12, 96, 1, 0],
  ])('vs the op-by-op reference (%s)', (_label, B, T, hidden, layers, dropout) => {
    test.each(POOLINGS.map((p) => [p]))('%s pooling: loss and every gradient within 1e-5, and AVX-512 within 1e-5 of it', (pooling) => {
      const cfg: GruClassifierConfig = { inputSize: 3, hidden, layers, dropout, classes: 7, pooling: pooling as Pooling };
      const a = modelAndTrainer(cfg, T, B, kernel('native-amx'), 'amx-init');
      const n = modelAndTrainer(cfg, T, B, kernel('native'), 'amx-init');
      try {
        const batch = randomBatch(`amx-${pooling}-${B}`, B, T, 3, 7);
        const stream = (): Rng | undefined => (dropout > 0 ? rngFor(3, 'amx-dropout', B) : undefined);
        const want = tfjsGradients(a.model, batch, stream());
        const before = layersOnTiles();
        const got = a.trainer.gradients(batch, stream());
        expect(layersOnTiles()).toBe(before + layers);
        expect(Math.abs(got.loss - want.loss) / want.loss).toBeLessThan(TOLERANCE);
        expect(worstGradient(a.model, got.grads, want.grads).error).toBeLessThan(TOLERANCE);
        const avx = n.trainer.gradients(batch, stream());
        expect(worstGradient(a.model, got.grads, avx.grads).error).toBeLessThan(TOLERANCE);
      } finally {
        for (const t of [a, n]) {
          t.trainer.dispose();
          t.model.dispose();
        }
      }
    });
  });

  test('evaluation without a tape gives the taped forward pass’s loss bit for bit', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 32, layers: 2, dropout: 0, classes: 5, pooling: 'max' };
    const { model, trainer } = modelAndTrainer(cfg, 37, 9, kernel('native-amx'), 'amx-init');
    try {
      const batch = randomBatch('amx-infer', 9, 37, 3, 5);
      expect(Object.is(trainer.evaluate(batch).loss, trainer.gradients(batch).loss)).toBe(true);
    } finally {
      trainer.dispose();
      model.dispose();
    }
  });

  test('the same state and batches give bit-identical weights, loadState resumes exactly, and the bits differ from AVX-512’s', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 32, layers: 2, dropout: 0.2, classes: 4, pooling: 'mean-valid' };
    const batches = [0, 1, 2, 3, 4, 5].map((i) => randomBatch(`amx-repeat-${i}`, 12, 9, 3, 4));
    const stream = (i: number): Rng => rngFor(5, 'amx-dropout', 1, i);
    const sizes = (m: GruClassifier) => m.params.map((p) => p.variable.size);
    const run = (k: Kernel) => {
      const r = modelAndTrainer(cfg, 9, 12, k, 'amx-init');
      batches.forEach((b, i) => r.trainer.step(b, 1e-2, stream(i)));
      const w = r.trainer.weights;
      r.trainer.dispose();
      r.model.dispose();
      return w;
    };
    const straight = run(kernel('native-amx'));
    expect(Buffer.from(run(kernel('native-amx')).buffer).equals(Buffer.from(straight.buffer))).toBe(true);

    const b = modelAndTrainer(cfg, 9, 12, kernel('native-amx'), 'amx-init');
    batches.slice(0, 3).forEach((batch, i) => b.trainer.step(batch, 1e-2, stream(i)));
    const saved = { weights: b.trainer.weights, adam: b.trainer.adamState(sizes(b.model)) };
    b.trainer.dispose();
    b.model.dispose();
    const c = new FusedTrainer({ ...cfg, maxSteps: 9, maxBatch: 12 }, ADAM, kernel('native-amx'));
    c.loadState(saved.weights, saved.adam);
    batches.slice(3).forEach((batch, i) => c.step(batch, 1e-2, stream(i + 3)));
    expect(Buffer.from(c.weights.buffer).equals(Buffer.from(straight.buffer))).toBe(true);
    c.dispose();

    const avx = run(kernel('native'));
    expect(relativeError(avx, straight)).toBeLessThan(1e-4);
    expect(Buffer.from(avx.buffer).equals(Buffer.from(straight.buffer))).toBe(false);
  });

  test('hidden sizes that are not multiples of 32 run the AVX-512 code, bit for bit', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 24, layers: 1, dropout: 0, classes: 5, pooling: 'last' };
    const batch = randomBatch('amx-fallback', 6, 8, 3, 5);
    const a = modelAndTrainer(cfg, 8, 6, kernel('native-amx'), 'amx-init');
    const n = modelAndTrainer(cfg, 8, 6, kernel('native'), 'amx-init');
    try {
      const before = layersOnTiles();
      const ga = a.trainer.gradients(batch).grads;
      expect(layersOnTiles()).toBe(before);
      expect(Buffer.from(ga.buffer).equals(Buffer.from(n.trainer.gradients(batch).grads.buffer))).toBe(true);
    } finally {
      for (const t of [a, n]) {
        t.trainer.dispose();
        t.model.dispose();
      }
    }
  });

  test('the tile unit’s peak microbenchmark runs (amx_peak)', () => {
    expect(kernel('native-amx').fn.amx_peak!(10)).toBeGreaterThan(0);
  });
});
