import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Field, FixedSizeList, Float32, Int32, Uint8, Utf8, makeData, tableFromIPC, tableToIPC, type Data, type Table } from 'apache-arrow';
import { z } from 'zod';
import { writeFileAtomic } from '../artifacts/store';
import { PADDED_COLUMNS, PADDED_METADATA, maskFor, padRagged, paddingFractions } from '../ml/padded-data';
import { arrowTable, isDatasetResult, utf8Data } from './dataset';
import { heartbeatIfActivity } from './context';
import type { ActivityDeps } from './deps';
import { BAD_PARAMETER, parseStepParams } from './params';
import { defineStep } from './step-module';
import type { DatasetResult, PaddingResult, StepInput } from './types';
import { verifyInput } from './upstream';

export const paddingParams = z.strictObject({
  max_length: z.number().int().positive().optional().describe('Pad every sequence to this many timesteps; defaults to the longest sequence.'),
  batch_size: z.number().int().positive().default(32).describe('Batch size used to report the padded-cell fraction of each batching strategy.'),
});
export type PaddingParams = z.infer<typeof paddingParams>;

/** Bump when the padded table for the same inputs would change. */
export const PADDING_VERSION = 1;
export const PADDED_FILE = 'padded.arrow';

/** The dataset table does not have the shape the dataset step writes: rebuilding it will not help. */
class DatasetTableError extends Error {
  override name = 'DatasetTableError';
}

export async function padding(input: StepInput<PaddingParams>, deps: ActivityDeps): Promise<PaddingResult> {
  const started = Date.now();
  const log = deps.logger.child({ step: input.step, activity: 'padding' });
  const params = parseStepParams(paddingParams, input.params, input.step);
  const upstream = findUpstream(input);
  const identity = {
    type: 'padding',
    version: PADDING_VERSION,
    params,
    inputs: { dataset: upstream.ref.dir, digest: upstream.ref.digest },
  };
  const { ref, result, cached } = await deps.store.getOrBuild<Omit<PaddingResult, 'ref' | 'cached' | 'seconds'>>(identity, async (dir) => {
    await verifyInput(deps.store, upstream.ref, upstream.table, `step ${input.step}`, input.sweepId);
    const source = await deps.store.localPath(upstream.ref, upstream.table);
    heartbeatIfActivity({ phase: 'read', file: upstream.table });
    let built: ReturnType<typeof buildPadded>;
    try {
      built = buildPadded(tableFromIPC(await readFile(source)), params, upstream.table);
    } catch (err) {
      if (err instanceof DatasetTableError) throw ApplicationFailure.nonRetryable(err.message, 'MalformedData');
      throw err;
    }
    heartbeatIfActivity({ phase: 'write', file: PADDED_FILE, bytes: built.bytes.length });
    await writeFileAtomic(join(dir, PADDED_FILE), built.bytes);
    return { table: PADDED_FILE, ...built.summary };
  });
  const seconds = (Date.now() - started) / 1000;
  log.info(
    {
      dir: ref.dir,
      cached,
      seconds,
      maxLength: result.maxLength,
      global: result.paddedFractionGlobal,
      batchMax: result.paddedFractionBatchMax,
      bucket: result.paddedFractionBucket,
    },
    `padding ${cached ? 'cache hit' : 'built'}`,
  );
  return { ...result, ref, cached, seconds };
}

function findUpstream(input: StepInput<unknown>): DatasetResult {
  const found = Object.values(input.inputs).filter(isDatasetResult);
  if (found.length !== 1) {
    throw ApplicationFailure.nonRetryable(
      `padding step "${input.step}" needs exactly one dataset step, found ${found.length}` +
        ` among its inputs (${Object.keys(input.inputs).join(', ') || 'none'})`,
      'BadPipeline',
    );
  }
  return found[0]!;
}

/** Row-aligned list column: row i is flat[offsets[i] .. offsets[i+1]]. */
function listColumn(table: Table, name: string, source: string): { flat: Float32Array; offsets: Int32Array } {
  const column = table.getChild(name);
  if (!column) throw new DatasetTableError(`${source}: no column "${name}"`);
  const chunks = column.data as Data[];
  const childOf = (d: Data): Float32Array => {
    const values = d.children[0]?.values;
    if (!(values instanceof Float32Array) || !(d.valueOffsets instanceof Int32Array)) {
      throw new DatasetTableError(`${source}: column "${name}" is not a List<Float32>`);
    }
    return values;
  };
  if (chunks.length === 1) {
    const d = chunks[0]!;
    return { flat: childOf(d), offsets: d.valueOffsets as Int32Array };
  }
  // Several record batches: stitch them once, rebasing each chunk's offsets.
  let total = 0;
  for (const d of chunks) total += (d.valueOffsets as Int32Array)[d.length]! - (d.valueOffsets as Int32Array)[0]!;
  const flat = new Float32Array(total);
  const offsets = new Int32Array(table.numRows + 1);
  let row = 0;
  let at = 0;
  for (const d of chunks) {
    const vo = d.valueOffsets as Int32Array;
    flat.set(childOf(d).subarray(vo[0]!, vo[d.length]!), at);
    for (let i = 1; i <= d.length; i++) offsets[row + i] = at + vo[i]! - vo[0]!;
    at += vo[d.length]! - vo[0]!;
    row += d.length;
  }
  return { flat, offsets };
}

function int32Column(table: Table, name: string, source: string): Int32Array {
  const column = table.getChild(name);
  const values = column?.toArray() as unknown;
  if (!(values instanceof Int32Array)) throw new DatasetTableError(`${source}: column "${name}" is missing or not Int32`);
  return values;
}

function metaInt(table: Table, key: string, source: string): number {
  const raw = table.schema.metadata.get(key);
  const value = Number(raw);
  if (raw === undefined || !Number.isInteger(value) || value <= 0) {
    throw new DatasetTableError(`${source}: schema metadata "${key}" is missing or not a positive integer`);
  }
  return value;
}

export function buildPadded(
  table: Table,
  params: PaddingParams,
  source = 'dataset table',
): { bytes: Uint8Array; summary: Omit<PaddingResult, 'ref' | 'cached' | 'seconds' | 'table'> } {
  const n = table.numRows;
  const features = metaInt(table, 'features', source);
  const classes = metaInt(table, 'classes', source);
  const ids = int32Column(table, 'id', source);
  const labels = int32Column(table, 'label', source);
  const lengths = int32Column(table, 'length', source);
  const { flat, offsets } = listColumn(table, 'values', source);
  const splitColumn = table.getChild('split');
  if (!splitColumn) throw new DatasetTableError(`${source}: no column "split"`);

  // Train rows first, then valid, each in the dataset's order: a split becomes one slice.
  const train: number[] = [];
  const valid: number[] = [];
  let longest = 0;
  let row = 0;
  for (const s of splitColumn as Iterable<string | null>) {
    if (s === 'train') train.push(row);
    else if (s === 'valid') valid.push(row);
    else throw new DatasetTableError(`${source}: row ${row} has split "${String(s)}"`);
    const len = lengths[row]!;
    if (offsets[row + 1]! - offsets[row]! !== len * features) {
      throw new DatasetTableError(`${source}: row ${row} has length ${len} but ${offsets[row + 1]! - offsets[row]!} values`);
    }
    longest = Math.max(longest, len);
    row += 1;
  }

  const maxLength = params.max_length ?? longest;
  if (longest > maxLength) {
    // Truncating would silently change what the model sees; the study is about padding, not cropping.
    throw ApplicationFailure.nonRetryable(
      `padding.max_length=${maxLength} is shorter than the longest sequence (${longest} steps): raise it or leave it unset`,
      BAD_PARAMETER,
    );
  }

  const order = Int32Array.from([...train, ...valid]);
  const values = padRagged(flat, offsets, order, maxLength, features);
  const outIds = new Int32Array(n);
  const outLabels = new Int32Array(n);
  const outLengths = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const i = order[r]!;
    outIds[r] = ids[i]!;
    outLabels[r] = labels[i]!;
    outLengths[r] = lengths[i]!;
  }
  const mask = maskFor(outLengths, maxLength);
  const splits = Array.from(order, (_, r) => (r < train.length ? 'train' : 'valid'));

  const valuesType = new FixedSizeList(maxLength * features, new Field('item', new Float32(), false));
  const maskType = new FixedSizeList(maxLength, new Field('item', new Uint8(), false));
  const fields = [
    new Field(PADDED_COLUMNS.id, new Int32(), false),
    new Field(PADDED_COLUMNS.split, new Utf8(), false),
    new Field(PADDED_COLUMNS.label, new Int32(), false),
    new Field(PADDED_COLUMNS.length, new Int32(), false),
    new Field(PADDED_COLUMNS.values, valuesType, false),
    new Field(PADDED_COLUMNS.mask, maskType, false),
  ];
  const children: Data[] = [
    makeData({ type: new Int32(), length: n, nullCount: 0, data: outIds }),
    utf8Data(splits),
    makeData({ type: new Int32(), length: n, nullCount: 0, data: outLabels }),
    makeData({ type: new Int32(), length: n, nullCount: 0, data: outLengths }),
    makeData({
      type: valuesType,
      length: n,
      nullCount: 0,
      child: makeData({ type: new Float32(), length: values.length, nullCount: 0, data: values }),
    }),
    makeData({
      type: maskType,
      length: n,
      nullCount: 0,
      child: makeData({ type: new Uint8(), length: mask.length, nullCount: 0, data: mask }),
    }),
  ];
  const metadata = new Map<string, string>([
    [PADDED_METADATA.maxLength, String(maxLength)],
    [PADDED_METADATA.features, String(features)],
    [PADDED_METADATA.classes, String(classes)],
    ['train_rows', String(train.length)],
    ['valid_rows', String(valid.length)],
  ]);
  const bytes = tableToIPC(arrowTable(fields, children, n, metadata), 'file');

  // Statistics over the training split: those are the batches whose padding costs compute and
  // (for pooling over padded steps) changes what the model learns.
  const fractions = paddingFractions(outLengths.subarray(0, train.length), maxLength, params.batch_size);
  return {
    bytes,
    summary: {
      maxLength,
      features,
      classes,
      train: train.length,
      valid: valid.length,
      paddedFractionGlobal: fractions.global,
      paddedFractionBatchMax: fractions.batchMax,
      paddedFractionBucket: fractions.bucket,
    },
  };
}

export const paddingStep = defineStep({
  type: 'padding',
  params: paddingParams,
  reads: { from: 'dataset', count: 'exactly one' },
  matrix: false,
  durability: {
    startToCloseTimeout: '15m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
  summary: () => 'pad sequences into Arrow tensors with lengths and masks',
  activity: padding,
});
