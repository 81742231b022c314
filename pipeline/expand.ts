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

/** A trial's id from its matrix values, in the file's axis order: `pooling_mean-seed_1`. */
export function trialId(cell: Record<string, unknown>): string {
  const clean = (v: unknown) => String(v).replace(/[^A-Za-z0-9.]+/g, '_');
  return Object.keys(cell)
    .map((k) => `${clean(k)}_${clean(cell[k])}`)
    .join('-');
}
