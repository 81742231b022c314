import { readFileSync } from 'node:fs';
import { Type, tableFromIPC, type Data, type Table } from 'apache-arrow';

/**
 * The padded tensors the trainer consumes, read from the `padding` step's Arrow IPC file.
 *
 * The file holds every train row first and then every valid row, so each split is one contiguous
 * slice of the FixedSizeList child buffer: the arrays below are views into the bytes read from
 * disk, not copies (unless the file has several record batches, which are concatenated once).
 */
export interface PaddedSplit {
  /**
   * Without `offsets`: count*maxLength*features, row-major [n][t][f], steps at t >= lengths[n]
   * zeros. With `offsets` (the ragged layout): row n's lengths[n]*features values start at
   * offsets[n], unpadded; each batch is padded when it is gathered, so memory follows the data
   * and the batch, not count × the longest sequence.
   */
  values: Float32Array;
  lengths: Int32Array;
  labels: Int32Array;
  count: number;
  offsets?: Int32Array;
}

/** Where row `row` of a split starts in its `values`. */
export function rowStart(split: Pick<PaddedSplit, 'offsets'>, row: number, maxLength: number, features: number): number {
  return split.offsets === undefined ? row * maxLength * features : (split.offsets[row] as number);
}

export interface PaddedData {
  maxLength: number;
  features: number;
  classes: number;
  train: PaddedSplit;
  valid: PaddedSplit;
}

/** Names shared by the writer (the padding step) and this reader. */
export const PADDED_COLUMNS = { id: 'id', split: 'split', label: 'label', length: 'length', values: 'values', mask: 'mask' } as const;
export const PADDED_METADATA = { maxLength: 'max_length', features: 'features', classes: 'classes' } as const;

export function readPadded(path: string): PaddedData {
  return paddedFromTable(tableFromIPC(readFileSync(path)), path);
}

export function paddedFromTable(table: Table, source = 'padded table'): PaddedData {
  const meta = table.schema.metadata;
  const maxLength = metaInt(meta, PADDED_METADATA.maxLength, source);
  const features = metaInt(meta, PADDED_METADATA.features, source);
  const classes = metaInt(meta, PADDED_METADATA.classes, source);
  const n = table.numRows;
  const stride = maxLength * features;
  const valuesColumn = table.getChild(PADDED_COLUMNS.values);
  const ragged = valuesColumn !== null && valuesColumn.type.typeId === Type.List;

  const values = ragged
    ? raggedValues(table, source)
    : contiguous(table, PADDED_COLUMNS.values, source, Float32Array, (d) => {
        const list = d as Data & { type: { listSize?: number } };
        if (list.type.listSize !== stride) {
          throw new Error(`${source}: column values has list size ${String(list.type.listSize)}, expected ${stride}`);
        }
        // The child is already sliced to this chunk by arrow, so its values start at the chunk's first row.
        return list.children[0]!.values.subarray(0, d.length * stride);
      });
  const lengths = contiguous(table, PADDED_COLUMNS.length, source, Int32Array, (d) => d.values.subarray(0, d.length));
  const labels = contiguous(table, PADDED_COLUMNS.label, source, Int32Array, (d) => d.values.subarray(0, d.length));

  const split = table.getChild(PADDED_COLUMNS.split);
  if (!split) throw new Error(`${source}: no column "split"`);
  let nTrain = 0;
  let i = 0;
  for (const s of split as Iterable<string | null>) {
    if (s === 'train') {
      if (nTrain !== i) throw new Error(`${source}: row ${i} is train but follows valid rows; train rows must come first`);
      nTrain += 1;
    } else if (s !== 'valid') {
      throw new Error(`${source}: row ${i} has split "${String(s)}", expected train or valid`);
    }
    i += 1;
  }

  const slice = (from: number, to: number): PaddedSplit =>
    ragged
      ? {
          values: values.flat,
          offsets: values.offsets.subarray(from, to + 1),
          lengths: lengths.subarray(from, to),
          labels: labels.subarray(from, to),
          count: to - from,
        }
      : { values: values.subarray(from * stride, to * stride), lengths: lengths.subarray(from, to), labels: labels.subarray(from, to), count: to - from };
  if (ragged) {
    const { offsets } = values as { offsets: Int32Array };
    for (let r = 0; r < n; r++) {
      const len = lengths[r]!;
      if (offsets[r + 1]! - offsets[r]! !== len * features || len > maxLength) {
        throw new Error(`${source}: row ${r} has ${offsets[r + 1]! - offsets[r]!} values for length ${len} × ${features} features (max_length ${maxLength})`);
      }
    }
  }
  return { maxLength, features, classes, train: slice(0, nTrain), valid: slice(nTrain, n) };
}

/** The ragged layout's List<Float32> values column: one flat buffer and each row's start. */
function raggedValues(table: Table, source: string): { flat: Float32Array; offsets: Int32Array } {
  const chunks = table.getChild(PADDED_COLUMNS.values)!.data;
  if (chunks.length !== 1) throw new Error(`${source}: column values has ${chunks.length} record batches, expected one`);
  const d = chunks[0]!;
  const flat = d.children[0]?.values;
  if (!(flat instanceof Float32Array) || !(d.valueOffsets instanceof Int32Array)) throw new Error(`${source}: column values is not a List<Float32>`);
  return { flat, offsets: d.valueOffsets.subarray(0, d.length + 1) };
}

function metaInt(meta: Map<string, string>, key: string, source: string): number {
  const raw = meta.get(key);
  const value = raw === undefined ? NaN : Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${source}: schema metadata "${key}" is ${raw === undefined ? 'missing' : `"${raw}"`}, expected a positive integer`);
  }
  return value;
}

type TypedCtor<T> = { new (length: number): T };

/** One view when the column is a single chunk; one concatenation (not per element) otherwise. */
function contiguous<T extends Float32Array | Int32Array>(table: Table, name: string, source: string, Ctor: TypedCtor<T>, chunkValues: (d: Data) => T): T {
  const column = table.getChild(name);
  if (!column) throw new Error(`${source}: no column "${name}"`);
  const parts = column.data.map((d) => {
    if (d.nullCount > 0) throw new Error(`${source}: column ${name} has nulls`);
    const v = chunkValues(d);
    if (!(v instanceof Ctor)) throw new Error(`${source}: column ${name} is not stored as ${Ctor.name}`);
    return v;
  });
  if (parts.length === 1) return parts[0]!;
  const total = parts.reduce((sum, p) => sum + p.length, 0);
  const out = new Ctor(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Padding and unpadding.

/**
 * Pads ragged rows stored back to back in `flat` (Arrow list layout: row i is
 * flat[offsets[i] .. offsets[i+1]], `features` values per step) into [rows.length][maxLength][features],
 * in the order given by `rows`. Zeros after each row's last step.
 */
export function padRagged(flat: Float32Array, offsets: ArrayLike<number>, rows: ArrayLike<number>, maxLength: number, features: number): Float32Array {
  const stride = maxLength * features;
  const out = new Float32Array(rows.length * stride);
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r]!;
    const start = offsets[i]!;
    const end = offsets[i + 1]!;
    if (end - start > stride) throw new Error(`row ${i} has ${(end - start) / features} steps, more than maxLength ${maxLength}`);
    if ((end - start) % features !== 0) throw new Error(`row ${i} has ${end - start} values, not a multiple of ${features}`);
    out.set(flat.subarray(start, end), r * stride);
  }
  return out;
}

/** Pads a list of sequences (each length*features values); the inverse of {@link unpad}. */
export function pad(sequences: readonly Float32Array[], maxLength: number, features: number): { values: Float32Array; lengths: Int32Array } {
  const offsets = new Int32Array(sequences.length + 1);
  for (let i = 0; i < sequences.length; i++) offsets[i + 1] = offsets[i]! + sequences[i]!.length;
  const flat = new Float32Array(offsets[sequences.length]!);
  sequences.forEach((s, i) => flat.set(s, offsets[i]!));
  const rows = Int32Array.from(sequences.keys());
  const lengths = Int32Array.from(sequences, (s) => s.length / features);
  return { values: padRagged(flat, offsets, rows, maxLength, features), lengths };
}

/** Each row's valid steps, as views into `split.values` (padding sits at the end of a row). */
export function unpad(split: Pick<PaddedSplit, 'values' | 'lengths' | 'count' | 'offsets'>, shape: { maxLength: number; features: number }): Float32Array[] {
  const out: Float32Array[] = new Array(split.count);
  for (let i = 0; i < split.count; i++) {
    const start = rowStart(split, i, shape.maxLength, shape.features);
    out[i] = split.values.subarray(start, start + split.lengths[i]! * shape.features);
  }
  return out;
}

/** 1 for real steps, 0 for padding: [n][maxLength]. */
export function maskFor(lengths: ArrayLike<number>, maxLength: number): Uint8Array {
  const mask = new Uint8Array(lengths.length * maxLength);
  for (let i = 0; i < lengths.length; i++) mask.fill(1, i * maxLength, i * maxLength + lengths[i]!);
  return mask;
}

// ---------------------------------------------------------------------------------------------
// How much of a batch is padding, per batching strategy.

export interface PaddingFractions {
  /** Every sequence padded to maxLength. */
  global: number;
  /**
   * Each batch padded to its own longest sequence, batches drawn by a uniformly random
   * permutation (the reference loader): the exact expectation, not a sample.
   */
  batchMax: number;
  /** Sequences sorted by length, then cut into batches, each padded to its longest. */
  bucket: number;
}

export function paddingFractions(lengths: ArrayLike<number>, maxLength: number, batchSize: number): PaddingFractions {
  const n = lengths.length;
  if (n === 0) return { global: 0, batchMax: 0, bucket: 0 };
  const sorted = Float64Array.from(lengths).sort();
  let real = 0;
  for (const l of sorted) real += l;

  const full = Math.floor(n / batchSize);
  const rest = n % batchSize;
  // Each batch of a random permutation is a uniform random subset of its size, so the expected
  // padded size of the epoch is a sum of expected maxima (linearity), exact and order-free.
  const expectedCells = full * batchSize * expectedMax(sorted, batchSize) + (rest > 0 ? rest * expectedMax(sorted, rest) : 0);

  const ascending = Int32Array.from(sorted.keys());
  return {
    global: 1 - real / (n * maxLength),
    // Rounding in the probabilities can leave -2e-16 where nothing is padded.
    batchMax: Math.max(0, 1 - real / expectedCells),
    bucket: batchPaddingFraction(sorted, ascending, batchSize),
  };
}

/**
 * E[max] of a uniform random b-subset of `sorted` (ascending): element k (0-based) is the maximum
 * with probability C(k, b-1)/C(n, b); walking down from the top keeps the ratio update exact.
 */
export function expectedMax(sorted: ArrayLike<number>, b: number): number {
  const n = sorted.length;
  const size = Math.min(b, n);
  let p = size / n;
  let e = 0;
  for (let k = n - 1; k >= size - 1 && p > 0; k--) {
    e += sorted[k]! * p;
    if (k > 0) p *= (k - size + 1) / k;
  }
  return e;
}

/** Padded share when rows are taken in `order` and cut into consecutive batches. */
export function batchPaddingFraction(lengths: ArrayLike<number>, order: ArrayLike<number>, batchSize: number): number {
  let real = 0;
  let cells = 0;
  for (let start = 0; start < order.length; start += batchSize) {
    const end = Math.min(order.length, start + batchSize);
    let max = 0;
    for (let i = start; i < end; i++) {
      const l = lengths[order[i]!]!;
      real += l;
      if (l > max) max = l;
    }
    cells += max * (end - start);
  }
  return cells === 0 ? 0 : 1 - real / cells;
}

// ---------------------------------------------------------------------------------------------
// Per-feature standardisation.

export interface FeatureStats {
  mean: number[];
  std: number[];
}

/**
 * Mean and standard deviation (population, as sklearn's StandardScaler) of each feature over the
 * real steps of `rows` only — the training rows, so that nothing about validation leaks into
 * training. A constant feature gets std 1 (it is centred, not blown up).
 */
export function featureStats(flat: Float32Array, offsets: ArrayLike<number>, rows: ArrayLike<number>, features: number): FeatureStats {
  const sum = new Float64Array(features);
  const sumSq = new Float64Array(features);
  let steps = 0;
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r]!;
    for (let k = offsets[i]!; k < offsets[i + 1]!; k += features) {
      for (let f = 0; f < features; f++) {
        const v = flat[k + f]!;
        sum[f] = sum[f]! + v;
        sumSq[f] = sumSq[f]! + v * v;
      }
      steps += 1;
    }
  }
  if (steps === 0) throw new Error('featureStats: no steps to compute statistics from');
  const mean = Array.from(sum, (s) => s / steps);
  const std = Array.from(sumSq, (s, f) => {
    const variance = Math.max(0, s / steps - mean[f]! * mean[f]!);
    const sd = Math.sqrt(variance);
    return sd > 1e-12 * Math.max(1, Math.abs(mean[f]!)) ? sd : 1;
  });
  return { mean, std };
}

/** (x − mean) / std per feature, for every value of a flat list of steps; returns a new array. */
export function standardize(flat: Float32Array, stats: FeatureStats): Float32Array {
  const features = stats.mean.length;
  const out = new Float32Array(flat.length);
  for (let k = 0; k < flat.length; k++) {
    const f = k % features;
    out[k] = (flat[k]! - stats.mean[f]!) / stats.std[f]!;
  }
  return out;
}
