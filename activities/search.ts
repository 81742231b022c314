import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArtifactRef } from '../artifacts/store';
import { trialId as matrixTrialId } from '../pipeline/expand';
import type { PlanSearch, PlanTrial } from '../pipeline/plan';
import type { TrialResult as SamplerTrial } from '../search/sampler';
import { createSampler, samplerConfigSchema } from '../search/samplers';
import type { Params } from '../search/space';
import type { ActivityDeps } from './deps';
import { stepModule } from './registry';

/** Bump when the state file or the way suggestions are made changes. */
export const SEARCH_STATE_VERSION = 1;

/** What a search has seen, per grid cell: the artifact `state.json` (only its reference goes into history). */
export interface SearchState {
  cells: Array<{
    cell: Record<string, unknown>;
    trials: Array<{ number: number; trial: string; params: Params; state: 'running' | 'complete'; value?: number }>;
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
  /** The trials of the previous round with their objective. */
  finished: Array<{ trial: string; value: number }>;
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
  const { ref, result } = await deps.store.getOrBuild(identity, async (dir) => {
    const state = next(previous, input, module.params.parse.bind(module.params) as (v: unknown) => Record<string, unknown>, module.trialId?.bind(module));
    await writeFile(join(dir, 'state.json'), `${JSON.stringify(state.state)}\n`);
    return { trials: state.trials, best: state.best, suggested: state.suggested };
  });
  return { state: ref, ...result };
}

async function verified(deps: ActivityDeps, ref: ArtifactRef, file: string): Promise<string> {
  await deps.store.verifyFile(ref, file);
  return deps.store.localPath(ref, file);
}

/** The pure part: results in, suggestions out. */
export function next(
  previous: SearchState,
  input: Pick<SuggestInput, 'search' | 'concurrency' | 'finished'>,
  parseParams: (v: unknown) => Record<string, unknown>,
  nameTrial?: (params: never, cell: Record<string, unknown>) => string,
): { state: SearchState; trials: PlanTrial[]; best?: SuggestResult['best']; suggested: number } {
  const { search } = input;
  const state: SearchState = JSON.parse(JSON.stringify(previous)) as SearchState;
  const values = new Map(input.finished.map((f) => [f.trial, f.value]));
  for (const c of state.cells) {
    for (const t of c.trials) {
      const value = values.get(t.trial);
      if (value !== undefined) Object.assign(t, { state: 'complete', value });
    }
  }
  const config = samplerConfigSchema.parse({
    algorithm: search.sampler,
    seed: search.seed,
    ...(search.sampler === 'tpe' && search.nStartupTrials !== undefined ? { n_startup_trials: search.nStartupTrials } : {}),
  });
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
  const complete = state.cells.flatMap((c) => c.trials.filter((t) => t.state === 'complete'));
  const sign = search.direction === 'maximize' ? 1 : -1;
  const bestTrial = complete.reduce<(typeof complete)[number] | undefined>((a, t) => (a === undefined || sign * t.value! > sign * a.value! ? t : a), undefined);
  return {
    state,
    trials,
    ...(bestTrial ? { best: { trial: bestTrial.trial, value: bestTrial.value!, params: bestTrial.params } } : {}),
    suggested: state.cells.reduce((n, c) => n + c.trials.length, 0),
  };
}
