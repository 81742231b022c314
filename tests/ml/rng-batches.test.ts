import { gatherBatch, planBatches } from '../../ml/batches';
import { rngFor } from '../../ml/rng';
import { syntheticData } from './synthetic-data';

test('a stream is a pure function of (seed, names…); neighbouring streams are unrelated', () => {
  const draw = (...key: Array<number | string>): number[] => {
    const r = rngFor(1, ...key);
    return Array.from({ length: 4 }, () => r.nextUint32());
  };
  expect(draw('train-order', 3)).toEqual(draw('train-order', 3));
  const others = [draw('train-order', 4), draw('valid-order', 3), draw('train-order', '3'), draw('train-order', 3, 0)];
  for (const o of others) expect(o).not.toEqual(draw('train-order', 3));
  expect(rngFor(2, 'x').nextUint32()).not.toBe(rngFor(1, 'x').nextUint32());
});

test('uniform draws fill [0, 1) evenly; int(n) stays in range', () => {
  const r = rngFor(42, 'uniform');
  const bins = new Array<number>(10).fill(0);
  let outside = 0;
  for (let i = 0; i < 100_000; i++) {
    const u = r.uniform();
    if (!(u >= 0 && u < 1)) outside += 1;
    else bins[Math.floor(u * 10)]! += 1;
  }
  expect(outside).toBe(0);
  for (const b of bins) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(r.int(7));
  expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
});

test('shuffle is a permutation, and each position is uniform over items', () => {
  const counts = Array.from({ length: 4 }, () => new Array<number>(4).fill(0));
  let notPermutations = 0;
  for (let trial = 0; trial < 8000; trial++) {
    const p = rngFor(3, 'shuffle', trial).permutation(4);
    if ([...p].sort().join() !== '0,1,2,3') notPermutations += 1;
    p.forEach((item, pos) => (counts[pos]![item]! += 1));
  }
  expect(notPermutations).toBe(0);
  for (const row of counts) for (const c of row) expect(Math.abs(c - 2000)).toBeLessThan(200);
});

const data = syntheticData({ seed: 1, train: 100, valid: 20, classes: 4, features: 3, maxLength: 12 });

test('batch-max: floor(n / batch) batches of distinct rows, the last partial batch dropped', () => {
  const plan = planBatches(data.train, 32, 'batch-max', rngFor(1, 'train-order', 1));
  expect(plan).toHaveLength(3);
  const rows = plan.flatMap((b) => [...b]);
  expect(rows).toHaveLength(96);
  expect(new Set(rows).size).toBe(96);
  expect(planBatches(data.train, 32, 'batch-max', rngFor(1, 'train-order', 1), 2)).toHaveLength(2);
  expect(planBatches(data.train, 32, 'batch-max', rngFor(1, 'train-order', 2))[0]).not.toEqual(plan[0]);
});

test('bucket: batches of similar lengths, in shuffled order', () => {
  const plan = planBatches(data.train, 10, 'bucket', rngFor(1, 'train-order', 1));
  expect(plan).toHaveLength(10);
  const spans = plan.map((b) => {
    const ls = [...b].map((r) => data.train.lengths[r]!);
    return { min: Math.min(...ls), max: Math.max(...ls) };
  });
  // Sorted by length, consecutive buckets do not overlap (a length may straddle a boundary).
  const byMin = [...spans].sort((a, b) => a.min - b.min || a.max - b.max);
  for (let i = 1; i < byMin.length; i++) expect(byMin[i]!.min).toBeGreaterThanOrEqual(byMin[i - 1]!.max);
  expect(spans.map((s) => s.min)).not.toEqual(byMin.map((s) => s.min)); // batch order is shuffled
});

test('gatherBatch pads each batch to its own longest sequence, rows copied from the padded split', () => {
  const rows = Int32Array.from([5, 0, 17]);
  const batch = gatherBatch(data.train, data.maxLength, data.features, rows);
  const lens = [...rows].map((r) => data.train.lengths[r]!);
  expect(batch.steps).toBe(Math.max(...lens));
  expect(batch.x).toHaveLength(3 * batch.steps * 3);
  rows.forEach((row, i) => {
    for (let t = 0; t < batch.steps; t++) {
      for (let f = 0; f < 3; f++) {
        const got = batch.x[(i * batch.steps + t) * 3 + f]!;
        expect(got).toBe(t < lens[i]! ? data.train.values[(row * data.maxLength + t) * 3 + f]! : 0);
      }
    }
    expect(batch.labels[i]).toBe(data.train.labels[row]);
  });
});
