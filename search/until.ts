import { z } from 'zod';
import { choiceValue, type ParamValue, type SpaceProblem } from './space';

/**
 * "Seeds until sure": run seed pairs (the variant and the baseline on the same seed) in rounds
 * until the paired difference is decided. Because the sweep stops on the data, a fixed-n t
 * interval would be too optimistic (checked after every round, it would declare a winner far more
 * often than 5% of the time when there is none). The interval here is a confidence sequence: with
 * probability at least `confidence` it contains the true mean difference at every number of seeds
 * at once, so it stays valid whenever the sweep stops, for whatever reason.
 *
 * The sequence is Lai's (1976) t confidence sequence, as revisited by Wang & Ramdas (2023,
 * "Anytime-valid t-tests and confidence sequences for Gaussian means with unknown variance"): for
 * a candidate mean μ, the Bayes factor of "the standardised effect (mean − μ)/σ is N(0, g)" against
 * "it is 0", with σ integrated out under its scale-invariant prior, is
 *
 *   B_n(μ) = (1 + n·g)^(−1/2) · [ (1 + t²/ν) / (1 + t²/(ν·(1 + n·g))) ]^((ν+1)/2),  ν = n − 1,
 *
 * t being the one-sample t statistic of the differences against μ. Under the true μ it is a
 * non-negative martingale starting at 1, so by Ville's inequality it ever reaches 1/α with
 * probability at most α. The interval keeps every μ with B_n(μ) < 1/α: mean ± t*(n)·s/√n. It
 * assumes roughly normal differences (the per-seed accuracy differences are averages over many
 * examples); the tests measure its error rate by simulation.
 */

/** Prior variance of the standardised effect: g = 1 gives tight intervals around 5–30 seeds. */
export const EFFECT_PRIOR_VARIANCE = 1;

export const untilSchema = z
  .strictObject({
    compare: z.string().describe('The matrix axis whose values are compared, e.g. pooling.'),
    baseline: choiceValue.describe('The value of that axis the others are compared to, e.g. last.'),
    confidence: z.number().gt(0).lt(1).default(0.95).describe('Probability that the interval holds at whatever round the sweep stops.'),
    margin: z.number().positive().describe("Differences narrower than this don't matter (in the metric's units): stop once the interval is narrower."),
    max_seeds: z.number().int().min(2).describe('Seeds per variant at most.'),
    min_seeds: z.number().int().min(2).default(2).describe('Seeds per variant before any decision.'),
  })
  .refine((u) => u.min_seeds <= u.max_seeds, { path: ['min_seeds'], message: 'must not exceed max_seeds' })
  .describe('Add seed pairs in rounds until the paired difference is decided (anytime-valid confidence sequence).');

export type Until = z.infer<typeof untilSchema>;

/** Checks `until` against the step's matrix: `compare` must be an axis with the baseline among its values. */
export function checkUntil(until: Until, matrix: Record<string, readonly ParamValue[]>, at = 'until'): SpaceProblem[] {
  const values = matrix[until.compare];
  if (!values) return [{ path: `${at}.compare`, message: `"${until.compare}" is not a matrix axis (axes: ${Object.keys(matrix).join(', ') || 'none'})` }];
  if (!values.includes(until.baseline)) {
    return [
      {
        path: `${at}.baseline`,
        message: `${JSON.stringify(until.baseline)} is not a value of matrix.${until.compare} (${values.map((v) => JSON.stringify(v)).join(', ')})`,
      },
    ];
  }
  if (values.length < 2) return [{ path: `${at}.compare`, message: `matrix.${until.compare} needs a second value to compare with the baseline` }];
  return [];
}

export interface Interval {
  low: number;
  high: number;
}

export type Decision = 'different' | 'within-margin' | 'max-seeds' | 'continue';

export interface PairedAssessment extends Interval {
  /** Seed pairs so far. */
  n: number;
  /** Mean of the differences (variant − baseline). */
  mean: number;
  sd: number;
  decision: Decision;
  stop: boolean;
  /** One sentence for the report: why the sweep stops or goes on. */
  reason: string;
  /** The rule, for the report. */
  rule: string;
}

export interface UntilRule {
  confidence: number;
  margin: number;
  maxSeeds: number;
  minSeeds?: number;
}

/** Assesses the paired differences (variant − baseline, one per seed, in seed order) after a round. */
export function assessPaired(diffs: readonly number[], rule: UntilRule): PairedAssessment {
  const n = diffs.length;
  const mean = n ? diffs.reduce((a, b) => a + b, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(diffs.reduce((a, d) => a + (d - mean) ** 2, 0) / (n - 1)) : NaN;
  const { low, high } = confidenceSequence(diffs, rule.confidence);
  const pct = `${+(rule.confidence * 100).toFixed(2)}%`;
  const shown = `[${fmt(low)}, ${fmt(high)}]`;
  const base = { n, mean, sd, low, high, rule: `Lai's t confidence sequence (g = ${EFFECT_PRIOR_VARIANCE}), ${pct}, valid at any stopping round` };
  const decide = (decision: Decision, reason: string): PairedAssessment => ({ ...base, decision, stop: decision !== 'continue', reason });

  if (n < (rule.minSeeds ?? 2)) return decide('continue', `${n} seed pair(s) so far; at least ${rule.minSeeds ?? 2} before deciding`);
  if (low > 0 || high < 0) {
    return decide('different', `after ${n} seeds the ${pct} interval ${shown} excludes 0: the variant is ${low > 0 ? 'higher' : 'lower'} than the baseline`);
  }
  if (high - low < rule.margin) {
    return decide(
      'within-margin',
      `after ${n} seeds the ${pct} interval ${shown} is narrower than the margin ${rule.margin}: any difference is too small to matter`,
    );
  }
  if (n >= rule.maxSeeds)
    return decide('max-seeds', `max_seeds (${rule.maxSeeds}) reached undecided: the ${pct} interval ${shown} contains 0 and is wider than the margin`);
  return decide('continue', `after ${n} seeds the ${pct} interval ${shown} contains 0 and is wider than the margin ${rule.margin}`);
}

/** The anytime-valid interval for the mean of `diffs`; unbounded before two values. */
export function confidenceSequence(diffs: readonly number[], confidence: number, g = EFFECT_PRIOR_VARIANCE): Interval {
  const n = diffs.length;
  if (n < 2) return { low: -Infinity, high: Infinity };
  const mean = diffs.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(diffs.reduce((a, d) => a + (d - mean) ** 2, 0) / (n - 1));
  const t = criticalT(n, 1 - confidence, g);
  if (!Number.isFinite(t)) return { low: -Infinity, high: Infinity };
  const half = (t * sd) / Math.sqrt(n);
  return { low: mean - half, high: mean + half };
}

const criticalCache = new Map<string, number>();

/** The |t| at which B_n reaches 1/α (infinite when it never can at this n). Depends on n, α and g only, so it is cached. */
export function criticalT(n: number, alpha: number, g = EFFECT_PRIOR_VARIANCE): number {
  const key = `${n}:${alpha}:${g}`;
  const cached = criticalCache.get(key);
  if (cached !== undefined) return cached;
  const target = Math.log(1 / alpha);
  const logB = (t: number) => logBayesFactor(t, n, g);
  let result = Infinity;
  // As t → ∞, log B_n → (ν/2)·log(1 + n·g): below the target no data can exclude μ.
  if (((n - 1) / 2) * Math.log(1 + n * g) > target) {
    let hi = 1;
    while (logB(hi) < target) hi *= 2;
    let lo = 0;
    for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
      const mid = (lo + hi) / 2;
      if (logB(mid) < target) lo = mid;
      else hi = mid;
    }
    result = hi;
  }
  criticalCache.set(key, result);
  return result;
}

/** log B_n for a t statistic `t` of `n` values (the formula in the header). */
export function logBayesFactor(t: number, n: number, g = EFFECT_PRIOR_VARIANCE): number {
  const nu = n - 1;
  const spread = 1 + n * g;
  return -0.5 * Math.log(spread) + ((nu + 1) / 2) * (Math.log1p((t * t) / nu) - Math.log1p((t * t) / (nu * spread)));
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(+x.toPrecision(3)) : x > 0 ? '∞' : '−∞';
}
