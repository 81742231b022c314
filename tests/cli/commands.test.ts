import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainResult } from '../../activities/types';
import type { SweepStatus, SweepSummary } from '../../client/sweeps';
import type { Plan } from '../../pipeline/plan';
import type { SweepResult } from '../../workflows/sweep';
import { json, runCli, sleep, startCli, startUserStack, trainingProcessesOf, waitFor, type CliRun, type UserStack } from '../helpers/processes';
import { tinyPipeline } from '../helpers/pipelines';

/**
 * The commands a user types, against a real embedded Temporal server and a `sweeps worker`
 * process: validate → sweep → status / list / watch, and cancel and Ctrl-C on long sweeps.
 */

jest.setTimeout(10 * 60_000);

let stack: UserStack;
const file = (name: string, text: string) => {
  const path = join(stack.home, `${name}.yaml`);
  writeFileSync(path, text);
  return path;
};
const cli = (...args: string[]) => runCli(args, stack.env);

/**
 * Trials that run until they are stopped: hundreds of epochs of 25 batches (a fraction of a second
 * each). Not thousands of tiny epochs: each epoch signals its trial workflow.
 */
const endless = { trainWith: 'epochs: 400, early_stop_patience: 400, hidden: 32, valid_batches: 1, backend: wasm, engine: tfjs', limit: 1000 };

beforeAll(async () => {
  stack = await startUserStack('sweeps-cli-');
});
afterAll(async () => {
  await stack?.stop();
});

describe('sweep, status, list and watch on a finished sweep', () => {
  const overrides = ['--set', 'steps.train.with.hidden=12', '--set', 'steps.report.with.baseline=mean'];
  let pipeline: string;
  // The fixture every test here reads: the file validated, then swept to the end, once.
  let validateRun: CliRun;
  let sweepRun: CliRun;
  const validated = () => json<{ valid: boolean; sweepId: string; plan: Plan }>(validateRun);
  const result = () => json<SweepResult>(sweepRun);

  beforeAll(async () => {
    pipeline = file('cli-tiny', tinyPipeline('cli-tiny', '    matrix: { pooling: [last, mean], seed: [1] }'));
    validateRun = await cli('validate', pipeline, ...overrides, '--json');
    sweepRun = await cli('sweep', pipeline, ...overrides, '--no-worker', '--json');
  });

  it('validate --json shows the effective plan (overrides applied) and the sweep id it will have', () => {
    expect(validateRun.code).toBe(0);
    const { valid, sweepId, plan } = validated();
    expect(valid).toBe(true);
    expect(sweepId).toMatch(/^sweep-cli-tiny-[0-9a-f]{8}$/);
    expect(plan.steps.find((s) => s.name === 'train')!.trials!.map((t) => t.id)).toEqual(['gru_last-h12-s1', 'gru_mean-h12-s1']);
  });

  it('sweep --json runs it to the end (workers elsewhere: --no-worker) and prints the result', () => {
    expect({ code: sweepRun.code, stderr: sweepRun.code === 0 ? '' : sweepRun.stderr }).toEqual({ code: 0, stderr: '' });
    expect(result().sweepId).toBe(validated().sweepId);
    expect((result().outputs.train as TrainResult[]).map((t) => t.trial).sort()).toEqual(['gru_last-h12-s1', 'gru_mean-h12-s1']);
    // Without a terminal, progress is plain lines: one per trial state, with the count.
    expect(sweepRun.stderr).toContain(`started sweep ${result().sweepId}`);
    expect(sweepRun.stderr).toMatch(/gru_mean-h12-s1 +mean +seed 1 +epoch 1\/1 +best val acc \d\.\d{4} +done · \d\/2 trials finished/);
    expect(sweepRun.stderr).not.toContain('\x1b[');
  });

  it('status --json shows the state, every trial and the effective pipeline the sweep ran', async () => {
    const status = json<SweepStatus & { ui: string }>(await cli('status', result().sweepId, '--json'));
    expect(status.status).toBe('COMPLETED');
    expect(status.plan).toEqual(validated().plan);
    expect(status.trials.map((t) => [t.trial, t.state, t.status])).toEqual([
      ['gru_last-h12-s1', 'done', 'COMPLETED'],
      ['gru_mean-h12-s1', 'done', 'COMPLETED'],
    ]);
    for (const t of status.trials)
      expect(t.bestValidAcc).toBeCloseTo((result().outputs.train as TrainResult[]).find((r) => r.trial === t.trial)!.best.valid_acc, 10);
    expect(status.result?.report?.verdict).toBe(result().report?.verdict);
    expect(status.ui).toBe(`http://127.0.0.1:${stack.ports.ui}/namespaces/default/workflows/${result().sweepId}`);
  });

  it('status without --json is a readable summary', async () => {
    const run = await cli('status', result().sweepId);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`${result().sweepId}: COMPLETED`);
    expect(run.stdout).toMatch(/gru_last-h12-s1 +last +seed 1 .*done/);
  });

  it('list --json finds it through the SweepKind search attribute, and filters by pipeline', async () => {
    const { sweepId } = result();
    const sweeps = await waitFor('the finished sweep in visibility', async () => {
      const list = json<SweepSummary[]>(await cli('list', '--json'));
      return list.find((s) => s.sweepId === sweepId && s.status === 'COMPLETED') ? list : undefined;
    });
    expect(sweeps.find((s) => s.sweepId === sweepId)).toMatchObject({ pipeline: 'cli-tiny', state: 'done', runs: 1 });
    expect(json<SweepSummary[]>(await cli('list', '--pipeline', 'no-such-pipeline', '--json'))).toEqual([]);
  });

  it('watch on a finished sweep prints its result at once', async () => {
    const run = await cli('watch', result().sweepId, '--json');
    expect(run.code).toBe(0);
    expect(json<SweepResult>(run)).toEqual(result());
  });

  it('a second sweep of the same file is a cache hit for every step and trial', async () => {
    const again = json<SweepResult>(await cli('sweep', pipeline, ...overrides, '--no-worker', '--json'));
    expect(again.sweepId).toBe(result().sweepId);
    expect((again.outputs.train as TrainResult[]).every((t) => t.cached)).toBe(true);
  });

  it('cancel on a sweep that has ended changes nothing', async () => {
    const { sweepId } = result();
    const run = await cli('cancel', sweepId);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`${sweepId} is not running (COMPLETED)`);
    expect(json<SweepStatus>(await cli('status', sweepId, '--json')).status).toBe('COMPLETED');
  });
});

/** How long `cancel` may take to stop every training process (README.md says the same). */
const CANCEL_BOUND_MS = 15_000;

/** Submits an endless sweep of three trials, two at a time, and returns the `sweep --detach --json` run. */
const submitEndless = (name: string) =>
  cli('sweep', file(name, tinyPipeline(name, '    matrix: { pooling: [last, mean, max], seed: [1] }\n    concurrency: 2', endless)), '--detach', '--json');

/** Detaches a watcher as Ctrl-C would, and makes sure it has gone. */
async function stopWatcher(watcher: ReturnType<typeof startCli>): Promise<void> {
  watcher.child.kill('SIGINT');
  if ((await Promise.race([watcher.exited, sleep(10_000).then(() => 'still running')])) === 'still running') watcher.child.kill('SIGKILL');
}

/** Cancels a sweep a test left running and waits for its training processes to end, so that the next sweep has the slots. */
async function cancelAndDrain(sweepId: string | undefined): Promise<void> {
  if (sweepId) await cli('cancel', sweepId);
  await waitFor('the training processes to end', async () => (trainingProcessesOf(stack.home).length === 0 ? true : undefined), 60_000);
}

describe('watch and status on a running sweep', () => {
  // The fixture: one endless sweep, submitted once and cancelled after the last test.
  let submitted: CliRun;
  let sweepId: string;

  beforeAll(async () => {
    submitted = await submitEndless('cli-endless');
    sweepId = json<{ sweepId: string }>(submitted).sweepId;
  });
  afterAll(async () => {
    await cancelAndDrain(sweepId);
  });

  /** The sweep's status once both trials within the concurrency have finished an epoch. */
  const whileTraining = () =>
    waitFor('two trials past their first epoch', async () => {
      const status = json<SweepStatus>(await cli('status', sweepId, '--json'));
      return status.trials.filter((t) => (t.epoch ?? 0) > 0).length === 2 ? status : undefined;
    });

  it('sweep --detach --json submits and returns the id at once', () => {
    expect(submitted.code).toBe(0);
    expect(sweepId).toMatch(/^sweep-cli-endless-/);
    expect(submitted.stderr).toContain(`sweeps watch ${sweepId}`);
  });

  it('watch attaches (starting no worker) and shows each trial epoch by epoch', async () => {
    const watcher = startCli(['watch', sweepId], stack.env);
    try {
      await waitFor('watch to show a trial past its second epoch', async () =>
        /gru_last-h32-s1 +last +seed 1 +epoch ([3-9]|\d\d+)\/400/.test(watcher.stderr()) ? true : undefined,
      );
      expect(watcher.stderr()).not.toContain('started in this process');
    } finally {
      await stopWatcher(watcher);
    }
  });

  it('status --json shows the running trials with their live epoch, and waiting ones beyond the concurrency', async () => {
    const status = await whileTraining();
    expect(status.status).toBe('RUNNING');
    expect(status.live).toBe(true);
    expect(status.trials.map((t) => t.state)).toEqual(['running', 'running', 'waiting']);
    expect(status.trials[0]!.epoch).toBeGreaterThan(0);
    expect(status.steps.find((s) => s.name === 'train')!.state).toBe('running');
  });

  it("the trials' current details in the UI move on while they train", async () => {
    await whileTraining();
    const trial = stack.client.workflow.getHandle(`${sweepId}/trial-gru_last-h32-s1`);
    const details = async () => (await trial.query<{ currentDetails: string }>('__temporal_workflow_metadata')).currentDetails;
    const epochOf = (text: string) => Number(/epoch (\d+) of 400/.exec(text)?.[1]);
    const first = await details();
    expect(first).toMatch(/^\*\*running\*\* · epoch \d+ of 400/);
    const later = await waitFor('a later epoch in the current details', async () => {
      const now = await details();
      return epochOf(now) > epochOf(first) ? now : undefined;
    });
    expect(later).toMatch(/valid accuracy \d\.\d{4} \(best \d\.\d{4}\)/);
  });
});

describe('cancel on a running sweep', () => {
  it('cancel stops the trials; the sweep ends as cancelled and watch says so', async () => {
    const sweepId = json<{ sweepId: string }>(await submitEndless('cli-cancel')).sweepId;
    const watcher = startCli(['watch', sweepId], stack.env);
    try {
      await waitFor('watch to show both trials within the concurrency training', async () =>
        ['last', 'mean'].every((p) => new RegExp(`gru_${p}-h32-s1 +${p} +seed 1 +epoch [1-9]\\d*/400`).test(watcher.stderr())) ? true : undefined,
      );
      const cancelledAt = Date.now();
      const run = await cli('cancel', sweepId);
      expect(run.code).toBe(0);
      expect(run.stderr).toContain(`cancellation requested for ${sweepId}`);
      expect(await watcher.exited).toBe(1);
      expect(watcher.stderr()).toContain(`sweep ${sweepId} cancelled`);

      const status = json<SweepStatus>(await cli('status', sweepId, '--json'));
      expect(status.status).toBe('CANCELLED');
      expect(status.trials.map((t) => [t.state, t.status])).toEqual([
        ['cancelled', 'CANCELLED'],
        ['cancelled', 'CANCELLED'],
        ['waiting', undefined],
      ]);
      // The training processes were stopped, not left to run on, within the README's figure: the
      // cancellation rides on the next heartbeat response (heartbeats at most 3 s apart), then the
      // trainer is stopped. README.md ("Recovery") states this same bound.
      await waitFor('the training processes to end', async () => (trainingProcessesOf(stack.home).length === 0 ? true : undefined), CANCEL_BOUND_MS);
      console.log(`cancel → every training process gone after ${((Date.now() - cancelledAt) / 1000).toFixed(1)} s`);
    } finally {
      await stopWatcher(watcher);
      await cancelAndDrain(sweepId);
    }
  });
});

describe('Ctrl-C while a sweep runs', () => {
  it('detaches without cancelling, and says how to re-attach', async () => {
    const pipeline = file('cli-detach', tinyPipeline('cli-detach', '    matrix: { pooling: [mean], seed: [1] }', endless));
    const sweep = startCli(['sweep', pipeline, '--no-worker'], stack.env);
    const sweepId = await waitFor('the sweep to start a trial', async () => {
      const id = /started sweep (\S+)/.exec(sweep.stderr())?.[1];
      return id && /epoch [1-9]\d*\/400/.test(sweep.stderr()) ? id : undefined;
    });
    sweep.child.kill('SIGINT');
    expect(await sweep.exited).toBe(130);
    expect(sweep.stderr()).toContain(`Re-attach: sweeps watch ${sweepId}`);
    expect(json<SweepStatus>(await cli('status', sweepId, '--json')).status).toBe('RUNNING');
    expect((await cli('cancel', sweepId)).code).toBe(0);
  });
});

describe('help and bad input', () => {
  it.each(['sweep', 'watch', 'status', 'list', 'cancel', 'resume', 'validate', 'worker', 'server', 'schema', 'setup'])('%s --help', async (command) => {
    const run = await cli(command, '--help');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^Usage: sweeps ${command}`));
  });

  it('status of a sweep that does not exist is bad input (exit 2)', async () => {
    const run = await cli('status', 'sweep-nothing-00000000');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no sweep sweep-nothing-00000000');
  });

  it('an unknown flag is bad input (exit 2) and shows the usage', async () => {
    const run = await cli('list', '--limt', '3');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Usage: sweeps list');
  });
});
