import type { Pruner, TrialProgress } from './pruner';
import type { Sampler, TrialResult } from './sampler';
import type { Params } from './space';

/**
 * The decision core of an adaptive sweep, with no Temporal and no I/O: given what every trial has
 * recorded so far, which trials to start or continue when slots free up. The sweep workflow (or an
 * activity it calls) runs this on recorded results only, so a resumed sweep takes the same
 * decisions as an uninterrupted one.
 */

/** A trial as the sweep records it: its suggestion and the metrics of each finished epoch. */
export interface SearchTrial extends TrialProgress {
  /** Suggestion order: 0, 1, 2, … */
  number: number;
  params: Params;
}

export type Action =
  | { kind: 'start'; trial: string; number: number; params: Params; toEpoch: number }
  | { kind: 'continue'; trial: string; fromEpoch: number; toEpoch: number; reason: string };

export interface SearchPlan {
  sampler: Sampler;
  pruner?: Pruner;
  /** The objective the sampler optimises (its direction is the sampler's): this metric at a trial's last epoch. */
  metric: string;
  maxEpochs: number;
  maxTrials: number;
  /** Names new trials, e.g. `trial-7`. */
  trialId?: (number: number) => string;
}

/** What the sampler learns from the trials: complete ones by their final value, paused ones by their curve. */
export function samplerView(trials: readonly SearchTrial[], metric: string): TrialResult[] {
  return [...trials]
    .sort((a, b) => a.number - b.number)
    .map((t) => {
      const curve = t.epochs.map((m) => m[metric] ?? NaN);
      if (t.state === 'complete') return { number: t.number, params: t.params, state: 'complete', value: curve[curve.length - 1] ?? NaN, intermediate: curve };
      if (t.state === 'paused') return { number: t.number, params: t.params, state: 'pruned', intermediate: curve };
      return { number: t.number, params: t.params, state: 'running' };
    });
}

/** Up to `slots` actions: promotions of paused trials first (they build on paid epochs), then new trials. */
export function nextActions(trials: readonly SearchTrial[], plan: SearchPlan, slots: number): Action[] {
  const view = trials.map((t) => ({ ...t }));
  const actions: Action[] = [];
  let starts = 0;
  while (actions.length < slots) {
    const promotion = plan.pruner?.promotion(view) ?? null;
    if (promotion) {
      view.find((t) => t.trial === promotion.trial)!.state = 'running';
      actions.push({ kind: 'continue', ...promotion });
    } else if (trials.length + starts < plan.maxTrials) {
      starts++;
      actions.push({ kind: 'start', trial: '', number: -1, params: {}, toEpoch: plan.maxEpochs });
    } else break;
  }
  if (starts > 0) {
    // One batch for all new trials, so the sampler spreads them apart (constant liar).
    const suggestions = plan.sampler.suggest(samplerView(trials, plan.metric), starts);
    const name = plan.trialId ?? ((n: number) => `trial-${n}`);
    let i = 0;
    for (const action of actions) {
      if (action.kind !== 'start') continue;
      action.number = trials.length + i;
      action.trial = name(action.number);
      action.params = suggestions[i++]!;
    }
  }
  return actions;
}
