import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { SweepResult } from '../../workflows/sweep';
import { GESTURES_MD5, gesturesArchive } from '../helpers/fixtures';
import { json, runCli, startUserStack, type UserStack } from '../helpers/processes';

/**
 * The interpreter's order and parallelism, read from the sweep's recorded history: independent
 * branches of the DAG run at the same time, a step starts only after the steps it needs, and a
 * matrix never has more trials open than its concurrency.
 */

jest.setTimeout(10 * 60_000);

interface Event {
  eventId: string;
  eventTime: string;
  eventType: string;
  [attributes: string]: unknown;
}

/** What ran when, per step (activities) and per trial (child workflows), from the sweep's history. */
interface Timeline {
  steps: Map<string, { scheduled: number; started: Date; completed: number; completedAt: Date }>;
  trials: Map<string, { step: string; initiated: number; initiatedAt: Date; closed: number; closedAt: Date }>;
}

function timelineOf(events: Event[]): Timeline {
  const decode = (payload: { data: string }) => JSON.parse(Buffer.from(payload.data, 'base64').toString()) as Record<string, unknown>;
  const attrs = <T>(e: Event, name: string) => e[name] as T;
  const byId = new Map(events.map((e) => [e.eventId, e]));
  const steps: Timeline['steps'] = new Map();
  const trials: Timeline['trials'] = new Map();
  for (const e of events) {
    if (e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED') {
      const { scheduledEventId, startedEventId } = attrs<{ scheduledEventId: string; startedEventId: string }>(e, 'activityTaskCompletedEventAttributes');
      const scheduled = byId.get(scheduledEventId)!;
      const input = decode(attrs<{ input: { payloads: Array<{ data: string }> } }>(scheduled, 'activityTaskScheduledEventAttributes').input.payloads[0]!);
      steps.set(String(input.step), {
        scheduled: Number(scheduledEventId),
        started: new Date(byId.get(startedEventId)!.eventTime),
        completed: Number(e.eventId),
        completedAt: new Date(e.eventTime),
      });
    }
    if (e.eventType === 'EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED') {
      const { initiatedEventId, workflowExecution } = attrs<{ initiatedEventId: string; workflowExecution: { workflowId: string } }>(
        e,
        'childWorkflowExecutionCompletedEventAttributes',
      );
      const initiated = byId.get(initiatedEventId)!;
      const input = decode(
        attrs<{ input: { payloads: Array<{ data: string }> } }>(initiated, 'startChildWorkflowExecutionInitiatedEventAttributes').input.payloads[0]!,
      );
      trials.set(workflowExecution.workflowId, {
        step: (input.step as { name: string }).name,
        initiated: Number(initiatedEventId),
        initiatedAt: new Date(initiated.eventTime),
        closed: Number(e.eventId),
        closedAt: new Date(e.eventTime),
      });
    }
  }
  return { steps, trials };
}

/** The most trials of a step open at once, replaying their opens and closes in history order. */
function mostOpenAtOnce(timeline: Timeline, step: string): number {
  const marks = [...timeline.trials.values()]
    .filter((t) => t.step === step)
    .flatMap((t) => [
      { at: t.initiated, delta: 1 },
      { at: t.closed, delta: -1 },
    ])
    .sort((a, b) => a.at - b.at);
  let open = 0;
  let most = 0;
  for (const m of marks) most = Math.max(most, (open += m.delta));
  return most;
}

const overlap = (a: { from: Date; to: Date }, b: { from: Date; to: Date }) => a.from < b.to && b.from < a.to;

const twoBranches = `name: two-branches
steps:
  download: { uses: download, with: { urls: ["file://${gesturesArchive()}"], md5: ${GESTURES_MD5} } }
  dataset_a: { uses: dataset, needs: [download], with: { limit: 200, split: { kind: random, seed: 1 } } }
  dataset_b: { uses: dataset, needs: [download], with: { limit: 200, split: { kind: by-user, valid_users: [U01, U02] } } }
  padding_a: { uses: padding, needs: [dataset_a] }
  padding_b: { uses: padding, needs: [dataset_b] }
  train_a:
    uses: train
    needs: [padding_a]
    matrix: { pooling: [last, mean, max] }
    concurrency: 1
    with: { epochs: 2, hidden: 8, train_batches: 2, valid_batches: 1, backend: wasm }
  train_b:
    uses: train
    needs: [padding_b]
    matrix: { pooling: [last, mean], seed: [1, 2] }
    concurrency: 2
    with: { epochs: 2, hidden: 8, train_batches: 2, valid_batches: 1, backend: wasm }
  report: { uses: report, needs: [train_a, train_b] }
`;

describe('the interpreter runs a DAG with two independent branches', () => {
  let stack: UserStack;
  let timeline: Timeline;
  let result: SweepResult;

  beforeAll(async () => {
    stack = await startUserStack('sweeps-dag-');
    const file = join(stack.home, 'two-branches.yaml');
    writeFileSync(file, twoBranches);
    const run = await runCli(['sweep', file, '--no-worker', '--json'], stack.env);
    if (run.code !== 0) throw new Error(`the sweep failed:\n${run.stderr}`);
    result = json(run);
    const history = await stack.client.workflow.getHandle(result.sweepId).fetchHistory();
    timeline = timelineOf((JSON.parse(historyToJSON(history)) as { events: Event[] }).events);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('runs every step and trial', () => {
    expect([...timeline.steps.keys()].sort()).toEqual(['dataset_a', 'dataset_b', 'download', 'padding_a', 'padding_b', 'report']);
    expect([...timeline.trials.values()].filter((t) => t.step === 'train_a')).toHaveLength(3);
    expect([...timeline.trials.values()].filter((t) => t.step === 'train_b')).toHaveLength(4);
    expect(result.report?.variants.length).toBeGreaterThan(0);
  });

  it('starts the two branches together: their data steps overlap in time', () => {
    const a = timeline.steps.get('dataset_a')!;
    const b = timeline.steps.get('dataset_b')!;
    // Both were scheduled before either finished, by the same workflow task…
    expect(Math.max(a.scheduled, b.scheduled)).toBeLessThan(Math.min(a.completed, b.completed));
    // …and ran at the same time on the worker.
    expect(overlap({ from: a.started, to: a.completedAt }, { from: b.started, to: b.completedAt })).toBe(true);
  });

  it("trains the branches' trials at the same time", () => {
    const interval = (t: { initiatedAt: Date; closedAt: Date }) => ({ from: t.initiatedAt, to: t.closedAt });
    const a = [...timeline.trials.values()].filter((t) => t.step === 'train_a');
    const b = [...timeline.trials.values()].filter((t) => t.step === 'train_b');
    expect(a.some((x) => b.some((y) => overlap(interval(x), interval(y))))).toBe(true);
  });

  it('starts each step only after every step it needs has finished', () => {
    const done = (step: string) =>
      timeline.steps.get(step)?.completed ?? Math.max(...[...timeline.trials.values()].filter((t) => t.step === step).map((t) => t.closed));
    const begun = (step: string) =>
      timeline.steps.get(step)?.scheduled ?? Math.min(...[...timeline.trials.values()].filter((t) => t.step === step).map((t) => t.initiated));
    const needs: Array<[string, string[]]> = [
      ['dataset_a', ['download']],
      ['dataset_b', ['download']],
      ['padding_a', ['dataset_a']],
      ['padding_b', ['dataset_b']],
      ['train_a', ['padding_a']],
      ['train_b', ['padding_b']],
      ['report', ['train_a', 'train_b']],
    ];
    for (const [step, upstream] of needs)
      for (const need of upstream) expect({ step, need, after: begun(step) > done(need) }).toEqual({ step, need, after: true });
  });

  it('with concurrency: 1, runs the trials of a matrix one at a time', () => {
    expect(mostOpenAtOnce(timeline, 'train_a')).toBe(1);
    const inOrder = [...timeline.trials.values()].filter((t) => t.step === 'train_a').sort((x, y) => x.initiated - y.initiated);
    for (let i = 1; i < inOrder.length; i++) expect(inOrder[i]!.initiatedAt.getTime()).toBeGreaterThanOrEqual(inOrder[i - 1]!.closedAt.getTime());
  });

  it('with concurrency: 2, keeps two trials going and never more', () => {
    expect(mostOpenAtOnce(timeline, 'train_b')).toBe(2);
  });
});
