import * as tf from '@tensorflow/tfjs';
import { gruLayer, type GruLayerWeights } from './gru';
import { fusedGruPooled, fusedGruSequence } from './kernel/gru-op';
import { poolOverTime, type Pooling } from './pooling';
import type { Rng } from './rng';

export interface GruClassifierConfig {
  inputSize: number;
  hidden: number;
  layers: number;
  /** Applied to every GRU layer's outputs except the last layer's, in training only (PyTorch's GRU dropout). */
  dropout: number;
  classes: number;
  pooling: Pooling;
  /**
   * How the GRU layers run: `ops` (default), op by op in TensorFlow.js (ml/gru.ts, the tested
   * reference); `fused`, each layer's whole sequence as one custom op with its own gradient
   * (ml/kernel/gru-op.ts). Same equations, same parameters; results equal up to rounding.
   */
  gru?: 'ops' | 'fused';
}

export interface ModelParam {
  /** PyTorch's parameter name; GRU weights are stored transposed (see GruLayerWeights). */
  name: string;
  shape: number[];
  variable: tf.Variable;
}

/**
 * Inverted-dropout mask (0 or 1/(1−p)) drawn in index order from `rng`. Masks come from the
 * trainer's (seed, epoch, batch) stream, not tfjs' own RNG, so resumed runs repeat them.
 */
export function dropoutMask(rng: Rng, size: number, p: number): Float32Array {
  const mask = new Float32Array(size);
  const keep = 1 / (1 - p);
  for (let i = 0; i < size; i++) mask[i] = rng.uniform() < p ? 0 : keep;
  return mask;
}

/** U(−k, k) drawn in PyTorch's row-major [out, in] order, returned transposed to [in, out]. */
function uniformTransposed(rng: Rng, out: number, inp: number, k: number): Float32Array {
  const torchOrder = rng.fillUniform(new Float32Array(out * inp), -k, k);
  const ours = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inp; i++) ours[i * out + o] = torchOrder[o * inp + i] as number;
  }
  return ours;
}

/** GRU (PyTorch semantics) → pooling over time → linear head to class logits. */
export class GruClassifier {
  readonly params: ModelParam[] = [];
  private readonly layerWeights: GruLayerWeights[] = [];
  private readonly headWeight: tf.Variable; // [H, classes]
  private readonly headBias: tf.Variable; // [classes]

  /**
   * PyTorch's initialisation: every GRU weight and bias ~ U(−1/√H, 1/√H); the Linear head's
   * weight and bias ~ U(−1/√H, 1/√H) too (its fan_in is H). Drawn from `rng` in PyTorch's
   * parameter order (weight_ih, weight_hh, bias_ih, bias_hh per layer, then the head).
   */
  constructor(
    readonly config: GruClassifierConfig,
    rng: Rng,
  ) {
    const { inputSize, hidden: H, layers, classes, dropout } = config;
    for (const [name, v] of Object.entries({ inputSize, hidden: H, layers, classes })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`GruClassifier: ${name} must be a positive integer, got ${v}`);
    }
    if (!(dropout >= 0 && dropout < 1)) throw new Error(`GruClassifier: dropout must be in [0, 1), got ${dropout}`);

    const k = 1 / Math.sqrt(H);
    for (let l = 0; l < layers; l++) {
      const inp = l === 0 ? inputSize : H;
      const wIh = this.add(`rnn.weight_ih_l${l}`, [inp, 3 * H], uniformTransposed(rng, 3 * H, inp, k));
      const wHh = this.add(`rnn.weight_hh_l${l}`, [H, 3 * H], uniformTransposed(rng, 3 * H, H, k));
      const bIh = this.add(`rnn.bias_ih_l${l}`, [3 * H], rng.fillUniform(new Float32Array(3 * H), -k, k));
      const bHh = this.add(`rnn.bias_hh_l${l}`, [3 * H], rng.fillUniform(new Float32Array(3 * H), -k, k));
      this.layerWeights.push({
        wIh: wIh as tf.Variable<tf.Rank.R2>,
        wHh: wHh as tf.Variable<tf.Rank.R2>,
        bIh: bIh as tf.Variable<tf.Rank.R1>,
        bHh: bHh as tf.Variable<tf.Rank.R1>,
      });
    }
    this.headWeight = this.add('linear.weight', [H, classes], uniformTransposed(rng, classes, H, k));
    this.headBias = this.add('linear.bias', [classes], rng.fillUniform(new Float32Array(classes), -k, k));
  }

  private add(name: string, shape: number[], values: Float32Array): tf.Variable {
    // No tfjs variable name: names are global to the engine and would collide between models.
    const initial = tf.tensor(values, shape, 'float32');
    const variable = tf.variable(initial, true);
    initial.dispose();
    this.params.push({ name, shape, variable });
    return variable;
  }

  get variables(): tf.Variable[] {
    return this.params.map((p) => p.variable);
  }

  get parameterCount(): number {
    return this.params.reduce((sum, p) => sum + p.variable.size, 0);
  }

  /**
   * Class logits [B, classes] for a batch-first padded batch x [B, T, features] whose
   * sequence b has `lengths[b]` valid steps. `dropoutRng` switches on training-mode
   * dropout (only meaningful with dropout > 0 and layers > 1).
   */
  logits(x: tf.Tensor3D, lengths: Int32Array, dropoutRng?: Rng): tf.Tensor2D {
    const { dropout, layers, pooling } = this.config;
    let input: tf.Tensor3D = tf.transpose(x, [1, 0, 2]);
    if (this.config.gru === 'fused') {
      for (let l = 0; l < layers - 1; l++) {
        input = fusedGruSequence(input, this.layerWeights[l] as GruLayerWeights);
        if (dropoutRng !== undefined && dropout > 0) {
          input = tf.mul(input, tf.tensor(dropoutMask(dropoutRng, input.size, dropout), input.shape));
        }
      }
      const pooled = fusedGruPooled(input, this.layerWeights[layers - 1] as GruLayerWeights, lengths, pooling);
      return tf.add(tf.matMul(pooled, this.headWeight as tf.Tensor2D), this.headBias);
    }
    let steps: tf.Tensor2D[] = [];
    for (let l = 0; l < layers; l++) {
      steps = gruLayer(input, this.layerWeights[l] as GruLayerWeights);
      if (l < layers - 1) {
        input = tf.stack(steps) as tf.Tensor3D;
        if (dropoutRng !== undefined && dropout > 0) {
          input = tf.mul(input, tf.tensor(dropoutMask(dropoutRng, input.size, dropout), input.shape));
        }
      }
    }
    const pooled = poolOverTime(steps, lengths, pooling);
    return tf.add(tf.matMul(pooled, this.headWeight as tf.Tensor2D), this.headBias);
  }

  /** All parameters, concatenated in `params` order (the checkpoint layout). */
  getWeights(): Float32Array {
    const out = new Float32Array(this.parameterCount);
    let offset = 0;
    for (const p of this.params) {
      out.set(p.variable.dataSync() as Float32Array, offset);
      offset += p.variable.size;
    }
    return out;
  }

  setWeights(values: Float32Array): void {
    if (values.length !== this.parameterCount) {
      throw new Error(`setWeights: got ${values.length} values for ${this.parameterCount} parameters`);
    }
    let offset = 0;
    for (const p of this.params) {
      const slice = values.slice(offset, offset + p.variable.size);
      tf.tidy(() => p.variable.assign(tf.tensor(slice, p.shape, 'float32')));
      offset += p.variable.size;
    }
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
  }
}

/** Mean cross-entropy over the batch (torch.nn.CrossEntropyLoss with its defaults). */
export function crossEntropy(logits: tf.Tensor2D, labels: Int32Array): tf.Scalar {
  const [B, C] = logits.shape;
  const oneHot = new Float32Array(B * C);
  for (let b = 0; b < B; b++) {
    const y = labels[b] as number;
    if (!(y >= 0 && y < C)) throw new Error(`crossEntropy: label ${y} outside 0..${C - 1}`);
    oneHot[b * C + y] = 1;
  }
  const logLikelihood = tf.sum(tf.mul(tf.logSoftmax(logits), tf.tensor2d(oneHot, [B, C])), 1);
  return tf.neg(tf.mean(logLikelihood)) as tf.Scalar;
}
