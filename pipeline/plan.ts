/**
 * The executable form of a pipeline: what the sweep workflow interprets. Produced by the CLI from
 * a validated pipeline file (matrix expanded, defaults applied), so the workflow receives only
 * concrete values. Pure types: safe to import from workflow code.
 */
import type { RetryOverride } from './schema';
import type { StepType } from './steps';

export interface PlanTrial {
  /** Readable and unique within the step, e.g. `gru_mean-h64-s1`. */
  id: string;
  params: Record<string, unknown>;
  /** The matrix values that made this trial (a subset of params), for reports and the UI. */
  cell: Record<string, unknown>;
}

export interface PlanStep {
  name: string;
  uses: StepType;
  needs: string[];
  /** Parameters of a plain step (absent on a matrix step). */
  params?: Record<string, unknown>;
  /** Trials of a matrix step. */
  trials?: PlanTrial[];
  concurrency: number;
  retry?: RetryOverride;
  timeout?: string;
}

export interface Plan {
  pipeline: string;
  description?: string;
  /** Where the pipeline came from (a file path), for people; not part of the identity. */
  source: string;
  /** Hash of the effective pipeline: the same plan always gets the same sweep id. */
  digest: string;
  /** Steps in a topological order (every step after the steps it needs). */
  steps: PlanStep[];
}

export function sweepIdFor(plan: Pick<Plan, 'pipeline' | 'digest'>): string {
  return `sweep-${plan.pipeline}-${plan.digest.slice(0, 8)}`;
}

export function trialWorkflowId(sweepId: string, step: string, trialId: string): string {
  return step === 'train' ? `${sweepId}/trial-${trialId}` : `${sweepId}/${step}-${trialId}`;
}
