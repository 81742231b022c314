/**
 * Trials in one sweep. Measured on a sweep of 200 tiny trials (bench/sweep-history.ts): each trial
 * adds about 9 events (1.3 KB of its result) to the sweep's history, and the sweep's result and the
 * report's input carry every trial's result (about 1.3 KB each). At 1,000 trials that is about
 * 9,000 events (Temporal warns at 10,240) and payloads of about 1.3 MB (it rejects 2 MB). Larger
 * studies: draw a `sample:` or split them into several sweeps.
 */
export const MAX_TRIALS = 1000;

/** Largest grid a `sample:` draws from (its draw shuffles one index per cell: 4 MB here). */
export const MAX_SAMPLED_GRID = 1_000_000;

/** Every combination of the axes' values, in the order the file lists them (last axis fastest). */
export function grid(matrix: Record<string, readonly unknown[]>): Record<string, unknown>[] {
  let cells: Record<string, unknown>[] = [{}];
  for (const [axis, values] of Object.entries(matrix)) {
    cells = cells.flatMap((cell) => values.map((v) => ({ ...cell, [axis]: v })));
  }
  return cells;
}

/** The cell at `index` of the grid (last axis fastest), without building the grid. */
export function cellAt(matrix: Record<string, readonly unknown[]>, index: number): Record<string, unknown> {
  const axes = Object.entries(matrix);
  const cell: Record<string, unknown> = {};
  for (let a = axes.length - 1; a >= 0; a--) {
    const [axis, values] = axes[a]!;
    cell[axis] = values[index % values.length];
    index = Math.floor(index / values.length);
  }
  // In the file's axis order, as grid() gives it.
  return Object.fromEntries(axes.map(([axis]) => [axis, cell[axis]]));
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * A seeded draw of `count` cells without replacement (xorshift32 + Fisher–Yates: the same seed
 * draws the same trials on every machine), keeping the grid's order so trial ids stay readable.
 */
export function sampleCells<T>(cells: readonly T[], count: number, seed: number): T[] {
  if (count >= cells.length) return [...cells];
  let state = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const index = cells.map((_, i) => i);
  for (let i = index.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [index[i], index[j]] = [index[j]!, index[i]!];
  }
  return index
    .slice(0, count)
    .sort((a, b) => a - b)
    .map((i) => cells[i]!);
}

/** A trial's id from its matrix values, in the file's axis order: `lr_0.001-seed_1`. */
export function trialId(cell: Record<string, unknown>): string {
  const clean = (v: unknown) => String(v).replace(/[^A-Za-z0-9.]+/g, '_');
  return Object.keys(cell)
    .map((k) => `${clean(k)}_${clean(cell[k])}`)
    .join('-');
}
