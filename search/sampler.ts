import type { Params } from './space';

/**
 * What a sampler sees and returns. A sampler is a pure function of its configuration and the
 * study's trials so far: it keeps nothing between calls, so the whole state it needs is the
 * JSON-serialisable {@link StudyState} (kept in an artifact by the engine), and the same seed and
 * the same trials give the same suggestions, bit for bit, on a replay or after a resume.
 */

export type Direction = 'maximize' | 'minimize';

/** One trial of a study as the sampler knows it. */
export interface TrialResult {
  /** Position in the study: trials are numbered 0, 1, 2, … in the order they were suggested. */
  number: number;
  params: Params;
  /**
   * `running`: suggested and not finished (constant liar treats it as a bad result);
   * `complete`: trained to the end, `value` is its objective;
   * `pruned`: paused by a pruner (perhaps to be continued later), `intermediate` holds its curve.
   */
  state: 'running' | 'complete' | 'pruned';
  value?: number;
  /** The objective after each epoch, epoch 1 first. */
  intermediate?: number[];
}

export interface Sampler {
  /**
   * The parameters of the next `count` trials (numbered `trials.length`, `trials.length + 1`, …),
   * for trials that will run at the same time.
   */
  suggest(trials: readonly TrialResult[], count: number): Params[];
}

/** Checks the numbering every sampler relies on (suggestion n is a function of trials 0..n-1). */
export function checkTrials(trials: readonly TrialResult[]): void {
  trials.forEach((t, i) => {
    if (t.number !== i) throw new Error(`trials[${i}] has number ${t.number}; trials must be numbered 0, 1, 2, … in suggestion order`);
    if (t.state === 'complete' && typeof t.value !== 'number') throw new Error(`trials[${i}] is complete but has no value`);
  });
}

/** 53 random bits in [0, 1), from two 32-bit draws: finer than Rng.uniform's 2^-24 grid. */
export function uniform53(next: () => number): number {
  const hi = next() >>> 5;
  const lo = next() >>> 6;
  return (hi * 67108864 + lo) / 9007199254740992;
}
