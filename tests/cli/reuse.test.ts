import type { TrainResult } from '../../activities/types';
import { describeReuse, reuseOf } from '../../cli/reuse';
import { planFromText } from '../../pipeline/load';
import type { SweepResult } from '../../workflows/sweep';
import { tinyPipeline } from '../helpers/pipelines';

/** What a finished sweep tells its user about reused and recomputed work (the measure of a resume). */
const plan = planFromText(tinyPipeline('reuse', '    matrix: { pooling: [last, mean], seed: [1, 2] }'), 'reuse.yaml');

const step = (cached: boolean) => ({ cached });
const trial = (id: string, cached: boolean, resumedFromEpoch: number, epochsRun: number) =>
  ({ trial: id, cached, resumedFromEpoch, epochsRun }) as unknown as TrainResult;

function result(trials: TrainResult[], cachedSteps: boolean[]): SweepResult {
  const [download, dataset, padding, report] = cachedSteps.map(step);
  return { sweepId: 'sweep-reuse-00000000', pipeline: 'reuse', outputs: { download, dataset, padding, train: trials, report } };
}

test('a resumed sweep: finished trials are reused, one continues from its checkpoint, one starts over', () => {
  const r = reuseOf(
    plan,
    result(
      [
        trial('gru_last-h8-s1', true, 0, 30),
        trial('gru_last-h8-s2', true, 0, 30),
        trial('gru_mean-h8-s1', false, 12, 30),
        trial('gru_mean-h8-s2', false, 0, 25),
      ],
      [true, true, true, false],
    ),
  );
  expect(r).toEqual({ steps: { total: 4, reused: 3 }, trials: { total: 4, reused: 2, resumed: 1, fresh: 1 }, epochsTrained: 18 + 25 });
  expect(describeReuse(r)).toBe('reused 3 of 4 steps and 2 of 4 trials; trained 2 trials (1 from a checkpoint), 43 epochs');
});

test('a sweep run again after it finished recomputes nothing', () => {
  const trials = ['gru_last-h8-s1', 'gru_last-h8-s2', 'gru_mean-h8-s1', 'gru_mean-h8-s2'].map((id) => trial(id, true, 0, 30));
  expect(describeReuse(reuseOf(plan, result(trials, [true, true, true, true])))).toBe('reused 4 of 4 steps and 4 of 4 trials; trained nothing');
});

test('a first run reuses nothing', () => {
  const trials = ['gru_last-h8-s1', 'gru_last-h8-s2', 'gru_mean-h8-s1', 'gru_mean-h8-s2'].map((id) => trial(id, false, 0, 1));
  expect(describeReuse(reuseOf(plan, result(trials, [false, false, false, false])))).toBe('reused 0 of 4 steps and 0 of 4 trials; trained 4 trials, 4 epochs');
});
