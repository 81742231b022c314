import { defineQuery, defineSignal } from '@temporalio/workflow';

/** `skipped`: not run, because a step it needs failed. */
export type StepState = 'waiting' | 'running' | 'done' | 'failed' | 'cancelled' | 'skipped';

export interface TrialProgress {
  trial: string;
  workflowId: string;
  cell: Record<string, unknown>;
  state: StepState;
  epoch: number;
  epochs: number;
  validAcc?: number;
  bestValidAcc?: number;
  cached?: boolean;
  error?: string;
  /** A run of a pruned search: its trial, the rung it trains to (then the epoch it stopped at) and the pruner's decision. */
  search?: SearchRunProgress;
}

/**
 * A run of a pruned search (`<trial>-e<rung>`): `training` to its rung; then `paused` there (its
 * checkpoint kept), `promoted` (a later run continues it from there) or `completed` (its full budget,
 * or early stopping, ended the trial).
 */
export interface SearchRunProgress {
  trial: string;
  /** Epochs the trial had reached when this run started (0: a new trial). */
  from: number;
  rung: number;
  decision: 'training' | 'paused' | 'promoted' | 'completed';
}

export interface SweepProgress {
  sweepId: string;
  pipeline: string;
  steps: Array<{ name: string; uses: string; state: StepState; cached?: boolean; error?: string; trials?: number }>;
  trials: TrialProgress[];
  /** Searches running in workflows of their own (`<sweep>/search-<step>`): their runs are in those workflows' progress. */
  searches?: string[];
  /**
   * A search that continued as new: what its earlier runs (workflow runs, not trials) finished,
   * whose trials are no longer listed in `trials`.
   */
  earlier?: EarlierRuns;
  /** Seeds until sure: the latest decision of each step with `until:`. */
  until?: Array<{ step: string; rounds: number; seeds: number[]; stop: boolean; reason: string }>;
}

/** The trials a search's earlier workflow runs finished (it continued as new since): counts and the best of them. */
export interface EarlierRuns {
  /** Workflow runs before the current one. */
  runs: number;
  done: number;
  failed: number;
  cancelled: number;
  bestValidAcc?: number;
}

/** How many trials the earlier runs finished (done, failed or cancelled): those not listed. */
export const finishedEarlier = (e: EarlierRuns): number => e.done + e.failed + e.cancelled;

/** Two counts of earlier runs as one: a run's own added to those before it, or two search steps' in one sweep. */
export function addEarlier(a: EarlierRuns | undefined, b: EarlierRuns): EarlierRuns {
  if (!a) return b;
  const best = Math.max(a.bestValidAcc ?? -Infinity, b.bestValidAcc ?? -Infinity);
  return {
    runs: a.runs + b.runs,
    done: a.done + b.done,
    failed: a.failed + b.failed,
    cancelled: a.cancelled + b.cancelled,
    ...(Number.isFinite(best) ? { bestValidAcc: best } : {}),
  };
}

/** What a trial's activity reports after each epoch to its trial workflow. */
export interface EpochReport {
  epoch: number;
  epochs: number;
  validAcc: number;
  validLoss: number;
  bestValidAcc: number;
}

export const sweepProgressQuery = defineQuery<SweepProgress>('sweepProgress');
export const trialProgressQuery = defineQuery<TrialProgress>('trialProgress');
export const epochSignal = defineSignal<[EpochReport]>('epoch');
