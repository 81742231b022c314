/**
 * Epoch-level training control, as plain state machines with JSON-serialisable state so a
 * resumed run continues with exactly the counters an uninterrupted run would have.
 * JSON has no Infinity, so "no best yet" is `null`.
 */

export interface PlateauOptions {
  lr: number;
  mode?: 'min' | 'max';
  factor?: number;
  patience?: number;
  threshold?: number;
  thresholdMode?: 'rel' | 'abs';
  cooldown?: number;
  minLr?: number;
  eps?: number;
}

export interface PlateauState {
  lr: number;
  best: number | null;
  numBadEpochs: number;
  cooldownCounter: number;
  lastEpoch: number;
}

/**
 * `torch.optim.lr_scheduler.ReduceLROnPlateau` with torch's defaults (threshold 1e-4 'rel',
 * cooldown 0, min_lr 0, eps 1e-8). Note torch's off-by-one: the rate drops only when the
 * number of bad epochs *exceeds* `patience`, i.e. on the (patience+1)-th epoch in a row
 * without an improvement of more than the threshold; the counter then restarts.
 */
export class ReduceLROnPlateau {
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minLr: number;
  readonly eps: number;
  private s: PlateauState;

  constructor(options: PlateauOptions) {
    this.mode = options.mode ?? 'min';
    this.factor = options.factor ?? 0.1;
    this.patience = options.patience ?? 10;
    this.threshold = options.threshold ?? 1e-4;
    this.thresholdMode = options.thresholdMode ?? 'rel';
    this.cooldown = options.cooldown ?? 0;
    this.minLr = options.minLr ?? 0;
    this.eps = options.eps ?? 1e-8;
    if (!(this.factor > 0 && this.factor < 1)) throw new Error(`ReduceLROnPlateau: factor must be in (0, 1), got ${this.factor}`);
    this.s = { lr: options.lr, best: null, numBadEpochs: 0, cooldownCounter: 0, lastEpoch: 0 };
  }

  get lr(): number {
    return this.s.lr;
  }

  private isBetter(a: number, best: number | null): boolean {
    const b = best ?? (this.mode === 'min' ? Infinity : -Infinity);
    if (this.mode === 'min') {
      return this.thresholdMode === 'rel' ? a < b * (1 - this.threshold) : a < b - this.threshold;
    }
    return this.thresholdMode === 'rel' ? a > b * (this.threshold + 1) : a > b + this.threshold;
  }

  /** Feeds one epoch's metric; returns true when the learning rate was reduced. */
  step(metric: number): boolean {
    const s = this.s;
    s.lastEpoch += 1;
    if (this.isBetter(metric, s.best)) {
      s.best = metric;
      s.numBadEpochs = 0;
    } else {
      s.numBadEpochs += 1;
    }
    if (s.cooldownCounter > 0) {
      s.cooldownCounter -= 1;
      s.numBadEpochs = 0;
    }
    if (s.numBadEpochs > this.patience) {
      const newLr = Math.max(s.lr * this.factor, this.minLr);
      const reduced = s.lr - newLr > this.eps;
      if (reduced) s.lr = newLr;
      s.cooldownCounter = this.cooldown;
      s.numBadEpochs = 0;
      return reduced;
    }
    return false;
  }

  state(): PlateauState {
    return { ...this.s };
  }

  load(state: PlateauState): void {
    this.s = { ...state };
  }
}

export interface EarlyStoppingState {
  best: number | null;
  bestEpoch: number | null;
  counter: number;
  stop: boolean;
}

/**
 * mltrainer's EarlyStopping: an epoch improves when `loss + delta < best`; otherwise the
 * counter grows, and training stops once it reaches `patience`. Unlike mltrainer, a NaN
 * loss never counts as an improvement (there it would become the "best" and disable stopping).
 */
export class EarlyStopping {
  private s: EarlyStoppingState = { best: null, bestEpoch: null, counter: 0, stop: false };

  constructor(
    readonly patience: number,
    readonly delta = 0,
  ) {}

  get shouldStop(): boolean {
    return this.s.stop;
  }

  get bestEpoch(): number | null {
    return this.s.bestEpoch;
  }

  /** Feeds one epoch's validation loss; returns true when it is the new best. */
  step(loss: number, epoch: number): boolean {
    const s = this.s;
    const improved = !Number.isNaN(loss) && (s.best === null || loss + this.delta < s.best);
    if (improved) {
      s.best = loss;
      s.bestEpoch = epoch;
      s.counter = 0;
    } else {
      s.counter += 1;
      if (s.counter >= this.patience) s.stop = true;
    }
    return improved;
  }

  state(): EarlyStoppingState {
    return { ...this.s };
  }

  load(state: EarlyStoppingState): void {
    this.s = { ...state };
  }
}
