import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import {
  appendTrialResults,
  isStoredTrialResults,
  readTrialResults,
  RESULTS_FILE,
  sealTrialResults,
  withTrialResults,
  type StoredTrialResults,
  type TrialResultPages,
} from '../../activities/trial-results';
import type { ActivityDeps } from '../../activities/deps';
import type { TrialResult } from '../../activities/types';
import { LocalArtifactStore } from '../../artifacts/local-store';
import { DEFAULT_BLOB_LIMIT, inlineBytesFor, pagesOf } from '../../workflows/step-results';

/** A large step's trial results in the artifact store: pages, one sealed file, read back checked. */

const result = (i: number, cached = false): TrialResult =>
  ({
    ref: { dir: `train/${String(i).padStart(32, '0')}`, digest: 'd'.repeat(64) },
    cached,
    seconds: i,
    best: { valid_acc: i / 100 },
    epochsRun: 1,
    trial: `t${i}`,
  }) as TrialResult;

describe('pages of results (pure)', () => {
  it('splits results into consecutive pages of at most the given bytes, in order', () => {
    const items = ['a', 'b', 'c', 'd', 'e'];
    expect(pagesOf(items, [4, 4, 4, 4, 4], 8)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    expect(pagesOf(items, [4, 4, 4, 4, 4], 100)).toEqual([items]);
    expect(pagesOf([], [], 8)).toEqual([]);
  });

  it('gives a result larger than a page a page of its own', () => {
    expect(pagesOf(['a', 'big', 'b'], [2, 50, 2], 8)).toEqual([['a'], ['big'], ['b']]);
  });

  it('keeps results inline up to a quarter of the blob limit: 512 KiB for the default 2 MiB', () => {
    expect(inlineBytesFor()).toBe(512 * 1024);
    expect(inlineBytesFor(DEFAULT_BLOB_LIMIT)).toBe(512 * 1024);
    expect(inlineBytesFor(160 * 1024)).toBe(40 * 1024);
    // A limit too small to be real still leaves room for a result.
    expect(inlineBytesFor(100)).toBe(1024);
  });
});

describe('trial results in a local artifact store', () => {
  let root: string;
  let deps: ActivityDeps;
  const where = { sweepId: 'sweep-big-00000000', step: 'train' };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sweeps-trial-results-'));
    deps = { store: new LocalArtifactStore(root), logger: pino({ level: 'silent' }), dataRoots: [] };
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  async function stored(pages: TrialResult[][]): Promise<StoredTrialResults> {
    let previous: TrialResultPages | undefined;
    for (const results of pages) previous = await appendTrialResults({ ...where, ...(previous ? { previous } : {}), results }, deps);
    return sealTrialResults({ ...where, pages: previous! }, deps);
  }

  it('seals every page, first to last, into one results file the step output refers to', async () => {
    const all = Array.from({ length: 7 }, (_, i) => result(i));
    const output = await stored([all.slice(0, 3), all.slice(3, 6), all.slice(6)]);
    expect(output).toMatchObject({ file: RESULTS_FILE, count: 7, cached: false });
    expect(isStoredTrialResults(output)).toBe(true);
    expect(await readTrialResults(deps.store, output)).toEqual(all);
    expect(JSON.parse(readFileSync(await deps.store.localPath(output.trialResults, RESULTS_FILE), 'utf8'))).toEqual(all);
  });

  it('is cached only when every trial was a cache hit', async () => {
    expect((await stored([[result(1, true)], [result(2, true)]])).cached).toBe(true);
    expect((await stored([[result(1, true)], [result(2, false)]])).cached).toBe(false);
  });

  it('writes a retried page to the same artifact (a retry of the activity changes nothing)', async () => {
    const first = await appendTrialResults({ ...where, results: [result(1), result(2)] }, deps);
    const again = await appendTrialResults({ ...where, results: [result(1), result(2)] }, deps);
    expect(again).toEqual(first);
    const next = await appendTrialResults({ ...where, previous: first, results: [result(3)] }, deps);
    expect(next.lastPage.dir).not.toBe(first.lastPage.dir);
    expect(next.count).toBe(3);
  });

  it('refuses a damaged results file, naming it, without retries', async () => {
    const output = await stored([[result(1), result(2)]]);
    const file = await deps.store.localPath(output.trialResults, RESULTS_FILE);
    writeFileSync(file, JSON.stringify([result(1), { ...result(2), best: { valid_acc: 0.99 } }]));
    const err = (await readTrialResults(deps.store, output, 'step train').then(
      () => undefined,
      (e: unknown) => e,
    )) as { message: string; nonRetryable: boolean; type: string };
    expect(err).toMatchObject({ nonRetryable: true, type: 'ArtifactCorrupt' });
    expect(err.message).toContain(`step train: trial results ${output.trialResults.dir}/${RESULTS_FILE}`);
  });

  it('resolves stored outputs among step outputs and leaves every other output as it is', async () => {
    const output = await stored([[result(1)], [result(2)]]);
    const padding = { ref: { dir: 'padding/x', digest: 'y' }, cached: true, seconds: 0, table: 'padded.arrow' };
    const inline = [result(3)];
    expect(await withTrialResults(deps.store, { padding, grid: inline, search: output })).toEqual({ padding, grid: inline, search: [result(1), result(2)] });
  });

  it('tells a stored output from an inline array and from other step results', () => {
    expect(isStoredTrialResults([result(1)])).toBe(false);
    expect(isStoredTrialResults({ ref: { dir: 'report/x', digest: 'y' }, cached: false, seconds: 1, verdict: 'v', files: {} })).toBe(false);
    expect(isStoredTrialResults(undefined)).toBe(false);
  });
});
