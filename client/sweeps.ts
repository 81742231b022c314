import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type WorkflowExecutionInfo,
  type WorkflowExecutionStatusName,
  type WorkflowHandle,
} from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { withContracts } from '../pipeline/contracts';
import { sweepIdFor, trialWorkflowId, type Plan } from '../pipeline/plan';
import { addEarlier, sweepProgressQuery, trialProgressQuery, type StepState, type SweepProgress, type TrialProgress } from '../workflows/progress';
import { searchAttributes } from '../workflows/search-attributes';
import type { SweepInput, SweepResult, sweepWorkflow } from '../workflows/sweep';
import type { SweepsConfig } from './config';
import { ensureSearchAttributes, unreachable, type TemporalTarget } from './server';

export type SweepHandle = WorkflowHandle<typeof sweepWorkflow>;

export async function connectClient(target: TemporalTarget): Promise<Client> {
  const connection = await Connection.connect(target.connectionOptions).catch((err: unknown) => {
    throw unreachable(target, err);
  });
  await ensureSearchAttributes(connection, target.namespace);
  return new Client({ connection, namespace: target.namespace });
}

export function uiLink(target: TemporalTarget, workflowId: string): string | undefined {
  return target.uiUrl ? `${target.uiUrl}/namespaces/${target.namespace}/workflows/${encodeURIComponent(workflowId)}` : undefined;
}

/**
 * Starts the sweep of a plan under its stable id, or attaches to it when that sweep is already
 * running. A finished or failed sweep of the same plan starts again: its finished steps are
 * cache hits, so this is also how a failed sweep is resumed.
 */
export async function startOrAttach(client: Client, config: SweepsConfig, plan: Plan): Promise<{ handle: SweepHandle; attached: boolean }> {
  const workflowId = sweepIdFor(plan);
  const existing = client.workflow.getHandle<typeof sweepWorkflow>(workflowId);
  try {
    const description = await existing.describe();
    if (description.status.name === 'RUNNING') return { handle: existing, attached: true };
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  // A plan read back from an older sweep's history lacks the step contracts: complete it.
  const input: SweepInput = { plan: withContracts(plan), trainQueue: config.trainQueue, ...(config.blobLimit ? { blobLimit: config.blobLimit } : {}) };
  try {
    const handle = await client.workflow.start<typeof sweepWorkflow>('sweepWorkflow', {
      taskQueue: config.taskQueue,
      workflowId,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `sweep ${plan.pipeline}: ${plan.description ?? plan.source}`,
      staticDetails: describePlan(plan),
      typedSearchAttributes: [
        { key: searchAttributes.pipeline, value: plan.pipeline },
        { key: searchAttributes.kind, value: 'sweep' },
        { key: searchAttributes.state, value: 'running' },
      ],
    });
    return { handle, attached: false };
  } catch (err) {
    // Someone else started it between our look and our start: watching it is what the user wants.
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { handle: existing, attached: true };
    throw err;
  }
}

/** The input of a sweep's latest run, read back from its history (the source of truth). */
export async function sweepInputOf(client: Client, sweepId: string): Promise<SweepInput> {
  return (await sweepRecord(client, sweepId)).input;
}

/** What a sweep's history says: the input it was started with, and how it ended (if it did). */
async function sweepRecord(client: Client, sweepId: string): Promise<{ input: SweepInput; result?: SweepResult; failure?: string }> {
  const history = await client.workflow.getHandle(sweepId).fetchHistory();
  const events = history.events ?? [];
  const converter = client.options.loadedDataConverter.payloadConverter;
  const payload = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`sweep ${sweepId}: its history has no input`);
  const input = converter.fromPayload<SweepInput>(payload);
  const last = events[events.length - 1];
  const resultPayload = last?.workflowExecutionCompletedEventAttributes?.result?.payloads?.[0];
  const failure = last?.workflowExecutionFailedEventAttributes?.failure;
  return {
    input,
    result: resultPayload ? converter.fromPayload<SweepResult>(resultPayload) : undefined,
    failure: failure ? rootMessage(failure) : undefined,
  };
}

function rootMessage(failure: { message?: string | null; cause?: unknown }): string {
  let f = failure;
  while (f.cause) f = f.cause as typeof f;
  return f.message ?? 'failed';
}

/** A trial as status and list show it: the plan's view, completed by what the server knows. */
export interface TrialStatus extends TrialProgress {
  /** The trial workflow's execution status, when it has started. */
  status?: WorkflowExecutionStatusName;
}

export interface SweepStatus {
  sweepId: string;
  runId: string;
  status: WorkflowExecutionStatusName;
  startTime: string;
  closeTime?: string;
  historyEvents: number;
  historyBytes?: number;
  /** The effective pipeline the sweep runs: the plan it was started with (overrides applied). */
  plan: Plan;
  /** Whether steps and epochs come from a worker answering the progress query right now. */
  live: boolean;
  steps: SweepProgress['steps'];
  trials: TrialStatus[];
  result?: SweepResult;
  failure?: string;
}

/**
 * Everything known about a sweep, whether or not a worker runs: the plan from its history, trial
 * states from visibility (search attributes), and, while a worker answers, live progress.
 */
export async function sweepStatus(client: Client, sweepId: string): Promise<SweepStatus> {
  const handle = client.workflow.getHandle(sweepId);
  const description = await handle.describe();
  const record = await sweepRecord(client, sweepId);
  const running = description.status.name === 'RUNNING';
  const live = running ? await liveProgress(client, sweepId) : undefined;
  const children = await trialExecutions(client, sweepId);
  const progress = live ?? (await progressFromVisibility(client, sweepId, record.input.plan, description.status.name, children));
  return {
    sweepId,
    runId: description.runId,
    status: description.status.name,
    startTime: description.startTime.toISOString(),
    closeTime: description.closeTime?.toISOString(),
    historyEvents: description.historyLength,
    historyBytes: description.historySize,
    plan: record.input.plan,
    live: live !== undefined,
    steps: progress.steps,
    trials: progress.trials.map((t) => ({ ...t, status: children.get(t.workflowId)?.status.name })),
    result: record.result,
    failure: record.failure,
  };
}

/**
 * The sweep's progress from the workflow itself (a query: needs a worker to answer) with each
 * running trial's epoch; undefined when no worker answers within the time given.
 */
export async function liveProgress(client: Client, sweepId: string, timeoutMs = 3000): Promise<SweepProgress | undefined> {
  const deadline = () => Date.now() + timeoutMs;
  let progress: SweepProgress;
  try {
    progress = await client.withDeadline(deadline(), () => client.workflow.getHandle(sweepId).query(sweepProgressQuery));
  } catch {
    return undefined;
  }
  // A search runs in a workflow of its own: its runs are in that workflow's progress.
  for (const id of progress.searches ?? []) {
    try {
      const search = await client.withDeadline(deadline(), () => client.workflow.getHandle(id).query(sweepProgressQuery));
      progress.trials.push(...search.trials);
      if (search.earlier) progress.earlier = addEarlier(progress.earlier, search.earlier);
    } catch {
      // not started yet, or no worker answers for it
    }
  }
  await Promise.all(
    progress.trials
      .filter((t) => t.state === 'running')
      .map(async (t) => {
        try {
          const trial = await client.withDeadline(deadline(), () => client.workflow.getHandle(t.workflowId).query(trialProgressQuery));
          Object.assign(t, { epoch: trial.epoch, epochs: trial.epochs, validAcc: trial.validAcc, bestValidAcc: trial.bestValidAcc });
        } catch {
          // the trial's workflow may not have had its first task yet
        }
      }),
  );
  return progress;
}

/**
 * Progress as visibility records it, for when no worker answers queries (or the sweep is over):
 * the plan gives the trials, each trial workflow's status and search attributes give its state.
 */
export async function progressFromVisibility(
  client: Client,
  sweepId: string,
  plan: Plan,
  sweepStatusName: WorkflowExecutionStatusName,
  known?: Map<string, WorkflowExecutionInfo>,
): Promise<SweepProgress> {
  const children = known ?? (await trialExecutions(client, sweepId));
  // Seeds until sure starts only the rounds it needs: once the sweep has ended, trials it never started are not part of it.
  const ended = sweepStatusName !== 'RUNNING';
  const trials: TrialProgress[] = plan.steps.flatMap((step) =>
    (step.trials ?? [])
      .filter((trial) => !(step.until && ended && !children.has(trialWorkflowId(sweepId, trial.id))))
      .map((trial) => {
        const workflowId = trialWorkflowId(sweepId, trial.id);
        const info = children.get(workflowId);
        return {
          trial: trial.id,
          workflowId,
          cell: trial.cell,
          state: info ? stateOf(info.status.name) : 'waiting',
          epoch: 0,
          epochs: Number(trial.params.epochs ?? 0),
          bestValidAcc: info?.typedSearchAttributes.get(searchAttributes.bestValidAcc),
        };
      }),
  );
  // A search's runs are suggested as it goes (the plan has none): they are the sweep's other children.
  if (plan.steps.some((s) => s.search)) {
    const planned = new Set(trials.map((t) => t.workflowId));
    // Its runs, not the search's own workflow (`<sweep>/search-<step>`).
    const runs = [...children.values()].filter((info) => !planned.has(info.workflowId) && info.workflowId.startsWith(trialWorkflowId(sweepId, '')));
    trials.push(...searchRunsFromVisibility(sweepId, runs));
  }
  // Visibility knows workflows, not the activities of plain steps: their states are known only
  // once the whole sweep has completed.
  const steps =
    sweepStatusName === 'COMPLETED' ? plan.steps.map((s) => ({ name: s.name, uses: s.uses, state: 'done' as const, trials: s.trials?.length })) : [];
  return { sweepId, pipeline: plan.pipeline, steps, trials };
}

/**
 * Runs of a search, from their search attributes: each run's rung (TrialRung) and how it ended
 * (TrialState); a run paused at a rung where a later run of its trial went on was promoted.
 */
function searchRunsFromVisibility(sweepId: string, runs: WorkflowExecutionInfo[]): TrialProgress[] {
  const prefix = `${sweepId}/trial-`;
  const parsed = runs
    .map((info) => {
      const id = info.workflowId.slice(prefix.length);
      const match = /^(.*)-e(\d+)$/.exec(id);
      return { info, id, trial: match?.[1], target: Number(match?.[2] ?? 0) };
    })
    .sort((a, b) => a.info.startTime.getTime() - b.info.startTime.getTime());
  return parsed.map(({ info, id, trial, target }) => {
    const state = stateOf(info.status.name);
    const attribute = info.typedSearchAttributes;
    const rung = attribute.get(searchAttributes.rung) ?? target;
    const progress: TrialProgress = {
      trial: id,
      workflowId: info.workflowId,
      cell: {},
      state,
      epoch: state === 'done' ? rung : 0,
      epochs: 0,
      bestValidAcc: attribute.get(searchAttributes.bestValidAcc),
    };
    if (trial === undefined) return progress;
    const runsOfTrial = parsed.filter((p) => p.trial === trial);
    const earlier = runsOfTrial.filter((p) => p.target < target);
    const paused = attribute.get(searchAttributes.state) === 'paused';
    const decision = state === 'running' ? 'training' : !paused ? 'completed' : runsOfTrial.some((p) => p.target > target) ? 'promoted' : 'paused';
    progress.search = { trial, from: Math.max(0, ...earlier.map((p) => p.target)), rung, decision };
    return progress;
  });
}

function stateOf(status: WorkflowExecutionStatusName): StepState {
  switch (status) {
    case 'RUNNING':
      return 'running';
    case 'COMPLETED':
      return 'done';
    case 'CANCELLED':
      return 'cancelled';
    default:
      return 'failed';
  }
}

/** The newest run of each trial workflow of a sweep, by workflow id. */
async function trialExecutions(client: Client, sweepId: string): Promise<Map<string, WorkflowExecutionInfo>> {
  const newest = new Map<string, WorkflowExecutionInfo>();
  for await (const info of client.workflow.list({ query: `WorkflowId STARTS_WITH ${quote(`${sweepId}/`)}` })) {
    const seen = newest.get(info.workflowId);
    if (!seen || seen.startTime < info.startTime) newest.set(info.workflowId, info);
  }
  return newest;
}

export interface SweepSummary {
  sweepId: string;
  runId: string;
  status: WorkflowExecutionStatusName;
  pipeline?: string;
  /** The sweep's TrialState search attribute: running, done, failed or cancelled. */
  state?: string;
  bestValidAcc?: number;
  startTime: string;
  closeTime?: string;
  /** Runs of this sweep id (a resumed sweep has several); the newest is shown. */
  runs: number;
}

/** Recent sweeps, newest first, found through the SweepKind search attribute. */
export async function listSweeps(client: Client, options: { limit: number; pipeline?: string }): Promise<SweepSummary[]> {
  const query = `SweepKind = "sweep"${options.pipeline ? ` AND Pipeline = ${quote(options.pipeline)}` : ''}`;
  const byId = new Map<string, SweepSummary>();
  for await (const info of client.workflow.list({ query })) {
    const seen = byId.get(info.workflowId);
    const summary: SweepSummary = {
      sweepId: info.workflowId,
      runId: info.runId,
      status: info.status.name,
      pipeline: info.typedSearchAttributes.get(searchAttributes.pipeline),
      state: info.typedSearchAttributes.get(searchAttributes.state),
      bestValidAcc: info.typedSearchAttributes.get(searchAttributes.bestValidAcc),
      startTime: info.startTime.toISOString(),
      closeTime: info.closeTime?.toISOString(),
      runs: (seen?.runs ?? 0) + 1,
    };
    if (!seen || seen.startTime < summary.startTime) byId.set(info.workflowId, summary);
    else seen.runs = summary.runs;
    if (byId.size > options.limit) break;
  }
  return [...byId.values()].sort((a, b) => b.startTime.localeCompare(a.startTime)).slice(0, options.limit);
}

/**
 * Asks a running sweep to stop: the workflow cancels its trials (each training stops at its next
 * heartbeat) and ends as cancelled. Returns the status it had when asked.
 */
export async function cancelSweep(client: Client, sweepId: string): Promise<WorkflowExecutionStatusName> {
  const handle = client.workflow.getHandle(sweepId);
  const { status } = await handle.describe();
  if (status.name === 'RUNNING') await handle.cancel();
  return status.name;
}

/** A string literal of the visibility query language. */
function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function describePlan(plan: Plan): string {
  const lines = [`Pipeline \`${plan.pipeline}\` from \`${plan.source}\` (digest ${plan.digest.slice(0, 12)}).`, ''];
  if (plan.params)
    lines.push(
      `Params: ${Object.entries(plan.params)
        .map(([k, v]) => `\`${k}=${String(v)}\``)
        .join(', ')}`,
      '',
    );
  for (const step of plan.steps) {
    const needs = step.needs.length ? ` ← ${step.needs.join(', ')}` : '';
    const trials = step.trials ? ` · ${step.trials.length} trials, ${step.concurrency} at a time` : '';
    lines.push(`- **${step.name}** (${step.uses})${needs}${trials}`);
  }
  return lines.join('\n');
}
