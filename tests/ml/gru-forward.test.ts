import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../ml/backend';
import { gruLayer } from '../../ml/gru';
import { GruClassifier } from '../../ml/model';
import { POOLINGS } from '../../ml/pooling';
import { rngFor } from '../../ml/rng';
import { referenceGruLayer, referenceLogits, type ReferenceModel } from './reference-model';

beforeAll(async () => {
  await initBackend('wasm');
});

function referenceOf(model: GruClassifier): ReferenceModel {
  const c = model.config;
  return {
    ...c,
    params: new Map(model.params.map((p) => [p.name, Float64Array.from(p.variable.dataSync())])),
  };
}

test('a GRU layer computes PyTorch’s equations (gate order r, z, n; reset after the recurrent product)', () => {
  const T = 4;
  const B = 2;
  const I = 3;
  const H = 5;
  const rng = rngFor(7, 'gru-forward');
  const x = rng.fillUniform(new Float32Array(T * B * I), -2, 2);
  const wIh = rng.fillUniform(new Float32Array(I * 3 * H), -0.8, 0.8);
  const wHh = rng.fillUniform(new Float32Array(H * 3 * H), -0.8, 0.8);
  const bIh = rng.fillUniform(new Float32Array(3 * H), -0.5, 0.5);
  const bHh = rng.fillUniform(new Float32Array(3 * H), -0.5, 0.5);

  const got = tf.tidy(() =>
    gruLayer(tf.tensor3d(x, [T, B, I]), {
      wIh: tf.tensor2d(wIh, [I, 3 * H]),
      wHh: tf.tensor2d(wHh, [H, 3 * H]),
      bIh: tf.tensor1d(bIh),
      bHh: tf.tensor1d(bHh),
    }).map((h) => h.arraySync()),
  );
  const xs = Array.from({ length: T }, (_, t) => Array.from({ length: B }, (_, b) => Array.from({ length: I }, (_, i) => x[(t * B + b) * I + i]!)));
  const want = referenceGruLayer(xs, Float64Array.from(wIh), Float64Array.from(wHh), Float64Array.from(bIh), Float64Array.from(bHh), I, H);

  expect(got).toHaveLength(T);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < H; j++) expect(got[t]![b]![j]!).toBeCloseTo(want[t]![b]![j]!, 6);
    }
  }
  // A sanity anchor: the hidden state actually moves (not all ~0), so the comparison means something.
  expect(Math.max(...want[T - 1]!.flat().map(Math.abs))).toBeGreaterThan(0.2);
});

test('the GRU is not tf.layers.gru’s reset-before-product form: the two differ on the same weights', () => {
  // Why this project has its own GRU: r ⊙ (W_hn h + b_hn) ≠ W_hn (r ⊙ h) + b_hn.
  const H = 3;
  const rng = rngFor(3, 'gru-variant');
  const wIh = rng.fillUniform(new Float32Array(3 * H), -1, 1);
  const wHh = rng.fillUniform(new Float32Array(H * 3 * H), -1, 1);
  const bHh = rng.fillUniform(new Float32Array(3 * H), -1, 1);
  const xs = [1, -1, 0.5];
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));
  // Keras' GRU (reset_after=false) with sigmoid gates, in PyTorch's gate order.
  let h = new Array<number>(H).fill(0);
  for (const x of xs) {
    const rec = (row: number, v: number[]): number => v.reduce((s, hk, k) => s + wHh[k * 3 * H + row]! * hk, 0);
    const r = h.map((_, j) => sig(wIh[j]! * x + rec(j, h) + bHh[j]!));
    const z = h.map((_, j) => sig(wIh[H + j]! * x + rec(H + j, h) + bHh[H + j]!));
    const rh = h.map((hk, k) => r[k]! * hk);
    const n = h.map((_, j) => Math.tanh(wIh[2 * H + j]! * x + rec(2 * H + j, rh) + bHh[2 * H + j]!));
    h = h.map((hj, j) => (1 - z[j]!) * n[j]! + z[j]! * hj);
  }
  const ours = tf.tidy(
    () =>
      gruLayer(tf.tensor3d(xs, [xs.length, 1, 1]), {
        wIh: tf.tensor2d(wIh, [1, 3 * H]),
        wHh: tf.tensor2d(wHh, [H, 3 * H]),
        bIh: tf.zeros([3 * H]) as tf.Tensor1D,
        bHh: tf.tensor1d(bHh),
      })[xs.length - 1]!.arraySync()[0]!,
  );
  expect(Math.max(...ours.map((v, j) => Math.abs(v - h[j]!)))).toBeGreaterThan(0.01);
});

test.each(POOLINGS.map((p) => [p]))('the classifier’s logits match the float64 reference (pooling %s, 2 layers)', (pooling) => {
  const model = new GruClassifier({ inputSize: 3, hidden: 4, layers: 2, dropout: 0, classes: 3, pooling }, rngFor(11, 'init'));
  try {
    const B = 3;
    const T = 5;
    const lengths = Int32Array.from([5, 2, 3]);
    const rng = rngFor(11, 'x');
    const x = new Float32Array(B * T * 3);
    for (let b = 0; b < B; b++) for (let k = 0; k < lengths[b]! * 3; k++) x[b * T * 3 + k] = rng.uniformRange(-2, 2);

    const got = tf.tidy(() => model.logits(tf.tensor3d(x, [B, T, 3]), lengths).arraySync());
    const want = referenceLogits(referenceOf(model), x, B, T, lengths);
    for (let b = 0; b < B; b++) for (let c = 0; c < 3; c++) expect(got[b]![c]!).toBeCloseTo(want[b]![c]!, 5);
  } finally {
    model.dispose();
  }
});

test('initialisation follows PyTorch: every parameter ~ U(−1/√H, 1/√H), fixed by the seed', () => {
  const H = 16;
  const make = (seed: number): GruClassifier =>
    new GruClassifier({ inputSize: 3, hidden: H, layers: 2, dropout: 0, classes: 5, pooling: 'mean' }, rngFor(seed, 'init'));
  const a = make(1);
  const b = make(1);
  const c = make(2);
  try {
    const k = 1 / Math.sqrt(H);
    const all = a.getWeights();
    expect(all.length).toBe(a.parameterCount);
    expect(Math.max(...all)).toBeLessThanOrEqual(k);
    expect(Math.min(...all)).toBeGreaterThanOrEqual(-k);
    // A uniform on (−k, k) has mean 0 and standard deviation k/√3.
    const mean = all.reduce((s, v) => s + v, 0) / all.length;
    const sd = Math.sqrt(all.reduce((s, v) => s + (v - mean) ** 2, 0) / all.length);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(sd / (k / Math.sqrt(3))).toBeGreaterThan(0.95);
    expect(sd / (k / Math.sqrt(3))).toBeLessThan(1.05);
    expect(Buffer.from(b.getWeights().buffer).equals(Buffer.from(all.buffer))).toBe(true);
    expect(Buffer.from(c.getWeights().buffer).equals(Buffer.from(all.buffer))).toBe(false);
    expect(a.params.map((p) => `${p.name}:${p.shape.join('x')}`)).toEqual([
      'rnn.weight_ih_l0:3x48',
      'rnn.weight_hh_l0:16x48',
      'rnn.bias_ih_l0:48',
      'rnn.bias_hh_l0:48',
      'rnn.weight_ih_l1:16x48',
      'rnn.weight_hh_l1:16x48',
      'rnn.bias_ih_l1:48',
      'rnn.bias_hh_l1:48',
      'linear.weight:16x5',
      'linear.bias:5',
    ]);
  } finally {
    [a, b, c].forEach((m) => m.dispose());
  }
});
