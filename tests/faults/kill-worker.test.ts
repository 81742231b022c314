import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EpochMetrics, TrainResult } from '../../activities/types';
import { trialProgressQuery } from '../../workflows/progress';
import type { SweepResult } from '../../workflows/sweep';
import { gesturesPipeline } from '../helpers/pipelines';
import { runCli, spawnWorker, useTestServer, trainingProcessesOf, untilExit, waitFor } from '../helpers/processes';

jest.setTimeout(12 * 60_000);

// The op-by-op engine: slow enough to be killed mid-training (the fused one finishes these epochs
// in a blink; its own resume equivalence is tested in-process in tests/kernel).
const pipeline = (name: string) =>
  gesturesPipeline({
    name,
    limit: 800,
    matrix: '{ pooling: [mean], seed: [3] }',
    train: '{ epochs: 24, early_stop_patience: 100, hidden: 32, train_batches: 15, valid_batches: 4, backend: wasm, engine: tfjs }',
  });

const withoutTimes = (epochs: EpochMetrics[]) => epochs.map(({ seconds: _seconds, ...rest }) => rest);

describe('a worker killed with SIGKILL during training', () => {
  const setup = useTestServer('sweeps-kill-');
  const { home } = setup;

  it('costs no finished epoch: the trial resumes on a new worker and ends bit for bit like an uninterrupted run', async () => {
    // The reference: the same trial, never interrupted, in an artifact store of its own.
    const baselineFile = join(home, 'baseline.yaml');
    writeFileSync(baselineFile, pipeline('faults-baseline'));
    const baselineArtifacts = join(home, 'artifacts-baseline');
    const baseline = await runCli(['sweep', baselineFile, '--json'], { ...setup.server.env, SWEEPS_ARTIFACTS: baselineArtifacts });
    expect({ code: baseline.code, stderr: baseline.code === 0 ? '' : baseline.stderr }).toEqual({ code: 0, stderr: '' });
    const reference = (JSON.parse(baseline.stdout) as SweepResult).outputs.train as TrainResult[];

    const file = join(home, 'killed.yaml');
    writeFileSync(file, pipeline('faults-killed'));
    const env = { ...setup.server.env, SWEEPS_ARTIFACTS: join(home, 'artifacts-killed') };
    let worker = spawnWorker(env);
    const submitted = await runCli(['sweep', file, '--detach'], env);
    expect(submitted.code).toBe(0);
    const sweepId = submitted.stdout.trim();
    const trialId = `${sweepId}/trial-gru_mean-h32-s3`;
    const epochOf = async () => (await setup.server.client.workflow.getHandle(trialId).query(trialProgressQuery)).epoch;

    // Two crashes at different epochs; each time a fresh worker process takes over.
    for (const killAt of [2, 6]) {
      const epochAtKill = await waitFor(`epoch ${killAt} of ${trialId}`, async () => {
        const epoch = await epochOf();
        return epoch >= killAt ? epoch : undefined;
      });
      worker.kill('SIGKILL');
      const killedAt = Date.now();
      await untilExit(worker);
      // The trainer notices its parent is gone and exits: no orphan keeps a core busy.
      await waitFor('the orphaned trainer to exit', async () => (trainingProcessesOf(home).length === 0 ? true : undefined), 15_000);
      worker = spawnWorker(env);
      // Time to recover: from the kill until the new worker has finished an epoch past the last one
      // reported (the server notices the dead worker when the heartbeat timeout lapses).
      await waitFor('training to move on', async () => ((await epochOf()) > epochAtKill ? true : undefined), 180_000);
      console.log(`SIGKILL at epoch ${epochAtKill} → training past it on a new worker after ${((Date.now() - killedAt) / 1000).toFixed(1)} s`);
    }

    const result = (await setup.server.client.workflow.getHandle(sweepId).result()) as SweepResult;
    worker.kill('SIGTERM');
    await untilExit(worker);

    const [trial] = result.outputs.train as TrainResult[];
    expect(trial!.resumedFromEpoch).toBeGreaterThanOrEqual(6);
    expect(trial!.epochsRun).toBe(reference[0]!.epochsRun);
    expect(trial!.best).toEqual({ ...reference[0]!.best, seconds: trial!.best.seconds });

    const metricsOf = (root: string, t: TrainResult) => JSON.parse(readFileSync(join(root, t.ref.dir, t.metrics), 'utf8')) as EpochMetrics[];
    expect(withoutTimes(metricsOf(join(home, 'artifacts-killed'), trial!))).toEqual(withoutTimes(metricsOf(baselineArtifacts, reference[0]!)));
  });
});
