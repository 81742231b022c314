import { isStoredTrialResults, withTrialResults } from '../activities/trial-results';
import { createArtifactStore } from '../artifacts/create';
import type { SweepsConfig } from '../client/config';
import type { SweepResult } from '../workflows/sweep';

/**
 * A finished sweep's result as the CLI shows and prints it: a step whose trial results were large
 * returned a reference to them in the artifact store (activities/trial-results.ts); they are read
 * from there, so `sweep --json`, `status` and the reuse line show every trial whichever form the
 * step's output took. When the store cannot be read from here (a bucket without credentials on
 * this machine), the result stays as it is and `problem` says why; readers then show counts only.
 */
export async function withStoredResults(
  result: SweepResult,
  config: Pick<SweepsConfig, 'artifacts' | 'artifactsCache'>,
): Promise<{ result: SweepResult; problem?: string }> {
  if (!Object.values(result.outputs).some(isStoredTrialResults)) return { result };
  try {
    const store = await createArtifactStore(config);
    return { result: { ...result, outputs: await withTrialResults(store, result.outputs) } };
  } catch (err) {
    const steps = Object.keys(result.outputs).filter((s) => isStoredTrialResults(result.outputs[s]));
    return {
      result,
      problem: `the trial results of ${steps.join(', ')} are in the artifact store (${config.artifacts}) and could not be read here: ${(err as Error).message}`,
    };
  }
}

/** The same for a reader that cannot go on without the trials (the benchmarks): a store that cannot be read is an error. */
export async function withStoredResultsOrFail(result: SweepResult, config: Pick<SweepsConfig, 'artifacts' | 'artifactsCache'>): Promise<SweepResult> {
  const read = await withStoredResults(result, config);
  if (read.problem) throw new Error(read.problem);
  return read.result;
}
