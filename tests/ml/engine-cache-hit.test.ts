import { dataset } from '../../activities/dataset';
import { download } from '../../activities/download';
import { padding } from '../../activities/padding';
import { train, trainParams } from '../../activities/train';
import type { PaddingResult, TrainResult } from '../../activities/types';
import { kernelAvailable } from '../../ml/kernel/load';
import { ARCHIVE, ARCHIVE_MD5, removeDir, tempDir, testDeps, type TestDeps } from '../data/helpers';

jest.setTimeout(5 * 60_000);

// Two workers that resolve `engine: auto` differently, on one machine: SWEEPS_KERNEL picks the kernel build.
const unlike = kernelAvailable('native') ? describe : describe.skip;

unlike('a cached trial that another engine computed', () => {
  let root: string;
  let deps: TestDeps;
  let padded: PaddingResult;
  const kernelBefore = process.env.SWEEPS_KERNEL;

  beforeAll(async () => {
    root = tempDir('engine-cache-hit');
    deps = testDeps(root);
    const dl = await download(
      { sweepId: 'test', step: 'download', params: { urls: [`file://${ARCHIVE}`], md5: ARCHIVE_MD5, unpack: true, max_unpacked_bytes: 1 << 30 }, inputs: {} },
      deps,
    );
    const ds = await dataset(
      {
        sweepId: 'test',
        step: 'dataset',
        params: { root: 'gestures-dataset', split: { kind: 'random', seed: 42, valid_fraction: 0.2 } },
        inputs: { download: dl },
      },
      deps,
    );
    padded = await padding({ sweepId: 'test', step: 'padding', params: { batch_size: 32 }, inputs: { dataset: ds } }, deps);
  });
  afterAll(() => {
    if (kernelBefore === undefined) delete process.env.SWEEPS_KERNEL;
    else process.env.SWEEPS_KERNEL = kernelBefore;
    removeDir(root);
  });

  const runTrial = (extra: Record<string, unknown> = {}): Promise<TrainResult> =>
    train(
      {
        sweepId: 'test',
        step: 'train',
        trial: 'gru_mean-h16-s1',
        params: trainParams.parse({ hidden: 16, epochs: 2, train_batches: 3, valid_batches: 2, ...extra }),
        inputs: { padding: padded },
      },
      deps,
    );

  test('is refused unless allow_engine_change, and then reported as such', async () => {
    process.env.SWEEPS_KERNEL = 'wasm';
    const first = await runTrial();
    expect(first.cached).toBe(false);
    expect(first.computedBy).toBe('fused (wasm kernel)');
    expect(first.timing?.stepCount).toBe(6);

    process.env.SWEEPS_KERNEL = 'native';
    await expect(runTrial()).rejects.toThrow(
      'its cached result (' + first.ref.dir + ') was computed by fused (wasm kernel), but this worker resolves engine auto to fused (native kernel)',
    );
    await expect(runTrial()).rejects.toThrow('allow_engine_change: true');

    // The same worker kind reuses it silently.
    process.env.SWEEPS_KERNEL = 'wasm';
    const again = await runTrial();
    expect(again.cached).toBe(true);
    expect(again.engineChange).toBeUndefined();
  });

  test('allowed, the cache hit carries the change', async () => {
    process.env.SWEEPS_KERNEL = 'wasm';
    const first = await runTrial({ allow_engine_change: true });
    process.env.SWEEPS_KERNEL = 'native';
    const hit = await runTrial({ allow_engine_change: true });
    expect(hit.cached).toBe(true);
    expect(hit.ref.dir).toBe(first.ref.dir);
    expect(hit.engineChange).toEqual({ from: 'fused (wasm kernel)', to: 'fused (native kernel)', cacheHit: true });
  });
});
