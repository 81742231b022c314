import type { EpochMetrics, EpochTiming, TrainConfig, TrainOutcome } from './trainer';

/** What the parent asks the training child process to do. */
export interface TrainRequest {
  /** The padding step's Arrow IPC file. */
  paddedPath: string;
  config: TrainConfig;
  checkpointDir: string;
  /**
   * A module exporting `readPadded(path): PaddedData` to load `paddedPath` with instead of
   * ./padded-data (tests feed synthetic data this way). Absolute path.
   */
  readerModule?: string;
}

/** One trial at a time: the parent sends the next `train` only after a `result` or `error`. */
export type ParentMessage = { type: 'train'; request: TrainRequest };

export type ChildMessage =
  /** Sent once, when the child has loaded TensorFlow.js and the kernel and waits for work. */
  | { type: 'ready'; startupMs: number }
  /** Sent at the start of every trial: how long reading the padded data took (0 when reused). */
  | { type: 'loaded'; ms: number; reused: boolean }
  | { type: 'epoch'; metrics: EpochMetrics; checkpointPath: string; timing: EpochTiming }
  /** `setupMs` on a trial's first batch: train()'s time before its first step. */
  | { type: 'batch'; epoch: number; batch: number; batches: number; setupMs?: number }
  /** `trainMs`: the whole train() call, in the child. */
  | { type: 'result'; outcome: TrainOutcome; trainMs?: number }
  | { type: 'error'; name: string; message: string; stack?: string; code?: string };
