import { proxyActivities } from '@temporalio/workflow';
import type { SearchActivities } from '../activities';
import type { SuggestInput } from '../activities/search';
import type { TrialResult } from '../activities/types';
import type { ArtifactRef } from '../artifacts/store';
import type { PlanStep } from '../pipeline/plan';
import { fanOut, type FanOutContext } from './fan-out';

/** Suggesting reads and writes one small JSON artifact: a few minutes cover a slow store. */
const search = proxyActivities<SearchActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

/**
 * A matrix step with `search:`: rounds of up to `concurrency` trials, each round suggested by the
 * `suggestTrials` activity from the results of the rounds before. What the sampler has seen lives
 * in an artifact; the workflow holds only its reference and the current round, and every
 * suggestion is an activity result in history, so a replay or a resume runs the same trials.
 */
export async function searchRounds(step: PlanStep, inputs: Record<string, unknown>, ctx: FanOutContext): Promise<TrialResult[]> {
  const { trials: _none, ...settings } = step;
  const results: TrialResult[] = [];
  let state: ArtifactRef | undefined;
  let finished: SuggestInput['finished'] = [];
  for (;;) {
    const next = await search.suggestTrials({
      sweepId: ctx.sweepId,
      step: step.name,
      uses: step.uses,
      search: settings.search!,
      concurrency: step.concurrency,
      ...(state ? { state } : {}),
      finished,
    });
    state = next.state;
    if (next.trials.length === 0) break;
    const got = await fanOut(step, inputs, ctx, next.trials);
    results.push(...got);
    // With pruning, the activity reads each run's per-epoch metrics from its artifact.
    finished = got.map((r, i) => {
      const run = r as TrialResult & { metrics?: string; stoppedEarly?: boolean };
      const base = { trial: next.trials[i]!.id, value: r.best.valid_acc };
      return settings.search!.prune ? { ...base, ref: r.ref, ...(run.metrics ? { metrics: run.metrics } : {}), stoppedEarly: run.stoppedEarly === true } : base;
    });
  }
  return results;
}
