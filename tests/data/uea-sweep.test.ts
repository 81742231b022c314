import { join } from 'node:path';
import type { DatasetResult, DownloadResult, PaddingResult, TrainResult } from '../../activities/types';
import type { SweepResult } from '../../workflows/sweep';
import { repoRoot } from '../helpers/fixtures';
import { runCli, useTestServer } from '../helpers/processes';
import { describeIfAvailable } from '../helpers/required';
import { SKTIME_WHEEL, sktimeMissing } from './helpers';

jest.setTimeout(10 * 60_000);

/**
 * The UEA study as a user runs it — `sweep pipelines/uea-pooling.yaml --param dataset=<Name>
 * --data <zip>` — on a real Temporal server, with a real UEA dataset: JapaneseVowels from the
 * sktime wheel, read through the download step (no digest declared: computed and recorded), the
 * UEA reader and the archive's split, and trained with the model shape taken from the data.
 * Smaller than the study (two poolings, one seed, eight epochs) so that it runs in a minute.
 */
describeIfAvailable('the UEA pooling study on JapaneseVowels, on a real Temporal server', 'the sktime wheel', sktimeMissing, () => {
  const stack = useTestServer('sweeps-uea-');
  let result: SweepResult;

  beforeAll(async () => {
    const run = await runCli(
      [
        'sweep',
        join(repoRoot, 'pipelines', 'uea-pooling.yaml'),
        '--param',
        'dataset=JapaneseVowels',
        '--data',
        SKTIME_WHEEL,
        '--set',
        'steps.train.matrix.pooling=[last, mean]',
        '--set',
        'steps.train.matrix.seed=[1]',
        '--set',
        'steps.train.with.epochs=8',
        '--json',
      ],
      { ...stack.server.env, SWEEPS_TRAIN_SLOTS: '2' },
    );
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    result = JSON.parse(run.stdout) as SweepResult;
  });

  it('downloads the local copy without a declared digest: computed, and recorded in the result', () => {
    const download = result.outputs.download as DownloadResult;
    expect(download.digest).toBe('computed');
    expect(download.sha256).toBe('dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae');
  });

  it("reads JapaneseVowels with the archive's split: 12 features, 9 classes, 270 / 370", () => {
    expect(result.outputs.dataset as DatasetResult).toMatchObject({ features: 12, classes: 9, train: 270, valid: 370, minLength: 7, maxLength: 29 });
    expect(result.outputs.padding as PaddingResult).toMatchObject({ features: 12, classes: 9, maxLength: 29 });
  });

  it('trains both variants on the data’s shape and learns: above 0.2 after eight epochs, where chance is 1 in 9', () => {
    const trials = result.outputs.train as TrainResult[];
    expect(trials.map((t) => [t.params.pooling, t.epochsRun])).toEqual([
      ['last', 8],
      ['mean', 8],
    ]);
    for (const t of trials) expect(t.best.valid_acc).toBeGreaterThan(0.2);
  });
});
