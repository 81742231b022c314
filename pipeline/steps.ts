import { z } from 'zod';
import { POOLINGS } from '../ml/pooling';

/**
 * Parameter schemas of the registered step types: the one source of the step parameter types
 * (`z.infer`) used by the activities, and of the pipeline JSON Schema. Keys are snake_case, as
 * pipeline files write them.
 */

const md5 = z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex digits (an md5 digest)');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (a sha256 digest)');

export const downloadParams = z
  .strictObject({
    urls: z
      .array(
        z
          .string()
          .min(1)
          .refine((u) => !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(u), {
            message:
              'a URL with a user name or password: pipelines travel through workflow history, so credentials may not be in them; serve the file without credentials or copy it into a data root',
          })
          .refine((u) => /^(https?:\/\/|file:)/i.test(u), { message: 'use an http://, https:// or file: URL' }),
      )
      .min(1, 'give at least one URL to download from')
      .describe('Mirrors tried in order: http(s):// or file: URLs.'),
    filename: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'a plain file name, no folders')
      .optional()
      .describe('File name in the cache; defaults to the last path segment of the first URL.'),
    md5: md5.optional().describe('Expected md5 of the archive (md5 or sha256 is required).'),
    sha256: sha256.optional().describe('Expected sha256 of the archive (md5 or sha256 is required).'),
    unpack: z.boolean().default(true).describe('Unpack a zip archive after verifying it.'),
    max_unpacked_bytes: z
      .number()
      .int()
      .positive()
      .default(1 << 30)
      .describe('Upper bound on the unpacked size, against zip bombs.'),
  })
  .refine((p) => p.md5 !== undefined || p.sha256 !== undefined, {
    message: 'declare md5 or sha256 so that the download can be verified',
  });
export type DownloadParams = z.infer<typeof downloadParams>;

export const splitParams = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('random').describe('A seeded random split of all sequences (the reference: 80/20).'),
    seed: z.number().int().default(42),
    valid_fraction: z.number().gt(0).lt(1).default(0.2).describe('Share of the sequences held out for validation.'),
  }),
  z.strictObject({
    kind: z.literal('by-user').describe('Hold out whole users: validation measures generalisation to new people.'),
    valid_users: z
      .array(z.string().min(1))
      .min(1, 'name at least one user to hold out')
      .describe('Users whose sequences form the validation set, e.g. [U07, U08].'),
  }),
]);
export type SplitParams = z.infer<typeof splitParams>;

export const datasetParams = z.strictObject({
  root: z
    .string()
    .min(1)
    .refine((r) => !/^([/\\]|[A-Za-z]:)/.test(r) && !r.split(/[/\\]/).includes('..'), {
      message: 'a folder inside the unpacked archive: a relative path without ".." (steps read only their inputs)',
    })
    .default('gestures-dataset')
    .describe('Folder inside the unpacked archive that holds the user folders.'),
  split: splitParams.default({ kind: 'random', seed: 42, valid_fraction: 0.2 }).describe('How sequences are split into train and validation.'),
  limit: z.number().int().positive().optional().describe('Keep only this many sequences (a deterministic subset), for quick runs and tests.'),
});
export type DatasetParams = z.infer<typeof datasetParams>;

export const paddingParams = z.strictObject({
  max_length: z.number().int().positive().optional().describe('Pad every sequence to this many timesteps; defaults to the longest sequence.'),
  batch_size: z.number().int().positive().default(32).describe('Batch size used to report the padded-cell fraction of each batching strategy.'),
});
export type PaddingParams = z.infer<typeof paddingParams>;

export const trainParams = z.strictObject({
  pooling: z.enum(POOLINGS).default('mean').describe("How the GRU's outputs over time become one vector (the question of the seed study)."),
  seed: z.number().int().min(0).default(1).describe('Seed of initialisation, shuffling and dropout.'),
  hidden: z.number().int().positive().default(64).describe('GRU hidden size.'),
  layers: z.number().int().positive().default(1).describe('Stacked GRU layers.'),
  dropout: z.number().min(0).lt(1).default(0).describe('Dropout between stacked GRU layers.'),
  epochs: z.number().int().positive().default(30).describe('Most epochs to train (early stopping may end sooner).'),
  batch_size: z.number().int().positive().default(32),
  batching: z
    .enum(['batch-max', 'bucket'])
    .default('batch-max')
    .describe('`batch-max`: each batch padded to its own longest sequence (the reference); `bucket`: batches of similar lengths.'),
  lr: z.number().positive().default(1e-3).describe('Adam learning rate.'),
  weight_decay: z.number().min(0).default(1e-5).describe('L2 weight decay, added to the gradient (as torch.optim.Adam does).'),
  plateau_factor: z.number().gt(0).lt(1).default(0.5).describe('ReduceLROnPlateau: factor applied to the learning rate.'),
  plateau_patience: z.number().int().min(0).default(5).describe('ReduceLROnPlateau: epochs without improvement before reducing.'),
  early_stop_patience: z.number().int().min(0).default(5).describe('Early stopping: epochs without improvement of the valid loss.'),
  early_stop_delta: z.number().min(0).default(0).describe('Early stopping: smallest decrease of the valid loss that counts.'),
  train_batches: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('Cap on training batches per epoch, for quick runs (the reference streams floor(n / batch) batches).'),
  valid_batches: z.number().int().positive().optional().describe('Cap on validation batches per epoch, for quick runs.'),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto').describe('TensorFlow.js backend; `auto` prefers tfjs-node.'),
  engine: z
    .enum(['auto', 'fused', 'fused-gru', 'tfjs'])
    .default('auto')
    .describe(
      'How a training step is computed: `fused`, the whole step in one WebAssembly kernel; `fused-gru`, the TensorFlow.js model with each GRU layer as one fused op; `tfjs`, op by op (the reference); `auto`, fused where the kernel loads.',
    ),
});
export type TrainParams = z.infer<typeof trainParams>;

export const reportParams = z.strictObject({
  baseline: z.string().default('last').describe('The variant every other one is compared to (a value of the `compare` parameter).'),
  compare: z.string().default('pooling').describe('The trial parameter whose values are compared.'),
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

/**
 * The upstream result each step type reads, found by its shape among the results of the steps it
 * `needs` (see activities/upstream.ts). Checked before a sweep starts: the activities would only
 * find out at run time, after everything upstream had run.
 */
export const stepInputs: Record<StepType, { from: StepType; count: 'exactly one' | 'at least one' } | undefined> = {
  download: undefined,
  dataset: { from: 'download', count: 'exactly one' },
  padding: { from: 'dataset', count: 'exactly one' },
  train: { from: 'padding', count: 'exactly one' },
  // The report reads the trials of a matrix step: a train step without a matrix gives it nothing.
  report: { from: 'train', count: 'at least one' },
};

/**
 * Step types that may fan out over a `matrix`: each trial runs as its own child workflow, and the
 * trial workflow runs the training activity (workflows/trial.ts).
 */
export const matrixStepTypes: readonly StepType[] = ['train'];
