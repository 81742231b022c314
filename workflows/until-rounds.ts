import { proxyActivities } from '@temporalio/workflow';
import type { SearchActivities } from '../activities';
import type { TrialResult, UntilOutcome, UntilTrialOutcome } from '../activities/types';
import type { PlanStep, PlanTrial } from '../pipeline/plan';
import { fanOut, type FanOutContext } from './fan-out';

/** The decision is a few arithmetic operations: a minute covers any queue wait. */
const search = proxyActivities<SearchActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

export interface UntilRun {
  results: TrialResult[];
  outcome: UntilOutcome;
}

/**
 * Seeds until sure: runs a matrix step's trials seed by seed, in rounds (first `minSeeds` seeds,
 * then `roundSeeds` at a time), and after each round asks the `assessUntil` activity whether the
 * paired difference is decided. Each decision is an activity result, so it is in the history: a
 * replay or resume follows the recorded decisions exactly. The plan holds every trial up to
 * `maxSeeds`; those of rounds never started are simply not run.
 */
export async function untilRounds(step: PlanStep, inputs: Record<string, unknown>, ctx: FanOutContext): Promise<UntilRun> {
  const rule = step.until!;
  const trials = step.trials ?? [];
  const seedOf = (t: PlanTrial) => Number(t.cell.seed ?? t.params.seed);
  const results: TrialResult[] = [];
  const finished: UntilTrialOutcome[] = [];
  let used = 0;
  let round = 0;
  let outcome: UntilOutcome | undefined;
  while (used < rule.seeds.length) {
    const seeds = new Set(rule.seeds.slice(used, used + (round === 0 ? rule.minSeeds : rule.roundSeeds)));
    used += seeds.size;
    round++;
    const batch = trials.filter((t) => seeds.has(seedOf(t)));
    const got = await fanOut(step, inputs, ctx, batch);
    results.push(...got);
    got.forEach((r, i) => {
      const trial = batch[i]!;
      finished.push({ variant: trial.cell[rule.compare] as UntilTrialOutcome['variant'], seed: seedOf(trial), validAcc: r.best.valid_acc });
    });
    outcome = await search.assessUntil({ step: step.name, rule, trials: finished, round });
    ctx.view.untilChanged(outcome);
    if (outcome.stop) break;
  }
  return { results, outcome: outcome! };
}
