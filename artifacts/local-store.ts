import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { digestTree, listDigest, MANIFEST, parseManifest, sealed, type Manifest } from './manifest';
import {
  ArtifactCorrupt,
  sha256File,
  StorageError,
  stepKey,
  type ArtifactHead,
  type ArtifactRef,
  type ArtifactStore,
  type FileDigest,
  type StepIdentity,
} from './store';

/**
 * The artifact store on a folder: local, or shared by every worker (a network file system, a
 * container volume). Also the verified cache each machine keeps of a bucket (`S3ArtifactStore`).
 */
export class LocalArtifactStore implements ArtifactStore {
  readonly root: string;
  readonly location: string;
  /** The folder is shared as it is: nothing to copy. */
  readonly workShare = undefined;

  /** `setting` is what a person changes to move the folder, named in storage errors. */
  constructor(
    root: string,
    private readonly setting = 'SWEEPS_ARTIFACTS',
  ) {
    this.root = resolve(root);
    this.location = this.root;
  }

  path(ref: ArtifactRef | string, file?: string): string {
    const dir = typeof ref === 'string' ? ref : ref.dir;
    const full = resolve(this.root, dir, file ?? '.');
    if (full !== this.root && !full.startsWith(this.root + sep)) {
      throw new Error(`artifact path ${dir}/${file ?? ''} escapes the artifact root ${this.root}`);
    }
    return full;
  }

  /** The folder is the store: an artifact that exists is already here. */
  async localPath(ref: ArtifactRef, file?: string): Promise<string> {
    return this.path(ref, file);
  }

  async workDir(type: string, key: string): Promise<string> {
    const dir = join(this.root, 'work', type, key);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async lookup<T>(identity: StepIdentity): Promise<{ ref: ArtifactRef; result: T } | undefined> {
    const dir = this.dirFor(identity);
    let text: string;
    try {
      text = await readFile(join(this.root, dir, MANIFEST), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        // Commits rename complete folders, manifest included: a folder without one is damaged,
        // and left in place it would block every rebuild's rename.
        if (await this.exists(dir)) await this.setAside(dir);
        return undefined;
      }
      // The store itself is unusable (a file where its folder should be, no permission): say so,
      // rather than setting aside an artifact that is not there.
      throw this.explainWrite(err as NodeJS.ErrnoException, `the ${identity.type} artifact`);
    }
    const manifest = parseManifest<T>(text, dir);
    try {
      if (typeof manifest === 'string') throw new ArtifactCorrupt(`artifact ${dir}: its manifest ${manifest}`);
      await this.verifyFiles(manifest.ref, manifest.files);
      return { ref: manifest.ref, result: manifest.result };
    } catch (err) {
      // Only damage is set aside; an I/O error that says nothing about the content is reported.
      if (!(err instanceof ArtifactCorrupt)) throw this.explainWrite(err as NodeJS.ErrnoException, `the ${identity.type} artifact`);
      await this.setAside(dir);
      return undefined;
    }
  }

  private async exists(dir: string): Promise<boolean> {
    return stat(this.path(dir)).then(
      () => true,
      () => false,
    );
  }

  async files(ref: ArtifactRef): Promise<Record<string, FileDigest>> {
    let text: string;
    try {
      text = await readFile(join(this.path(ref), MANIFEST), 'utf8');
    } catch (err) {
      throw new ArtifactCorrupt(`artifact ${ref.dir}: its manifest is missing or unreadable (${(err as Error).message})`);
    }
    const manifest = parseManifest<unknown>(text, ref.dir);
    if (typeof manifest === 'string') throw new ArtifactCorrupt(`artifact ${ref.dir}: its manifest ${manifest}`);
    if (manifest.ref.digest !== ref.digest) {
      throw new ArtifactCorrupt(`artifact ${ref.dir}: its file list does not match the reference digest ${ref.digest}`);
    }
    return manifest.files;
  }

  async verify(ref: ArtifactRef): Promise<void> {
    await this.verifyFiles(ref, await this.files(ref));
  }

  async verifyFile(ref: ArtifactRef, name: string): Promise<void> {
    const files = await this.files(ref);
    if (!files[name]) throw new ArtifactCorrupt(`artifact ${ref.dir}: has no file ${name}`);
    await this.verifyFiles(ref, { [name]: files[name] });
  }

  async describe(dir: string): Promise<ArtifactHead | undefined> {
    try {
      const manifest = JSON.parse(await readFile(this.path(dir, MANIFEST), 'utf8')) as Manifest<unknown>;
      return { identity: manifest.identity, ref: manifest.ref };
    } catch {
      return undefined;
    }
  }

  private async verifyFiles(ref: ArtifactRef, files: Record<string, FileDigest>): Promise<void> {
    for (const [name, expected] of Object.entries(files)) {
      const path = this.path(ref, name);
      let actual: FileDigest;
      try {
        actual = await sha256File(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'EISDIR' && code !== 'ENOTDIR') throw err;
        throw new ArtifactCorrupt(`artifact ${ref.dir}: ${name} is missing (${(err as Error).message})`);
      }
      if (actual.sha256 !== expected.sha256 || actual.bytes !== expected.bytes) {
        throw new ArtifactCorrupt(
          `artifact ${ref.dir}: ${name} has sha256 ${actual.sha256} (${actual.bytes} bytes), expected ${expected.sha256} (${expected.bytes} bytes)`,
        );
      }
    }
  }

  async getOrBuild<T>(identity: StepIdentity, build: (dir: string) => Promise<T>): Promise<{ ref: ArtifactRef; result: T; cached: boolean }> {
    const hit = await this.lookup<T>(identity);
    if (hit) return { ...hit, cached: true };

    const dir = this.dirFor(identity);
    let tmp: string | undefined;
    try {
      tmp = await this.tempDir(identity.type);
      const result = await build(tmp);
      const files = await digestTree(tmp);
      const ref: ArtifactRef = { dir, digest: listDigest(files) };
      const manifest: Manifest<T> = sealed({ identity, ref, files, result });
      await writeFile(join(tmp, MANIFEST), JSON.stringify(manifest, null, 2));
      if (await this.install(tmp, dir)) return { ref, result, cached: false };
      // Another worker committed the same identity first: content addressing makes it ours too.
      const other = await this.lookup<T>(identity);
      if (!other) throw new Error(`artifact ${dir}: another writer committed it, but it does not verify`);
      return { ...other, cached: true };
    } catch (err) {
      if (tmp) await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      const explained = this.explainWrite(err as NodeJS.ErrnoException, `the ${identity.type} artifact`);
      if (explained instanceof StorageError) explained.message += '; nothing was committed';
      throw explained;
    }
  }

  /**
   * Removes build folders that a killed process left in `.tmp/` (a build that ends, well or badly,
   * removes its own). A folder's name carries its owner (pid and machine, see `tempDir`): one whose
   * owner ran on this machine since its last boot and is gone is removed at once. Others (another
   * machine sharing the store, or a name without an owner) only when old: a live process elsewhere
   * may be building in it, and no build runs longer than a training's 6-hour limit.
   */
  async removeAbandonedBuilds(olderThanMs = 24 * 3600_000): Promise<string[]> {
    const tmpRoot = join(this.root, '.tmp');
    const entries = await readdir(tmpRoot).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const name of entries) {
      const path = join(tmpRoot, name);
      const owner = ownerOf(name);
      const dead = owner !== undefined && owner.machine === MACHINE && !processAlive(owner.pid);
      const info = dead ? undefined : await stat(path).catch(() => undefined);
      if (dead || (info && Date.now() - info.mtimeMs > olderThanMs)) {
        await rm(path, { recursive: true, force: true });
        removed.push(name);
      }
    }
    return removed;
  }

  /** A fresh folder inside the store (so that `install` is a rename on one file system), named with its owner. */
  async tempDir(label: string): Promise<string> {
    const tmp = join(this.root, '.tmp', `${label}-${randomBytes(6).toString('hex')}${ownerTag(process.pid)}`);
    await mkdir(tmp, { recursive: true });
    return tmp;
  }

  /**
   * Commits a complete folder (files and manifest) as the artifact `dir` by renaming it into place.
   * Returns false, and removes `tmp`, when the artifact exists already (a concurrent writer won).
   */
  async install(tmp: string, dir: string): Promise<boolean> {
    const final = this.path(dir);
    await mkdir(dirname(final), { recursive: true });
    try {
      await rename(tmp, final);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      await rm(tmp, { recursive: true, force: true });
      return false;
    }
  }

  /** Storage errors name the store and what to do; other errors pass through unchanged. */
  explainWrite(err: NodeJS.ErrnoException, what: string): Error {
    const setting = this.setting;
    const hints: Record<string, string> = {
      ENOSPC: `the disk is full: free space, or point ${setting} at a larger disk`,
      EDQUOT: `the disk quota is exhausted: free space, or point ${setting} elsewhere`,
      EACCES: `no permission to write there: fix the permissions, or point ${setting} at a writable folder`,
      EPERM: `no permission to write there: fix the permissions, or point ${setting} at a writable folder`,
      EROFS: `the file system is read-only: point ${setting} at a writable folder`,
      ENOTDIR: `a file stands where a folder is needed: point ${setting} at a folder`,
    };
    const hint = err.code ? hints[err.code] : undefined;
    if (!hint) return err;
    const wrapped = new StorageError(`cannot write ${what} into ${this.root}: ${err.message} (${hint})`);
    wrapped.code = err.code;
    return wrapped;
  }

  dirFor(identity: StepIdentity): string {
    return `${identity.type}/${stepKey(identity).slice(0, 32)}`;
  }

  /** Moves a damaged (or superseded) artifact out of the way into `.corrupt/`, for a look later. */
  async setAside(dir: string): Promise<void> {
    const from = this.path(dir);
    const to = join(this.root, '.corrupt', `${dir.replace(/\//g, '-')}-${Date.now()}-${randomBytes(3).toString('hex')}`);
    await mkdir(dirname(to), { recursive: true });
    await rename(from, to).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') await rm(from, { recursive: true, force: true });
    });
  }
}

/**
 * This machine since its last boot: a pid names one process only on one machine between two boots.
 * A short hash of the host name and Linux's boot id (where there is one) keeps folder names plain.
 */
const MACHINE = createHash('sha256').update(`${hostname()}\n${bootId()}`).digest('hex').slice(0, 10);

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** `-p<pid>-m<machine>` at the end of a build folder's name. */
export const ownerTag = (pid: number) => `-p${pid}-m${MACHINE}`;

function ownerOf(name: string): { pid: number; machine: string } | undefined {
  const m = /-p(\d+)-m([0-9a-f]{10})$/.exec(name);
  return m ? { pid: Number(m[1]), machine: m[2]! } : undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
