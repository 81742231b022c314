import type { StepType } from './steps';

/** Every combination of the axes' values, in the order the file lists them (last axis fastest). */
export function grid(matrix: Record<string, readonly unknown[]>): Record<string, unknown>[] {
  let cells: Record<string, unknown>[] = [{}];
  for (const [axis, values] of Object.entries(matrix)) {
    cells = cells.flatMap((cell) => values.map((v) => ({ ...cell, [axis]: v })));
  }
  return cells;
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

/** `gru_mean-h64-s1` for training trials (the names people use); `key-value` pairs otherwise. */
export function trialId(uses: StepType, params: Record<string, unknown>, cell: Record<string, unknown>): string {
  const clean = (v: unknown) => String(v).replace(/[^A-Za-z0-9.]+/g, '_');
  if (uses === 'train') {
    const extra = Object.keys(cell)
      .filter((k) => !['pooling', 'hidden', 'seed'].includes(k))
      .sort()
      .map((k) => `${k}${clean(cell[k])}`);
    return [`gru_${clean(params.pooling)}`, `h${clean(params.hidden)}`, ...extra, `s${clean(params.seed)}`].join('-');
  }
  return Object.keys(cell)
    .sort()
    .map((k) => `${k}${clean(cell[k])}`)
    .join('-');
}
