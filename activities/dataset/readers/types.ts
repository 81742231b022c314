/**
 * What every dataset reader produces, whatever the source format: sequences of `length` timesteps
 * × `features` values with a class label and an optional group (a user, a speaker). The dataset
 * step turns this into its one Arrow table (activities/dataset.ts).
 */
export interface SequenceRecord {
  /** Where the sequence came from, for messages and the table's `source` column. */
  source: string;
  /** A user, a speaker, …; '' when the format has none. */
  group: string;
  /** The class as the file names it; its index in `classNames` is the model's label. */
  label: string;
  /** length × features values, timestep after timestep. */
  values: Float32Array;
  length: number;
  /** The archive's own split, for formats that ship one (UEA/UCR TRAIN and TEST files). */
  part?: 'train' | 'test';
}

export interface ReadDataset {
  sequences: SequenceRecord[];
  features: number;
  featureNames: string[];
  /** Class names in label order: label i is classNames[i]. */
  classNames: string[];
}

/** Malformed input data: the same files fail the same way on every retry (non-retryable). */
export class DatasetFormatError extends Error {
  override name = 'DatasetFormatError';
}

/** Plain decimals only: Number() alone would take '', '0x1f' or 'Infinity'. */
export const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A number from a text field, or undefined when it is not a finite plain decimal. */
export function parseNumber(text: string): number | undefined {
  if (!NUMBER.test(text)) return undefined;
  const v = Number(text);
  return Number.isFinite(v) && Math.abs(v) <= 3.4e38 ? v : undefined;
}

export function clip(s: string, max = 60): string {
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** Labels sorted as people expect: numerically when every one is a number, else by text. */
export function sortLabels(labels: Iterable<string>): string[] {
  const all = [...new Set(labels)];
  if (all.every((l) => parseNumber(l) !== undefined)) return all.sort((a, b) => Number(a) - Number(b));
  return all.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
