import * as tf from '@tensorflow/tfjs';

export interface AdamOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  /** L2 penalty added to the gradient (torch.optim.Adam's weight_decay), not AdamW's decoupled decay. */
  weightDecay?: number;
}

/** Optimizer state for checkpoints: first and second moments per parameter, and the step count. */
export interface AdamState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

function zerosVariable(like: tf.Tensor): tf.Variable {
  const zeros = tf.zerosLike(like);
  const variable = tf.variable(zeros, false);
  zeros.dispose();
  return variable;
}

/**
 * `torch.optim.Adam` (single-tensor path, amsgrad off) for tfjs variables:
 *   g ← grad + wd·p;  m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²
 *   p ← p − lr/(1−β1^t) · m / (√v / √(1−β2^t) + eps)
 * Bias corrections are computed in float64 on the host, as torch does with Python floats.
 * tf.train.adam differs (eps inside the bias-corrected sqrt, no L2 coupling), hence our own.
 */
export class Adam {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private stepCount = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];

  constructor(
    private readonly params: tf.Variable[],
    options: AdamOptions,
  ) {
    this.lr = options.lr;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.m = params.map(zerosVariable);
    this.v = params.map(zerosVariable);
  }

  get step(): number {
    return this.stepCount;
  }

  /** One update from `grads`, given in the order of the constructor's `params`. */
  applyGradients(grads: tf.Tensor[]): void {
    if (grads.length !== this.params.length) {
      throw new Error(`Adam: ${grads.length} gradients for ${this.params.length} parameters`);
    }
    this.stepCount += 1;
    const t = this.stepCount;
    const stepSize = this.lr / (1 - this.beta1 ** t);
    const bias2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    tf.tidy(() => {
      const oneMinusB1 = tf.scalar(1 - this.beta1);
      const b2 = tf.scalar(this.beta2);
      const oneMinusB2 = tf.scalar(1 - this.beta2);
      const wd = tf.scalar(this.weightDecay);
      const eps = tf.scalar(this.eps);
      const negStep = tf.scalar(-stepSize);
      const b2Sqrt = tf.scalar(bias2Sqrt);
      this.params.forEach((p, i) => {
        const m = this.m[i] as tf.Variable;
        const v = this.v[i] as tf.Variable;
        let g = grads[i] as tf.Tensor;
        if (this.weightDecay !== 0) g = tf.add(g, tf.mul(p, wd));
        const mNew = tf.add(m, tf.mul(tf.sub(g, m), oneMinusB1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.mul(g, g), oneMinusB2));
        const denom = tf.add(tf.div(tf.sqrt(vNew), b2Sqrt), eps);
        m.assign(mNew);
        v.assign(vNew);
        p.assign(tf.add(p, tf.mul(tf.div(mNew, denom), negStep)));
      });
    });
  }

  exportState(): AdamState {
    return {
      step: this.stepCount,
      m: this.m.map((t) => Float32Array.from(t.dataSync() as Float32Array)),
      v: this.v.map((t) => Float32Array.from(t.dataSync() as Float32Array)),
    };
  }

  importState(state: AdamState): void {
    const check = (moments: Float32Array[], what: string): void => {
      if (moments.length !== this.params.length) throw new Error(`Adam.importState: ${moments.length} ${what} tensors for ${this.params.length} parameters`);
      moments.forEach((arr, i) => {
        const size = (this.params[i] as tf.Variable).size;
        if (arr.length !== size) throw new Error(`Adam.importState: ${what}[${i}] has ${arr.length} values, parameter has ${size}`);
      });
    };
    check(state.m, 'm');
    check(state.v, 'v');
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`Adam.importState: bad step ${state.step}`);
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        (this.m[i] as tf.Variable).assign(tf.tensor(state.m[i] as Float32Array, p.shape, 'float32'));
        (this.v[i] as tf.Variable).assign(tf.tensor(state.v[i] as Float32Array, p.shape, 'float32'));
      });
    });
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
