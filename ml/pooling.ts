import * as tf from '@tensorflow/tfjs';

/**
 * How the GRU's outputs over time become one vector per sequence. The batch is padded with
 * zeros at the end to its longest sequence T; the GRU keeps running over that padding, so its
 * outputs there are not zero.
 *
 * This list is the one place the variants are named. The pipeline schema offers its keys, the
 * trainer's TensorFlow.js path runs `pool`, and the fused kernel (ml/kernel/gru.c) dispatches by
 * the same names: its POOLINGS table holds each variant's C forward and backward pass, and the
 * TypeScript side finds a variant's index there by name (Kernel.poolMode), refusing a variant
 * the kernel does not have. Adding a variant: an entry here, its pair of functions and table
 * line in gru.c, then `npm run build:kernel` and `npm run schema` (regenerates the JSON schema).
 */
interface PoolingVariant {
  /** For people: the schema's and the docs' one-line meaning. */
  meaning: string;
  /** Pools `steps` (h_1..h_T, each [B, H], lengths checked) into [B, H]; differentiable. */
  pool(steps: tf.Tensor2D[], lengths: Int32Array, T: number, B: number): tf.Tensor2D;
}

const VARIANTS = {
  last: {
    meaning: 'h_T, the last padded step (the reference baseline, which reads padding)',
    pool: (steps, _lengths, T) => steps[T - 1] as tf.Tensor2D,
  },
  mean: {
    meaning: 'mean over all T padded steps (the reference mean pooling)',
    // addN + one division: cheaper to dispatch and to differentiate than stack + mean.
    pool: (steps, _lengths, T) => tf.div(T === 1 ? (steps[0] as tf.Tensor2D) : tf.addN(steps), T),
  },
  'last-valid': {
    meaning: "h at each sequence's own last step",
    pool: (steps, lengths, T, B) => {
      // A one-hot mask over time rather than tf.gather: gather's gradient needs
      // UnsortedSegmentSum, which the wasm backend does not implement.
      const pick = new Float32Array(T * B);
      for (let b = 0; b < B; b++) pick[((lengths[b] as number) - 1) * B + b] = 1;
      return tf.sum(tf.mul(tf.stack(steps), tf.tensor3d(pick, [T, B, 1])), 0);
    },
  },
  'mean-valid': {
    meaning: "mean over each sequence's valid steps only",
    pool: (steps, lengths, T, B) => {
      const masked = tf.mul(tf.stack(steps), timeMask(lengths, T, 1, 0));
      return tf.div(tf.sum(masked, 0), tf.tensor2d(Float32Array.from(lengths), [B, 1]));
    },
  },
  max: {
    meaning: "elementwise max over each sequence's valid steps only",
    // Adding -inf (not multiplying by a mask) keeps padded steps out of the max without ever
    // producing NaN in the forward or backward pass.
    pool: (steps, lengths, T) => tf.max(tf.add(tf.stack(steps), timeMask(lengths, T, 0, -Infinity)), 0),
  },
} satisfies Record<string, PoolingVariant>;

export type Pooling = keyof typeof VARIANTS;

/** Every variant's name, in the list's order (the order the schema offers them in). */
export const POOLINGS = Object.keys(VARIANTS) as [Pooling, ...Pooling[]];

/** What a variant means, in one line. */
export function poolingMeaning(pooling: Pooling): string {
  return VARIANTS[pooling].meaning;
}

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
  const variant = Object.hasOwn(VARIANTS, pooling) ? (VARIANTS as Record<string, PoolingVariant>)[pooling] : undefined;
  if (variant === undefined) throw new Error(`unknown pooling "${String(pooling)}" (ml/pooling.ts has ${POOLINGS.join(', ')})`);
  return variant.pool(steps, lengths, T, B);
}
