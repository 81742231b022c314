import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../ml/backend';
import type { Batch } from '../../ml/batches';
import { gruLayer, type GruLayerWeights } from '../../ml/gru';
import { fusedGruPooled, fusedGruSequence } from '../../ml/kernel/gru-op';
import { KERNEL_KINDS, kernelAvailable, type KernelKind } from '../../ml/kernel/load';
import { crossEntropy, GruClassifier, type GruClassifierConfig } from '../../ml/model';
import { POOLINGS, type Pooling } from '../../ml/pooling';
import { rngFor, type Rng } from '../../ml/rng';
import { referenceGruLayer } from '../ml/reference-model';
import { randomBatch, relativeError } from './helpers';

/**
 * The fused GRU custom op against the op-by-op TensorFlow.js GRU it replaces (PyTorch's
 * equations, differentiated by tfjs autodiff): outputs and every gradient within 1e-5 relative,
 * with the committed WebAssembly kernel and, where it was built, the native one.
 */
const KINDS = KERNEL_KINDS.filter((k) => kernelAvailable(k));
const TOLERANCE = 1e-5;

beforeAll(async () => {
  await initBackend('wasm');
});

interface Run {
  loss: number;
  logits: Float32Array;
  grads: Map<string, Float32Array>;
}

/** Loss, logits and the gradient of every parameter, with the GRU run `gru`. */
function run(cfg: GruClassifierConfig, gru: 'ops' | 'fused', batch: Batch, dropoutRng?: () => Rng): Run {
  const model = new GruClassifier({ ...cfg, gru }, rngFor(3, 'op-init', cfg.pooling, cfg.layers));
  // Larger-than-default weights so the gates leave their linear regime and errors would show.
  model.setWeights(model.getWeights().map((v) => v * 2));
  try {
    let out: Run | undefined;
    tf.tidy(() => {
      const x = tf.tensor3d(batch.x, [batch.size, batch.steps, batch.features]);
      let logits = new Float32Array();
      const { value, grads } = tf.variableGrads(() => {
        const l = model.logits(x, batch.lengths, dropoutRng?.());
        logits = Float32Array.from(l.dataSync());
        return crossEntropy(l, batch.labels);
      }, model.variables);
      out = {
        loss: value.dataSync()[0] as number,
        logits,
        grads: new Map(model.params.map((p) => [p.name, Float32Array.from(grads[p.variable.name]!.dataSync())])),
      };
    });
    return out!;
  } finally {
    model.dispose();
  }
}

function expectSame(fused: Run, ops: Run): void {
  expect(Math.abs(fused.loss - ops.loss) / Math.abs(ops.loss)).toBeLessThan(TOLERANCE);
  expect(relativeError(fused.logits, ops.logits)).toBeLessThan(TOLERANCE);
  expect([...fused.grads.keys()]).toEqual([...ops.grads.keys()]);
  for (const [name, want] of ops.grads) {
    const err = relativeError(fused.grads.get(name)!, want);
    if (!(err < TOLERANCE)) throw new Error(`${name}: fused gradient differs from autodiff by ${err.toExponential(2)} (relative)`);
  }
  // The comparison is not between zeros.
  expect(Math.max(...[...ops.grads.values()].map((g) => Math.max(...g.map(Math.abs))))).toBeGreaterThan(0.05);
}

describe.each<[KernelKind]>(KINDS.map((k) => [k]))('%s kernel', (kind) => {
  // The op takes the process's kernel, which SWEEPS_KERNEL chooses.
  const saved = process.env.SWEEPS_KERNEL;
  beforeEach(() => {
    process.env.SWEEPS_KERNEL = kind;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.SWEEPS_KERNEL;
    else process.env.SWEEPS_KERNEL = saved;
  });

  describe.each<[string, number, number, number, number]>([
    // [label, B, T, hidden, layers]: odd sizes exercise every vector tail (B·H = 65, H % 8 = 5).
    ['odd sizes', 5, 7, 13, 1],
    ['odd sizes, 2 layers', 5, 7, 13, 2],
    ['the seed study’s sizes', 32, 20, 64, 1],
  ])('fused GRU op vs op-by-op tfjs (%s)', (_label, B, T, hidden, layers) => {
    test.each(POOLINGS.map((p) => [p]))('%s pooling: logits, loss and all gradients within 1e-5, variable lengths', (pooling) => {
      const cfg: GruClassifierConfig = { inputSize: 3, hidden, layers, dropout: 0, classes: 6, pooling: pooling as Pooling };
      const batch = randomBatch(`${pooling}-${B}-${T}-${hidden}`, B, T, 3, 6);
      expect(new Set(batch.lengths).size).toBeGreaterThan(2); // lengths really vary
      expectSame(run(cfg, 'fused', batch), run(cfg, 'ops', batch));
    });
  });

  test('with inter-layer dropout, the fused op follows the same seeded masks', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 9, layers: 3, dropout: 0.4, classes: 4, pooling: 'mean-valid' };
    const batch = randomBatch('dropout', 6, 8, 3, 4);
    const masks = (): Rng => rngFor(9, 'dropout', 1, 0);
    expectSame(run(cfg, 'fused', batch, masks), run(cfg, 'ops', batch, masks));
  });

  function layerWeights(rng: Rng, I: number, H: number): GruLayerWeights {
    return {
      wIh: tf.tensor2d(rng.fillUniform(new Float32Array(I * 3 * H), -0.8, 0.8), [I, 3 * H]),
      wHh: tf.tensor2d(rng.fillUniform(new Float32Array(H * 3 * H), -0.8, 0.8), [H, 3 * H]),
      bIh: tf.tensor1d(rng.fillUniform(new Float32Array(3 * H), -0.5, 0.5)),
      bHh: tf.tensor1d(rng.fillUniform(new Float32Array(3 * H), -0.5, 0.5)),
    };
  }

  test('the sequence op: every step’s output, and the gradient with respect to its input, as the op-by-op layer', () => {
    const [T, B, I, H] = [6, 3, 4, 7];
    const rng = rngFor(4, 'sequence-op');
    tf.tidy(() => {
      const w = layerWeights(rng, I, H);
      const x = tf.tensor3d(rng.fillUniform(new Float32Array(T * B * I), -2, 2), [T, B, I]);
      const probe = tf.tensor3d(rng.fillUniform(new Float32Array(T * B * H), -1, 1), [T, B, H]);
      const ops = (xs: tf.Tensor3D): tf.Tensor3D => tf.stack(gruLayer(xs, w)) as tf.Tensor3D;
      const fused = (xs: tf.Tensor3D): tf.Tensor3D => fusedGruSequence(xs, w);
      expect(relativeError(fused(x).dataSync(), ops(x).dataSync())).toBeLessThan(TOLERANCE);

      // d(Σ probe ⊙ h)/d(x, weights): every input of the op.
      const grad = (f: (xs: tf.Tensor3D) => tf.Tensor3D) =>
        tf.grads((xs: tf.Tensor, _wIh: tf.Tensor, _wHh: tf.Tensor, _bIh: tf.Tensor, _bHh: tf.Tensor) => tf.sum(tf.mul(f(xs as tf.Tensor3D), probe)));
      const args = [x, w.wIh, w.wHh, w.bIh, w.bHh];
      const want = grad(ops)(args);
      const got = grad(fused)(args);
      want.forEach((g, i) => expect(relativeError(got[i]!.dataSync(), g.dataSync())).toBeLessThan(TOLERANCE));
    });
  });

  test('the forward pass matches a float64 implementation of PyTorch’s equations', () => {
    const [T, B, I, H] = [9, 4, 3, 6];
    const rng = rngFor(6, 'float64');
    const xs = rng.fillUniform(new Float32Array(T * B * I), -2, 2);
    const raw = [I * 3 * H, H * 3 * H, 3 * H, 3 * H].map((n) => rng.fillUniform(new Float32Array(n), -0.9, 0.9));
    const got = tf.tidy(() => {
      const w: GruLayerWeights = {
        wIh: tf.tensor2d(raw[0]!, [I, 3 * H]),
        wHh: tf.tensor2d(raw[1]!, [H, 3 * H]),
        bIh: tf.tensor1d(raw[2]!),
        bHh: tf.tensor1d(raw[3]!),
      };
      return fusedGruSequence(tf.tensor3d(xs, [T, B, I]), w).dataSync();
    });
    const nested = Array.from({ length: T }, (_, t) => Array.from({ length: B }, (_, b) => Array.from({ length: I }, (_, i) => xs[(t * B + b) * I + i]!)));
    const want = referenceGruLayer(nested, ...(raw.map((a) => Float64Array.from(a)) as [Float64Array, Float64Array, Float64Array, Float64Array]), I, H).flat(2);
    expect(relativeError(got, want)).toBeLessThan(2e-6);
  });

  test('pooling checks the lengths, naming the bad one', () => {
    tf.tidy(() => {
      const w = layerWeights(rngFor(1, 'lengths'), 3, 4);
      const x = tf.zeros([5, 2, 3]) as tf.Tensor3D;
      expect(() => fusedGruPooled(x, w, Int32Array.from([5, 6]), 'max')).toThrow('length 6 of sequence 1 is outside 1..5');
      expect(() => fusedGruPooled(x, w, Int32Array.from([5]), 'max')).toThrow('1 lengths for a batch of 2');
    });
  });

  test('no tensors are left behind by forward, backward, or a forward without a gradient', () => {
    const cfg: GruClassifierConfig = { inputSize: 3, hidden: 8, layers: 2, dropout: 0, classes: 4, pooling: 'max', gru: 'fused' };
    const model = new GruClassifier(cfg, rngFor(1, 'leak'));
    const batch = randomBatch('leak', 4, 6, 3, 4);
    try {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const x = tf.tensor3d(batch.x, [4, 6, 3]);
        tf.variableGrads(() => crossEntropy(model.logits(x, batch.lengths), batch.labels), model.variables);
        model.logits(x, batch.lengths);
      });
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });
});
