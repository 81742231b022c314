import * as tf from '@tensorflow/tfjs';

/**
 * How the GRU's outputs over time become one vector per sequence. The batch is padded with
 * zeros at the end to its longest sequence T; the GRU keeps running over that padding,
 * so its outputs there are not zero.
 * - `last`: h_T, the last *padded* step (the reference baseline, which reads padding);
 * - `mean`: mean over all T padded steps (the reference's mean pooling);
 * - `last-valid`: h at each sequence's own last step;
 * - `mean-valid`: mean over each sequence's valid steps only;
 * - `max`: elementwise max over each sequence's valid steps only.
 */
export type Pooling = 'last' | 'mean' | 'last-valid' | 'mean-valid' | 'max';

export const POOLINGS: readonly Pooling[] = ['last', 'mean', 'last-valid', 'mean-valid', 'max'];

function checkLengths(lengths: Int32Array, T: number, B: number): void {
  if (lengths.length !== B) throw new Error(`pooling: ${lengths.length} lengths for a batch of ${B}`);
  for (let b = 0; b < B; b++) {
    const len = lengths[b] as number;
    if (len < 1 || len > T) throw new Error(`pooling: length ${len} of sequence ${b} is outside 1..${T}`);
  }
}

/** [T, B, 1] mask: `inside` where t < length, `outside` elsewhere. */
function timeMask(lengths: Int32Array, T: number, inside: number, outside: number): tf.Tensor3D {
  const B = lengths.length;
  const mask = new Float32Array(T * B).fill(outside);
  for (let b = 0; b < B; b++) {
    const len = lengths[b] as number;
    for (let t = 0; t < len; t++) mask[t * B + b] = inside;
  }
  return tf.tensor3d(mask, [T, B, 1]);
}

/** Pools GRU outputs `steps` (h_1..h_T, each [B, H]) into [B, H]. */
export function poolOverTime(steps: tf.Tensor2D[], lengths: Int32Array, pooling: Pooling): tf.Tensor2D {
  const T = steps.length;
  const first = steps[0];
  if (first === undefined) throw new Error('pooling: no timesteps');
  const B = first.shape[0];
  checkLengths(lengths, T, B);

  switch (pooling) {
    case 'last':
      return steps[T - 1] as tf.Tensor2D;
    case 'mean':
      // addN + one division: cheaper to dispatch and to differentiate than stack + mean.
      return tf.div(T === 1 ? first : tf.addN(steps), T);
    case 'last-valid': {
      // A one-hot mask over time rather than tf.gather: gather's gradient needs
      // UnsortedSegmentSum, which the wasm backend does not implement.
      const pick = new Float32Array(T * B);
      for (let b = 0; b < B; b++) pick[((lengths[b] as number) - 1) * B + b] = 1;
      return tf.sum(tf.mul(tf.stack(steps), tf.tensor3d(pick, [T, B, 1])), 0);
    }
    case 'mean-valid': {
      const masked = tf.mul(tf.stack(steps), timeMask(lengths, T, 1, 0));
      return tf.div(tf.sum(masked, 0), tf.tensor2d(Float32Array.from(lengths), [B, 1]));
    }
    case 'max': {
      // Adding -inf (not multiplying by a mask) keeps padded steps out of the max
      // without ever producing NaN in the forward or backward pass.
      const shifted = tf.add(tf.stack(steps), timeMask(lengths, T, 0, -Infinity));
      return tf.max(shifted, 0);
    }
    default: {
      const never: never = pooling;
      throw new Error(`unknown pooling ${String(never)}`);
    }
  }
}
