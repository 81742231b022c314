import { patched, proxyActivities } from '@temporalio/workflow';
import type { SearchActivities } from '../activities';
import type { SuggestInput } from '../activities/search';
import type { TrialResult } from '../activities/types';
import type { ArtifactRef } from '../artifacts/store';
import type { PlanStep, PlanTrial } from '../pipeline/plan';
import { fanOut, type FanOutContext } from './fan-out';
import type { SearchRunProgress } from './progress';
import type { SearchRun } from './trial';

/** Sweeps started before runs of a pruned search carried their rung (search attributes, status) must replay without it. */
export const SEARCH_RUN_RUNGS = 'search-run-rungs';

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
  const rungs = new Rungs();
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
    const round = settings.search!.prune && patched(SEARCH_RUN_RUNGS) ? rungs.start(next.trials, ctx) : next.trials;
    const got = await fanOut(step, inputs, ctx, round);
    results.push(...got);
    rungs.finished(round, got, ctx);
    // With pruning, the activity reads each run's per-epoch metrics from its artifact.
    finished = got.map((r, i) => {
      const run = r as TrialResult & { metrics?: string; stoppedEarly?: boolean };
      const base = { trial: next.trials[i]!.id, value: r.best.valid_acc };
      return settings.search!.prune ? { ...base, ref: r.ref, ...(run.metrics ? { metrics: run.metrics } : {}), stoppedEarly: run.stoppedEarly === true } : base;
    });
  }
  return results;
}

/**
 * Where each trial of a pruned search stands: a trial trains rung by rung, one run (`<trial>-e<rung>`)
 * per rung. A run starting where an earlier one of its trial stopped is a promotion; a run that
 * stops at its rung is paused until one is. Read only for people (search attributes, status).
 */
class Rungs {
  /** Epochs each trial has reached, and the progress entry of its last run. */
  private reached = new Map<string, { epochs: number; last?: SearchRunProgress }>();

  start(trials: PlanTrial[], ctx: FanOutContext): Array<PlanTrial & { searchRun?: SearchRun }> {
    return trials.map((t) => {
      const match = /^(.*)-e(\d+)$/.exec(t.id);
      if (!match) return t;
      const trial = match[1]!;
      const before = this.reached.get(trial);
      const run: SearchRun = { trial, from: before?.epochs ?? 0, rung: Number(match[2]) };
      if (before?.last && run.from > 0) before.last.decision = 'promoted';
      ctx.view.expectSearchRun(t.id, { ...run, decision: 'training' });
      return { ...t, searchRun: run };
    });
  }

  finished(trials: Array<PlanTrial & { searchRun?: SearchRun }>, results: TrialResult[], ctx: FanOutContext): void {
    trials.forEach((t, i) => {
      const run = t.searchRun;
      const result = results[i] as TrialResult & { stoppedEarly?: boolean };
      if (!run) return;
      const entry = ctx.view.searchRunOf(t.id);
      const epochs = Number(t.params.epochs);
      if (entry) {
        entry.rung = result.epochsRun;
        entry.decision = result.epochsRun === run.rung && run.rung < epochs && result.stoppedEarly !== true ? 'paused' : 'completed';
      }
      this.reached.set(run.trial, { epochs: result.epochsRun, last: entry });
    });
    ctx.view.refresh();
  }
}
