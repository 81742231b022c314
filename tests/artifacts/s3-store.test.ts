import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, paginateListObjectsV2, PutObjectCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { dataset } from '../../activities/dataset';
import { download } from '../../activities/download';
import { padding } from '../../activities/padding';
import { train } from '../../activities/train';
import type { ActivityDeps } from '../../activities/deps';
import type { EpochMetrics, TrainResult } from '../../activities/types';
import { createArtifactStore } from '../../artifacts/create';
import { Bucket } from '../../artifacts/s3-bucket';
import type { S3ArtifactStore } from '../../artifacts/s3-store';
import { TrainingShare } from '../../artifacts/training-share';
import { readCheckpoint, writeCheckpoint } from '../../ml/checkpoint';
import { ArtifactCorrupt, type ArtifactStore, type StepIdentity } from '../../artifacts/store';
import { datasetParams } from '../../activities/dataset';
import { downloadParams } from '../../activities/download';
import { paddingParams } from '../../activities/padding';
import { trainParams } from '../../activities/train';
import { ARCHIVE, ARCHIVE_MD5, testDeps } from '../data/helpers';
import { freePort } from '../helpers/fixtures';
import { waitFor } from '../helpers/processes';
import { describeWithMinio, startMinio, withEnv, type MinioServer } from '../helpers/minio';

jest.setTimeout(5 * 60_000);

const BUCKET = 'sweeps';
const identity = (params: unknown): StepIdentity => ({ type: 'unit', version: 1, params, inputs: {} });

const build = (text: string) => async (dir: string) => {
  writeFileSync(join(dir, 'out.txt'), text);
  mkdirSync(join(dir, 'nested'));
  writeFileSync(join(dir, 'nested', 'more.txt'), `${text}!`);
  return { length: text.length };
};

describeWithMinio('the artifact store on an S3-compatible bucket (a real MinIO on loopback)', (binary) => {
  const root = mkdtempSync(join(tmpdir(), 'sweeps-s3-'));
  let minio: MinioServer;
  let restoreEnv: Record<string, string | undefined> = {};
  let prefixes = 0;

  beforeAll(async () => {
    minio = await startMinio(binary, join(root, 'minio'));
    await minio.createBucket(BUCKET);
    // A worker's environment: the standard AWS settings, read by the SDK's own credential chain.
    restoreEnv = Object.fromEntries(Object.keys(minio.env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, minio.env);
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(restoreEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await minio?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  /** Every test gets a prefix of its own: an empty store. */
  const newPrefix = () => `test-${++prefixes}`;
  /** A "machine": its own local cache, the same bucket and prefix as the others. */
  // S3 stores: `path` is a file in that machine's own cache.
  const machine = async (name: string, prefix: string): Promise<S3ArtifactStore> =>
    (await createArtifactStore({ artifacts: `s3://${BUCKET}/${prefix}`, artifactsCache: join(root, 'machines', name) })) as S3ArtifactStore;

  const keysUnder = async (prefix: string): Promise<string[]> => {
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client: minio.client }, { Bucket: BUCKET, Prefix: `${prefix}/` })) {
      keys.push(...(page.Contents ?? []).map((o) => o.Key!.slice(prefix.length + 1)));
    }
    return keys;
  };
  const objectText = async (key: string): Promise<string> =>
    (await minio.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToString();

  it('lists every key under a prefix across pages of the listing', async () => {
    const prefix = newPrefix();
    const names = Array.from({ length: 7 }, (_, i) => `work/k${i}`);
    for (const name of names) await minio.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${name}`, Body: name }));
    const bucket = await Bucket.connect({ bucket: BUCKET, prefix, endpoint: minio.endpoint, forcePathStyle: true });
    // Pages of 3: the 7 keys come in three pages, and none is lost or repeated at the seams.
    expect(await bucket.list('work/', 3)).toEqual(names.map((n) => n.slice('work/'.length)));
    expect(await bucket.list('work/')).toHaveLength(7);
  });

  it('what one machine commits, another finds, verifies and uses without building it', async () => {
    const prefix = newPrefix();
    const [a, b, c] = [await machine('a1', prefix), await machine('b1', prefix), await machine('c1', prefix)];
    let builds = 0;
    const counted = async (dir: string) => {
      builds++;
      return build('hello')(dir);
    };
    const onA = await a.getOrBuild(identity('shared'), counted);
    const onB = await b.getOrBuild(identity('shared'), counted);
    expect(builds).toBe(1);
    expect(onB).toEqual({ ...onA, cached: true });
    expect(b.root).not.toBe(a.root);
    expect(readFileSync(b.path(onB.ref, 'nested/more.txt'), 'utf8')).toBe('hello!');
    await b.verify(onB.ref);

    // A ref from workflow history is enough for a third machine to read the files.
    expect(readFileSync(await c.localPath(onA.ref, 'out.txt'), 'utf8')).toBe('hello');
    // Refs stay small and name neither a machine's folder nor the bucket.
    expect(JSON.stringify(onA.ref).length).toBeLessThan(200);
    expect(JSON.stringify(onA.ref)).not.toMatch(new RegExp(`${root}|s3:|${BUCKET}/`));
    expect(a.location).toBe(`s3://${BUCKET}/${prefix}`);
  });

  it('a damaged object in the bucket is detected by its digest, never used, and the artifact is rebuilt', async () => {
    const prefix = newPrefix();
    const a = await machine('a2', prefix);
    // A large file travels as an object of its own; small ones in a pack (both kinds are checked here).
    const withLargeFile = (text: string) => async (dir: string) => {
      writeFileSync(join(dir, 'large.bin'), Buffer.alloc(2 * 1024 * 1024, 7));
      return build(text)(dir);
    };
    const built = await a.getOrBuild(identity('precious'), withLargeFile('precious content'));
    const objects = await keysUnder(`${prefix}/${built.ref.dir}`);
    const digest = (await a.files(built.ref))['large.bin']!.sha256;
    const blob = `${prefix}/${built.ref.dir}/blobs/${digest}`;
    const pack = `${prefix}/${built.ref.dir}/${objects.find((k) => k.startsWith('packs/') && !k.endsWith('.json'))!}`;
    expect(objects).toHaveLength(4);
    expect(objects).toEqual(
      expect.arrayContaining([
        'manifest.json',
        `blobs/${digest}`,
        expect.stringMatching(/^packs\/[0-9a-f]{64}$/),
        expect.stringMatching(/^packs\/[0-9a-f]{64}\.json$/),
      ]),
    );
    await minio.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: blob, Body: Buffer.alloc(2 * 1024 * 1024, 8) }));

    const b = await machine('b2', prefix);
    const err = (await b.files(built.ref).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ArtifactCorrupt);
    expect(err.message).toContain(`s3://${BUCKET}/${blob} (its file large.bin) has sha256`);
    // Nothing of it entered B's cache, and it is no longer committed in the bucket.
    expect(existsSync(b.path(built.ref))).toBe(false);
    expect(await keysUnder(`${prefix}/${built.ref.dir}`)).not.toContain('manifest.json');
    const aside = (await keysUnder(`${prefix}/.corrupt`)).filter((k) => k.endsWith('reason.txt'));
    expect(aside).toHaveLength(1);
    expect(await objectText(`${prefix}/.corrupt/${aside[0]}`)).toContain(blob);

    // The step on B builds it again rather than using the damaged copy; the bucket is whole again.
    let builds = 0;
    const again = await b.getOrBuild(identity('precious'), async (dir) => {
      builds++;
      return withLargeFile('precious content')(dir);
    });
    expect([builds, again.cached]).toEqual([1, false]);
    const c = await machine('c2', prefix);
    const onC = await c.lookup(identity('precious'));
    expect(onC?.ref).toEqual(again.ref);
    expect(readFileSync(c.path(again.ref, 'out.txt'), 'utf8')).toBe('precious content');

    // A lookup (the path a step takes) treats a damaged bucket copy as absent, too: here a pack of small files.
    const packBytes = Buffer.from(await (await minio.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: pack }))).Body!.transformToByteArray());
    packBytes[0] = packBytes[0]! ^ 1;
    await minio.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: pack, Body: packBytes }));
    const d = await machine('d2', prefix);
    expect(await d.lookup(identity('precious'))).toBeUndefined();
    expect(existsSync(d.path(again.ref))).toBe(false);
    const reasons = await Promise.all(
      (await keysUnder(`${prefix}/.corrupt`)).filter((k) => k.endsWith('reason.txt')).map((k) => objectText(`${prefix}/.corrupt/${k}`)),
    );
    expect(reasons.join('\n')).toContain(`s3://${BUCKET}/${pack} (its file nested/more.txt) has sha256`);
  });

  it('a half-uploaded artifact (files, no manifest) is not a hit; the machine that has it finishes the commit', async () => {
    const prefix = newPrefix();
    const a = await machine('a3', prefix);
    const built = await a.getOrBuild(identity('half'), build('half'));
    // As if A had died between its last file and the manifest.
    await minio.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${built.ref.dir}/manifest.json` }));
    expect((await keysUnder(`${prefix}/${built.ref.dir}`)).filter((k) => k.startsWith('packs/'))).toHaveLength(2);

    const b = await machine('b3', prefix);
    expect(await b.lookup(identity('half'))).toBeUndefined();
    await expect(b.files(built.ref)).rejects.toThrow(/neither on this machine nor in s3:/);

    // A still holds it, verified: its next lookup (a retry of the step) completes the commit.
    expect(await a.lookup(identity('half'))).toEqual({ ref: built.ref, result: built.result });
    expect(await b.lookup(identity('half'))).toEqual({ ref: built.ref, result: built.result });
  });

  it('two machines building the same step at once both end with the one build the bucket holds', async () => {
    const prefix = newPrefix();
    const [a, b] = [await machine('a4', prefix), await machine('b4', prefix)];
    // Both builds start before either commits: a real race for the same identity.
    let arrived = 0;
    let release!: () => void;
    const bothStarted = new Promise<void>((r) => (release = r));
    const racing = (text: string) => async (dir: string) => {
      if (++arrived === 2) release();
      await bothStarted;
      return build(text)(dir);
    };
    const [x, y] = await Promise.all([a.getOrBuild(identity('race'), racing('from a')), b.getOrBuild(identity('race'), racing('from b'))]);
    expect(arrived).toBe(2);
    expect(y.ref).toEqual(x.ref);
    expect(y.result).toEqual(x.result);
    expect([x.cached, y.cached].sort()).toEqual([false, true]);
    const text = readFileSync(a.path(x.ref, 'out.txt'), 'utf8');
    expect(readFileSync(b.path(y.ref, 'out.txt'), 'utf8')).toBe(text);
    await a.verify(x.ref);
    await b.verify(y.ref);
  });

  it("a damaged file in a machine's cache is replaced by the bucket's original", async () => {
    const prefix = newPrefix();
    const a = await machine('a5', prefix);
    const built = await a.getOrBuild(identity('cached'), build('original'));
    writeFileSync(a.path(built.ref, 'out.txt'), 'bit rot');
    await a.verifyFile(built.ref, 'out.txt');
    expect(readFileSync(a.path(built.ref, 'out.txt'), 'utf8')).toBe('original');
  });

  it('bad settings stop a worker at its start, with a message that names the setting and what to do', async () => {
    const attempt = (artifacts: string, env: Record<string, string | undefined> = {}) =>
      withEnv(env, () => createArtifactStore({ artifacts, artifactsCache: join(root, 'machines', 'bad') })).then(
        () => 'started',
        (e: Error) => e.message,
      );
    const closed = `http://127.0.0.1:${await freePort()}`;
    const messages = {
      scheme: await attempt('ftp://host/artifacts'),
      noBucket: await attempt('s3://'),
      secretInUrl: await attempt('s3://AKIA:topsecret@sweeps/x'),
      unreachable: await attempt(`s3://${BUCKET}/x`, { AWS_ENDPOINT_URL_S3: closed }),
      accessKey: await attempt(`s3://${BUCKET}/x`, { AWS_ACCESS_KEY_ID: 'nobody' }),
      secret: await attempt(`s3://${BUCKET}/x`, { AWS_SECRET_ACCESS_KEY: 'not-the-password' }),
      noCredentials: await attempt(`s3://${BUCKET}/x`, {
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
        AWS_PROFILE: undefined,
        AWS_SHARED_CREDENTIALS_FILE: join(root, 'none'),
        AWS_CONFIG_FILE: join(root, 'none'),
        AWS_EC2_METADATA_DISABLED: 'true',
      }),
      missingBucket: await attempt('s3://no-such-bucket/x'),
      pathStyle: await attempt(`s3://${BUCKET}/x`, { SWEEPS_S3_FORCE_PATH_STYLE: 'maybe' }),
    };
    expect(messages.scheme).toBe(
      'SWEEPS_ARTIFACTS=ftp://host/artifacts: unsupported scheme "ftp://"; use a folder path, or s3://<bucket>[/<prefix>] for an S3-compatible bucket',
    );
    expect(messages.noBucket).toMatch(/^SWEEPS_ARTIFACTS=s3:\/\/: no bucket name/);
    expect(messages.secretInUrl).toMatch(/^SWEEPS_ARTIFACTS: credentials and endpoints do not belong in the artifact location .* set AWS_ACCESS_KEY_ID/);
    expect(messages.unreachable).toMatch(
      new RegExp(
        `^SWEEPS_ARTIFACTS=s3://${BUCKET}/x: listing s3://${BUCKET}/x/: cannot reach the S3 endpoint ${closed} \\(ECONNREFUSED.*\\): check AWS_ENDPOINT_URL_S3`,
      ),
    );
    expect(messages.accessKey).toMatch(/does not know this access key: check AWS_ACCESS_KEY_ID/);
    expect(messages.secret).toMatch(/rejected the request signature: check AWS_SECRET_ACCESS_KEY/);
    expect(messages.noCredentials).toMatch(/no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \(or AWS_PROFILE\)/);
    expect(messages.missingBucket).toMatch(/the bucket "no-such-bucket" does not exist at the S3 endpoint http:\/\/127\.0\.0\.1:\d+: create it/);
    expect(messages.pathStyle).toBe('SWEEPS_S3_FORCE_PATH_STYLE=maybe: expected true or false');
    // No message ever shows a secret.
    for (const m of Object.values(messages)) expect(m).not.toMatch(new RegExp(`${process.env.AWS_SECRET_ACCESS_KEY}|topsecret`));
  });

  it("a trial's newest complete and intact checkpoint is what another machine restores", async () => {
    const prefix = newPrefix();
    const [a, b] = [await machine('a6', prefix), await machine('b6', prefix)];
    const log = { info: () => undefined, warn: () => undefined };
    const onA = await TrainingShare.open(a, 'trial', log);
    const dir = await a.workDir('train', 'trial');
    for (const epoch of [1, 2, 3]) {
      onA.checkpointWritten(
        await writeCheckpoint(dir, epoch, 'run', [{ name: 'w', shape: [4] }], new Float32Array(4).fill(epoch), new Float32Array(8), { epoch }),
      );
      await onA.flush();
    }
    const saved = `${prefix}/work/train/trial`;
    expect((await keysUnder(saved)).sort()).toEqual(
      ['epoch-0001', 'epoch-0002', 'epoch-0003'].flatMap((e) => [`${e}/optimizer.bin`, `${e}/state.json`, `${e}/weights.bin`]),
    );
    // Epoch 3 half saved (its state file never arrived), epoch 2 damaged in the bucket.
    await minio.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${saved}/epoch-0003/state.json` }));
    await minio.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${saved}/epoch-0002/weights.bin`, Body: Buffer.alloc(16) }));

    const onB = await TrainingShare.open(b, 'trial', log);
    expect(await onB.restore()).toBe(1);
    const restored = readCheckpoint<{ epoch: number }>(join(await b.workDir('train', 'trial'), 'epoch-0001'), 'run');
    expect(restored?.state.payload).toEqual({ epoch: 1 });
    expect(readdirSync(await b.workDir('train', 'trial'))).toEqual(['epoch-0001']);
    // Nothing newer there than what B has now: a second restore brings nothing.
    expect(await onB.restore()).toBeUndefined();
  });

  describe('sweep steps on two machines', () => {
    const prefix = `steps-${Date.now()}`;
    let a: ActivityDeps;
    let b: ActivityDeps;
    const base = { sweepId: 'sweep-s3-00000000', inputs: {} };
    // The fixture: the data steps built once on machine A.
    let built: { dl: Awaited<ReturnType<typeof download>>; ds: Awaited<ReturnType<typeof dataset>>; padded: Awaited<ReturnType<typeof padding>> };

    beforeAll(async () => {
      // testDeps brings the logger and the data roots; the store is the bucket, seen from two machines.
      a = { ...testDeps(join(root, 'unused-a')), store: await machine('steps-a', prefix) };
      b = { ...testDeps(join(root, 'unused-b')), store: await machine('steps-b', prefix) };
      const dl = await download({ ...base, step: 'download', params: downloadParams.parse({ urls: [`file://${ARCHIVE}`], md5: ARCHIVE_MD5 }) }, a);
      const ds = await dataset({ ...base, step: 'dataset', params: datasetParams.parse({ limit: 400 }), inputs: { download: dl } }, a);
      const padded = await padding({ ...base, step: 'padding', params: paddingParams.parse({}), inputs: { dataset: ds } }, a);
      built = { dl, ds, padded };
    });

    it('the data steps commit on machine A, and machine B finds each one in the bucket', async () => {
      const { dl, ds, padded } = built;
      expect([dl.cached, ds.cached, padded.cached]).toEqual([false, false, false]);

      const again = await padding({ ...base, step: 'padding', params: paddingParams.parse({}), inputs: { dataset: ds } }, b);
      expect(again).toMatchObject({ ref: padded.ref, cached: true, maxLength: padded.maxLength });
      const manifests = (await keysUnder(prefix)).filter((k) => k.endsWith('/manifest.json')).map((k) => k.split('/')[0]);
      expect(manifests.sort()).toEqual(['dataset', 'download', 'padding']);
    });

    it("a trial interrupted on machine A resumes on machine B from A's checkpoint and ends as an uninterrupted run", async () => {
      const params = trainParams.parse({
        pooling: 'mean',
        seed: 5,
        epochs: 6,
        early_stop_patience: 100,
        hidden: 8,
        train_batches: 4,
        valid_batches: 2,
        backend: 'wasm',
        engine: 'tfjs',
      });
      const { padded } = built;
      const input = { ...base, step: 'train', trial: 'gru_mean-h8-s5', params, inputs: { padding: padded } };

      // Machine A: stopped (cancelled) once its second epoch is checkpointed.
      const onA = new MockActivityEnvironment();
      onA.on('heartbeat', (d: { epoch?: number; checkpoint?: string }) => {
        if (d.checkpoint && (d.epoch ?? 0) >= 2) onA.cancel();
      });
      await expect(onA.run(train, input, a)).rejects.toThrow();
      // A cancelled activity returns at once; A's process goes on saving its newest checkpoint.
      await waitFor('A to save its second checkpoint', async () =>
        (await keysUnder(`${prefix}/work/train`)).some((k) => k.endsWith('/epoch-0002/state.json')) ? true : undefined,
      );

      // Machine B has no checkpoint of its own: it continues from the one A saved in the bucket,
      // with A's tracking state (the MLflow run, were one configured).
      expect(existsSync(join(b.store.root, 'work', 'train'))).toBe(false);
      expect((await keysUnder(`${prefix}/work/tracking`)).some((k) => k.endsWith('/tracking.json'))).toBe(true);
      const resumed = await train(input, b);
      expect(resumed.resumedFromEpoch).toBeGreaterThanOrEqual(2);
      expect(resumed.resumedFromEpoch).toBeLessThan(6);
      expect(resumed.epochsRun).toBe(6);

      // The reference: the same trial, never interrupted, in a folder store of its own.
      const local = testDeps(join(root, 'reference'));
      const dl = await download({ ...base, step: 'download', params: downloadParams.parse({ urls: [`file://${ARCHIVE}`], md5: ARCHIVE_MD5 }) }, local);
      const ds = await dataset({ ...base, step: 'dataset', params: datasetParams.parse({ limit: 400 }), inputs: { download: dl } }, local);
      const pad = await padding({ ...base, step: 'padding', params: paddingParams.parse({}), inputs: { dataset: ds } }, local);
      expect(pad.ref).toEqual(padded.ref);
      const reference = await train({ ...input, inputs: { padding: pad } }, local);

      const withoutTimes = (epochs: EpochMetrics[]) => epochs.map(({ seconds: _seconds, ...rest }) => rest);
      const metricsOf = async (store: ArtifactStore, t: TrainResult) =>
        JSON.parse(readFileSync(await store.localPath(t.ref, t.metrics), 'utf8')) as EpochMetrics[];
      expect(withoutTimes(await metricsOf(b.store, resumed))).toEqual(withoutTimes(await metricsOf(local.store, reference)));
      expect(resumed.best).toEqual({ ...reference.best, seconds: resumed.best.seconds });
    });
  });
});
