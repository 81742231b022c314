import { isStoredTrialResults } from '../activities/trial-results';
import type { StepResultBase, TrainResult } from '../activities/types';
import type { Plan } from '../pipeline/plan';
import type { SweepResult } from '../workflows/sweep';

/** What a finished sweep reused from the artifact store and what it computed: the measure of a resume. */
export interface Reuse {
  steps: { total: number; reused: number };
  /** `unread`: trials whose results are in the artifact store and could not be read here (counted, not split). */
  trials: { total: number; reused: number; resumed: number; fresh: number; unread?: number };
  /** Epochs trained by this run (a resumed trial counts only the epochs after its checkpoint). */
  epochsTrained: number;
}

export function reuseOf(plan: Plan, result: SweepResult): Reuse {
  const reuse: Reuse = { steps: { total: 0, reused: 0 }, trials: { total: 0, reused: 0, resumed: 0, fresh: 0 }, epochsTrained: 0 };
  for (const step of plan.steps) {
    const output = result.outputs[step.name];
    if (step.trials && isStoredTrialResults(output)) {
      reuse.trials.total += output.count;
      if (output.cached) reuse.trials.reused += output.count;
      else reuse.trials.unread = (reuse.trials.unread ?? 0) + output.count;
    } else if (step.trials) {
      for (const trial of (Array.isArray(output) ? output : []) as TrainResult[]) {
        reuse.trials.total++;
        if (trial.cached) {
          reuse.trials.reused++;
          continue;
        }
        if (trial.resumedFromEpoch > 0) reuse.trials.resumed++;
        else reuse.trials.fresh++;
        reuse.epochsTrained += trial.epochsRun - trial.resumedFromEpoch;
      }
    } else if (output !== undefined) {
      reuse.steps.total++;
      if ((output as StepResultBase).cached) reuse.steps.reused++;
    }
  }
  return reuse;
}

/** One line for people: `reused 4 of 4 steps and 8 of 10 trials; trained 2 trials (1 from a checkpoint), 43 epochs`. */
export function describeReuse(r: Reuse): string {
  const reused =
    `reused ${r.steps.reused} of ${r.steps.total} step${r.steps.total === 1 ? '' : 's'}` +
    (r.trials.total > 0 ? ` and ${r.trials.reused} of ${r.trials.total} trials` : '');
  const trained = r.trials.resumed + r.trials.fresh;
  if (r.trials.unread) return `${reused}; ${r.trials.unread} trials' results could not be read from the artifact store here`;
  if (trained === 0) return `${reused}; trained nothing`;
  const resumed = r.trials.resumed > 0 ? ` (${r.trials.resumed} from a checkpoint)` : '';
  return `${reused}; trained ${trained} trial${trained === 1 ? '' : 's'}${resumed}, ${r.epochsTrained} epoch${r.epochsTrained === 1 ? '' : 's'}`;
}
