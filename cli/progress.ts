import { finishedEarlier, type EarlierRuns, type SearchRunProgress, type StepState, type SweepProgress, type TrialProgress } from '../workflows/progress';

const finishedStates: ReadonlySet<StepState> = new Set(['done', 'failed', 'cancelled', 'skipped']);

/**
 * Live progress of a sweep: a line per step and per trial, and a bar for the whole sweep. On a
 * terminal the block is redrawn in place, fitted to the window: each line cut to its width (a line
 * the terminal wraps would push the block's top out of reach of the redraw, leaving stale copies)
 * and trimmed to its height (running and failed trials first); a resize redraws at once. Without a
 * terminal (CI, pipes) a line is printed only when it changes, so logs stay readable.
 */
export class ProgressView {
  private lastLines = new Map<string, string>();
  /** The lines on screen now, as drawn (each at most the width it was drawn for). */
  private drawnLines: string[] = [];
  private last?: { progress: SweepProgress; note?: string };
  private readonly onResize = () => this.resized();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty = Boolean(out.isTTY),
  ) {
    if (this.tty) out.on('resize', this.onResize);
  }

  /** Stops following the terminal's size (the view is done). */
  close(): void {
    this.out.off('resize', this.onResize);
  }

  /** `note` is one line about where the progress comes from (e.g. no worker answering). */
  render(progress: SweepProgress, note?: string): void {
    this.last = { progress, note };
    const steps: Array<[string, string]> = progress.steps.map((s) => [
      `step:${s.name}`,
      `  ${s.name.padEnd(10)} ${s.state}${s.cached ? ' (cached)' : ''}${s.trials ? ` · ${s.trials} trials` : ''}${s.error ? ` — ${s.error}` : ''}`,
    ]);
    // A search that continued as new lists only its current run's trials; its earlier runs' are counted.
    const earlier = progress.earlier;
    const before = earlier ? finishedEarlier(earlier) : 0;
    const total = progress.trials.length + before;
    const finished = progress.trials.filter((t) => finishedStates.has(t.state)).length + before;
    const summary =
      total > 0 ? `  ${bar(finished / total)} ${finished}/${total} trials${countsOf(progress.trials, earlier)}${earlierNote(earlier)}` : undefined;
    if (this.tty) this.redraw(steps, progress.trials, summary, note);
    else this.appendChanges(steps, progress.trials, `${finished}/${total} trials finished`, note);
  }

  private redraw(steps: Array<[string, string]>, trials: TrialProgress[], summary: string | undefined, note?: string): void {
    const width = Math.max(20, this.out.columns ?? 80);
    // The block, with the line the cursor ends on, must fit the window: a taller one scrolls its
    // top away and the next redraw cannot reach it. Four lines besides steps and trials: note,
    // "… more", summary and the cursor's.
    const room = Math.max(3, (this.out.rows ?? 40) - steps.length - 4);
    const lines = [...(note ? [`  ${note}`] : []), ...steps.map(([, l]) => l)];
    const shown = trials.length <= room ? trials : pickForWindow(trials, room);
    for (const t of shown) lines.push(`    ${trialLine(t)}`);
    if (shown.length < trials.length) lines.push(`    … ${trials.length - shown.length} more trials not shown`);
    if (summary) lines.push(summary);
    const fitted = lines.map((l) => fitLine(l, width));
    // Each line clears its row as it is drawn, and what is left of a taller old block is cleared
    // from below the new one. Clearing everything from the block's top instead would, when that top
    // is the window's first row, count as clearing the whole screen: tmux (scroll-on-clear, on by
    // default) then keeps the old block in its scrollback, a stale copy on every redraw.
    this.out.write(`${this.toTop(width)}${fitted.map((l) => `\x1b[2K${l}`).join('\n')}\n\x1b[0J`);
    this.drawnLines = fitted;
  }

  /** Moves to the start of the block drawn last. */
  private toTop(width: number): string {
    // After a narrowing resize the terminal may have re-wrapped the old lines: count the rows they take now.
    const rows = this.drawnLines.reduce((n, l) => n + Math.max(1, Math.ceil(l.length / width)), 0);
    return rows > 0 ? `\x1b[${rows}A\r` : '';
  }

  private resized(): void {
    if (this.last) this.render(this.last.progress, this.last.note);
  }

  private appendChanges(steps: Array<[string, string]>, trials: TrialProgress[], count: string, note?: string): void {
    const lines: Array<[string, string]> = [...(note ? [['note', note] as [string, string]] : []), ...steps];
    for (const t of trials) {
      lines.push([`trial:${t.workflowId}`, `${trialLine(t)}${finishedStates.has(t.state) ? ` · ${count}` : ''}`]);
    }
    for (const [key, line] of lines) {
      // The count changes on every finish; compare without it so a line prints once per change.
      const identity = line.replace(/ · \d+\/\d+ trials finished$/, '');
      if (this.lastLines.get(key) !== identity) {
        this.out.write(`${line.trimStart()}\n`);
        this.lastLines.set(key, identity);
      }
    }
  }
}

/**
 * A line fitted to `width` columns, one short of the edge (a line that fills the last column makes
 * some terminals wrap): first its column padding is given up, then it is cut, ending in "…".
 */
export function fitLine(line: string, width: number): string {
  const max = width - 1;
  if ([...line].length <= max) return line;
  const indent = /^ */.exec(line)![0];
  const chars = [...`${indent}${line.slice(indent.length).replace(/ {2,}/g, ' ')}`];
  return chars.length <= max ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
}

/** When the window is too small: running and failed trials, then the most recently finished. */
function pickForWindow(trials: TrialProgress[], room: number): TrialProgress[] {
  const rank = (t: TrialProgress) => (t.state === 'running' ? 0 : t.state === 'failed' ? 1 : finishedStates.has(t.state) ? 2 : 3);
  const chosen = new Set(
    trials
      .map((t, i) => ({ t, i }))
      .sort((a, b) => rank(a.t) - rank(b.t) || (rank(a.t) === 2 ? b.i - a.i : a.i - b.i))
      .slice(0, room)
      .map(({ t }) => t),
  );
  return trials.filter((t) => chosen.has(t));
}

function countsOf(trials: TrialProgress[], earlier?: EarlierRuns): string {
  const counts = new Map<string, number>();
  for (const t of trials) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  for (const state of ['done', 'failed', 'cancelled'] as const) if (earlier?.[state]) counts.set(state, (counts.get(state) ?? 0) + earlier[state]);
  const order: StepState[] = ['running', 'waiting', 'done', 'failed', 'cancelled', 'skipped'];
  const parts = order.filter((s) => counts.get(s)).map((s) => `${counts.get(s)} ${s}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** Where the trials not listed went: the earlier runs of a search that continued as new, and the best of them. */
function earlierNote(earlier: EarlierRuns | undefined): string {
  if (!earlier) return '';
  const best = earlier.bestValidAcc !== undefined ? `, best valid accuracy ${earlier.bestValidAcc.toFixed(4)}` : '';
  return ` · ${finishedEarlier(earlier)} finished in the search's ${earlier.runs} earlier run${earlier.runs === 1 ? '' : 's'} (continued as new; not listed)${best}`;
}

/**
 * The trial's matrix values other than its seed (shown apart): the bare value when one axis
 * varies (`0.001`), `axis=value` pairs when several do (`lr=0.001 hidden=32`).
 */
export function variantOf(t: Pick<TrialProgress, 'cell' | 'trial'>): string {
  const axes = Object.entries(t.cell).filter(([k]) => k !== 'seed');
  if (axes.length === 1) return String(axes[0]![1]);
  return axes.map(([k, v]) => `${k}=${String(v)}`).join(' ') || t.trial;
}

/** One trial: id, variant, seed, epoch n/N, validation accuracy, state. */
export function trialLine(t: TrialProgress): string {
  const seed = t.cell.seed !== undefined ? `seed ${String(t.cell.seed)}` : '';
  const acc =
    t.state === 'running' && t.validAcc !== undefined
      ? `val acc ${t.validAcc.toFixed(4)} (best ${(t.bestValidAcc ?? t.validAcc).toFixed(4)})`
      : t.bestValidAcc !== undefined
        ? `best val acc ${t.bestValidAcc.toFixed(4)}`
        : '';
  // Without a worker to ask, a finished trial's epoch count is unknown (0): leave it out.
  const epoch = t.state === 'waiting' || (t.epoch === 0 && t.state !== 'running') ? '' : `epoch ${t.epoch}/${t.epochs}`;
  const state = t.state + (t.cached ? ' (cached)' : '') + (t.error ? ` — ${t.error}` : '');
  // A run of a pruned search: the rung it trains to (or stopped at) and what the pruner decided.
  const pruning = t.search ? [`rung ${t.search.from > 0 ? `${t.search.from}→` : ''}${t.search.rung}`.padEnd(11), t.search.decision.padEnd(9)] : [];
  return [t.trial.padEnd(22), variantOf(t).padEnd(10), seed.padEnd(8), epoch.padEnd(12), ...pruning, acc.padEnd(32), state].join(' ').replace(/\s+$/, '');
}

function bar(fraction: number, width = 30): string {
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/**
 * The rung and decision of each run of a pruned search (`<trial>-e<rung>`), from its results in the
 * order they ran: a run that stopped at a rung was promoted when a later run of its trial went on.
 */
export function searchRunsOf(
  results: Array<{ trial: string; epochsRun: number; stoppedEarly?: boolean; params: Record<string, unknown> }>,
): Map<string, SearchRunProgress> {
  const runs = new Map<string, SearchRunProgress>();
  const last = new Map<string, SearchRunProgress>();
  for (const r of results) {
    const match = /^(.*)-e(\d+)$/.exec(r.trial);
    if (!match) continue;
    const trial = match[1]!;
    const before = last.get(trial);
    if (before) before.decision = 'promoted';
    const done = r.stoppedEarly === true || r.epochsRun >= Number(r.params.epochs);
    const run: SearchRunProgress = { trial, from: before?.rung ?? 0, rung: r.epochsRun, decision: done ? 'completed' : 'paused' };
    runs.set(r.trial, run);
    last.set(trial, run);
  }
  return runs;
}
