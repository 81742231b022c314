import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';

/** The one failure type of a bad step parameter: never retried (a retry would read the same value). */
export const BAD_PARAMETER = 'BadParameter';

/**
 * A parameter a step cannot use, named as the pipeline file names it (`steps.<step>.with.<field>`),
 * with what to do about it.
 */
export function badParameter(step: string, field: string, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`steps.${step}.with.${field}: ${message}`, BAD_PARAMETER);
}

/**
 * Validates (and fills the defaults of) a step's parameters inside the activity too: the workflow
 * normally passes parsed values, but a cache key must not depend on whether a default was written
 * out, and a hand-started activity must fail clearly rather than half-way.
 */
export function parseStepParams<S extends z.ZodType>(schema: S, raw: unknown, step: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map(
    (i) => `steps.${step}.with${i.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('')}: ${i.message}`,
  );
  throw ApplicationFailure.nonRetryable(`invalid parameters: ${problems.join('; ')}`, BAD_PARAMETER);
}
