/**
 * Does a sweep's history stay bounded? Runs a sweep of many tiny trials (default 200: 5 pooling
 * variants × 40 seeds, 1 epoch of 2 batches each) through the CLI on a fresh embedded server, then
 * prints the sweep's and one trial's history (events, bytes) and the largest payloads.
 *
 *   node dist/bench/sweep-history.js [--seeds 40] [--concurrency 4] [--keep]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../client/config';
import { stopEmbeddedServer } from '../client/server';
import { sweepInputOf } from '../client/sweeps';
import { freePort, repoRoot } from '../tests/helpers/fixtures';
import { manyTrialsPipeline, measureHistory, type HistoryMeasure } from '../tests/cli/history';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seeds: { type: 'string', default: '40' }, concurrency: { type: 'string', default: '4' }, keep: { type: 'boolean' } },
  });
  const home = mkdtempSync(join(tmpdir(), 'bench-sweep-history-'));
  const port = await freePort();
  const env = { ...process.env, SWEEPS_HOME: home, SWEEPS_SERVER_PORT: String(port), SWEEPS_UI_PORT: String(await freePort()), TEMPORAL_ADDRESS: '' };
  const file = join(home, 'many-trials.yaml');
  writeFileSync(file, manyTrialsPipeline(Number(values.seeds), Number(values.concurrency)));
  try {
    const started = Date.now();
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'sweep', file, '--json'], {
        env,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      child.on('close', (c) => resolve(c ?? 1));
    });
    const seconds = (Date.now() - started) / 1000;
    if (code !== 0) throw new Error(`the sweep failed (exit ${code})`);

    const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    try {
      const client = new Client({ connection });
      const sweeps = [];
      for await (const wf of client.workflow.list({ query: 'SweepKind = "sweep"' })) sweeps.push(wf.workflowId);
      const sweepId = sweeps[0]!;
      const trialIds: string[] = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH "${sweepId}/"` })) trialIds.push(wf.workflowId);
      const sweep = await measureHistory(client, sweepId);
      const input = Buffer.byteLength(JSON.stringify((await sweepInputOf(client, sweepId)).plan));
      const trial = await measureHistory(client, trialIds.sort()[0]!);
      const show = (m: HistoryMeasure) =>
        `${m.workflowId}\n    ${m.events} events, ${kb(m.bytes)}; largest payload ${kb(m.largest.bytes)} in ${m.largest.event}`;
      process.stdout.write(
        [
          `${trialIds.length} trials in ${seconds.toFixed(0)} s (sweep command, server start and worker included)`,
          `sweep: ${show(sweep)}`,
          `    input (the plan of ${trialIds.length} trials): ${kb(input)} as JSON`,
          `    events per trial: ${(sweep.events / trialIds.length).toFixed(1)}, bytes per trial: ${kb(sweep.bytes / trialIds.length)}`,
          `trial: ${show(trial)}`,
          '',
        ].join('\n'),
      );
    } finally {
      await connection.close();
    }
  } finally {
    await stopEmbeddedServer(loadConfig({ home }));
    if (values.keep) process.stdout.write(`state kept in ${home}\n`);
    else rmSync(home, { recursive: true, force: true });
  }
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
