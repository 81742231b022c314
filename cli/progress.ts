import type { Client } from '@temporalio/client';
import { sweepProgressQuery, trialProgressQuery, type SweepProgress, type TrialProgress } from '../workflows/progress';

/**
 * Live progress of a sweep: one line per step and per trial. On a terminal the block is redrawn
 * in place; without one (CI, pipes) a line is printed only when it changes.
 */
export class ProgressView {
  private lastLines = new Map<string, string>();
  private drawn = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty = Boolean(out.isTTY),
  ) {}

  async poll(client: Client, sweepId: string): Promise<SweepProgress | undefined> {
    let progress: SweepProgress;
    try {
      progress = await client.workflow.getHandle(sweepId).query(sweepProgressQuery);
    } catch {
      return undefined; // not started yet, or between workflow tasks: try again next tick
    }
    await Promise.all(
      progress.trials
        .filter((t) => t.state === 'running')
        .map(async (t) => {
          try {
            Object.assign(t, pick(await client.workflow.getHandle(t.workflowId).query(trialProgressQuery)));
          } catch {
            // the trial's workflow may not have had its first task yet
          }
        }),
    );
    this.render(progress);
    return progress;
  }

  render(progress: SweepProgress): void {
    const lines: Array<[string, string]> = progress.steps.map((s) => [
      `step:${s.name}`,
      `  ${s.name.padEnd(10)} ${s.state}${s.cached ? ' (cached)' : ''}${s.trials ? ` · ${s.trials} trials` : ''}${s.error ? ` — ${s.error}` : ''}`,
    ]);
    for (const t of progress.trials) lines.push([`trial:${t.trial}`, `    ${trialLine(t)}`]);
    const total = progress.trials.length;
    if (total > 0) {
      const finished = progress.trials.filter((t) => t.state === 'done' || t.state === 'failed').length;
      lines.push(['bar', `  ${bar(finished / total)} ${finished}/${total} trials`]);
    }
    if (this.tty) {
      if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
      this.out.write(lines.map(([, l]) => l).join('\n') + '\n');
      this.drawn = lines.length;
      return;
    }
    for (const [key, line] of lines) {
      if (key === 'bar') continue;
      if (this.lastLines.get(key) !== line) {
        this.out.write(line.trimStart() + '\n');
        this.lastLines.set(key, line);
      }
    }
  }
}

function pick(t: TrialProgress): Partial<TrialProgress> {
  return { epoch: t.epoch, epochs: t.epochs, validAcc: t.validAcc, bestValidAcc: t.bestValidAcc };
}

export function trialLine(t: TrialProgress): string {
  const variant = String(t.cell.pooling ?? t.trial);
  const seed = t.cell.seed !== undefined ? `seed ${String(t.cell.seed)}` : '';
  const acc =
    t.state === 'running' && t.validAcc !== undefined
      ? `val acc ${t.validAcc.toFixed(4)} (best ${(t.bestValidAcc ?? t.validAcc).toFixed(4)})`
      : t.bestValidAcc !== undefined
        ? `best val acc ${t.bestValidAcc.toFixed(4)}`
        : '';
  const epoch = t.state === 'waiting' ? '' : `epoch ${t.epoch}/${t.epochs}`;
  const state = t.state + (t.cached ? ' (cached)' : '') + (t.error ? ` — ${t.error}` : '');
  return [t.trial.padEnd(22), variant.padEnd(10), seed.padEnd(8), epoch.padEnd(12), acc.padEnd(32), state].join(' ').replace(/\s+$/, '');
}

function bar(fraction: number, width = 30): string {
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}
