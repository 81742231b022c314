import { z } from 'zod';

/**
 * Parameter schemas of the registered step types: the one source of the step parameter types
 * (`z.infer`) used by the activities, and of the pipeline JSON Schema. Keys are snake_case, as
 * pipeline files write them.
 */

const md5 = z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex digits (an md5 digest)');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (a sha256 digest)');

export const downloadParams = z
  .strictObject({
    /** Mirrors tried in order: http(s):// or file: URLs. */
    urls: z.array(z.string().min(1)).min(1, 'give at least one URL to download from'),
    /** File name in the cache; defaults to the last path segment of the first URL. */
    filename: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a plain file name, no folders').optional(),
    md5: md5.optional(),
    sha256: sha256.optional(),
    /** Unpack a zip archive after verifying it. */
    unpack: z.boolean().default(true),
    /** Upper bound on the unpacked size, against zip bombs. */
    max_unpacked_bytes: z.number().int().positive().default(1 << 30),
  })
  .refine((p) => p.md5 !== undefined || p.sha256 !== undefined, {
    message: 'declare md5 or sha256 so that the download can be verified',
  });
export type DownloadParams = z.infer<typeof downloadParams>;

export const splitParams = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('random'),
    seed: z.number().int().default(42),
    valid_fraction: z.number().gt(0).lt(1).default(0.2),
  }),
  z.strictObject({
    kind: z.literal('by-user'),
    valid_users: z.array(z.string().min(1)).min(1, 'name at least one user to hold out'),
  }),
]);
export type SplitParams = z.infer<typeof splitParams>;

export const datasetParams = z.strictObject({
  /** Folder inside the unpacked archive that holds the user folders. */
  root: z.string().default('gestures-dataset'),
  split: splitParams.default({ kind: 'random', seed: 42, valid_fraction: 0.2 }),
  /** Keep only this many sequences (a deterministic subset), for quick runs and tests. */
  limit: z.number().int().positive().optional(),
});
export type DatasetParams = z.infer<typeof datasetParams>;

export const paddingParams = z.strictObject({
  /** Pad every sequence to this many timesteps; defaults to the longest sequence. */
  max_length: z.number().int().positive().optional(),
  /** Batch size used to report the padded-cell fraction of each batching strategy. */
  batch_size: z.number().int().positive().default(32),
});
export type PaddingParams = z.infer<typeof paddingParams>;

export const poolingVariants = ['last', 'mean', 'last-valid', 'mean-valid', 'max'] as const;
export type Pooling = (typeof poolingVariants)[number];

export const trainParams = z.strictObject({
  /** How the GRU's outputs over time become one vector (the question of the seed study). */
  pooling: z.enum(poolingVariants).default('mean'),
  seed: z.number().int().min(0).default(1),
  hidden: z.number().int().positive().default(64),
  layers: z.number().int().positive().default(1),
  dropout: z.number().min(0).lt(1).default(0),
  epochs: z.number().int().positive().default(30),
  batch_size: z.number().int().positive().default(32),
  /** `batch-max`: each batch padded to its own longest sequence (the reference); `bucket`: batches of similar lengths. */
  batching: z.enum(['batch-max', 'bucket']).default('batch-max'),
  lr: z.number().positive().default(1e-3),
  weight_decay: z.number().min(0).default(1e-5),
  plateau_factor: z.number().gt(0).lt(1).default(0.5),
  plateau_patience: z.number().int().min(0).default(5),
  early_stop_patience: z.number().int().min(0).default(5),
  early_stop_delta: z.number().min(0).default(0),
  /** Cap on batches per epoch (the reference streams floor(n / batch) batches). */
  train_batches: z.number().int().positive().optional(),
  valid_batches: z.number().int().positive().optional(),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
});
export type TrainParams = z.infer<typeof trainParams>;

export const reportParams = z.strictObject({
  /** The variant every other one is compared to (a value of the `pooling` parameter). */
  baseline: z.string().default('last'),
  /** The trial parameter whose values are compared. */
  compare: z.string().default('pooling'),
});
export type ReportParams = z.infer<typeof reportParams>;

/** The registry of step types: what `uses:` may name, and each one's parameter schema. */
export const stepTypes = {
  download: downloadParams,
  dataset: datasetParams,
  padding: paddingParams,
  train: trainParams,
  report: reportParams,
} as const;
export type StepType = keyof typeof stepTypes;
