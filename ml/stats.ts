/** Small-sample statistics for comparing trials across seeds. Plain functions, tested by hand values. */

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n − 1); 0 for a single value. */
export function std(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/**
 * The p-quantile of Student's t with `df` degrees of freedom: the t with tCdf(t, df) = p, found by
 * Newton's method on the exact distribution function, kept inside a bracket that bisection
 * shrinks whenever a Newton step would leave it. Exact to far better than 1e-6 for every df > 0
 * (tests/report/stats.test.ts compares it with values computed at 30 digits).
 */
export function tQuantile(p: number, df: number): number {
  if (!(df > 0) || !(p > 0 && p < 1)) return NaN;
  if (p === 0.5) return 0;
  if (p < 0.5) return -tQuantile(1 - p, df);
  // Beyond 1e8 degrees of freedom t differs from its normal limit by less than (z³ + z) / 4e8,
  // under 1e-6 up to z = 7 (p = 1 − 1e-12): the quantile at 1e8 stands for all larger df.
  const v = Math.min(df, 1e8);
  let lo = 0;
  let hi = 1;
  while (tCdf(hi, v) < p) {
    lo = hi;
    hi *= 2;
  }
  let t = (lo + hi) / 2;
  for (let i = 0; i < 200; i++) {
    const f = tCdf(t, v) - p;
    if (f === 0) return t;
    if (f < 0) lo = t;
    else hi = t;
    const step = t - f / tDensity(t, v);
    const next = step > lo && step < hi ? step : (lo + hi) / 2;
    if (Math.abs(next - t) <= 1e-14 * Math.max(1, Math.abs(t))) return next;
    t = next;
  }
  return t;
}

/** The two-sided 95% quantile of t (the 97.5% point). */
export function tQuantile975(df: number): number {
  return tQuantile(0.975, df);
}

/** Density of Student's t. */
export function tDensity(t: number, df: number): number {
  return Math.exp(logGamma((df + 1) / 2) - logGamma(df / 2) - 0.5 * Math.log(df * Math.PI) - ((df + 1) / 2) * Math.log1p((t * t) / df));
}

export interface Interval {
  n: number;
  mean: number;
  std: number;
  /** 95% confidence interval of the mean (t-based); equal to the mean when n < 2. */
  low: number;
  high: number;
}

export function meanInterval(xs: readonly number[]): Interval {
  const m = mean(xs);
  const s = std(xs);
  const half = xs.length >= 2 ? tQuantile975(xs.length - 1) * (s / Math.sqrt(xs.length)) : 0;
  return { n: xs.length, mean: m, std: s, low: m - half, high: m + half };
}

/** Probability that Student's t with `df` degrees of freedom is below `t` (regularised incomplete beta). */
export function tCdf(t: number, df: number): number {
  // x = df / (df + t²) and 1 − x are both formed directly: for large df, x is close to 1 and
  // 1 − x computed by subtraction would lose the digits the tail depends on.
  const x = df / (df + t * t);
  const y = (t * t) / (df + t * t);
  const tail = 0.5 * incompleteBeta(x, y, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** Regularised incomplete beta I_x(a, b), with y = 1 − x given separately for precision. */
function incompleteBeta(x: number, y: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (y <= 0) return 1;
  const lbeta = minusLogBeta(a, b);
  const logX = x > 0.5 ? Math.log1p(-y) : Math.log(x);
  const logY = y > 0.5 ? Math.log1p(-x) : Math.log(y);
  const front = Math.exp(logX * a + logY * b + lbeta);
  // The continued fraction converges fast only on one side of the mean; use symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (front * betaFraction(x, a, b)) / a;
  return 1 - (front * betaFraction(y, b, a)) / b;
}

function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-30;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  // Convergence takes about √(a + b) terms near the mean (large df): allow for it.
  const terms = 200 + Math.ceil(20 * Math.sqrt(a + b));
  for (let m = 1; m <= terms; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** −ln B(a, b) = ln Γ(a + b) − ln Γ(a) − ln Γ(b). */
function minusLogBeta(a: number, b: number): number {
  // For t, one argument is ½; with the other large, ln Γ(a + ½) − ln Γ(a) by subtraction loses
  // digits, so its asymptotic series is used instead (next term O(a⁻⁵)).
  const big = Math.max(a, b);
  if (Math.min(a, b) === 0.5 && big > 1e4) {
    return 0.5 * Math.log(big) - 1 / (8 * big) + 1 / (192 * big ** 3) - logGamma(0.5);
  }
  return logGamma(a + b) - logGamma(a) - logGamma(b);
}

function logGamma(z: number): number {
  // Lanczos approximation (g = 7, n = 9), accurate to about 1e-15 for z > 0.
  const g = 7;
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - logGamma(1 - z);
  z -= 1;
  let x = c[0]!;
  for (let i = 1; i < g + 2; i++) x += c[i]! / (z + i);
  const t = z + g + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(x);
}

export interface PairedComparison extends Interval {
  /** Seeds (pairs) where the variant beat the baseline, and where the two were equal. */
  wins: number;
  ties: number;
  /** One-sided probability, under a paired t model, that the true difference is ≤ 0. */
  pValueGreater: number;
  /**
   * Probability that the variant is truly better (mean difference > 0) given these pairs. With a
   * flat prior on the mean and scale of the differences, the mean's posterior is Student's t around
   * the sample mean, so this is 1 − pValueGreater: the same model, read as the plain-words
   * statement a reader wants ("97% likely to be better"). NaN below two pairs.
   */
  probabilityBetter: number;
  /** Two-sided p-value of "no difference" under the same model: below 0.05 exactly when the 95% interval excludes zero. */
  pValueTwoSided: number;
}

/** Paired comparison of a variant to a baseline: differences (variant − baseline) by seed. */
export function pairedComparison(differences: readonly number[]): PairedComparison {
  const interval = meanInterval(differences);
  const wins = differences.filter((d) => d > 0).length;
  const ties = differences.filter((d) => d === 0).length;
  let p = NaN;
  if (differences.length >= 2) {
    // Identical differences leave no spread to model: the evidence is as certain as it gets.
    if (interval.std === 0) p = interval.mean > 0 ? 0 : interval.mean < 0 ? 1 : 0.5;
    else p = 1 - tCdf(interval.mean / (interval.std / Math.sqrt(differences.length)), differences.length - 1);
  }
  return { ...interval, wins, ties, pValueGreater: p, probabilityBetter: 1 - p, pValueTwoSided: Math.min(1, 2 * Math.min(p, 1 - p)) };
}

/**
 * Holm's step-down adjustment of p-values for several tests at once (here: several variants each
 * against the same baseline). Sorted ascending, the i-th smallest of m is multiplied by m − i, and
 * the adjusted values are made non-decreasing in that order; each is capped at 1. Rejecting where
 * the adjusted p is below α keeps the chance of any false "better" at or below α. Returned in the
 * order given.
 */
export function holmAdjust(pValues: readonly number[]): number[] {
  const m = pValues.length;
  const order = pValues.map((p, i) => ({ p, i })).sort((a, b) => a.p - b.p);
  const adjusted = new Array<number>(m);
  let running = 0;
  order.forEach(({ p, i }, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    adjusted[i] = running;
  });
  return adjusted;
}

/**
 * Roughly how many pairs it would take for the 95% interval to exclude zero if the observed mean
 * difference and spread were the truth: the smallest n with t(n−1) · std / √n < |mean|. A planning
 * hint for "run more seeds", not a power analysis; undefined when there is no spread or no effect
 * to resolve, or when more than `limit` pairs would be needed.
 */
export function pairsToExcludeZero(differences: readonly number[], limit = 1000): number | undefined {
  if (differences.length < 2) return undefined;
  const m = Math.abs(mean(differences));
  const s = std(differences);
  if (s === 0 || m === 0) return undefined;
  for (let n = 2; n <= limit; n++) if (tQuantile975(n - 1) * (s / Math.sqrt(n)) < m) return n;
  return undefined;
}

/** Smallest and largest value; NaN for none. */
export function range(xs: readonly number[]): { min: number; max: number } {
  return xs.length === 0 ? { min: NaN, max: NaN } : { min: Math.min(...xs), max: Math.max(...xs) };
}
