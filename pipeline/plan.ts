/**
 * The executable form of a pipeline: what the sweep workflow interprets. Produced by the CLI from
 * a validated pipeline file (matrix expanded, defaults applied), so the workflow receives only
 * concrete values. Pure types: safe to import from workflow code.
 */
import type { PrunerConfig } from '../search/pruners';
import type { SearchSpace } from '../search/space';
import type { RetryOverride } from './schema';

/**
 * How one attempt of a step is bounded and retried: the durability contract the workflow applies
 * when it schedules the step's activity (durations as Temporal reads them: `90s`, `15m`, `6h`).
 */
export interface Durability {
  startToCloseTimeout: string;
  heartbeatTimeout: string;
  retry: { initialInterval: string; backoffCoefficient: number; maximumInterval: string; maximumAttempts: number };
}

export interface PlanTrial {
  /** Readable and unique within the step, e.g. `lr_0.001-seed_1` (a step type may name its trials its own way). */
  id: string;
  params: Record<string, unknown>;
  /** The matrix values that made this trial (a subset of params), for reports and the UI. */
  cell: Record<string, unknown>;
  /** For people, from the matrix values: `lr=0.001 seed=1`. Absent in plans made before it existed. */
  label?: string;
  /** `Variant` search attribute: the trial's value of the axis a downstream step compares. */
  variant?: string;
  /** `Seed` search attribute: the trial's `seed`, when it has an integer one. */
  seed?: number;
}

export interface PlanStep {
  name: string;
  /** The registered step type (activities/registry.ts). */
  uses: string;
  needs: string[];
  /** Parameters of a plain step (absent on a matrix step). */
  params?: Record<string, unknown>;
  /** Trials of a matrix step. */
  trials?: PlanTrial[];
  concurrency: number;
  retry?: RetryOverride;
  timeout?: string;
  /** The step type's durability contract with the file's retry/timeout applied (absent in older plans). */
  durability?: Durability;
  /** One line for the Temporal UI (absent in older plans). */
  summary?: string;
  /**
   * Seeds until sure: the trials (every compared value × every seed up to `maxSeeds`, seed by
   * seed) run in rounds until the paired difference is decided. Absent: every trial runs.
   */
  until?: PlanUntil;
  /**
   * A search: trials are suggested by a sampler in rounds, from the results so far, by the
   * `suggestTrials` activity (recorded in history); `trials` is then empty in the plan.
   */
  search?: PlanSearch;
}

/** A matrix step's `search:` as the workflow and the suggesting activity read it. */
export interface PlanSearch {
  sampler: 'random' | 'halton' | 'tpe';
  seed: number;
  /** TPE: random trials before the model is used (per cell). */
  nStartupTrials?: number;
  /** Trials per grid cell. */
  trials: number;
  /** The objective: each trial's best valid accuracy. */
  metric: 'valid_acc';
  direction: 'maximize' | 'minimize';
  space: SearchSpace;
  /** The matrix axes beside the search: each combination (cell) runs its own search. */
  grid: Record<string, unknown[]>;
  cells: Array<Record<string, unknown>>;
  /** The step's `with:` values: every trial's parameters start from them. */
  with: Record<string, unknown>;
  /** Pruning that pauses: trials run rung by rung (`pause_at_epoch`), paused ones may be promoted later. */
  prune?: PrunerConfig;
}

/** A matrix step's `until:` as the workflow reads it (see search/until.ts for the rule). */
export interface PlanUntil {
  /** The matrix axis compared, and its value every other value is compared with. */
  compare: string;
  baseline: string | number | boolean;
  confidence: number;
  /** In percentage points of valid accuracy: the metric is each trial's best valid accuracy × 100. */
  margin: number;
  minSeeds: number;
  maxSeeds: number;
  /** Seeds added per round after the first `minSeeds` (enough to keep `concurrency` trials busy). */
  roundSeeds: number;
  /** The seeds in the order they are used (the matrix's own seeds first). */
  seeds: number[];
}

export interface Plan {
  pipeline: string;
  description?: string;
  /** Values of the pipeline's `params:` (set or default); absent when it declares none. */
  params?: Record<string, string | number | boolean>;
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

/**
 * `sweep-…/trial-<trial id>`. Trial ids are unique within a sweep: with several matrix steps the
 * planner prefixes each step's trial ids with its name.
 */
export function trialWorkflowId(sweepId: string, trialId: string): string {
  return `${sweepId}/trial-${trialId}`;
}
