import type { ActivityDeps } from './deps';
import { parseStepParams } from './params';
import { stepModules } from './registry';
import type { StepInput, UntilOutcome, UntilRoundInput } from './types';
import { suggestTrials, type SuggestInput, type SuggestResult } from './search';
import { codeVersion } from './tracking';
import { appendTrialResults, sealTrialResults, type AppendInput, type SealInput, type StoredTrialResults, type TrialResultPages } from './trial-results';
import { assessUntil } from './until';

/** A step's activity as the workflows call it: parameters arrive validated by the planner. */
export type StepActivity = (input: StepInput<Record<string, unknown>>) => Promise<unknown>;

/** The activities the worker registers, keyed by step type (the `uses:` of pipeline steps). */
export type SweepActivities = Record<string, StepActivity>;

/** Activities the workflows call besides the step types': the decisions of adaptive sweeps. */
export interface SearchActivities {
  assessUntil(input: UntilRoundInput & { round: number }): Promise<UntilOutcome>;
  suggestTrials(input: SuggestInput): Promise<SuggestResult>;
}

/** Activities that keep a large step's trial results in the artifact store instead of workflow history (./trial-results.ts). */
export interface TrialResultsActivities {
  appendTrialResults(input: AppendInput): Promise<TrialResultPages>;
  sealTrialResults(input: SealInput): Promise<StoredTrialResults>;
}

/**
 * One activity per registered step type; the names are the activity types shown in the Temporal
 * UI. Parameters are checked here, one way for every step type, before the step's own code runs.
 */
export function createActivities(deps: ActivityDeps): SweepActivities & SearchActivities & TrialResultsActivities {
  // A training worker records the code version in every trial: its `git` runs now, not in the first trial.
  if (deps.trainPool) void codeVersion();
  const steps: SweepActivities = Object.fromEntries(
    stepModules.map((module) => {
      const activity: StepActivity = (input) => module.activity({ ...input, params: parseStepParams(module.params, input.params, input.step) }, deps);
      return [module.type, activity];
    }),
  );
  return Object.assign(steps, {
    assessUntil,
    suggestTrials: (input: SuggestInput) => suggestTrials(input, deps),
    appendTrialResults: (input: AppendInput) => appendTrialResults(input, deps),
    sealTrialResults: (input: SealInput) => sealTrialResults(input, deps),
  });
}
