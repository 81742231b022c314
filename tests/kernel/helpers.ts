import type { Batch } from '../../ml/batches';
import { rngFor } from '../../ml/rng';

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
