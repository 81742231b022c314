import { streamKey } from '../ml/rng';
import { AshaPruner, type AshaOptions } from './asha';
import { findTrial, type EpochDecision, type Promotion, type Pruner, type TrialProgress } from './pruner';

/**
 * Hyperband run asynchronously, as Optuna's HyperbandPruner does: brackets s = 0 … smax, bracket s
 * being ASHA whose first rung is at min_resource · η^s, each trial in exactly one bracket, judged
 * only against the trials of its bracket. Bracket s gets a share ⌈B · η^(B−1−s) / (B − s)⌉ of the
 * trials (B brackets), as in Hyperband's Algorithm 1; the trial's id, hashed, picks its bracket, so
 * the choice is a pure function of the id.
 */
export type HyperbandOptions = Omit<AshaOptions, 'minEarlyStoppingRate'>;

export class HyperbandPruner implements Pruner {
  readonly brackets: AshaPruner[];
  /** Trial share of each bracket, in bracket order. */
  readonly budgets: number[];

  constructor(options: HyperbandOptions) {
    let count = 0;
    for (let r = options.minResource; r <= options.maxResource; r *= options.reductionFactor) count++;
    this.brackets = Array.from({ length: count }, (_, s) => new AshaPruner({ ...options, minEarlyStoppingRate: s }));
    this.budgets = this.brackets.map((_, s) => {
      const rounds = count - 1 - s;
      return Math.ceil((count * options.reductionFactor ** rounds) / (rounds + 1));
    });
  }

  bracketOf(trial: string): number {
    const total = this.budgets.reduce((a, b) => a + b, 0);
    let n = streamKey(['hyperband', trial]) % total;
    for (let s = 0; s < this.budgets.length; s++) {
      n -= this.budgets[s]!;
      if (n < 0) return s;
    }
    return this.budgets.length - 1;
  }

  afterEpoch(trial: string, trials: readonly TrialProgress[]): EpochDecision {
    findTrial(trials, trial);
    const s = this.bracketOf(trial);
    const decision = this.brackets[s]!.afterEpoch(trial, this.inBracket(s, trials));
    return decision.action === 'pause' ? { ...decision, reason: `bracket ${s}: ${decision.reason}` } : decision;
  }

  promotion(trials: readonly TrialProgress[]): Promotion | null {
    for (let s = 0; s < this.brackets.length; s++) {
      const promotion = this.brackets[s]!.promotion(this.inBracket(s, trials));
      if (promotion) return { ...promotion, reason: `bracket ${s}: ${promotion.reason}` };
    }
    return null;
  }

  private inBracket(s: number, trials: readonly TrialProgress[]): TrialProgress[] {
    return trials.filter((t) => this.bracketOf(t.trial) === s);
  }
}
