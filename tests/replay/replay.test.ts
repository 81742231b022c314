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

describe('recorded workflow histories replay against the current workflow code', () => {
  it('has recorded histories of a sweep and of its trials', () => {
    expect(files.some((f) => f.startsWith('sweep-') && !f.includes('_trial-'))).toBe(true);
    expect(files.some((f) => f.includes('_trial-'))).toBe(true);
  });

  it('has a recorded sweep whose plan carries the step contracts, one whose plan predates them, one with seeds until sure, a search and a pruned search', () => {
    const plans = files
      .filter((f) => !f.includes('_trial-'))
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

  it('replays every one without a nondeterminism error', async () => {
    const histories = files.map((f) => ({
      workflowId: f.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))),
    }));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: require.resolve('../../workflows') }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
