import { Field, Float32, Int32, List, makeVector, Schema, Table, Utf8, vectorFromArray } from 'apache-arrow';
import { describeTable, lengthSummary } from '../../activities/describe';

/** The `describe` step's numbers, on a dataset table of the shape the dataset step writes. */

function table(rows: Array<{ label: number; split: string; values: number[][] }>, metadata: Record<string, string>): Table {
  const features = rows[0]!.values[0]!.length;
  const schema = new Schema(
    [
      new Field('label', new Int32(), false),
      new Field('length', new Int32(), false),
      new Field('split', new Utf8(), false),
      new Field('values', new List(new Field('item', new Float32(), false)), false),
    ],
    new Map(Object.entries({ features: String(features), ...metadata })),
  );
  return new Table(schema, {
    label: makeVector(Int32Array.from(rows.map((r) => r.label))),
    length: makeVector(Int32Array.from(rows.map((r) => r.values.length))),
    split: vectorFromArray(
      rows.map((r) => r.split),
      new Utf8(),
    ),
    values: vectorFromArray(
      rows.map((r) => r.values.flat()),
      new List(new Field('item', new Float32(), false)),
    ),
  });
}

describe('describe', () => {
  const rows = [
    {
      label: 0,
      split: 'train',
      values: [
        [1, 10],
        [3, 30],
      ],
    },
    { label: 0, split: 'valid', values: [[5, -10]] },
    {
      label: 1,
      split: 'train',
      values: [
        [2, 0],
        [2, 0],
        [2, 0],
        [2, 0],
      ],
    },
  ];

  it('counts each class in each split, with the label names the table carries', () => {
    const d = describeTable(table(rows, { labels: '["wave","clap"]' }), 4);
    expect(d.sequences).toBe(3);
    expect(d.classes).toEqual([
      { label: 'clap', train: 1, valid: 0 },
      { label: 'wave', train: 1, valid: 1 },
    ]);
  });

  it("gives each feature's range, mean and standard deviation over every timestep", () => {
    const d = describeTable(table(rows, { feature_names: 'x,y' }), 4);
    // x: 1, 3, 5, 2, 2, 2, 2 — y: 10, 30, -10, 0, 0, 0, 0
    expect(d.features.map((f) => f.name)).toEqual(['x', 'y']);
    expect(d.features[0]).toMatchObject({ min: 1, max: 5 });
    expect(d.features[0]!.mean).toBeCloseTo(17 / 7, 6);
    expect(d.features[1]).toMatchObject({ min: -10, max: 30 });
    expect(d.features[1]!.std).toBeCloseTo(Math.sqrt((100 + 900 + 100) / 7 - (30 / 7) ** 2), 5);
  });

  it('bins sequence lengths into a histogram that counts every sequence once', () => {
    expect(describeTable(table(rows, {}), 4).lengths).toEqual({
      min: 1,
      max: 4,
      mean: 7 / 3,
      histogram: [
        { from: 1, to: 1, count: 1 },
        { from: 2, to: 2, count: 1 },
        { from: 3, to: 3, count: 0 },
        { from: 4, to: 4, count: 1 },
      ],
    });
    const wide = lengthSummary([7, 29, 15, 8, 20], 3);
    expect(wide.histogram).toEqual([
      { from: 7, to: 14, count: 2 },
      { from: 15, to: 22, count: 2 },
      { from: 23, to: 29, count: 1 },
    ]);
  });

  it('names a table without the columns it needs', () => {
    const bare = new Table({ label: makeVector(Int32Array.from([0])) });
    expect(() => describeTable(bare, 4)).toThrow('no column "length" in the dataset table');
  });
});
