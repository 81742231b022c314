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
}

export interface SweepProgress {
  sweepId: string;
  pipeline: string;
  steps: Array<{ name: string; uses: string; state: StepState; cached?: boolean; error?: string; trials?: number }>;
  trials: TrialProgress[];
  /** Seeds until sure: the latest decision of each step with `until:`. */
  until?: Array<{ step: string; rounds: number; seeds: number[]; stop: boolean; reason: string }>;
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
