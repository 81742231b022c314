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

// Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069,
  2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function tQuantile975(df: number): number {
  if (df < 1) return NaN;
  if (df <= 30) return T975[df - 1]!;
  // Beyond the table the quantile approaches the normal one; this expansion is within 1e-3.
  return 1.96 + 2.4 / df;
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
  const x = df / (df + t * t);
  const tail = 0.5 * incompleteBeta(x, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lbeta = logGamma(a + b) - logGamma(a) - logGamma(b);
  const front = Math.exp(Math.log(x) * a + Math.log(1 - x) * b + lbeta);
  // The continued fraction converges fast only on one side of the mean; use symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (front * betaFraction(x, a, b)) / a;
  return 1 - (front * betaFraction(1 - x, b, a)) / b;
}

function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-30;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 200; m++) {
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
    if (Math.abs(delta - 1) < 1e-12) break;
  }
  return h;
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
  return { ...interval, wins, ties, pValueGreater: p, probabilityBetter: 1 - p };
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
