import { readFileSync } from 'node:fs';
import type { PaddedData, PaddedSplit } from '../../ml/padded-data';
import { rngFor } from '../../ml/rng';

export interface SyntheticSpec {
  seed: number;
  train: number;
  valid: number;
  classes: number;
  features: number;
  maxLength: number;
  minLength?: number;
  /** Noise amplitude; the class signal has amplitude 1. */
  noise?: number;
}

/**
 * Padded sequences whose class is easy to read from any part of the sequence: feature f
 * oscillates with a class-specific frequency and offset, plus uniform noise. Lengths vary
 * so padding matters, and every row is zero past its length, like the padding step's output.
 */
function split(spec: SyntheticSpec, count: number, stream: string): PaddedSplit {
  const { classes, features, maxLength } = spec;
  const minLength = spec.minLength ?? 3;
  const noise = spec.noise ?? 0.2;
  const rng = rngFor(spec.seed, 'synthetic', stream);
  const values = new Float32Array(count * maxLength * features);
  const lengths = new Int32Array(count);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const y = rng.int(classes);
    const len = minLength + rng.int(maxLength - minLength + 1);
    labels[i] = y;
    lengths[i] = len;
    for (let t = 0; t < len; t++) {
      for (let f = 0; f < features; f++) {
        const signal = Math.cos((2 * Math.PI * (y + 1) * t) / (2 * maxLength) + f) + (f === y % features ? 0.8 : -0.3);
        values[(i * maxLength + t) * features + f] = signal + noise * (2 * rng.uniform() - 1);
      }
    }
  }
  return { values, lengths, labels, count };
}

export function syntheticData(spec: SyntheticSpec): PaddedData {
  return {
    maxLength: spec.maxLength,
    features: spec.features,
    classes: spec.classes,
    train: split(spec, spec.train, 'train'),
    valid: split(spec, spec.valid, 'valid'),
  };
}

/** The reader the training child loads instead of ml/padded-data in tests: `path` holds a SyntheticSpec. */
export function readPadded(path: string): PaddedData {
  return syntheticData(JSON.parse(readFileSync(path, 'utf8')) as SyntheticSpec);
}
