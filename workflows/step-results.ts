import { patched, proxyActivities } from '@temporalio/workflow';
import type { TrialResultsActivities } from '../activities';
import type { StoredTrialResults, TrialResultPages } from '../activities/trial-results';
import type { TrialResult } from '../activities/types';

/**
 * Sweeps started before a large step's results went to the artifact store returned them all
 * inline (and failed once they passed the server's blob size limit): a replay of one of those
 * keeps them inline.
 */
export const RESULTS_IN_STORE = 'step-results-in-store';

/** Temporal's default blob size limit (`limit.blobSize.error`): a sweep's input may name its server's own (SWEEPS_BLOB_LIMIT). */
export const DEFAULT_BLOB_LIMIT = 2 * 1024 * 1024;

/**
 * A step's results stay inline (in history, as the step's output array) up to a quarter of the
 * blob limit; so do the pages written to the store. A quarter leaves room for what shares a
 * payload with them: the other steps' outputs in a report's input and in the sweep's result, one
 * more round of a search before its results are paged, the rest of a continue-as-new input.
 */
export function inlineBytesFor(blobLimit: number = DEFAULT_BLOB_LIMIT): number {
  return Math.max(1024, Math.floor(blobLimit / 4));
}

/**
 * Splits results into consecutive pages of at most `maxBytes` (by the sizes given, one per
 * result); a result larger than that gets a page of its own.
 */
export function pagesOf<T>(items: readonly T[], sizes: readonly number[], maxBytes: number): T[][] {
  const pages: T[][] = [];
  let page: T[] = [];
  let bytes = 0;
  items.forEach((item, i) => {
    const size = sizes[i]!;
    if (page.length > 0 && bytes + size > maxBytes) {
      pages.push(page);
      page = [];
      bytes = 0;
    }
    page.push(item);
    bytes += size;
  });
  if (page.length > 0) pages.push(page);
  return pages;
}

/** A result's size in history, near enough: its JSON (results are ASCII but for rare labels; the quarter's margin covers those). */
const sizeOf = (r: TrialResult) => JSON.stringify(r).length + 1;

/** Writing a page is one small file: a few minutes cover a slow store. */
const store = proxyActivities<TrialResultsActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

/** What a search carries into its next run of these results: the pages written, and the results not yet paged. */
export interface CarriedResults {
  pages?: TrialResultPages;
  inline: TrialResult[];
}

/**
 * The trial results of one matrix step as they arrive. While they are small they stay in the
 * workflow and the step's output is their array, as it always was. Once they pass
 * `inlineBytesFor(blobLimit)`, they are written to the artifact store in pages of at most that
 * size (`appendTrialResults`) and the workflow keeps only the last page's reference and a count;
 * `output()` then seals the pages into one file and returns its reference (a `StoredTrialResults`).
 * Whatever the number of trials, no payload of the step (activity input or result, the step's
 * output, a continue-as-new input) passes the limit.
 */
export class StepResults {
  private inline: TrialResult[];
  private sizes: number[];
  private pages?: TrialResultPages;
  private readonly maxBytes: number;

  constructor(
    private readonly sweepId: string,
    private readonly step: string,
    blobLimit: number | undefined,
    carried?: CarriedResults,
  ) {
    this.maxBytes = inlineBytesFor(blobLimit);
    this.inline = [...(carried?.inline ?? [])];
    this.sizes = this.inline.map(sizeOf);
    this.pages = carried?.pages;
  }

  /**
   * Takes a round's results; writes them to the store when they are now too large to keep. Returns
   * a promise only then: while nothing is written, the caller goes on in the same microtask (it may
   * run beside other steps, and the order of their commands must not change in replays).
   */
  add(results: readonly TrialResult[]): Promise<void> | undefined {
    this.inline.push(...results);
    this.sizes.push(...results.map(sizeOf));
    return this.inlineBytes() > this.maxBytes && this.inStore() ? this.flush() : undefined;
  }

  /** What a continue-as-new carries: once the store is in use, only references (the results not yet paged are paged first). */
  async carried(): Promise<CarriedResults> {
    if (this.pages && this.inline.length > 0) await this.flush();
    return { ...(this.pages ? { pages: this.pages } : {}), inline: this.inline };
  }

  /** The step's output: the results themselves while small (returned at once), else the reference to their file. */
  output(): TrialResult[] | Promise<StoredTrialResults> {
    if (!this.pages) return this.inline;
    return this.flush().then(() => store.sealTrialResults({ sweepId: this.sweepId, step: this.step, pages: this.pages! }));
  }

  private inlineBytes(): number {
    return this.sizes.reduce((a, b) => a + b, 0);
  }

  /** Once paged, always paged; the first time, only where the patch applies (not in replays of older sweeps). */
  private inStore(): boolean {
    return this.pages !== undefined || patched(RESULTS_IN_STORE);
  }

  private async flush(): Promise<void> {
    for (const page of pagesOf(this.inline, this.sizes, this.maxBytes)) {
      this.pages = await store.appendTrialResults({ sweepId: this.sweepId, step: this.step, ...(this.pages ? { previous: this.pages } : {}), results: page });
    }
    this.inline = [];
    this.sizes = [];
  }
}

/**
 * The output of a step whose results arrive at once (a grid, seeds until sure) when they are too
 * large to keep inline: a promise of their reference in the store. Undefined (at once, no microtask
 * in between) when they stay inline: the step's output is then `results`, as it always was.
 */
export function storedOutput(
  sweepId: string,
  step: string,
  blobLimit: number | undefined,
  results: readonly TrialResult[],
): Promise<StoredTrialResults> | undefined {
  if (results.reduce((n, r) => n + sizeOf(r), 0) <= inlineBytesFor(blobLimit) || !patched(RESULTS_IN_STORE)) return undefined;
  const collected = new StepResults(sweepId, step, blobLimit);
  return collected.add(results)!.then(() => collected.output() as Promise<StoredTrialResults>);
}
