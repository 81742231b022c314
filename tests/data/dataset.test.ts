import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Type, tableFromIPC, type Table } from 'apache-arrow';
import { dataset, seededShuffle, trainCount } from '../../activities/dataset';
import { download } from '../../activities/download';
import type { DatasetResult, DownloadResult } from '../../activities/types';
import type { DatasetParams } from '../../activities/dataset';
import { ARCHIVE, ARCHIVE_MD5, removeDir, tempDir, testDeps, type TestDeps } from './helpers';

const RANDOM: DatasetParams = { root: 'gestures-dataset', split: { kind: 'random', seed: 42, valid_fraction: 0.2 } };

function run(deps: TestDeps, upstream: DownloadResult, params: DatasetParams): Promise<DatasetResult> {
  return dataset({ sweepId: 'test', step: 'dataset', params, inputs: { download: upstream } }, deps);
}

function readTable(deps: TestDeps, r: DatasetResult): Table {
  return tableFromIPC(readFileSync(deps.store.path(r.ref, r.table)));
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected the call to fail');
}

describe('split arithmetic', () => {
  test('floor(n·(1−f)) reproduces the reference 2,600 / 651', () => {
    expect(trainCount(3251, 0.2)).toBe(2600);
    expect(trainCount(10, 0.3)).toBe(7);
    expect(trainCount(100, 0.1)).toBe(90);
  });
  test('the seeded shuffle is a deterministic permutation', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = seededShuffle(items, 7);
    expect(seededShuffle(items, 7)).toEqual(a);
    expect(seededShuffle(items, 8)).not.toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(items);
  });
});

describe('dataset on the real archive', () => {
  let root: string;
  let deps: TestDeps;
  let upstream: DownloadResult;
  let base: DatasetResult;

  beforeAll(async () => {
    root = tempDir('dataset');
    deps = testDeps(root);
    upstream = await download(
      {
        sweepId: 'test',
        step: 'download',
        params: { urls: [`file://${ARCHIVE}`], md5: ARCHIVE_MD5, unpack: true, max_unpacked_bytes: 1 << 30 },
        inputs: {},
      },
      deps,
    );
    base = await run(deps, upstream, RANDOM);
  });
  afterAll(() => removeDir(root));

  test('3,251 sequences, 8 users, 20 classes, lengths 10–51, split 2,600 / 651', () => {
    expect(base.cached).toBe(false);
    expect(base).toMatchObject({
      table: 'dataset.arrow',
      sequences: 3251,
      users: 8,
      classes: 20,
      features: 3,
      train: 2600,
      valid: 651,
      minLength: 10,
      maxLength: 51,
    });
  });

  test('the table: columns, types, order and values', () => {
    const t = readTable(deps, base);
    expect(t.schema.fields.map((f) => f.name)).toEqual(['id', 'file', 'user', 'label', 'length', 'split', 'values']);
    const typeOf = (name: string): Type => t.schema.fields.find((f) => f.name === name)!.type.typeId;
    expect(typeOf('id')).toBe(Type.Int);
    expect(typeOf('file')).toBe(Type.Utf8);
    expect(typeOf('values')).toBe(Type.List);
    expect(t.schema.metadata.get('features')).toBe('3');
    expect(t.schema.metadata.get('classes')).toBe('20');
    expect(t.numRows).toBe(3251);

    const ids = t.getChild('id')!.toArray() as Int32Array;
    expect(Array.from(ids)).toEqual(Array.from({ length: 3251 }, (_, i) => i));
    const files = t.getChild('file')!.toArray() as string[];
    expect(files[0]).toBe('U01/01/01.txt');
    expect(files[files.length - 1]!.startsWith('U08/20/')).toBe(true);

    const users = t.getChild('user')!.toArray() as string[];
    const perUser = new Map<string, number>();
    for (const u of users) perUser.set(u, (perUser.get(u) ?? 0) + 1);
    expect([...perUser.keys()]).toEqual(['U01', 'U02', 'U03', 'U04', 'U05', 'U06', 'U07', 'U08']);
    for (const c of perUser.values()) expect(c).toBeGreaterThanOrEqual(400);
    for (const c of perUser.values()) expect(c).toBeLessThanOrEqual(429);

    const labels = t.getChild('label')!.toArray() as Int32Array;
    const perLabel = new Array<number>(20).fill(0);
    for (const l of labels) perLabel[l]! += 1;
    expect(Math.min(...perLabel)).toBeGreaterThanOrEqual(160);
    expect(Math.max(...perLabel)).toBeLessThanOrEqual(168);

    // Row 0 is U01/01/01.txt: its first step is the first row's last three columns.
    const lengths = t.getChild('length')!.toArray() as Int32Array;
    const values = t.getChild('values')!.data[0]!;
    const flat = values.children[0]!.values as Float32Array;
    const offsets = values.valueOffsets as Int32Array;
    expect(Array.from(flat.subarray(0, 3))).toEqual([Math.fround(1.532289), Math.fround(-0.919373), Math.fround(10.113108)]);
    expect(offsets[1]! - offsets[0]!).toBe(lengths[0]! * 3);
    expect(offsets[3251]).toBe(lengths.reduce((a, b) => a + b, 0) * 3);
    const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    expect(mean).toBeCloseTo(19.7, 1);

    const splits = t.getChild('split')!.toArray() as string[];
    expect(splits.filter((s) => s === 'train').length).toBe(2600);
  });

  test('same seed → byte-identical file (rebuilt from scratch); another seed → different file', async () => {
    const again = await run(deps, upstream, RANDOM);
    expect(again.cached).toBe(true);
    const firstBytes = readFileSync(deps.store.path(base.ref, base.table));
    rmSync(deps.store.path(base.ref), { recursive: true });
    const rebuilt = await run(deps, upstream, RANDOM);
    expect(rebuilt.cached).toBe(false);
    expect(readFileSync(deps.store.path(rebuilt.ref, rebuilt.table)).equals(firstBytes)).toBe(true);
    expect(rebuilt.ref).toEqual(base.ref);

    const other = await run(deps, upstream, { ...RANDOM, split: { kind: 'random', seed: 7, valid_fraction: 0.2 } });
    expect(other.ref.dir).not.toBe(base.ref.dir);
    expect(other.train).toBe(2600);
    expect(other.valid).toBe(651);
    const otherBytes = readFileSync(deps.store.path(other.ref, other.table));
    expect(otherBytes.equals(firstBytes)).toBe(false);
    // Only the split membership differs: same rows, same values.
    const a = tableFromIPC(firstBytes);
    const b = tableFromIPC(otherBytes);
    expect(b.getChild('file')!.toArray()).toEqual(a.getChild('file')!.toArray());
    expect(b.getChild('split')!.toArray()).not.toEqual(a.getChild('split')!.toArray());
  });

  test('by-user split: the named users are validation, everyone else trains', async () => {
    const r = await run(deps, upstream, { root: 'gestures-dataset', split: { kind: 'by-user', valid_users: ['U03', 'U07'] } });
    const t = readTable(deps, r);
    const users = t.getChild('user')!.toArray() as string[];
    const splits = t.getChild('split')!.toArray() as string[];
    users.forEach((u, i) => expect(splits[i]).toBe(u === 'U03' || u === 'U07' ? 'valid' : 'train'));
    expect(r.valid).toBe(users.filter((u) => u === 'U03' || u === 'U07').length);
    expect(r.train + r.valid).toBe(3251);
  });

  test('by-user split naming an unknown user fails, naming it', async () => {
    const err = await failure(run(deps, upstream, { root: 'gestures-dataset', split: { kind: 'by-user', valid_users: ['U01', 'U99'] } }));
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain('U99');
    expect(err.message).not.toMatch(/unknown users? U01/);
  });

  test('limit keeps a deterministic subset, split 80/20, with the full class count', async () => {
    const params: DatasetParams = { ...RANDOM, limit: 100 };
    const a = await run(deps, upstream, params);
    expect(a).toMatchObject({ sequences: 100, train: 80, valid: 20, classes: 20 });
    rmSync(deps.store.path(a.ref), { recursive: true });
    const b = await run(deps, upstream, params);
    expect(readFileSync(deps.store.path(b.ref, b.table)).equals(readFileSync(deps.store.path(a.ref, a.table)))).toBe(true);
  });
});

describe('malformed data', () => {
  let root: string;
  let deps: TestDeps;
  let counter = 0;
  beforeEach(() => {
    root = tempDir('malformed');
    deps = testDeps(root);
  });
  afterEach(() => removeDir(root));

  const row = (i: number): string => `${1000 + i} ${2000 + i} ${3000 + i} 0.${i} -1.5 9.81`;
  const good = (rows = 3): string => Array.from({ length: rows }, (_, i) => row(i)).join('\n') + '\n';
  const validTree = (): Record<string, string> => ({
    'U01/01/01.txt': good(),
    'U01/02/01.txt': good(4),
    'U02/01/01.txt': good(5),
    'U02/02/01.txt': good(),
    'U02/02/02.txt': good(),
  });

  /** An unpacked-archive look-alike, committed to the store as a download step would have left it. */
  async function fakeDownload(files: Record<string, string>, folders: string[] = []): Promise<DownloadResult> {
    const { ref } = await deps.store.getOrBuild({ type: 'fake-download', version: 1, params: { n: ++counter }, inputs: {} }, async (dir) => {
      const base = join(dir, 'unpacked/gestures-dataset');
      mkdirSync(base, { recursive: true });
      for (const f of folders) mkdirSync(join(base, f), { recursive: true });
      for (const [name, text] of Object.entries(files)) {
        mkdirSync(dirname(join(base, name)), { recursive: true });
        writeFileSync(join(base, name), text);
      }
      return {};
    });
    return {
      ref,
      cached: false,
      seconds: 0,
      archive: 'fake.zip',
      unpacked: 'unpacked',
      md5: '0'.repeat(32),
      sha256: String(counter).padStart(64, '0'),
      bytes: 0,
    };
  }

  async function malformed(files: Record<string, string>, folders: string[] = []): Promise<string> {
    const err = await failure(run(deps, await fakeDownload(files, folders), RANDOM));
    expect(err.nonRetryable).toBe(true);
    expect(err.type).toBe('MalformedData');
    return err.message;
  }

  test('a clean small tree works, ignoring info.txt, gestures.png and .DS_Store', async () => {
    const r = await run(
      deps,
      await fakeDownload({ ...validTree(), 'info.txt': 'about', 'gestures.png': 'png', '.DS_Store': 'x', 'U01/.DS_Store': 'x' }),
      RANDOM,
    );
    expect(r).toMatchObject({ sequences: 5, users: 2, classes: 2, train: 4, valid: 1, minLength: 3, maxLength: 5 });
  });

  test('non-numeric field: names file, line, field and what was found', async () => {
    const msg = await malformed({ ...validTree(), 'U01/02/01.txt': `${row(0)}\n1 2 3 abc -1.5 9.81\n` });
    expect(msg).toContain('U01/02/01.txt line 2, field 4');
    expect(msg).toContain('"abc"');
  });

  test('wrong number of columns: names file, line and the count', async () => {
    const msg = await malformed({ ...validTree(), 'U02/01/01.txt': `${row(0)}\n${row(1)}\n1 2 3 4 5\n` });
    expect(msg).toContain('U02/01/01.txt line 3');
    expect(msg).toContain('expected 6');
    expect(msg).toContain('found 5 fields');
  });

  test('empty file', async () => {
    const msg = await malformed({ ...validTree(), 'U01/01/01.txt': '' });
    expect(msg).toContain('U01/01/01.txt: empty file');
  });

  test('unexpected folder where a gesture folder is expected', async () => {
    const msg = await malformed({ ...validTree(), 'U01/extra/01.txt': good() });
    expect(msg).toContain('U01/extra/');
    expect(msg).toContain('gesture folder');
  });

  test('unexpected folder where a user folder is expected', async () => {
    const msg = await malformed(validTree(), ['backup']);
    expect(msg).toContain('backup/');
    expect(msg).toContain('user folder');
  });

  test('unexpected file among the sequences', async () => {
    const msg = await malformed({ ...validTree(), 'U02/02/notes.md': 'hello' });
    expect(msg).toContain('U02/02/notes.md');
    expect(msg).toContain('sequence file');
  });

  test('the declared root folder is missing', async () => {
    const err = await failure(run(deps, await fakeDownload(validTree()), { ...RANDOM, root: 'not-there' }));
    expect(err.type).toBe('MalformedData');
    expect(err.message).toContain('"not-there"');
    expect(err.message).toContain('gestures-dataset');
  });
});
