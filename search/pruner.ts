import type { Direction } from './sampler';

/**
 * What a pruner sees and decides. Decisions are pure functions of the recorded results, so a sweep
 * interrupted mid-rung makes the same decisions on resume as one that ran straight through. A
 * stopped trial is paused at its epoch checkpoint, never killed: a later promotion continues it
 * from that epoch.
 */

/** One trial's progress as recorded in history. `trials` arrays list trials in the order they started (ties go to the earlier one). */
export interface TrialProgress {
  trial: string;
  /** Metrics after each finished epoch, epoch 1 first. */
  epochs: ReadonlyArray<Readonly<Record<string, number>>>;
  state: 'running' | 'paused' | 'complete';
}

/** After a trial reports an epoch: go on, or pause at that epoch's checkpoint. */
export type EpochDecision = { action: 'continue' } | { action: 'pause'; trial: string; atEpoch: number; reason: string };

/** Continue a paused trial from its checkpoint at `fromEpoch` up to `toEpoch` (where it is judged again). */
export interface Promotion {
  trial: string;
  fromEpoch: number;
  toEpoch: number;
  reason: string;
}

export interface Pruner {
  afterEpoch(trial: string, trials: readonly TrialProgress[]): EpochDecision;
  /** When a slot frees: the paused trial to continue, or null to start a new trial. */
  promotion(trials: readonly TrialProgress[]): Promotion | null;
}

/** The metric decisions are made on, and which way is better. */
export interface Objective {
  metric: string;
  direction: Direction;
}

export const proceed: EpochDecision = { action: 'continue' };

export function findTrial(trials: readonly TrialProgress[], trial: string): TrialProgress {
  const found = trials.find((t) => t.trial === trial);
  if (!found) throw new Error(`no recorded progress for trial "${trial}"`);
  return found;
}

/** The metric after `epoch` (1-based), with a clear error when the trainer did not report it. */
export function metricAt(t: TrialProgress, epoch: number, metric: string): number {
  const m = t.epochs[epoch - 1];
  if (!m) throw new Error(`trial "${t.trial}" has ${t.epochs.length} epochs recorded, not ${epoch}`);
  const v = m[metric];
  if (typeof v !== 'number') throw new Error(`trial "${t.trial}" epoch ${epoch} has no metric "${metric}" (it has: ${Object.keys(m).join(', ') || 'none'})`);
  return v;
}

/** A score where larger is better in either direction; NaN (a diverged run) is the worst. */
export function score(value: number, direction: Direction): number {
  if (Number.isNaN(value)) return -Infinity;
  return direction === 'maximize' ? value : -value;
}
