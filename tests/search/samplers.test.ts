import { HaltonSampler } from '../../search/halton';
import type { Direction, Sampler, TrialResult } from '../../search/sampler';
import { createSampler, suggest, studyStateSchema, type SamplerConfig, type StudyState } from '../../search/samplers';
import { contains, type Params, type SearchSpace } from '../../search/space';
import { splitTrials, TpeSampler } from '../../search/tpe';
import { syntheticAccuracy, tuningSpace } from './synthetic';

/** Runs a sequential study of `budget` trials on the synthetic objective; returns its trials. */
function runStudy(sampler: Sampler, budget: number, batch = 1): TrialResult[] {
  const trials: TrialResult[] = [];
  while (trials.length < budget) {
    const suggestions = sampler.suggest(trials, Math.min(batch, budget - trials.length));
    for (const params of suggestions) trials.push({ number: trials.length, params, state: 'complete', value: syntheticAccuracy(params) });
  }
  return trials;
}

const best = (trials: TrialResult[]) => Math.max(...trials.map((t) => t.value!));
const configs: SamplerConfig[] = [
  { algorithm: 'random', seed: 7 },
  { algorithm: 'halton', seed: 7 },
  { algorithm: 'tpe', seed: 7, n_startup_trials: 10, n_ei_candidates: 24, prior_weight: 1, multivariate: false, constant_liar: true },
  { algorithm: 'tpe', seed: 7, n_startup_trials: 10, n_ei_candidates: 24, prior_weight: 1, multivariate: true, constant_liar: true },
];

describe.each(configs)('$algorithm sampler (multivariate: $multivariate)', (config) => {
  const make = (seed = config.seed) => createSampler(tuningSpace, { ...config, seed }, 'maximize');

  it('suggests the same parameters, bit for bit, from the same seed and the same results', () => {
    const first = runStudy(make(), 30, 3);
    const second = runStudy(make(), 30, 3);
    expect(JSON.stringify(second)).toBe(JSON.stringify(first));
  });

  it('suggests different parameters from another seed', () => {
    expect(runStudy(make(8), 20).map((t) => t.params)).not.toEqual(runStudy(make(), 20).map((t) => t.params));
  });

  it('keeps every suggestion inside the space (bounds, int steps, listed choices)', () => {
    for (const t of runStudy(make(), 40, 4)) {
      for (const [name, spec] of Object.entries(tuningSpace)) expect({ name, ok: contains(spec, t.params[name]) }).toEqual({ name, ok: true });
    }
  });

  it('gives the same suggestions from its state after a JSON round trip (the state lives in an artifact)', () => {
    const trials = runStudy(make(), 15);
    const state: StudyState = { space: tuningSpace, sampler: config, direction: 'maximize', trials };
    const restored = studyStateSchema.parse(JSON.parse(JSON.stringify(state)));
    expect(suggest(restored, 4)).toEqual(suggest(state, 4));
  });
});

describe('TPE', () => {
  it('beats random search on a synthetic tuning problem over a fixed budget of 40 trials, averaged over 12 seeds', () => {
    const seeds = Array.from({ length: 12 }, (_, i) => i + 1);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const regret = (algorithm: 'random' | 'tpe') =>
      mean(seeds.map((seed) => 0.99 - best(runStudy(createSampler(tuningSpace, { ...configs[algorithm === 'tpe' ? 2 : 0]!, seed }, 'maximize'), 40))));
    const [tpe, random] = [regret('tpe'), regret('random')];
    // Mean regret (distance to the optimum 0.99): TPE's must be clearly below random's.
    expect(tpe).toBeLessThan(0.7 * random);
  });

  it('suggests what random search would for its start-up trials, then uses the model', () => {
    const tpe = createSampler(tuningSpace, configs[2]!, 'maximize');
    const random = createSampler(tuningSpace, { algorithm: 'random', seed: 7 }, 'maximize');
    const trials = runStudy(tpe, 12);
    expect(trials.slice(0, 10).map((t) => t.params)).toEqual(runStudy(random, 10).map((t) => t.params));
    expect(trials[10]!.params).not.toEqual(runStudy(random, 11)[10]!.params);
  });

  it('spreads a batch of parallel suggestions apart by treating trials in flight as bad (constant liar)', () => {
    const space: SearchSpace = { x: { type: 'uniform', low: 0, high: 1 } };
    const history: TrialResult[] = Array.from({ length: 20 }, (_, i) => {
      const x = (i + 0.5) / 20;
      return { number: i, params: { x }, state: 'complete', value: -((x - 0.3) ** 2) };
    });
    const spread = (constantLiar: boolean) => {
      const xs = new TpeSampler(space, 3, 'maximize', { constantLiar }).suggest(history, 6).map((p) => p.x as number);
      return Math.max(...xs) - Math.min(...xs);
    };
    expect(spread(true)).toBeGreaterThan(spread(false));
  });

  it('splits finished trials as Optuna does: best complete first, then pruned by progress, running always above', () => {
    const trial = (number: number, state: TrialResult['state'], value?: number, intermediate?: number[]): TrialResult => ({
      number,
      params: {},
      state,
      value,
      intermediate,
    });
    const trials = [
      trial(0, 'complete', 0.5),
      trial(1, 'pruned', undefined, [0.2, 0.9]),
      trial(2, 'complete', 0.9),
      trial(3, 'running'),
      trial(4, 'pruned', undefined, [0.95]),
      trial(5, 'pruned', undefined, [0.1, 0.3]),
    ];
    const numbers = ([below, above]: [TrialResult[], TrialResult[]]) => [below.map((t) => t.number), above.map((t) => t.number)];
    expect(numbers(splitTrials(trials, 1, 'maximize'))).toEqual([[2], [0, 1, 3, 4, 5]]);
    // Two epochs beat one, whatever the values; among equals the better last value wins.
    expect(numbers(splitTrials(trials, 4, 'maximize'))).toEqual([
      [0, 1, 2, 5],
      [3, 4],
    ]);
    expect(numbers(splitTrials(trials, 1, 'minimize'))).toEqual([[0], [1, 2, 3, 4, 5]]);
  });

  it('concentrates its suggestions near the optimum of a one-dimensional log-scale problem', () => {
    const space: SearchSpace = { lr: { type: 'loguniform', low: 1e-6, high: 1 } };
    const sampler = new TpeSampler(space, 11, 'minimize' as Direction);
    const trials: TrialResult[] = [];
    for (let i = 0; i < 60; i++) {
      const [params] = sampler.suggest(trials, 1) as [Params];
      trials.push({ number: i, params, state: 'complete', value: Math.abs(Math.log10(params.lr as number) + 3) });
    }
    // Within half a decade of the optimum 1e-3: random search expects 20 · (1 / 6) ≈ 3.3 of the last 20.
    const late = trials.slice(40).map((t) => t.value!);
    expect(late.filter((v) => v < 0.5).length).toBeGreaterThanOrEqual(8);
  });
});

describe('scrambled Halton', () => {
  it('puts exactly one of its first 36 points in each cell of a 4 × 9 grid (bases 2 and 3)', () => {
    const halton = new HaltonSampler({ a: { type: 'uniform', low: 0, high: 1 }, b: { type: 'uniform', low: 0, high: 1 } }, 5);
    const cells = new Set<string>();
    for (let i = 0; i < 36; i++) cells.add(`${Math.floor(halton.coordinate(i, 0) * 4)},${Math.floor(halton.coordinate(i, 1) * 9)}`);
    expect(cells.size).toBe(36);
  });

  it('scrambles differently with another seed', () => {
    const space: SearchSpace = { a: { type: 'uniform', low: 0, high: 1 } };
    expect(new HaltonSampler(space, 1).coordinate(3, 0)).not.toBe(new HaltonSampler(space, 2).coordinate(3, 0));
  });
});

describe('TPE on imperfect records', () => {
  it('ranks a diverged (NaN) trial last and leaves out trials recorded under another space', () => {
    const space: SearchSpace = { x: { type: 'uniform', low: 0, high: 1 } };
    const trials: TrialResult[] = Array.from({ length: 12 }, (_, i) => ({ number: i, params: { x: i / 12 }, state: 'complete', value: i === 3 ? NaN : i }));
    expect(splitTrials(trials, 2, 'maximize')[0].map((t) => t.number)).toEqual([10, 11]);
    expect(splitTrials(trials, 2, 'minimize')[0].map((t) => t.number)).toEqual([0, 1]);
    // Both records are outside the space (x out of range; x missing): both left out, so they weigh the same.
    const outOfRange: TrialResult = { number: 12, params: { x: 5 }, state: 'complete', value: 100 };
    const missing: TrialResult = { number: 12, params: { y: 0.5 }, state: 'complete', value: 100 };
    const next = (extra: TrialResult) => new TpeSampler(space, 1, 'maximize').suggest([...trials, extra], 3);
    expect(next(outOfRange)).toEqual(next(missing));
    expect(next(outOfRange).every((p) => contains(space.x!, p.x))).toBe(true);
  });
});
