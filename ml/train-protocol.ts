import type { EpochMetrics, TrainConfig, TrainOutcome } from './trainer';

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

export type ParentMessage = { type: 'train'; request: TrainRequest };

export type ChildMessage =
  | { type: 'epoch'; metrics: EpochMetrics; checkpointPath: string }
  | { type: 'batch'; epoch: number; batch: number; batches: number }
  | { type: 'result'; outcome: TrainOutcome }
  | { type: 'error'; name: string; message: string; stack?: string; code?: string };
