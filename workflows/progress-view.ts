import { setCurrentDetails, setHandler } from '@temporalio/workflow';
import type { UntilOutcome } from '../activities/types';
import type { Plan, PlanStep } from '../pipeline/plan';
import {
  addEarlier,
  finishedEarlier,
  sweepProgressQuery,
  type EarlierRuns,
  type SearchRunProgress,
  type StepState,
  type SweepProgress,
  type TrialProgress,
} from './progress';

/**
 * What people see of a running sweep: the `sweepProgress` query (the CLI's live view) and the
 * workflow's current details in the Temporal UI, kept in step with every state change.
 */
export class SweepProgressView {
  readonly progress: SweepProgress;
  /** Runs of a pruned search about to start, by trial id: their entry gets this when it is added. */
  private readonly searchRuns = new Map<string, SearchRunProgress>();

  /** `earlier`: a search continued as new, what its runs before this one finished. */
  constructor(sweepId: string, plan: Pick<Plan, 'pipeline' | 'steps'>, earlier?: EarlierRuns) {
    this.progress = {
      sweepId,
      pipeline: plan.pipeline,
      steps: plan.steps.map((s) => ({ name: s.name, uses: s.uses, state: 'waiting', trials: s.trials?.length })),
      trials: [],
      ...(earlier ? { earlier } : {}),
    };
    setHandler(sweepProgressQuery, () => this.progress);
  }

  stepChanged(step: PlanStep, state: StepState, detail: { output?: unknown; err?: unknown } = {}): void {
    const view = this.progress.steps.find((s) => s.name === step.name)!;
    view.state = state;
    if (state === 'done') view.cached = isCached(detail.output);
    if (state === 'failed') view.error = (detail.err as Error).message;
    this.refresh();
  }

  addTrial(trial: TrialProgress): TrialProgress {
    const run = this.searchRuns.get(trial.trial);
    if (run) trial.search = run;
    this.progress.trials.push(trial);
    return trial;
  }

  /** A search running in a workflow of its own: its runs are in that workflow's progress. */
  searchStarted(workflowId: string): void {
    (this.progress.searches ??= []).push(workflowId);
  }

  /** A run of a pruned search about to be added (by fan-out), with its rung and decision. */
  expectSearchRun(trial: string, run: SearchRunProgress): void {
    this.searchRuns.set(trial, run);
  }

  searchRunOf(trial: string): SearchRunProgress | undefined {
    return this.searchRuns.get(trial);
  }

  /** Seeds until sure: a step's decision after a round. */
  untilChanged(outcome: UntilOutcome): void {
    const entry = { step: outcome.step, rounds: outcome.rounds, seeds: outcome.seeds, stop: outcome.stop, reason: outcome.reason };
    const list = (this.progress.until ??= []);
    const at = list.findIndex((u) => u.step === outcome.step);
    if (at >= 0) list[at] = entry;
    else list.push(entry);
    this.refresh();
  }

  bestValidAcc(): number | undefined {
    const best = Math.max(this.progress.earlier?.bestValidAcc ?? -Infinity, ...this.progress.trials.map((t) => t.bestValidAcc ?? -Infinity));
    return Number.isFinite(best) ? best : undefined;
  }

  /** What a search carries into its next run (continue-as-new): this run's finished trials added to the earlier runs'. */
  carriedEarlier(): EarlierRuns {
    const here = (state: Finished) => this.progress.trials.filter((t) => t.state === state).length;
    const best = Math.max(...this.progress.trials.map((t) => t.bestValidAcc ?? -Infinity));
    return addEarlier(this.progress.earlier, {
      runs: 1,
      done: here('done'),
      failed: here('failed'),
      cancelled: here('cancelled'),
      ...(Number.isFinite(best) ? { bestValidAcc: best } : {}),
    });
  }

  refresh(): void {
    setCurrentDetails(this.describe());
  }

  private describe(): string {
    const p = this.progress;
    const steps = p.steps.map((s) => `${s.name}: ${s.state}${s.cached ? ' (cached)' : ''}`).join(' · ');
    if (p.trials.length === 0 && !p.earlier) return steps;
    const until = (p.until ?? []).map((u) => `\n\n${u.step}, seeds until sure: round ${u.rounds}, ${u.seeds.length} seeds: ${u.reason}`).join('');
    const earlier = p.earlier;
    const count = (state: StepState) => p.trials.filter((t) => t.state === state).length + (isFinished(state) ? (earlier?.[state] ?? 0) : 0);
    const cancelled = count('cancelled');
    const unlisted = earlier ? finishedEarlier(earlier) : 0;
    const best = this.bestValidAcc();
    const runs = [...this.searchRuns.values()];
    const decided = (d: SearchRunProgress['decision']) => runs.filter((r) => r.decision === d).length;
    const pruning = runs.length
      ? `\n\npruned search: ${new Set(runs.map((r) => r.trial)).size} trials in ${runs.length} runs; runs ${decided('training')} training, ${decided('paused')} paused, ${decided('promoted')} promoted, ${decided('completed')} completed`
      : '';
    return (
      `${steps}\n\ntrials: ${count('done')} done, ${count('running')} running, ${count('failed')} failed${cancelled ? `, ${cancelled} cancelled` : ''} of ${p.trials.length + unlisted}` +
      (earlier ? ` (${unlisted} in ${earlier.runs} earlier run${earlier.runs === 1 ? '' : 's'} of this workflow, continued as new)` : '') +
      (best !== undefined ? ` · best valid accuracy ${best.toFixed(4)}` : '') +
      pruning +
      until
    );
  }
}

/** The states an earlier run's trials are counted in. */
type Finished = 'done' | 'failed' | 'cancelled';
const isFinished = (state: StepState): state is Finished => state === 'done' || state === 'failed' || state === 'cancelled';

function isCached(output: unknown): boolean | undefined {
  if (Array.isArray(output)) return output.every((o) => (o as { cached?: boolean }).cached === true);
  return (output as { cached?: boolean } | undefined)?.cached;
}
