import type { DatasetDescription } from '../activities/describe';
import type { SearchSummary, UntilOutcome } from '../activities/types';
/**
 * The report of a sweep as data: what report.json holds, and what report.md and report.html are
 * rendered from. Every number the two renderings show comes from here, formatted by report/format.ts.
 */
import type { Interval, PairedComparison } from '../ml/stats';

export const REPORT_SCHEMA = 'durable-sweeps/report@3';

/** The other matrix values a group of trials shares (e.g. `{ hidden: 64 }`); empty for a single cell. */
export type Cell = Record<string, unknown>;

export interface TrialSummary {
  trial: string;
  /** The train step it belongs to (a report may read more than one). */
  step: string;
  variant: string;
  cell: Cell;
  seed: unknown;
  /** At the best epoch: the one early stopping keeps, with the lowest valid loss. */
  bestValidAcc: number;
  bestValidLoss: number;
  bestEpoch: number;
  finalValidLoss: number;
  epochsRun: number;
  stoppedEarly: boolean;
  backend: string;
  /** Wall time of the training epochs (sum of metrics.json's per-epoch seconds; resumes and cache hits do not distort it). */
  trainSeconds: number;
  workflowId: string;
  temporalUrl?: string;
  mlflowUrl?: string;
  trackingProblems: string[];
}

export interface GroupSummary {
  /** Value of the compared parameter. */
  variant: string;
  cell: Cell;
  /** Names the group in tables and plots: `mean`, or `mean · hidden=64` when cells differ. */
  label: string;
  trials: number;
  seeds: unknown[];
  bestValidAcc: Interval;
  bestValidLoss: Interval;
  finalValidLoss: Interval;
  bestEpoch: Interval;
  stoppedEarly: number;
  trainSeconds: { total: number; mean: number };
}

/**
 * 'too-few-pairs': under 3 seed pairs; 'no-spread': every pair differs by the same amount, so the
 * noise cannot be estimated. Neither is called better or worse, whatever the difference.
 */
export type Conclusion = 'better' | 'worse' | 'inconclusive' | 'too-few-pairs' | 'no-spread';

export interface ComparisonSummary extends PairedComparison {
  variant: string;
  baseline: string;
  cell: Cell;
  label: string;
  /** Differences are variant − baseline in best valid accuracy, per seed that ran for both. */
  pairs: Array<{ seed: unknown; variant: number; baseline: number; difference: number }>;
  /** Seeds that ran for only one of the two, so they could not be compared. */
  unpaired: unknown[];
  /** Rough pairs needed for the interval to exclude zero at the observed effect (see ml/stats.ts). */
  pairsToExcludeZero?: number;
  /**
   * The two-sided p-value adjusted by Holm's method over every comparison in the report that could
   * reach a conclusion (`tests` of them); NaN for the others. The conclusion is drawn from it.
   */
  pAdjusted: number;
  tests: number;
  conclusion: Conclusion;
  /** The comparison in plain words. */
  verdict: string;
}

export type CurveMetric = 'valid_acc' | 'valid_loss';

/** One group's learning curve at one epoch: mean over the seeds still training, and their range. */
export interface CurvePoint {
  metric: CurveMetric;
  label: string;
  epoch: number;
  n: number;
  mean: number;
  min: number;
  max: number;
}

/** An upstream data artifact the trials trained on (padding ← dataset ← download). */
export interface DataArtifact {
  type: string;
  dir: string;
  /** The artifact's content digest (sha256 of its file list). */
  digest: string;
  version: number;
  /** Its identity's parameters, flattened (`md5`, `split.seed`, …). */
  details: Record<string, string>;
}

export interface ReportEnvironment {
  backends: string[];
  node: string[];
  tfjs: string[];
  backendPackages: string[];
  temporalSdk: string[];
  hosts: string[];
  /** `durable-sweeps@0.1.0, git 1a2b3c4…` per distinct code the trials and the report ran. */
  code: string[];
  trainVersions: number[];
  reportVersion: number;
  data: DataArtifact[];
  /** Trials whose results carry no environment (trained before it was recorded). */
  unrecorded: number;
}

export interface ReportTracking {
  mlflow?: { status: 'logged' | 'incomplete'; url?: string; experimentUrl?: string };
  /** Folder inside the report artifact with every trial's event file: `tensorboard --logdir` it. */
  tensorboard: string;
  problems: Array<{ source: string; message: string }>;
}

export interface ReportDocument {
  schema: typeof REPORT_SCHEMA;
  sweepId: string;
  pipeline: string;
  generatedAt: string;
  compare: string;
  baseline: string;
  verdict: string;
  /** The verdict's first sentence: every group ranked by mean best validation accuracy. */
  ranking: string;
  groups: GroupSummary[];
  comparisons: ComparisonSummary[];
  curves: CurvePoint[];
  trials: TrialSummary[];
  environment: ReportEnvironment;
  tracking: ReportTracking;
  temporal?: { sweepUrl?: string };
  /** The values of the pipeline's `params:` the sweep ran with. */
  params?: Record<string, string | number | boolean>;
  /** What `describe` steps the report needs found in their datasets. */
  datasets?: Array<{ step: string } & DatasetDescription>;
  /** Seeds until sure: the sequential decision of each upstream step with `until:`. */
  until?: UntilOutcome[];
  /** Searches: each upstream step with `search:`, with its trials, their searched parameters and the pruning decisions on them. */
  search?: SearchReport[];
}

/** A trial of a search (all its runs, for a pruned search): where it ended and what the pruner decided on the way. */
export interface SearchTrialSummary {
  trial: string;
  /** Its number in its cell's search (the order the sampler suggested it). */
  number: number;
  /** The grid axes' values (empty without a grid beside the search). */
  cell: Cell;
  /** The grid axes' and searched parameters' values. */
  params: Record<string, unknown>;
  bestValidAcc: number;
  /** Epochs it reached, of `maxEpochs`. */
  epochs: number;
  maxEpochs: number;
  /** The rungs (epochs) at which the pruner let it go on, in order. */
  promotedAt: number[];
  /** `paused`: stopped at a rung (`epochs`), its checkpoint kept; `completed`: its full budget, or early stopping, ended it. */
  decision: 'paused' | 'completed';
}

export interface SearchReport extends SearchSummary {
  step: string;
  /** Whether a pruner ran the trials rung by rung. */
  pruned: boolean;
  /** Epochs the search trained, and those its trials would have taken without pruning. */
  epochsSpent: number;
  fullBudgetEpochs: number;
  /** The best trials (by best validation accuracy), with their parameters and the decisions on them in words. */
  best: Array<{ trial: string; bestValidAcc: number; epochs: number; params: Record<string, unknown>; decision?: string }>;
  trials: SearchTrialSummary[];
  /** After each run, in the order they ran: the epochs spent so far in its cell and the best value found there so far. */
  progress: Array<{ cell: string; epochsSpent: number; bestSoFar: number; trial: string }>;
}
