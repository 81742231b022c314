import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EpochMetrics, TrainResult } from '../../activities/types';
import { checkpointIntact, epochOfDirName } from '../../ml/checkpoint';
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

/** The newest complete checkpoint a store's training work folders hold: its epoch and folder. */
function newestCheckpoint(artifacts: string): { epoch: number; folder: string } {
  const trainWork = join(artifacts, 'work', 'train');
  const found = readdirSync(trainWork).flatMap((key) =>
    readdirSync(join(trainWork, key)).flatMap((name) => {
      const epoch = epochOfDirName(name);
      const folder = join(trainWork, key, name);
      return epoch !== undefined && checkpointIntact(folder) ? [{ epoch, folder }] : [];
    }),
  );
  if (found.length === 0) throw new Error(`no complete checkpoint under ${trainWork}`);
  return found.reduce((a, b) => (b.epoch > a.epoch ? b : a));
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

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
    const killedArtifacts = join(home, 'artifacts-killed');
    const env = { ...setup.server.env, SWEEPS_ARTIFACTS: killedArtifacts };
    let worker = spawnWorker(env);
    const submitted = await runCli(['sweep', file, '--detach'], env);
    expect(submitted.code).toBe(0);
    const sweepId = submitted.stdout.trim();
    const trialId = `${sweepId}/trial-gru_mean-h32-s3`;
    const epochOf = async () => (await setup.server.client.workflow.getHandle(trialId).query(trialProgressQuery)).epoch;

    // Two crashes at different epochs; each time a fresh worker process takes over.
    let savedAtLastKill = 0;
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
      // Nothing trains now: the newest complete checkpoint is the last epoch finished before the crash.
      savedAtLastKill = newestCheckpoint(killedArtifacts).epoch;
      expect(savedAtLastKill).toBeGreaterThanOrEqual(epochAtKill);
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
    // The last attempt started from the epoch the crash interrupted: every finished epoch was kept.
    expect(trial!.resumedFromEpoch).toBe(savedAtLastKill);
    expect(trial!.epochsRun).toBe(reference[0]!.epochsRun);
    expect(trial!.best).toEqual({ ...reference[0]!.best, seconds: trial!.best.seconds });

    const metricsOf = (root: string, t: TrainResult) => JSON.parse(readFileSync(join(root, t.ref.dir, t.metrics), 'utf8')) as EpochMetrics[];
    expect(withoutTimes(metricsOf(killedArtifacts, trial!))).toEqual(withoutTimes(metricsOf(baselineArtifacts, reference[0]!)));

    // The final model, not only its metrics: the last checkpoints' weights and optimizer state are the same bytes.
    const [killedFinal, referenceFinal] = [newestCheckpoint(killedArtifacts), newestCheckpoint(baselineArtifacts)];
    expect(killedFinal.epoch).toBe(reference[0]!.epochsRun);
    expect(referenceFinal.epoch).toBe(reference[0]!.epochsRun);
    for (const file of ['weights.bin', 'optimizer.bin']) {
      expect({ file, sha256: sha256(join(killedFinal.folder, file)) }).toEqual({ file, sha256: sha256(join(referenceFinal.folder, file)) });
    }
  });
});
