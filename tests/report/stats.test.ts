import { holmAdjust, mean, meanInterval, pairedComparison, pairsToExcludeZero, range, std, tCdf, tQuantile, tQuantile975 } from '../../ml/stats';

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

// 97.5% points of t: closed forms for df 1, 2 and 4; the rest computed with mpmath at 30 digits
// (findroot on betainc), not by the code under test.
const T975: Array<[number, number]> = [
  [1, Math.tan(0.475 * Math.PI)], // Cauchy: tan(π (p − ½))
  [2, 0.95 / Math.sqrt(2 * 0.975 * 0.025)], // (2p − 1) / √(2p(1 − p))
  [3, 3.18244630528371],
  [4, 2.77644510519779],
  [5, 2.57058183563632],
  [7, 2.36462425159279],
  [10, 2.22813885198627],
  [30, 2.04227245630124],
  [31, 2.03951344639641],
  [100, 1.98397151852355],
  [1000, 1.96233908082641],
  [20000, 1.96008260515814],
  [1e5, 1.95998770753461],
  [1e7, 1.95996422176721],
  [1e9, 1.95996398691233],
];

test.each(T975)('the 97.5%% point of t with %p degrees of freedom is exact to 1e-6', (df, expected) => {
  expect(Math.abs(tQuantile975(df) - expected)).toBeLessThan(1e-6);
});

test('other quantiles of t, fractional df, the lower tail and the median (mpmath at 30 digits)', () => {
  expect(tQuantile(0.995, 3)).toBeCloseTo(5.84090930973336, 9);
  expect(tQuantile(0.9, 12)).toBeCloseTo(1.35621733402321, 9);
  expect(tQuantile(0.6, 2.5)).toBeCloseTo(0.281459512748548, 9);
  expect(tQuantile(0.999, 50)).toBeCloseTo(3.26140905579832, 9);
  expect(tQuantile(0.025, 7)).toBeCloseTo(-2.36462425159279, 9);
  expect(tQuantile(0.5, 9)).toBe(0);
  // Infinite df is the normal distribution: z(0.975) = 1.95996398454005.
  expect(Math.abs(tQuantile975(Infinity) - 1.95996398454005)).toBeLessThan(1e-6);
});

test('a quantile is the inverse of the distribution function', () => {
  for (const df of [1, 3, 8.5, 40, 600]) for (const p of [0.001, 0.2, 0.75, 0.99]) expect(tCdf(tQuantile(p, df), df)).toBeCloseTo(p, 12);
});

test('no quantile outside (0, 1) or without degrees of freedom', () => {
  expect(tQuantile975(0)).toBeNaN();
  expect(tQuantile(1, 5)).toBeNaN();
  expect(tQuantile(0, 5)).toBeNaN();
});

test("Holm's adjustment: ascending p-values times m, m − 1, …, kept non-decreasing, capped at 1, in the given order", () => {
  // Sorted: 0.01 × 4 = 0.04, 0.02 × 3 = 0.06, 0.03 × 2 = 0.06, 0.5 × 1 = 0.5.
  expect(holmAdjust([0.03, 0.5, 0.01, 0.02])).toEqual([expect.closeTo(0.06, 12), 0.5, expect.closeTo(0.04, 12), expect.closeTo(0.06, 12)]);
  // 0.015 × 1 would be below the step before (0.01 × 2 = 0.02): raised to keep the order.
  expect(holmAdjust([0.015, 0.01])).toEqual([expect.closeTo(0.02, 12), expect.closeTo(0.02, 12)]);
  expect(holmAdjust([0.6, 0.7])).toEqual([1, 1]);
  expect(holmAdjust([0.02])).toEqual([0.02]);
  expect(holmAdjust([])).toEqual([]);
});

// t(0.975, 2) in closed form.
const T2 = 0.95 / Math.sqrt(2 * 0.975 * 0.025);

test('the 95% interval of a mean is mean ± t(n−1) · std / √n', () => {
  // [1, 2, 3]: mean 2, std 1, half-width 4.30265 / √3 = 2.48414.
  const i = meanInterval([1, 2, 3]);
  expect(i).toMatchObject({ n: 3, mean: 2, std: 1 });
  expect(i.low).toBeCloseTo(2 - T2 / Math.sqrt(3), 10);
  expect(i.high).toBeCloseTo(2 + T2 / Math.sqrt(3), 10);
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
  expect(c.low).toBeCloseTo(0.03 - T2 * se, 10);
  expect(c.high).toBeCloseTo(0.03 + T2 * se, 10);
  expect(c.probabilityBetter).toBeCloseTo(0.5 + (3 * Math.sqrt(3)) / (2 * Math.sqrt(29)), 8);
  expect(c.pValueGreater).toBeCloseTo(1 - c.probabilityBetter, 12);
  expect(c.pValueTwoSided).toBeCloseTo(2 * c.pValueGreater, 12);
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
  // mean 0.01, std 0.02: need t(n−1)/√n < 0.5; n = 17: 2.1199/√17 = 0.514 (no), n = 18: 2.1098/√18 = 0.497 (yes).
  expect(pairsToExcludeZero([-0.01, 0.01, 0.03])).toBe(18);
  expect(pairsToExcludeZero([0.01, 0.01])).toBeUndefined(); // no spread: nothing to plan
  expect(pairsToExcludeZero([0.02])).toBeUndefined();
  expect(pairsToExcludeZero([-0.01, 0.01])).toBeUndefined(); // no effect to find
});

test('range of values', () => {
  expect(range([0.3, 0.1, 0.2])).toEqual({ min: 0.1, max: 0.3 });
  expect(range([]).min).toBeNaN();
});
