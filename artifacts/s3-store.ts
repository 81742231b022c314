import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { Logger } from 'pino';
import { LocalArtifactStore } from './local-store';
import { MANIFEST, parseManifest, type Manifest } from './manifest';
import type { Bucket } from './s3-bucket';
import { parsePackIndex, planPacks, type PackIndex } from './s3-packs';
import { ArtifactCorrupt, type ArtifactHead, type ArtifactRef, type ArtifactStore, type FileDigest, type StepIdentity, type WorkShare } from './store';

/** Parallel object transfers per artifact: enough to hide a round trip, few enough for any server. */
const TRANSFERS = 8;

/** The bucket's copy of an artifact does not match its own manifest. */
class RemoteCorrupt extends ArtifactCorrupt {
  /** sha256 of the manifest whose artifact was found damaged: only that one is set aside. */
  manifestSha?: string;
}

const sha256Of = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * The artifact store on an S3-compatible bucket, so that workers on different machines share
 * artifacts without a shared file system. Each machine keeps a local cache (a folder store): steps
 * build there, and read only files that are there and verified.
 *
 * In the bucket, under the prefix:
 *   <type>/<key>/manifest.json     the commit marker, written last and only if absent (first writer
 *                                  wins); its metadata carries the ref's digest
 *   <type>/<key>/blobs/<sha256>    a file's contents, named by digest: two machines that build the
 *                                  same step at once never mix their files, whatever the interleaving
 *   <type>/<key>/packs/<sha256>    many small files in one object (s3-packs.ts), and
 *   <type>/<key>/packs/<sha>.json  the index of where each lies (named in the manifest's metadata)
 *   work/<type>/<key>/…            unfinished work (checkpoints) that another machine may continue
 *   .corrupt/…                     manifests of artifacts found damaged, set aside for a look later
 *
 * The bucket is the source of truth: when it holds an artifact, every machine uses that one. A
 * download is verified file by file against the manifest before it enters the cache; a damaged
 * object is never used: the artifact is set aside (its manifest moved to .corrupt/) and rebuilt,
 * just as a damaged artifact in a folder store is.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly location: string;
  readonly root: string;
  readonly workShare: WorkShare;
  private readonly cache: LocalArtifactStore;
  /** Downloads under way in this process, so that parallel activities fetch an artifact once. */
  private readonly fetching = new Map<string, Promise<Manifest<unknown> | undefined>>();

  constructor(
    private readonly bucket: Bucket,
    cacheRoot: string,
    private readonly log?: Pick<Logger, 'warn' | 'debug'>,
  ) {
    this.cache = new LocalArtifactStore(cacheRoot, 'SWEEPS_ARTIFACTS_CACHE');
    this.root = this.cache.root;
    this.location = bucket.uri().replace(/\/$/, '');
    this.workShare = new BucketWorkShare(bucket, this.root);
  }

  dirFor(identity: StepIdentity): string {
    return this.cache.dirFor(identity);
  }

  removeAbandonedBuilds(olderThanMs?: number): Promise<string[]> {
    return this.cache.removeAbandonedBuilds(olderThanMs);
  }

  /** Work and fetched artifacts are written into this machine's cache. */
  explainWrite(err: NodeJS.ErrnoException, what: string): Error {
    return this.cache.explainWrite(err, what);
  }

  /** A file in this machine's cache: there only once fetched (activities use `localPath`). */
  path(ref: ArtifactRef | string, file?: string): string {
    return this.cache.path(ref, file);
  }

  workDir(type: string, key: string): Promise<string> {
    return this.cache.workDir(type, key);
  }

  async lookup<T>(identity: StepIdentity): Promise<{ ref: ArtifactRef; result: T } | undefined> {
    const dir = this.dirFor(identity);
    // A few rounds at most: each one follows a change made by another machine meanwhile.
    for (let round = 0; round < 3; round++) {
      const remote = await this.remoteDigest(dir);
      if (remote !== undefined) {
        if ((await this.cache.describe(dir))?.ref.digest === remote) {
          const local = await this.cache.lookup<T>(identity);
          if (local) return local;
        }
        const fetched = await this.fetchOrSetAside<T>(dir);
        if (fetched) return { ref: fetched.ref, result: fetched.result };
        continue; // the bucket's copy was damaged and is set aside now
      }
      const local = await this.cache.lookup<T>(identity);
      if (!local) return undefined;
      // Committed here but not in the bucket: an upload was interrupted, or the bucket's copy was
      // found damaged and set aside. Finish the commit now.
      if (await this.publish(dir, local.ref)) return local;
    }
    throw new Error(`artifact ${dir}: its copy in ${this.bucket.uri(dir)} kept changing while it was looked up; try again`);
  }

  async getOrBuild<T>(identity: StepIdentity, build: (dir: string) => Promise<T>): Promise<{ ref: ArtifactRef; result: T; cached: boolean }> {
    const hit = await this.lookup<T>(identity);
    if (hit) return { ...hit, cached: true };
    const built = await this.cache.getOrBuild(identity, build);
    if (await this.publish(built.ref.dir, built.ref)) return built;
    // Another machine committed the same identity first: its artifact is the one everybody uses.
    const theirs = await this.lookup<T>(identity);
    if (!theirs)
      throw new Error(`artifact ${built.ref.dir}: another machine committed it to ${this.bucket.uri(built.ref.dir)}, but it is gone again; try again`);
    return { ...theirs, cached: true };
  }

  async files(ref: ArtifactRef): Promise<Record<string, FileDigest>> {
    if ((await this.cache.describe(ref.dir))?.ref.digest === ref.digest) return this.cache.files(ref);
    let manifest: Manifest<unknown> | undefined;
    try {
      manifest = await this.fetch(ref.dir);
    } catch (err) {
      if (err instanceof RemoteCorrupt) await this.setAsideRemote(ref.dir, err);
      throw err;
    }
    if (!manifest) {
      throw new ArtifactCorrupt(`artifact ${ref.dir} is neither on this machine nor in ${this.bucket.uri(ref.dir)} (deleted, or set aside as damaged)`);
    }
    if (manifest.ref.digest !== ref.digest) {
      throw new ArtifactCorrupt(
        `artifact ${ref.dir}: ${this.bucket.uri(ref.dir)} holds another build of it (digest ${manifest.ref.digest}) than the reference names (${ref.digest})`,
      );
    }
    return manifest.files;
  }

  async verify(ref: ArtifactRef): Promise<void> {
    await this.withLocalCopy(ref, () => this.cache.verify(ref));
  }

  async verifyFile(ref: ArtifactRef, name: string): Promise<void> {
    await this.withLocalCopy(ref, () => this.cache.verifyFile(ref, name));
  }

  async localPath(ref: ArtifactRef, file?: string): Promise<string> {
    await this.files(ref);
    return this.cache.path(ref, file);
  }

  async describe(dir: string): Promise<ArtifactHead | undefined> {
    return (await this.cache.describe(dir)) ?? (await this.remoteHead(dir));
  }

  /** Identity and ref from the bucket's manifest (without fetching the files), if it has a readable one. */
  private async remoteHead(dir: string): Promise<ArtifactHead | undefined> {
    const got = await this.bucket.get(manifestKey(dir));
    const manifest = got && parseManifest(got.body.toString('utf8'), dir);
    return manifest && typeof manifest !== 'string' ? { identity: manifest.identity, ref: manifest.ref } : undefined;
  }

  /**
   * Runs a check of this machine's copy. A copy that was damaged after it arrived (a disk error,
   * a person editing the cache) is dropped and fetched again from the bucket, which holds the original.
   */
  private async withLocalCopy(ref: ArtifactRef, check: () => Promise<void>): Promise<void> {
    await this.files(ref);
    try {
      await check();
    } catch (err) {
      if (!(err instanceof ArtifactCorrupt)) throw err;
      this.log?.warn({ dir: ref.dir, cache: this.root, err }, 'the cached copy of an artifact is damaged: fetching it again');
      await this.cache.setAside(ref.dir);
      await this.files(ref);
      await check();
    }
  }

  /** The digest the bucket's manifest carries, or undefined when the bucket has no committed artifact there. */
  private async remoteDigest(dir: string): Promise<string | undefined> {
    const metadata = await this.bucket.head(manifestKey(dir));
    if (metadata === undefined) return undefined;
    // Written by us with the digest; a manifest without it is read to find out ('' when unreadable:
    // it then matches no copy, and the download that follows finds it damaged).
    return metadata.digest ?? (await this.remoteHead(dir))?.ref.digest ?? '';
  }

  /** Downloads the bucket's copy into the cache; a damaged one is set aside and counts as absent. */
  private async fetchOrSetAside<T>(dir: string): Promise<Manifest<T> | undefined> {
    try {
      return (await this.fetch(dir)) as Manifest<T> | undefined;
    } catch (err) {
      if (!(err instanceof RemoteCorrupt)) throw err;
      await this.setAsideRemote(dir, err);
      return undefined;
    }
  }

  private fetch(dir: string): Promise<Manifest<unknown> | undefined> {
    let running = this.fetching.get(dir);
    if (!running) {
      running = this.download(dir).finally(() => this.fetching.delete(dir));
      this.fetching.set(dir, running);
    }
    return running;
  }

  /**
   * Brings the bucket's copy of an artifact into the cache: every file is checked against the
   * manifest while it arrives, in a temp folder that is renamed into place only when all are there.
   * Replaces a cached copy of another build. Undefined when the bucket has no manifest there.
   */
  private async download(dir: string): Promise<Manifest<unknown> | undefined> {
    const got = await this.bucket.get(manifestKey(dir));
    if (got === undefined) return undefined;
    try {
      return await this.downloadCommitted(dir, got);
    } catch (err) {
      if (err instanceof RemoteCorrupt) err.manifestSha ??= sha256Of(got.body);
      throw err;
    }
  }

  private async downloadCommitted(dir: string, got: { body: Buffer; metadata: Record<string, string | undefined> }): Promise<Manifest<unknown>> {
    const manifest = parseManifest<unknown>(got.body.toString('utf8'), dir);
    if (typeof manifest === 'string') throw new RemoteCorrupt(`artifact ${dir}: ${this.bucket.uri(manifestKey(dir))} ${manifest}`);
    const started = Date.now();
    const tmp = await this.cache.tempDir(`fetch-${dir.split('/')[0] ?? 'artifact'}`);
    try {
      const packed = got.metadata.packs ? await this.packIndex(dir, got.metadata.packs, manifest.files) : { packs: [] };
      const inPacks = new Set(packed.packs.flatMap((p) => p.files.map((f) => f.name)));
      const alone = Object.keys(manifest.files).filter((name) => !inPacks.has(name));
      const tasks = [
        ...packed.packs.map((pack) => () => this.unpack(dir, pack, manifest.files, tmp)),
        ...alone.map((name) => () => this.fetchFile(dir, name, manifest.files[name]!, tmp)),
      ];
      await forEachLimit(tasks, TRANSFERS, (task) => task());
      await writeFile(join(tmp, MANIFEST), got.body);
      // A cached copy of another build, or a folder without a manifest (damaged: commits are
      // renames of complete folders), would block the rename: move it aside first.
      const here = await this.cache.describe(dir);
      if (here?.ref.digest !== manifest.ref.digest) await this.cache.setAside(dir);
      if (!(await this.cache.install(tmp, dir)) && (await this.cache.describe(dir))?.ref.digest !== manifest.ref.digest) {
        throw new Error(`artifact ${dir}: another copy appeared in the cache ${this.root} while it was downloaded; try again`);
      }
      this.log?.debug({ dir, files: Object.keys(manifest.files).length, ms: Date.now() - started }, 'artifact fetched from the bucket');
      return manifest;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  private async packIndex(dir: string, sha256: string, files: Record<string, FileDigest>): Promise<PackIndex> {
    const key = packIndexKey(dir, sha256);
    const got = await this.bucket.get(key);
    if (!got) throw new RemoteCorrupt(`artifact ${dir}: ${this.bucket.uri(key)} (its pack index) is missing`);
    const index = parsePackIndex(got.body.toString('utf8'), files);
    if (typeof index === 'string') throw new RemoteCorrupt(`artifact ${dir}: ${this.bucket.uri(key)} ${index}`);
    return index;
  }

  /** Splits a pack into its files, each checked against the manifest. */
  private async unpack(dir: string, pack: PackIndex['packs'][number], files: Record<string, FileDigest>, tmp: string): Promise<void> {
    const key = packKey(dir, pack.sha256);
    const got = await this.bucket.get(key);
    if (!got) throw new RemoteCorrupt(`artifact ${dir}: ${this.bucket.uri(key)} (a pack of ${pack.files.length} of its files) is missing`);
    for (const f of pack.files) {
      const bytes = got.body.subarray(f.offset, f.offset + f.bytes);
      const actual: FileDigest = { sha256: sha256Of(bytes), bytes: bytes.length };
      this.checkArrived(dir, key, f.name, actual, files[f.name]!);
      const target = join(tmp, f.name);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, bytes);
    }
  }

  private async fetchFile(dir: string, name: string, expected: FileDigest, tmp: string): Promise<void> {
    const target = join(tmp, name);
    await mkdir(dirname(target), { recursive: true });
    const key = blobKey(dir, expected.sha256);
    const got = await this.bucket.download(key, target);
    if (!got) throw new RemoteCorrupt(`artifact ${dir}: ${this.bucket.uri(key)} (its file ${name}) is missing`);
    this.checkArrived(dir, key, name, got, expected);
  }

  private checkArrived(dir: string, key: string, name: string, actual: FileDigest, expected: FileDigest): void {
    if (actual.sha256 !== expected.sha256 || actual.bytes !== expected.bytes) {
      throw new RemoteCorrupt(
        `artifact ${dir}: ${this.bucket.uri(key)} (its file ${name}) has sha256 ${actual.sha256} (${actual.bytes} bytes), ` +
          `expected ${expected.sha256} (${expected.bytes} bytes)`,
      );
    }
  }

  /**
   * Commits this machine's copy of an artifact to the bucket: every file first (large ones alone,
   * small ones in packs, then the packs' index), then the manifest, only if no manifest is there
   * yet. True when the bucket now holds this build; false when another machine's got there first.
   */
  private async publish(dir: string, ref: ArtifactRef): Promise<boolean> {
    const manifestBytes = await readFile(this.cache.path(dir, MANIFEST));
    const files = await this.cache.files(ref);
    const plan = planPacks(files);
    const index: PackIndex = { packs: [] };
    // Every object, even one that is there already: it may be the damaged one that made us rebuild.
    const tasks = [
      ...plan.packs.map((entries) => async () => {
        const body = Buffer.concat(await Promise.all(entries.map((e) => readFile(this.cache.path(dir, e.name)))));
        const sha256 = createHash('sha256').update(body).digest('hex');
        await this.bucket.put(packKey(dir, sha256), body);
        index.packs.push({ sha256, bytes: body.length, files: entries });
      }),
      // One upload per distinct content: equal files share their blob.
      ...[...new Map(plan.alone.map((name) => [files[name]!.sha256, name]))].map(
        ([sha256, name]) =>
          () =>
            this.bucket.upload(blobKey(dir, sha256), this.cache.path(dir, name), files[name]!.bytes),
      ),
    ];
    await forEachLimit(tasks, TRANSFERS, (task) => task());
    const metadata: Record<string, string> = { digest: ref.digest };
    if (index.packs.length > 0) {
      index.packs.sort((a, b) => (a.sha256 < b.sha256 ? -1 : 1));
      const body = Buffer.from(JSON.stringify(index));
      metadata.packs = createHash('sha256').update(body).digest('hex');
      await this.bucket.put(packIndexKey(dir, metadata.packs), body);
    }
    if (await this.bucket.put(manifestKey(dir), manifestBytes, { ifAbsent: true, metadata })) return true;
    return (await this.remoteDigest(dir)) === ref.digest;
  }

  /** Takes a damaged artifact out of the bucket (its manifest, so it is no longer committed), keeping a copy to look at. */
  private async setAsideRemote(dir: string, why: RemoteCorrupt): Promise<void> {
    const got = await this.bucket.get(manifestKey(dir));
    // Another machine may have set it aside and published a rebuild meanwhile: leave that one be.
    if (got !== undefined && why.manifestSha !== undefined && sha256Of(got.body) !== why.manifestSha) return;
    this.log?.warn({ dir, err: why }, "the bucket's copy of an artifact is damaged: set aside, it will be rebuilt");
    if (got !== undefined) {
      const aside = `.corrupt/${dir.replace(/\//g, '-')}-${Date.now()}-${randomBytes(3).toString('hex')}`;
      await this.bucket.put(`${aside}/${MANIFEST}`, got.body, { metadata: got.metadata });
      await this.bucket.put(`${aside}/reason.txt`, why.message);
    }
    await this.bucket.remove(manifestKey(dir));
  }
}

/** Work folders saved in the bucket under `work/<type>/<key>/`, mirroring the cache's `work/` folder. */
class BucketWorkShare implements WorkShare {
  constructor(
    private readonly bucket: Bucket,
    private readonly root: string,
  ) {}

  list(type: string, key: string): Promise<string[]> {
    return this.bucket.list(`${workPrefix(type, key)}/`);
  }

  async save(type: string, key: string, files: string[]): Promise<void> {
    for (const file of files) {
      const local = join(this.root, 'work', type, key, checkedName(file));
      await this.bucket.upload(`${workPrefix(type, key)}/${file}`, local, (await stat(local)).size);
    }
  }

  async restore(type: string, key: string, file: string, to: string): Promise<void> {
    const objectKey = `${workPrefix(type, key)}/${checkedName(file)}`;
    await mkdir(dirname(to), { recursive: true });
    const tmp = `${to}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      if (!(await this.bucket.download(objectKey, tmp))) throw new Error(`${this.bucket.uri(objectKey)} does not exist`);
      await rename(tmp, to);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

const manifestKey = (dir: string) => `${dir}/${MANIFEST}`;
const blobKey = (dir: string, sha256: string) => `${dir}/blobs/${sha256}`;
const packKey = (dir: string, sha256: string) => `${dir}/packs/${sha256}`;
const packIndexKey = (dir: string, sha256: string) => `${dir}/packs/${sha256}.json`;
const workPrefix = (type: string, key: string) => `work/${checkedName(type)}/${checkedName(key)}`;

/** A relative name that stays inside its folder (names come from the bucket, which others write too). */
function checkedName(name: string): string {
  if (name === '' || posix.normalize(name) !== name || name.startsWith('/') || name.startsWith('../') || name === '..') {
    throw new Error(`refusing the work file name "${name}": it would leave its folder`);
  }
  return name;
}

/**
 * Runs `fn` over `items`, at most `limit` at a time. After a failure no new item starts; the first
 * failure is thrown once the running ones have ended (so none writes into a folder being removed).
 */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const item = items[next++] as T;
      await fn(item).catch((err: unknown) => {
        failure ??= { err };
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.err;
}
