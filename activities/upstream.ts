import { ApplicationFailure } from '@temporalio/common';

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
