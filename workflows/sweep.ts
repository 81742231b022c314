import {
  ApplicationFailure,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SweepActivities } from '../activities';
import type { ReportResult, StepInput, TrialResult } from '../activities/types';
import { trialWorkflowId, type Plan, type PlanStep, type PlanTrial } from '../pipeline/plan';
import { sweepProgressQuery, type SweepProgress, type TrialProgress } from './progress';
import { searchAttributes } from './search-attributes';
import { activityOptionsFor } from './step-options';
import { trialLabel, trialWorkflow } from './trial';

export interface SweepInput {
  plan: Plan;
  /** Task queue of the training activities (data and report steps run on the workflow's queue). */
  trainQueue: string;
}

export interface SweepResult {
  sweepId: string;
  pipeline: string;
  /** Each step's result: references and small metrics (a matrix step gives one per trial). */
  outputs: Record<string, unknown>;
  report?: ReportResult;
}

const activities = proxyActivities<SweepActivities>({ startToCloseTimeout: '15m' });

/**
 * Sweeps cancelled before this change ended as failed (their cancelled trials counted as failures);
 * a sweep being replayed mid-cancellation must keep doing so.
 */
const ENDS_CANCELLED = 'sweep-ends-cancelled';

/**
 * Interprets a plan: every step starts as soon as the steps it needs have finished, so independent
 * steps run in parallel; a matrix step fans out into one child workflow per trial, at most
 * `concurrency` at a time. Upstream results reach downstream steps as references.
 */
/** A step that did not run because a step it needs failed (that failure is reported once). */
class UpstreamFailed extends Error {
  constructor(readonly step: string) {
    super(`${step} did not run: a step it needs failed`);
  }
}

export async function sweepWorkflow(input: SweepInput): Promise<SweepResult> {
  const { plan } = input;
  const sweepId = workflowInfo().workflowId;
  const progress: SweepProgress = {
    sweepId,
    pipeline: plan.pipeline,
    steps: plan.steps.map((s) => ({ name: s.name, uses: s.uses, state: 'waiting', trials: s.trials?.length })),
    trials: [],
  };
  setHandler(sweepProgressQuery, () => progress);
  const stepState = (name: string) => progress.steps.find((s) => s.name === name)!;
  const refreshDetails = () => setCurrentDetails(describeSweep(progress));

  const started = new Map<string, Promise<unknown>>();
  const run = (step: PlanStep): Promise<unknown> => {
    let running = started.get(step.name);
    if (!running) {
      running = (async () => {
        const upstream = step.needs.map((need) => plan.steps.find((s) => s.name === need)!);
        const state = stepState(step.name);
        let values: unknown[];
        try {
          values = await Promise.all(upstream.map(run));
        } catch (err) {
          if (isCancellation(err)) throw err;
          // Said once, by the step that failed; this one only did not run.
          state.state = 'skipped';
          refreshDetails();
          throw new UpstreamFailed(step.name);
        }
        const inputs = Object.fromEntries(step.needs.map((need, i) => [need, values[i]]));
        state.state = 'running';
        refreshDetails();
        try {
          const output = step.trials ? await runMatrix(step, inputs) : await runStep(step, inputs);
          state.state = 'done';
          state.cached = isCached(output);
          return output;
        } catch (err) {
          state.state = isCancellation(err) ? 'cancelled' : 'failed';
          state.error = isCancellation(err) ? undefined : (err as Error).message;
          throw err;
        } finally {
          refreshDetails();
        }
      })();
      started.set(step.name, running);
    }
    return running;
  };

  const runStep = (step: PlanStep, inputs: Record<string, unknown>): Promise<unknown> => {
    const stepInput: StepInput<Record<string, unknown>> = { sweepId, step: step.name, params: step.params ?? {}, inputs };
    const options = { ...activityOptionsFor(step, workflowInfo().taskQueue), summary: step.summary ?? `${step.uses} ${step.name}` };
    return activities[step.uses]!.executeWithOptions(options, [stepInput]);
  };

  const runMatrix = async (step: PlanStep, inputs: Record<string, unknown>): Promise<TrialResult[]> => {
    const trials = step.trials ?? [];
    const slots = new Semaphore(step.concurrency);
    const settled = await Promise.allSettled(
      trials.map(async (trial) => {
        const view: TrialProgress = {
          trial: trial.id,
          workflowId: trialWorkflowId(sweepId, trial.id),
          cell: trial.cell,
          state: 'waiting',
          epoch: 0,
          epochs: Number(trial.params.epochs ?? 0),
        };
        progress.trials.push(view);
        await slots.acquire();
        try {
          view.state = 'running';
          refreshDetails();
          const result = await runTrial(step, trial, inputs, view.workflowId);
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
          refreshDetails();
        }
      }),
    );
    // A cancelled sweep ends as cancelled, not as failed trials: rethrow the cancellation itself.
    const cancelled = settled.find((s) => s.status === 'rejected' && isCancellation(s.reason));
    if (cancelled && patched(ENDS_CANCELLED)) throw (cancelled as PromiseRejectedResult).reason;
    const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [`${trials[i]!.id}: ${causeOf(s.reason)}`] : []));
    if (failed.length > 0) {
      // Every other trial was left to finish: its result is cached, so a resume redoes only these.
      throw ApplicationFailure.create({
        type: 'TrialsFailed',
        message: `${failed.length} of ${trials.length} trials of step "${step.name}" failed: ${failed.join('; ')}`,
        nonRetryable: true,
      });
    }
    return settled.map((s) => (s as PromiseFulfilledResult<TrialResult>).value);
  };

  const runTrial = async (step: PlanStep, trial: PlanTrial, inputs: Record<string, unknown>, workflowId: string) => {
    // The trial needs its step's settings, not its siblings: with every trial in each child's
    // input, the sweep's history would grow with the square of the number of trials.
    const { trials: _siblings, ...settings } = step;
    const handle = await startChild(trialWorkflow, {
      workflowId,
      args: [{ sweepId, step: settings, trial, inputs, trainQueue: input.trainQueue }],
      staticSummary: `${plan.pipeline} · trial ${trialLabel(trial)}`,
      staticDetails: trialDetails(sweepId, step, trial),
      parentClosePolicy: ParentClosePolicy.TERMINATE,
      typedSearchAttributes: [
        { key: searchAttributes.pipeline, value: plan.pipeline },
        { key: searchAttributes.kind, value: 'trial' },
        { key: searchAttributes.variant, value: trial.variant ?? trial.id },
        { key: searchAttributes.seed, value: trial.seed ?? Number(trial.params.seed ?? 0) },
        { key: searchAttributes.state, value: 'running' },
      ],
    });
    return handle.result();
  };

  refreshDetails();
  const settled = await Promise.allSettled(plan.steps.map(run));
  const outputs: Record<string, unknown> = {};
  const failures: string[] = [];
  const skipped: string[] = [];
  settled.forEach((s, i) => {
    const name = plan.steps[i]!.name;
    if (s.status === 'fulfilled') outputs[name] = s.value;
    else if (s.reason instanceof UpstreamFailed) skipped.push(name);
    else failures.push(`${name}: ${causeOf(s.reason)}`);
  });
  if (skipped.length > 0) failures.push(`not run: ${skipped.join(', ')}`);
  const cancelled = settled.find((s) => s.status === 'rejected' && isCancellation(s.reason));
  if (cancelled && patched(ENDS_CANCELLED)) {
    upsertSearchAttributes([{ key: searchAttributes.state, value: 'cancelled' }]);
    throw (cancelled as PromiseRejectedResult).reason;
  }
  if (failures.length > 0) {
    upsertSearchAttributes([{ key: searchAttributes.state, value: 'failed' }]);
    throw ApplicationFailure.create({
      type: 'SweepFailed',
      message: `sweep ${sweepId} failed: ${failures.join(' | ')}. Fix the cause, then \`sweeps resume ${sweepId}\`: finished work is reused.`,
      nonRetryable: true,
    });
  }
  const report = Object.values(outputs).find(isReportResult);
  const best = Math.max(...progress.trials.map((t) => t.bestValidAcc ?? -Infinity));
  upsertSearchAttributes([
    { key: searchAttributes.state, value: 'done' },
    ...(Number.isFinite(best) ? [{ key: searchAttributes.bestValidAcc, value: best }] : []),
  ]);
  return { sweepId, pipeline: plan.pipeline, outputs, report };
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

function trialDetails(sweepId: string, step: PlanStep, trial: PlanTrial): string {
  const params = Object.entries(trial.params)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  return `Sweep \`${sweepId}\`, step \`${step.name}\`, trial \`${trial.id}\`.\n\nParameters: ${params}`;
}

function describeSweep(p: SweepProgress): string {
  const steps = p.steps.map((s) => `${s.name}: ${s.state}${s.cached ? ' (cached)' : ''}`).join(' · ');
  const done = p.trials.filter((t) => t.state === 'done').length;
  const running = p.trials.filter((t) => t.state === 'running').length;
  const failed = p.trials.filter((t) => t.state === 'failed').length;
  const cancelled = p.trials.filter((t) => t.state === 'cancelled').length;
  const best = Math.max(...p.trials.map((t) => t.bestValidAcc ?? -Infinity));
  const trials = p.trials.length
    ? `\n\ntrials: ${done} done, ${running} running, ${failed} failed${cancelled ? `, ${cancelled} cancelled` : ''} of ${p.trials.length}` +
      (Number.isFinite(best) ? ` · best valid accuracy ${best.toFixed(4)}` : '')
    : '';
  return `${steps}${trials}`;
}

function isCached(output: unknown): boolean | undefined {
  if (Array.isArray(output)) return output.every((o) => (o as { cached?: boolean }).cached === true);
  return (output as { cached?: boolean } | undefined)?.cached;
}

function causeOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  // Activity and child-workflow failures wrap the error that says what went wrong.
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

function isReportResult(output: unknown): output is ReportResult {
  const o = output as Partial<ReportResult> | undefined;
  return typeof o === 'object' && o !== null && typeof o.verdict === 'string' && typeof o.files === 'object';
}
