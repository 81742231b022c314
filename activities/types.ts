import type { ArtifactRef } from '../artifacts/store';
import type { EpochMetrics } from '../ml/trainer';
import type { TrialTracking } from './tracking';

/**
 * What every step activity receives: who is asking (for logs and summaries), its validated
 * parameters, and the results of the steps it `needs`, by step name. Only references and small
 * values: this object is stored in workflow history.
 */
export interface StepInput<P> {
  sweepId: string;
  step: string;
  /** Trial id inside a matrix step (`gru_mean-h64-s1`), absent for plain steps. */
  trial?: string;
  params: P;
  inputs: Record<string, unknown>;
  /** The values of the pipeline's `params:`, for steps that show them (the report). */
  pipelineParams?: Record<string, string | number | boolean>;
  /** Seeds until sure: the final decision of each upstream step with `until:`, by step name (for the report). */
  until?: Record<string, UntilOutcome>;
  /** Searches: what each upstream step with `search:` searched, by step name (for the report). */
  search?: Record<string, SearchSummary>;
}

/** A search as the report names it: the sampler, the budget and the searched parameters. */
export interface SearchSummary {
  sampler: string;
  seed: number;
  trialsPerCell: number;
  cells: number;
  /** The matrix axes beside the search, and the searched parameters. */
  axes: string[];
  params: string[];
}

/** Fields every step result carries, so the workflow and the CLI can report caching. */
export interface StepResultBase {
  ref: ArtifactRef;
  /** True when the output was already in the artifact store and nothing was recomputed. */
  cached: boolean;
  seconds: number;
}

export interface DownloadResult extends StepResultBase {
  /** Store-relative file name of the verified archive inside `ref`. */
  archive: string;
  /** Store-relative folder of the unpacked archive inside `ref` (when unpacked). */
  unpacked?: string;
  md5: string;
  sha256: string;
  bytes: number;
  /** The mirror the bytes came from (absent on a cache hit). */
  source?: string;
  /** `computed`: local data without a declared digest, pinned to what this sweep read first. */
  digest?: 'computed';
}

export interface DatasetResult extends StepResultBase {
  /** File of the Arrow IPC table inside `ref`. */
  table: string;
  sequences: number;
  /** Distinct groups (users, speakers); 0 when the data has none. */
  groups: number;
  classes: number;
  features: number;
  train: number;
  valid: number;
  minLength: number;
  maxLength: number;
}

export interface PaddingResult extends StepResultBase {
  /** File of the padded Arrow IPC table inside `ref`. */
  table: string;
  maxLength: number;
  features: number;
  classes: number;
  train: number;
  valid: number;
  /** Share of padded (zero) cells if every sequence were padded to `maxLength`. */
  paddedFractionGlobal: number;
  /** Share of padded cells with batch-max padding (reference order-independent estimate). */
  paddedFractionBatchMax: number;
  /** Share of padded cells with length bucketing. */
  paddedFractionBucket: number;
}

/** One epoch's metrics, as the trainer reports them (defined with the training code). */
export type { EpochMetrics } from '../ml/trainer';

/**
 * What a trial's activity returns, as far as the workflows read it (progress, search attributes):
 * a step type that fans out returns at least this.
 */
export interface TrialResult extends StepResultBase {
  best: { valid_acc: number };
  epochsRun: number;
}

export interface TrainResult extends TrialResult {
  trial: string;
  params: Record<string, unknown>;
  best: EpochMetrics;
  epochsRun: number;
  stoppedEarly: boolean;
  backend: string;
  /** File with every epoch's metrics inside `ref`. */
  metrics: string;
  /** Epoch the last attempt resumed from (0 when it started fresh). */
  resumedFromEpoch: number;
  worker: string;
  /**
   * MLflow run, TensorBoard and settings files, training environment, tracking problems. Absent in
   * results of trials trained before tracking existed (their cached artifacts are still valid).
   */
  tracking?: TrialTracking;
  /**
   * What computed the trial's numbers (`fused (native kernel)`, `tfjs (wasm backend)`, …).
   * Absent in results of trials trained before it was recorded.
   */
  computedBy?: string;
  /**
   * Set when the trial mixed engines, as `allow_engine_change` allowed: it resumed a checkpoint
   * another engine computed (`atEpoch`: the epochs that engine trained), or it is a cache hit that
   * another engine computed than this worker would (`cacheHit`).
   */
  engineChange?: { from: string; to: string; atEpoch?: number; cacheHit?: boolean };
  /** Where this attempt's time went, in seconds (absent on a cache hit and in older results). */
  timing?: TrainTiming;
}

/** Where a train activity's time went, in seconds. */
export interface TrainTiming {
  /** Before the training is handed to a process, apart from verifyInput: the store lookup, work folder, shared checkpoints, tracking. */
  prepare?: number;
  /** Checking the padded table against its digest. */
  verifyInput: number;
  /** From asking for a training process until it trains: 0 for a warm one, its start-up for a new one. */
  processWait: number;
  /** Reading the padded table in the training process (0 when the process still held it). */
  dataLoad: number;
  /** In the training process, from the call of train() to its first step: model, optimizer, engine, checkpoint lookup. */
  trainSetup?: number;
  /** The trainer's phases, summed over the epochs this attempt trained (ml/trainer.ts EpochTiming). */
  steps: number;
  stepCount: number;
  batchAssembly: number;
  evaluation: number;
  checkpoint: number;
  epochOther: number;
  /** Heartbeat calls (the SDK sends them throttled, in the background). */
  heartbeat: number;
  /** Progress signals to the trial workflow, round trip (they run beside the training, not in its way). */
  progressSignal: number;
  progressSignals: number;
  /**
   * The rest of the train() call outside its epochs, the setup and the checkpoint hand-offs: mostly
   * the wait for the last epoch's checkpoint to be on disk (fsynced) before the result is final.
   */
  trainEnd?: number;
  /** metrics.json and tracking (MLflow, TensorBoard, settings), side by side. */
  finish: number;
  /** Committing the artifact: digests of its files, its manifest, the rename into place. */
  commit?: number;
}

export interface ReportResult extends StepResultBase {
  /** Absolute paths of the written report files, for the user to open. */
  files: { html: string; markdown: string; json: string };
  /** Where else the sweep can be inspected: its MLflow parent run and a TensorBoard logdir of all its trials. */
  tracking: { mlflow?: string; tensorboard: string; problems: number };
  verdict: string;
  variants: Array<{ name: string; trials: number; meanAcc: number; stdAcc: number }>;
}

/** One trial's outcome as a seeds-until-sure round reads it. */
export interface UntilTrialOutcome {
  variant: string | number | boolean;
  seed: number;
  /** Best valid accuracy (0–1). */
  validAcc: number;
}

/** What the workflow asks after each round of a step with `until:`. */
export interface UntilRoundInput {
  step: string;
  rule: import('../pipeline/plan').PlanUntil;
  /** Every trial that finished so far, in the order the seeds were added. */
  trials: UntilTrialOutcome[];
}

/** One variant against the baseline, in percentage points of valid accuracy (variant − baseline). */
export interface UntilComparison {
  variant: string;
  baseline: string;
  /** Seed pairs so far. */
  n: number;
  mean: number;
  /** The anytime-valid interval; null while unbounded (too few seeds). */
  low: number | null;
  high: number | null;
  /** The confidence of this comparison's interval (the study's, split among the comparisons). */
  confidence: number;
  decision: 'different' | 'within-margin' | 'max-seeds' | 'continue';
  reason: string;
}

/** The decision after a round, recorded in the sweep's history (an activity's result) and given to the report. */
export interface UntilOutcome {
  step: string;
  compare: string;
  /** The rule in words, for the report. */
  rule: string;
  seeds: number[];
  rounds: number;
  stop: boolean;
  /** Why the sweep stops or goes on, in one sentence. */
  reason: string;
  comparisons: UntilComparison[];
}
