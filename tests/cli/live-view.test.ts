import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/fixtures';
import { tinyPipeline } from '../helpers/pipelines';
import { cliPath, useTestServer, waitFor } from '../helpers/processes';
import { testIfAvailable } from '../helpers/required';

/**
 * The sweep command's live view in a real terminal: the real CLI runs inside tmux (a pseudo-
 * terminal of a given size, on a private tmux server) and the test reads tmux's screen and
 * scrollback once the command has ended. Trial lines are longer than 80 columns, so a view that
 * let the terminal wrap them would leave stale copies of its block behind.
 */

jest.setTimeout(5 * 60_000);

const tmuxMissing = spawnSync('tmux', ['-V']).status === 0 ? undefined : 'tmux is not installed (apt-get install -y tmux)';
const stack = useTestServer('sweeps-live-view-');
const home = stack.home;

/** Six trials: last and mean pooling × three seeds, `epochs` each (no early stopping: the run's length is known). */
const pipeline = (name: string, epochs = 3) => {
  const path = join(home, `${name}.yaml`);
  writeFileSync(
    path,
    tinyPipeline(name, '    matrix: { pooling: [last, mean], seed: [1, 2, 3] }\n    concurrency: 2', {
      trainWith: `epochs: ${epochs}, early_stop_patience: ${epochs}, hidden: 8, train_batches: 4, valid_batches: 1, backend: wasm`,
    }),
  );
  return path;
};

function tmux(socket: string, ...args: string[]): string {
  const run = spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

/** Runs `sweeps sweep <file>` in a tmux pane of `columns` × 24; `during` may act on the pane while it runs. Returns the screen with its scrollback. */
async function sweepInTmux(name: string, columns: number, during?: (socket: string) => Promise<void>, epochs?: number): Promise<string> {
  const socket = `sweeps-test-${process.pid}-${name}`;
  const { server } = stack;
  const env = {
    ...server.env,
    TEMPORAL_ADDRESS: `127.0.0.1:${server.env.SWEEPS_SERVER_PORT}`,
    SWEEPS_HOME: join(home, name),
    SWEEPS_DATA_ROOTS: process.env.SWEEPS_DATA_ROOTS ?? '',
    TERM: 'xterm-256color',
  };
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  const command = `cd ${JSON.stringify(repoRoot)} && env ${assignments.join(' ')} ${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)} sweep ${JSON.stringify(pipeline(name, epochs))}; echo "EXIT=$?"; sleep 600`;
  tmux(socket, 'new-session', '-d', '-s', 'view', '-x', String(columns), '-y', '24', command);
  try {
    tmux(socket, 'set-option', '-g', 'history-limit', '5000');
    await during?.(socket);
    const screen = () => tmux(socket, 'capture-pane', '-p', '-S', '-5000', '-t', 'view');
    await waitFor('the sweep command to end', async () => (/EXIT=\d+/.test(screen()) ? true : undefined), 4 * 60_000);
    return screen();
  } finally {
    spawnSync('tmux', ['-L', socket, 'kill-server']);
  }
}

/** Each trial's line exactly once, cut to the pane (never wrapped onto a second line), and one bar. */
function expectBlockOnce(lines: string[], columns: number): void {
  for (const pooling of ['last', 'mean']) {
    for (const seed of [1, 2, 3]) {
      const trial = lines.filter((l) => new RegExp(`^ {4}\\S+ +${pooling} +seed ${seed} `).test(l));
      expect({ pooling, seed, lines: trial.length }).toEqual({ pooling, seed, lines: 1 });
      expect([...trial[0]!].length).toBeLessThan(columns);
    }
  }
  expect(lines.filter((l) => /^ {2}\[[#.]+\] \d+\/6 trials/.test(l))).toHaveLength(1);
}

/** The final screen holds the block once: each trial's line exactly once, the bar once, no line wider than the pane. */
function expectOneCleanBlock(screen: string, columns: number): void {
  const lines = screen.split('\n').map((l) => l.replace(/\s+$/, ''));
  if (lines.find((l) => /^EXIT=/.test(l)) !== 'EXIT=0') throw new Error(`the sweep did not succeed; the screen:\n${screen}`);
  for (const pooling of ['last', 'mean']) {
    for (const seed of [1, 2, 3]) {
      const trial = lines.filter((l) => new RegExp(`^ {4}\\S+ +${pooling} +seed ${seed} `).test(l));
      expect({ pooling, seed, lines: trial.length }).toEqual({ pooling, seed, lines: 1 });
      // Cut to the pane, never wrapped onto a second line.
      expect([...trial[0]!].length).toBeLessThan(columns);
    }
  }
  const bars = lines.filter((l) => /^ {2}\[[#.]+\] \d+\/6 trials/.test(l));
  expect(bars).toHaveLength(1);
  expect(bars[0]).toMatch(/6\/6 trials \(6 done\)/);
  // Wider than the pane, the trial lines gave up their column padding and still end with the state.
  // Padding goes first; a line still too wide is cut to the last column but one, marked "…".
  for (const l of lines.filter((x) => / seed \d /.test(x))) {
    if (!l.endsWith(' done')) expect({ line: l, columns: [...l].length, cut: l.endsWith('…') }).toEqual({ line: l, columns: columns - 1, cut: true });
  }
}

describe('the live view in a pseudo-terminal (tmux)', () => {
  testIfAvailable('tmux', tmuxMissing)('at 80 columns the final screen shows the block once, every line cut to the width', async () => {
    expectOneCleanBlock(await sweepInTmux('view80', 80), 80);
  });

  testIfAvailable('tmux', tmuxMissing)('a resize while the block is shown (100 → 64 columns) is followed: one block, cut to the new width', async () => {
    // When a pane narrows, tmux re-wraps the lines already drawn and keeps the cursor's row, so
    // the rows the old block grew by go to the scrollback, out of any program's reach: what must
    // hold is the screen, once the view has redrawn at the new width, and then the end of the run.
    let redrawn = '';
    const screen = await sweepInTmux(
      'resize',
      100,
      async (socket) => {
        const visible = () => tmux(socket, 'capture-pane', '-p', '-t', 'view');
        await waitFor('the progress bar', async () => (/\d+\/6 trials/.test(visible()) ? true : undefined), 3 * 60_000);
        tmux(socket, 'resize-window', '-t', 'view', '-x', '64', '-y', '24');
        // Re-wrapped by tmux, the old bar (wider than 64 columns) fills its first row; redrawn, it is cut short of the edge.
        const redrawnBar = () =>
          visible()
            .split('\n')
            .some((l) => /^ {2}\[[#.]+\] \d+\/6 trials/.test(l) && [...l.replace(/\s+$/, '')].length < 64);
        await waitFor('a redraw at 64 columns', async () => (redrawnBar() ? true : undefined), 60_000);
        redrawn = visible();
      },
      // Long enough that the resize lands while the trials run (a tiny trial's epoch takes
      // milliseconds, and a sweep of 12-epoch trials could end before the test saw its bar).
      150,
    );
    expectBlockOnce(
      redrawn.split('\n').map((l) => l.replace(/\s+$/, '')),
      64,
    );
    const end = screen.split('\n').map((l) => l.replace(/\s+$/, ''));
    expect(end.find((l) => /^EXIT=/.test(l))).toBe('EXIT=0');
    // Every redraw after that one replaced the block in place: the last bar drawn is the only one at 64 columns.
    expect(end.filter((l) => /^ {2}\[[#.]+\] \d+\/6 trials/.test(l) && [...l].length < 64).length).toBe(1);
  });
});
