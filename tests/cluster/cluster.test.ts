/**
 * A sweep on a real multi-process Temporal cluster (PostgreSQL persistence and visibility, the
 * four server services as separate processes; tests/helpers/cluster.ts) served by separate worker
 * processes with split roles: one for workflows and data/report steps, three for training. One
 * training worker is killed with SIGKILL mid-trial; the others finish its work.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { TrainResult } from '../../activities/types';
import { sweepProgressQuery, trialProgressQuery } from '../../workflows/progress';
import type { SweepResult } from '../../workflows/sweep';
import { describeWithCluster, startCluster, type TemporalCluster } from '../helpers/cluster';
import { gesturesPipeline } from '../helpers/pipelines';
import { runCli, spawnWorker, trainingProcessesOf, untilExit, waitFor } from '../helpers/processes';

jest.setTimeout(4 * 60_000);

const EPOCHS = 30;
// Four trials for three training slots (one per training worker), on the op-by-op engine: slow
// enough that the kill lands mid-training (the fused engine finishes these epochs in a blink).
const pipeline = () =>
  gesturesPipeline({
    name: 'cluster-spread',
    matrix: '{ pooling: [last, mean], seed: [1, 2] }',
    concurrency: 4,
    report: true,
    train: `{ epochs: ${EPOCHS}, early_stop_patience: 100, hidden: 16, train_batches: 16, valid_batches: 2, backend: wasm, engine: tfjs }`,
  });
// Queue names of our own, given to the workers by flag (or environment) and to the submitting
// command by environment: the sweep only finishes if every path agrees.
const IO_QUEUE = 'cluster-io';
const TRAIN_QUEUE = 'cluster-train';

describeWithCluster('a sweep on a multi-process Temporal cluster with PostgreSQL', (tools) => {
  let home: string;
  let cluster: TemporalCluster;
  let env: NodeJS.ProcessEnv;
  const workers: Array<ReturnType<typeof spawnWorker>> = [];

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'sweeps-cluster-test-'));
    cluster = await startCluster(tools, (line) => console.log(line));
    env = { ...cluster.env, SWEEPS_HOME: home, SWEEPS_ARTIFACTS: join(home, 'artifacts') };
  });
  afterAll(async () => {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(untilExit));
    await cluster?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it('spreads trials over the training workers, and when one is killed the others finish its trial from its checkpoint', async () => {
    const start = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
      const worker = spawnWorker({ ...env, ...extraEnv }, args);
      workers.push(worker);
      return worker;
    };
    const trainFlags = ['--role', 'train', '--train-queue', TRAIN_QUEUE, '--slots', '1'];
    start(['--role', 'io', '--queue', IO_QUEUE, '--identity', 'io-a']);
    const victim = start([...trainFlags, '--identity', 'train-b']);
    start(['--role', 'train'], { SWEEPS_WORKER_IDENTITY: 'train-c', SWEEPS_TRAIN_QUEUE: TRAIN_QUEUE, SWEEPS_TRAIN_SLOTS: '1' });
    start([...trainFlags, '--identity', 'train-d']);
    // Every training worker polls before trials exist, so each one is handed a trial.
    for (const w of workers) await waitFor('the worker to serve', async () => (w.output().includes(' serving ') ? true : undefined), 60_000);

    const file = join(home, 'cluster.yaml');
    writeFileSync(file, pipeline());
    const submitEnv = { ...env, SWEEPS_TASK_QUEUE: IO_QUEUE, SWEEPS_TRAIN_QUEUE: TRAIN_QUEUE };
    const submitted = await runCli(['sweep', file, '--detach'], submitEnv);
    expect({ code: submitted.code, stderr: submitted.code === 0 ? '' : submitted.stderr }).toEqual({ code: 0, stderr: '' });
    const sweepId = submitted.stdout.trim();

    const killed = await waitFor('a trial two epochs into training on train-b', async () =>
      (await runningTrials(cluster.client, sweepId)).find((t) => t.worker === 'train-b/train' && t.epoch >= 2),
    );
    victim.kill('SIGKILL');
    await untilExit(victim);
    console.log(`killed train-b at epoch ${killed.epoch} of ${EPOCHS} of ${killed.workflowId}`);

    const result = (await cluster.client.workflow.getHandle(sweepId).result()) as SweepResult;
    const trials = result.outputs.train as TrainResult[];
    const byWorkflow = new Map(trials.map((t) => [`${sweepId}/trial-${t.trial}`, t]));
    const survivors = ['train-c/train', 'train-d/train'];
    console.log(
      `trials by worker: ${trials.map((t) => `${t.trial} → ${t.worker}${t.resumedFromEpoch ? ` (resumed from epoch ${t.resumedFromEpoch})` : ''}`).join('; ')}`,
    );

    // No trial lost, every one trained to the end, by the surviving training workers.
    expect(trials.map((t) => ({ epochsRun: t.epochsRun, cached: t.cached }))).toEqual(Array(4).fill({ epochsRun: EPOCHS, cached: false }));
    expect(new Set(trials.map((t) => t.worker))).toEqual(new Set(survivors));
    expect(result.report?.files.html).toBeDefined();

    // The killed worker's trial went on from its last checkpoint on another worker...
    const resumed = byWorkflow.get(killed.workflowId)!;
    expect(survivors).toContain(resumed.worker);
    expect(resumed.resumedFromEpoch).toBeGreaterThanOrEqual(killed.epoch);
    // ...and the worker its result names is the one Temporal's history records for that attempt.
    expect(await activityStarts(cluster.client, killed.workflowId)).toEqual([{ activity: 'train', identity: resumed.worker, retried: true }]);
    // Workflows and the data/report steps ran on the I/O worker's queue only.
    const sweepSteps = await activityStarts(cluster.client, sweepId);
    expect(sweepSteps.map((s) => s.activity).sort()).toEqual(['dataset', 'download', 'padding', 'report']);
    expect(new Set(sweepSteps.map((s) => s.identity))).toEqual(new Set(['io-a/io']));

    // The killed worker's trainer noticed and exited; the others leave none behind when stopped.
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(untilExit));
    await waitFor('every training process to exit', async () => (trainingProcessesOf(home).length === 0 ? true : undefined), 15_000);
  });
});

/** Running trials, the worker its training attempt is on (Temporal's pending activity) and its epoch. */
async function runningTrials(client: Client, sweepId: string): Promise<Array<{ workflowId: string; worker?: string; epoch: number }>> {
  const progress = await client.workflow.getHandle(sweepId).query(sweepProgressQuery);
  return Promise.all(
    progress.trials
      .filter((t) => t.state === 'running')
      .map(async ({ workflowId }) => {
        const handle = client.workflow.getHandle(workflowId);
        const description = await handle.describe();
        const worker = description.raw.pendingActivities?.[0]?.lastWorkerIdentity ?? undefined;
        return { workflowId, worker, epoch: (await handle.query(trialProgressQuery)).epoch };
      }),
  );
}

/** Each activity a workflow ran, with the identity of the worker whose attempt completed it. */
async function activityStarts(client: Client, workflowId: string): Promise<Array<{ activity: string; identity: string; retried: boolean }>> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const scheduled = new Map(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes!.activityType?.name ?? '']),
  );
  return events
    .filter((e) => e.activityTaskStartedEventAttributes)
    .map((e) => e.activityTaskStartedEventAttributes!)
    .map((a) => ({ activity: scheduled.get(String(a.scheduledEventId)) ?? '?', identity: a.identity ?? '', retried: (a.attempt ?? 1) > 1 }));
}
