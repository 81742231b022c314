import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { LocalArtifactStore } from '../../artifacts/local-store';
import { ArtifactCorrupt, writeFileAtomic } from '../../artifacts/store';
import { dataset } from '../../activities/dataset';
import { download } from '../../activities/download';
import { padding } from '../../activities/padding';
import { train } from '../../activities/train';
import { datasetParams } from '../../activities/dataset';
import { downloadParams } from '../../activities/download';
import { paddingParams } from '../../activities/padding';
import { trainParams } from '../../activities/train';
import { ARCHIVE, ARCHIVE_MD5, testDeps } from '../data/helpers';

const identity = (params: unknown) => ({ type: 'unit', version: 1, params, inputs: {} });

describe('the content-addressed artifact store', () => {
  let root: string;
  let store: LocalArtifactStore;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'store-'));
    store = new LocalArtifactStore(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const build = (text: string) => async (dir: string) => {
    writeFileSync(join(dir, 'out.txt'), text);
    mkdirSync(join(dir, 'nested'));
    writeFileSync(join(dir, 'nested', 'more.txt'), `${text}!`);
    return { length: text.length };
  };

  it('builds once, then returns the committed result without building again', async () => {
    let builds = 0;
    const counted = async (dir: string) => {
      builds++;
      return build('hello')(dir);
    };
    const first = await store.getOrBuild(identity({ a: 1 }), counted);
    const second = await store.getOrBuild(identity({ a: 1 }), counted);
    expect(builds).toBe(1);
    expect([first.cached, second.cached]).toEqual([false, true]);
    expect(second.ref).toEqual(first.ref);
    expect(second.result).toEqual({ length: 5 });
    expect(readFileSync(store.path(first.ref, 'nested/more.txt'), 'utf8')).toBe('hello!');
  });

  it('derives the location from the identity: key order does not matter, values do', async () => {
    const a = await store.getOrBuild(identity({ x: 1, y: 2 }), build('a'));
    const b = await store.getOrBuild({ inputs: {}, version: 1, params: { y: 2, x: 1 }, type: 'unit' }, build('b'));
    const c = await store.getOrBuild(identity({ x: 1, y: 3 }), build('c'));
    expect(b.ref.dir).toBe(a.ref.dir);
    expect(b.cached).toBe(true);
    expect(c.ref.dir).not.toBe(a.ref.dir);
  });

  it('keeps the file list out of the reference: refs stay small however many files an artifact has', async () => {
    const many = await store.getOrBuild(identity('many'), async (dir) => {
      for (let i = 0; i < 500; i++) writeFileSync(join(dir, `f${i}.txt`), String(i));
      return {};
    });
    expect(JSON.stringify(many.ref).length).toBeLessThan(200);
    expect(Object.keys(await store.files(many.ref))).toHaveLength(500);
  });

  it('detects a truncated file by its digest, moves the artifact aside and rebuilds it', async () => {
    const first = await store.getOrBuild(identity('t'), build('precious content'));
    truncateSync(store.path(first.ref, 'out.txt'), 3);
    await expect(store.verify(first.ref)).rejects.toThrow(ArtifactCorrupt);
    await expect(store.verifyFile(first.ref, 'out.txt')).rejects.toThrow(/out.txt has sha256 .* expected/);

    const again = await store.getOrBuild(identity('t'), build('precious content'));
    expect(again.cached).toBe(false);
    expect(readFileSync(store.path(again.ref, 'out.txt'), 'utf8')).toBe('precious content');
    expect(readdirSync(join(root, '.corrupt'))).toHaveLength(1);
  });

  it('detects a damaged manifest (a changed result) by its seal: never returned, rebuilt', async () => {
    const first = await store.getOrBuild(identity('m'), build('content'));
    const manifestPath = store.path(first.ref, 'manifest.json');
    writeFileSync(manifestPath, readFileSync(manifestPath, 'utf8').replace('"length": 7', '"length": 9'));
    await expect(store.verify(first.ref)).rejects.toThrow(/its manifest its content does not match its seal/);

    const again = await store.getOrBuild(identity('m'), build('content'));
    expect({ cached: again.cached, result: again.result }).toEqual({ cached: false, result: { length: 7 } });
    expect(readdirSync(join(root, '.corrupt'))).toHaveLength(1);
  });

  it('sets aside a folder without a manifest (it can only be damaged) instead of being blocked by it', async () => {
    const first = await store.getOrBuild(identity('n'), build('content'));
    rmSync(store.path(first.ref, 'manifest.json'));
    const again = await store.getOrBuild(identity('n'), build('content'));
    expect(again.cached).toBe(false);
    expect(again.ref).toEqual(first.ref);
    await store.verify(again.ref);
    expect(readdirSync(join(root, '.corrupt'))).toHaveLength(1);
  });

  it('leaves nothing behind when a build fails', async () => {
    await expect(
      store.getOrBuild(identity('fails'), async (dir) => {
        writeFileSync(join(dir, 'half.txt'), 'half');
        throw new Error('the step broke');
      }),
    ).rejects.toThrow('the step broke');
    expect(await store.lookup(identity('fails'))).toBeUndefined();
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });

  it('removes build folders a killed process left behind, once they are old enough that no live build can own them', async () => {
    const old = await store.tempDir('killed');
    const recent = await store.tempDir('running');
    const dayAgo = new Date(Date.now() - 25 * 3600_000);
    utimesSync(old, dayAgo, dayAgo);
    expect(await store.removeAbandonedBuilds()).toEqual([basename(old)]);
    expect([existsSync(old), existsSync(recent)]).toEqual([false, true]);
  });

  it('lets two builders race for the same identity: both get the one committed artifact', async () => {
    const [a, b] = await Promise.all([store.getOrBuild(identity('race'), build('same')), store.getOrBuild(identity('race'), build('same'))]);
    expect(a.ref).toEqual(b.ref);
    expect([a.cached, b.cached].sort()).toEqual([false, true]);
  });

  it('refuses paths that escape the store', () => {
    expect(() => store.path('unit/abc', '../../../etc/passwd')).toThrow(/escapes the artifact root/);
  });

  it('fails clearly when the store root is not a folder', async () => {
    const file = join(root, 'not-a-folder');
    writeFileSync(file, 'x');
    await expect(new LocalArtifactStore(file).getOrBuild(identity('x'), build('x'))).rejects.toThrow(/ENOTDIR|not a directory/);
  });

  it('writes files atomically: a reader sees the old or the new content, never a part', async () => {
    const path = join(root, 'state.json');
    await writeFileAtomic(path, 'old');
    await writeFileAtomic(path, 'new');
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(readdirSync(root).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

// Real full disks: small tmpfs mounts (needs root, as on the CI machines).
const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;

/** A tmpfs of `size` for the enclosing describe block; the returned function gives its mount point. */
function smallDisk(size: string): () => string {
  const mountPoint = mkdtempSync(join(tmpdir(), 'small-disk-'));
  let mounted = false;
  beforeAll(() => {
    mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint]).status === 0;
  });
  afterAll(() => {
    if (mounted) spawnSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });
  return () => {
    if (!mounted) throw new Error(`could not mount a tmpfs on ${mountPoint}`);
    return mountPoint;
  };
}

(canMount ? describe : describe.skip)('on a full disk', () => {
  const disk = smallDisk('1m');

  it('reports ENOSPC and leaves neither a committed artifact nor temp files', async () => {
    const mountPoint = disk();
    const store = new LocalArtifactStore(mountPoint);
    await expect(
      store.getOrBuild(identity('big'), async (dir) => {
        writeFileSync(join(dir, 'big.bin'), Buffer.alloc(2 * 1024 * 1024, 1));
        return {};
      }),
    ).rejects.toThrow(/ENOSPC/);
    expect(await store.lookup(identity('big'))).toBeUndefined();
    expect(existsSync(join(mountPoint, 'unit'))).toBe(false);
    expect(readdirSync(join(mountPoint, '.tmp'))).toEqual([]);
  });
});

(canMount ? describe : describe.skip)('training onto a disk that fills up', () => {
  const disk = smallDisk('16m');

  it('fails the trial at once (no retries into a full disk), naming the folder, the setting and the way back', async () => {
    const mountPoint = disk();
    const deps = testDeps(mountPoint);
    const base = { sweepId: 'sweep-full-00000000', inputs: {} };
    const dl = await download({ ...base, step: 'download', params: downloadParams.parse({ urls: [`file://${ARCHIVE}`], md5: ARCHIVE_MD5 }) }, deps);
    const ds = await dataset({ ...base, step: 'dataset', params: datasetParams.parse({ limit: 200 }), inputs: { download: dl } }, deps);
    const padded = await padding({ ...base, step: 'padding', params: paddingParams.parse({}), inputs: { dataset: ds } }, deps);
    // Whatever space is left goes to a filler: the first checkpoint cannot be written.
    const filler = openSync(join(mountPoint, 'filler'), 'w');
    try {
      for (;;) writeSync(filler, Buffer.alloc(64 * 1024, 1));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      closeSync(filler);
    }
    const params = trainParams.parse({ pooling: 'mean', seed: 1, epochs: 2, hidden: 8, train_batches: 2, valid_batches: 1, backend: 'wasm' });
    const attempt = train({ ...base, step: 'train', trial: 'gru_mean-h8-s1', params, inputs: { padding: padded } }, deps);
    await expect(attempt).rejects.toMatchObject({ nonRetryable: true, type: 'StorageError' });
    await expect(attempt).rejects.toThrow(
      /trial gru_mean-h8-s1: cannot write .* into .*ENOSPC.*the disk is full: free space, or point SWEEPS_ARTIFACTS at a larger disk.*sweeps resume sweep-full-00000000/,
    );
    expect(existsSync(join(mountPoint, 'train'))).toBe(false);
  });
});
