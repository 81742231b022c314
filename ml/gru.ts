import * as tf from '@tensorflow/tfjs';

/**
 * One GRU layer's parameters, stored transposed relative to PyTorch ([in, 3H] instead of
 * [3H, in]) so every product is a plain `x · W`. Columns are in PyTorch's gate order:
 * [0, H) reset r, [H, 2H) update z, [2H, 3H) candidate n.
 */
export interface GruLayerWeights {
  wIh: tf.Tensor2D; // [input, 3H]
  wHh: tf.Tensor2D; // [H, 3H]
  bIh: tf.Tensor1D; // [3H]
  bHh: tf.Tensor1D; // [3H]
}

/**
 * PyTorch's GRU layer (h0 = 0) over a time-major batch x [T, B, I]; returns h_1..h_T,
 * each [B, H]. PyTorch's equations, which `tf.layers.gru` does not compute (it applies the
 * reset gate before the recurrent product):
 *   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h
 * h' is evaluated as n + z ⊙ (h − n), the form ATen's CPU gru_cell uses.
 *
 * TensorFlow.js dispatches op by op, and dispatch rather than arithmetic dominates at these
 * sizes, so the input projection of all timesteps is one matMul and each step costs one
 * matMul plus eleven small ops (forward); autodiff records them on the tape. Plain
 * matMul + add beats tf.fused.matMul here: the fused op's gradient wrapper dispatches
 * more reshapes and copies than it saves.
 */
export function gruLayer(x: tf.Tensor3D, w: GruLayerWeights): tf.Tensor2D[] {
  const [T, B, I] = x.shape;
  const H = w.wHh.shape[0];
  if (w.wIh.shape[0] !== I || w.wIh.shape[1] !== 3 * H || w.wHh.shape[1] !== 3 * H) {
    throw new Error(`gruLayer: weight shapes ${w.wIh.shape} / ${w.wHh.shape} do not fit input ${I}, hidden ${H}`);
  }
  const projected = tf.add(tf.matMul(tf.reshape(x, [T * B, I]), w.wIh), w.bIh) as tf.Tensor2D;
  const [projRz, projN] = tf.split(projected, [2 * H, H], 1) as [tf.Tensor2D, tf.Tensor2D];
  const inRz = tf.unstack(tf.reshape(projRz, [T, B, 2 * H])) as tf.Tensor2D[];
  const inN = tf.unstack(tf.reshape(projN, [T, B, H])) as tf.Tensor2D[];

  const outputs: tf.Tensor2D[] = [];
  let h: tf.Tensor2D | null = null;
  for (let t = 0; t < T; t++) {
    let recRz: tf.Tensor2D;
    let recN: tf.Tensor2D;
    if (h === null) {
      // h0 = 0, so W_h h0 + b_h is exactly b_h: skip the product (and its gradient).
      [recRz, recN] = tf.split(tf.reshape(w.bHh, [1, 3 * H]), [2 * H, H], 1) as [tf.Tensor2D, tf.Tensor2D];
    } else {
      const rec = tf.add(tf.matMul(h, w.wHh), w.bHh) as tf.Tensor2D;
      [recRz, recN] = tf.split(rec, [2 * H, H], 1) as [tf.Tensor2D, tf.Tensor2D];
    }
    const [r, z] = tf.split(tf.sigmoid(tf.add(inRz[t] as tf.Tensor2D, recRz)), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
    const n = tf.tanh(tf.add(inN[t] as tf.Tensor2D, tf.mul(r, recN)));
    const next: tf.Tensor2D = h === null ? tf.sub(n, tf.mul(z, n)) : tf.add(n, tf.mul(z, tf.sub(h, n)));
    outputs.push(next);
    h = next;
  }
  return outputs;
}
