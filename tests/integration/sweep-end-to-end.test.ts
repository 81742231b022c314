import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../client/config';
import { portOpen, stopEmbeddedServer } from '../../client/server';
import type { SweepResult } from '../../workflows/sweep';
import type { TrainResult } from '../../activities/types';
import type { ReportDocument } from '../../report/document';
import { freePort, gesturesArchive, serveFile } from '../helpers/fixtures';
import { gesturesPipeline } from '../helpers/pipelines';
import { json, runCli, type CliRun } from '../helpers/processes';

jest.setTimeout(15 * 60_000);

/** A small version of the seed study: a subset of the real data, a few epochs, both variants. */
const smallPipeline = (url: string) =>
  gesturesPipeline({
    name: 'gestures-small',
    url,
    limit: 2000,
    matrix: '{ pooling: [last, mean], seed: [7] }',
    train: '{ epochs: 3, hidden: 64, lr: 0.003, backend: wasm }',
    report: true,
  });

describe('a sweep, end to end on a real Temporal server', () => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-e2e-'));
  let env: NodeJS.ProcessEnv;
  let served: Awaited<ReturnType<typeof serveFile>>;
  let pipelineFile: string;

  beforeAll(async () => {
    served = await serveFile(gesturesArchive());
    pipelineFile = join(home, 'gestures-small.yaml');
    writeFileSync(pipelineFile, smallPipeline(served.url));
    env = {
      SWEEPS_HOME: home,
      SWEEPS_SERVER_PORT: String(await freePort()),
      SWEEPS_UI_PORT: String(await freePort()),
      SWEEPS_TRAIN_SLOTS: '2',
      TEMPORAL_ADDRESS: '',
    };
  });

  afterAll(async () => {
    await served.close();
    await stopEmbeddedServer(loadConfig({ home }));
    rmSync(home, { recursive: true, force: true });
  });

  // The fixture the tests read: the sweep run once, and the archive requests it made.
  let firstRun: CliRun;
  let requestsOfFirstRun: number;
  const first = () => json<SweepResult>(firstRun);

  beforeAll(async () => {
    firstRun = await runCli(['sweep', pipelineFile, '--json'], env);
    requestsOfFirstRun = served.requests();
  });

  it('downloads, builds Arrow artifacts, trains both variants in parallel and writes a report', () => {
    expect({ code: firstRun.code, stderr: firstRun.code === 0 ? '' : firstRun.stderr }).toEqual({ code: 0, stderr: '' });
    const { sweepId, outputs, report } = first();

    expect(sweepId).toMatch(/^sweep-gestures-small-[0-9a-f]{8}$/);
    expect(firstRun.stderr).toContain(`Temporal UI: http://127.0.0.1:${env.SWEEPS_UI_PORT}/namespaces/default/workflows/${sweepId}`);
    expect(requestsOfFirstRun).toBe(1);

    const trials = outputs.train as TrainResult[];
    expect(trials.map((t) => t.trial).sort()).toEqual(['gru_last-h64-s7', 'gru_mean-h64-s7']);
    for (const t of trials) {
      expect(t.epochsRun).toBe(3);
      // 20 classes: chance is 0.05. Three epochs on 2,000 real sequences already learn.
      expect(t.best.valid_acc).toBeGreaterThan(0.2);
      expect(t.cached).toBe(false);
    }

    expect(existsSync(report!.files.markdown)).toBe(true);
    const markdown = readFileSync(report!.files.markdown, 'utf8');
    const doc = JSON.parse(readFileSync(report!.files.json, 'utf8')) as ReportDocument;
    expect(doc.groups.map((g) => g.variant).sort()).toEqual(['last', 'mean']);
    for (const t of trials) {
      const group = doc.groups.find((g) => g.variant === t.params.pooling)!;
      expect(group.bestValidAcc.mean).toBeCloseTo(t.best.valid_acc, 10);
      expect(markdown).toContain(`${(t.best.valid_acc * 100).toFixed(2)}%`);
    }
    expect(existsSync(report!.files.html)).toBe(true);
  });

  it('keeps only references and small metrics in workflow history', async () => {
    const connection = await Connection.connect({ address: `127.0.0.1:${env.SWEEPS_SERVER_PORT}` });
    try {
      const client = new Client({ connection });
      const history = await client.workflow.getHandle(first().sweepId).fetchHistory();
      const bytes = Buffer.byteLength(JSON.stringify(history));
      // The archive is 2 MB and the padded tensors several MB: none of it may be in history.
      expect(bytes).toBeLessThan(200_000);
    } finally {
      await connection.close();
    }
  });

  it("writes the embedded server's database through a write-ahead log, not a synced rollback journal per write", () => {
    // SQLite's header says which: bytes 18 and 19 (file format write and read versions) are 2 in WAL mode, 1 in rollback mode.
    const header = readFileSync(join(home, 'temporal.db')).subarray(0, 20);
    expect(header.subarray(0, 15).toString()).toBe('SQLite format 3');
    expect([header[18], header[19]]).toEqual([2, 2]);
  });

  it('runs the same sweep again from the cache, without downloading or training', async () => {
    const run = await runCli(['sweep', pipelineFile, '--json'], env);
    expect(run.code).toBe(0);
    const again = JSON.parse(run.stdout) as SweepResult;
    expect(again.sweepId).toBe(first().sweepId);
    expect(served.requests()).toBe(requestsOfFirstRun);
    const trials = again.outputs.train as TrainResult[];
    expect(trials.every((t) => t.cached)).toBe(true);
    expect(trials.map((t) => t.best)).toEqual((first().outputs.train as TrainResult[]).map((t) => t.best));
  });

  it('uses a configured Temporal server (TEMPORAL_ADDRESS) and starts none of its own', async () => {
    const unused = await freePort();
    const run = await runCli(['status', first().sweepId], {
      ...env,
      TEMPORAL_ADDRESS: `127.0.0.1:${env.SWEEPS_SERVER_PORT}`,
      SWEEPS_SERVER_PORT: String(unused),
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`${first().sweepId}: COMPLETED`);
    expect(run.stderr).not.toContain('started the embedded dev server');
    expect(await portOpen('127.0.0.1', unused)).toBe(false);
  });
});
