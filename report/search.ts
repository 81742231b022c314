/**
 * A search as its report shows it, from the runs it made in the order it made them: each trial
 * with its parameters, the epochs it reached and the pruning decisions on it, and the best value
 * found so far against the epochs spent. Pure: the activity hands over plain values.
 */
import type { SearchSummary } from '../activities/types';
import type { SearchReport, SearchTrialSummary } from './document';
import * as f from './format';

/** One run of a search step as the report reads it (a pruned search runs a trial rung by rung: `<trial>-e<rung>`). */
export interface SearchRunInput {
  trial: string;
  params: Record<string, unknown>;
  epochsRun: number;
  stoppedEarly: boolean;
  bestValidAcc: number;
}

/** A run's trial: `gru_mean-h8-s1-t3-e9` → `gru_mean-h8-s1-t3`. */
export const trialOfRun = (run: string) => run.replace(/-e\d+$/, '');

/** How many best trials the report lists. */
const BEST = 10;

export function searchReport(step: string, summary: SearchSummary, runs: SearchRunInput[]): SearchReport {
  const trials = new Map<string, SearchTrialSummary>();
  const cellOf = (params: Record<string, unknown>) => Object.fromEntries(summary.axes.map((a) => [a, params[a]]));
  const progress: SearchReport['progress'] = [];
  const spent = new Map<string, number>();
  const best = new Map<string, number>();
  let pruned = false;
  for (const run of runs) {
    const id = trialOfRun(run.trial);
    const maxEpochs = Number(run.params.epochs);
    if (run.params.pause_at_epoch !== undefined || id !== run.trial) pruned = true;
    const before = trials.get(id);
    const cell = cellOf(run.params);
    const label = f.cell(cell);
    // Runs go rung to rung: each continues from the epoch the one before it stopped at.
    spent.set(label, (spent.get(label) ?? 0) + run.epochsRun - (before?.epochs ?? 0));
    const completed = run.stoppedEarly || run.epochsRun >= maxEpochs;
    const trial: SearchTrialSummary = {
      trial: id,
      number: Number(/-t(\d+)$/.exec(id)?.[1] ?? trials.size),
      cell,
      params: Object.fromEntries([...summary.axes, ...summary.params].map((p) => [p, run.params[p]])),
      bestValidAcc: Math.max(run.bestValidAcc, before?.bestValidAcc ?? -Infinity),
      epochs: run.epochsRun,
      maxEpochs,
      // A later run of a trial means the pruner let it go on from where the one before stopped.
      promotedAt: before ? [...before.promotedAt, before.epochs] : [],
      decision: completed ? 'completed' : 'paused',
    };
    trials.set(id, trial);
    best.set(label, Math.max(best.get(label) ?? -Infinity, run.bestValidAcc));
    progress.push({ cell: label, epochsSpent: spent.get(label)!, bestSoFar: best.get(label)!, trial: id });
  }
  const all = [...trials.values()].sort((a, b) => b.bestValidAcc - a.bestValidAcc || a.number - b.number);
  const epochsSpent = [...spent.values()].reduce((a, b) => a + b, 0);
  return {
    step,
    ...summary,
    pruned,
    epochsSpent,
    fullBudgetEpochs: all.reduce((n, t) => n + t.maxEpochs, 0),
    best: all.slice(0, BEST).map((t) => ({ trial: t.trial, bestValidAcc: t.bestValidAcc, epochs: t.epochs, params: t.params, decision: decisionText(t) })),
    trials: [...trials.values()].sort((a, b) => a.number - b.number || a.trial.localeCompare(b.trial)),
    progress,
  };
}

/** `paused at 3`, `completed (promoted at 1, 3)`. */
export function decisionText(t: Pick<SearchTrialSummary, 'decision' | 'epochs' | 'promotedAt'>): string {
  const promoted = t.promotedAt.length ? ` (promoted at ${t.promotedAt.join(', ')})` : '';
  return `${t.decision === 'paused' ? `paused at ${t.epochs}` : 'completed'}${promoted}`;
}

/** The report's verdict for a search: the best trial of each cell, with its parameters, and what pruning saved. */
export function searchVerdict(s: SearchReport): string {
  const byCell = new Map<string, SearchTrialSummary>();
  for (const t of s.trials) {
    const key = f.cell(t.cell);
    const seen = byCell.get(key);
    if (!seen || t.bestValidAcc > seen.bestValidAcc) byCell.set(key, t);
  }
  const params = (t: SearchTrialSummary) =>
    s.params.map((p) => `${p}=${typeof t.params[p] === 'number' ? +(t.params[p] as number).toPrecision(3) : String(t.params[p])}`).join(' ');
  const bests = [...byCell.entries()].map(
    ([cell, t]) => `${cell === '–' ? '' : `${cell}: `}${f.pct(t.bestValidAcc)} (trial ${t.trial}, ${params(t)}, ${t.epochs} epochs)`,
  );
  const paused = s.trials.filter((t) => t.decision === 'paused').length;
  const pruning = s.pruned
    ? ` ${paused} of ${s.trials.length} trials were paused at a rung; the search trained ${s.epochsSpent} epochs of the ${s.fullBudgetEpochs} its trials would take in full.`
    : ` It trained ${s.epochsSpent} epochs.`;
  return `Search (${s.step}), ${s.sampler} over ${s.params.join(', ')}: best validation accuracy ${bests.join('; ')}.${pruning}`;
}
