import type { Logger } from 'pino';
import type { ArtifactStore } from '../artifacts/store';
import type { TrainPool } from '../ml/train-pool';

/** What the worker hands every activity: where artifacts live, where logs go, where the UI is. */
export interface ActivityDeps {
  store: ArtifactStore;
  logger: Logger;
  /**
   * Folders that `file:` download sources may read from. A pipeline comes from whoever can start
   * a workflow; it must not make the worker read other files. Absent: no `file:` source is allowed.
   */
  dataRoots?: readonly string[];
  /** This worker's identity for training results (default: host:pid). */
  worker?: string;
  /**
   * The worker's warm training processes (one per slot). Absent: each trial trains in a fresh
   * process of its own (activities run outside a worker).
   */
  trainPool?: TrainPool;
  /** Base URL of the Temporal Web UI and the namespace, for links in reports. */
  ui?: { url: string; namespace: string };
}
