import type { z } from 'zod';
import type { Durability } from '../pipeline/plan';
import type { ActivityDeps } from './deps';
import type { StepInput } from './types';

/** The upstream result a step reads, found by its shape among the results of the steps it `needs`. */
export interface StepReads {
  /** The step type whose result it reads. */
  from: string;
  count: 'exactly one' | 'at least one';
  /** It reads the trials of a matrix step (a `from` step without a matrix gives it nothing). */
  trials?: boolean;
}

/**
 * A step type: everything the engine knows about it, in one place. Adding a step type is one
 * module like this plus one line in ./registry.ts; the planner (CLI side) resolves what the
 * workflow needs from it (durability, summary, trial ids) into the Plan, because workflow code may
 * not import modules that do I/O.
 */
export interface StepModule<S extends z.ZodType = z.ZodType, R = unknown> {
  /** What `uses:` names, and the activity type shown in the Temporal UI. */
  type: string;
  /** The step's parameters (`with:` and matrix axes), with their defaults and descriptions. */
  params: S;
  /** The upstream result it reads; absent for a step that reads none. */
  reads?: StepReads;
  /** May fan out over a `matrix:`: each trial then runs as its own child workflow. */
  matrix: boolean;
  durability: Durability;
  /** One line for the Temporal UI, e.g. `download gestures-dataset.zip (md5 7966323b9515…)`. */
  summary(params: z.output<S>): string;
  /** A trial's id within its step; defaults to its matrix values (`lr_0.001-seed_1`). */
  trialId?(params: z.output<S>, cell: Record<string, unknown>): string;
  /** The matrix axis this step compares variants along (read from the trials it reads), for the `Variant` search attribute. */
  comparesAxis?(params: z.output<S>): string | undefined;
  /**
   * Checks the step's parameters against the matrices of the steps it reads, before anything runs
   * (a report's `compare` must be one of their axes). `search`: the step searches (its axes are
   * those of the grid beside the search, if any). Returns problems by parameter name.
   */
  checkUpstream?(
    params: z.output<S>,
    upstream: ReadonlyArray<{ step: string; axes: Record<string, unknown[]>; search?: boolean }>,
  ): Array<{ field: string; message: string }>;
  /**
   * Adds the copies of the data given with `sweeps sweep --data` to the step's raw `with:` (before
   * validation, so that they are checked like the file's own values). Absent: the step takes none.
   */
  addDataSources?(rawParams: Record<string, unknown>, sources: readonly string[]): Record<string, unknown>;
  activity(input: StepInput<z.output<S>>, deps: ActivityDeps): Promise<R>;
}

/** Declares a step module, keeping its parameter type for `summary` and `activity`. */
export function defineStep<S extends z.ZodType, R>(module: StepModule<S, R>): StepModule<S, R> {
  return module;
}
