import { rowStart, type PaddedSplit } from './padded-data';
import type { Rng } from './rng';

export type Batching = 'batch-max' | 'bucket';

/** One padded batch, batch-first: x is [size][steps][features], zeros past each length. */
export interface Batch {
  x: Float32Array;
  lengths: Int32Array;
  labels: Int32Array;
  size: number;
  steps: number;
  features: number;
}

/**
 * The batches of one epoch as row indices into the split: floor(n / batchSize) full batches,
 * the last partial one dropped (the reference's DataLoader with drop_last), at most `cap`.
 * - `batch-max`: a random permutation cut into consecutive batches (the reference);
 * - `bucket`: the same random subset, sorted by length (random order among equal lengths),
 *   cut into batches of similar lengths, and the batch order shuffled.
 */
export function planBatches(split: Pick<PaddedSplit, 'count' | 'lengths'>, batchSize: number, batching: Batching, rng: Rng, cap?: number): Int32Array[] {
  const full = Math.floor(split.count / batchSize);
  const order = rng.permutation(split.count);
  const used = order.subarray(0, full * batchSize);
  if (batching === 'bucket') {
    const rank = new Int32Array(split.count);
    used.forEach((row, i) => (rank[row] = i));
    const lengths = split.lengths;
    used.sort((a, b) => (lengths[a] as number) - (lengths[b] as number) || (rank[a] as number) - (rank[b] as number));
  }
  let batches: Int32Array[] = [];
  for (let b = 0; b < full; b++) batches.push(used.slice(b * batchSize, (b + 1) * batchSize));
  if (batching === 'bucket') batches = rng.shuffle(batches);
  return cap === undefined ? batches : batches.slice(0, cap);
}

/**
 * Copies the rows of a batch out of the split into one array padded to the batch's longest
 * sequence: one contiguous TypedArray.set of each row's real steps (the rest stays zero), from
 * either layout (padded rows, or ragged rows with offsets).
 */
export function gatherBatch(split: PaddedSplit, maxLength: number, features: number, rows: Int32Array): Batch {
  const size = rows.length;
  const lengths = new Int32Array(size);
  const labels = new Int32Array(size);
  let steps = 0;
  for (let i = 0; i < size; i++) {
    const row = rows[i] as number;
    const len = split.lengths[row] as number;
    lengths[i] = len;
    labels[i] = split.labels[row] as number;
    if (len > steps) steps = len;
  }
  const width = steps * features;
  const x = new Float32Array(size * width);
  for (let i = 0; i < size; i++) {
    const start = rowStart(split, rows[i] as number, maxLength, features);
    x.set(split.values.subarray(start, start + (lengths[i] as number) * features), i * width);
  }
  return { x, lengths, labels, size, steps, features };
}
