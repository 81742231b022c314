import { findTrial, metricAt, proceed, score, type EpochDecision, type Objective, type Promotion, type Pruner, type TrialProgress } from './pruner';

/**
 * Asynchronous successive halving (Li et al., "A System for Massively Parallel Hyperparameter
 * Tuning", 2020). Rungs sit at min_resource · η^(s + k) epochs below max_resource. A trial that
 * reaches a rung goes on at once if it is among the best ⌊n/η⌋ of the n trials that have reached
 * that rung; otherwise it pauses there. Whenever a slot frees, the best paused trial that has since
 * entered the top ⌊n/η⌋ of its rung is promoted (highest rung first), else a new trial starts.
 * Optuna's SuccessiveHalvingPruner cannot pause, so it decides once, on arrival; here a paused trial
 * keeps its chance, which is the point of ASHA.
 */
export interface AshaOptions extends Objective {
  /** Epochs every trial gets before its first judgement (grace period). */
  minResource: number;
  /** Epochs of a trial trained to the end. */
  maxResource: number;
  /** η: one trial in η goes on from each rung. */
  reductionFactor: number;
  /** s: the first rung is at min_resource · η^s (Hyperband's brackets differ only in s). */
  minEarlyStoppingRate: number;
}

export class AshaPruner implements Pruner {
  /** Epochs at which trials are judged, ascending. */
  readonly rungs: number[];

  constructor(private readonly options: AshaOptions) {
    const { minResource, maxResource, reductionFactor, minEarlyStoppingRate } = options;
    if (!(reductionFactor >= 2)) throw new Error(`reduction_factor must be at least 2, got ${reductionFactor}`);
    if (!(minResource >= 1 && minResource <= maxResource)) throw new Error(`min_resource must be in 1..max_resource (${maxResource}), got ${minResource}`);
    this.rungs = [];
    for (let r = minResource * reductionFactor ** minEarlyStoppingRate; r < maxResource; r *= reductionFactor) this.rungs.push(r);
  }

  afterEpoch(trial: string, trials: readonly TrialProgress[]): EpochDecision {
    const epoch = findTrial(trials, trial).epochs.length;
    if (!this.rungs.includes(epoch)) return proceed;
    const { ranked, keep } = this.standing(epoch, trials);
    const rank = ranked.findIndex((t) => t.trial === trial);
    if (rank < keep) return proceed;
    return {
      action: 'pause',
      trial,
      atEpoch: epoch,
      reason: `rank ${rank + 1} of ${ranked.length} at the epoch-${epoch} rung; the best ${keep} go on (⌊${ranked.length}/${this.options.reductionFactor}⌋)`,
    };
  }

  promotion(trials: readonly TrialProgress[]): Promotion | null {
    for (let k = this.rungs.length - 1; k >= 0; k--) {
      const epoch = this.rungs[k]!;
      const { ranked, keep } = this.standing(epoch, trials);
      const rank = ranked.findIndex((t, i) => i < keep && t.state === 'paused' && t.epochs.length === epoch);
      if (rank >= 0) {
        return {
          trial: ranked[rank]!.trial,
          fromEpoch: epoch,
          toEpoch: this.rungs[k + 1] ?? this.options.maxResource,
          reason: `now rank ${rank + 1} of ${ranked.length} at the epoch-${epoch} rung; the best ${keep} go on`,
        };
      }
    }
    return null;
  }

  /** The trials that reached the rung at `epoch`, best first (ties to the earlier trial), and how many of them go on. */
  private standing(epoch: number, trials: readonly TrialProgress[]): { ranked: TrialProgress[]; keep: number } {
    const { metric, direction, reductionFactor } = this.options;
    const reached = trials.map((t, order) => ({ t, order })).filter(({ t }) => t.epochs.length >= epoch);
    const scored = reached.map(({ t, order }) => ({ t, order, s: score(metricAt(t, epoch, metric), direction) }));
    scored.sort((a, b) => (b.s > a.s ? 1 : b.s < a.s ? -1 : a.order - b.order));
    return { ranked: scored.map(({ t }) => t), keep: Math.floor(scored.length / reductionFactor) };
  }
}
