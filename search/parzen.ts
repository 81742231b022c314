import type { ParamSpec, ParamValue } from './space';

/**
 * The Parzen estimator of TPE, as Optuna builds it (optuna/samplers/_tpe/parzen_estimator.py):
 * one kernel per observation plus a prior kernel, mixed with the observation weights. Numeric
 * parameters get truncated normal kernels (on the log scale for loguniform, discretised for int),
 * categorical ones a smoothed indicator. All arithmetic is plain double precision in a fixed order.
 */

const EPS = 1e-12;
const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

export interface ParzenOptions {
  /** Weight of the prior kernel (Optuna's prior_weight, 1.0). */
  priorWeight: number;
  /** Lower-bounds each bandwidth by range / min(100, 1 + kernels) (Optuna's consider_magic_clip). */
  magicClip: boolean;
  /** Lets the outermost kernels widen to reach the bounds (Optuna's consider_endpoints, off). */
  considerEndpoints: boolean;
}

type Dimension =
  | { kind: 'numeric'; low: number; high: number; step: number | null; mus: number[]; sigmas: number[]; logMass: number[] }
  | { kind: 'categorical'; probs: number[][] };

/** A parameter value on the scale the estimator works on: log for loguniform, an index for choice. */
export function toInternal(spec: ParamSpec, value: ParamValue): number {
  switch (spec.type) {
    case 'loguniform':
      return Math.log(value as number);
    case 'choice':
      return spec.values.findIndex((v) => v === value);
    default:
      return value as number;
  }
}

export function fromInternal(spec: ParamSpec, x: number): ParamValue {
  switch (spec.type) {
    case 'uniform':
      return Math.min(spec.high, Math.max(spec.low, x));
    case 'loguniform':
      return Math.min(spec.high, Math.max(spec.low, Math.exp(x)));
    case 'int':
      return x;
    case 'choice':
      return spec.values[x]!;
  }
}

/** Optuna's default_weights: equal weights, the oldest observations ramped down beyond 25. */
export function observationWeights(n: number): number[] {
  if (n < 25) return new Array<number>(n).fill(1);
  const ramp = n - 25;
  const out: number[] = [];
  for (let i = 0; i < ramp; i++) out.push(ramp === 1 ? 1 / n : 1 / n + (i * (1 - 1 / n)) / (ramp - 1));
  for (let i = 0; i < 25; i++) out.push(1);
  return out;
}

export class ParzenEstimator {
  readonly weights: number[];
  private readonly dims: Dimension[];

  /** `observations[i][d]`: observation i (oldest first) of dimension d, on the internal scale. */
  constructor(specs: readonly ParamSpec[], observations: readonly (readonly number[])[], options: ParzenOptions) {
    const n = observations.length;
    const raw = n === 0 ? [1] : [...observationWeights(n), options.priorWeight];
    const total = raw.reduce((a, b) => a + b, 0);
    this.weights = raw.map((w) => w / total);
    this.dims = specs.map((spec, d) =>
      buildDimension(
        spec,
        observations.map((o) => o[d]!),
        options,
      ),
    );
  }

  /** `size` points drawn from the mixture, on the internal scale. */
  sample(uniform: () => number, size: number): number[][] {
    const out: number[][] = [];
    for (let s = 0; s < size; s++) {
      const k = pickIndex(this.weights, uniform());
      out.push(this.dims.map((dim) => sampleKernel(dim, k, uniform)));
    }
    return out;
  }

  logPdf(point: readonly number[]): number {
    const terms = new Array<number>(this.weights.length);
    for (let k = 0; k < terms.length; k++) {
      let sum = Math.log(this.weights[k]!);
      for (let d = 0; d < this.dims.length; d++) sum += kernelLogPdf(this.dims[d]!, k, point[d]!);
      terms[k] = sum;
    }
    return logSumExp(terms);
  }
}

function buildDimension(spec: ParamSpec, obs: number[], options: ParzenOptions): Dimension {
  if (spec.type === 'choice') {
    const m = spec.values.length;
    if (obs.length === 0) return { kind: 'categorical', probs: [new Array<number>(m).fill(1 / m)] };
    const kernels = obs.length + 1;
    const rows = [...obs, -1].map((index) => {
      const row = new Array<number>(m).fill(options.priorWeight / kernels);
      if (index >= 0) row[index]! += 1;
      const sum = row.reduce((a, b) => a + b, 0);
      return row.map((p) => (sum === 0 ? p : p / sum));
    });
    return { kind: 'categorical', probs: rows };
  }
  const step = spec.type === 'int' ? spec.step : null;
  let low = spec.type === 'loguniform' ? Math.log(spec.low) : spec.low;
  let high = spec.type === 'loguniform' ? Math.log(spec.high) : spec.high;
  if (step !== null) {
    low -= step / 2;
    high += step / 2;
  }
  const mus = [...obs, 0.5 * (low + high)];
  const sigmas = [...bandwidths(obs, low, high, options), high - low];
  // Each kernel's mass inside the bounds, the normaliser of its truncation.
  const logMass = mus.map((mu, k) => Math.log(Math.max(normalMass((low - mu) / sigmas[k]!, (high - mu) / sigmas[k]!), EPS)));
  return { kind: 'numeric', low, high, step, mus, sigmas, logMass };
}

/** Each kernel as wide as the larger gap to its sorted neighbours (bounds included), then clipped. */
function bandwidths(mus: number[], low: number, high: number, options: ParzenOptions): number[] {
  const n = mus.length;
  if (n === 0) return [];
  const order = mus.map((_, i) => i).sort((a, b) => mus[a]! - mus[b]! || a - b);
  const sorted = [low, ...order.map((i) => mus[i]!), high];
  const sortedSigmas = order.map((_, j) => Math.max(sorted[j + 1]! - sorted[j]!, sorted[j + 2]! - sorted[j + 1]!));
  if (!options.considerEndpoints && sorted.length >= 4) {
    sortedSigmas[0] = sorted[2]! - sorted[1]!;
    sortedSigmas[n - 1] = sorted[n]! - sorted[n - 1]!;
  }
  const maxSigma = high - low;
  const minSigma = options.magicClip ? (high - low) / Math.min(100, 1 + (n + 1)) : EPS;
  const sigmas = new Array<number>(n);
  order.forEach((i, j) => {
    sigmas[i] = Math.min(maxSigma, Math.max(minSigma, sortedSigmas[j]!));
  });
  return sigmas;
}

function sampleKernel(dim: Dimension, k: number, uniform: () => number): number {
  if (dim.kind === 'categorical') return pickIndex(dim.probs[k]!, uniform());
  const x = truncatedNormal(dim.mus[k]!, dim.sigmas[k]!, dim.low, dim.high, uniform);
  if (dim.step === null) return x;
  // Round to the grid low+step/2, low+3step/2, …: back to an allowed integer.
  const lowValue = dim.low + dim.step / 2;
  const highValue = dim.high - dim.step / 2;
  return Math.min(highValue, Math.max(lowValue, lowValue + dim.step * Math.round((x - lowValue) / dim.step)));
}

function kernelLogPdf(dim: Dimension, k: number, x: number): number {
  if (dim.kind === 'categorical') return Math.log(Math.max(dim.probs[k]![x] ?? 0, EPS));
  const mu = dim.mus[k]!;
  const sigma = dim.sigmas[k]!;
  const logZ = dim.logMass[k]!;
  if (dim.step === null) {
    const z = (x - mu) / sigma;
    return -0.5 * z * z - LOG_SQRT_2PI - Math.log(sigma) - logZ;
  }
  const lo = (x - dim.step / 2 - mu) / sigma;
  const hi = (x + dim.step / 2 - mu) / sigma;
  return Math.log(Math.max(normalMass(lo, hi), EPS)) - logZ;
}

/** Rejection from the untruncated normal: every kernel's centre lies within its bounds, so at least ~1/3 of draws are kept. */
function truncatedNormal(mu: number, sigma: number, low: number, high: number, uniform: () => number): number {
  // A kernel built from a value outside the space would make this loop endless: fail loudly instead.
  if (!(mu >= low && mu <= high && sigma > 0)) throw new Error(`Parzen kernel N(${mu}, ${sigma}) lies outside [${low}, ${high}]`);
  for (;;) {
    // Box–Muller; 1 − u keeps the logarithm finite.
    const r = Math.sqrt(-2 * Math.log(1 - uniform()));
    const x = mu + sigma * r * Math.cos(2 * Math.PI * uniform());
    if (x >= low && x <= high) return x;
  }
}

/** P(a < Z < b) for a standard normal Z, computed on the tail that keeps precision. */
export function normalMass(a: number, b: number): number {
  if (a >= 0) return 0.5 * (erfc(a / Math.SQRT2) - erfc(b / Math.SQRT2));
  if (b <= 0) return 0.5 * (erfc(-b / Math.SQRT2) - erfc(-a / Math.SQRT2));
  return 1 - 0.5 * erfc(-a / Math.SQRT2) - 0.5 * erfc(b / Math.SQRT2);
}

/** Complementary error function: the Chebyshev-fitted rational form of Numerical Recipes (relative error < 1.2e-7). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -1.26551223 +
    t *
      (1.00002368 +
        t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const r = t * Math.exp(-z * z + poly);
  return x >= 0 ? r : 2 - r;
}

function pickIndex(weights: readonly number[], u: number): number {
  let acc = 0;
  for (let i = 0; i < weights.length; i++) {
    acc += weights[i]!;
    if (u < acc) return i;
  }
  return weights.length - 1;
}

function logSumExp(xs: readonly number[]): number {
  let max = -Infinity;
  for (const x of xs) if (x > max) max = x;
  if (!Number.isFinite(max)) return max;
  let sum = 0;
  for (const x of xs) sum += Math.exp(x - max);
  return max + Math.log(sum);
}
