import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../ml/backend';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kernel, kernelAvailable } from '../../ml/kernel/load';
import { POOLINGS, poolOverTime, type Pooling } from '../../ml/pooling';

beforeAll(async () => {
  await initBackend('wasm');
});

// Outputs h_1..h_3 of a batch of two sequences (H = 2). Sequence 0 has 3 valid steps,
// sequence 1 only 1: its steps 2 and 3 are padding, made large and positive on purpose so
// any pooling that reads them gives itself away.
const steps = [
  [
    [1, -4],
    [-2, -8],
  ],
  [
    [3, -6],
    [50, 60],
  ],
  [
    [2, -5],
    [70, 90],
  ],
];
const lengths = Int32Array.from([3, 1]);

function pool(pooling: Pooling): number[][] {
  return tf.tidy(() =>
    poolOverTime(
      steps.map((s) => tf.tensor2d(s)),
      lengths,
      pooling,
    ).arraySync(),
  );
}

test('last: the output at the last padded step h_T, padding or not (the reference baseline)', () => {
  expect(pool('last')).toEqual([
    [2, -5],
    [70, 90],
  ]);
});

test('mean: the mean over all T padded steps (the reference)', () => {
  const got = pool('mean');
  expect(got[0]![0]).toBeCloseTo(2, 6);
  expect(got[0]![1]).toBeCloseTo(-5, 6);
  expect(got[1]![0]).toBeCloseTo(118 / 3, 5);
  expect(got[1]![1]).toBeCloseTo(142 / 3, 5);
});

test('last-valid: each sequence’s own last step', () => {
  expect(pool('last-valid')).toEqual([
    [2, -5],
    [-2, -8],
  ]);
});

test('mean-valid: the mean over valid steps only', () => {
  const got = pool('mean-valid');
  expect(got[0]![0]).toBeCloseTo(2, 6);
  expect(got[0]![1]).toBeCloseTo(-5, 6);
  expect(got[1]).toEqual([-2, -8]);
});

test('max: the elementwise max over valid steps only, also when every valid value is negative', () => {
  expect(pool('max')).toEqual([
    [3, -4],
    [-2, -8],
  ]);
});

test.each<[Pooling, number[][][]]>([
  // d(sum of pooled)/d h_t: which steps each pooling reads, and with what weight.
  [
    'last',
    [
      [
        [0, 0],
        [0, 0],
      ],
      [
        [0, 0],
        [0, 0],
      ],
      [
        [1, 1],
        [1, 1],
      ],
    ],
  ],
  [
    'last-valid',
    [
      [
        [0, 0],
        [1, 1],
      ],
      [
        [0, 0],
        [0, 0],
      ],
      [
        [1, 1],
        [0, 0],
      ],
    ],
  ],
  [
    'mean-valid',
    [
      [
        [1 / 3, 1 / 3],
        [1, 1],
      ],
      [
        [1 / 3, 1 / 3],
        [0, 0],
      ],
      [
        [1 / 3, 1 / 3],
        [0, 0],
      ],
    ],
  ],
  [
    'max',
    [
      [
        [0, 1],
        [1, 1],
      ],
      [
        [1, 0],
        [0, 0],
      ],
      [
        [0, 0],
        [0, 0],
      ],
    ],
  ],
])('%s: gradients flow to exactly the steps it reads (finite, no NaN from the −inf mask)', (pooling, want) => {
  const grads = tf.tidy(() => {
    const xs = steps.map((s) => tf.tensor2d(s));
    // tf.grads refuses inputs the result does not depend on; the zero term connects every step.
    const g = tf.grads((...hs: tf.Tensor[]) => tf.add(tf.sum(poolOverTime(hs as tf.Tensor2D[], lengths, pooling)), tf.mul(0, tf.sum(tf.stack(hs)))));
    return g(xs).map((t) => t.arraySync() as number[][]);
  });
  grads.forEach((gt, t) => gt.forEach((row, b) => row.forEach((v, j) => expect(v).toBeCloseTo(want[t]![b]![j]!, 6))));
});

test('lengths outside 1..T are rejected with the offending sequence named', () => {
  expect(() =>
    tf.tidy(() =>
      poolOverTime(
        steps.map((s) => tf.tensor2d(s)),
        Int32Array.from([4, 1]),
        'mean-valid',
      ),
    ),
  ).toThrow('length 4 of sequence 0 is outside 1..3');
});

describe('one list of variants (ml/pooling.ts) for the trainer, the kernel and the schema', () => {
  const kinds = (['wasm', 'native'] as const).filter((k) => kernelAvailable(k));

  test.each(kinds.map((k) => [k]))('the %s kernel implements exactly the listed variants, under the same names', (kind) => {
    expect([...kernel(kind).poolings()].sort()).toEqual([...POOLINGS].sort());
  });

  test('a variant the kernel does not have is refused by name, with what to do', () => {
    expect(() => kernel('wasm').poolMode('median')).toThrow(
      /no pooling "median" \(it has last, mean, .*\): add it to the POOLINGS table in ml\/kernel\/gru\.c/,
    );
  });

  test('every listed variant pools in the TensorFlow.js path, and an unlisted one is refused', () => {
    for (const p of POOLINGS) expect(pool(p)).toHaveLength(2);
    expect(() => pool('median' as Pooling)).toThrow('unknown pooling "median"');
  });

  test('the generated pipeline schema (schema/pipeline.schema.json) offers exactly the listed variants', () => {
    const schema = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'schema', 'pipeline.schema.json'), 'utf8')) as unknown;
    const enums: unknown[][] = [];
    const walk = (node: unknown, key: string): void => {
      if (Array.isArray(node)) return node.forEach((n) => walk(n, key));
      if (node === null || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if (key === 'pooling' && Array.isArray(o.enum)) enums.push(o.enum);
      if (key === 'pooling' && o.items !== undefined) walk(o.items, key);
      for (const [k, v] of Object.entries(o)) walk(v, k === 'properties' ? key : k);
    };
    walk(schema, '');
    expect(enums.length).toBeGreaterThan(0);
    for (const e of enums) expect(e).toEqual([...POOLINGS]);
  });
});
