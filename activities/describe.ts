import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { tableFromIPC, type Table } from 'apache-arrow';
import { z } from 'zod';
import { writeFileAtomic } from '../artifacts/store';
import { heartbeatIfActivity } from './context';
import { isDatasetResult } from './dataset';
import type { ActivityDeps } from './deps';
import { parseStepParams } from './params';
import { defineStep } from './step-module';
import type { DatasetResult, StepInput, StepResultBase } from './types';
import { upstreamOf, verifyInput } from './upstream';

/**
 * `describe`: what a dataset holds, before anything trains on it — per-class counts in each split,
 * a histogram of sequence lengths, and each feature's range. Shown in the report when the report
 * step needs it. (Added as one module and one registry line, to show that a step type is that.)
 */

export const describeParams = z.strictObject({
  bins: z.number().int().min(1).max(100).default(10).describe('Bins of the sequence-length histogram.'),
});
export type DescribeParams = z.infer<typeof describeParams>;

/** Bump when the description written for the same dataset would change. */
export const DESCRIBE_VERSION = 1;
const DESCRIBE_FILE = 'describe.json';

export interface DatasetDescription {
  sequences: number;
  classes: Array<{ label: string; train: number; valid: number }>;
  lengths: { min: number; max: number; mean: number; histogram: Array<{ from: number; to: number; count: number }> };
  features: Array<{ name: string; min: number; max: number; mean: number; std: number }>;
}

export interface DescribeResult extends StepResultBase {
  /** File of the full description inside `ref`. */
  file: string;
  description: DatasetDescription;
}

export function isDescribeResult(value: unknown): value is DescribeResult {
  const v = value as Partial<DescribeResult> | null;
  return typeof v === 'object' && v !== null && typeof v.file === 'string' && typeof v.description === 'object' && v.description !== null;
}

export async function describe(input: StepInput<DescribeParams>, deps: ActivityDeps): Promise<DescribeResult> {
  const started = Date.now();
  const params = parseStepParams(describeParams, input.params, input.step);
  const upstream = upstreamOf<DatasetResult>(input.inputs, 'dataset', isDatasetResult);
  const identity = { type: 'describe', version: DESCRIBE_VERSION, params, inputs: { dataset: upstream.ref.dir } };
  const { ref, result, cached } = await deps.store.getOrBuild<{ file: string; description: DatasetDescription }>(identity, async (dir) => {
    await verifyInput(deps.store, upstream.ref, upstream.table, `step ${input.step}`, input.sweepId);
    const table = tableFromIPC(await readFile(await deps.store.localPath(upstream.ref, upstream.table)));
    let description: DatasetDescription;
    try {
      description = describeTable(table, params.bins);
    } catch (err) {
      throw ApplicationFailure.nonRetryable(`step ${input.step}: ${upstream.table}: ${(err as Error).message}`, 'MalformedData');
    }
    await writeFileAtomic(join(dir, DESCRIBE_FILE), `${JSON.stringify(description, null, 2)}\n`);
    return { file: DESCRIBE_FILE, description };
  });
  deps.logger.info({ sweep: input.sweepId, step: input.step, dir: ref.dir, cached }, `describe ${cached ? 'cache hit' : 'written'}`);
  return { ...result, ref, cached, seconds: (Date.now() - started) / 1000 };
}

/** The description of a dataset table (columns `label`, `length`, `values`; `split` when present). */
export function describeTable(table: Table, bins: number): DatasetDescription {
  const column = (name: string) => {
    const c = table.getChild(name);
    if (!c) throw new Error(`no column "${name}" in the dataset table`);
    return c;
  };
  const labels = column('label');
  const lengths = column('length');
  const values = column('values');
  const splits = table.getChild('split');
  const n = table.numRows;
  const names = labelNames(table);
  const featureCount = Number(table.schema.metadata.get('features') ?? 0);
  const featureNames = table.schema.metadata.get('feature_names')?.split(',') ?? [];

  const classes = new Map<string, { train: number; valid: number }>();
  const lens: number[] = [];
  let stats: Array<{ min: number; max: number; sum: number; sq: number; count: number }> = [];
  for (let r = 0; r < n; r++) {
    if (r % 1000 === 0) heartbeatIfActivity({ phase: 'describe', rows: r, total: n });
    const label = Number(labels.get(r));
    const name = names[label] ?? String(label);
    const counts = classes.get(name) ?? { train: 0, valid: 0 };
    if (splits?.get(r) === 'valid') counts.valid++;
    else counts.train++;
    classes.set(name, counts);
    const length = Number(lengths.get(r));
    lens.push(length);
    const row = (values.get(r) as { toArray(): Float32Array } | null)?.toArray() ?? new Float32Array(0);
    const d = featureCount || (length > 0 ? row.length / length : 0);
    if (stats.length === 0) stats = Array.from({ length: d }, () => ({ min: Infinity, max: -Infinity, sum: 0, sq: 0, count: 0 }));
    for (let i = 0; i < row.length; i++) {
      const s = stats[i % d]!;
      const v = row[i]!;
      if (Number.isNaN(v)) continue;
      s.min = Math.min(s.min, v);
      s.max = Math.max(s.max, v);
      s.sum += v;
      s.sq += v * v;
      s.count++;
    }
  }
  return {
    sequences: n,
    classes: [...classes.entries()].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([label, c]) => ({ label, ...c })),
    lengths: lengthSummary(lens, bins),
    features: stats.map((s, i) => {
      const mean = s.count ? s.sum / s.count : 0;
      return { name: featureNames[i] ?? `x${i}`, min: s.min, max: s.max, mean, std: s.count ? Math.sqrt(Math.max(0, s.sq / s.count - mean * mean)) : 0 };
    }),
  };
}

/** Equal-width bins over whole timesteps, from the shortest to the longest sequence. */
export function lengthSummary(lengths: readonly number[], bins: number): DatasetDescription['lengths'] {
  if (lengths.length === 0) return { min: 0, max: 0, mean: 0, histogram: [] };
  const min = Math.min(...lengths);
  const max = Math.max(...lengths);
  const width = Math.max(1, Math.ceil((max - min + 1) / bins));
  const histogram = Array.from({ length: Math.ceil((max - min + 1) / width) }, (_, i) => ({
    from: min + i * width,
    to: Math.min(max, min + (i + 1) * width - 1),
    count: 0,
  }));
  for (const l of lengths) histogram[Math.floor((l - min) / width)]!.count++;
  return { min, max, mean: lengths.reduce((a, b) => a + b, 0) / lengths.length, histogram };
}

function labelNames(table: Table): string[] {
  const raw = table.schema.metadata.get('labels') ?? table.schema.metadata.get('class_names');
  if (!raw) return [];
  try {
    const parsed = JSON.parse(raw) as unknown;
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return raw.split(',');
  }
}

export const describeStep = defineStep({
  type: 'describe',
  params: describeParams,
  reads: { from: 'dataset', count: 'exactly one' },
  matrix: false,
  durability: {
    startToCloseTimeout: '10m',
    heartbeatTimeout: '2m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
  summary: (p) => `describe the dataset: classes, a ${p.bins}-bin length histogram, feature ranges`,
  activity: describe,
});
