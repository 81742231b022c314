import { ApplicationFailure, isCancellation, ParentClosePolicy, patched, startChild } from '@temporalio/workflow';
import type { TrialResult } from '../activities/types';
import { trialWorkflowId, type PlanStep, type PlanTrial } from '../pipeline/plan';
import type { TrialProgress } from './progress';
import type { SweepProgressView } from './progress-view';
import { searchAttributes } from './search-attributes';
import { trialLabel, trialWorkflow } from './trial';

/**
 * Sweeps cancelled before this change ended as failed (their cancelled trials counted as failures);
 * a sweep being replayed mid-cancellation must keep doing so.
 */
export const ENDS_CANCELLED = 'sweep-ends-cancelled';

export interface FanOutContext {
  sweepId: string;
  pipeline: string;
  /** Task queue of the trials' activities. */
  trialQueue: string;
  view: SweepProgressView;
  /** The server's blob size limit, when the sweep names one (see SweepInput.blobLimit). */
  blobLimit?: number;
}

/**
 * Runs a matrix step: one child workflow per trial, at most `concurrency` at a time. Every trial
 * is left to finish even when others fail, so a resume redoes only the failed ones. `trials`: a
 * round of them (seeds until sure runs the step's trials in rounds); by default all. `output`: the
 * step's output from its results (a grid's may go to the artifact store, ./step-results.ts).
 */
export async function fanOut<O = TrialResult[]>(
  step: PlanStep,
  inputs: Record<string, unknown>,
  ctx: FanOutContext,
  trials: PlanTrial[] = step.trials ?? [],
  output: (results: TrialResult[]) => O | Promise<O> = (results) => results as O,
): Promise<O> {
  const slots = new Semaphore(step.concurrency);
  const settled = await Promise.allSettled(
    trials.map(async (trial) => {
      const view = ctx.view.addTrial({
        trial: trial.id,
        workflowId: trialWorkflowId(ctx.sweepId, trial.id),
        cell: trial.cell,
        state: 'waiting',
        epoch: 0,
        epochs: Number(trial.params.epochs ?? 0),
      });
      await slots.acquire();
      try {
        view.state = 'running';
        ctx.view.refresh();
        const result = await runTrial(step, trial, inputs, view, ctx);
        view.state = 'done';
        view.epoch = result.epochsRun;
        view.bestValidAcc = result.best.valid_acc;
        view.cached = result.cached;
        return result;
      } catch (err) {
        view.state = isCancellation(err) ? 'cancelled' : 'failed';
        view.error = isCancellation(err) ? undefined : causeOf(err);
        throw err;
      } finally {
        slots.release();
        ctx.view.refresh();
      }
    }),
  );
  // A cancelled sweep ends as cancelled, not as failed trials: rethrow the cancellation itself.
  const cancelled = settled.find((s) => s.status === 'rejected' && isCancellation(s.reason));
  if (cancelled && patched(ENDS_CANCELLED)) throw (cancelled as PromiseRejectedResult).reason;
  const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [`${trials[i]!.id}: ${causeOf(s.reason)}`] : []));
  if (failed.length > 0) {
    throw ApplicationFailure.create({
      type: 'TrialsFailed',
      message: `${failed.length} of ${trials.length} trials of step "${step.name}" failed: ${failed.join('; ')}`,
      nonRetryable: true,
    });
  }
  return output(settled.map((s) => (s as PromiseFulfilledResult<TrialResult>).value));
}

async function runTrial(step: PlanStep, trial: PlanTrial, inputs: Record<string, unknown>, view: TrialProgress, ctx: FanOutContext): Promise<TrialResult> {
  // The trial needs its step's settings, not its siblings: with every trial in each child's
  // input, the sweep's history would grow with the square of the number of trials.
  const { trials: _siblings, ...settings } = step;
  const handle = await startChild(trialWorkflow, {
    workflowId: view.workflowId,
    args: [{ sweepId: ctx.sweepId, step: settings, trial, inputs, trainQueue: ctx.trialQueue }],
    staticSummary: `${ctx.pipeline} · trial ${trialLabel(trial)}`,
    staticDetails: trialDetails(ctx.sweepId, step, trial),
    parentClosePolicy: ParentClosePolicy.TERMINATE,
    typedSearchAttributes: [
      { key: searchAttributes.pipeline, value: ctx.pipeline },
      { key: searchAttributes.kind, value: 'trial' },
      { key: searchAttributes.variant, value: trial.variant ?? trial.id },
      { key: searchAttributes.seed, value: trial.seed ?? Number(trial.params.seed ?? 0) },
      { key: searchAttributes.state, value: 'running' },
    ],
  });
  return handle.result();
}

function trialDetails(sweepId: string, step: PlanStep, trial: PlanTrial): string {
  const params = Object.entries(trial.params)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  return `Sweep \`${sweepId}\`, step \`${step.name}\`, trial \`${trial.id}\`.\n\nParameters: ${params}`;
}

/** A counting semaphore made of workflow promises (deterministic: no timers, no I/O). */
class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** The message that says what went wrong: activity and child-workflow failures wrap it. */
export function causeOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}
