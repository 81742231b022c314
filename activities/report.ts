import { meanInterval, pairedComparison, type Interval, type PairedComparison } from '../ml/stats';
import { trialWorkflowId } from '../pipeline/plan';
import { reportParams, type ReportParams } from '../pipeline/steps';
import type { ActivityDeps } from './deps';
import type { ReportResult, StepInput, TrainResult } from './types';
import { ApplicationFailure } from '@temporalio/common';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const REPORT_VERSION = 1;

interface VariantSummary {
  name: string;
  /** Other matrix values shared by this group (e.g. hidden size), empty for a single cell. */
  cell: Record<string, unknown>;
  trials: number;
  validAcc: Interval;
  validLoss: Interval;
  bestEpoch: Interval;
  stoppedEarly: number;
  trainSeconds: number;
}

interface Comparison extends PairedComparison {
  variant: string;
  baseline: string;
  cell: Record<string, unknown>;
}

export interface ReportDocument {
  sweepId: string;
  compare: string;
  baseline: string;
  variants: VariantSummary[];
  comparisons: Comparison[];
  verdict: string;
  trials: Array<{
    trial: string;
    variant: string;
    seed: unknown;
    validAcc: number;
    validLoss: number;
    bestEpoch: number;
    epochsRun: number;
    stoppedEarly: boolean;
    backend: string;
    seconds: number;
    link?: string;
  }>;
}

/** Compares every trial of the upstream matrix step(s) by one parameter, paired by seed. */
export async function report(input: StepInput<ReportParams>, deps: ActivityDeps): Promise<ReportResult> {
  const params = reportParams.parse(input.params);
  const trials = Object.values(input.inputs)
    .filter(Array.isArray)
    .flat()
    .filter((t): t is TrainResult => typeof t === 'object' && t !== null && 'best' in t && 'params' in t);
  if (trials.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `step ${input.step}: no trial results among its needs [${Object.keys(input.inputs).join(', ')}]; a report needs a matrix step upstream`,
      'BadPipeline',
    );
  }
  const started = Date.now();
  const identity = {
    type: 'report',
    version: REPORT_VERSION,
    params,
    inputs: { sweep: input.sweepId, trials: trials.map((t) => t.ref.dir).sort() },
  };
  const { ref, result, cached } = await deps.store.getOrBuild(identity, async (dir) => {
    const doc = buildReport(input.sweepId, input.step, trials, params, deps.ui);
    await writeFile(join(dir, 'report.json'), JSON.stringify(doc, null, 2));
    await writeFile(join(dir, 'report.md'), renderMarkdown(doc));
    return {
      verdict: doc.verdict,
      variants: doc.variants.map((v) => ({ name: v.name, trials: v.trials, meanAcc: v.validAcc.mean, stdAcc: v.validAcc.std })),
    };
  });
  return {
    ref,
    cached,
    seconds: (Date.now() - started) / 1000,
    files: { markdown: deps.store.path(ref, 'report.md'), json: deps.store.path(ref, 'report.json') },
    verdict: result.verdict,
    variants: result.variants,
  };
}

export function buildReport(
  sweepId: string,
  trainStep: string,
  trials: TrainResult[],
  params: ReportParams,
  ui?: ActivityDeps['ui'],
): ReportDocument {
  const { compare, baseline } = params;
  const variantOf = (t: TrainResult) => String(t.params[compare]);
  // Trials are grouped by every parameter except the compared one and the seed: one group per cell.
  const cellOf = (t: TrainResult) => {
    const cell: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(t.params)) if (k !== compare && k !== 'seed') cell[k] = v;
    return cell;
  };
  const varying = new Set<string>();
  for (const key of Object.keys(trials[0]!.params)) {
    if (key === compare || key === 'seed') continue;
    if (new Set(trials.map((t) => JSON.stringify(t.params[key]))).size > 1) varying.add(key);
  }
  const cellKey = (t: TrainResult) => JSON.stringify(Object.fromEntries([...varying].sort().map((k) => [k, cellOf(t)[k]])));

  const groups = new Map<string, TrainResult[]>();
  for (const t of trials) {
    const key = `${variantOf(t)}|${cellKey(t)}`;
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const variants: VariantSummary[] = [...groups.values()].map((group) => ({
    name: variantOf(group[0]!),
    cell: JSON.parse(cellKey(group[0]!)) as Record<string, unknown>,
    trials: group.length,
    validAcc: meanInterval(group.map((t) => t.best.valid_acc)),
    validLoss: meanInterval(group.map((t) => t.best.valid_loss)),
    bestEpoch: meanInterval(group.map((t) => t.best.epoch)),
    stoppedEarly: group.filter((t) => t.stoppedEarly).length,
    trainSeconds: group.reduce((a, t) => a + t.seconds, 0),
  }));

  const comparisons: Comparison[] = [];
  for (const v of variants) {
    if (v.name === baseline) continue;
    const key = JSON.stringify(v.cell);
    const base = trials.filter((t) => variantOf(t) === baseline && cellKey(t) === key);
    const mine = trials.filter((t) => variantOf(t) === v.name && cellKey(t) === key);
    const diffs = mine.flatMap((t) => {
      const pair = base.find((b) => b.params.seed === t.params.seed);
      return pair ? [t.best.valid_acc - pair.best.valid_acc] : [];
    });
    if (diffs.length > 0) comparisons.push({ variant: v.name, baseline, cell: v.cell, ...pairedComparison(diffs) });
  }

  const link = (t: TrainResult) =>
    ui ? `${ui.url}/namespaces/${ui.namespace}/workflows/${encodeURIComponent(trialWorkflowId(sweepId, trainStep, t.trial))}` : undefined;
  return {
    sweepId,
    compare,
    baseline,
    variants,
    comparisons,
    verdict: verdictOf(variants, comparisons, baseline, compare),
    trials: trials.map((t) => ({
      trial: t.trial,
      variant: variantOf(t),
      seed: t.params.seed,
      validAcc: t.best.valid_acc,
      validLoss: t.best.valid_loss,
      bestEpoch: t.best.epoch,
      epochsRun: t.epochsRun,
      stoppedEarly: t.stoppedEarly,
      backend: t.backend,
      seconds: t.seconds,
      link: link(t),
    })),
  };
}

function verdictOf(variants: VariantSummary[], comparisons: Comparison[], baseline: string, compare: string): string {
  if (comparisons.length === 0) {
    const names = variants.map((v) => `${v.name} ${pct(v.validAcc.mean)}`).join(', ');
    return `Best validation accuracy by ${compare}: ${names}. No trials of the baseline "${baseline}" to pair with, so no comparison was made.`;
  }
  return comparisons
    .map((c) => {
      const cell = Object.keys(c.cell).length ? ` (${Object.entries(c.cell).map(([k, v]) => `${k}=${String(v)}`).join(', ')})` : '';
      const size = `${c.mean >= 0 ? '+' : ''}${(c.mean * 100).toFixed(2)} points`;
      if (c.n < 2) {
        return `${c.variant} vs ${c.baseline}${cell}: ${size} from a single pair of runs — not enough evidence to tell; run more seeds.`;
      }
      const ci = `95% interval ${(c.low * 100).toFixed(2)} to ${(c.high * 100).toFixed(2)} points`;
      const sure =
        c.low > 0
          ? `${c.variant} is better, and the interval excludes zero`
          : c.high < 0
            ? `${c.variant} is worse, and the interval excludes zero`
            : 'the interval includes zero, so the evidence is not enough to call a winner';
      return `${c.variant} vs ${c.baseline}${cell}: ${size} valid accuracy (${ci}; better in ${c.wins} of ${c.n} seeds; one-sided p = ${c.pValueGreater.toFixed(3)}): ${sure}.`;
    })
    .join(' ');
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

export function renderMarkdown(doc: ReportDocument): string {
  const lines: string[] = [];
  lines.push(`# Sweep ${doc.sweepId}`, '', `**Verdict.** ${doc.verdict}`, '');
  lines.push(`## Best validation accuracy by ${doc.compare}`, '');
  lines.push('| variant | cell | trials | valid acc mean ± std | 95% interval | valid loss | best epoch | early-stopped | train s |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const v of doc.variants) {
    const cell = Object.entries(v.cell).map(([k, x]) => `${k}=${String(x)}`).join(' ') || '–';
    lines.push(
      `| ${v.name} | ${cell} | ${v.trials} | ${v.validAcc.mean.toFixed(4)} ± ${v.validAcc.std.toFixed(4)} | ` +
        `${v.validAcc.low.toFixed(4)} – ${v.validAcc.high.toFixed(4)} | ${v.validLoss.mean.toFixed(4)} | ` +
        `${v.bestEpoch.mean.toFixed(1)} | ${v.stoppedEarly}/${v.trials} | ${v.trainSeconds.toFixed(0)} |`,
    );
  }
  if (doc.comparisons.length > 0) {
    lines.push('', `## Paired by seed, against ${doc.baseline}`, '');
    lines.push('| variant | pairs | mean difference | 95% interval | better in | one-sided p |');
    lines.push('|---|---:|---:|---:|---:|---:|');
    for (const c of doc.comparisons) {
      lines.push(
        `| ${c.variant} | ${c.n} | ${(c.mean * 100).toFixed(2)} pts | ${(c.low * 100).toFixed(2)} – ${(c.high * 100).toFixed(2)} pts | ` +
          `${c.wins}/${c.n} | ${Number.isNaN(c.pValueGreater) ? '–' : c.pValueGreater.toFixed(3)} |`,
      );
    }
  }
  lines.push('', '## Trials', '');
  lines.push('| trial | variant | seed | valid acc | valid loss | best epoch | epochs | backend | s |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---|---:|');
  for (const t of doc.trials) {
    const name = t.link ? `[${t.trial}](${t.link})` : t.trial;
    lines.push(
      `| ${name} | ${t.variant} | ${String(t.seed)} | ${t.validAcc.toFixed(4)} | ${t.validLoss.toFixed(4)} | ${t.bestEpoch} | ` +
        `${t.epochsRun}${t.stoppedEarly ? ' (early stop)' : ''} | ${t.backend} | ${t.seconds.toFixed(0)} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}
