/**
 * How numbers are shown, in one place: the verdict, report.md and report.html format every number
 * with these functions, so the three files can only agree (tests/report checks that they do).
 */

const MINUS = '−';

// A value that rounds to zero is shown without a sign: "+0.00" or "−0.00" would claim a direction.
const signed = (x: number, digits: number) => {
  const shown = Math.abs(x).toFixed(digits);
  return Number(shown) === 0 ? shown : `${x > 0 ? '+' : MINUS}${shown}`;
};
const plain = (x: number, digits: number) =>
  x < 0 && Number(Math.abs(x).toFixed(digits)) !== 0 ? `${MINUS}${Math.abs(x).toFixed(digits)}` : Math.abs(x).toFixed(digits);

/** Accuracy as a percentage: 0.97125 → "97.13%". */
export const pct = (x: number) => (Number.isFinite(x) ? `${plain(x * 100, 2)}%` : '–');

/** Mean ± std of accuracies: "97.13 ± 0.40%". */
export const pctSpread = (mean: number, std: number) => (Number.isFinite(mean) ? `${plain(mean * 100, 2)} ± ${(std * 100).toFixed(2)}%` : '–');

/** An interval of accuracies: "96.63 to 97.61%". */
export const pctRange = (low: number, high: number) => (Number.isFinite(low) ? `${plain(low * 100, 2)} to ${plain(high * 100, 2)}%` : '–');

/** A difference of accuracies in percentage points: +0.012 → "+1.20 points". */
export const points = (x: number) => (Number.isFinite(x) ? `${signed(x * 100, 2)} points` : '–');

export const pointsRange = (low: number, high: number) => (Number.isFinite(low) ? `${signed(low * 100, 2)} to ${signed(high * 100, 2)} points` : '–');

/** A probability in words-friendly form: 0.9734 → "97.3%". */
export const probability = (p: number) => (Number.isFinite(p) ? `${(p * 100).toFixed(1)}%` : '–');

/** A p-value: 0.0123 → "0.012", tiny ones as "< 0.001". */
export const pValue = (p: number) => (Number.isFinite(p) ? (p < 0.001 ? '< 0.001' : p.toFixed(3)) : '–');

export const loss = (x: number) => (Number.isFinite(x) ? plain(x, 4) : '–');

export const lossSpread = (mean: number, std: number) => (Number.isFinite(mean) ? `${plain(mean, 4)} ± ${std.toFixed(4)}` : '–');

export const epoch = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** Durations: "8.4 s", "312 s". */
export const seconds = (x: number) => (Number.isFinite(x) ? (x < 10 ? `${x.toFixed(1)} s` : `${x.toFixed(0)} s`) : '–');

export const count = (part: number, whole: number) => `${part} of ${whole}`;

/** A cell of matrix values: "hidden=64, layers=2"; "–" for the single cell of a plain sweep. */
export const cell = (c: Record<string, unknown>) =>
  Object.keys(c).length === 0
    ? '–'
    : Object.entries(c)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(', ');

export const value = (v: unknown) => (typeof v === 'string' ? v : v === undefined ? '–' : JSON.stringify(v));

export const short = (digest: string) => `${digest.slice(0, 12)}…`;
