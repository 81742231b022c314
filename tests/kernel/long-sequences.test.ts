import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../ml/backend';
import { FusedTrainer } from '../../ml/kernel/engine';
import { kernel, KERNEL_KINDS, kernelAvailable, type KernelKind } from '../../ml/kernel/load';
import { crossEntropy, GruClassifier, type GruClassifierConfig } from '../../ml/model';
import { rngFor } from '../../ml/rng';
import { randomBatch, relativeError } from './helpers';

/**
 * Sequences of 5,000 timesteps on the fused engines (whole-step kernel, both builds, and the
 * fused GRU custom op): they train, the builds agree, and the kernel's memory for such a batch is
 * what the batch needs (the tape and the backward buffers, O(T·B·H)), given back afterwards.
 */
const T = 5000;
const KINDS = KERNEL_KINDS.filter((k) => kernelAvailable(k));
const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-5 };
const cfg: GruClassifierConfig = { inputSize: 3, hidden: 16, layers: 2, dropout: 0, classes: 4, pooling: 'mean-valid' };
// The first sequence fills all 5,000 steps, the second is 1 step long, the rest in between.
const batch = randomBatch('long', 4, T, 3, 4);

beforeAll(async () => {
  await initBackend('wasm');
});

function gradients(kind: KernelKind): { loss: number; grads: Float32Array; evalLoss: number; bytes: number } {
  const model = new GruClassifier(cfg, rngFor(3, 'long-init'));
  const k = kernel(kind);
  const before = k.mark();
  const trainer = new FusedTrainer({ ...cfg, maxSteps: T, maxBatch: batch.size }, ADAM, k);
  try {
    const zeros = model.params.map((p) => new Float32Array(p.variable.size));
    trainer.loadState(model.getWeights(), { step: 0, m: zeros, v: zeros });
    const { loss, grads } = trainer.gradients(batch);
    const evalLoss = trainer.evaluate(batch).loss;
    return { loss, grads, evalLoss, bytes: k.mark() - before };
  } finally {
    trainer.dispose();
    model.dispose();
    expect(k.mark()).toBe(before);
  }
}

test.each(KINDS.map((k) => [k]))('%s kernel: a 5,000-step batch trains (finite loss and gradients) in memory linear in T·B', (kind) => {
  const { loss, grads, evalLoss, bytes } = gradients(kind);
  expect(Number.isFinite(loss)).toBe(true);
  expect(grads.every(Number.isFinite)).toBe(true);
  expect(Object.is(evalLoss, loss)).toBe(true);
  // Per layer the tape (5 blocks), its input, dH, dX, and backward scratch (4 blocks) of T·B·H
  // floats: about 13 blocks for 2 layers, nothing that grows faster than T.
  const block = T * batch.size * cfg.hidden * 4;
  expect(bytes).toBeLessThan(20 * block);
});

test('both builds and the fused GRU custom op agree on a 5,000-step batch within 1e-5', () => {
  const ref = gradients(KINDS[0]!);
  for (const kind of KINDS.slice(1)) expect(relativeError(gradients(kind).grads, ref.grads)).toBeLessThan(1e-5);

  const model = new GruClassifier({ ...cfg, gru: 'fused' }, rngFor(3, 'long-init'));
  try {
    const { value, grads } = tf.tidy(() => {
      const x = tf.tensor3d(batch.x, [batch.size, T, 3]);
      const g = tf.variableGrads(() => crossEntropy(model.logits(x, batch.lengths), batch.labels), model.variables);
      const flat = new Float32Array(model.parameterCount);
      let at = 0;
      for (const v of model.variables) {
        flat.set(g.grads[v.name]!.dataSync() as Float32Array, at);
        at += v.size;
      }
      return { value: g.value.dataSync()[0] as number, grads: flat };
    });
    expect(Math.abs(value - ref.loss) / ref.loss).toBeLessThan(1e-5);
    expect(relativeError(grads, ref.grads)).toBeLessThan(1e-5);
  } finally {
    model.dispose();
  }
});
