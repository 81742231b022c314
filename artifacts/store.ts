import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { canonicalJson } from './canonical';

/**
 * A committed step output: a folder in the store named by the hash of everything that went into
 * it, plus the small result object that the step returned. Only this (never file contents) travels
 * through workflow history.
 */
export interface ArtifactRef {
  /** Store-relative folder, e.g. `padding/3f2a…`. Stable across machines that share the store. */
  dir: string;
  /**
   * sha256 of the artifact's file list (names, digests, sizes). The list itself stays in the
   * manifest on disk: an unpacked archive has thousands of files, and refs travel through history.
   */
  digest: string;
}

export interface FileDigest {
  sha256: string;
  bytes: number;
}

/** What a step's cache key is computed from: its type, its code version, parameters and inputs. */
export interface StepIdentity {
  type: string;
  version: number;
  params: unknown;
  /** Digests (or refs) of upstream outputs; any JSON value. */
  inputs: unknown;
}

interface Manifest<T> {
  identity: StepIdentity;
  ref: ArtifactRef;
  files: Record<string, FileDigest>;
  result: T;
}

const MANIFEST = 'manifest.json';

export function stepKey(identity: StepIdentity): string {
  return createHash('sha256').update(canonicalJson(identity)).digest('hex');
}

export async function sha256File(path: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Writes a file so that readers see either nothing or the whole file: temp name, then rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export class ArtifactCorrupt extends Error {
  override name = 'ArtifactCorrupt';
}

/**
 * A content-addressed artifact store on a local (or shared) folder.
 *
 * A step's output folder is derived from a hash of its identity; it is built in a private temp
 * folder and renamed into place only when complete, with a manifest listing every file's digest.
 * A folder that exists and verifies is a cache hit, which is what makes retries idempotent and
 * resume cheap. A folder that fails verification is moved aside and rebuilt, never used.
 */
export class ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** Absolute path of a file inside a committed artifact. */
  path(ref: ArtifactRef | string, file?: string): string {
    const dir = typeof ref === 'string' ? ref : ref.dir;
    const full = resolve(this.root, dir, file ?? '.');
    if (full !== this.root && !full.startsWith(this.root + sep)) {
      throw new Error(`artifact path ${dir}/${file ?? ''} escapes the artifact root ${this.root}`);
    }
    return full;
  }

  /** A mutable working folder for a step (e.g. training checkpoints), outside committed outputs. */
  async workDir(type: string, key: string): Promise<string> {
    const dir = join(this.root, 'work', type, key);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Returns the committed result for this identity if it exists and every file verifies. */
  async lookup<T>(identity: StepIdentity): Promise<{ ref: ArtifactRef; result: T } | undefined> {
    const dir = this.dirFor(identity);
    let manifest: Manifest<T>;
    try {
      manifest = JSON.parse(await readFile(join(this.root, dir, MANIFEST), 'utf8')) as Manifest<T>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      await this.quarantine(dir);
      return undefined;
    }
    try {
      await this.verifyFiles(manifest.ref, manifest.files);
    } catch {
      await this.quarantine(dir);
      return undefined;
    }
    return { ref: manifest.ref, result: manifest.result };
  }

  /** The file list of a committed artifact, checked against the ref's digest. */
  async files(ref: ArtifactRef): Promise<Record<string, FileDigest>> {
    let manifest: Manifest<unknown>;
    try {
      manifest = JSON.parse(await readFile(join(this.path(ref), MANIFEST), 'utf8')) as Manifest<unknown>;
    } catch (err) {
      throw new ArtifactCorrupt(`artifact ${ref.dir}: its manifest is missing or unreadable (${(err as Error).message})`);
    }
    if (listDigest(manifest.files) !== ref.digest) {
      throw new ArtifactCorrupt(`artifact ${ref.dir}: its file list does not match the reference digest ${ref.digest}`);
    }
    return manifest.files;
  }

  /** Checks every file of an artifact against its recorded digest. */
  async verify(ref: ArtifactRef): Promise<void> {
    await this.verifyFiles(ref, await this.files(ref));
  }

  /** Checks one file of an artifact (cheaper than `verify` for a large artifact). */
  async verifyFile(ref: ArtifactRef, name: string): Promise<void> {
    const files = await this.files(ref);
    if (!files[name]) throw new ArtifactCorrupt(`artifact ${ref.dir}: has no file ${name}`);
    await this.verifyFiles(ref, { [name]: files[name] });
  }

  private async verifyFiles(ref: ArtifactRef, files: Record<string, FileDigest>): Promise<void> {
    for (const [name, expected] of Object.entries(files)) {
      const path = this.path(ref, name);
      let actual: FileDigest;
      try {
        actual = await sha256File(path);
      } catch (err) {
        throw new ArtifactCorrupt(`artifact ${ref.dir}: ${name} is missing (${(err as Error).message})`);
      }
      if (actual.sha256 !== expected.sha256 || actual.bytes !== expected.bytes) {
        throw new ArtifactCorrupt(
          `artifact ${ref.dir}: ${name} has sha256 ${actual.sha256} (${actual.bytes} bytes), ` +
            `expected ${expected.sha256} (${expected.bytes} bytes)`,
        );
      }
    }
  }

  /**
   * Returns the cached output for `identity`, or runs `build` in a fresh temp folder and commits
   * what it wrote. `build` returns the small result object recorded next to the files.
   */
  async getOrBuild<T>(
    identity: StepIdentity,
    build: (dir: string) => Promise<T>,
  ): Promise<{ ref: ArtifactRef; result: T; cached: boolean }> {
    const hit = await this.lookup<T>(identity);
    if (hit) return { ...hit, cached: true };

    const dir = this.dirFor(identity);
    const tmp = join(this.root, '.tmp', `${identity.type}-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(tmp, { recursive: true });
      const result = await build(tmp);
      const files = await digestTree(tmp);
      const ref: ArtifactRef = { dir, digest: listDigest(files) };
      const manifest: Manifest<T> = { identity, ref, files, result };
      await writeFile(join(tmp, MANIFEST), JSON.stringify(manifest, null, 2));
      const final = join(this.root, dir);
      await mkdir(dirname(final), { recursive: true });
      try {
        await rename(tmp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Another worker committed the same identity first: content addressing makes it ours too.
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        await rm(tmp, { recursive: true, force: true });
        const other = await this.lookup<T>(identity);
        if (!other) throw err;
        return { ...other, cached: true };
      }
      return { ref, result, cached: false };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw this.explain(err as NodeJS.ErrnoException, identity);
    }
  }

  /** Storage errors name the store and what to do; other errors pass through unchanged. */
  private explain(err: NodeJS.ErrnoException, identity: StepIdentity): Error {
    const hints: Record<string, string> = {
      ENOSPC: 'the disk is full: free space, or point SWEEPS_ARTIFACTS at a larger disk',
      EDQUOT: 'the disk quota is exhausted: free space, or point SWEEPS_ARTIFACTS elsewhere',
      EACCES: 'no permission to write there: fix the permissions, or point SWEEPS_ARTIFACTS at a writable folder',
      EPERM: 'no permission to write there: fix the permissions, or point SWEEPS_ARTIFACTS at a writable folder',
      EROFS: 'the file system is read-only: point SWEEPS_ARTIFACTS at a writable folder',
      ENOTDIR: 'a file stands where a folder is needed: point SWEEPS_ARTIFACTS at a folder',
    };
    const hint = err.code ? hints[err.code] : undefined;
    if (!hint) return err;
    const wrapped = new Error(`cannot write the ${identity.type} artifact into ${this.root}: ${err.message} (${hint}); nothing was committed`);
    (wrapped as NodeJS.ErrnoException).code = err.code;
    return wrapped;
  }

  dirFor(identity: StepIdentity): string {
    return `${identity.type}/${stepKey(identity).slice(0, 32)}`;
  }

  private async quarantine(dir: string): Promise<void> {
    const from = join(this.root, dir);
    const to = join(this.root, '.corrupt', `${dir.replace(/\//g, '-')}-${Date.now()}`);
    await mkdir(dirname(to), { recursive: true });
    await rename(from, to).catch(() => rm(from, { recursive: true, force: true }));
  }
}

function listDigest(files: Record<string, FileDigest>): string {
  return createHash('sha256').update(canonicalJson(files)).digest('hex');
}

async function digestTree(dir: string): Promise<Record<string, FileDigest>> {
  const files: Record<string, FileDigest> = {};
  async function walk(current: string): Promise<void> {
    const entries = await readdir(current, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) files[relative(dir, full).split(sep).join('/')] = await sha256File(full);
    }
  }
  await walk(dir);
  return files;
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
