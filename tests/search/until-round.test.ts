import { assessUntilRound } from '../../activities/until';
import type { UntilTrialOutcome } from '../../activities/types';
import type { PlanUntil } from '../../pipeline/plan';
import { assessPaired } from '../../search/until';

/** The decision after a round of seeds until sure (the assessUntil activity), on given accuracies. */

const rule: PlanUntil = {
  compare: 'pooling',
  baseline: 'last',
  confidence: 0.95,
  margin: 0.5,
  minSeeds: 2,
  maxSeeds: 10,
  roundSeeds: 1,
  seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
};
const trials = (pairs: Array<[number, number]>, variant = 'mean'): UntilTrialOutcome[] =>
  pairs.flatMap(([base, v], i) => [
    { variant: 'last', seed: i + 1, validAcc: base },
    { variant, seed: i + 1, validAcc: v },
  ]);

describe('assessUntilRound', () => {
  it('pairs by seed and measures the difference in percentage points', () => {
    const pairs: Array<[number, number]> = [
      [0.97, 0.985],
      [0.975, 0.99],
      [0.972, 0.984],
      [0.968, 0.98],
      [0.971, 0.987],
      [0.974, 0.986],
    ];
    const out = assessUntilRound({ step: 'train', rule, trials: trials(pairs) }, 2);
    const expected = assessPaired(
      pairs.map(([b, v]) => v * 100 - b * 100),
      { confidence: 0.95, margin: 0.5, maxSeeds: 10, minSeeds: 2 },
    );
    expect(out.comparisons).toHaveLength(1);
    expect(out.comparisons[0]).toMatchObject({ variant: 'mean', baseline: 'last', n: 6, decision: expected.decision, confidence: 0.95 });
    expect(out.comparisons[0]!.mean).toBeCloseTo((1.5 + 1.5 + 1.2 + 1.2 + 1.6 + 1.2) / 6, 10);
    expect(out.comparisons[0]!.low).toBeCloseTo(expected.low, 10);
    expect(out.comparisons[0]!.high).toBeCloseTo(expected.high, 10);
    expect(out.seeds).toEqual([1, 2, 3, 4, 5, 6]);
    expect(out.rounds).toBe(2);
    expect(out.rule).toContain("Lai's t confidence sequence");
    expect(out.rule).toContain('at most 10 seeds');
  });

  it('continues while the interval is unbounded, and records it as null (JSON has no infinity)', () => {
    const out = assessUntilRound({ step: 'train', rule, trials: trials([[0.9, 0.91]]) }, 1);
    expect(out.stop).toBe(false);
    expect(out.comparisons[0]).toMatchObject({ n: 1, low: null, high: null, decision: 'continue' });
    expect(JSON.parse(JSON.stringify(out))).toEqual(out);
    expect(out.reason).toMatch(/^continues: mean vs last: 1 seed pair/);
  });

  it('stops as different when the interval excludes 0', () => {
    const pairs = Array.from({ length: 8 }, (_, i): [number, number] => [0.9 + 0.001 * (i % 3), 0.93 + 0.001 * ((i + 1) % 3)]);
    const out = assessUntilRound({ step: 'train', rule, trials: trials(pairs) }, 7);
    expect(out.stop).toBe(true);
    expect(out.comparisons[0]!.decision).toBe('different');
    expect(out.comparisons[0]!.low).toBeGreaterThan(0);
  });

  it('stops at max_seeds undecided, and ignores a seed that ran for one variant only', () => {
    const pairs = Array.from({ length: 10 }, (_, i): [number, number] => [0.9, 0.9 + (i % 2 ? 0.05 : -0.05)]);
    const extra: UntilTrialOutcome = { variant: 'mean', seed: 11, validAcc: 0.5 };
    const out = assessUntilRound({ step: 'train', rule, trials: [...trials(pairs), extra] }, 9);
    expect(out.comparisons[0]).toMatchObject({ n: 10, decision: 'max-seeds' });
    expect(out.stop).toBe(true);
  });

  it('splits the error rate among several variants and stops only when every one is decided', () => {
    const three = { ...rule, baseline: 'last' };
    const decided = Array.from({ length: 6 }, (_, i): [number, number] => [0.9 + 0.001 * (i % 2), 0.95 + 0.001 * (i % 3)]);
    const open = Array.from({ length: 6 }, (_, i): [number, number] => [0.9 + 0.001 * (i % 2), 0.9 + (i % 2 ? 0.03 : -0.03)]);
    const all = [...trials(decided, 'mean'), ...trials(open, 'max').filter((t) => t.variant === 'max')];
    const out = assessUntilRound({ step: 'train', rule: three, trials: all }, 5);
    expect(out.comparisons.map((c) => [c.variant, c.confidence])).toEqual([
      ['mean', 0.975],
      ['max', 0.975],
    ]);
    expect(out.comparisons[0]!.decision).toBe('different');
    expect(out.comparisons[1]!.decision).toBe('continue');
    expect(out.stop).toBe(false);
  });
});
