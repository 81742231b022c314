import { readFileSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import pino from 'pino';
import { createActivities } from '../../activities';
import { isStoredTrialResults, readTrialResults } from '../../activities/trial-results';
import type { ReportResult, TrainResult } from '../../activities/types';
import { createArtifactStore } from '../../artifacts/create';
import { ProgressView } from '../../cli/progress';
import { loadConfig } from '../../client/config';
import { liveProgress } from '../../client/sweeps';
import type { ReportDocument } from '../../report/document';
import { searchWorkflowId } from '../../workflows/search-rounds';
import type { SweepResult } from '../../workflows/sweep';
import { tinyPipeline } from '../helpers/pipelines';
import { json, runCli, spawnWorker, untilExit, useTestServer, waitFor } from '../helpers/processes';

jest.setTimeout(5 * 60_000);

/**
 * A sweep of any size completes: the server's blob size limit (`limit.blobSize.error`, 2 MB by
 * default) is set to 160 KB here, so that the trial results of a grid of 300 real one-epoch tiny
 * trials (about 2 KB each with their tracking and timing) pass it several times over, and so do
 * those of a 150-trial random search whose workflow continues as new every few hundred events.
 * Before large results went to the artifact store, each sweep failed at its end with every trial
 * trained (its report's input, or the search's continue-as-new input, was too large). The limit
 * cannot go much lower: the plan, which the sweep's start carries, lists every trial of the grid.
 */
const LIMIT = 160 * 1024;
const GRID_SEEDS = 150;
const SEARCH_TRIALS = 150;

const grid = tinyPipeline(
  'large-grid',
  `    matrix: { pooling: [last, mean], seed: [${Array.from({ length: GRID_SEEDS }, (_, i) => i + 1).join(', ')}] }
    concurrency: 4`,
);
const search = tinyPipeline(
  'large-search',
  `    search:
      sampler: random
      seed: 7
      trials: ${SEARCH_TRIALS}
      space:
        lr: { type: loguniform, low: 0.0001, high: 0.03 }
    concurrency: 10`,
);

interface History {
  workflowId: string;
  runId: string;
  /** The largest payload of any event (inputs, results, continue-as-new inputs), in bytes. */
  largestPayload: number;
  /** The same without the workflow's start input (the sweep's: its plan, which lists every grid trial). */
  largestBesidesStart: number;
}

describe(`a sweep whose trial results pass the server's blob size limit (${LIMIT / 1024} KB)`, () => {
  const stack = useTestServer('sweeps-large-results-', {
    'limit.blobSize.error': LIMIT,
    'limit.blobSize.warn': LIMIT / 2,
    // The search's workflow is told to continue as new after this many events (a few dozen trials).
    'limit.historyCount.suggestContinueAsNew': 300,
  });
  const ran: Record<string, { printed: SweepResult; recorded: SweepResult; histories: History[]; seconds: number }> = {};

  async function sweep(name: string, text: string): Promise<void> {
    const file = join(stack.home, `${name}.yaml`);
    writeFileSync(file, text);
    const started = Date.now();
    const env = { ...stack.server.env, SWEEPS_BLOB_LIMIT: String(LIMIT), SWEEPS_TRAIN_SLOTS: '2' };
    const run = await runCli(['sweep', file, '--json'], env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr.slice(-3000) }).toEqual({ code: 0, stderr: '' });
    const printed = json<SweepResult>(run);
    const client = stack.server.client;
    const recorded = (await client.workflow.getHandle(printed.sweepId).result()) as SweepResult;
    const histories: History[] = [];
    for await (const info of client.workflow.list({ query: `WorkflowId STARTS_WITH "${printed.sweepId}"` })) {
      const history = await client.workflow.getHandle(info.workflowId, info.runId).fetchHistory();
      let largestPayload = 0;
      let largestBesidesStart = 0;
      for (const event of history.events ?? []) {
        const start = event.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED;
        for (const payload of payloadsOf(event)) {
          const bytes = temporal.api.common.v1.Payload.encode(payload).finish().length;
          largestPayload = Math.max(largestPayload, bytes);
          if (!start) largestBesidesStart = Math.max(largestBesidesStart, bytes);
        }
      }
      histories.push({ workflowId: info.workflowId, runId: info.runId, largestPayload, largestBesidesStart });
    }
    ran[name] = { printed, recorded, histories, seconds: (Date.now() - started) / 1000 };
    const largest = histories.reduce((a, h) => (h.largestPayload > a.largestPayload ? h : a));
    const besidesStart = histories.reduce((a, h) => (h.largestBesidesStart > a.largestBesidesStart ? h : a));
    process.stdout.write(
      `${name}: ${((Date.now() - started) / 1000).toFixed(1)} s, ${histories.length} histories, largest payload ${largest.largestPayload} bytes ` +
        `(${largest.workflowId}), besides start inputs ${besidesStart.largestBesidesStart} bytes (${besidesStart.workflowId}); ` +
        `the sweep's result ${JSON.stringify(recorded).length} bytes\n`,
    );
  }

  beforeAll(async () => {
    await sweep('grid', grid);
    await sweep('search', search);
  });

  const store = () => createArtifactStore(loadConfig({ home: stack.home }));

  it('completes a grid of 300 trials whose results pass the limit; its result refers to them in the store', async () => {
    const { printed, recorded } = ran.grid!;
    const output = recorded.outputs.train;
    expect(isStoredTrialResults(output)).toBe(true);
    if (!isStoredTrialResults(output)) return;
    expect(output.count).toBe(2 * GRID_SEEDS);
    const results = (await readTrialResults(await store(), output)) as TrainResult[];
    const bytes = results.reduce((n, r) => n + JSON.stringify(r).length, 0);
    process.stdout.write(`grid: ${results.length} trial results, ${bytes} bytes as JSON (inline, they would be one payload)\n`);
    expect(bytes).toBeGreaterThan(LIMIT);
    // The result the workflow returns stays small, whatever the number of trials.
    expect(JSON.stringify(recorded).length).toBeLessThan(8 * 1024);
    // The CLI prints the results themselves (read from the store), as for a small sweep.
    expect((printed.outputs.train as TrainResult[]).map((t) => t.trial)).toEqual(results.map((r) => r.trial));
    expect(new Set(results.map((r) => r.trial)).size).toBe(2 * GRID_SEEDS);
  });

  it("writes the grid's report over every trial, the same report as from the results inline", async () => {
    const { recorded, printed } = ran.grid!;
    const report = recorded.report!;
    const doc = JSON.parse(readFileSync(report.files.json, 'utf8')) as ReportDocument;
    expect(doc.trials.map((t) => t.trial).sort()).toEqual((printed.outputs.train as TrainResult[]).map((t) => t.trial).sort());
    // The report activity given the same trials inline (as a small sweep's step output) finds the
    // same artifact: its identity, and so every table and figure, is that of the inline form.
    const activities = createActivities({ store: await store(), logger: pino({ level: 'silent' }), dataRoots: [] });
    const inline = (await activities.report!({
      sweepId: recorded.sweepId,
      step: 'report',
      params: {},
      inputs: { train: printed.outputs.train },
    })) as ReportResult;
    expect(inline.ref).toEqual(report.ref);
    expect(inline.cached).toBe(true);
  });

  it('completes a 150-trial search that continued as new with its results in the store, and reports every trial', () => {
    const { recorded, histories, printed } = ran.search!;
    const runs = histories.filter((h) => h.workflowId === searchWorkflowId(recorded.sweepId, 'train'));
    expect(runs.length).toBeGreaterThan(1);
    const output = recorded.outputs.train;
    expect(isStoredTrialResults(output) && output.count).toBe(SEARCH_TRIALS);
    expect(JSON.stringify(recorded).length).toBeLessThan(8 * 1024);
    const trials = (printed.outputs.train as TrainResult[]).map((t) => t.trial);
    expect(new Set(trials).size).toBe(SEARCH_TRIALS);
    const doc = JSON.parse(readFileSync(recorded.report!.files.json, 'utf8')) as ReportDocument;
    expect(doc.trials.map((t) => t.trial).sort()).toEqual([...trials].sort());
  });

  it("counts the search's earlier runs in the live view once it has continued as new: every trial, the best of them", async () => {
    const { recorded, histories, printed } = ran.search!;
    const runs = histories.filter((h) => h.workflowId === searchWorkflowId(recorded.sweepId, 'train')).length;
    // The CLI's live view queries the sweep and its search (the search's latest run); a worker answers for the closed workflows by replaying them.
    const worker = spawnWorker(stack.server.env);
    try {
      const progress = await waitFor('a worker to answer the progress query', () => liveProgress(stack.server.client, recorded.sweepId), 60_000);
      const results = printed.outputs.train as TrainResult[];
      const listed = progress.trials.filter((t) => t.state === 'done').length;
      expect(progress.earlier).toBeDefined();
      expect(progress.earlier!.runs).toBe(runs - 1);
      expect(progress.earlier!.failed + progress.earlier!.cancelled).toBe(0);
      // The latest run lists its own trials; the earlier runs' are counted, so together they are every trial.
      expect(listed).toBeLessThan(SEARCH_TRIALS);
      expect(progress.earlier!.done + listed).toBe(SEARCH_TRIALS);
      const bestListed = Math.max(...progress.trials.map((t) => t.bestValidAcc ?? -Infinity));
      expect(Math.max(progress.earlier!.bestValidAcc!, bestListed)).toBe(Math.max(...results.map((r) => r.best.valid_acc)));
      // What the terminal shows: the bar counts all of them and says where the unlisted ones are.
      const screen = new PassThrough() as PassThrough & { columns: number; rows: number };
      Object.assign(screen, { columns: 400, rows: 20 });
      let drawn = '';
      screen.on('data', (d: Buffer) => (drawn += d.toString()));
      new ProgressView(screen as unknown as NodeJS.WriteStream, true).render(progress);
      expect(drawn).toContain(`${SEARCH_TRIALS}/${SEARCH_TRIALS} trials (${SEARCH_TRIALS} done)`);
      expect(drawn).toContain(
        `${progress.earlier!.done} finished in the search's ${runs - 1} earlier run${runs === 2 ? '' : 's'} (continued as new; not listed)`,
      );
      // And the search workflow's details in the Temporal UI count them too.
      const search = stack.server.client.workflow.getHandle(searchWorkflowId(recorded.sweepId, 'train'));
      const details = (await search.query<{ currentDetails: string }>('__temporal_workflow_metadata')).currentDetails;
      expect(details).toContain(`trials: ${SEARCH_TRIALS} done, 0 running, 0 failed of ${SEARCH_TRIALS} (${progress.earlier!.done} in ${runs - 1} earlier run`);
    } finally {
      worker.kill('SIGTERM');
      await untilExit(worker);
    }
  });

  it('keeps every payload of every history below the limit', () => {
    for (const { histories } of Object.values(ran)) {
      const over = histories.filter((h) => h.largestPayload >= LIMIT).map((h) => `${h.workflowId} (${h.largestPayload} bytes)`);
      expect(over).toEqual([]);
    }
  });

  it('shows the stored trials in `sweeps status`: the report and the reuse of every trial', async () => {
    const { recorded } = ran.grid!;
    const status = await runCli(['status', recorded.sweepId], { ...stack.server.env });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`report: ${recorded.report!.files.html}`);
    expect(status.stdout).toMatch(new RegExp(`reused \\d+ of \\d+ steps and \\d+ of ${2 * GRID_SEEDS} trials; trained ${2 * GRID_SEEDS} trials`));
  });
});

/** Every payload an event carries (inputs, results, details), wherever in its attributes. */
function payloadsOf(event: temporal.api.history.v1.IHistoryEvent): temporal.api.common.v1.IPayload[] {
  const found: temporal.api.common.v1.IPayload[] = [];
  const visit = (value: unknown): void => {
    if (value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach(visit);
    const v = value as Record<string, unknown>;
    if ('data' in v && 'metadata' in v && (v.data instanceof Uint8Array || v.data === null)) {
      found.push(v as temporal.api.common.v1.IPayload);
      return;
    }
    for (const child of Object.values(v)) visit(child);
  };
  visit(event);
  return found;
}
