import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../../ml/batches';
import { FusedTrainer } from '../../ml/kernel/engine';
import type { Kernel } from '../../ml/kernel/load';
import { crossEntropy, GruClassifier, type GruClassifierConfig } from '../../ml/model';
import { rngFor, type Rng } from '../../ml/rng';

/** The Adam settings the kernel tests train with. */
export const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-5 };

/**
 * Norm-wise relative error max|got − want| / max|want|, the usual measure for comparing two
 * float32 computations of a whole tensor (elementwise relative error is meaningless for entries
 * near zero, where both sides are pure rounding).
 */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`lengths differ: ${got.length} vs ${want.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as number;
    const w = want[i] as number;
    if (Number.isNaN(g) !== Number.isNaN(w)) return Infinity;
    diff = Math.max(diff, Math.abs(g - w));
    scale = Math.max(scale, Math.abs(w));
  }
  return scale === 0 ? diff : diff / scale;
}

/**
 * A padded batch-first batch with variable lengths and zeros past each length: the first
 * sequence fills all T steps (T is the batch's longest, as gatherBatch makes it), the second is
 * as short as allowed, the third in between, the rest random.
 */
export function randomBatch(seed: string, B: number, T: number, features: number, classes: number, minLength = 1): Batch {
  const rng = rngFor(17, 'kernel-batch', seed);
  const fixed = [T, minLength, Math.round((T + minLength) / 2)];
  const lengths = Int32Array.from({ length: B }, (_, b) => fixed[b] ?? minLength + rng.int(T - minLength + 1));
  const x = new Float32Array(B * T * features);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < (lengths[b] as number) * features; k++) x[b * T * features + k] = rng.uniformRange(-2, 2);
  }
  const labels = Int32Array.from({ length: B }, () => rng.int(classes));
  return { x, lengths, labels, size: B, steps: T, features };
}

/**
 * A reference model (weights doubled from their initialisation, so that the gates leave their
 * linear range) and a kernel trainer loaded with the same weights and zero Adam moments. `label`
 * names the initialisation stream (each test file keeps its own weights).
 */
export function modelAndTrainer(
  cfg: GruClassifierConfig,
  maxSteps: number,
  maxBatch: number,
  k: Kernel,
  label: string,
): { model: GruClassifier; trainer: FusedTrainer } {
  const model = new GruClassifier(cfg, rngFor(8, label, cfg.pooling, cfg.layers));
  model.setWeights(model.getWeights().map((v) => v * 2));
  const trainer = new FusedTrainer({ ...cfg, maxSteps, maxBatch }, ADAM, k);
  const zeros = model.params.map((p) => new Float32Array(p.variable.size));
  trainer.loadState(model.getWeights(), { step: 0, m: zeros, v: zeros });
  return { model, trainer };
}

/** The batch's loss and dLoss/dparams by TensorFlow.js autodiff of the op-by-op model, flat in getWeights order. */
export function tfjsGradients(model: GruClassifier, batch: Batch, dropoutRng?: Rng): { loss: number; grads: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor3d(batch.x, [batch.size, batch.steps, batch.features]);
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.logits(x, batch.lengths, dropoutRng), batch.labels), model.variables);
    const flat = new Float32Array(model.parameterCount);
    let at = 0;
    for (const v of model.variables) {
      flat.set(grads[v.name]!.dataSync() as Float32Array, at);
      at += v.size;
    }
    return { loss: value.dataSync()[0] as number, grads: flat };
  });
}

/** The parameter tensor whose gradient differs most (relativeError per tensor, so that a small tensor's error is not hidden by a large one's scale). */
export function worstGradient(model: GruClassifier, got: Float32Array, want: Float32Array): { name: string; error: number } {
  let at = 0;
  let worst = { name: '', error: 0 };
  for (const p of model.params) {
    const n = p.variable.size;
    const error = relativeError(got.subarray(at, at + n), want.subarray(at, at + n));
    if (!(error <= worst.error)) worst = { name: p.name, error };
    at += n;
  }
  return worst;
}
