import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { canonicalJson } from '../artifacts/canonical';
import { ArtifactCorrupt, type ArtifactRef, type ArtifactStore } from '../artifacts/store';
import type { ActivityDeps } from './deps';
import type { TrialResult } from './types';

/**
 * A matrix step's trial results kept in the artifact store instead of in workflow history.
 *
 * Why: every Temporal payload (an activity's input, a child's result, a workflow's result, a
 * continue-as-new input) must stay below the server's blob size limit (`limit.blobSize.error`,
 * 2 MB by default). A step's output used to be the array of all its trial results, each about a
 * kilobyte or two: a few thousand trials made one payload too large, and the sweep failed at its
 * end, after all its training. Once a step's results grow large, the workflow hands them, a page
 * at a time (each page well below the limit), to `appendTrialResults`, and at the step's end
 * `sealTrialResults` writes them all as one file; the step's output is then a `StoredTrialResults`
 * (a reference, a count) that the report and the CLI resolve from the store (`trialResultsOf`).
 */

/** Bump when the page or results file changes. */
export const TRIAL_RESULTS_VERSION = 1;
/** The file of a sealed artifact: the JSON array of every trial result, in the step's order. */
export const RESULTS_FILE = 'results.json';
/** The file of a page: `{ previous, count, results }`, the previous page's reference (or null) and this page's results. */
export const PAGE_FILE = 'page.json';

/** The pages written so far: the last one (which names the one before it), how many results they hold. */
export interface TrialResultPages {
  lastPage: ArtifactRef;
  count: number;
  /** Every result so far was a cache hit. */
  cached: boolean;
}

/** A step's output when its results live in the store: `results.json` inside `trialResults`. */
export interface StoredTrialResults {
  trialResults: ArtifactRef;
  file: typeof RESULTS_FILE;
  count: number;
  /** Every trial was a cache hit (read as a step's `cached`, like an inline step output's). */
  cached: boolean;
}

interface PageFile {
  previous: ArtifactRef | null;
  count: number;
  results: TrialResult[];
}

export interface AppendInput {
  sweepId: string;
  step: string;
  /** The pages written before; absent for the first page. */
  previous?: TrialResultPages;
  results: TrialResult[];
}

export interface SealInput {
  sweepId: string;
  step: string;
  pages: TrialResultPages;
}

export function isStoredTrialResults(value: unknown): value is StoredTrialResults {
  const v = value as Partial<StoredTrialResults> | null;
  return typeof v === 'object' && v !== null && typeof v.trialResults === 'object' && v.file === RESULTS_FILE && typeof v.count === 'number';
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Writes one page of a step's results: an artifact named by the page before it and this page's
 * content, so a retried call finds the page it wrote and returns the same reference.
 */
export async function appendTrialResults(input: AppendInput, deps: ActivityDeps): Promise<TrialResultPages> {
  const count = (input.previous?.count ?? 0) + input.results.length;
  const identity = {
    type: 'trial-results-page',
    version: TRIAL_RESULTS_VERSION,
    params: { sweep: input.sweepId, step: input.step },
    inputs: { previous: input.previous?.lastPage.dir ?? null, page: sha256(canonicalJson(input.results)) },
  };
  const { ref } = await deps.store.getOrBuild(identity, async (dir) => {
    const page: PageFile = { previous: input.previous?.lastPage ?? null, count, results: input.results };
    await writeFile(join(dir, PAGE_FILE), JSON.stringify(page));
    return { count };
  });
  return { lastPage: ref, count, cached: (input.previous?.cached ?? true) && input.results.every((r) => r.cached) };
}

/** Writes every page's results, in order, as one file (`results.json`): the step's output refers to it. */
export async function sealTrialResults(input: SealInput, deps: ActivityDeps): Promise<StoredTrialResults> {
  const identity = {
    type: 'trial-results',
    version: TRIAL_RESULTS_VERSION,
    params: { sweep: input.sweepId, step: input.step },
    inputs: { lastPage: input.pages.lastPage.dir },
  };
  const { ref } = await deps.store.getOrBuild(identity, async (dir) => {
    const results = await readPages(deps.store, input.pages, `step ${input.step}`);
    await writeFile(join(dir, RESULTS_FILE), JSON.stringify(results));
    return { count: results.length };
  });
  return { trialResults: ref, file: RESULTS_FILE, count: input.pages.count, cached: input.pages.cached };
}

/** Every page's results, first page first, each page checked against the reference its successor (or the workflow) holds. */
async function readPages(store: ArtifactStore, pages: TrialResultPages, where: string): Promise<TrialResult[]> {
  const chain: TrialResult[][] = [];
  let next: ArtifactRef | null = pages.lastPage;
  while (next) {
    const page = JSON.parse(await readVerified(store, next, PAGE_FILE, where)) as PageFile;
    chain.unshift(page.results);
    next = page.previous;
  }
  const results = chain.flat();
  if (results.length !== pages.count) {
    throw ApplicationFailure.nonRetryable(`${where}: the trial result pages hold ${results.length} results, expected ${pages.count}`, 'ArtifactCorrupt');
  }
  return results;
}

async function readVerified(store: ArtifactStore, ref: ArtifactRef, file: string, where: string): Promise<string> {
  try {
    await store.verifyFile(ref, file);
  } catch (err) {
    if (!(err instanceof ArtifactCorrupt)) throw err;
    throw ApplicationFailure.nonRetryable(
      `${where}: trial results ${ref.dir}/${file}: ${err.message}. Run the sweep again: its trials are cache hits and their results are written anew.`,
      'ArtifactCorrupt',
    );
  }
  return readFile(await store.localPath(ref, file), 'utf8');
}

/** The trial results a stored step output refers to, checked against its reference and count. */
export async function readTrialResults(store: ArtifactStore, stored: StoredTrialResults, where = 'trial results'): Promise<TrialResult[]> {
  const results = JSON.parse(await readVerified(store, stored.trialResults, stored.file, where)) as TrialResult[];
  if (!Array.isArray(results) || results.length !== stored.count) {
    throw ApplicationFailure.nonRetryable(
      `${where}: ${stored.trialResults.dir}/${stored.file} holds ${Array.isArray(results) ? results.length : 'no'} results, expected ${stored.count}`,
      'ArtifactCorrupt',
    );
  }
  return results;
}

/**
 * Step outputs with every stored trial results replaced by the results themselves: what the
 * consumers of step outputs (the report, the CLI) read, whichever form a step's output took.
 */
export async function withTrialResults(store: ArtifactStore, outputs: Record<string, unknown>): Promise<Record<string, unknown>> {
  const entries = await Promise.all(
    Object.entries(outputs).map(
      async ([step, output]) => [step, isStoredTrialResults(output) ? await readTrialResults(store, output, `step ${step}`) : output] as const,
    ),
  );
  return Object.fromEntries(entries);
}
