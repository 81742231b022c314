/**
 * Deterministic randomness for training. Every draw is a pure function of the
 * stream it comes from, and every stream is named by (seed, purpose, epoch[, batch]),
 * so a run resumed at epoch k draws exactly the numbers an uninterrupted run draws.
 * Nothing here keeps global state.
 */

/** murmur3's 32-bit finaliser: full avalanche, so neighbouring keys give unrelated streams. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

function mixWord(h: number, word: number): number {
  return fmix32((h ^ word) + 0x9e3779b9 + Math.imul(h, 31));
}

/**
 * Hashes a stream key. Numbers hash by their float64 bits and strings by UTF-16 units,
 * each behind a type tag and a length, so `1`, `'1'` and `[1, 0]` are different keys.
 */
export function streamKey(parts: ReadonlyArray<number | string>): number {
  let h = 0x6a09e667;
  for (const part of parts) {
    if (typeof part === 'number') {
      f64[0] = part === 0 ? 0 : part; // -0 and 0 name the same stream
      h = mixWord(h, 0x4e554d42);
      h = mixWord(h, f64Words[0] ?? 0);
      h = mixWord(h, f64Words[1] ?? 0);
    } else {
      h = mixWord(h, 0x53545247);
      h = mixWord(h, part.length);
      for (let i = 0; i < part.length; i++) h = mixWord(h, part.charCodeAt(i));
    }
  }
  return h;
}

/** A splitmix32 generator: one 32-bit add and a finaliser per draw. */
export class Rng {
  private state: number;

  constructor(state: number) {
    this.state = state >>> 0;
  }

  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  }

  /** Uniform in [0, 1) on a 2^-24 grid, so every value is exact in float32 too. */
  uniform(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }

  /** Uniform in [lo, hi). */
  uniformRange(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [0, n), without modulo bias (rejection sampling). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
      throw new RangeError(`Rng.int: n must be an integer in 1..2^32, got ${n}`);
    }
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Fills `out` with U(lo, hi) draws, in index order. */
  fillUniform(out: Float32Array, lo: number, hi: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.uniformRange(lo, hi);
    return out;
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<A extends ArrayLike<unknown>>(items: A): A {
    const a = items as unknown as { [i: number]: unknown };
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}

/** The generator of one named stream, e.g. `rngFor(seed, 'train-order', epoch)`. */
export function rngFor(seed: number, ...stream: Array<number | string>): Rng {
  return new Rng(streamKey([seed, ...stream]));
}
