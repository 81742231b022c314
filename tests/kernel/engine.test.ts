import { spawnSync } from 'node:child_process';
import { initBackend } from '../../ml/backend';
import { FusedTrainer } from '../../ml/kernel/engine';
import { kernel, KERNEL_KINDS, kernelAvailable, type KernelKind } from '../../ml/kernel/load';
import { GruClassifier, type GruClassifierConfig } from '../../ml/model';
import { Adam } from '../../ml/optim';
import { POOLINGS, type Pooling } from '../../ml/pooling';
import { rngFor, type Rng } from '../../ml/rng';
import { evaluateBatch, trainStep } from '../../ml/trainer';
import { ADAM, modelAndTrainer, randomBatch, relativeError, tfjsGradients, worstGradient } from './helpers';

/**
 * The whole-step kernel (GRU, pooling, head, softmax cross-entropy, backward, Adam) against the
 * TensorFlow.js reference path: ml/model.ts op by op, tfjs autodiff, ml/optim.ts — for the
 * committed WebAssembly builds (gru.wasm; gru-relaxed.wasm where this Node runs it), and for the
 * native build when it was made on this machine.
 */
const KINDS = KERNEL_KINDS.filter((k) => kernelAvailable(k));
/** The compiler ml/kernel/build.sh uses for the native addon ($CC, else cc). */
const compiler = process.env.CC || 'cc';
const canBuildNative = spawnSync('sh', ['-c', `command -v "${compiler}"`]).status === 0;

// No silent skip: on CI, where setup builds the native kernel whenever a compiler exists (and fails
// when that build fails), both kernels must run here; elsewhere a missing native build is said.
test('runs for the WebAssembly kernels, and for the native one wherever a C compiler exists (required on CI)', () => {
  expect(KINDS).toContain('wasm');
  // Every Node in package.json's engines runs the relaxed build on x86-64 (FMA3 since 2013).
  if (process.env.CI === 'true' && process.arch === 'x64') expect(KINDS).toContain('wasm-relaxed');
  if (process.env.CI === 'true' && canBuildNative) expect(KINDS).toContain('native');
  else if (!KINDS.includes('native'))
    console.warn(`SKIPPING the native kernel: not built on this machine (${canBuildNative ? 'npm run build:kernel-native' : `no C compiler "${compiler}"`})`);
  console.log(`kernel engine tests ran for: ${KINDS.join(', ')}`);
});
const TOLERANCE = 1e-5;

beforeAll(async () => {
  await initBackend('wasm');
});

describe.each<[KernelKind]>(KINDS.map((k) => [k]))('%s kernel', (kind) => {
  it(`computes with the ${kind} build it is named for`, () => {
    expect(kernel(kind).kind).toBe(kind);
  });

  function expectGradientsClose(model: GruClassifier, got: Float32Array, want: Float32Array): void {
    const worst = worstGradient(model, got, want);
    if (!(worst.error < TOLERANCE)) throw new Error(`${worst.name}: kernel gradient differs from tfjs autodiff by ${worst.error.toExponential(2)} (relative)`);
  }

  describe.each<[string, number, number, number, number]>([
    ['odd sizes', 5, 7, 13, 1],
    ['odd sizes, 2 layers', 5, 7, 13, 2],
    ['the seed study’s sizes', 32, 20, 64, 1],
  ])('whole-step kernel vs tfjs (%s)', (_label, B, T, hidden, layers) => {
    test.each(POOLINGS.map((p) => [p]))('%s pooling: loss and the gradient of every parameter within 1e-5', (pooling) => {
      const cfg: GruClassifierConfig = { inputSize: 3, hidden, layers, dropout: 0, classes: 7, pooling: pooling as Pooling };
      const { model, trainer } = modelAndTrainer(cfg, T, B, kernel(kind), 'engine-init');
      try {
        const batch = randomBatch(`engine-${pooling}-${B}`, B, T, 3, 7);
        const want = tfjsGradients(model, batch);
        const got = trainer.gradients(batch);
        expect(Math.abs(got.loss - want.loss) / want.loss).toBeLessThan(TOLERANCE);
        expectGradientsClose(model, got.grads, want.grads);
      } finally {
        trainer.dispose();
        model.dispose();
      }
    });
  });

  test('inter-layer dropout: the kernel draws the same masks from the same stream', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 10, layers: 3, dropout: 0.3, classes: 5, pooling: 'last-valid' };
    const { model, trainer } = modelAndTrainer(cfg, 9, 6, kernel(kind), 'engine-init');
    try {
      const batch = randomBatch('engine-dropout', 6, 9, 3, 5);
      const stream = (): Rng => rngFor(2, 'dropout', 3, 4);
      const want = tfjsGradients(model, batch, stream());
      const got = trainer.gradients(batch, stream());
      expect(Math.abs(got.loss - want.loss) / want.loss).toBeLessThan(TOLERANCE);
      expectGradientsClose(model, got.grads, want.grads);
      // And without the stream, no dropout: a different loss.
      expect(trainer.gradients(batch).loss).not.toBeCloseTo(got.loss, 4);
    } finally {
      trainer.dispose();
      model.dispose();
    }
  });

  test('Adam steps move the weights as ml/optim.ts does (torch’s L2 weight decay), over several steps', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 16, layers: 1, dropout: 0, classes: 5, pooling: 'mean' };
    const { model, trainer } = modelAndTrainer(cfg, 10, 8, kernel(kind), 'engine-init');
    const adam = new Adam(model.variables, { lr: 5e-3, weightDecay: ADAM.weightDecay });
    try {
      const start = model.getWeights();
      const batches = [0, 1, 2, 3].map((i) => randomBatch(`adam-${i}`, 8, 10, 3, 5));
      for (const batch of batches) {
        const tfLoss = trainStep(model, adam, batch);
        const kernelLoss = trainer.step(batch, 5e-3);
        expect(Math.abs(kernelLoss - tfLoss) / tfLoss).toBeLessThan(TOLERANCE);
      }
      const want = model.getWeights();
      const got = trainer.weights;
      // Compare the updates, not the weights: four Adam steps move each weight by ~4·lr.
      const moved = (w: Float32Array) => w.map((v, i) => v - start[i]!);
      expect(relativeError(moved(got), moved(want))).toBeLessThan(1e-4);
      const state = trainer.adamState(model.params.map((p) => p.variable.size));
      const ref = adam.exportState();
      expect(state.step).toBe(4);
      state.m.forEach((m, i) => expect(relativeError(m, ref.m[i]!)).toBeLessThan(1e-4));
      state.v.forEach((v, i) => expect(relativeError(v, ref.v[i]!)).toBeLessThan(1e-4));
    } finally {
      adam.dispose();
      trainer.dispose();
      model.dispose();
    }
  });

  test('evaluation: the loss and accuracy of evaluateBatch', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 12, layers: 2, dropout: 0.5, classes: 3, pooling: 'max' };
    const { model, trainer } = modelAndTrainer(cfg, 11, 16, kernel(kind), 'engine-init');
    try {
      for (let i = 0; i < 3; i++) {
        const batch = randomBatch(`eval-${i}`, 16, 11, 3, 3);
        const want = evaluateBatch(model, batch);
        const got = trainer.evaluate(batch);
        expect(Math.abs(got.loss - want.loss) / want.loss).toBeLessThan(TOLERANCE);
        expect(got.accuracy).toBe(want.accuracy);
      }
    } finally {
      trainer.dispose();
      model.dispose();
    }
  });

  test.each(POOLINGS.map((p) => [p]))(
    '%s pooling: evaluation without a tape gives the training forward pass’s loss bit for bit (2 layers, T across projection chunks)',
    (pooling) => {
      // T = 37 spans three of layer_infer's 16-step input-projection chunks; lengths vary.
      const cfg: GruClassifierConfig = { inputSize: 3, hidden: 24, layers: 2, dropout: 0, classes: 5, pooling: pooling as Pooling };
      const { model, trainer } = modelAndTrainer(cfg, 37, 9, kernel(kind), 'engine-init');
      try {
        const batch = randomBatch(`infer-${pooling}`, 9, 37, 3, 5);
        const taped = trainer.gradients(batch).loss;
        expect(Object.is(trainer.evaluate(batch).loss, taped)).toBe(true);
      } finally {
        trainer.dispose();
        model.dispose();
      }
    },
  );

  test('the same state and batches give bit-identical weights, and loadState restores a run exactly', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 20, layers: 2, dropout: 0.2, classes: 4, pooling: 'mean' };
    const batches = [0, 1, 2, 3, 4, 5].map((i) => randomBatch(`repeat-${i}`, 12, 9, 3, 4));
    const stream = (i: number): Rng => rngFor(5, 'dropout', 1, i);
    const sizes = (m: GruClassifier) => m.params.map((p) => p.variable.size);

    const a = modelAndTrainer(cfg, 9, 12, kernel(kind), 'engine-init');
    batches.forEach((b, i) => a.trainer.step(b, 1e-2, stream(i)));
    const straight = a.trainer.weights;

    const b = modelAndTrainer(cfg, 9, 12, kernel(kind), 'engine-init');
    batches.slice(0, 3).forEach((batch, i) => b.trainer.step(batch, 1e-2, stream(i)));
    const saved = { weights: b.trainer.weights, adam: b.trainer.adamState(sizes(b.model)) };
    b.trainer.dispose();
    const c = new FusedTrainer({ ...cfg, maxSteps: 9, maxBatch: 12 }, ADAM, kernel(kind));
    c.loadState(saved.weights, saved.adam);
    batches.slice(3).forEach((batch, i) => c.step(batch, 1e-2, stream(i + 3)));
    const resumed = c.weights;

    expect(Buffer.from(resumed.buffer).equals(Buffer.from(straight.buffer))).toBe(true);
    for (const t of [a.trainer, c]) t.dispose();
    a.model.dispose();
    b.model.dispose();
  });

  test('batches larger than the trainer was sized for, or with bad lengths or labels, are refused', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 4, layers: 1, dropout: 0, classes: 3, pooling: 'last' };
    const { model, trainer } = modelAndTrainer(cfg, 5, 4, kernel(kind), 'engine-init');
    try {
      expect(() => trainer.step(randomBatch('big', 4, 6, 3, 3), 1e-3)).toThrow('exceeds the 4 × 5 it was sized for');
      const bad = randomBatch('bad', 4, 5, 3, 3);
      bad.labels[2] = 3;
      expect(() => trainer.evaluate(bad)).toThrow('label 3 outside 0..2');
      bad.labels[2] = 0;
      bad.lengths[1] = 0;
      expect(() => trainer.evaluate(bad)).toThrow('length 0 of sequence 1 is outside 1..5');
    } finally {
      trainer.dispose();
      model.dispose();
    }
  });

  test('a disposed trainer gives its memory back to the kernel', () => {
    const k = kernel(kind);
    const before = k.mark();
    const t = new FusedTrainer({ inputSize: 3, hidden: 64, layers: 1, classes: 20, dropout: 0, pooling: 'mean', maxSteps: 51, maxBatch: 32 }, ADAM, k);
    expect(k.mark()).toBeGreaterThan(before);
    t.dispose();
    expect(k.mark()).toBe(before);
  });
});

// The relaxed build is recorded as a kind of its own because it rounds differently: were it built
// without -mrelaxed-simd (or loaded from the wrong file), it would equal gru.wasm bit for bit and
// this test would say so.
(KINDS.includes('wasm-relaxed') ? test : test.skip)(
  'gru-relaxed.wasm fuses its multiply-adds: gradients within 1e-5 of gru.wasm’s, but not the same bits',
  () => {
    const cfg = { inputSize: 3, hidden: 32, layers: 1, classes: 5, dropout: 0, pooling: 'mean' as const, maxSteps: 12, maxBatch: 8 };
    const init = new GruClassifier({ ...cfg }, rngFor(8, 'relaxed-vs-wasm'));
    const zeros = init.params.map((p) => new Float32Array(p.variable.size));
    const batch = randomBatch('relaxed-vs-wasm', 8, 12, 3, 5);
    const grads = (kind: KernelKind) => {
      const t = new FusedTrainer(cfg, ADAM, kernel(kind));
      try {
        t.loadState(init.getWeights(), { step: 0, m: zeros, v: zeros });
        return t.gradients(batch).grads;
      } finally {
        t.dispose();
      }
    };
    try {
      const [plain, relaxed] = [grads('wasm'), grads('wasm-relaxed')];
      expect(relativeError(relaxed, plain)).toBeLessThan(TOLERANCE);
      expect(Buffer.from(relaxed.buffer).equals(Buffer.from(plain.buffer))).toBe(false);
    } finally {
      init.dispose();
    }
  },
);
