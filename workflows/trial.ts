import { isCancellation, patched, setCurrentDetails, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { StepInput, TrialResult } from '../activities/types';
import type { PlanStep, PlanTrial } from '../pipeline/plan';
import { epochSignal, trialProgressQuery, type TrialProgress } from './progress';
import { searchAttributes } from './search-attributes';
import { executeStep } from './step-options';

export interface TrialInput {
  sweepId: string;
  /** The step's settings; sweeps started before this was slimmed also sent its `trials` (ignored). */
  step: Omit<PlanStep, 'trials'>;
  trial: PlanTrial & { searchRun?: SearchRun };
  inputs: Record<string, unknown>;
  trainQueue: string;
}

/** A run of a pruned search (`<trial>-e<rung>`): its trial, the epochs that trial had reached, the rung it trains to. */
export interface SearchRun {
  trial: string;
  from: number;
  rung: number;
}

/** Trials started before runs of a pruned search carried TrialRung and TrialDecision must replay without them. */
export const RUNG_ATTRIBUTES = 'trial-rung-attributes';

/**
 * One trial of a matrix step, as its own workflow: its history holds its epochs' progress, so the
 * sweep's history grows with the number of trials, never with epochs.
 */
export async function trialWorkflow(input: TrialInput): Promise<TrialResult> {
  const { trial, step } = input;
  const epochs = Number(trial.params.epochs ?? 0);
  const progress: TrialProgress = {
    trial: trial.id,
    workflowId: workflowInfo().workflowId,
    cell: trial.cell,
    state: 'running',
    epoch: 0,
    epochs,
  };
  setHandler(trialProgressQuery, () => progress);
  setHandler(epochSignal, (report) => {
    progress.epoch = report.epoch;
    progress.epochs = report.epochs;
    progress.validAcc = report.validAcc;
    progress.bestValidAcc = report.bestValidAcc;
    setCurrentDetails(describeProgress(progress));
  });
  setCurrentDetails(describeProgress(progress));
  // `TrialDecision = "promoted"` finds the runs that continue a trial from the rung where it paused.
  const run = trial.searchRun && patched(RUNG_ATTRIBUTES) ? trial.searchRun : undefined;
  if (run) {
    upsertSearchAttributes([
      { key: searchAttributes.rung, value: run.rung },
      { key: searchAttributes.decision, value: run.from > 0 ? 'promoted' : 'sampled' },
    ]);
  }

  const stepInput: StepInput<Record<string, unknown>> = {
    sweepId: input.sweepId,
    step: step.name,
    trial: trial.id,
    params: trial.params,
    inputs: input.inputs,
  };
  try {
    const result = (await executeStep(step, input.trainQueue, `${step.uses} ${trialLabel(trial)}`, stepInput)) as TrialResult;
    progress.state = 'done';
    progress.epoch = result.epochsRun;
    progress.bestValidAcc = result.best.valid_acc;
    progress.cached = result.cached;
    // A run of a pruned search that stopped at its rung (pause_at_epoch) is paused, its checkpoint kept: `TrialState = "paused"` finds them.
    const pauseAt = trial.params.pause_at_epoch;
    const paused = typeof pauseAt === 'number' && result.epochsRun === pauseAt && pauseAt < Number(trial.params.epochs);
    upsertSearchAttributes([
      { key: searchAttributes.state, value: paused ? 'paused' : 'done' },
      { key: searchAttributes.bestValidAcc, value: result.best.valid_acc },
      // The epoch it stopped at: its rung, or earlier when early stopping ended the trial.
      ...(run ? [{ key: searchAttributes.rung, value: result.epochsRun }] : []),
    ]);
    setCurrentDetails(describeProgress(progress));
    return result;
  } catch (err) {
    progress.state = isCancellation(err) ? 'cancelled' : 'failed';
    progress.error = isCancellation(err) ? undefined : (err as Error).message;
    upsertSearchAttributes([{ key: searchAttributes.state, value: progress.state }]);
    setCurrentDetails(describeProgress(progress));
    throw err;
  }
}

/** `lr=0.001 seed=1`, from the matrix values (plans made before labels existed: the trial id). */
export function trialLabel(trial: PlanTrial): string {
  return trial.label ?? trial.id;
}

function describeProgress(p: TrialProgress): string {
  const acc = (v?: number) => (v === undefined ? '–' : v.toFixed(4));
  return [
    `**${p.state}** · epoch ${p.epoch} of ${p.epochs}`,
    `valid accuracy ${acc(p.validAcc)} (best ${acc(p.bestValidAcc)})`,
    p.error ? `error: ${p.error}` : '',
  ]
    .filter(Boolean)
    .join('\n\n');
}
