import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../ml/backend';
import { Adam } from '../../ml/optim';
import { EarlyStopping, ReduceLROnPlateau } from '../../ml/schedule';

beforeAll(async () => {
  await initBackend('wasm');
});

/** torch.optim.Adam's single-tensor update, transcribed in float64. */
function torchAdam(p: number[], grads: number[][], lr: number, wd: number): number[] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((gRaw, s) => {
    const t = s + 1;
    p.forEach((pi, i) => {
      const g = gRaw[i]! + wd * pi;
      m[i] = m[i]! + (1 - b1) * (g - m[i]!);
      v[i] = v[i]! * b2 + (1 - b2) * g * g;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** t) + eps;
      p[i] = pi - (lr / (1 - b1 ** t)) * (m[i]! / denom);
    });
  });
  return p;
}

function runAdam(p0: number[], grads: number[][], lr: number, wd: number): { p: number[]; adam: Adam; variable: tf.Variable } {
  const variable = tf.variable(tf.tensor1d(p0));
  const adam = new Adam([variable], { lr, weightDecay: wd });
  for (const g of grads) tf.tidy(() => adam.applyGradients([tf.tensor1d(g)]));
  return { p: Array.from(variable.dataSync()), adam, variable };
}

test('Adam’s first step moves every weight by lr·sign(grad) (bias correction as torch does it)', () => {
  const { p, adam, variable } = runAdam([0.5, -1, 2], [[0.3, -2e-3, 40]], 0.1, 0);
  expect(p[0]).toBeCloseTo(0.4, 6);
  expect(p[1]).toBeCloseTo(-0.9, 5);
  expect(p[2]).toBeCloseTo(1.9, 6);
  adam.dispose();
  variable.dispose();
});

test('Adam matches torch.optim.Adam with L2 weight decay coupled into the gradient', () => {
  const p0 = [0.5, -1, 2, 0];
  const grads = [
    [0.3, -0.2, 1.5, 0],
    [0.1, 0.4, -0.5, 0],
    [-0.2, 0.1, 0.25, 0],
    [0.05, -0.3, 0.1, 0],
  ];
  const want = torchAdam([...p0], grads, 1e-2, 0.1);
  const { p, adam, variable } = runAdam(p0, grads, 1e-2, 0.1);
  p.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
  // A zero gradient still moves a nonzero weight: decay is part of the gradient, not AdamW's separate shrink.
  expect(p[3]).toBe(0);
  expect(Math.abs(p[2]! - torchAdam([...p0], grads, 1e-2, 0)[2]!)).toBeGreaterThan(1e-4);
  expect(adam.step).toBe(4);
  adam.dispose();
  variable.dispose();
});

test('Adam’s exported state resumes to the same bits as an uninterrupted run', () => {
  const grads = [
    [0.3, -0.2],
    [0.1, 0.4],
    [-0.2, 0.1],
    [0.7, -0.9],
  ];
  const straight = runAdam([1, 2], grads, 1e-3, 1e-5);

  const first = runAdam([1, 2], grads.slice(0, 2), 1e-3, 1e-5);
  const state = first.adam.exportState();
  const resumedVar = tf.variable(tf.tensor1d(first.variable.dataSync() as Float32Array));
  const resumed = new Adam([resumedVar], { lr: 1e-3, weightDecay: 1e-5 });
  resumed.importState(state);
  for (const g of grads.slice(2)) tf.tidy(() => resumed.applyGradients([tf.tensor1d(g)]));

  expect(Array.from(resumedVar.dataSync())).toEqual(straight.p);
  expect(resumed.exportState()).toEqual(straight.adam.exportState());
  for (const r of [straight, first]) {
    r.adam.dispose();
    r.variable.dispose();
  }
  resumed.dispose();
  resumedVar.dispose();
});

describe('ReduceLROnPlateau (torch semantics)', () => {
  test('halves the rate on the (patience+1)-th epoch in a row without improvement, then counts again', () => {
    const s = new ReduceLROnPlateau({ lr: 1e-3, factor: 0.5, patience: 2 });
    const lrs = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95].map((loss) => {
      s.step(loss);
      return s.lr;
    });
    // bad epochs after 0.9: 1, 2, 3 → reduce (counter restarts), 1, 2, 3 → reduce.
    expect(lrs).toEqual([1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4]);
  });

  test('an improvement smaller than the relative threshold 1e-4 counts as a bad epoch', () => {
    const s = new ReduceLROnPlateau({ lr: 1, factor: 0.5, patience: 0 });
    s.step(1.0);
    expect(s.step(0.99995)).toBe(true); // not < 1.0 · (1 − 1e-4)
    expect(s.lr).toBe(0.5);
    expect(s.step(0.9998)).toBe(false); // < 0.99990: an improvement, best moves
    expect(s.state().best).toBe(0.9998);
  });

  test('respects min_lr, and its state survives a JSON round trip', () => {
    const s = new ReduceLROnPlateau({ lr: 1, factor: 0.5, patience: 0, minLr: 0.3 });
    [1, 1, 1, 1].forEach((l) => s.step(l));
    expect(s.lr).toBe(0.3);
    const t = new ReduceLROnPlateau({ lr: 1, factor: 0.5, patience: 0, minLr: 0.3 });
    t.load(JSON.parse(JSON.stringify(s.state())));
    expect(t.state()).toEqual(s.state());
  });
});

describe('EarlyStopping (mltrainer semantics)', () => {
  test('stops once the loss has not improved for `patience` epochs and remembers the best epoch', () => {
    const es = new EarlyStopping(3, 0);
    const losses = [1.0, 0.8, 0.85, 0.8, 0.9];
    const improved = losses.map((l, i) => es.step(l, i + 1));
    expect(improved).toEqual([true, true, false, false, false]); // equal to the best is no improvement
    expect(es.shouldStop).toBe(true);
    expect(es.bestEpoch).toBe(2);
  });

  test('with a delta, only improvements larger than delta reset the counter', () => {
    const es = new EarlyStopping(2, 0.05);
    expect([1.0, 0.97, 0.9, 0.88].map((l, i) => es.step(l, i + 1))).toEqual([true, false, true, false]);
    expect(es.shouldStop).toBe(false);
    es.step(0.86, 5);
    expect(es.shouldStop).toBe(true);
    expect(es.bestEpoch).toBe(3);
  });

  test('a NaN loss never becomes the best', () => {
    const es = new EarlyStopping(2);
    es.step(1, 1);
    expect(es.step(NaN, 2)).toBe(false);
    expect(es.state().best).toBe(1);
  });
});
