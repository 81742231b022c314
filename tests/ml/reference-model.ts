/**
 * A plain-JS, float64 reference of the model, written straight from PyTorch's documented
 * equations (torch.nn.GRU, nn.Linear, nn.CrossEntropyLoss) with scalar loops, to check the
 * tfjs implementation against. Weights are read in the checkpoint layout (GRU matrices
 * stored [in, 3H], the head [H, classes]) but indexed as PyTorch's W[gate row][input].
 */
import type { Pooling } from '../../ml/pooling';

export interface ReferenceModel {
  inputSize: number;
  hidden: number;
  layers: number;
  classes: number;
  pooling: Pooling;
  /** By PyTorch parameter name, e.g. rnn.weight_ih_l0, in the checkpoint layout. */
  params: Map<string, Float64Array>;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

function param(m: ReferenceModel, name: string): Float64Array {
  const p = m.params.get(name);
  if (!p) throw new Error(`reference: no parameter ${name}`);
  return p;
}

/** One layer over x [T][B][I]; returns h_1..h_T as [T][B][H]. */
export function referenceGruLayer(
  x: number[][][],
  wIh: Float64Array,
  wHh: Float64Array,
  bIh: Float64Array,
  bHh: Float64Array,
  inputSize: number,
  H: number,
): number[][][] {
  const T = x.length;
  const B = x[0]!.length;
  // PyTorch's W_ih[row][i] sits at [i][row] in the [in, 3H] layout.
  const Wi = (row: number, i: number): number => wIh[i * 3 * H + row]!;
  const Wh = (row: number, k: number): number => wHh[k * 3 * H + row]!;
  const out: number[][][] = [];
  let h: number[][] = Array.from({ length: B }, () => new Array<number>(H).fill(0));
  for (let t = 0; t < T; t++) {
    const next: number[][] = [];
    for (let b = 0; b < B; b++) {
      const xt = x[t]![b]!;
      const hp = h[b]!;
      const hb = new Array<number>(H);
      for (let j = 0; j < H; j++) {
        const lin = (gate: number): { i: number; h: number } => {
          const row = gate * H + j;
          let si = bIh[row]!;
          for (let i = 0; i < inputSize; i++) si += Wi(row, i) * xt[i]!;
          let sh = bHh[row]!;
          for (let k = 0; k < H; k++) sh += Wh(row, k) * hp[k]!;
          return { i: si, h: sh };
        };
        const r = lin(0);
        const z = lin(1);
        const n = lin(2);
        const rj = sigmoid(r.i + r.h);
        const zj = sigmoid(z.i + z.h);
        const nj = Math.tanh(n.i + rj * n.h);
        hb[j] = (1 - zj) * nj + zj * hp[j]!;
      }
      next.push(hb);
    }
    out.push(next);
    h = next;
  }
  return out;
}

export function referencePool(hs: number[][][], lengths: ArrayLike<number>, pooling: Pooling): number[][] {
  const T = hs.length;
  const B = hs[0]!.length;
  const H = hs[0]![0]!.length;
  const pooled: number[][] = [];
  for (let b = 0; b < B; b++) {
    const len = lengths[b]!;
    const v = new Array<number>(H).fill(0);
    for (let j = 0; j < H; j++) {
      const at = (t: number): number => hs[t]![b]![j]!;
      switch (pooling) {
        case 'last':
          v[j] = at(T - 1);
          break;
        case 'mean': {
          let s = 0;
          for (let t = 0; t < T; t++) s += at(t);
          v[j] = s / T;
          break;
        }
        case 'last-valid':
          v[j] = at(len - 1);
          break;
        case 'mean-valid': {
          let s = 0;
          for (let t = 0; t < len; t++) s += at(t);
          v[j] = s / len;
          break;
        }
        case 'max': {
          let m = -Infinity;
          for (let t = 0; t < len; t++) m = Math.max(m, at(t));
          v[j] = m;
          break;
        }
      }
    }
    pooled.push(v);
  }
  return pooled;
}

/**
 * Logits for a batch-first x [B][T][F] (flat). `dropoutMasks[l]` multiplies layer l's
 * outputs ([T][B][H] flat) before layer l+1, as PyTorch's inter-layer dropout.
 */
export function referenceLogits(
  m: ReferenceModel,
  x: ArrayLike<number>,
  B: number,
  T: number,
  lengths: ArrayLike<number>,
  dropoutMasks: ArrayLike<number>[] = [],
): number[][] {
  const H = m.hidden;
  let input: number[][][] = [];
  for (let t = 0; t < T; t++) {
    input.push(Array.from({ length: B }, (_, b) => Array.from({ length: m.inputSize }, (_, f) => x[(b * T + t) * m.inputSize + f]!)));
  }
  let hs: number[][][] = [];
  for (let l = 0; l < m.layers; l++) {
    const inSize = l === 0 ? m.inputSize : H;
    hs = referenceGruLayer(
      input,
      param(m, `rnn.weight_ih_l${l}`),
      param(m, `rnn.weight_hh_l${l}`),
      param(m, `rnn.bias_ih_l${l}`),
      param(m, `rnn.bias_hh_l${l}`),
      inSize,
      H,
    );
    const mask = dropoutMasks[l];
    input = mask ? hs.map((row, t) => row.map((hb, b) => hb.map((v, j) => v * mask[(t * B + b) * H + j]!))) : hs;
  }
  const pooled = referencePool(hs, lengths, m.pooling);
  const W = param(m, 'linear.weight'); // [H, classes]
  const bias = param(m, 'linear.bias');
  return pooled.map((p) =>
    Array.from({ length: m.classes }, (_, c) => {
      let s = bias[c]!;
      for (let j = 0; j < H; j++) s += p[j]! * W[j * m.classes + c]!;
      return s;
    }),
  );
}

/** nn.CrossEntropyLoss (mean over the batch). */
export function referenceLoss(logits: number[][], labels: ArrayLike<number>): number {
  let total = 0;
  logits.forEach((row, b) => {
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    total += lse - row[labels[b]!]!;
  });
  return total / logits.length;
}
