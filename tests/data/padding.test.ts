import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { Type, tableFromIPC, type FixedSizeList, type Table } from 'apache-arrow';
import { dataset, seededShuffle } from '../../activities/dataset';
import { download } from '../../activities/download';
import { buildPadded, padding } from '../../activities/padding';
import type { DatasetResult, PaddingResult } from '../../activities/types';
import { batchPaddingFraction, expectedMax, pad, paddedFromTable, paddingFractions, readPadded, unpad, type PaddedData } from '../../ml/padded-data';
import type { PaddingParams } from '../../activities/padding';
import { ARCHIVE, ARCHIVE_MD5, removeDir, tempDir, testDeps, type TestDeps } from './helpers';

const PARAMS: PaddingParams = { batch_size: 32 };

function runPadding(deps: TestDeps, upstream: DatasetResult, params: PaddingParams = PARAMS): Promise<PaddingResult> {
  return padding({ sweepId: 'test', step: 'padding', params, inputs: { dataset: upstream } }, deps);
}

/** Each dataset row's values, by id, straight from the ragged List column. */
function raggedById(t: Table): Map<number, Float32Array> {
  const ids = t.getChild('id')!.toArray() as Int32Array;
  const data = t.getChild('values')!.data[0]!;
  const flat = data.children[0]!.values as Float32Array;
  const offsets = data.valueOffsets as Int32Array;
  const out = new Map<number, Float32Array>();
  ids.forEach((id, i) => out.set(id, flat.subarray(offsets[i]!, offsets[i + 1]!)));
  return out;
}

function sameFloats(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((v, i) => v === ub[i]);
}

describe('padding on the real data', () => {
  let root: string;
  let deps: TestDeps;
  let ds: DatasetResult;
  let result: PaddingResult;
  let data: PaddedData;
  let datasetTable: Table;
  let paddedTable: Table;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    root = tempDir('padding');
    deps = testDeps(root);
    const dl = await download(
      {
        sweepId: 'test',
        step: 'download',
        params: { urls: [`file://${ARCHIVE}`], md5: ARCHIVE_MD5, unpack: true, max_unpacked_bytes: 1 << 30 },
        inputs: {},
      },
      deps,
    );
    timings.download = dl.seconds;
    ds = await dataset(
      {
        sweepId: 'test',
        step: 'dataset',
        params: { root: 'gestures-dataset', split: { kind: 'random', seed: 42, valid_fraction: 0.2 } },
        inputs: { download: dl },
      },
      deps,
    );
    timings.dataset = ds.seconds;
    result = await runPadding(deps, ds);
    timings.padding = result.seconds;
    const t0 = process.hrtime.bigint();
    data = readPadded(deps.store.path(result.ref, result.table));
    timings.readPadded = Number(process.hrtime.bigint() - t0) / 1e9;
    datasetTable = tableFromIPC(readFileSync(deps.store.path(ds.ref, ds.table)));
    paddedTable = tableFromIPC(readFileSync(deps.store.path(result.ref, result.table)));
    const sizes = {
      archive: dl.bytes,
      unpacked: Object.entries(await deps.store.files(dl.ref)).reduce((sum, [name, f]) => sum + (name.startsWith('unpacked/') ? f.bytes : 0), 0),
      datasetArrow: statSync(deps.store.path(ds.ref, ds.table)).size,
      paddedArrow: statSync(deps.store.path(result.ref, result.table)).size,
    };
    if (process.env.SWEEPS_TEST_REPORT) {
      console.log(JSON.stringify({ timings, sizes, fractions: result }, null, 2));
    }
  });
  afterAll(() => removeDir(root));

  test('shape and counts', () => {
    expect(result).toMatchObject({ table: 'padded.arrow', maxLength: 51, features: 3, classes: 20, train: 2600, valid: 651 });
    expect(data.maxLength).toBe(51);
    expect(data.features).toBe(3);
    expect(data.classes).toBe(20);
    expect(data.train.count).toBe(2600);
    expect(data.valid.count).toBe(651);
    expect(data.train.values.length).toBe(2600 * 51 * 3);
    expect(data.valid.values.length).toBe(651 * 51 * 3);
    expect(data.train.lengths.length).toBe(2600);
    expect(Math.min(...data.train.lengths, ...data.valid.lengths)).toBe(10);
    expect(Math.max(...data.train.labels, ...data.valid.labels)).toBe(19);
  });

  test('schema: FixedSizeList values and mask, metadata', () => {
    const field = (name: string) => paddedTable.schema.fields.find((f) => f.name === name)!;
    expect(paddedTable.schema.fields.map((f) => f.name)).toEqual(['id', 'split', 'label', 'length', 'values', 'mask']);
    expect(field('values').type.typeId).toBe(Type.FixedSizeList);
    expect((field('values').type as FixedSizeList).listSize).toBe(51 * 3);
    expect((field('mask').type as FixedSizeList).listSize).toBe(51);
    expect(paddedTable.schema.metadata.get('max_length')).toBe('51');
    expect(paddedTable.schema.metadata.get('features')).toBe('3');
    expect(paddedTable.schema.metadata.get('classes')).toBe('20');
  });

  test('train rows first, then valid; each split keeps the dataset order', () => {
    const splits = paddedTable.getChild('split')!.toArray() as string[];
    expect(splits.slice(0, 2600).every((s) => s === 'train')).toBe(true);
    expect(splits.slice(2600).every((s) => s === 'valid')).toBe(true);
    const ids = paddedTable.getChild('id')!.toArray() as Int32Array;
    const datasetSplit = datasetTable.getChild('split')!.toArray() as string[];
    const trainIds = datasetSplit.flatMap((s, i) => (s === 'train' ? [i] : []));
    const validIds = datasetSplit.flatMap((s, i) => (s === 'valid' ? [i] : []));
    expect(Array.from(ids)).toEqual([...trainIds, ...validIds]);
  });

  test('unpad(pad(x)) == x on the real data, bit for bit; padding is zeros', () => {
    const ragged = raggedById(datasetTable);
    const ids = paddedTable.getChild('id')!.toArray() as Int32Array;
    const rows = [...unpad(data.train, data), ...unpad(data.valid, data)];
    expect(rows.length).toBe(3251);
    rows.forEach((row, r) => {
      if (!sameFloats(row, ragged.get(ids[r]!)!)) throw new Error(`row ${r} (id ${ids[r]}) differs after unpad`);
    });
    for (const split of [data.train, data.valid]) {
      const stride = data.maxLength * data.features;
      for (let i = 0; i < split.count; i++) {
        const tail = split.values.subarray(i * stride + split.lengths[i]! * data.features, (i + 1) * stride);
        if (tail.some((v) => v !== 0)) throw new Error(`row ${i} has non-zero padding`);
      }
    }
    // And the pure helpers agree with each other on the same sequences.
    const x = Array.from(ragged.values()).slice(0, 200);
    const padded = pad(x, 51, 3);
    const back = unpad({ values: padded.values, lengths: padded.lengths, count: x.length }, { maxLength: 51, features: 3 });
    back.forEach((row, i) => expect(sameFloats(row, x[i]!)).toBe(true));
  });

  test('masks match lengths', () => {
    const mask = paddedTable.getChild('mask')!.data[0]!.children[0]!.values as Uint8Array;
    const lengths = paddedTable.getChild('length')!.toArray() as Int32Array;
    lengths.forEach((len, r) => {
      const m = mask.subarray(r * 51, (r + 1) * 51);
      let ones = 0;
      for (let t = 0; t < 51; t++) {
        const expected = t < len ? 1 : 0;
        if (m[t] !== expected) throw new Error(`row ${r} step ${t}: mask ${m[t]}, length ${len}`);
        ones += m[t]!;
      }
      expect(ones).toBe(len);
    });
  });

  test('the reader shares one buffer (no per-split copies)', () => {
    expect(data.train.values.buffer).toBe(data.valid.values.buffer);
    expect(data.valid.values.byteOffset).toBe(data.train.values.byteOffset + data.train.values.byteLength);
    // The buffer is the file as read from disk: the float columns are views into it.
    expect(data.train.values.buffer.byteLength).toBe(statSync(deps.store.path(result.ref, result.table)).size);
  });

  test('several record batches: read by concatenating once, padded identically', () => {
    const chunked = paddedTable.slice(0, 1000).concat(paddedTable.slice(1000, 2700), paddedTable.slice(2700));
    expect(chunked.batches.length).toBe(3);
    const fromChunks = paddedFromTable(chunked);
    expect(sameFloats(fromChunks.train.values, data.train.values)).toBe(true);
    expect(sameFloats(fromChunks.valid.values, data.valid.values)).toBe(true);
    expect(Array.from(fromChunks.valid.lengths)).toEqual(Array.from(data.valid.lengths));

    const datasetChunks = datasetTable.slice(0, 1234).concat(datasetTable.slice(1234));
    expect(datasetChunks.batches.length).toBe(2);
    const one = buildPadded(datasetTable, PARAMS);
    const two = buildPadded(datasetChunks, PARAMS);
    expect(Buffer.from(two.bytes).equals(Buffer.from(one.bytes))).toBe(true);
  });

  test('padded-cell fractions: global > batch-max > bucket, and batch-max matches sampled batches', () => {
    const { paddedFractionGlobal: g, paddedFractionBatchMax: b, paddedFractionBucket: k } = result;
    expect(g).toBeGreaterThan(b);
    expect(b).toBeGreaterThan(k);
    expect(k).toBeGreaterThanOrEqual(0);
    const lengths = data.train.lengths;
    const total = lengths.reduce((a, c) => a + c, 0);
    expect(g).toBeCloseTo(1 - total / (2600 * 51), 12);
    // The exact expectation against an average over many seeded random epochs.
    const idx = Array.from({ length: lengths.length }, (_, i) => i);
    let sum = 0;
    const epochs = 400;
    for (let s = 0; s < epochs; s++) sum += batchPaddingFraction(lengths, seededShuffle(idx, s), 32);
    expect(Math.abs(sum / epochs - b)).toBeLessThan(0.003);
  });

  test('second run is a cache hit; max_length pads further; a too-short max_length is refused', async () => {
    const again = await runPadding(deps, ds);
    expect(again.cached).toBe(true);
    expect(again.ref).toEqual(result.ref);

    const wide = await runPadding(deps, ds, { batch_size: 32, max_length: 64 });
    const wideData = readPadded(deps.store.path(wide.ref, wide.table));
    expect(wideData.maxLength).toBe(64);
    expect(sameFloats(unpad(wideData.valid, wideData)[5]!, unpad(data.valid, data)[5]!)).toBe(true);

    await expect(runPadding(deps, ds, { batch_size: 32, max_length: 30 })).rejects.toThrow(ApplicationFailure);
    await expect(runPadding(deps, ds, { batch_size: 32, max_length: 30 })).rejects.toThrow(/longest sequence \(51 steps\)/);
  });

  test('a damaged dataset table is never padded: a non-retryable failure that names it and the way out', async () => {
    const table = deps.store.path(ds.ref, ds.table);
    const original = readFileSync(table);
    const damaged = Buffer.from(original);
    damaged[damaged.length >> 1] = ~original[original.length >> 1]! & 0xff;
    writeFileSync(table, damaged);
    try {
      const attempt = runPadding(deps, ds, { batch_size: 16 });
      await expect(attempt).rejects.toThrow(ApplicationFailure);
      await expect(attempt).rejects.toMatchObject({ nonRetryable: true, type: 'ArtifactCorrupt' });
      await expect(attempt).rejects.toThrow(new RegExp(`step padding: artifact ${ds.ref.dir}: ${ds.table} has sha256 .*sweeps resume test. rebuilds it`));
    } finally {
      writeFileSync(table, original);
    }
  });
});

describe('padding statistics (pure)', () => {
  test('expected maximum of a random subset', () => {
    expect(expectedMax([1, 2, 3, 4], 4)).toBeCloseTo(4, 12);
    expect(expectedMax([1, 2, 3, 4], 1)).toBeCloseTo(2.5, 12);
    // Pairs of {1,2,3}: maxima 2, 3, 3.
    expect(expectedMax([1, 2, 3], 2)).toBeCloseTo(8 / 3, 12);
  });

  test('equal lengths never pad; bucketing sorted lengths pads least', () => {
    expect(paddingFractions([5, 5, 5, 5], 5, 2)).toEqual({ global: 0, batchMax: 0, bucket: 0 });
    const f = paddingFractions([1, 1, 9, 9], 10, 2);
    expect(f.bucket).toBe(0);
    expect(f.global).toBeCloseTo(0.5, 12);
    // Pairs: 2 of 6 are {1,1} or {9,9} (no padding); expected cells 2·(1·1/6 + 9·5/6)·2.
    expect(f.batchMax).toBeCloseTo(1 - 20 / (2 * 2 * (1 / 6 + (9 * 5) / 6)), 12);
  });
});
