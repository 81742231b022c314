import { z } from 'zod';
import { stepTypeNames as registered } from '../activities/registry';
import { prunerConfigSchema } from '../search/pruners';
import { searchSpaceSchema } from '../search/space';
import { untilSchema } from '../search/until';
import { paramsSchema } from './params';

/**
 * The shape of a pipeline file: the one source of its TypeScript types (`z.infer`) and of the
 * published JSON Schema (`schema/pipeline.schema.json`, see ./json-schema.ts). Descriptions are
 * what editors show on hover.
 */

/** A duration as pipeline files write it: `90s`, `15m`, `6h`, `1d`. */
export const duration = z.string().regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'expected a duration such as "90s", "15m" or "6h"');

export const retryPolicy = z
  .strictObject({
    max_attempts: z.number().int().positive().optional().describe('Attempts in all, the first one included.'),
    initial_interval: duration.optional().describe('Wait before the first retry.'),
    maximum_interval: duration.optional().describe('Longest wait between two attempts.'),
    backoff: z.number().min(1).optional().describe('Factor by which the wait grows after each attempt.'),
  })
  .describe("Overrides of the step type's retry policy.");
export type RetryOverride = z.infer<typeof retryPolicy>;

const stepName = z.string().regex(/^[a-z][a-z0-9_-]*$/, 'step names are lowercase letters, digits, "-" and "_", starting with a letter');

const stepTypeNames = registered as [string, ...string[]];

const matrixSchema = z
  .record(z.string(), z.array(z.unknown()).min(1, 'a matrix axis needs at least one value'))
  .refine((axes) => Object.keys(axes).length > 0, 'a matrix needs at least one axis (parameter: [values…])')
  .describe('Fan out: every combination of these parameter values becomes one trial.');

const sampleSchema = z
  .strictObject({
    count: z.number().int().positive().describe('Trial budget: how many combinations to draw.'),
    seed: z.number().int().default(0).describe('Seed of the draw: the same seed draws the same trials.'),
  })
  .describe('Draw `count` combinations of the matrix at random (seeded) instead of running the full grid.');

const searchSchema = z
  .strictObject({
    sampler: z
      .enum(['random', 'halton', 'tpe'])
      .describe('random: independent draws; halton: quasi-random, evenly spread; tpe: tree-structured Parzen estimator (model-based, as Optuna defines it).'),
    seed: z.number().int().default(0).describe('Seed of the search: the same seed and the same results give the same suggestions.'),
    trials: z.number().int().positive().describe('Trials per combination of the matrix axes (or in all, without a matrix).'),
    n_startup_trials: z.number().int().min(0).optional().describe('tpe: random trials before the model is used (default 10).'),
    metric: z.literal('valid_acc').default('valid_acc').describe("The objective: each trial's best valid accuracy."),
    direction: z.enum(['maximize', 'minimize']).default('maximize'),
    space: searchSpaceSchema,
    prune: prunerConfigSchema.optional(),
  })
  .describe(
    'Search: trials suggested by a sampler from the results so far, in rounds of `concurrency` trials; beside a matrix, every cell runs its own search.',
  );

export const stepSchema = z
  .strictObject({
    uses: z.enum(stepTypeNames).describe('The registered step type this step runs.'),
    needs: z.array(z.string()).default([]).describe("Steps that must finish first; their results are this step's inputs."),
    with: z.record(z.string(), z.unknown()).default({}).describe("Parameters of the step type (checked against that type's parameters)."),
    matrix: matrixSchema.optional(),
    sample: sampleSchema.optional(),
    until: untilSchema.optional(),
    search: searchSchema.optional(),
    concurrency: z.number().int().positive().optional().describe('How many trials of the matrix run at once (default 2).'),
    retry: retryPolicy.optional(),
    timeout: duration.optional().describe('Upper bound on one attempt of the step (start to close).'),
  })
  .describe('One step of the pipeline.');

export const pipelineSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]*$/, 'pipeline names are lowercase letters, digits and "-" (they become workflow ids)')
      .describe('Name of the pipeline; sweeps are named `sweep-<name>-<hash>`.'),
    description: z.string().max(500).optional().describe('One line for people: shown in the Temporal UI.'),
    params: paramsSchema.optional(),
    steps: z
      .record(stepName, stepSchema)
      .refine((steps) => Object.keys(steps).length > 0, 'a pipeline needs at least one step')
      .describe('The steps, by name: a DAG through their `needs`.'),
  })
  .describe('A durable-sweeps pipeline: a DAG of steps, run as a Temporal sweep workflow.');

/** The file's outer shape, with each step left for its own pass so that every step's problems are reported. */
export const pipelineOuterSchema = pipelineSchema.extend({
  steps: z.record(stepName, z.unknown()).refine((steps) => Object.keys(steps).length > 0, 'a pipeline needs at least one step'),
});

export type PipelineFile = z.infer<typeof pipelineSchema>;
export type StepDecl = z.infer<typeof stepSchema>;
