import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../ml/backend';
import { crossEntropy, dropoutMask, GruClassifier, type GruClassifierConfig } from '../../ml/model';
import { POOLINGS, type Pooling } from '../../ml/pooling';
import { rngFor, type Rng } from '../../ml/rng';
import { referenceLogits, referenceLoss, type ReferenceModel } from './reference-model';

beforeAll(async () => {
  await initBackend('wasm');
});

interface Case {
  model: GruClassifier;
  x: Float32Array;
  B: number;
  T: number;
  lengths: Int32Array;
  labels: Int32Array;
}

function makeCase(pooling: Pooling, layers: number, dropout = 0): Case {
  const cfg: GruClassifierConfig = { inputSize: 2, hidden: 3, layers, dropout, classes: 3, pooling };
  // Larger-than-default weights so gates are away from their linear regime and errors would show.
  const model = new GruClassifier(cfg, rngFor(5, 'grad-init', pooling, layers));
  model.setWeights(model.getWeights().map((v) => v * 2.5));
  const B = 3;
  const T = 4;
  const lengths = Int32Array.from([4, 2, 3]);
  const rng = rngFor(5, 'grad-x');
  const x = new Float32Array(B * T * 2);
  for (let b = 0; b < B; b++) for (let k = 0; k < lengths[b]! * 2; k++) x[b * T * 2 + k] = rng.uniformRange(-1.5, 1.5);
  return { model, x, B, T, lengths, labels: Int32Array.from([2, 0, 1]) };
}

function tfjsGradients(c: Case, dropoutRng?: () => Rng): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  tf.tidy(() => {
    const x = tf.tensor3d(c.x, [c.B, c.T, 2]);
    const { grads } = tf.variableGrads(() => crossEntropy(c.model.logits(x, c.lengths, dropoutRng?.()), c.labels), c.model.variables);
    for (const p of c.model.params) out.set(p.name, Float32Array.from(grads[p.variable.name]!.dataSync()));
  });
  return out;
}

/** Central differences of the float64 reference loss: accurate to ~1e-9, so it judges float32 autodiff. */
function referenceGradients(c: Case, masks: Float32Array[] = []): Map<string, Float64Array> {
  const ref: ReferenceModel = {
    ...c.model.config,
    params: new Map(c.model.params.map((p) => [p.name, Float64Array.from(p.variable.dataSync())])),
  };
  const loss = (): number => referenceLoss(referenceLogits(ref, c.x, c.B, c.T, c.lengths, masks), c.labels);
  const h = 1e-6;
  const out = new Map<string, Float64Array>();
  for (const [name, values] of ref.params) {
    const g = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const keep = values[i]!;
      values[i] = keep + h;
      const up = loss();
      values[i] = keep - h;
      const down = loss();
      values[i] = keep;
      g[i] = (up - down) / (2 * h);
    }
    out.set(name, g);
  }
  return out;
}

function expectClose(got: Map<string, Float32Array>, want: Map<string, Float64Array>): void {
  let compared = 0;
  let largest = 0;
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g).toHaveLength(w.length);
    w.forEach((wi, i) => {
      const err = Math.abs(g[i]! - wi);
      if (err > 2e-5 + 1e-3 * Math.abs(wi)) throw new Error(`${name}[${i}]: autodiff ${g[i]} vs finite differences ${wi}`);
      largest = Math.max(largest, Math.abs(wi));
      compared += 1;
    });
  }
  expect(compared).toBeGreaterThan(50);
  expect(largest).toBeGreaterThan(0.05); // the comparison is not between zeros
}

test.each(POOLINGS.map((p) => [p]))('autodiff gradients of the loss agree with finite differences for every parameter (pooling %s, 2 layers)', (pooling) => {
  const c = makeCase(pooling, 2);
  try {
    expectClose(tfjsGradients(c), referenceGradients(c));
  } finally {
    c.model.dispose();
  }
});

test('with inter-layer dropout the gradients follow the same (seeded) masks', () => {
  const c = makeCase('mean-valid', 2, 0.4);
  try {
    const stream = (): Rng => rngFor(9, 'dropout', 1, 0);
    const mask = dropoutMask(stream(), c.T * c.B * 3, 0.4);
    expect(mask.filter((v) => v === 0).length).toBeGreaterThan(0);
    expect(mask.filter((v) => v !== 0).every((v) => Math.abs(v - 1 / 0.6) < 1e-6)).toBe(true);
    expectClose(tfjsGradients(c, stream), referenceGradients(c, [mask]));
  } finally {
    c.model.dispose();
  }
});

test('central differences of the tfjs loss itself (float32) agree with autodiff on a few weights', () => {
  const c = makeCase('last-valid', 1);
  try {
    const grads = tfjsGradients(c);
    const lossNow = (): number => tf.tidy(() => crossEntropy(c.model.logits(tf.tensor3d(c.x, [c.B, c.T, 2]), c.lengths), c.labels).dataSync()[0]!);
    // float32 loss: a step of 1e-2 balances truncation (~h²) against rounding (~1e-7/h).
    const h = 1e-2;
    const probes: Array<[string, number]> = [
      ['rnn.weight_ih_l0', 4],
      ['rnn.weight_hh_l0', 7],
      ['rnn.bias_hh_l0', 8],
      ['linear.weight', 2],
    ];
    for (const [name, index] of probes) {
      const p = c.model.params.find((q) => q.name === name)!;
      const base = Float32Array.from(p.variable.dataSync());
      const at = (delta: number): number => {
        const v = Float32Array.from(base);
        v[index] = base[index]! + delta;
        tf.tidy(() => p.variable.assign(tf.tensor(v, p.shape)));
        return lossNow();
      };
      const fd = (at(h) - at(-h)) / (2 * h);
      tf.tidy(() => p.variable.assign(tf.tensor(base, p.shape)));
      const ad = grads.get(name)![index]!;
      expect(Math.abs(ad)).toBeGreaterThan(1e-3);
      expect(Math.abs(fd - ad)).toBeLessThan(2e-3 + 0.02 * Math.abs(ad));
    }
  } finally {
    c.model.dispose();
  }
});
