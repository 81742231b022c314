import { z } from 'zod';
import { stepTypes } from './steps';

/** A duration as pipeline files write it: `90s`, `15m`, `6h`, `1d`. */
export const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'expected a duration such as "90s", "15m" or "6h"');

export const retryPolicy = z.strictObject({
  max_attempts: z.number().int().positive().optional(),
  initial_interval: duration.optional(),
  maximum_interval: duration.optional(),
  backoff: z.number().min(1).optional(),
});
export type RetryOverride = z.infer<typeof retryPolicy>;

const stepName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]*$/, 'step names are lowercase letters, digits, "-" and "_", starting with a letter');

export const stepSchema = z.strictObject({
  uses: z.enum(Object.keys(stepTypes) as [keyof typeof stepTypes, ...(keyof typeof stepTypes)[]]),
  needs: z.array(z.string()).default([]),
  /** Parameters of the step type; validated against that type's schema in a second pass. */
  with: z.record(z.string(), z.unknown()).default({}),
  /** Fan out: every combination of these parameter values becomes one trial. */
  matrix: z.record(z.string(), z.array(z.unknown()).min(1, 'a matrix axis needs at least one value')).optional(),
  /** Draw this many combinations of the matrix at random (seeded) instead of the full grid. */
  sample: z.strictObject({ count: z.number().int().positive(), seed: z.number().int().default(0) }).optional(),
  /** How many trials of a matrix step run at once. */
  concurrency: z.number().int().positive().optional(),
  retry: retryPolicy.optional(),
  /** Upper bound on one attempt of the step (start-to-close). */
  timeout: duration.optional(),
});

export const pipelineSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/, 'pipeline names are lowercase letters, digits and "-" (they become workflow ids)'),
  description: z.string().optional(),
  steps: z.record(stepName, stepSchema).refine((steps) => Object.keys(steps).length > 0, 'a pipeline needs at least one step'),
});

/** The file's outer shape, with each step left for its own pass so that every step's problems are reported. */
export const pipelineOuterSchema = pipelineSchema.extend({
  steps: z.record(stepName, z.unknown()).refine((steps) => Object.keys(steps).length > 0, 'a pipeline needs at least one step'),
});

export type PipelineFile = z.infer<typeof pipelineSchema>;
export type StepDecl = z.infer<typeof stepSchema>;
