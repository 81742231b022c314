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

/** Six trials: last and mean pooling × three seeds, a few epochs each. */
const pipeline = (name: string) => {
  const path = join(home, `${name}.yaml`);
  writeFileSync(
    path,
    tinyPipeline(name, '    matrix: { pooling: [last, mean], seed: [1, 2, 3] }\n    concurrency: 2', {
      trainWith: 'epochs: 3, hidden: 8, train_batches: 4, valid_batches: 1, backend: wasm',
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
async function sweepInTmux(name: string, columns: number, during?: (socket: string) => Promise<void>): Promise<string> {
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
  const command = `cd ${JSON.stringify(repoRoot)} && env ${assignments.join(' ')} ${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)} sweep ${JSON.stringify(pipeline(name))}; echo "EXIT=$?"; sleep 600`;
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
    const screen = await sweepInTmux('resize', 100, async (socket) => {
      await waitFor('the progress bar', async () => (/\d+\/6 trials/.test(tmux(socket, 'capture-pane', '-p', '-t', 'view')) ? true : undefined), 3 * 60_000);
      tmux(socket, 'resize-window', '-t', 'view', '-x', '64', '-y', '24');
    });
    expectOneCleanBlock(screen, 64);
  });
});
