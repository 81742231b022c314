import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArtifactRef } from '../artifacts/store';
import { trialId as matrixTrialId } from '../pipeline/expand';
import type { PlanSearch, PlanTrial } from '../pipeline/plan';
import type { TrialResult as SamplerTrial } from '../search/sampler';
import { createPruner, type PrunerConfig } from '../search/pruners';
import { createSampler, samplerConfigSchema } from '../search/samplers';
import { nextActions } from '../search/scheduler';
import type { Params } from '../search/space';
import type { ActivityDeps } from './deps';
import { stepModule } from './registry';

/** Bump when the state file or the way suggestions are made changes. */
export const SEARCH_STATE_VERSION = 1;

/** What a search has seen, per grid cell: the artifact `state.json` (only its reference goes into history). */
export interface SearchState {
  cells: Array<{
    cell: Record<string, unknown>;
    trials: Array<{
      number: number;
      trial: string;
      params: Params;
      state: 'running' | 'paused' | 'complete';
      value?: number;
      /** With pruning: the run now training (`<trial>-e<epoch>`), each epoch's metrics so far, and the epoch it trains to. */
      segment?: string;
      epochs?: Array<Record<string, number>>;
      toEpoch?: number;
    }>;
  }>;
}

export interface SuggestInput {
  sweepId: string;
  step: string;
  uses: string;
  search: PlanSearch;
  concurrency: number;
  /** The state after the previous round; absent before the first. */
  state?: ArtifactRef;
  /** The trials of the previous round with their objective (and, for pruning, where their per-epoch metrics are). */
  finished: Array<{ trial: string; value: number; ref?: ArtifactRef; metrics?: string; stoppedEarly?: boolean }>;
}

/** A finished run as `next` reads it: with pruning, every epoch's metrics so far. */
export interface FinishedRun {
  trial: string;
  value: number;
  epochs?: Array<Record<string, number>>;
  stoppedEarly?: boolean;
}

export interface SuggestResult {
  state: ArtifactRef;
  /** The next round's trials; empty when every cell's budget is spent. */
  trials: PlanTrial[];
  /** The best trial so far (of all cells). */
  best?: { trial: string; value: number; params: Params };
  suggested: number;
}

/**
 * The next round of a search: records the previous round's results into the search state (a new
 * artifact, named by the previous one and those results, so a retried call finds it and returns
 * the same trials) and asks the sampler for up to `concurrency` new trials, spread over the grid
 * cells with budget left. The sampler is a pure function of the state and its seed; the trials
 * it returns are recorded in history as this activity's result, so a replay or a resume of the
 * sweep runs exactly the same trials.
 */
export async function suggestTrials(input: SuggestInput, deps: ActivityDeps): Promise<SuggestResult> {
  const { search } = input;
  const module = stepModule(input.uses);
  if (!module) throw new Error(`step ${input.step}: no step type "${input.uses}"`);
  const previous: SearchState = input.state
    ? (JSON.parse(await readFile(await verified(deps, input.state, 'state.json'), 'utf8')) as SearchState)
    : { cells: search.cells.map((cell) => ({ cell, trials: [] })) };
  const identity = {
    type: 'search-state',
    version: SEARCH_STATE_VERSION,
    params: { sweep: input.sweepId, step: input.step, search, concurrency: input.concurrency },
    inputs: { previous: input.state?.dir ?? null, finished: input.finished },
  };
  const finished: FinishedRun[] = await Promise.all(
    input.finished.map(async (f) => {
      if (!search.prune || !f.ref || !f.metrics) return { trial: f.trial, value: f.value };
      const epochs = JSON.parse(await readFile(await verified(deps, f.ref, f.metrics), 'utf8')) as Array<Record<string, number>>;
      return { trial: f.trial, value: f.value, epochs, stoppedEarly: f.stoppedEarly === true };
    }),
  );
  const { ref, result } = await deps.store.getOrBuild(identity, async (dir) => {
    const state = next(
      previous,
      { ...input, finished },
      module.params.parse.bind(module.params) as (v: unknown) => Record<string, unknown>,
      module.trialId?.bind(module),
    );
    await writeFile(join(dir, 'state.json'), `${JSON.stringify(state.state)}\n`);
    return { trials: state.trials, best: state.best, suggested: state.suggested };
  });
  return { state: ref, ...result };
}

async function verified(deps: ActivityDeps, ref: ArtifactRef, file: string): Promise<string> {
  await deps.store.verifyFile(ref, file);
  return deps.store.localPath(ref, file);
}

/** What one round decides: the new state, the trials to run, the best complete trial so far, how many were suggested. */
type Round = { state: SearchState; trials: PlanTrial[]; best?: SuggestResult['best']; suggested: number };

/** The pure part: results in, suggestions out. */
export function next(
  previous: SearchState,
  input: Pick<SuggestInput, 'search' | 'concurrency'> & { finished: FinishedRun[] },
  parseParams: (v: unknown) => Record<string, unknown>,
  nameTrial?: (params: never, cell: Record<string, unknown>) => string,
): Round {
  const { search } = input;
  const state: SearchState = JSON.parse(JSON.stringify(previous)) as SearchState;
  if (search.prune) return nextPruned(state, input, parseParams, nameTrial);
  const values = new Map(input.finished.map((f) => [f.trial, f.value]));
  for (const c of state.cells) {
    for (const t of c.trials) {
      const value = values.get(t.trial);
      if (value !== undefined) Object.assign(t, { state: 'complete', value });
    }
  }
  const config = samplerConfigOf(search);
  const open = state.cells.filter((c) => c.trials.length < search.trials);
  const perCell = Math.max(1, Math.floor(input.concurrency / Math.max(1, open.length)));
  const trials: PlanTrial[] = [];
  for (const c of open) {
    if (trials.length >= Math.max(input.concurrency, open.length)) break;
    const count = Math.min(perCell, search.trials - c.trials.length);
    const seen: SamplerTrial[] = c.trials.map((t) =>
      t.state === 'complete'
        ? { number: t.number, params: t.params, state: 'complete', value: t.value! }
        : { number: t.number, params: t.params, state: 'running' },
    );
    const suggestions = createSampler(search.space, config, search.direction).suggest(seen, count);
    suggestions.forEach((params, i) => {
      const number = c.trials.length + i;
      const full = parseParams({ ...search.with, ...c.cell, ...params });
      const base = nameTrial ? nameTrial(full as never, c.cell) : matrixTrialId(c.cell) || 'search';
      const id = `${base}-t${number}`;
      const shown = { ...c.cell, ...params };
      trials.push({
        id,
        params: full,
        cell: shown,
        label: Object.entries(shown)
          .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toPrecision(3) : String(v)}`)
          .join(' '),
        ...(typeof full.seed === 'number' && Number.isSafeInteger(full.seed) ? { seed: full.seed } : {}),
      });
    });
    suggestions.forEach((params, i) =>
      c.trials.push({ number: c.trials.length, trial: trials[trials.length - suggestions.length + i]!.id, params, state: 'running' }),
    );
  }
  return roundResult(state, trials, search.direction);
}

function roundResult(state: SearchState, trials: PlanTrial[], direction: PlanSearch['direction']): Round {
  const complete = state.cells.flatMap((c) => c.trials.filter((t) => t.state === 'complete'));
  const sign = direction === 'maximize' ? 1 : -1;
  const bestTrial = complete.reduce<(typeof complete)[number] | undefined>((a, t) => (a === undefined || sign * t.value! > sign * a.value! ? t : a), undefined);
  return {
    state,
    trials,
    ...(bestTrial ? { best: { trial: bestTrial.trial, value: bestTrial.value!, params: bestTrial.params } } : {}),
    suggested: state.cells.reduce((n, c) => n + c.trials.length, 0),
  };
}

function samplerConfigOf(search: PlanSearch) {
  return samplerConfigSchema.parse({
    algorithm: search.sampler,
    seed: search.seed,
    ...(search.sampler === 'tpe' && search.nStartupTrials !== undefined ? { n_startup_trials: search.nStartupTrials } : {}),
  });
}

function labelOf(shown: Record<string, unknown>, toEpoch?: number): string {
  const text = Object.entries(shown)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toPrecision(3) : String(v)}`)
    .join(' ');
  return toEpoch === undefined ? text : `${text} →${toEpoch}`;
}

/**
 * With a pruner: each trial trains rung by rung (a run with `pause_at_epoch` up to the next rung,
 * continuing the trial's checkpoints). After a run, the pruner pauses the trial or lets it go on;
 * free slots go to promotions of paused trials first, then to new trials from the sampler
 * (search/scheduler.ts). A paused trial is never lost: promoted, it continues from its checkpoint.
 */
function nextPruned(
  state: SearchState,
  input: Pick<SuggestInput, 'search' | 'concurrency'> & { finished: FinishedRun[] },
  parseParams: (v: unknown) => Record<string, unknown>,
  nameTrial?: (params: never, cell: Record<string, unknown>) => string,
): Round {
  const { search } = input;
  const config = samplerConfigOf(search);
  const runs = new Map(input.finished.map((f) => [f.trial, f]));
  const trials: PlanTrial[] = [];
  const perCell = Math.max(1, Math.floor(input.concurrency / state.cells.length));
  for (const c of state.cells) {
    const maxEpochs = Number(parseParams({ ...search.with, ...c.cell }).epochs);
    const pruner = createPruner(search.prune!, maxEpochs);
    const progress = () => c.trials.map((t) => ({ trial: t.trial, epochs: t.epochs ?? [], state: t.state }));
    const continuing: Array<{ t: (typeof c.trials)[number]; toEpoch: number }> = [];
    for (const t of c.trials) {
      const run = t.segment ? runs.get(t.segment) : undefined;
      if (!run) continue;
      t.epochs = run.epochs ?? [];
      t.segment = undefined;
      const reached = t.epochs.length;
      if (reached >= maxEpochs || run.stoppedEarly || reached < (t.toEpoch ?? 0)) {
        Object.assign(t, { state: 'complete', value: t.epochs[reached - 1]?.[search.metric] ?? run.value });
        continue;
      }
      const decision = pruner.afterEpoch(t.trial, progress());
      if (decision.action === 'pause') t.state = 'paused';
      else continuing.push({ t, toEpoch: nextRung(search.prune!, reached, maxEpochs) });
    }
    const slots = Math.max(0, perCell - continuing.length);
    const actions = nextActions(
      c.trials.map((t) => ({ trial: t.trial, number: t.number, params: t.params, epochs: t.epochs ?? [], state: t.state })),
      {
        sampler: createSampler(search.space, config, search.direction),
        pruner,
        metric: search.metric,
        maxEpochs: nextRung(search.prune!, 0, maxEpochs),
        maxTrials: search.trials,
      },
      slots,
    );
    const runOf = (t: (typeof c.trials)[number], toEpoch: number) => {
      const full = parseParams({ ...search.with, ...c.cell, ...t.params, ...(toEpoch < maxEpochs ? { pause_at_epoch: toEpoch } : {}) });
      t.segment = `${t.trial}-e${toEpoch}`;
      t.toEpoch = toEpoch;
      t.state = 'running';
      const shown = { ...c.cell, ...t.params };
      trials.push({ id: t.segment, params: full, cell: shown, label: labelOf(shown, toEpoch), ...(typeof full.seed === 'number' ? { seed: full.seed } : {}) });
    };
    for (const { t, toEpoch } of continuing) runOf(t, toEpoch);
    for (const action of actions) {
      if (action.kind === 'continue') {
        runOf(
          c.trials.find((t) => t.trial === action.trial)!,
          action.toEpoch,
        );
        continue;
      }
      const number = c.trials.length;
      const full = parseParams({ ...search.with, ...c.cell, ...action.params });
      const base = nameTrial ? nameTrial(full as never, c.cell) : matrixTrialId(c.cell) || 'search';
      const t = { number, trial: `${base}-t${number}`, params: action.params, state: 'running' as const };
      c.trials.push(t);
      runOf(c.trials[c.trials.length - 1]!, action.toEpoch);
    }
  }
  return roundResult(state, trials, search.direction);
}

/** The epoch a run from `epoch` trains to: the next rung (grace · η^k), or the end. */
function nextRung(prune: PrunerConfig, epoch: number, maxEpochs: number): number {
  if (prune.rule === 'median') return Math.min(maxEpochs, epoch + 1);
  for (let r = prune.grace_epochs; r < maxEpochs; r *= prune.reduction_factor) if (r > epoch) return r;
  return maxEpochs;
}
