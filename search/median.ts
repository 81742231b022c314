import { findTrial, metricAt, proceed, score, type EpochDecision, type Objective, type Promotion, type Pruner, type TrialProgress } from './pruner';

/**
 * Median stopping, as Optuna's MedianPruner: after an epoch, a trial whose best value so far is
 * worse than the median of the completed trials at that same epoch is paused. Nothing is promoted
 * later (a paused trial stays available to a person who resumes it by hand).
 */
export interface MedianOptions extends Objective {
  /** No pausing until this many trials have completed. */
  nStartupTrials: number;
  /** No pausing during a trial's first epochs. */
  nWarmupEpochs: number;
  /** No pausing at an epoch that fewer completed trials reported. */
  nMinTrials: number;
}

export class MedianPruner implements Pruner {
  constructor(private readonly options: MedianOptions) {}

  afterEpoch(trial: string, trials: readonly TrialProgress[]): EpochDecision {
    const { metric, direction, nStartupTrials, nWarmupEpochs, nMinTrials } = this.options;
    const t = findTrial(trials, trial);
    const epoch = t.epochs.length;
    const completed = trials.filter((o) => o.state === 'complete' && o.trial !== trial);
    if (completed.length < nStartupTrials || epoch <= nWarmupEpochs) return proceed;
    const others = completed.filter((o) => o.epochs.length >= epoch).map((o) => metricAt(o, epoch, metric));
    if (others.length < nMinTrials || others.length === 0) return proceed;
    const med = median(others.filter((v) => !Number.isNaN(v)));
    const best = Math.max(...t.epochs.map((_, e) => score(metricAt(t, e + 1, metric), direction)));
    if (best >= score(med, direction)) return proceed;
    const shown = direction === 'maximize' ? best : -best;
    return {
      action: 'pause',
      trial,
      atEpoch: epoch,
      reason: `best ${metric} so far ${shown} is worse than the median ${med} of ${others.length} completed trials at epoch ${epoch}`,
    };
  }

  promotion(_trials: readonly TrialProgress[]): Promotion | null {
    return null;
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
