import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { PaddingResult, TrainResult } from '../../activities/types';
import { trialProgressQuery } from '../../workflows/progress';
import type { SweepResult } from '../../workflows/sweep';
import { describeWithMinio, startMinio, type MinioServer } from '../helpers/minio';
import { gesturesPipeline } from '../helpers/pipelines';
import { runCli, spawnWorker, startTestServer, untilExit, waitFor } from '../helpers/processes';

jest.setTimeout(12 * 60_000);

const BUCKET = 'sweeps';

// The op-by-op engine: slow enough for the kill to land mid-training (see tests/faults/kill-worker).
const pipeline = gesturesPipeline({
  name: 's3-machines',
  limit: 800,
  matrix: '{ pooling: [mean], seed: [3] }',
  train: '{ epochs: 14, early_stop_patience: 100, hidden: 32, train_batches: 15, valid_batches: 4, backend: wasm, engine: tfjs }',
  report: true,
});

describeWithMinio('workers on two machines that share nothing but a bucket (real MinIO, real Temporal dev server)', (binary) => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-s3-sweep-'));
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let minio: MinioServer;

  beforeAll(async () => {
    server = await startTestServer(home);
    minio = await startMinio(binary, join(home, 'minio'));
    await minio.createBucket(BUCKET);
  });
  afterAll(async () => {
    await server?.stop();
    await minio?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  const listKeys = async (prefix: string): Promise<string[]> => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await minio.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.NextContinuationToken;
    } while (token);
    return keys;
  };

  /** A "machine": the same server and bucket, a cache folder of its own (as on another host). */
  const machine = (name: string): NodeJS.ProcessEnv => ({
    ...server.env,
    ...minio.env,
    SWEEPS_ARTIFACTS: `s3://${BUCKET}/cluster`,
    SWEEPS_ARTIFACTS_CACHE: join(home, name),
    SWEEPS_TRAIN_SLOTS: '1',
  });

  it('a worker pointed at a missing bucket does not start, and says which setting to fix', async () => {
    const worker = spawnWorker({ ...machine('misconfigured'), SWEEPS_ARTIFACTS: 's3://no-such-bucket/x' });
    await untilExit(worker);
    expect(worker.exitCode).toBe(1);
    expect(worker.output()).toMatch(
      /SWEEPS_ARTIFACTS=s3:\/\/no-such-bucket\/x: .*the bucket "no-such-bucket" does not exist at the S3 endpoint http:\/\/127\.0\.0\.1:\d+: create it/,
    );
    expect(worker.output()).not.toContain(minio.env.AWS_SECRET_ACCESS_KEY);
  });

  it("a trial interrupted on machine A finishes on machine B from A's checkpoint, with what A built fetched from the bucket", async () => {
    const file = join(home, 's3-machines.yaml');
    writeFileSync(file, pipeline);
    const workerA = spawnWorker(machine('machine-a'));
    const submitted = await runCli(['sweep', file, '--detach'], machine('cli'));
    expect({ code: submitted.code, stderr: submitted.stderr }).toMatchObject({ code: 0 });
    const sweepId = submitted.stdout.trim();
    const trialId = `${sweepId}/trial-gru_mean-h32-s3`;

    await waitFor(`epoch 2 of ${trialId}`, async () =>
      (await server.client.workflow.getHandle(trialId).query(trialProgressQuery)).epoch >= 2 ? true : undefined,
    );
    // Killed once a checkpoint of epoch 2 or later has reached the bucket: only that can move to B.
    const saved = await waitFor('a checkpoint in the bucket', async () => {
      const epochs = (await listKeys('cluster/work/train/')).flatMap((k) => /\/epoch-(\d+)\/state\.json$/.exec(k)?.[1] ?? []).map(Number);
      return Math.max(0, ...epochs) >= 2 ? Math.max(...epochs) : undefined;
    });
    workerA.kill('SIGKILL');
    await untilExit(workerA);
    const workerB = spawnWorker(machine('machine-b'));
    const result = (await server.client.workflow.getHandle(sweepId).result()) as SweepResult;
    workerB.kill('SIGTERM');
    await untilExit(workerB);

    const [trial] = result.outputs.train as TrainResult[];
    console.log(`machine A killed with epoch ${saved} saved to the bucket; machine B resumed from epoch ${trial!.resumedFromEpoch}`);
    expect(trial!.resumedFromEpoch).toBeGreaterThanOrEqual(saved);
    expect(trial!.epochsRun).toBe(14);
    // B wrote the report in its cache; the bucket holds every step's artifact, committed.
    expect(result.report!.files.html.startsWith(join(home, 'machine-b'))).toBe(true);
    expect(existsSync(result.report!.files.html)).toBe(true);
    const committed = (await listKeys('cluster/')).filter((k) => k.endsWith('/manifest.json')).map((k) => k.split('/')[1]);
    expect(committed.sort()).toEqual(['dataset', 'download', 'padding', 'report', 'train']);
    // B trained on the padded table A built (fetched and verified, not rebuilt), and needed nothing further upstream.
    const cacheB = join(home, 'machine-b', BUCKET, 'cluster');
    const onB = (type: string) => (existsSync(join(cacheB, type)) ? readdirSync(join(cacheB, type)).map((key) => `${type}/${key}`) : []);
    expect(onB('padding')).toEqual([(result.outputs.padding as PaddingResult).ref.dir]);
    expect(onB('download')).toEqual([]);
  });
});
