import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
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
   * manifest: an unpacked archive has thousands of files, and refs travel through history.
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

/** The identity and reference of a committed artifact, without its file list. */
export interface ArtifactHead {
  identity: StepIdentity;
  ref: ArtifactRef;
}

/**
 * Where step outputs live. Artifacts are content-addressed: a step's output folder is derived from
 * a hash of its identity, built in a private temp folder and committed with a manifest of every
 * file's digest. An artifact that exists and verifies is a cache hit, which is what makes retries
 * idempotent and resume cheap; one that fails verification is set aside and rebuilt, never used.
 *
 * Two implementations: a folder (local, or shared by every worker: `LocalArtifactStore`), and an
 * S3-compatible bucket with a verified local cache on each machine (`S3ArtifactStore`), so that
 * workers share artifacts without a shared file system. `createArtifactStore` picks one.
 */
export interface ArtifactStore {
  /** Where the artifacts are kept, for messages: a folder, or `s3://bucket/prefix`. */
  readonly location: string;
  /** This machine's folder of artifacts and work areas (the store itself, or the bucket's cache). */
  readonly root: string;

  /** The store-relative folder of the artifact for this identity. */
  dirFor(identity: StepIdentity): string;

  /** The committed result for this identity if it exists and every file verifies. */
  lookup<T>(identity: StepIdentity): Promise<{ ref: ArtifactRef; result: T } | undefined>;

  /**
   * Returns the committed output for `identity`, or runs `build` in a fresh temp folder and
   * commits what it wrote. `build` returns the small result object recorded next to the files.
   */
  getOrBuild<T>(identity: StepIdentity, build: (dir: string) => Promise<T>): Promise<{ ref: ArtifactRef; result: T; cached: boolean }>;

  /** The file list of a committed artifact, checked against the ref's digest; brings it onto this machine. */
  files(ref: ArtifactRef): Promise<Record<string, FileDigest>>;
  /** Checks every file of an artifact against its recorded digest. */
  verify(ref: ArtifactRef): Promise<void>;
  /** Checks one file of an artifact (cheaper than `verify` for a large artifact). */
  verifyFile(ref: ArtifactRef, name: string): Promise<void>;

  /**
   * A storage error (disk full, no permission, read-only) met while writing `what` into this
   * machine's folder of the store, as a `StorageError` that names the folder, the setting that
   * moves it and what to do; any other error is returned unchanged.
   */
  explainWrite(err: NodeJS.ErrnoException, what: string): Error;

  /** Removes this machine's build folders that a killed process left behind (only old ones); returns their names. */
  removeAbandonedBuilds(olderThanMs?: number): Promise<string[]>;

  /** Brings the artifact onto this machine (when it is not) and returns the local path of `file` in it. */
  localPath(ref: ArtifactRef, file?: string): Promise<string>;

  /** Identity and ref of a committed artifact (from its manifest), or undefined when there is none. */
  describe(dir: string): Promise<ArtifactHead | undefined>;

  /** A mutable working folder on this machine for a step (e.g. training checkpoints), outside committed outputs. */
  workDir(type: string, key: string): Promise<string>;
  /**
   * Copies of work folders that other machines can see, for stores whose work folders are local
   * to each machine; undefined when the work folder itself is shared (a shared folder store).
   */
  readonly workShare?: WorkShare;
}

/** Shared copies of work-folder files (`<type>/<key>/<file>`), for moving unfinished work between machines. */
export interface WorkShare {
  /** The files saved for a work folder, relative to it (`epoch-0003/state.json`). */
  list(type: string, key: string): Promise<string[]>;
  /** Saves files of the local work folder (relative paths), one after the other in the given order. */
  save(type: string, key: string, files: string[]): Promise<void>;
  /** Copies one saved file to the local path `to`, atomically. */
  restore(type: string, key: string, file: string, to: string): Promise<void>;
}

export class ArtifactCorrupt extends Error {
  override name = 'ArtifactCorrupt';
}

/** The store's disk cannot take a write (full, no permission, read-only): a person has to act. */
export class StorageError extends Error {
  override name = 'StorageError';
  code?: string;
}

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

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
