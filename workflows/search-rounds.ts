import { continueAsNew, ParentClosePolicy, patched, proxyActivities, startChild, workflowInfo } from '@temporalio/workflow';
import type { SearchActivities } from '../activities';
import type { SuggestInput } from '../activities/search';
import type { StoredTrialResults } from '../activities/trial-results';
import type { TrialResult } from '../activities/types';
import type { ArtifactRef } from '../artifacts/store';
import type { PlanStep, PlanTrial } from '../pipeline/plan';
import { fanOut, type FanOutContext } from './fan-out';
import type { EarlierRuns, SearchRunProgress } from './progress';
import { SweepProgressView } from './progress-view';
import { searchAttributes } from './search-attributes';
import { StepResults, type CarriedResults } from './step-results';
import type { SearchRun } from './trial';

/** Sweeps started before runs of a pruned search carried their rung (search attributes, status) must replay without it. */
export const SEARCH_RUN_RUNGS = 'search-run-rungs';
/** Sweeps started before a search ran in a workflow of its own (its runs in the sweep's history) must replay as they ran. */
export const SEARCH_IN_CHILD = 'search-in-child-workflow';
/** Searches that continued as new before they carried their earlier runs' counts (the live view's) must replay without them. */
export const SEARCH_CARRIES_EARLIER = 'search-carries-earlier-runs';

/**
 * A search workflow continues as new once its history passes this size: with a thousand trials of
 * several runs each, the runs' starts and results alone would pass Temporal's 10 MB warning.
 */
const CONTINUE_AFTER_BYTES = 4 * 1024 * 1024;

/** Suggesting reads and writes one small JSON artifact: a few minutes cover a slow store. */
const search = proxyActivities<SearchActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

/** The search workflow's id: beside the sweep's trials, `<sweep>/search-<step>`. */
export const searchWorkflowId = (sweepId: string, step: string) => `${sweepId}/search-${step}`;

/**
 * A matrix step with `search:`: runs in a workflow of its own (searchWorkflow), so that the
 * sweep's history holds one child for the whole search, however many trials it runs.
 */
export async function searchRounds(step: PlanStep, inputs: Record<string, unknown>, ctx: FanOutContext): Promise<TrialResult[] | StoredTrialResults> {
  if (!patched(SEARCH_IN_CHILD)) return rounds(step, inputs, ctx, {});
  const { trials: _none, ...settings } = step;
  const workflowId = searchWorkflowId(ctx.sweepId, step.name);
  const handle = await startChild(searchWorkflow, {
    workflowId,
    args: [
      {
        sweepId: ctx.sweepId,
        pipeline: ctx.pipeline,
        trialQueue: ctx.trialQueue,
        step: settings,
        inputs,
        ...(ctx.blobLimit ? { blobLimit: ctx.blobLimit } : {}),
      },
    ],
    staticSummary: `${ctx.pipeline} · search ${step.name}`,
    parentClosePolicy: ParentClosePolicy.TERMINATE,
    typedSearchAttributes: [
      { key: searchAttributes.pipeline, value: ctx.pipeline },
      { key: searchAttributes.kind, value: 'search' },
    ],
  });
  ctx.view.searchStarted(workflowId);
  return handle.result();
}

export interface SearchWorkflowInput {
  sweepId: string;
  pipeline: string;
  trialQueue: string;
  step: Omit<PlanStep, 'trials'>;
  inputs: Record<string, unknown>;
  /** The server's blob size limit, when the sweep names one (see SweepInput.blobLimit). */
  blobLimit?: number;
  /** Where the run before this one (continued as new) left off. */
  carried?: Carried;
}

/**
 * What a search carries into its next run: the sampler's state, the last round's results, each
 * trial's epochs, and every run's result so far: inline (`results`) while they are small, else the
 * pages of them in the artifact store (`resultPages`) and only those not yet paged inline.
 */
interface Carried {
  state: ArtifactRef;
  finished: SuggestInput['finished'];
  results: TrialResult[];
  resultPages?: CarriedResults['pages'];
  reached: Array<[string, number]>;
  /** What the runs so far finished, for the live view (absent in searches continued before it was carried). */
  earlier?: EarlierRuns;
}

/**
 * The rounds of one search step, its runs as child workflows; continues as new when its history
 * grows large, carrying the search state's reference and the results so far. Its progress query
 * (the sweep's) lists the runs of its current run, and counts those its earlier runs finished.
 */
export async function searchWorkflow(input: SearchWorkflowInput): Promise<TrialResult[] | StoredTrialResults> {
  const step: PlanStep = { ...input.step };
  const view = new SweepProgressView(input.sweepId, { pipeline: input.pipeline, steps: [step] }, input.carried?.earlier);
  view.stepChanged(step, 'running');
  const ctx: FanOutContext = {
    sweepId: input.sweepId,
    pipeline: input.pipeline,
    trialQueue: input.trialQueue,
    view,
    ...(input.blobLimit ? { blobLimit: input.blobLimit } : {}),
  };
  return rounds(step, input.inputs, ctx, { carried: input.carried, continueAsNew: (carried) => continueAsNew<typeof searchWorkflow>({ ...input, carried }) });
}

/**
 * Rounds of up to `concurrency` trials, each round suggested by the `suggestTrials` activity from
 * the results of the rounds before. What the sampler has seen lives in an artifact; the workflow
 * holds only its reference and the current round, and every suggestion is an activity result in
 * history, so a replay or a resume runs the same trials.
 */
async function rounds(
  step: PlanStep,
  inputs: Record<string, unknown>,
  ctx: FanOutContext,
  options: { carried?: Carried; continueAsNew?: (carried: Carried) => Promise<never> },
): Promise<TrialResult[] | StoredTrialResults> {
  const { trials: _none, ...settings } = step;
  // The runs need the step's settings, not the search's space and cells: smaller inputs in history.
  const { search: _space, ...runSettings } = settings;
  const runStep: PlanStep = options.continueAsNew ? { ...runSettings, search: undefined } : step;
  // Every run's result: in the workflow while small, in the artifact store once large (./step-results.ts).
  const results = new StepResults(ctx.sweepId, step.name, ctx.blobLimit, {
    inline: options.carried?.results ?? [],
    ...(options.carried?.resultPages ? { pages: options.carried.resultPages } : {}),
  });
  const rungs = new Rungs(options.carried?.reached);
  let state: ArtifactRef | undefined = options.carried?.state;
  let finished: SuggestInput['finished'] = options.carried?.finished ?? [];
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
    const got = await fanOut(runStep, inputs, ctx, round);
    const paging = results.add(got);
    if (paging) await paging;
    rungs.finished(round, got, ctx);
    // With pruning, the activity reads each run's per-epoch metrics from its artifact.
    finished = got.map((r, i) => {
      const run = r as TrialResult & { metrics?: string; stoppedEarly?: boolean };
      const base = { trial: next.trials[i]!.id, value: r.best.valid_acc };
      return settings.search!.prune ? { ...base, ref: r.ref, ...(run.metrics ? { metrics: run.metrics } : {}), stoppedEarly: run.stoppedEarly === true } : base;
    });
    const info = workflowInfo();
    if (options.continueAsNew && (info.continueAsNewSuggested || info.historySize > CONTINUE_AFTER_BYTES)) {
      const carried = await results.carried();
      await options.continueAsNew({
        state,
        finished,
        results: carried.inline,
        ...(carried.pages ? { resultPages: carried.pages } : {}),
        reached: rungs.carried(),
        ...(patched(SEARCH_CARRIES_EARLIER) ? { earlier: ctx.view.carriedEarlier() } : {}),
      });
    }
  }
  return results.output();
}

/**
 * Where each trial of a pruned search stands: a trial trains rung by rung, one run (`<trial>-e<rung>`)
 * per rung. A run starting where an earlier one of its trial stopped is a promotion; a run that
 * stops at its rung is paused until one is. Read only for people (search attributes, status).
 */
class Rungs {
  /** Epochs each trial has reached, and the progress entry of its last run. */
  private reached: Map<string, { epochs: number; last?: SearchRunProgress }>;

  constructor(carried: Array<[string, number]> = []) {
    this.reached = new Map(carried.map(([trial, epochs]) => [trial, { epochs }]));
  }

  carried(): Array<[string, number]> {
    return [...this.reached].map(([trial, { epochs }]) => [trial, epochs]);
  }

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
