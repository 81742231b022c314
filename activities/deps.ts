import type { Logger } from 'pino';
import type { ArtifactStore } from '../artifacts/store';

/** What the worker hands every activity: where artifacts live, where logs go, where the UI is. */
export interface ActivityDeps {
  store: ArtifactStore;
  logger: Logger;
  /** Base URL of the Temporal Web UI and the namespace, for links in reports. */
  ui?: { url: string; namespace: string };
}
