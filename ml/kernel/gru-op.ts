import * as tf from '@tensorflow/tfjs';
import type { GruLayerWeights } from '../gru';
import type { Pooling } from '../pooling';
import { kernel } from './load';

function checkShapes(x: tf.Tensor3D, w: GruLayerWeights): { T: number; B: number; I: number; H: number } {
  const [T, B, I] = x.shape;
  const H = w.wHh.shape[0];
  if (w.wIh.shape[0] !== I || w.wIh.shape[1] !== 3 * H || w.wHh.shape[1] !== 3 * H || w.bIh.size !== 3 * H || w.bHh.size !== 3 * H) {
    throw new Error(`fused GRU: weight shapes ${w.wIh.shape} / ${w.wHh.shape} do not fit input ${I}, hidden ${H}`);
  }
  return { T, B, I, H };
}

function checkLengths(lengths: Int32Array, T: number, B: number): void {
  if (lengths.length !== B) throw new Error(`fused GRU pooling: ${lengths.length} lengths for a batch of ${B}`);
  lengths.forEach((len, b) => {
    if (!(len >= 1 && len <= T)) throw new Error(`fused GRU pooling: length ${len} of sequence ${b} is outside 1..${T}`);
  });
}

const f32 = (t: tf.Tensor): Float32Array => t.dataSync() as Float32Array;

/**
 * One GRU layer over a whole time-major batch x [T, B, I] as a single TensorFlow.js operation
 * with its own gradient (tf.customGrad): PyTorch's equations, as ml/gru.ts computes op by op.
 * Returns every step's output [T, B, H], or — with `pool` — the pooled [B, H] (the padding-aware
 * poolings need `lengths`, so pooling happens inside the op, forward and backward).
 *
 * The forward pass copies inputs into the kernel's memory (dataSync), runs, and copies the
 * activations the backward pass needs (h, r, z, n and W_hn h + b_hn: 5·T·B·H floats) out into
 * a plain Float32Array held by the gradient closure — not a tensor, so nothing has to be
 * disposed when no gradient is ever asked for (evaluation). The weights' values are captured
 * the same way: the backward pass uses exactly the weights the forward pass saw.
 */
function fusedGru(x: tf.Tensor3D, w: GruLayerWeights, pool?: { pooling: Pooling; lengths: Int32Array }): tf.Tensor {
  const { T, B, I, H } = checkShapes(x, w);
  if (pool !== undefined) checkLengths(pool.lengths, T, B);
  const TBH = T * B * H;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xT, wIhT, wHhT, bIhT, bHhT] = args as tf.Tensor[];
    const xs = f32(xT!);
    const weights = [f32(wIhT!), f32(wHhT!), f32(bIhT!), f32(bHhT!)] as const;
    const k = kernel();
    let tape!: Float32Array;
    let out!: Float32Array;
    k.scoped(() => {
      const xp = k.put(xs);
      const [wIh, wHh, bIh, bHh] = weights.map((a) => k.put(a)) as [number, number, number, number];
      const tp = k.alloc(5 * TBH);
      const scratch = k.alloc(k.fn.gru_scratch_floats(T, B, I, H));
      k.fn.gru_forward(T, B, I, H, xp, wIh, wHh, bIh, bHh, tp, scratch);
      tape = k.f32(tp, 5 * TBH).slice();
      if (pool === undefined) {
        out = tape.slice(0, TBH); // h is the tape's first block
      } else {
        const pooled = k.alloc(B * H);
        k.fn.pool_forward(k.poolMode(pool.pooling), T, B, H, k.put(pool.lengths, 'i32'), tp, pooled);
        out = k.f32(pooled, B * H).slice();
      }
    });
    const value = pool === undefined ? tf.tensor3d(out, [T, B, H]) : tf.tensor2d(out, [B, H]);

    const gradFunc = (dy: tf.Tensor): tf.Tensor[] => {
      const dys = f32(dy);
      const grads = k.scoped(() => {
        const xp = k.put(xs);
        const [wIh, wHh, bIh, bHh] = weights.map((a) => k.put(a)) as [number, number, number, number];
        const tp = k.put(tape);
        let dH: number;
        if (pool === undefined) {
          dH = k.put(dys);
        } else {
          dH = k.alloc(TBH);
          k.fn.pool_backward(k.poolMode(pool.pooling), T, B, H, k.put(pool.lengths, 'i32'), tp, k.put(out), k.put(dys), dH);
        }
        const sizes = [T * B * I, I * 3 * H, H * 3 * H, 3 * H, 3 * H];
        const ptrs = sizes.map((n) => k.alloc(n)) as [number, number, number, number, number];
        const scratch = k.alloc(k.fn.gru_scratch_floats(T, B, I, H));
        k.fn.gru_backward(T, B, I, H, xp, wIh, wHh, bIh, bHh, tp, dH, ...ptrs, scratch);
        return ptrs.map((p, i) => k.f32(p, sizes[i]!).slice());
      });
      const [dx, dwIh, dwHh, dbIh, dbHh] = grads as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
      return [tf.tensor3d(dx, [T, B, I]), tf.tensor2d(dwIh, [I, 3 * H]), tf.tensor2d(dwHh, [H, 3 * H]), tf.tensor1d(dbIh), tf.tensor1d(dbHh)];
    };
    return { value, gradFunc };
  });
  return op(x, w.wIh, w.wHh, w.bIh, w.bHh);
}

/** Every step's output h_1..h_T as one [T, B, H] tensor (layers below the last). */
export function fusedGruSequence(x: tf.Tensor3D, w: GruLayerWeights): tf.Tensor3D {
  return fusedGru(x, w) as tf.Tensor3D;
}

/** The GRU's outputs pooled over time, [B, H] (the last layer); see ml/pooling.ts for the modes. */
export function fusedGruPooled(x: tf.Tensor3D, w: GruLayerWeights, lengths: Int32Array, pooling: Pooling): tf.Tensor2D {
  return fusedGru(x, w, { pooling, lengths }) as tf.Tensor2D;
}
