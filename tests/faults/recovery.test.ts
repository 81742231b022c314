import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { TrainResult } from '../../activities/types';
import { loadConfig } from '../../client/config';
import { ensureEmbeddedServer, stopEmbeddedServer } from '../../client/server';
import { findTemporalCli } from '../../client/temporal-cli';
import { sweepProgressQuery, trialProgressQuery } from '../../workflows/progress';
import type { SweepResult } from '../../workflows/sweep';
import { gesturesPipeline } from '../helpers/pipelines';
import { runCli, spawnWorker, startTestServer, trainingProcessesOf, untilExit, waitFor } from '../helpers/processes';

jest.setTimeout(10 * 60_000);

/** Small, real trials: a subset of the real data, a few short epochs, on the op-by-op engine (slow enough to interrupt). */
const pipeline = (name: string, matrix: string, epochs = 4) =>
  gesturesPipeline({
    name,
    matrix,
    train: `{ epochs: ${epochs}, early_stop_patience: ${epochs}, hidden: 16, train_batches: 8, valid_batches: 2, backend: wasm, engine: tfjs }`,
  });

describe('recovering sweeps', () => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-recovery-'));
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let worker: ReturnType<typeof spawnWorker>;

  const write = (name: string, text: string) => {
    const file = join(home, `${name}.yaml`);
    writeFileSync(file, text);
    return file;
  };
  const submit = async (file: string) => {
    const run = await runCli(['sweep', file, '--detach'], server.env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    return run.stdout.trim();
  };
  const epochOf = async (workflowId: string) => (await server.client.workflow.getHandle(workflowId).query(trialProgressQuery)).epoch;

  beforeAll(async () => {
    server = await startTestServer(home);
    worker = spawnWorker(server.env);
  });
  afterAll(async () => {
    worker.kill('SIGTERM');
    await untilExit(worker);
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it('finishes a sweep whose Temporal server was stopped and restarted in the middle of training', async () => {
    const epochs = 40;
    const sweepId = await submit(write('restart', pipeline('faults-restart', '{ pooling: [last, mean], seed: [1] }', epochs)));
    const trialId = `${sweepId}/trial-gru_last-h16-s1`;
    const epochAtStop = await waitFor('training to be under way', async () => {
      const epoch = await epochOf(trialId);
      return epoch >= 2 ? epoch : undefined;
    });

    const config = loadConfig({ home, server: { ip: '127.0.0.1', port: Number(server.env.SWEEPS_SERVER_PORT), uiPort: Number(server.env.SWEEPS_UI_PORT) } });
    const stoppedAt = Date.now();
    expect(await stopEmbeddedServer(config)).toBe(true);
    await ensureEmbeddedServer(config, () => undefined); // same database file: history survives
    const upAt = Date.now();
    console.log(`server stopped at epoch ${epochAtStop} of ${epochs}, back after ${((upAt - stoppedAt) / 1000).toFixed(1)} s`);
    // Otherwise this test proves nothing: the stop must land while the trial trains.
    expect(epochAtStop).toBeLessThan(epochs);
    // The worker process reconnects by itself; the client's connection does too.
    const result = (await server.client.workflow.getHandle(sweepId).result()) as SweepResult;
    console.log(`sweep finished ${((Date.now() - upAt) / 1000).toFixed(1)} s after the restart`);
    const trials = result.outputs.train as TrainResult[];
    expect(trials.map((t) => t.epochsRun)).toEqual([epochs, epochs]);
  });

  it('resumes a terminated sweep: finished trials are cache hits, the interrupted one continues from its checkpoint', async () => {
    // Long enough that the terminated attempt (which learns of it at its next heartbeat) cannot finish first.
    const sweepId = await submit(write('resume', pipeline('faults-resume', '{ pooling: [mean], seed: [1, 2, 3] }', 60)));
    const handle = server.client.workflow.getHandle(sweepId);
    // Two trials run at once; wait until the third has started and has a checkpoint or two.
    const epochAtTerminate = await waitFor('two finished trials and a third under way', async () => {
      const p = await handle.query(sweepProgressQuery);
      const third = p.trials.find((t) => t.trial === 'gru_mean-h16-s3');
      if (p.trials.filter((t) => t.state === 'done').length < 2 || !third || third.state !== 'running') return undefined;
      const epoch = await epochOf(third.workflowId);
      return epoch >= 2 ? epoch : undefined;
    });
    await handle.terminate('test: an operator stops the sweep');
    const terminatedAt = Date.now();

    const resumed = await runCli(['resume', sweepId, '--no-worker', '--json'], server.env);
    expect({ code: resumed.code, stderr: resumed.code === 0 ? '' : resumed.stderr }).toEqual({ code: 0, stderr: '' });
    const trials = (JSON.parse(resumed.stdout) as SweepResult).outputs.train as TrainResult[];
    const byId = Object.fromEntries(trials.map((t) => [t.trial, t]));
    expect(byId['gru_mean-h16-s1']!.cached).toBe(true);
    expect(byId['gru_mean-h16-s2']!.cached).toBe(true);
    expect(byId['gru_mean-h16-s3']!.cached).toBe(false);
    expect(byId['gru_mean-h16-s3']!.resumedFromEpoch).toBeGreaterThanOrEqual(2);
    console.log(
      `resume: ${trials.filter((t) => t.cached).length} of ${trials.length} trials cache hits; the interrupted one, seen at epoch ` +
        `${epochAtTerminate} when terminated, resumed from its epoch-${byId['gru_mean-h16-s3']!.resumedFromEpoch} checkpoint; ` +
        `terminate → resumed sweep finished in ${((Date.now() - terminatedAt) / 1000).toFixed(1)} s`,
    );
    // It trained on from its checkpoint rather than starting over.
    expect(byId['gru_mean-h16-s3']!.epochsRun).toBeGreaterThan(byId['gru_mean-h16-s3']!.resumedFromEpoch);
    // And the user is told so, counted.
    const status = await runCli(['status', sweepId], server.env);
    const epochs = byId['gru_mean-h16-s3']!.epochsRun - byId['gru_mean-h16-s3']!.resumedFromEpoch;
    expect(status.stdout).toContain(`reused 3 of 3 steps and 2 of 3 trials; trained 1 trial (1 from a checkpoint), ${epochs} epochs`);
  });

  it('fails clearly on an error no retry can fix, and after the fix redoes only the failed trial', async () => {
    const bad = await runCli(
      ['sweep', write('bad', pipeline('faults-bad', '{ pooling: [mean], seed: [1], batch_size: [16, 5000] }')), '--no-worker'],
      server.env,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('gru_mean-h16-batch_size5000-s1');
    expect(bad.stderr).toContain('fewer than one batch of 5000');
    expect(bad.stderr).toContain('sweeps resume');

    const fixed = await runCli(
      ['sweep', write('fixed', pipeline('faults-bad', '{ pooling: [mean], seed: [1], batch_size: [16, 32] }')), '--no-worker', '--json'],
      server.env,
    );
    expect(fixed.code).toBe(0);
    const trials = (JSON.parse(fixed.stdout) as SweepResult).outputs.train as TrainResult[];
    expect(trials.filter((t) => !t.cached).map((t) => t.trial)).toEqual(['gru_mean-h16-batch_size32-s1']);
  });

  it('stops every trial promptly when a sweep is cancelled, leaving no training process behind', async () => {
    const sweepId = await submit(write('cancel', pipeline('faults-cancel', '{ pooling: [last, mean], seed: [1] }', 200)));
    // Training processes are kept warm (idle ones exist before any trial): "training" is what the
    // trials themselves report, a finished epoch each.
    await waitFor('both trials training', async () => {
      const { trials } = await server.client.workflow.getHandle(sweepId).query(sweepProgressQuery);
      if (trials.length !== 2) return undefined;
      const epochs = await Promise.all(trials.map((t) => epochOf(t.workflowId).catch(() => 0)));
      return epochs.every((e) => e >= 1) ? true : undefined;
    });
    const cancelledAt = Date.now();
    await server.client.workflow.getHandle(sweepId).cancel();
    await expect(server.client.workflow.getHandle(sweepId).result()).rejects.toThrow(WorkflowFailedError);
    await waitFor('the trainings to stop', async () => (trainingProcessesOf(home).length === 0 ? true : undefined), 30_000);
    const seconds = (Date.now() - cancelledAt) / 1000;
    console.log(`cancel → every training process gone in ${seconds.toFixed(1)} s`);
    expect(seconds).toBeLessThan(30);
  });

  it("survives Temporal's own Reset: the re-run finds every step's output in the store", async () => {
    const file = write('reset', pipeline('faults-reset', '{ pooling: [last], seed: [4] }', 2));
    const first = await runCli(['sweep', file, '--no-worker', '--json'], server.env);
    expect(first.code).toBe(0);
    const { sweepId } = JSON.parse(first.stdout) as SweepResult;
    const temporal = findTemporalCli();
    if (!temporal) throw new Error('the temporal CLI is needed for this test (npm run setup)');
    const reset = spawnSync(
      temporal,
      [
        'workflow',
        'reset',
        '--address',
        `127.0.0.1:${server.env.SWEEPS_SERVER_PORT}`,
        '-w',
        sweepId,
        '--type',
        'FirstWorkflowTask',
        '--reason',
        'test reset',
        '-y',
      ],
      { encoding: 'utf8' },
    );
    expect({ status: reset.status, stderr: reset.stderr }).toEqual({ status: 0, stderr: '' });
    const after = (await server.client.workflow.getHandle(sweepId).result()) as SweepResult;
    const trials = after.outputs.train as TrainResult[];
    expect(trials.every((t) => t.cached)).toBe(true);
    expect((after.outputs.download as { cached: boolean }).cached).toBe(true);

    // A completed sweep is shown, not run again: `resume` starts no new run.
    const { runId } = await server.client.workflow.getHandle(sweepId).describe();
    const resumed = await runCli(['resume', sweepId, '--no-worker'], server.env);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`${sweepId} already completed: nothing to resume`);
    expect(resumed.stdout).toContain(`sweep ${sweepId} finished: reused 3 of 3 steps and 1 of 1 trials; trained nothing.`);
    expect((await server.client.workflow.getHandle(sweepId).describe()).runId).toBe(runId);
  });
});
