import { readFile, readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Field, Float32, Int32, List, RecordBatch, Schema, Struct, Table, Utf8, makeData, tableToIPC, type Data } from 'apache-arrow';
import { z } from 'zod';
import { writeFileAtomic } from '../artifacts/store';
import { activitySignal, heartbeatIfActivity } from './context';
import type { ActivityDeps } from './deps';
import { isDownloadResult } from './download';
import { badParameter, BAD_PARAMETER, parseStepParams } from './params';
import { defineStep } from './step-module';
import type { DatasetResult, DownloadResult, StepInput } from './types';
import { verifyInput } from './upstream';

export const splitParams = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('random').describe('A seeded random split of all sequences (the reference: 80/20).'),
    seed: z.number().int().default(42),
    valid_fraction: z.number().gt(0).lt(1).default(0.2).describe('Share of the sequences held out for validation.'),
  }),
  z.strictObject({
    kind: z.literal('by-user').describe('Hold out whole users: validation measures generalisation to new people.'),
    valid_users: z
      .array(z.string().min(1))
      .min(1, 'name at least one user to hold out')
      .describe('Users whose sequences form the validation set, e.g. [U07, U08].'),
  }),
]);
export type SplitParams = z.infer<typeof splitParams>;

export const datasetParams = z.strictObject({
  root: z
    .string()
    .min(1)
    .refine((r) => !/^([/\\]|[A-Za-z]:)/.test(r) && !r.split(/[/\\]/).includes('..'), {
      message: 'a folder inside the unpacked archive: a relative path without ".." (steps read only their inputs)',
    })
    .default('gestures-dataset')
    .describe('Folder inside the unpacked archive that holds the user folders.'),
  split: splitParams.default({ kind: 'random', seed: 42, valid_fraction: 0.2 }).describe('How sequences are split into train and validation.'),
  limit: z.number().int().positive().optional().describe('Keep only this many sequences (a deterministic subset), for quick runs and tests.'),
});
export type DatasetParams = z.infer<typeof datasetParams>;

/** Bump when the table this step writes for the same inputs would change. */
export const DATASET_VERSION = 1;
export const DATASET_FILE = 'dataset.arrow';
/** Accelerometer x, y, z: the last three of the six columns. */
export const FEATURES = 3;
const COLUMNS = 6;

/**
 * Files that may sit beside the data without being data: the archive's own documentation and the
 * litter that archivers and desktops leave (macOS resource forks, Finder and Explorer metadata).
 */
const ROOT_EXTRAS = new Set(['info.txt', 'gestures.png', 'readme.txt', 'readme.md', 'license.txt']);
const LITTER = new Set(['__MACOSX', 'Thumbs.db', 'desktop.ini']);
function isLitter(name: string): boolean {
  return name.startsWith('.') || LITTER.has(name);
}

/** Malformed input data: the same files fail the same way on every retry. */
export class DatasetFormatError extends Error {
  override name = 'DatasetFormatError';
}

export function isDatasetResult(value: unknown): value is DatasetResult {
  const v = value as Partial<DatasetResult> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.table === 'string' &&
    typeof v.sequences === 'number' &&
    typeof v.minLength === 'number' &&
    typeof v.ref === 'object' &&
    v.ref !== null &&
    typeof v.ref.dir === 'string'
  );
}

export async function dataset(input: StepInput<DatasetParams>, deps: ActivityDeps): Promise<DatasetResult> {
  const started = Date.now();
  const log = deps.logger.child({ step: input.step, activity: 'dataset' });
  const params = parseStepParams(datasetParams, input.params, input.step);
  const upstream = findUpstream(input);
  if (upstream.unpacked === undefined) {
    throw ApplicationFailure.nonRetryable(`step ${input.step}: the download step did not unpack its archive (set unpack: true there)`, 'BadPipeline');
  }
  if (isAbsolute(params.root) || params.root.split(/[\\/]/).includes('..')) {
    throw badParameter(input.step, 'root', `"${params.root}" must be a folder inside the unpacked archive`);
  }
  const identity = {
    type: 'dataset',
    version: DATASET_VERSION,
    params,
    inputs: { download: upstream.ref.dir, sha256: upstream.sha256 },
  };
  const signal = activitySignal();
  const { ref, result, cached } = await deps.store.getOrBuild<Omit<DatasetResult, 'ref' | 'cached' | 'seconds'>>(identity, async (dir) => {
    // On a bucket store this brings the unpacked archive onto this machine, each file verified.
    const unpackedDir = await deps.store.localPath(upstream.ref, upstream.unpacked!);
    await verifyInput(deps.store, upstream.ref, undefined, `step ${input.step}`, input.sweepId);
    const rootDir = resolve(unpackedDir, params.root);
    // The schema refuses such roots already; this holds for inputs that bypassed it.
    if (rootDir !== unpackedDir && !rootDir.startsWith(unpackedDir + sep)) {
      throw badParameter(input.step, 'root', `${params.root} leaves the unpacked archive; name a folder inside it`);
    }
    let built: BuiltDataset;
    try {
      const files = await listSequenceFiles(rootDir, params.root);
      // Before parsing thousands of files: a typo in valid_users should fail in milliseconds.
      if (params.split.kind === 'by-user') checkUsers(files, params.split.valid_users);
      const sequences = await readSequences(rootDir, files, signal, (done) => {
        heartbeatIfActivity({ phase: 'parse', files: done, total: files.length });
        log.debug({ files: done, total: files.length }, 'parsing');
      });
      built = buildDataset(sequences, params);
    } catch (err) {
      if (err instanceof DatasetFormatError) throw ApplicationFailure.nonRetryable(err.message, 'MalformedData');
      throw err;
    }
    await writeFileAtomic(join(dir, DATASET_FILE), built.bytes);
    return { table: DATASET_FILE, ...built.summary };
  });
  const seconds = (Date.now() - started) / 1000;
  log.info({ dir: ref.dir, cached, seconds, train: result.train, valid: result.valid }, `dataset ${cached ? 'cache hit' : 'built'}`);
  return { ...result, ref, cached, seconds };
}

function findUpstream(input: StepInput<unknown>): DownloadResult {
  const found = Object.entries(input.inputs).filter(([, v]) => isDownloadResult(v));
  if (found.length !== 1) {
    throw ApplicationFailure.nonRetryable(
      `dataset step "${input.step}" needs exactly one download step, found ${found.length}` +
        ` among its inputs (${Object.keys(input.inputs).join(', ') || 'none'})`,
      'BadPipeline',
    );
  }
  return found[0]![1] as DownloadResult;
}

// ---------------------------------------------------------------------------------------------
// Finding the files.

export interface SequenceFile {
  /** Relative to the dataset root, with `/`: `U01/01/01.txt`. */
  file: string;
  user: string;
  userNo: number;
  gesture: number;
  fileNo: number;
}

/**
 * Walks `<root>/Uxx/NN/MM.txt`. Anything unexpected where data should be is an error rather than
 * skipped: a stray folder usually means a different archive layout, and silently training on a
 * part of it would be worse than stopping.
 */
export async function listSequenceFiles(rootDir: string, rootName: string): Promise<SequenceFile[]> {
  let top: import('node:fs').Dirent[];
  try {
    top = await readdir(rootDir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      let there = '';
      try {
        there = (await readdir(join(rootDir, '..'))).join(', ');
      } catch {
        // the parent's listing is only a hint
      }
      throw new DatasetFormatError(`the archive has no folder "${rootName}" (its top level holds: ${there || 'nothing'})`);
    }
    throw err;
  }
  const files: SequenceFile[] = [];
  for (const u of top) {
    if (isLitter(u.name)) continue;
    if (!u.isDirectory()) {
      if (ROOT_EXTRAS.has(u.name.toLowerCase())) continue;
      throw new DatasetFormatError(`${u.name}: unexpected file at the top of ${rootName}/, where user folders (U01, U02, …) are expected`);
    }
    const um = /^U(\d+)$/.exec(u.name);
    if (!um) throw new DatasetFormatError(`${u.name}/: unexpected folder name where a user folder (U01, U02, …) is expected`);
    const gestures = await readdir(join(rootDir, u.name), { withFileTypes: true });
    for (const g of gestures) {
      if (isLitter(g.name)) continue;
      const gm = /^(\d+)$/.exec(g.name);
      if (!g.isDirectory() || !gm || Number(gm[1]) < 1) {
        throw new DatasetFormatError(
          `${u.name}/${g.name}${g.isDirectory() ? '/' : ''}: unexpected ${g.isDirectory() ? 'folder' : 'file'} where a gesture folder (01, 02, …) is expected`,
        );
      }
      const entries = await readdir(join(rootDir, u.name, g.name), { withFileTypes: true });
      for (const f of entries) {
        if (isLitter(f.name)) continue;
        const fm = /^(\d+)\.txt$/.exec(f.name);
        if (!f.isFile() || !fm) {
          throw new DatasetFormatError(
            `${u.name}/${g.name}/${f.name}: unexpected ${f.isDirectory() ? 'folder' : 'file'} where a sequence file (01.txt, 02.txt, …) is expected`,
          );
        }
        files.push({
          file: `${u.name}/${g.name}/${f.name}`,
          user: u.name,
          userNo: Number(um[1]),
          gesture: Number(gm[1]),
          fileNo: Number(fm[1]),
        });
      }
    }
  }
  if (files.length === 0) throw new DatasetFormatError(`${rootName}/ holds no sequence files`);
  // Numeric, not lexical: U2 before U10, 9.txt before 10.txt; the name breaks ties (01.txt vs 1.txt).
  files.sort((a, b) => a.userNo - b.userNo || a.gesture - b.gesture || a.fileNo - b.fileNo || cmp(a.file, b.file));
  return files;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Parsing.

export interface Sequence extends SequenceFile {
  /** length*3 values, x y z per timestep. */
  values: Float32Array;
  length: number;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses one file's text. Blank lines are skipped (a trailing newline is not an error). */
export function parseSequence(text: string, file: string): { values: Float32Array; length: number } {
  const lines = text.split('\n');
  const out: number[] = [];
  let rows = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    if (fields.length !== COLUMNS) {
      throw new DatasetFormatError(
        `${file} line ${i + 1}: expected ${COLUMNS} space-separated numbers, found ${fields.length} field${fields.length === 1 ? '' : 's'}: "${clip(line)}"`,
      );
    }
    for (let c = 0; c < COLUMNS; c++) {
      const f = fields[c]!;
      // Number() alone would take '', '0x1f' or 'Infinity'; the data is plain decimals.
      if (!NUMBER.test(f)) {
        throw new DatasetFormatError(`${file} line ${i + 1}, field ${c + 1}: expected a number, found "${clip(f)}"`);
      }
      if (c >= COLUMNS - FEATURES) out.push(Number(f));
    }
    rows += 1;
  }
  if (rows === 0) throw new DatasetFormatError(`${file}: empty file (no data rows)`);
  return { values: Float32Array.from(out), length: rows };
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

async function readSequences(rootDir: string, files: SequenceFile[], signal: AbortSignal | undefined, progress: (done: number) => void): Promise<Sequence[]> {
  const out: Sequence[] = new Array(files.length);
  let next = 0;
  let done = 0;
  // A few reads in flight hide file-system latency (a network store) without opening thousands of fds.
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= files.length) return;
      signal?.throwIfAborted();
      const f = files[i]!;
      const text = await readFile(join(rootDir, f.file), 'utf8');
      out[i] = { ...f, ...parseSequence(text, f.file) };
      if (++done % 500 === 0) progress(done);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  progress(done);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Split and table.

/** mulberry32: tiny, fast and good enough to shuffle a file list; identical on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates with the seeded generator; returns a new array. */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  const rand = mulberry32(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = out[i]!;
    out[i] = out[j]!;
    out[j] = tmp;
  }
  return out;
}

/** floor(n·(1−f)) without letting 0.8·n = 2600.8000000000002-style noise decide a row. */
export function trainCount(n: number, validFraction: number): number {
  return Math.floor(n * (1 - validFraction) + 1e-9);
}

/** Seed of the `limit` subset when the split itself has none (by-user). */
const LIMIT_SEED = 0;

/**
 * Which sequences are kept and which are validation. Rows stay in canonical (sorted) order; only
 * membership depends on the seed, so two seeds give tables that differ exactly in `split`.
 */
export function assignSplit(files: readonly SequenceFile[], split: SplitParams, limit?: number): { kept: number[]; valid: Set<number> } {
  const indices = files.map((_, i) => i);
  const seed = split.kind === 'random' ? split.seed : LIMIT_SEED;
  const shuffled = seededShuffle(indices, seed);
  const chosen = limit !== undefined && limit < shuffled.length ? shuffled.slice(0, limit) : shuffled;
  const valid = new Set<number>();
  if (split.kind === 'random') {
    const nTrain = trainCount(chosen.length, split.valid_fraction);
    for (const i of chosen.slice(nTrain)) valid.add(i);
  } else {
    checkUsers(files, split.valid_users);
    const held = new Set(split.valid_users);
    for (const i of chosen) if (held.has(files[i]!.user)) valid.add(i);
  }
  return { kept: chosen.slice().sort((a, b) => a - b), valid };
}

function checkUsers(files: readonly SequenceFile[], validUsers: readonly string[]): void {
  const known = new Set(files.map((f) => f.user));
  const unknown = validUsers.filter((u) => !known.has(u));
  if (unknown.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `split.valid_users names unknown user${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; the data has ${[...known].join(', ')}`,
      BAD_PARAMETER,
    );
  }
}

interface BuiltDataset {
  bytes: Uint8Array;
  summary: Omit<DatasetResult, 'ref' | 'cached' | 'seconds' | 'table'>;
}

export function buildDataset(sequences: readonly Sequence[], params: DatasetParams): BuiltDataset {
  const { kept, valid } = assignSplit(sequences, params.split, params.limit);
  const n = kept.length;
  const nValid = kept.filter((i) => valid.has(i)).length;
  if (nValid === 0 || nValid === n) {
    throw ApplicationFailure.nonRetryable(
      `the split leaves ${nValid === 0 ? 'no validation' : 'no training'} sequences (${n} kept): adjust split or limit`,
      BAD_PARAMETER,
    );
  }

  const id = new Int32Array(n);
  const label = new Int32Array(n);
  const length = new Int32Array(n);
  const offsets = new Int32Array(n + 1);
  const files: string[] = [];
  const users: string[] = [];
  const splits: string[] = [];
  for (let r = 0; r < n; r++) {
    const s = sequences[kept[r]!]!;
    id[r] = r;
    label[r] = s.gesture - 1;
    length[r] = s.length;
    offsets[r + 1] = offsets[r]! + s.values.length;
    files.push(s.file);
    users.push(s.user);
    splits.push(valid.has(kept[r]!) ? 'valid' : 'train');
  }
  const values = new Float32Array(offsets[n]!);
  for (let r = 0; r < n; r++) values.set(sequences[kept[r]!]!.values, offsets[r]!);

  // Class count from the whole archive, not the kept subset: a `limit` must not shrink the head.
  let classes = 0;
  for (const s of sequences) classes = Math.max(classes, s.gesture);
  let minLength = Infinity;
  let maxLength = 0;
  for (const l of length) {
    minLength = Math.min(minLength, l);
    maxLength = Math.max(maxLength, l);
  }

  const fields = [
    new Field('id', new Int32(), false),
    new Field('file', new Utf8(), false),
    new Field('user', new Utf8(), false),
    new Field('label', new Int32(), false),
    new Field('length', new Int32(), false),
    new Field('split', new Utf8(), false),
    new Field('values', new List(new Field('item', new Float32(), false)), false),
  ];
  const children: Data[] = [
    makeData({ type: new Int32(), length: n, nullCount: 0, data: id }),
    utf8Data(files),
    utf8Data(users),
    makeData({ type: new Int32(), length: n, nullCount: 0, data: label }),
    makeData({ type: new Int32(), length: n, nullCount: 0, data: length }),
    utf8Data(splits),
    makeData({
      type: fields[6]!.type as List<Float32>,
      length: n,
      nullCount: 0,
      valueOffsets: offsets,
      child: makeData({ type: new Float32(), length: values.length, nullCount: 0, data: values }),
    }),
  ];
  const metadata = new Map<string, string>([
    ['features', String(FEATURES)],
    ['classes', String(classes)],
    ['feature_names', 'accel_x,accel_y,accel_z'],
    ['split', JSON.stringify(params.split)],
  ]);
  const bytes = tableToIPC(arrowTable(fields, children, n, metadata), 'file');
  return {
    bytes,
    summary: {
      sequences: n,
      users: new Set(users).size,
      classes,
      features: FEATURES,
      train: n - nValid,
      valid: nValid,
      minLength,
      maxLength,
    },
  };
}

/** A one-batch table from column data, with schema metadata (the part tableFromArrays cannot do). */
export function arrowTable(fields: Field[], children: Data[], rows: number, metadata: Map<string, string>): Table {
  const schema = new Schema(fields, metadata);
  const struct = makeData({ type: new Struct(fields), length: rows, nullCount: 0, children });
  return new Table(schema, [new RecordBatch(schema, struct)]);
}

export function utf8Data(strings: readonly string[]): Data<Utf8> {
  const encoder = new TextEncoder();
  const encoded = strings.map((s) => encoder.encode(s));
  const offsets = new Int32Array(strings.length + 1);
  for (let i = 0; i < encoded.length; i++) offsets[i + 1] = offsets[i]! + encoded[i]!.length;
  const data = new Uint8Array(offsets[strings.length]!);
  for (let i = 0; i < encoded.length; i++) data.set(encoded[i]!, offsets[i]!);
  return makeData({ type: new Utf8(), length: strings.length, nullCount: 0, valueOffsets: offsets, data });
}

export const datasetStep = defineStep({
  type: 'dataset',
  params: datasetParams,
  reads: { from: 'download', count: 'exactly one' },
  matrix: false,
  durability: {
    startToCloseTimeout: '15m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
  summary: (p) => `parse sequences into an Arrow table, ${p.split.kind} split${'seed' in p.split ? ` seed ${p.split.seed}` : ''}`,
  activity: dataset,
});
