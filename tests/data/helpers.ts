import { crc32, deflateRawSync } from 'node:zlib';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pino from 'pino';
import { LocalArtifactStore } from '../../artifacts/local-store';
import type { ActivityDeps } from '../../activities/deps';
import { GESTURES_MD5, gesturesArchivePath } from '../helpers/fixtures';

/** The real archive, never copied into the repository: `<repo>/../shared/data/…` unless overridden. */
export const ARCHIVE = gesturesArchivePath;
export const ARCHIVE_MD5 = GESTURES_MD5;
export const ARCHIVE_SHA256 = '4a6c5ac1d408f8405d456e0404b424b905ea49425c663fb08f0c3ab341efd32d';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sweeps-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export type TestDeps = ReturnType<typeof testDeps>;

/** Activity dependencies on a folder store (whose files tests read directly, by `store.path`). */
export function testDeps(root: string): ActivityDeps & { store: LocalArtifactStore } {
  return {
    store: new LocalArtifactStore(root),
    logger: pino({ level: process.env.SWEEPS_TEST_LOG ?? 'silent' }),
    // The real archives' folders and the test's temp files: what `file:` sources may read.
    dataRoots: [dirname(ARCHIVE), dirname(SKTIME_WHEEL), tmpdir()],
  };
}

/** Every file (not folder) under `dir`, relative, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (current: string, prefix: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(join(current, entry.name), rel);
      else out.push(rel);
    }
  };
  walk(dir, '');
  return out.sort();
}

// ---------------------------------------------------------------------------------------------
// A minimal zip writer, enough to build hostile archives that no well-behaved tool would make.

export interface ZipEntrySpec {
  name: string;
  data?: Buffer | string;
  /** Deflate instead of storing. */
  deflate?: boolean;
  /** Unix mode including the file type bits, e.g. 0o120777 for a symlink; default a regular file/folder. */
  mode?: number;
  /** Claim this uncompressed size instead of the real one (a lying header). */
  declaredSize?: number;
}

export function makeZip(entries: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const raw = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
    const isDir = e.name.endsWith('/');
    const body = e.deflate ? deflateRawSync(raw) : raw;
    const method = e.deflate ? 8 : 0;
    const crc = crc32(raw);
    const usize = e.declaredSize ?? raw.length;
    const mode = e.mode ?? (isDir ? 0o040755 : 0o100644);

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(usize, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, body);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix, so the mode bits count
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(usize, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(0, 30);
    central.writeUInt16LE(0, 32);
    central.writeUInt16LE(0, 34);
    central.writeUInt16LE(0, 36);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);

    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0, 4);
  end.writeUInt16LE(0, 6);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  end.writeUInt16LE(0, 20);
  return Buffer.concat([...locals, cd, end]);
}

// ---------------------------------------------------------------------------------------------
// Real UEA/UCR datasets: PyPI's sktime wheel, fetched once by scripts/setup-test-tools.sh.

export const SKTIME_WHEEL = resolve(
  process.env.SWEEPS_TEST_WHEELS ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'durable-sweeps', 'wheels'),
  'sktime-1.2.0-py3-none-any.whl',
);
export const SKTIME_SHA256 = 'dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae';
/** Where the wheel keeps its datasets. */
export const SKTIME_DATA = 'sktime/datasets/data';
/** Undefined when the wheel is there; otherwise what is missing and how to get it. */
export const sktimeMissing: string | undefined = existsSync(SKTIME_WHEEL) ? undefined : `no sktime wheel at ${SKTIME_WHEEL}: run scripts/setup-test-tools.sh`;
