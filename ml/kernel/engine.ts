import type { Batch } from '../batches';
import { concat } from '../arrays';
import { dropoutMask } from '../model';
import type { AdamState } from '../optim';
import type { Pooling } from '../pooling';
import type { Rng } from '../rng';
import { kernel, type Kernel } from './load';

export interface FusedModelShape {
  inputSize: number;
  hidden: number;
  layers: number;
  classes: number;
  dropout: number;
  pooling: Pooling;
  /** The longest batch (timesteps) and the largest batch size the buffers are sized for. */
  maxSteps: number;
  maxBatch: number;
}

/** torch.optim.Adam's settings (see ml/optim.ts). */
export interface AdamSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

// gru.c's model_buffer() selectors.
const BUF = { params: 0, grads: 1, m: 2, v: 3, x: 4, lengths: 5, labels: 6, masks: 7, logits: 8 } as const;

/**
 * A whole training step in one kernel call: GRU forward over the batch, pooling, head, softmax
 * cross-entropy, backward through time, Adam — on one flat parameter vector in the layout of
 * GruClassifier.getWeights() (the checkpoint's), with Adam's moments beside it. At ~3 ms a step
 * the dozen small TensorFlow.js ops around a fused GRU (head, loss, Adam: ~60 dispatches with
 * their gradients) would cost as much as the GRU itself, so they are in the kernel too.
 *
 * The state lives in the kernel's memory during training; `exportState`/`loadState` move it to
 * and from the TensorFlow.js model and optimizer, which remain what checkpoints are written from.
 */
export class FusedTrainer {
  readonly parameterCount: number;
  readonly k: Kernel;
  private readonly model: number;
  /** The kernel's allocation mark before and after this trainer's buffers. */
  private readonly marks: [number, number];
  /** The kernel's index of the pooling variant (checked when the trainer is made). */
  private readonly poolMode: number;
  private adamStep = 0;
  private disposed = false;

  constructor(
    readonly shape: FusedModelShape,
    readonly adam: AdamSettings,
    k: Kernel = kernel(),
  ) {
    const { inputSize: I, hidden: H, layers: L, classes: C, maxSteps, maxBatch } = shape;
    for (const [name, v] of Object.entries({ inputSize: I, hidden: H, layers: L, classes: C, maxSteps, maxBatch })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`FusedTrainer: ${name} must be a positive integer, got ${v}`);
    }
    this.k = k;
    this.poolMode = k.poolMode(shape.pooling);
    this.parameterCount = this.k.fn.model_param_count(I, H, L, C);
    const before = this.k.mark();
    this.model = this.k.fn.model_create(I, H, L, C, maxSteps, maxBatch);
    if (this.model === 0) {
      this.k.release(before);
      throw new Error(`FusedTrainer: out of WebAssembly memory for ${maxSteps} steps × ${maxBatch} × hidden ${H}`);
    }
    this.marks = [before, this.k.mark()];
  }

  /**
   * Gives the buffers back when they are the kernel's newest allocation (the usual case: one
   * trainer at a time). The kernel's allocator is a stack; an older trainer disposed while a
   * newer one lives keeps its memory until the process ends.
   */
  dispose(): void {
    if (!this.disposed && this.k.mark() === this.marks[1]) this.k.release(this.marks[0]);
    this.disposed = true;
  }

  private buffer(which: keyof typeof BUF, count: number): Float32Array {
    return this.k.f32(this.k.fn.model_buffer(this.model, BUF[which]), count);
  }

  /** Weights (getWeights layout) and the optimizer's state, e.g. from a checkpoint. */
  loadState(weights: Float32Array, adam: AdamState): void {
    const P = this.parameterCount;
    if (weights.length !== P) throw new Error(`FusedTrainer: ${weights.length} weights for ${P} parameters`);
    const m = concat(adam.m);
    const v = concat(adam.v);
    if (m.length !== P || v.length !== P) throw new Error(`FusedTrainer: Adam moments of ${m.length}/${v.length} values for ${P} parameters`);
    this.buffer('params', P).set(weights);
    this.buffer('m', P).set(m);
    this.buffer('v', P).set(v);
    this.adamStep = adam.step;
  }

  get weights(): Float32Array {
    return this.buffer('params', this.parameterCount).slice();
  }

  /** Adam's state split per parameter (`sizes` in GruClassifier.params order), as Adam.exportState. */
  adamState(sizes: number[]): AdamState {
    const split = (flat: Float32Array): Float32Array[] => {
      let at = 0;
      return sizes.map((n) => flat.slice(at, (at += n)));
    };
    return { step: this.adamStep, m: split(this.buffer('m', this.parameterCount)), v: split(this.buffer('v', this.parameterCount)) };
  }

  private loadBatch(batch: Batch): void {
    const { size: B, steps: T, features } = batch;
    if (features !== this.shape.inputSize) throw new Error(`FusedTrainer: batch has ${features} features, model expects ${this.shape.inputSize}`);
    if (T > this.shape.maxSteps || B > this.shape.maxBatch) {
      throw new Error(`FusedTrainer: batch ${B} × ${T} steps exceeds the ${this.shape.maxBatch} × ${this.shape.maxSteps} it was sized for`);
    }
    for (let b = 0; b < B; b++) {
      const len = batch.lengths[b] as number;
      const y = batch.labels[b] as number;
      if (!(len >= 1 && len <= T)) throw new Error(`FusedTrainer: length ${len} of sequence ${b} is outside 1..${T}`);
      if (!(y >= 0 && y < this.shape.classes)) throw new Error(`FusedTrainer: label ${y} outside 0..${this.shape.classes - 1}`);
    }
    this.buffer('x', batch.x.length).set(batch.x);
    this.k.i32(this.k.fn.model_buffer(this.model, BUF.lengths), B).set(batch.lengths);
    this.k.i32(this.k.fn.model_buffer(this.model, BUF.labels), B).set(batch.labels);
  }

  /** Draws the inter-layer dropout masks in the order GruClassifier.logits draws them. */
  private loadMasks(batch: Batch, dropoutRng: Rng | undefined): boolean {
    const { layers, dropout, hidden } = this.shape;
    if (dropoutRng === undefined || dropout <= 0 || layers < 2) return false;
    const size = batch.steps * batch.size * hidden;
    const masks = this.buffer('masks', (layers - 1) * size);
    for (let l = 0; l < layers - 1; l++) masks.set(dropoutMask(dropoutRng, size, dropout), l * size);
    return true;
  }

  /** The batch's loss and dLoss/dparams (getWeights layout), without changing anything. */
  gradients(batch: Batch, dropoutRng?: Rng): { loss: number; grads: Float32Array } {
    this.loadBatch(batch);
    const dropout = this.loadMasks(batch, dropoutRng);
    const loss = this.k.fn.model_forward_backward(this.model, batch.steps, batch.size, this.poolMode, dropout ? 1 : 0);
    return { loss, grads: this.buffer('grads', this.parameterCount).slice() };
  }

  /** One optimisation step (forward, backward, Adam at learning rate `lr`); returns the batch's loss. */
  step(batch: Batch, lr: number, dropoutRng?: Rng): number {
    this.loadBatch(batch);
    const dropout = this.loadMasks(batch, dropoutRng);
    const loss = this.k.fn.model_forward_backward(this.model, batch.steps, batch.size, this.poolMode, dropout ? 1 : 0);
    this.adamStep += 1;
    const t = this.adamStep;
    const { beta1, beta2, eps, weightDecay } = this.adam;
    // Bias corrections in float64 on the host, as torch (and ml/optim.ts) compute them.
    this.k.fn.model_adam(this.model, -(lr / (1 - beta1 ** t)), Math.sqrt(1 - beta2 ** t), 1 - beta1, beta2, 1 - beta2, eps, weightDecay);
    return loss;
  }

  /** Loss and accuracy of one batch, without dropout; argmax ties go to the first class, as torch.argmax. */
  evaluate(batch: Batch): { loss: number; accuracy: number } {
    this.loadBatch(batch);
    const loss = this.k.fn.model_evaluate(this.model, batch.steps, batch.size, this.poolMode);
    const C = this.shape.classes;
    const logits = this.buffer('logits', batch.size * C);
    let correct = 0;
    for (let b = 0; b < batch.size; b++) {
      let arg = 0;
      for (let c = 1; c < C; c++) if ((logits[b * C + c] as number) > (logits[b * C + arg] as number)) arg = c;
      if (arg === batch.labels[b]) correct += 1;
    }
    return { loss, accuracy: correct / batch.size };
  }
}
