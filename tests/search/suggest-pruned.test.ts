import { next, type FinishedRun, type SearchState } from '../../activities/search';
import { trainParams, trainStep } from '../../activities/train';
import type { PlanSearch } from '../../pipeline/plan';

/** The suggestTrials activity with a pruner: rungs run with pause_at_epoch, poor trials paused, the best continued to the end. */

const search: PlanSearch = {
  sampler: 'random',
  seed: 11,
  trials: 9,
  metric: 'valid_acc',
  direction: 'maximize',
  space: { lr: { type: 'loguniform', low: 1e-4, high: 1e-1 } },
  grid: {},
  cells: [{}],
  with: { epochs: 9, hidden: 8 },
  prune: { rule: 'asha', metric: 'valid_acc', direction: 'maximize', grace_epochs: 1, reduction_factor: 3 },
};
const parse = (v: unknown) => trainParams.parse(v) as Record<string, unknown>;
const name = trainStep.trialId!.bind(trainStep) as (params: never, cell: Record<string, unknown>) => string;
/** A synthetic learning curve: the closer lr is to 1e-2, the higher it climbs. */
const curve = (lr: number, epochs: number) =>
  Array.from({ length: epochs }, (_, e) => ({ epoch: e + 1, valid_acc: (1 - Math.abs(Math.log10(lr) + 2) / 3) * (1 - 0.5 ** (e + 1)) }));

function run(concurrency: number) {
  let state: SearchState = { cells: [{ cell: {}, trials: [] }] };
  let finished: FinishedRun[] = [];
  const runs: Array<{ id: string; pauseAt: unknown; lr: number }> = [];
  for (let round = 0; round < 200; round++) {
    const out = next(state, { search, concurrency, finished }, parse, name);
    state = out.state;
    if (out.trials.length === 0) return { runs, state, best: out.best };
    runs.push(...out.trials.map((t) => ({ id: t.id, pauseAt: t.params.pause_at_epoch, lr: t.params.lr as number })));
    finished = out.trials.map((t) => {
      const to = (t.params.pause_at_epoch as number | undefined) ?? 9;
      const epochs = curve(t.params.lr as number, to);
      return { trial: t.id, value: Math.max(...epochs.map((m) => m.valid_acc)), epochs };
    });
  }
  throw new Error('did not finish');
}

describe('next (suggestTrials) with ASHA', () => {
  it('runs every trial to the first rung, pauses the poor ones and continues the best from their checkpoints', () => {
    const { runs, state, best } = run(3);
    const trials = state.cells[0]!.trials;
    expect(trials).toHaveLength(9);
    // Rungs at 1 and 3 epochs, the end at 9: each run names the epoch it trains to.
    expect(new Set(runs.map((r) => r.id.replace(/^.*-e/, '')))).toEqual(new Set(['1', '3', '9']));
    expect(runs.filter((r) => r.id.endsWith('-e1')).every((r) => r.pauseAt === 1)).toBe(true);
    expect(runs.filter((r) => r.id.endsWith('-e9')).every((r) => r.pauseAt === undefined)).toBe(true);
    const paused = trials.filter((t) => t.state === 'paused');
    const complete = trials.filter((t) => t.state === 'complete');
    expect(paused.length).toBeGreaterThan(0);
    expect(complete.length).toBeGreaterThan(0);
    expect(paused.length + complete.length).toBe(9);
    // Epochs spent: fewer than training all nine to the end.
    const spent = trials.reduce((n, t) => n + (t.epochs?.length ?? 0), 0);
    expect(spent).toBeLessThan(9 * 9);
    // The trial that reached the end is the best of the study, and its lr is the closest to 1e-2 among those.
    const closest = (ts: typeof trials) =>
      ts.reduce((a, t) => (Math.abs(Math.log10(t.params.lr as number) + 2) < Math.abs(Math.log10(a.params.lr as number) + 2) ? t : a));
    expect(best!.trial).toBe(closest(complete).trial);
    expect(closest(trials).state).toBe('complete');
  });

  it('makes the same runs for the same seed and results', () => {
    expect(run(3).runs).toEqual(run(3).runs);
  });
});
