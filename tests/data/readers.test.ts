import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tableFromArrays, tableToIPC } from 'apache-arrow';
import { readGestures } from '../../activities/dataset/readers/gestures';
import { readLongCsv, readLongParquet, splitCsvLine, type LongTableColumns } from '../../activities/dataset/readers/long-table';
import { DatasetFormatError } from '../../activities/dataset/readers/types';
import { readUeaDataset, readUeaFile } from '../../activities/dataset/readers/uea-ts';
import { download } from '../../activities/download';
import { describeIfAvailable } from '../helpers/required';
import { SKTIME_DATA, SKTIME_SHA256, SKTIME_WHEEL, removeDir, sktimeMissing, tempDir, testDeps } from './helpers';

let dir: string;
beforeAll(() => {
  dir = tempDir('readers');
});
afterAll(() => removeDir(dir));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function formatError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetFormatError);
    return (err as Error).message;
  }
  throw new Error('expected a DatasetFormatError');
}

const UEA_HEADER =
  '# a comment\n@problemName Toy\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n';

describe('UEA/UCR .ts reader', () => {
  test('reads a multivariate, variable-length file: values timestep after timestep, labels as declared', async () => {
    const path = file('ok.ts', `${UEA_HEADER}1,2,3:4,5,6:b\n7:8:a\n`);
    const f = await readUeaFile(path, 'ok.ts', 'train');
    expect(f.problemName).toBe('Toy');
    expect(f.dimensions).toBe(2);
    expect(f.classLabels).toEqual(['a', 'b']);
    expect(f.sequences.map((s) => [s.label, s.length, Array.from(s.values), s.part, s.source])).toEqual([
      ['b', 3, [1, 4, 2, 5, 3, 6], 'train', 'ok.ts:10'],
      ['a', 1, [7, 8], 'train', 'ok.ts:11'],
    ]);
  });

  // Each malformed file: the error names the file and the line, and says what to do.
  const cases: { name: string; body: string; header?: string; expected: RegExp }[] = [
    {
      name: 'ragged dimensions',
      body: '1,2,3:4,5:a\n',
      expected: /bad\.ts line 10: dimension 2 has 2 values but dimension 1 has 3 \(ragged dimensions\); all dimensions of a case need the same length/,
    },
    { name: 'a non-numeric value', body: '1,2:3,x4:a\n1:2:b\n', expected: /bad\.ts line 10: dimension 2, value 2: expected a number, found "x4"/ },
    {
      name: 'a label not in @classLabel',
      body: '1:2:a\n1:2:zebra\n',
      expected: /bad\.ts line 11: class label "zebra" is not in @classLabel \(a b\); fix the label or the header/,
    },
    { name: 'a missing header', header: '', body: '1,2:3,4:a\n', expected: /bad\.ts line 1: data before the header's @data line; .*is the header missing/ },
    {
      name: 'an empty series',
      body: '1:2:a\n:4:b\n',
      expected: /bad\.ts line 11: dimension 1 is empty \(an empty series\); every dimension needs at least one value/,
    },
    {
      name: '@missing true with ?',
      header: UEA_HEADER.replace('@missing false', '@missing true'),
      body: '1,?:3,4:a\n',
      expected: /bad\.ts line 10: dimension 1, value 2 is missing \("\?"\); @missing true is declared, but the model cannot train on gaps: fill or drop/,
    },
    {
      name: 'a ? although @missing false',
      body: '1,?:3,4:a\n',
      expected: /bad\.ts line 10: dimension 1, value 2 is missing \("\?"\) although @missing is not true/,
    },
    {
      name: 'fewer dimensions than @dimensions',
      body: '1,2,3:a\n',
      expected: /bad\.ts line 10: 1 dimension\(s\) before the label, but @dimensions says 2; each case is <dim 1>:…:<dim 2>:<label>/,
    },
    {
      name: '@classLabel false',
      header: '@problemName T\n@classLabel false\n@data\n',
      body: '1:2\n',
      expected: /bad\.ts line 2: @classLabel false: the file has no class labels; a classification study needs @classLabel true/,
    },
    { name: 'no @data line', header: '@problemName T\n@classLabel true a b\n', body: '', expected: /bad\.ts: no @data line; is this a UEA\/UCR \.ts file\?/ },
    { name: '@data without cases', body: '', expected: /bad\.ts: @data is followed by no cases/ },
    {
      name: 'a length other than @seriesLength',
      header: UEA_HEADER.replace('@equalLength false', '@equalLength true\n@seriesLength 3'),
      body: '1,2,3:4,5,6:a\n1,2:4,5:b\n',
      expected: /bad\.ts line 12: 2 timesteps, but the header says @equalLength true @seriesLength 3/,
    },
    {
      name: '@timeStamps true',
      header: UEA_HEADER.replace('@timeStamps false', '@timeStamps true'),
      body: '(0,1):(0,2):a\n',
      expected: /bad\.ts line 3: @timeStamps true is not supported/,
    },
    {
      name: 'an unknown header line',
      header: UEA_HEADER.replace('@univariate false', '@univarate false'),
      body: '1:2:a\n',
      expected: /bad\.ts line 5: unknown header line @univarate; expected one of/,
    },
    { name: 'a header line after @data', body: '1:2:a\n@dimensions 2\n', expected: /bad\.ts line 11: header line after @data; move it above @data/ },
    { name: 'a value too large for float32', body: '1e999:2:a\n', expected: /bad\.ts line 10: dimension 1, value 1: expected a number, found "1e999"/ },
  ];
  test.each(cases)('$name', async ({ header, body, expected }) => {
    const path = file('bad.ts', `${header ?? UEA_HEADER}${body}`);
    expect(await formatError(readUeaFile(path, 'bad.ts'))).toMatch(expected);
  });

  test('TRAIN and TEST must declare the same classes', async () => {
    const d = join(dir, 'pair');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'Toy_TRAIN.ts'), `${UEA_HEADER}1:2:a\n`);
    writeFileSync(join(d, 'Toy_TEST.ts'), `${UEA_HEADER.replace('true a b', 'true a b c')}1:2:c\n`);
    expect(await formatError(readUeaDataset(d, 'Toy'))).toMatch(
      /Toy_TEST\.ts: @classLabel a b c differs from Toy_TRAIN\.ts's \(a b\); both parts need the same classes/,
    );
  });

  test('a dataset name that is not there lists the ones that are', async () => {
    const d = join(dir, 'one-dataset');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'Toy_TRAIN.ts'), `${UEA_HEADER}1:2:a\n`);
    writeFileSync(join(d, 'Toy_TEST.ts'), `${UEA_HEADER}1:2:b\n`);
    expect(await formatError(readUeaDataset(d, 'JapanesVowels'))).toMatch(
      /no file JapanesVowels_TRAIN\.ts in the data \(UEA datasets there: Toy\); check the dataset name/,
    );
  });
});

const COLUMNS: LongTableColumns = { id: 'seq', time: 't', label: 'y', group: 'who', features: ['f1', 'f2'] };

describe('long-format table reader (CSV)', () => {
  test('rows become sequences; classes sorted; quoted fields and a byte-order mark are read', async () => {
    const path = file('ok.csv', '\uFEFFseq,t,f1,f2,y,who\ns1,0,1,2,cat,u1\ns1,1,3,4,cat,u1\n"s,2",5,5,6,"dog",u2\n');
    const d = await readLongCsv(path, 'ok.csv', COLUMNS);
    expect(d.features).toBe(2);
    expect(d.classNames).toEqual(['cat', 'dog']);
    expect(d.sequences.map((s) => [s.source, s.group, s.label, s.length, Array.from(s.values)])).toEqual([
      ['ok.csv id s1', 'u1', 'cat', 2, [1, 2, 3, 4]],
      ['ok.csv id s,2', 'u2', 'dog', 1, [5, 6]],
    ]);
  });

  test('features default to every column that is not id, time, label or group', async () => {
    const path = file('ok2.csv', 'seq,t,a,y,b\n1,0,1,x,2\n');
    const d = await readLongCsv(path, 'ok2.csv', { id: 'seq', time: 't', label: 'y' });
    expect(d.featureNames).toEqual(['a', 'b']);
  });

  const cases: { name: string; text: string; expected: RegExp }[] = [
    {
      name: 'a duplicate id',
      text: 'seq,t,f1,f2,y,who\na,0,1,1,x,u\nb,0,1,1,x,u\na,1,1,1,x,u\n',
      expected:
        /bad\.csv line 4: sequence id "a" appears again \(its rows started at bad\.csv line 2\); a duplicate id, or rows not grouped: sort the table by id, then time/,
    },
    {
      name: 'non-monotonic time',
      text: 'seq,t,f1,f2,y,who\na,0,1,1,x,u\na,2,1,1,x,u\na,1,1,1,x,u\n',
      expected: /bad\.csv line 4: time 1 of sequence "a" does not increase \(previous 2\); .*sort by id, then time/,
    },
    {
      name: 'a column that does not exist',
      text: 'seq,time,f1,f2,y,who\na,0,1,1,x,u\n',
      expected: /bad\.csv: no column "t" \(named as the time column\); the table has: seq, time, f1, f2, y, who/,
    },
    { name: 'a missing header row', text: '1,0,1,1,2,3\n', expected: /bad\.csv line 1: the first line holds only numbers; the table needs a header row/ },
    { name: 'a row with too few fields', text: 'seq,t,f1,f2,y,who\na,0,1,1,x\n', expected: /bad\.csv line 2: 5 fields, but the header has 6 columns/ },
    { name: 'a non-numeric feature', text: 'seq,t,f1,f2,y,who\na,0,1,abc,x,u\n', expected: /bad\.csv line 2, column "f2": expected a number, found "abc"/ },
    {
      name: 'an empty feature cell',
      text: 'seq,t,f1,f2,y,who\na,0,,1,x,u\n',
      expected: /bad\.csv line 2, column "f1": the value is missing; fill it or drop the row/,
    },
    {
      name: 'a label that changes within a sequence',
      text: 'seq,t,f1,f2,y,who\na,0,1,1,x,u\na,1,1,1,z,u\n',
      expected: /bad\.csv line 3: sequence "a" changes label from "x" to "z"; a sequence has one label/,
    },
    { name: 'an empty file', text: '', expected: /bad\.csv: the file is empty; it needs a header row and data rows/ },
    { name: 'a header without rows', text: 'seq,t,f1,f2,y,who\n', expected: /bad\.csv: no data rows below the header/ },
    { name: 'a column named twice in the header', text: 'seq,t,f1,f1,y,who\n', expected: /bad\.csv line 1: column "f1" appears twice in the header/ },
    { name: 'an unclosed quote', text: 'seq,t,f1,f2,y,who\n"a,0,1,1,x,u\n', expected: /bad\.csv line 2: a quoted field is not closed/ },
  ];
  test.each(cases)('$name', async ({ text, expected }) => {
    const path = file('bad.csv', text);
    expect(await formatError(readLongCsv(path, 'bad.csv', COLUMNS))).toMatch(expected);
  });

  test('CSV fields: quotes, escaped quotes, empty trailing field', () => {
    expect(splitCsvLine('a,"b,c","d""e",', 'x')).toEqual(['a', 'b,c', 'd"e', '']);
  });
});

describe('long-format table reader (Parquet, written by parquet-wasm)', () => {
  function parquet(name: string, columns: Record<string, unknown[] | Float64Array | Int32Array>): string {
    const pq = require('parquet-wasm') as typeof import('parquet-wasm');
    const ipc = tableToIPC(tableFromArrays(columns as Parameters<typeof tableFromArrays>[0]), 'stream');
    const path = join(dir, name);
    writeFileSync(path, pq.writeParquet(pq.Table.fromIPCStream(ipc)));
    return path;
  }

  test('reads the same sequences as the CSV of the same table', async () => {
    const path = parquet('ok.parquet', {
      seq: ['s1', 's1', 's2'],
      t: Int32Array.from([0, 1, 0]),
      f1: Float64Array.from([1, 3, 5]),
      f2: Float64Array.from([2, 4, 6]),
      y: ['cat', 'cat', 'dog'],
      who: ['u1', 'u1', 'u2'],
    });
    const d = await readLongParquet(path, 'ok.parquet', COLUMNS);
    expect(d.classNames).toEqual(['cat', 'dog']);
    expect(d.sequences.map((s) => [s.group, s.label, s.length, Array.from(s.values)])).toEqual([
      ['u1', 'cat', 2, [1, 2, 3, 4]],
      ['u2', 'dog', 1, [5, 6]],
    ]);
  });

  test('non-monotonic time names the row', async () => {
    const path = parquet('bad-time.parquet', {
      seq: ['a', 'a', 'a'],
      t: Int32Array.from([0, 5, 5]),
      f1: Float64Array.from([1, 1, 1]),
      f2: Float64Array.from([1, 1, 1]),
      y: ['x', 'x', 'x'],
      who: ['u', 'u', 'u'],
    });
    expect(await formatError(readLongParquet(path, 'bad-time.parquet', COLUMNS))).toMatch(/bad-time\.parquet row 3: time 5 of sequence "a" does not increase/);
  });

  test('a null feature value names the row and column', async () => {
    const path = parquet('null.parquet', {
      seq: ['a', 'a'],
      t: Int32Array.from([0, 1]),
      f1: [1, null],
      f2: Float64Array.from([1, 1]),
      y: ['x', 'x'],
      who: ['u', 'u'],
    });
    expect(await formatError(readLongParquet(path, 'null.parquet', COLUMNS))).toMatch(
      /null\.parquet row 2, column "f1": the value is missing \(null\); fill it or drop the row/,
    );
  });

  test('a column that does not exist lists the columns there are', async () => {
    const path = parquet('cols.parquet', {
      seq: ['a'],
      t: Int32Array.from([0]),
      f1: Float64Array.from([1]),
      f2: Float64Array.from([1]),
      label: ['x'],
      who: ['u'],
    });
    expect(await formatError(readLongParquet(path, 'cols.parquet', COLUMNS))).toMatch(
      /cols\.parquet: no column "y" \(named as the label column\); the table has: seq, t, f1, f2, label, who/,
    );
  });

  test('a file that is not Parquet says so', async () => {
    const path = file('fake.parquet', 'seq,t\n');
    expect(await formatError(readLongParquet(path, 'fake.parquet', COLUMNS))).toMatch(/fake\.parquet: not a readable Parquet file/);
  });
});

describe('gestures layout', () => {
  function gesture(root: string, rel: string): void {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), '1 2 3 0.1 0.2 0.3\n1 2 3 0.4 0.5 0.6\n');
  }

  test('one stray gesture folder is refused by name instead of widening the model to 99 classes', async () => {
    const root = join(dir, 'gestures-stray');
    for (const u of ['U01', 'U02']) for (const g of ['01', '02', '03']) gesture(root, `${u}/${g}/01.txt`);
    gesture(root, 'U02/99/01.txt');
    expect(await formatError(readGestures(root, 'gestures-stray'))).toMatch(
      /gestures-stray\/: gesture folders are not numbered 1\.\.4 \(gesture 4 is missing\) and the labels would have gaps: remove or renumber U02\/99\//,
    );
  });

  test('labels are gesture numbers, groups are users, in canonical order', async () => {
    const root = join(dir, 'gestures-ok');
    for (const rel of ['U10/02/01.txt', 'U02/01/02.txt', 'U02/01/10.txt', 'U02/02/01.txt']) gesture(root, rel);
    const d = await readGestures(root, 'gestures-ok');
    expect(d.classNames).toEqual(['1', '2']);
    expect(d.sequences.map((s) => [s.source, s.group, s.label])).toEqual([
      ['U02/01/02.txt', 'U02', '1'],
      ['U02/01/10.txt', 'U02', '1'],
      ['U02/02/01.txt', 'U02', '2'],
      ['U10/02/01.txt', 'U10', '2'],
    ]);
  });
});

describeIfAvailable('real UEA datasets from the sktime wheel, through the download step', 'the sktime wheel', sktimeMissing, () => {
  let unpacked: string;
  beforeAll(async () => {
    const deps = testDeps(join(dir, 'store'));
    const r = await download(
      {
        sweepId: 'test',
        step: 'download',
        params: { urls: [`file://${SKTIME_WHEEL}`], sha256: SKTIME_SHA256, unpack: true, max_unpacked_bytes: 1 << 30 },
        inputs: {},
      },
      deps,
    );
    unpacked = deps.store.path(r.ref, r.unpacked!);
  });

  test('JapaneseVowels: 12 dimensions, 9 classes, lengths 7–29, 270 train and 370 test cases', async () => {
    const d = await readUeaDataset(join(unpacked, SKTIME_DATA), 'JapaneseVowels');
    expect(d.features).toBe(12);
    expect(d.classNames).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const lengths = d.sequences.map((s) => s.length);
    expect([Math.min(...lengths), Math.max(...lengths)]).toEqual([7, 29]);
    expect(d.sequences.filter((s) => s.part === 'train')).toHaveLength(270);
    expect(d.sequences.filter((s) => s.part === 'test')).toHaveLength(370);
    // First value of the first case, as the file writes it (dimension 1, timestep 1; then dimension 2).
    expect(d.sequences[0]!.values[0]).toBeCloseTo(1.860936, 6);
    expect(d.sequences[0]!.values[1]).toBeCloseTo(-0.207383, 6);
  });

  test('BasicMotions: 6 dimensions, named classes, every series 100 steps', async () => {
    const d = await readUeaDataset(unpacked, 'BasicMotions');
    expect(d.features).toBe(6);
    expect(d.classNames).toEqual(['Standing', 'Running', 'Walking', 'Badminton']);
    expect(new Set(d.sequences.map((s) => s.length))).toEqual(new Set([100]));
    expect(d.sequences).toHaveLength(80);
  });
});
