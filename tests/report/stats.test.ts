import { mean, meanInterval, pairedComparison, pairsToExcludeZero, range, std, tCdf, tQuantile975 } from '../../ml/stats';

// Every expected value below is worked out by hand (closed forms of Student's t for 1, 2 and 4
// degrees of freedom), not taken from the code under test.

test('mean and the sample standard deviation (n − 1)', () => {
  // Deviations from 5: −3 −1 −1 −1 0 0 2 4 → squares sum to 32; 32 / 7.
  expect(mean([2, 4, 4, 4, 5, 5, 7, 9])).toBe(5);
  expect(std([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(Math.sqrt(32 / 7), 12);
  expect(std([3])).toBe(0);
  expect(mean([])).toBeNaN();
});

test("Student's t distribution function matches its closed forms", () => {
  // df 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/π.
  expect(tCdf(1, 1)).toBeCloseTo(0.75, 10);
  expect(tCdf(-3, 1)).toBeCloseTo(0.5 + Math.atan(-3) / Math.PI, 10);
  // df 2: F(t) = 1/2 + t / (2√(2 + t²)); at t = 2√3: 1/2 + 2√3 / (2√14).
  expect(tCdf(2 * Math.sqrt(3), 2)).toBeCloseTo(0.5 + (2 * Math.sqrt(3)) / (2 * Math.sqrt(14)), 10);
  // df 4: F(t) = 1/2 + (3/4)·x·(1 − x²/3) with x = t/√(4 + t²); t = −1.5 gives x = −0.6 → 0.104.
  expect(tCdf(-1.5, 4)).toBeCloseTo(0.104, 10);
});

test('95% quantiles of t come from the table, and approach 1.96 beyond it', () => {
  expect(tQuantile975(1)).toBe(12.706);
  expect(tQuantile975(2)).toBe(4.303);
  expect(tQuantile975(4)).toBe(2.776);
  expect(tQuantile975(31)).toBeCloseTo(2.0395, 2);
  expect(tQuantile975(0)).toBeNaN();
});

test('the 95% interval of a mean is mean ± t(n−1) · std / √n', () => {
  // [1, 2, 3]: mean 2, std 1, half-width 4.303 / √3 = 2.48434.
  const i = meanInterval([1, 2, 3]);
  expect(i).toMatchObject({ n: 3, mean: 2, std: 1 });
  expect(i.low).toBeCloseTo(2 - 4.303 / Math.sqrt(3), 10);
  expect(i.high).toBeCloseTo(2 + 4.303 / Math.sqrt(3), 10);
  // A single value has no spread to estimate: the interval collapses to it.
  expect(meanInterval([0.9])).toMatchObject({ n: 1, mean: 0.9, std: 0, low: 0.9, high: 0.9 });
});

test('a paired comparison gives the mean difference, its interval and the probability that the variant is better', () => {
  // Differences by seed 0.03, 0.02, 0.04: mean 0.03, std 0.01, standard error 0.01/√3,
  // t = 0.03 / (0.01/√3) = 3√3; df 2 → P(T ≤ 3√3) = 1/2 + 3√3 / (2√29) = 0.982451.
  const c = pairedComparison([0.03, 0.02, 0.04]);
  const se = 0.01 / Math.sqrt(3);
  expect(c.n).toBe(3);
  expect(c.mean).toBeCloseTo(0.03, 12);
  expect(c.std).toBeCloseTo(0.01, 12);
  expect(c.low).toBeCloseTo(0.03 - 4.303 * se, 10);
  expect(c.high).toBeCloseTo(0.03 + 4.303 * se, 10);
  expect(c.probabilityBetter).toBeCloseTo(0.5 + (3 * Math.sqrt(3)) / (2 * Math.sqrt(29)), 8);
  expect(c.pValueGreater).toBeCloseTo(1 - c.probabilityBetter, 12);
  expect(c.wins).toBe(3);
  expect(c.ties).toBe(0);
});

test('a variant that is worse gets a low probability of being better; ties are counted apart', () => {
  // −0.02, 0, −0.01: mean −0.01, std 0.01, t = −√3; df 2 → 1/2 − √3 / (2√5).
  const c = pairedComparison([-0.02, 0, -0.01]);
  expect(c.probabilityBetter).toBeCloseTo(0.5 - Math.sqrt(3) / (2 * Math.sqrt(5)), 8);
  expect(c.wins).toBe(0);
  expect(c.ties).toBe(1);
});

test('one pair gives no probability; identical differences give certainty', () => {
  expect(pairedComparison([0.05]).probabilityBetter).toBeNaN();
  expect(pairedComparison([0.01, 0.01]).probabilityBetter).toBe(1);
  expect(pairedComparison([-0.01, -0.01]).probabilityBetter).toBe(0);
});

test('pairs needed for the interval to exclude zero at the observed effect', () => {
  // mean 0.01, std 0.02: need t(n−1)/√n < 0.5; n = 17: 2.120/√17 = 0.514 (no), n = 18: 2.110/√18 = 0.497 (yes).
  expect(pairsToExcludeZero([-0.01, 0.01, 0.03])).toBe(18);
  expect(pairsToExcludeZero([0.01, 0.01])).toBeUndefined(); // no spread: nothing to plan
  expect(pairsToExcludeZero([0.02])).toBeUndefined();
  expect(pairsToExcludeZero([-0.01, 0.01])).toBeUndefined(); // no effect to find
});

test('range of values', () => {
  expect(range([0.3, 0.1, 0.2])).toEqual({ min: 0.1, max: 0.3 });
  expect(range([]).min).toBeNaN();
});
