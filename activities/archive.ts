import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, posix, resolve, sep } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as yauzl from 'yauzl';

/**
 * The archive itself is unacceptable (escaping paths, links, bombs): the same bytes fail the same
 * way on every retry, so callers turn this into a non-retryable failure.
 */
export class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
}

/** The bytes are not a readable zip (after the digest matched, so retrying cannot help either). */
export class MalformedArchiveError extends Error {
  override name = 'MalformedArchiveError';
}

export interface UnpackOptions {
  /** Upper bound on the sum of all unpacked file sizes, declared and actual. */
  maxBytes: number;
  /** Called every few entries; must not throw. */
  onProgress?: (p: UnpackProgress) => void;
  signal?: AbortSignal;
}

export interface UnpackProgress {
  entries: number;
  totalEntries: number;
  bytes: number;
}

export interface UnpackSummary {
  entries: number;
  files: number;
  directories: number;
  bytes: number;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/**
 * Unpacks a zip into `target` (which must exist and should be empty), refusing anything that could
 * write outside it or fill the disk. Checks happen before a byte of an entry is written, except the
 * actual-size bound, which is enforced while inflating because declared sizes can lie.
 */
export async function unpackZip(zipPath: string, target: string, options: UnpackOptions): Promise<UnpackSummary> {
  const root = resolve(target);
  let zip: yauzl.ZipFile;
  try {
    // decodeStrings: false so that a bad name reaches our own checks (which name the entry and the
    // rule) instead of failing inside yauzl with a message that does not say which archive.
    zip = await yauzl.openPromise(zipPath, { lazyEntries: true, decodeStrings: false, validateEntrySizes: true, autoClose: false });
  } catch (err) {
    throw new MalformedArchiveError(`${zipPath} is not a readable zip archive: ${(err as Error).message}`);
  }

  // yauzl emits 'error' outside any pending read too; without a listener that would crash the process.
  let zipError: Error | undefined;
  zip.on('error', (err: Error) => {
    zipError ??= err;
  });

  const summary: UnpackSummary = { entries: 0, files: 0, directories: 0, bytes: 0 };
  const budget = { used: 0, max: options.maxBytes };
  const madeDirs = new Set<string>();
  const ensureDir = async (dir: string): Promise<void> => {
    if (madeDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    madeDirs.add(dir);
  };
  // A few entries are written while the next ones are read: archives of many small files are
  // dominated by per-file open/close latency, not by inflating.
  const inFlight = new Set<Promise<void>>();
  let firstFailure: unknown;
  const track = (work: Promise<void>): void => {
    const p = work.then(
      () => {
        inFlight.delete(p);
      },
      (err: unknown) => {
        inFlight.delete(p);
        firstFailure ??= err;
      },
    );
    inFlight.add(p);
  };

  let declared = 0;
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      if (firstFailure !== undefined) throw firstFailure;
      const entry = await nextEntry(zip, () => zipError);
      if (!entry) break;
      summary.entries += 1;

      const name = entryName(entry);
      const dest = safeDestination(root, name);
      const kind = entryKind(entry, name);

      if (kind === 'directory') {
        await ensureDir(dest);
        summary.directories += 1;
      } else {
        declared += entry.uncompressedSize;
        if (declared > options.maxBytes) {
          throw new UnsafeArchiveError(
            `archive declares more than max_unpacked_bytes=${options.maxBytes} bytes once entry "${name}" is added ` +
              `(${declared} bytes so far): refusing to unpack (zip bomb?)`,
          );
        }
        await ensureDir(dirname(dest));
        const stream = await openEntry(zip, entry, name);
        // 'wx': never replace an earlier entry of the same name or follow anything already there.
        track(pipeline(stream, new ByteLimit(budget, name), createWriteStream(dest, { flags: 'wx', mode: 0o644 }), { signal: options.signal }));
        summary.files += 1;
        while (inFlight.size >= 8) await Promise.race(inFlight);
      }
      if (summary.entries % 200 === 0) {
        options.onProgress?.({ entries: summary.entries, totalEntries: zip.entryCount, bytes: budget.used });
      }
    }
    await Promise.all(inFlight);
    if (firstFailure !== undefined) throw firstFailure;
  } catch (err) {
    // Let writes still running settle before the caller deletes the folder they write into.
    await Promise.all(inFlight);
    if (options.signal?.aborted) throw options.signal.reason ?? err;
    if (err instanceof UnsafeArchiveError || err instanceof MalformedArchiveError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') {
      throw new UnsafeArchiveError(`archive ${zipPath} has conflicting entries (the same path twice, or a file where a folder is): ${(err as Error).message}`);
    }
    if ((err as NodeJS.ErrnoException).code !== undefined && (err as NodeJS.ErrnoException).syscall !== undefined) {
      throw err; // disk trouble (ENOSPC, EACCES…) is not the archive's fault
    }
    throw new MalformedArchiveError(`cannot unpack ${zipPath}: ${(err as Error).message}`);
  } finally {
    zip.close();
  }
  summary.bytes = budget.used;
  options.onProgress?.({ entries: summary.entries, totalEntries: zip.entryCount, bytes: summary.bytes });
  return summary;
}

function nextEntry(zip: yauzl.ZipFile, pendingError: () => Error | undefined): Promise<yauzl.Entry | undefined> {
  const early = pendingError();
  if (early) return Promise.reject(early);
  return new Promise((resolvePromise, reject) => {
    const cleanup = (): void => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    const onEntry = (entry: yauzl.Entry): void => {
      cleanup();
      resolvePromise(entry);
    };
    const onEnd = (): void => {
      cleanup();
      resolvePromise(undefined);
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

async function openEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, name: string): Promise<NodeJS.ReadableStream> {
  if (entry.isEncrypted()) throw new MalformedArchiveError(`entry "${name}" is encrypted`);
  if (!entry.canDecodeFileData()) {
    throw new MalformedArchiveError(`entry "${name}" uses unsupported compression method ${entry.compressionMethod}`);
  }
  return zip.openReadStreamPromise(entry);
}

/** The entry's name as the archive meant it (UTF-8 flag, Info-ZIP unicode field, backslashes as `/`). */
function entryName(entry: yauzl.Entry): string {
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
}

/**
 * Where an entry may be written, or why it may not. A name that normalises to somewhere inside the
 * target (`a/../b`) is allowed; one that leaves it, is absolute, or names a drive is not.
 */
export function safeDestination(root: string, name: string): string {
  if (name.length === 0) throw new UnsafeArchiveError('archive has an entry with an empty name');
  if (name.includes('\0')) throw new UnsafeArchiveError(`entry "${name.replace(/\0/g, '\\0')}" contains a NUL byte`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) {
    throw new UnsafeArchiveError(`entry "${name}" has an absolute path: refusing to unpack`);
  }
  const normalised = posix.normalize(name);
  if (normalised === '..' || normalised.startsWith('../')) {
    throw new UnsafeArchiveError(`entry "${name}" escapes the target folder with "..": refusing to unpack`);
  }
  const dest = resolve(root, ...normalised.split('/').filter((part) => part !== ''));
  if (dest !== root && !dest.startsWith(root + sep)) {
    throw new UnsafeArchiveError(`entry "${name}" resolves outside the target folder: refusing to unpack`);
  }
  return dest;
}

/**
 * Unix zips keep the file mode in the upper half of the external attributes; anything but a regular
 * file or a folder (symlinks above all: a link followed by a file through it escapes the target) is
 * refused. Archives made elsewhere leave the mode at 0 and are judged by the trailing slash.
 */
function entryKind(entry: yauzl.Entry, name: string): 'file' | 'directory' {
  const mode = (entry.externalFileAttributes >>> 16) & S_IFMT;
  if (mode === S_IFLNK) throw new UnsafeArchiveError(`entry "${name}" is a symbolic link: refusing to unpack`);
  if (mode !== 0 && mode !== S_IFREG && mode !== S_IFDIR) {
    throw new UnsafeArchiveError(`entry "${name}" is a special file (mode 0o${mode.toString(8)}): refusing to unpack`);
  }
  const dirByName = name.endsWith('/');
  if (mode === S_IFDIR || dirByName) {
    if (entry.uncompressedSize > 0) throw new MalformedArchiveError(`folder entry "${name}" has content`);
    return 'directory';
  }
  return 'file';
}

/** Counts bytes as they are inflated and stops as soon as the archive's shared budget is exceeded. */
class ByteLimit extends Transform {
  constructor(
    private readonly budget: { used: number; max: number },
    private readonly name: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.budget.used += chunk.length;
    if (this.budget.used > this.budget.max) {
      done(new UnsafeArchiveError(`entry "${this.name}" inflates beyond max_unpacked_bytes=${this.budget.max}: refusing to unpack (zip bomb?)`));
      return;
    }
    done(null, chunk);
  }
}
