import { ApplicationFailure } from '@temporalio/common';
import { ArtifactCorrupt, type ArtifactRef, type ArtifactStore } from '../artifacts/store';

/**
 * Finds the one upstream result of the expected kind among a step's inputs. Steps are wired by
 * `needs:` in the pipeline, so the upstream step's name is the user's choice; the result's shape
 * is not.
 */
export function upstreamOf<T>(inputs: Record<string, unknown>, what: string, has: (value: object) => boolean): T {
  const found = Object.values(inputs).filter((v): v is T & object => typeof v === 'object' && v !== null && has(v));
  if (found.length !== 1) {
    throw ApplicationFailure.nonRetryable(
      `expected exactly one upstream ${what} result among needs [${Object.keys(inputs).join(', ')}], found ${found.length}: ` +
        `check the step's needs: in the pipeline file`,
      'BadPipeline',
    );
  }
  return found[0]!;
}

/**
 * Checks an upstream artifact (one file of it, or all) against its digests before a step reads it:
 * damage is never built upon silently. A damaged input fails the step without retries (a retry
 * would read the same bytes) and says how to get it rebuilt.
 */
export async function verifyInput(store: ArtifactStore, ref: ArtifactRef, file: string | undefined, where: string, sweepId: string): Promise<void> {
  try {
    await (file === undefined ? store.verify(ref) : store.verifyFile(ref, file));
  } catch (err) {
    if (!(err instanceof ArtifactCorrupt)) throw err;
    throw damagedInput(err, where, sweepId);
  }
}

/** The failure for a damaged artifact a step was about to use: not retried, and says how to get it rebuilt. */
export function damagedInput(err: ArtifactCorrupt, where: string, sweepId: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${where}: ${err.message}. It was not used; \`sweeps resume ${sweepId}\` rebuilds it.`, 'ArtifactCorrupt');
}
