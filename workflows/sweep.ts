import { ApplicationFailure, isCancellation, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { StoredTrialResults } from '../activities/trial-results';
import type { ReportResult, SearchSummary, StepInput, TrialResult, UntilOutcome } from '../activities/types';
import type { Plan, PlanStep } from '../pipeline/plan';
import { UpstreamFailed, walkDag } from './dag';
import { causeOf, ENDS_CANCELLED, fanOut } from './fan-out';
import { SweepProgressView } from './progress-view';
import { searchAttributes } from './search-attributes';
import { searchRounds } from './search-rounds';
import { executeStep } from './step-options';
import { storedOutput } from './step-results';
import { untilRounds } from './until-rounds';

export interface SweepInput {
  plan: Plan;
  /** Task queue of the trials' activities (the other steps run on the workflow's queue). */
  trainQueue: string;
  /**
   * The Temporal server's blob size limit in bytes (`limit.blobSize.error`), when it is not the
   * default 2 MB: a matrix step whose results would come near it keeps them in the artifact store
   * (./step-results.ts). Set by the client from SWEEPS_BLOB_LIMIT.
   */
  blobLimit?: number;
}

export interface SweepResult {
  sweepId: string;
  pipeline: string;
  /**
   * Each step's result: references and small metrics. A matrix step gives one per trial, or, when
   * those are large, a reference to them in the artifact store (`StoredTrialResults`): this
   * result stays small however many trials ran.
   */
  outputs: Record<string, unknown>;
  /** The result of the step that wrote a report, when one did. */
  report?: ReportResult;
  /** Seeds until sure: each `until:` step's final decision, by step name. */
  until?: Record<string, UntilOutcome>;
}

/** A matrix step's output: its trials' results, or their reference in the artifact store when they are large. */
type StepTrialResults = TrialResult[] | StoredTrialResults;

/**
 * Interprets a plan: the DAG walk (./dag.ts) runs each step once the steps it needs are done; a
 * plain step is one activity of its type, a matrix step fans out into trial workflows
 * (./fan-out.ts); the progress view (./progress-view.ts) shows it all as it happens.
 */
export async function sweepWorkflow(input: SweepInput): Promise<SweepResult> {
  const { plan } = input;
  const sweepId = workflowInfo().workflowId;
  const view = new SweepProgressView(sweepId, plan);
  const fanOutContext = { sweepId, pipeline: plan.pipeline, trialQueue: input.trainQueue, view, ...(input.blobLimit ? { blobLimit: input.blobLimit } : {}) };
  // Large results go to the artifact store; small ones stay the step's output as they always were.
  const outputOf = (step: PlanStep, results: TrialResult[]): StepTrialResults | Promise<StepTrialResults> =>
    storedOutput(sweepId, step.name, input.blobLimit, results) ?? results;

  const decided: Record<string, UntilOutcome> = {};
  const searched: Record<string, SearchSummary> = {};

  const runStep = (step: PlanStep, inputs: Record<string, unknown>): Promise<unknown> => {
    if (step.until) {
      return untilRounds(step, inputs, fanOutContext).then(({ results, outcome }) => {
        decided[step.name] = outcome;
        return outputOf(step, results);
      });
    }
    if (step.search) {
      const s = step.search;
      searched[step.name] = {
        sampler: s.sampler,
        seed: s.seed,
        trialsPerCell: s.trials,
        cells: s.cells.length,
        axes: Object.keys(s.grid),
        params: Object.keys(s.space),
      };
      return searchRounds(step, inputs, fanOutContext);
    }
    if (step.trials) return fanOut(step, inputs, fanOutContext, undefined, (results) => outputOf(step, results));
    const stepInput: StepInput<Record<string, unknown>> = { sweepId, step: step.name, params: step.params ?? {}, inputs };
    if (plan.params) stepInput.pipelineParams = plan.params;
    const upstreamDecisions = step.needs.filter((need) => decided[need]);
    if (upstreamDecisions.length > 0) stepInput.until = Object.fromEntries(upstreamDecisions.map((need) => [need, decided[need]!]));
    const upstreamSearches = step.needs.filter((need) => searched[need]);
    if (upstreamSearches.length > 0) stepInput.search = Object.fromEntries(upstreamSearches.map((need) => [need, searched[need]!]));
    return executeStep(step, workflowInfo().taskQueue, step.summary ?? `${step.uses} ${step.name}`, stepInput);
  };

  view.refresh();
  const settled = await walkDag(plan.steps, runStep, (step, state, detail) => view.stepChanged(step, state, detail));
  const result = finish(sweepId, plan, settled, view);
  if (Object.keys(decided).length > 0) result.until = decided;
  return result;
}

/** Ends the sweep as done, cancelled or failed (naming each failed step), with its search attributes. */
function finish(sweepId: string, plan: Plan, settled: PromiseSettledResult<unknown>[], view: SweepProgressView): SweepResult {
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
  const best = view.bestValidAcc();
  upsertSearchAttributes([
    { key: searchAttributes.state, value: 'done' },
    ...(best !== undefined ? [{ key: searchAttributes.bestValidAcc, value: best }] : []),
  ]);
  return { sweepId, pipeline: plan.pipeline, outputs, report: Object.values(outputs).find(isReportResult) };
}

function isReportResult(output: unknown): output is ReportResult {
  const o = output as Partial<ReportResult> | undefined;
  return typeof o === 'object' && o !== null && typeof o.verdict === 'string' && typeof o.files === 'object';
}
