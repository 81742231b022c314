import { assessPaired } from '../search/until';
import type { UntilComparison, UntilOutcome, UntilRoundInput } from './types';

/**
 * Seeds until sure, after one round: pairs each variant's trials with the baseline's by seed and
 * asks the anytime-valid confidence sequence of search/until.ts whether the difference is decided.
 * It runs as an activity so that the decision is recorded in the sweep's history: a replay or a
 * resume reads it back instead of recomputing it, so a later change of the rule cannot change a
 * recorded sweep's course. With several variants the study's error rate is split among them
 * (Bonferroni): each interval holds with 1 − (1 − confidence)/k.
 */
export function assessUntilRound(input: UntilRoundInput, rounds: number): UntilOutcome {
  const { rule } = input;
  const key = (v: unknown) => JSON.stringify(v);
  const byVariant = new Map<string, Map<number, number>>();
  for (const t of input.trials) {
    const seeds = byVariant.get(key(t.variant)) ?? new Map<number, number>();
    seeds.set(t.seed, t.validAcc * 100);
    byVariant.set(key(t.variant), seeds);
  }
  const baseline = byVariant.get(key(rule.baseline)) ?? new Map<number, number>();
  const variants = [...byVariant.keys()].filter((v) => v !== key(rule.baseline));
  const confidence = 1 - (1 - rule.confidence) / Math.max(1, variants.length);
  const seedsUsed = rule.seeds.filter((s) => baseline.has(s));
  const comparisons: UntilComparison[] = variants.map((v) => {
    const scores = byVariant.get(v)!;
    const diffs = rule.seeds.filter((s) => scores.has(s) && baseline.has(s)).map((s) => scores.get(s)! - baseline.get(s)!);
    const a = assessPaired(diffs, { confidence, margin: rule.margin, maxSeeds: rule.maxSeeds, minSeeds: rule.minSeeds });
    return {
      variant: String(JSON.parse(v)),
      baseline: String(rule.baseline),
      n: a.n,
      mean: a.mean,
      low: Number.isFinite(a.low) ? a.low : null,
      high: Number.isFinite(a.high) ? a.high : null,
      confidence,
      decision: a.decision,
      reason: a.reason,
    };
  });
  const stop = comparisons.length > 0 && comparisons.every((c) => c.decision !== 'continue');
  const pct = `${+(rule.confidence * 100).toFixed(2)}%`;
  const split = variants.length > 1 ? ` split among ${variants.length} comparisons (${+(confidence * 100).toFixed(3)}% each)` : '';
  const describe = (c: UntilComparison) => `${c.variant} vs ${c.baseline}: ${c.reason}`;
  return {
    step: input.step,
    compare: rule.compare,
    rule:
      `seed pairs (${rule.compare} = each value vs ${String(rule.baseline)}, same seed) added in rounds until Lai's t confidence sequence ` +
      `for the mean difference in best valid accuracy (percentage points), ${pct}${split} and valid at any stopping round, excludes 0 ` +
      `or is narrower than ${rule.margin} points; at least ${rule.minSeeds} and at most ${rule.maxSeeds} seeds`,
    seeds: seedsUsed,
    rounds,
    stop,
    reason: (stop ? 'stopped: ' : 'continues: ') + comparisons.map(describe).join('; '),
    comparisons,
  };
}

/** The activity: the round number is the count of earlier decisions plus one, sent by the workflow. */
export async function assessUntil(input: UntilRoundInput & { round: number }): Promise<UntilOutcome> {
  return assessUntilRound(input, input.round);
}
