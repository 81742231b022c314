/**
 * From trial results to the report's content: groups (variant × cell), paired comparisons to the
 * baseline by seed, learning curves and the verdict in words. Pure: the activity reads the files
 * and hands over plain values; tests call this with hand-made trials.
 */
import { holmAdjust, mean, meanInterval, pairedComparison, pairsToExcludeZero, range } from '../ml/stats';
import type { EpochMetrics } from '../activities/types';
import type {
  Cell,
  ComparisonSummary,
  CurveMetric,
  CurvePoint,
  GroupSummary,
  ReportDocument,
  ReportEnvironment,
  ReportTracking,
  TrialSummary,
} from './document';
import { REPORT_SCHEMA } from './document';
import * as f from './format';

export interface TrialInput {
  trial: string;
  step: string;
  params: Record<string, unknown>;
  best: EpochMetrics;
  epochs: EpochMetrics[];
  stoppedEarly: boolean;
  backend: string;
  workflowId: string;
  temporalUrl?: string;
  mlflowUrl?: string;
  trackingProblems?: string[];
}

export interface ReportInput {
  sweepId: string;
  pipeline: string;
  generatedAt: string;
  compare: string;
  baseline: string;
  trials: TrialInput[];
  environment: ReportEnvironment;
  tracking: ReportTracking;
  sweepUrl?: string;
  /** False: make no comparisons (trials that do not differ by seed alone, as a search's). Default true. */
  pairBySeed?: boolean;
}

export function buildReport(input: ReportInput): ReportDocument {
  const { compare, baseline } = input;
  const trials = [...input.trials].sort(byVariantThenSeed(compare, baseline));
  const variantOf = (t: TrialInput) => String(t.params[compare]);

  // A group is one value of the compared parameter within one cell: the trials differ only by seed.
  // Only parameters that vary across the sweep name a cell; the rest are the same everywhere.
  const varying = [...new Set(trials.flatMap((t) => Object.keys(t.params)))]
    .filter((k) => k !== compare && k !== 'seed')
    .filter((k) => new Set(trials.map((t) => JSON.stringify(t.params[k]))).size > 1)
    .sort();
  const cellOf = (t: TrialInput): Cell => Object.fromEntries(varying.map((k) => [k, t.params[k]]));
  const labelOf = (variant: string, c: Cell) => (Object.keys(c).length ? `${variant} · ${f.cell(c)}` : variant);
  const groupKey = (t: TrialInput) => `${variantOf(t)}|${JSON.stringify(cellOf(t))}`;

  const grouped = new Map<string, TrialInput[]>();
  for (const t of trials) grouped.set(groupKey(t), [...(grouped.get(groupKey(t)) ?? []), t]);

  const groups: GroupSummary[] = [...grouped.values()].map((g) => {
    const seconds = g.map(trainSeconds);
    return {
      variant: variantOf(g[0]!),
      cell: cellOf(g[0]!),
      label: labelOf(variantOf(g[0]!), cellOf(g[0]!)),
      trials: g.length,
      seeds: g.map((t) => t.params.seed),
      bestValidAcc: meanInterval(g.map((t) => t.best.valid_acc)),
      bestValidLoss: meanInterval(g.map((t) => t.best.valid_loss)),
      finalValidLoss: meanInterval(g.map(finalValidLoss)),
      bestEpoch: meanInterval(g.map((t) => t.best.epoch)),
      stoppedEarly: g.filter((t) => t.stoppedEarly).length,
      trainSeconds: { total: seconds.reduce((a, b) => a + b, 0), mean: mean(seconds) },
    };
  });

  const comparisons: ComparisonSummary[] = [];
  for (const group of groups) {
    if (group.variant === baseline || input.pairBySeed === false) continue;
    const key = JSON.stringify(group.cell);
    const base = grouped.get(`${baseline}|${key}`) ?? [];
    const mine = grouped.get(`${group.variant}|${key}`) ?? [];
    const pairs = mine.flatMap((t) => {
      const b = base.find((x) => JSON.stringify(x.params.seed) === JSON.stringify(t.params.seed));
      return b ? [{ seed: t.params.seed, variant: t.best.valid_acc, baseline: b.best.valid_acc, difference: t.best.valid_acc - b.best.valid_acc }] : [];
    });
    if (pairs.length === 0) continue;
    const paired = new Set(pairs.map((p) => JSON.stringify(p.seed)));
    const unpaired = [...mine, ...base].map((t) => t.params.seed).filter((s) => !paired.has(JSON.stringify(s)));
    const differences = pairs.map((p) => p.difference);
    const stats = pairedComparison(differences);
    const comparison: ComparisonSummary = {
      variant: group.variant,
      baseline,
      cell: group.cell,
      label: group.label,
      ...stats,
      pairs,
      unpaired,
      pairsToExcludeZero: pairsToExcludeZero(differences),
      pAdjusted: NaN,
      tests: 0,
      conclusion: stats.n < MIN_PAIRS ? 'too-few-pairs' : stats.std <= NO_SPREAD ? 'no-spread' : 'inconclusive',
      verdict: '',
    };
    comparisons.push(comparison);
  }

  // Several variants against one baseline are several tests: each gets Holm's adjusted p-value over
  // the comparisons that can reach a conclusion, so "better with 95% confidence" keeps its meaning
  // for the report as a whole, not only for each line.
  const testable = comparisons.filter((c) => c.conclusion === 'inconclusive');
  const adjusted = holmAdjust(testable.map((c) => c.pValueTwoSided));
  testable.forEach((c, i) => {
    c.pAdjusted = adjusted[i]!;
    c.tests = testable.length;
    if (c.pAdjusted < ALPHA) c.conclusion = c.mean > 0 ? 'better' : 'worse';
  });
  for (const c of comparisons) c.verdict = comparisonVerdict(c, labelOf(baseline, c.cell));

  const summaries: TrialSummary[] = trials.map((t) => ({
    trial: t.trial,
    step: t.step,
    variant: variantOf(t),
    cell: cellOf(t),
    seed: t.params.seed,
    bestValidAcc: t.best.valid_acc,
    bestValidLoss: t.best.valid_loss,
    bestEpoch: t.best.epoch,
    finalValidLoss: finalValidLoss(t),
    epochsRun: t.epochs.length,
    stoppedEarly: t.stoppedEarly,
    backend: t.backend,
    trainSeconds: trainSeconds(t),
    workflowId: t.workflowId,
    ...(t.temporalUrl ? { temporalUrl: t.temporalUrl } : {}),
    ...(t.mlflowUrl ? { mlflowUrl: t.mlflowUrl } : {}),
    trackingProblems: t.trackingProblems ?? [],
  }));

  return {
    schema: REPORT_SCHEMA,
    sweepId: input.sweepId,
    pipeline: input.pipeline,
    generatedAt: input.generatedAt,
    compare,
    baseline,
    verdict: overallVerdict(groups, comparisons, baseline, compare),
    ranking: ranking(groups, baseline),
    groups,
    comparisons,
    curves: [...curves(grouped, labelOf, variantOf, cellOf, 'valid_acc'), ...curves(grouped, labelOf, variantOf, cellOf, 'valid_loss')],
    trials: summaries,
    environment: input.environment,
    tracking: input.tracking,
    ...(input.sweepUrl ? { temporal: { sweepUrl: input.sweepUrl } } : {}),
  };
}

const finalValidLoss = (t: TrialInput) => t.epochs.at(-1)?.valid_loss ?? t.best.valid_loss;
const trainSeconds = (t: TrialInput) => t.epochs.reduce((a, m) => a + m.seconds, 0);

/** Baseline first, then the other variants by name; within each, by the other parameters (numbers numerically), seeds last. */
function byVariantThenSeed(compare: string, baseline: string) {
  const rank = (t: TrialInput) => (String(t.params[compare]) === baseline ? 0 : 1);
  return (a: TrialInput, b: TrialInput) => {
    const keys = [...new Set([compare, ...Object.keys(a.params), ...Object.keys(b.params)].filter((k) => k !== 'seed')), 'seed'];
    return rank(a) - rank(b) || keys.reduce((order, k) => order || compareValues(a.params[k], b.params[k]), 0);
  };
}

const compareValues = (a: unknown, b: unknown) =>
  typeof a === 'number' && typeof b === 'number' ? a - b : JSON.stringify(a ?? null).localeCompare(JSON.stringify(b ?? null));

/**
 * Mean over the seeds that trained that epoch, with their range. Early stopping ends some trials
 * sooner, so late epochs may average fewer seeds; each point records how many (`n`).
 */
function curves(
  grouped: Map<string, TrialInput[]>,
  labelOf: (variant: string, c: Cell) => string,
  variantOf: (t: TrialInput) => string,
  cellOf: (t: TrialInput) => Cell,
  metric: CurveMetric,
): CurvePoint[] {
  const out: CurvePoint[] = [];
  for (const g of grouped.values()) {
    const label = labelOf(variantOf(g[0]!), cellOf(g[0]!));
    const last = Math.max(...g.map((t) => t.epochs.length));
    for (let epoch = 1; epoch <= last; epoch++) {
      const values = g.flatMap((t) => t.epochs.filter((m) => m.epoch === epoch).map((m) => m[metric]));
      if (values.length === 0) continue;
      out.push({ metric, label, epoch, n: values.length, mean: mean(values), ...range(values) });
    }
  }
  return out;
}

/** Fewer seed pairs than this are never called better or worse: two pairs give one degree of freedom. */
const MIN_PAIRS = 3;
const ALPHA = 0.05;
// Accuracies are ratios of counts: equal differences come out of floating point a few ulps apart,
// so "no spread" is a spread far below one sample in any validation set.
const NO_SPREAD = 1e-9;

function comparisonVerdict(c: ComparisonSummary, baselineLabel: string): string {
  const who = `${c.label} vs ${baselineLabel}`;
  const seeds = c.n === 1 ? 'seed' : 'seeds';
  if (c.conclusion === 'too-few-pairs') {
    const runs = c.n === 1 ? `a single pair of runs (seed ${f.value(c.pairs[0]?.seed)})` : `${c.n} pairs of runs`;
    return (
      `${who}: ${f.points(c.mean)} of best validation accuracy from ${runs}. ` +
      `Fewer than ${MIN_PAIRS} pairs cannot tell a real difference from seed-to-seed noise: not enough evidence; run more seeds.`
    );
  }
  const magnitude = f.points(Math.abs(c.mean));
  const size =
    magnitude === f.points(0)
      ? `${c.label} and ${baselineLabel} score the same best validation accuracy on average`
      : `${c.label} scores ${magnitude.replace(/^\+/, '')} ${c.mean > 0 ? 'higher' : 'lower'} than ${baselineLabel} in best validation accuracy`;
  if (c.conclusion === 'no-spread') {
    return (
      `${who}: ${size} (${c.n} seed pairs, every one differing by exactly ${f.points(c.mean)}). ` +
      `With no spread between the pairs the noise cannot be estimated, so no confidence can be stated: not enough evidence; run more seeds.`
    );
  }
  const evidence = `(mean of ${c.n} seed pairs; 95% interval ${f.pointsRange(c.low, c.high)}; ${c.label} better in ${f.count(c.wins, c.n)} ${seeds})`;
  const chance = `The probability that ${c.label} is truly better is ${f.probability(c.probabilityBetter)} (paired t model).`;
  const test =
    c.tests > 1
      ? `Adjusted for the ${c.tests} comparisons with ${c.baseline} (Holm), p = ${f.pValue(c.pAdjusted)}`
      : `The interval excludes zero (p = ${f.pValue(c.pAdjusted)})`;
  switch (c.conclusion) {
    case 'better':
      return `${who}: ${size} ${evidence}. ${chance} ${test}: ${c.label} is better, with 95% confidence.`;
    case 'worse':
      return `${who}: ${size} ${evidence}. ${chance} ${test}: ${c.label} is worse, with 95% confidence.`;
    default: {
      const more = c.pairsToExcludeZero ? ` If the difference is real and this size, about ${c.pairsToExcludeZero} seed pairs would be needed to show it.` : '';
      const why =
        c.tests > 1 && c.pValueTwoSided < ALPHA
          ? `The interval excludes zero, but not after adjusting for the ${c.tests} comparisons with ${c.baseline} (Holm, p = ${f.pValue(c.pAdjusted)}), so the evidence is not enough to call a winner.`
          : `The interval includes zero, so the evidence is not enough to call a winner.`;
      return `${who}: ${size} ${evidence}. ${chance} ${why}${more}`;
    }
  }
}

/** One sentence ranking every group by mean best validation accuracy, best first. */
function ranking(groups: GroupSummary[], baseline: string): string {
  const ranked = [...groups].sort((a, b) => b.bestValidAcc.mean - a.bestValidAcc.mean);
  const shown = ranked.map((g) => `${g.label}${g.variant === baseline ? ' (baseline)' : ''} ${f.pct(g.bestValidAcc.mean)}`);
  const joined = shown.slice(1).reduce((text, item, i) => {
    const same = f.pct(ranked[i]!.bestValidAcc.mean) === f.pct(ranked[i + 1]!.bestValidAcc.mean);
    return `${text} ${same ? '=' : '>'} ${item}`;
  }, shown[0] ?? '');
  return `Ranked by mean best validation accuracy over seeds: ${joined}.`;
}

function overallVerdict(groups: GroupSummary[], comparisons: ComparisonSummary[], baseline: string, compare: string): string {
  if (comparisons.length > 0) return [ranking(groups, baseline), ...comparisons.map((c) => c.verdict)].join(' ');
  const names = groups.map((g) => `${g.label} ${f.pct(g.bestValidAcc.mean)}`).join(', ');
  if (!groups.some((g) => g.variant === baseline)) {
    return `Best validation accuracy by ${compare}: ${names}. No trials of the baseline "${baseline}" to compare with, so no comparison was made: not enough evidence for a verdict.`;
  }
  return `Best validation accuracy by ${compare}: ${names}. No seed ran for both a variant and the baseline "${baseline}", so nothing could be paired: not enough evidence for a verdict.`;
}
