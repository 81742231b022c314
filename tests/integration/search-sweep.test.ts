import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../client/config';
import { stopEmbeddedServer } from '../../client/server';
import { searchWorkflowId } from '../../workflows/search-rounds';
import type { SweepResult } from '../../workflows/sweep';
import type { TrainResult } from '../../activities/types';
import type { SuggestResult } from '../../activities/search';
import type { ReportDocument } from '../../report/document';
import { freePort } from '../helpers/fixtures';
import { tinyPipeline } from '../helpers/pipelines';
import { runCli } from '../helpers/processes';

jest.setTimeout(15 * 60_000);

/**
 * A TPE search beside a grid axis on a real server, with tiny trials (200 sequences, 1 epoch of 2
 * batches): 3 trials per pooling value, suggested in rounds of 2 from the results so far.
 */
const pipeline = tinyPipeline(
  'search-tiny',
  `    matrix: { pooling: [last, mean] }
    search:
      sampler: tpe
      seed: 5
      trials: 3
      n_startup_trials: 1
      space:
        lr: { type: loguniform, low: 0.0001, high: 0.03 }
        dropout: { type: uniform, low: 0, high: 0.5 }
    concurrency: 2`,
);

const decode = (data: Uint8Array | null | undefined) => (data ? (JSON.parse(Buffer.from(data).toString('utf8')) as unknown) : undefined);

describe('a search on a matrix step, end to end on a real Temporal server', () => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-search-'));
  const file = join(home, 'search-tiny.yaml');
  let env: NodeJS.ProcessEnv;
  let first: SweepResult;

  beforeAll(async () => {
    writeFileSync(file, pipeline);
    env = {
      SWEEPS_HOME: home,
      SWEEPS_SERVER_PORT: String(await freePort()),
      SWEEPS_UI_PORT: String(await freePort()),
      SWEEPS_TRAIN_SLOTS: '2',
      TEMPORAL_ADDRESS: '',
    };
  });

  afterAll(async () => {
    await stopEmbeddedServer(loadConfig({ home }));
    rmSync(home, { recursive: true, force: true });
  });

  it('runs the budget of suggested trials per cell, each inside the space, and a report over them', async () => {
    const run = await runCli(['sweep', file, '--json'], env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    first = JSON.parse(run.stdout) as SweepResult;
    const trials = first.outputs.train as TrainResult[];
    expect(trials.map((t) => t.trial).sort()).toEqual([
      'gru_last-h8-s1-t0',
      'gru_last-h8-s1-t1',
      'gru_last-h8-s1-t2',
      'gru_mean-h8-s1-t0',
      'gru_mean-h8-s1-t1',
      'gru_mean-h8-s1-t2',
    ]);
    for (const t of trials) {
      const { lr, dropout } = t.params as { lr: number; dropout: number };
      expect(lr).toBeGreaterThanOrEqual(0.0001);
      expect(lr).toBeLessThanOrEqual(0.03);
      expect(dropout).toBeGreaterThanOrEqual(0);
      expect(dropout).toBeLessThanOrEqual(0.5);
      expect(t.epochsRun).toBe(1);
    }
    // Each cell searches with the same seed: its first (random) suggestion is the same in both cells.
    const byId = new Map(trials.map((t) => [t.trial, t.params]));
    expect(byId.get('gru_last-h8-s1-t0')!.lr).toBe(byId.get('gru_mean-h8-s1-t0')!.lr);
    expect(new Set(trials.filter((t) => t.params.pooling === 'last').map((t) => t.params.lr)).size).toBe(3);
    // The report names the search and lists its best trials with their parameters.
    const markdown = readFileSync(first.report!.files.markdown, 'utf8');
    expect(markdown).toContain('## Search (train): best trials');
    expect(markdown).toContain('tpe search, seed 5: 3 trials in each of 2 cells of pooling over lr, dropout');
    const doc = JSON.parse(readFileSync(first.report!.files.json, 'utf8')) as ReportDocument;
    const best = doc.search![0]!.best;
    expect(best.map((b) => b.bestValidAcc)).toEqual(trials.map((t) => t.best.valid_acc).sort((a, b) => b - a));
    expect(Object.keys(best[0]!.params)).toEqual(['pooling', 'lr', 'dropout']);
    expect(readFileSync(first.report!.files.html, 'utf8')).toContain('Search (train): best trials');
  });

  it("records every round of suggestions in the search workflow's history as an activity result, the state as an artifact reference", async () => {
    const connection = await Connection.connect({ address: `127.0.0.1:${env.SWEEPS_SERVER_PORT}` });
    try {
      // The search runs in a workflow of its own: the sweep's history holds it as one child.
      const client = new Client({ connection });
      const sweepHistory = await client.workflow.getHandle(first.sweepId).fetchHistory();
      const children = sweepHistory.events!.flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []);
      expect(children).toEqual([searchWorkflowId(first.sweepId, 'train')]);
      const history = await client.workflow.getHandle(searchWorkflowId(first.sweepId, 'train')).fetchHistory();
      const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'suggestTrials');
      // Rounds of two trials (one per cell): three rounds, then one that finds the budget spent.
      expect(scheduled).toHaveLength(4);
      const rounds = history.events!.flatMap((e) => {
        const r = decode(e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data) as Partial<SuggestResult> | undefined;
        return r?.state && Array.isArray(r.trials) ? [r as SuggestResult] : [];
      });
      expect(rounds.map((r) => r.trials.map((t) => t.id))).toEqual([
        ['gru_last-h8-s1-t0', 'gru_mean-h8-s1-t0'],
        ['gru_last-h8-s1-t1', 'gru_mean-h8-s1-t1'],
        ['gru_last-h8-s1-t2', 'gru_mean-h8-s1-t2'],
        [],
      ]);
      expect(rounds.every((r) => /^search-state\/[0-9a-f]{32}$/.test(r.state.dir))).toBe(true);
      const best = Math.max(...(first.outputs.train as TrainResult[]).map((t) => t.best.valid_acc));
      expect(rounds[3]!.best!.value).toBe(best);
    } finally {
      await connection.close();
    }
  });

  it('suggests the same trials when the sweep runs again (results from the cache)', async () => {
    const run = await runCli(['sweep', file, '--json'], env);
    expect(run.code).toBe(0);
    const again = JSON.parse(run.stdout) as SweepResult;
    const trials = again.outputs.train as TrainResult[];
    expect(trials.every((t) => t.cached)).toBe(true);
    expect(trials.map((t) => [t.trial, t.params])).toEqual((first.outputs.train as TrainResult[]).map((t) => [t.trial, t.params]));
  });
});
