import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import { canonicalJson } from './canonical';
import { sha256File, type ArtifactRef, type FileDigest, type StepIdentity } from './store';

/**
 * What every committed artifact carries next to its files: the identity it was built for, its
 * reference, every file's digest and the step's small result. Written last, so its presence is
 * what makes an artifact committed (a rename locally, the last upload in a bucket).
 */
export interface Manifest<T> {
  identity: StepIdentity;
  ref: ArtifactRef;
  files: Record<string, FileDigest>;
  result: T;
  /**
   * sha256 of everything above (canonical JSON): the file digests cover the files, this covers the
   * manifest itself, so a damaged result or reference is never used. Absent in manifests written
   * before it existed; those are checked without it.
   */
  seal?: string;
}

export const MANIFEST = 'manifest.json';

/** A manifest with its seal. */
export function sealed<T>(manifest: Omit<Manifest<T>, 'seal'>): Manifest<T> {
  return { ...manifest, seal: sealOf(manifest) };
}

function sealOf(manifest: Omit<Manifest<unknown>, 'seal'>): string {
  const { identity, ref, files, result } = manifest;
  return createHash('sha256').update(canonicalJson({ identity, ref, files, result })).digest('hex');
}

/** The digest a reference carries: of the file list, so a ref stays small however many files. */
export function listDigest(files: Record<string, FileDigest>): string {
  return createHash('sha256').update(canonicalJson(files)).digest('hex');
}

/** Every regular file under `dir` with its digest, keyed by its `/`-separated relative path. */
export async function digestTree(dir: string): Promise<Record<string, FileDigest>> {
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

/**
 * A manifest as read from disk or a bucket: parsed, and checked to be consistent with itself (its
 * seal, its file list against its reference) and with the folder it was found under, and to name
 * only files inside the artifact. Returns the reason when it is not usable.
 */
export function parseManifest<T>(text: string, dir: string): Manifest<T> | string {
  let manifest: Manifest<T>;
  try {
    manifest = JSON.parse(text) as Manifest<T>;
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.files !== 'object' || manifest.files === null) {
    return 'has no file list';
  }
  if (manifest.ref?.dir !== dir) return `names the folder ${String(manifest.ref?.dir)}, not ${dir}`;
  for (const [name, file] of Object.entries(manifest.files)) {
    const normal = posix.normalize(name);
    if (normal !== name || name.startsWith('/') || name === '..' || name.startsWith('../') || name === MANIFEST)
      return `lists a file outside the artifact: ${name}`;
    if (typeof file?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(file.sha256) || !Number.isSafeInteger(file.bytes)) {
      return `has no valid digest for ${name}`;
    }
  }
  if (listDigest(manifest.files) !== manifest.ref.digest) return `its file list does not match its digest ${String(manifest.ref.digest)}`;
  if (manifest.seal !== undefined && manifest.seal !== sealOf(manifest)) return 'its content does not match its seal';
  return manifest;
}
