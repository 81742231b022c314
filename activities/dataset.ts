import { join, resolve, sep } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Field, Float32, Int32, List, RecordBatch, Schema, Struct, Table, Utf8, makeData, tableToIPC, type Data } from 'apache-arrow';
import { z } from 'zod';
import { writeFileAtomic } from '../artifacts/store';
import { activitySignal, heartbeatIfActivity } from './context';
import { readGestures } from './dataset/readers/gestures';
import { readLongCsv, readLongParquet } from './dataset/readers/long-table';
import { DatasetFormatError, type ReadDataset, type SequenceRecord } from './dataset/readers/types';
import { readUeaDataset } from './dataset/readers/uea-ts';
import type { ActivityDeps } from './deps';
import { isDownloadResult } from './download';
import { badParameter, BAD_PARAMETER, parseStepParams } from './params';
import { defineStep } from './step-module';
import type { DatasetResult, DownloadResult, StepInput } from './types';
import { verifyInput } from './upstream';

export { DatasetFormatError };

const relativePath = (what: string) =>
  z
    .string()
    .min(1)
    .refine((r) => !/^([/\\]|[A-Za-z]:)/.test(r) && !r.split(/[/\\]/).includes('..'), {
      message: `${what} inside the unpacked archive: a relative path without ".." (steps read only their inputs)`,
    });

export const splitParams = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('random').describe('A seeded random split of all sequences (the reference: 80/20).'),
    seed: z.number().int().default(42),
    valid_fraction: z.number().gt(0).lt(1).default(0.2).describe('Share of the sequences held out for validation.'),
  }),
  z.strictObject({
    kind: z.literal('by-group').describe('Hold out whole groups (users, speakers): validation measures generalisation to new ones.'),
    valid_groups: z.array(z.string().min(1)).min(1, 'name at least one group to hold out').describe('Groups whose sequences form the validation set.'),
  }),
  z.strictObject({
    kind: z.literal('by-user').describe('The gestures name of by-group: hold out whole users.'),
    valid_users: z
      .array(z.string().min(1))
      .min(1, 'name at least one user to hold out')
      .describe('Users whose sequences form the validation set, e.g. [U07, U08].'),
  }),
  z.strictObject({
    kind: z.literal('archive').describe("The archive's own split: TRAIN trains, TEST validates (UEA/UCR)."),
  }),
]);
export type SplitParams = z.infer<typeof splitParams>;

export const datasetFormats = ['gestures', 'uea', 'long-table'] as const;

export const datasetParams = z
  .strictObject({
    format: z
      .enum(datasetFormats)
      .default('gestures')
      .describe(
        'How the data is laid out: `gestures` (Uxx/NN/MM.txt, the SmartWatch Gestures archive), `uea` (a UEA/UCR archive dataset: <name>_TRAIN.ts and <name>_TEST.ts), `long-table` (one row per timestep, CSV or Parquet).',
      ),
    root: relativePath('a folder')
      .optional()
      .describe('Folder inside the unpacked archive (or --data folder) that holds the data; default `gestures-dataset` for gestures, the top otherwise.'),
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'a UEA dataset name: letters, digits, "_" and "-"')
      .optional()
      .describe('uea: the dataset, e.g. JapaneseVowels (its files <name>_TRAIN.ts and <name>_TEST.ts are found anywhere under root).'),
    file: relativePath('a file')
      .refine((f) => /\.(csv|parquet)$/i.test(f), { message: 'a .csv or .parquet file' })
      .optional()
      .describe('long-table: the table file under root, .csv or .parquet.'),
    columns: z
      .strictObject({
        id: z.string().min(1).describe('Column of the sequence id.'),
        time: z.string().min(1).describe('Column of the time index (strictly increasing within a sequence).'),
        label: z.string().min(1).describe('Column of the class label.'),
        group: z.string().min(1).optional().describe('Column of the group (user, speaker), for by-group splits.'),
        features: z.array(z.string().min(1)).min(1).optional().describe('Feature columns in model order; default every other column.'),
      })
      .optional()
      .describe('long-table: which column is which.'),
    split: splitParams.default({ kind: 'random', seed: 42, valid_fraction: 0.2 }).describe('How sequences are split into train and validation.'),
    limit: z.number().int().positive().optional().describe('Keep only this many sequences (a deterministic subset), for quick runs and tests.'),
  })
  .superRefine((p, ctx) => {
    const need = (key: 'name' | 'file' | 'columns', what: string): void => {
      if (p[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `format ${p.format} needs ${what}` });
    };
    const refuse = (key: 'name' | 'file' | 'columns'): void => {
      if (p[key] !== undefined)
        ctx.addIssue({ code: 'custom', path: [key], message: `only for format ${key === 'name' ? 'uea' : 'long-table'}; format ${p.format} does not read it` });
    };
    if (p.format === 'uea') need('name', 'the dataset name (e.g. name: JapaneseVowels)');
    else refuse('name');
    if (p.format === 'long-table') {
      need('file', 'the table file (file: data.csv or data.parquet)');
      need('columns', 'columns: { id, time, label }');
    } else {
      refuse('file');
      refuse('columns');
    }
    if (p.split.kind === 'archive' && p.format !== 'uea') {
      ctx.addIssue({ code: 'custom', path: ['split', 'kind'], message: `format ${p.format} has no split of its own; use random or by-group` });
    }
  });
export type DatasetParams = z.infer<typeof datasetParams>;
export type DatasetParamsInput = z.input<typeof datasetParams>;

/** Bump when the table this step writes for the same inputs would change. */
export const DATASET_VERSION = 2;
export const DATASET_FILE = 'dataset.arrow';

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

function defaultRoot(p: DatasetParams): string {
  return p.root ?? (p.format === 'gestures' ? 'gestures-dataset' : '.');
}

export async function dataset(input: StepInput<DatasetParamsInput>, deps: ActivityDeps): Promise<DatasetResult> {
  const started = Date.now();
  const log = deps.logger.child({ step: input.step, activity: 'dataset' });
  const params = parseStepParams(datasetParams, input.params, input.step);
  const root = defaultRoot(params);
  const upstream = findUpstream(input);
  if (upstream.unpacked === undefined) {
    throw ApplicationFailure.nonRetryable(`step ${input.step}: the download step did not unpack its archive (set unpack: true there)`, 'BadPipeline');
  }
  const identity = {
    type: 'dataset',
    version: DATASET_VERSION,
    params: { ...params, root },
    inputs: { download: upstream.ref.dir, sha256: upstream.sha256 },
  };
  const signal = activitySignal();
  const { ref, result, cached } = await deps.store.getOrBuild<Omit<DatasetResult, 'ref' | 'cached' | 'seconds'>>(identity, async (dir) => {
    // On a bucket store this brings the unpacked archive onto this machine, each file verified.
    const unpackedDir = await deps.store.localPath(upstream.ref, upstream.unpacked!);
    await verifyInput(deps.store, upstream.ref, undefined, `step ${input.step}`, input.sweepId);
    const rootDir = resolve(unpackedDir, root);
    // The schema refuses such roots already; this holds for inputs that bypassed it.
    if (rootDir !== unpackedDir && !rootDir.startsWith(unpackedDir + sep)) {
      throw badParameter(input.step, 'root', `${root} leaves the unpacked archive; name a folder inside it`);
    }
    let built: BuiltDataset;
    try {
      heartbeatIfActivity({ phase: 'read', format: params.format });
      const data = await readFormat(params, rootDir, root, signal, (done, total) => {
        heartbeatIfActivity({ phase: 'parse', files: done, total });
        log.debug({ files: done, total }, 'parsing');
      });
      built = buildDataset(data, params, input.step);
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

/** The one place that knows which reader reads which format. */
async function readFormat(
  params: DatasetParams,
  rootDir: string,
  root: string,
  signal: AbortSignal | undefined,
  progress: (done: number, total: number) => void,
): Promise<ReadDataset> {
  switch (params.format) {
    case 'gestures':
      return readGestures(rootDir, root, signal, progress);
    case 'uea':
      return readUeaDataset(rootDir, params.name!);
    case 'long-table': {
      const path = resolve(rootDir, params.file!);
      const display = params.file!;
      return /\.parquet$/i.test(display) ? readLongParquet(path, display, params.columns!) : readLongCsv(path, display, params.columns!);
    }
  }
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

/** Seed of the `limit` subset when the split itself has none (by-group, archive). */
const LIMIT_SEED = 0;

/**
 * Which sequences are kept and which are validation. Rows stay in canonical (read) order; only
 * membership depends on the seed, so two seeds give tables that differ exactly in `split`.
 */
export function assignSplit(
  sequences: readonly Pick<SequenceRecord, 'group' | 'part'>[],
  split: SplitParams,
  limit: number | undefined,
  step = 'dataset',
): { kept: number[]; valid: Set<number> } {
  const indices = sequences.map((_, i) => i);
  const seed = split.kind === 'random' ? split.seed : LIMIT_SEED;
  const shuffled = seededShuffle(indices, seed);
  const chosen = limit !== undefined && limit < shuffled.length ? shuffled.slice(0, limit) : shuffled;
  const valid = new Set<number>();
  if (split.kind === 'random') {
    const nTrain = trainCount(chosen.length, split.valid_fraction);
    for (const i of chosen.slice(nTrain)) valid.add(i);
  } else if (split.kind === 'archive') {
    for (const i of chosen) if (sequences[i]!.part === 'test') valid.add(i);
  } else {
    const [field, held] = split.kind === 'by-user' ? ['split.valid_users', split.valid_users] : ['split.valid_groups', split.valid_groups];
    checkGroups(sequences, field, held, step);
    const set = new Set(held);
    for (const i of chosen) if (set.has(sequences[i]!.group)) valid.add(i);
  }
  return { kept: chosen.slice().sort((a, b) => a - b), valid };
}

function checkGroups(sequences: readonly Pick<SequenceRecord, 'group'>[], field: string, held: readonly string[], step: string): void {
  const known = new Set(sequences.map((s) => s.group));
  known.delete('');
  if (known.size === 0) throw badParameter(step, field, 'this data has no groups (name a group column, or split at random)');
  const unknown = held.filter((u) => !known.has(u));
  if (unknown.length > 0) {
    throw badParameter(step, field, `names unknown group${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; the data has ${[...known].join(', ')}`);
  }
}

interface BuiltDataset {
  bytes: Uint8Array;
  summary: Omit<DatasetResult, 'ref' | 'cached' | 'seconds' | 'table'>;
}

/**
 * The one dataset table, whatever the format: id, source (file, line or id it came from), group,
 * label (index into the class names), length, split, and the values (List<Float32>, length ×
 * features per row). Schema metadata: features, classes, feature and class names, the split.
 */
export function buildDataset(data: ReadDataset, params: Pick<DatasetParams, 'split' | 'limit'> & { format?: string }, step = 'dataset'): BuiltDataset {
  const { sequences, features, classNames } = data;
  const { kept, valid } = assignSplit(sequences, params.split, params.limit, step);
  const n = kept.length;
  const nValid = kept.filter((i) => valid.has(i)).length;
  if (nValid === 0 || nValid === n) {
    throw ApplicationFailure.nonRetryable(
      `steps.${step}.with.split: the split leaves ${nValid === 0 ? 'no validation' : 'no training'} sequences (${n} kept): adjust split or limit`,
      BAD_PARAMETER,
    );
  }
  const labelOf = new Map(classNames.map((c, i) => [c, i]));

  const id = new Int32Array(n);
  const label = new Int32Array(n);
  const length = new Int32Array(n);
  const offsets = new Int32Array(n + 1);
  const sources: string[] = [];
  const groups: string[] = [];
  const splits: string[] = [];
  for (let r = 0; r < n; r++) {
    const s = sequences[kept[r]!]!;
    const y = labelOf.get(s.label);
    if (y === undefined) throw new DatasetFormatError(`${s.source}: label "${s.label}" is not one of the classes ${classNames.join(', ')}`);
    if (s.values.length !== s.length * features)
      throw new DatasetFormatError(`${s.source}: ${s.values.length} values for ${s.length} steps of ${features} features`);
    id[r] = r;
    label[r] = y;
    length[r] = s.length;
    offsets[r + 1] = offsets[r]! + s.values.length;
    sources.push(s.source);
    groups.push(s.group);
    splits.push(valid.has(kept[r]!) ? 'valid' : 'train');
  }
  const values = new Float32Array(offsets[n]!);
  for (let r = 0; r < n; r++) values.set(sequences[kept[r]!]!.values, offsets[r]!);

  let minLength = Infinity;
  let maxLength = 0;
  for (const l of length) {
    minLength = Math.min(minLength, l);
    maxLength = Math.max(maxLength, l);
  }

  const fields = [
    new Field('id', new Int32(), false),
    new Field('source', new Utf8(), false),
    new Field('group', new Utf8(), false),
    new Field('label', new Int32(), false),
    new Field('length', new Int32(), false),
    new Field('split', new Utf8(), false),
    new Field('values', new List(new Field('item', new Float32(), false)), false),
  ];
  const children: Data[] = [
    makeData({ type: new Int32(), length: n, nullCount: 0, data: id }),
    utf8Data(sources),
    utf8Data(groups),
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
  // Class count from the whole data, not the kept subset: a `limit` must not shrink the head.
  const metadata = new Map<string, string>([
    ['features', String(features)],
    ['classes', String(classNames.length)],
    ['feature_names', data.featureNames.join(',')],
    ['class_names', JSON.stringify(classNames)],
    ['format', params.format ?? ''],
    ['split', JSON.stringify(params.split)],
  ]);
  const bytes = tableToIPC(arrowTable(fields, children, n, metadata), 'file');
  const distinctGroups = new Set(groups);
  distinctGroups.delete('');
  return {
    bytes,
    summary: {
      sequences: n,
      groups: distinctGroups.size,
      classes: classNames.length,
      features,
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
  summary: (p) =>
    `parse ${p.format === 'uea' ? `UEA ${p.name} ` : p.format === 'long-table' ? `${p.file} ` : ''}sequences into an Arrow table, ${p.split.kind} split${'seed' in p.split ? ` seed ${p.split.seed}` : ''}`,
  activity: dataset,
});
