import { next, type SearchState } from '../../activities/search';
import { trainParams, trainStep } from '../../activities/train';
import type { PlanSearch } from '../../pipeline/plan';

/** The pure part of the suggestTrials activity: rounds of suggestions per grid cell, results recorded, the same every time. */

const search: PlanSearch = {
  sampler: 'tpe',
  seed: 3,
  nStartupTrials: 2,
  trials: 5,
  metric: 'valid_acc',
  direction: 'maximize',
  space: { lr: { type: 'loguniform', low: 1e-4, high: 1e-2 } },
  grid: { pooling: ['last', 'mean'] },
  cells: [{ pooling: 'last' }, { pooling: 'mean' }],
  with: { epochs: 2, hidden: 8 },
};
const parse = (v: unknown) => trainParams.parse(v) as Record<string, unknown>;
const name = trainStep.trialId!.bind(trainStep) as (params: never, cell: Record<string, unknown>) => string;
const start: SearchState = { cells: search.cells.map((cell) => ({ cell, trials: [] })) };
/** A synthetic objective with its peak at lr = 1e-3. */
const objective = (lr: number) => 1 - Math.abs(Math.log10(lr) + 3) / 2;

function run(concurrency: number) {
  let state = start;
  let finished: Array<{ trial: string; value: number }> = [];
  const rounds: string[][] = [];
  for (;;) {
    const out = next(state, { search, concurrency, finished }, parse, name);
    state = out.state;
    if (out.trials.length === 0) return { rounds, state, best: out.best };
    rounds.push(out.trials.map((t) => `${t.id} lr=${(t.params.lr as number).toPrecision(4)}`));
    finished = out.trials.map((t) => ({ trial: t.id, value: objective(t.params.lr as number) }));
  }
}

describe('next (suggestTrials)', () => {
  it('spends each cell’s budget in rounds of concurrency trials, every trial parsed as the step type’s parameters', () => {
    const { rounds, state } = run(2);
    expect(rounds).toHaveLength(5);
    expect(rounds.flat()).toHaveLength(10);
    expect(rounds[0]!.map((r) => r.split(' ')[0])).toEqual(['gru_last-h8-s1-t0', 'gru_mean-h8-s1-t0']);
    for (const c of state.cells) {
      expect(c.trials.map((t) => t.number)).toEqual([0, 1, 2, 3, 4]);
      expect(c.trials.every((t) => t.state === 'complete' && (t.params.lr as number) >= 1e-4 && (t.params.lr as number) <= 1e-2)).toBe(true);
    }
  });

  it('gives the same suggestions for the same seed and results, and others for another seed', () => {
    expect(run(2).rounds).toEqual(run(2).rounds);
    const other = { ...search, seed: 4 };
    const first = next(start, { search: other, concurrency: 2, finished: [] }, parse).trials.map((t) => t.params.lr);
    expect(first).not.toEqual(next(start, { search, concurrency: 2, finished: [] }, parse).trials.map((t) => t.params.lr));
  });

  it('reports the best trial so far and labels trials by their cell and suggestion', () => {
    const { best } = run(4);
    expect(best!.value).toBeGreaterThan(0.5);
    const first = next(start, { search, concurrency: 4, finished: [] }, parse).trials;
    expect(first).toHaveLength(4);
    expect(first[0]!.label).toMatch(/^pooling=last lr=\d/);
    expect(first[0]!.cell).toEqual({ pooling: 'last', lr: first[0]!.params.lr });
    expect(first[0]!.seed).toBe(1);
  });
});
