import { rngFor } from '../ml/rng';
import { checkTrials, type Sampler, type TrialResult } from './sampler';
import { fromUnit, paramNames, type Params, type SearchSpace } from './space';

/**
 * Scrambled Halton points: quasi-random suggestions that fill the space more evenly than random
 * ones. Dimension d is the radical inverse of the trial number in the d-th prime base, with each
 * digit position passed through its own seeded permutation of the digits. Permuting digits keeps
 * Halton's stratification (the first b1^k1 · b2^k2 points put exactly one point in each box of
 * that grid) while breaking the correlations plain Halton has between high bases.
 */
export class HaltonSampler implements Sampler {
  private readonly bases: number[];
  private readonly permutations: Int32Array[][];

  constructor(
    private readonly space: SearchSpace,
    seed: number,
  ) {
    const names = paramNames(space);
    this.bases = firstPrimes(names.length);
    // Enough digit positions to resolve a double: base^-digits < 2^-53.
    this.permutations = this.bases.map((base, d) =>
      Array.from({ length: Math.ceil(53 / Math.log2(base)) }, (_, j) => rngFor(seed, 'halton', d, j).permutation(base)),
    );
  }

  suggest(trials: readonly TrialResult[], count: number): Params[] {
    checkTrials(trials);
    return Array.from({ length: count }, (_, i) => this.paramsOf(trials.length + i));
  }

  paramsOf(number: number): Params {
    const params: Params = {};
    paramNames(this.space).forEach((name, d) => {
      params[name] = fromUnit(this.space[name]!, this.coordinate(number, d));
    });
    return params;
  }

  /** Coordinate d of point `index`, in [0, 1). */
  coordinate(index: number, d: number): number {
    const base = this.bases[d]!;
    const perms = this.permutations[d]!;
    let rest = index;
    let scale = 1 / base;
    let u = 0;
    // Trailing zero digits are permuted too, so every position contributes.
    for (const perm of perms) {
      u += perm[rest % base]! * scale;
      rest = Math.floor(rest / base);
      scale /= base;
    }
    return Math.min(u, 1 - Number.EPSILON);
  }
}

export function firstPrimes(count: number): number[] {
  const primes: number[] = [];
  for (let n = 2; primes.length < count; n++) if (primes.every((p) => n % p !== 0)) primes.push(n);
  return primes;
}
