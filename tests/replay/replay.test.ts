import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import type { Plan } from '../../pipeline/plan';
import { repoRoot } from '../helpers/fixtures';

/**
 * Histories recorded from real sweeps, replayed against the current workflow code: a change that
 * would break determinism for sweeps already running (or being resumed) fails here.
 */
const dir = join(repoRoot, 'tests', 'replay', 'histories');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

interface HistoryJson {
  events: Array<{
    eventType: string;
    activityTaskStartedEventAttributes?: { attempt?: number };
    activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
    workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string };
  }>;
}
const read = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as HistoryJson;
const lastEvent = (f: string) => read(f).events.at(-1)!.eventType;

describe('recorded workflow histories replay against the current workflow code', () => {
  it('has recorded histories of a sweep and of its trials', () => {
    expect(files.some((f) => f.startsWith('sweep-') && !f.includes('_trial-'))).toBe(true);
    expect(files.some((f) => f.includes('_trial-'))).toBe(true);
  });

  it('has a recorded sweep whose plan carries the step contracts, one whose plan predates them, one with seeds until sure, a search and a pruned search', () => {
    const plans = files
      .filter((f) => !f.includes('_trial-') && !f.includes('_search-'))
      .map((f) => {
        const history = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
          events: Array<{ workflowExecutionStartedEventAttributes?: { input?: { payloads?: Array<{ data: string }> } } }>;
        };
        const payload = history.events[0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!.data;
        return (JSON.parse(Buffer.from(payload, 'base64').toString('utf8')) as { plan: Plan }).plan;
      });
    const withContracts = (p: Plan) => p.steps.every((s) => s.durability && s.summary) && p.steps.some((s) => s.trials?.every((t) => t.label));
    expect(plans.some(withContracts)).toBe(true);
    expect(plans.some((p) => p.steps.every((s) => !s.durability))).toBe(true);
    // Seeds until sure: rounds of trials and a recorded decision after each.
    expect(plans.some((p) => p.steps.some((s) => s.until))).toBe(true);
    // A search: each round's trials come from a recorded suggestTrials result.
    expect(plans.some((p) => p.steps.some((s) => s.search))).toBe(true);
    // A pruned search: runs paused at rungs and promoted ones continued.
    expect(plans.some((p) => p.steps.some((s) => s.search?.prune))).toBe(true);
  });

  it('has a pruned search that ran in a workflow of its own (patched: its marker is in the sweep), its runs children of it', () => {
    const sweep = read('sweep-asha-search-replay-329cddcf.json');
    expect(sweep.events.some((e) => e.eventType === 'EVENT_TYPE_MARKER_RECORDED')).toBe(true);
    expect(lastEvent('sweep-asha-search-replay-329cddcf_search-train.json')).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
    expect(files.filter((f) => f.startsWith('sweep-asha-search-replay-329cddcf_trial-'))).toHaveLength(2);
  });

  // Recorded with SWEEPS_BLOB_LIMIT=4096 (every result then passes the inline size) and a server told to suggest continue-as-new after 40 events.
  it('has a grid and a search whose results went to the artifact store (patched: the marker is in the grid sweep; the search continued as new with them)', () => {
    const activities = (f: string) => read(f).events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    const grid = read('sweep-stored-grid-replay-67dccf2c.json');
    expect(grid.events.some((e) => e.eventType === 'EVENT_TYPE_MARKER_RECORDED')).toBe(true);
    expect(activities('sweep-stored-grid-replay-67dccf2c.json')).toEqual(expect.arrayContaining(['appendTrialResults', 'sealTrialResults', 'report']));
    const search = 'sweep-stored-search-replay-3f5830a4_search-train.json';
    expect(read(search).events[0]!.workflowExecutionStartedEventAttributes?.continuedExecutionRunId).toBeTruthy();
    expect(activities(search)).toEqual(expect.arrayContaining(['appendTrialResults', 'sealTrialResults']));
  });

  // Recorded the same way (8 trials, continue-as-new suggested after 40 events), every run of the search (record.ts: `@run<k>`).
  it("has a search's runs before it continued as new, each carrying what its runs finished into the next (patched: the marker is in each)", () => {
    const search = 'sweep-earlier-search-replay-dca93120_search-train';
    for (const run of ['@run1', '@run2']) {
      const events = read(`${search}${run}.json`).events;
      expect(events.at(-1)!.eventType).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW');
      expect(events.some((e) => e.eventType === 'EVENT_TYPE_MARKER_RECORDED')).toBe(true);
    }
    expect(lastEvent(`${search}.json`)).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
  });

  // Recorded with tests/replay/record.ts --as <name> on a real server (see its header).
  it('covers a cancelled sweep (the patched() branch: its marker is in the history), a resumed one, one of cache hits and a retried activity', () => {
    const cancelled = read('sweep-replay-cancelled-26f028da@cancelled.json');
    expect(cancelled.events.at(-1)!.eventType).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED');
    expect(cancelled.events.some((e) => e.eventType === 'EVENT_TYPE_MARKER_RECORDED')).toBe(true);
    // The same sweep, resumed after the cancellation, ran to the end.
    expect(lastEvent('sweep-replay-cancelled-26f028da@resumed.json')).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
    expect(files.filter((f) => f.includes('_trial-') && f.endsWith('@resumed.json'))).toHaveLength(2);
    expect(lastEvent('sweep-replay-cache-hits-95f9a865.json')).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
    // A worker killed mid-training: the train activity's attempt 2 completed the trial.
    const retried = read('sweep-replay-retried-c9a008ba_trial-gru_mean-h32-s7.json');
    expect(retried.events.map((e) => e.activityTaskStartedEventAttributes?.attempt).filter((a) => a !== undefined)).toContain(2);
  });

  it('replays every one without a nondeterminism error', async () => {
    const histories = files.map((f) => ({
      // `name@label.json`: the same workflow recorded in more than one state.
      workflowId: f.replace(/(@[\w-]+)?\.json$/, ''),
      history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))),
    }));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: require.resolve('../../workflows') }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
