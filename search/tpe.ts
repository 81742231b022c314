import { rngFor } from '../ml/rng';
import { ParzenEstimator, fromInternal, toInternal, type ParzenOptions } from './parzen';
import { RandomSampler } from './random';
import { checkTrials, uniform53, type Direction, type Sampler, type TrialResult } from './sampler';
import { contains, paramNames, type Params, type SearchSpace } from './space';

/**
 * The tree-structured Parzen estimator, following Optuna's TPESampler (optuna/samplers/_tpe/):
 * the finished trials are split into the best gamma(n) ("below") and the rest ("above"), a Parzen
 * estimator l(x) is fitted to the first and g(x) to the second, n_ei_candidates points are drawn
 * from l and the one maximising log l(x) − log g(x) is suggested. Before n_startup_trials have
 * finished it suggests what random search would.
 *
 * Trials in flight: with constant liar (Optuna's default), running trials join the "above" group,
 * so the next suggestion steers away from points already being tried; a batch of suggestions for
 * `concurrency` free slots is made one at a time, each seeing the earlier ones as running.
 */
export interface TpeOptions extends ParzenOptions {
  nStartupTrials: number;
  nEiCandidates: number;
  /** Size of the "below" group given the number of finished trials. */
  gamma: (finished: number) => number;
  /** One joint estimator over all parameters instead of one per parameter. */
  multivariate: boolean;
  constantLiar: boolean;
}

/** Optuna's defaults (TPESampler() with no arguments). */
export const tpeDefaults: TpeOptions = {
  priorWeight: 1,
  magicClip: true,
  considerEndpoints: false,
  nStartupTrials: 10,
  nEiCandidates: 24,
  gamma: (n) => Math.min(Math.ceil(0.1 * n), 25),
  multivariate: false,
  constantLiar: true,
};

export class TpeSampler implements Sampler {
  private readonly options: TpeOptions;
  private readonly startup: RandomSampler;

  constructor(
    private readonly space: SearchSpace,
    private readonly seed: number,
    private readonly direction: Direction,
    options: Partial<TpeOptions> = {},
  ) {
    this.options = { ...tpeDefaults, ...options };
    this.startup = new RandomSampler(space, seed);
  }

  suggest(trials: readonly TrialResult[], count: number): Params[] {
    checkTrials(trials);
    const known = [...trials];
    const out: Params[] = [];
    for (let i = 0; i < count; i++) {
      const params = this.suggestOne(known);
      out.push(params);
      known.push({ number: known.length, params, state: 'running' });
    }
    return out;
  }

  private suggestOne(trials: readonly TrialResult[]): Params {
    const number = trials.length;
    const considered = trials.filter((t) => t.state !== 'running' || this.options.constantLiar);
    const finished = considered.filter((t) => t.state !== 'running').length;
    if (finished < this.options.nStartupTrials) return this.startup.paramsOf(number);

    const [below, above] = splitTrials(considered, this.options.gamma(finished), this.direction);
    const names = paramNames(this.space);
    const groups = this.options.multivariate ? [names] : names.map((name) => [name]);
    const params: Params = {};
    for (const group of groups) {
      // One stream per (trial, parameter group): a parameter's suggestion does not shift when another is added.
      const rng = rngFor(this.seed, 'tpe', number, ...group);
      const uniform = () => uniform53(() => rng.nextUint32());
      const specs = group.map((name) => this.space[name]!);
      // Trials recorded under another space (a range since changed, a parameter added) are left out.
      const fits = (t: TrialResult) => group.every((name, d) => contains(specs[d]!, t.params[name]));
      const observe = (ts: TrialResult[]) => ts.filter(fits).map((t) => group.map((name, d) => toInternal(specs[d]!, t.params[name]!)));
      const l = new ParzenEstimator(specs, observe(below), this.options);
      const g = new ParzenEstimator(specs, observe(above), this.options);
      const candidates = l.sample(uniform, this.options.nEiCandidates);
      let best = candidates[0]!;
      let bestScore = -Infinity;
      for (const c of candidates) {
        const score = l.logPdf(c) - g.logPdf(c);
        if (score > bestScore) [best, bestScore] = [c, score];
      }
      group.forEach((name, d) => {
        params[name] = fromInternal(specs[d]!, best[d]!);
      });
    }
    return params;
  }
}

/**
 * The good/bad split of Optuna's _split_trials: the best complete trials first, then paused
 * (pruned) ones ranked by how far they got and then by their last value; running trials are
 * always "above". Both groups keep trial order, which the observation weights depend on.
 */
export function splitTrials(trials: readonly TrialResult[], nBelow: number, direction: Direction): [TrialResult[], TrialResult[]] {
  const sign = direction === 'maximize' ? -1 : 1;
  const complete = trials.filter((t) => t.state === 'complete');
  const pruned = trials.filter((t) => t.state === 'pruned');
  const running = trials.filter((t) => t.state === 'running');

  // A NaN value (a diverged run) ranks last.
  const key = (t: TrialResult) => (Number.isNaN(t.value!) ? Infinity : sign * t.value!);
  const byValue = [...complete].sort((a, b) => key(a) - key(b));
  const belowComplete = byValue.slice(0, Math.min(nBelow, byValue.length));
  const rest = Math.max(0, nBelow - belowComplete.length);
  const byProgress = [...pruned].sort((a, b) => comparePruned(prunedScore(a, sign), prunedScore(b, sign)));
  const belowPruned = byProgress.slice(0, Math.min(rest, byProgress.length));

  const below = new Set([...belowComplete, ...belowPruned]);
  const byNumber = (a: TrialResult, b: TrialResult) => a.number - b.number;
  return [[...below].sort(byNumber), [...complete, ...pruned, ...running].filter((t) => !below.has(t)).sort(byNumber)];
}

function prunedScore(t: TrialResult, sign: number): [number, number] {
  const curve = t.intermediate ?? [];
  if (curve.length === 0) return [1, 0];
  const last = curve[curve.length - 1]!;
  return [-(curve.length - 1), Number.isNaN(last) ? Infinity : sign * last];
}

function comparePruned(a: [number, number], b: [number, number]): number {
  return a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
}
