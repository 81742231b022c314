import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ReportResult, TrainResult } from '../../activities/types';
import type { SweepResult } from '../../workflows/sweep';
import { repoRoot } from '../helpers/fixtures';
import { gesturesPipeline } from '../helpers/pipelines';
import { cliPath, runCli, spawnWorker, useTestServer, untilExit } from '../helpers/processes';

jest.setTimeout(10 * 60_000);

/**
 * A user resumes after fixing a bug in an activity: the sweep failed in its report step on a
 * worker with a bug; the worker is replaced by the fixed release (new worker code, same
 * pipeline); `sweeps resume` finishes it, and only the step that failed runs again.
 */
describe('resume after a bug fix in activity code', () => {
  const setup = useTestServer('sweeps-bugfix-');
  const { home } = setup;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    // Queues of its own: no other worker may serve this sweep.
    env = { ...setup.server.env, SWEEPS_TASK_QUEUE: 'bugfix', SWEEPS_TRAIN_QUEUE: 'bugfix-train' };
  });

  it('fails on the buggy release, and the fixed release finishes it recomputing only the failed step', async () => {
    const file = join(home, 'bugfix.yaml');
    const text = gesturesPipeline({
      name: 'faults-bugfix',
      matrix: '{ pooling: [last, mean], seed: [1] }',
      train: '{ epochs: 3, hidden: 16, train_batches: 8, valid_batches: 2 }',
      report: true,
    });
    writeFileSync(file, `${text}    retry: { max_attempts: 2, initial_interval: 1s }\n`);

    const buggy = spawn(process.execPath, ['--require', join(repoRoot, 'dist', 'tests', 'faults', 'buggy-release.js'), cliPath, 'worker'], {
      env: { ...process.env, ...env },
      cwd: repoRoot,
      stdio: 'ignore',
    });
    const failed = await runCli(['sweep', file, '--no-worker', '--json'], env);
    buggy.kill('SIGTERM');
    await untilExit(buggy);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("Cannot read properties of undefined (reading 'title')");
    const resumeHint = /sweeps resume (sweep-[\w-]+)/.exec(failed.stderr);
    expect(resumeHint).not.toBeNull();
    const sweepId = resumeHint![1]!;

    const fixed = spawnWorker(env);
    try {
      const resumed = await runCli(['resume', sweepId, '--no-worker', '--json'], env);
      expect({ code: resumed.code, stderr: resumed.code === 0 ? '' : resumed.stderr }).toEqual({ code: 0, stderr: '' });
      const result = JSON.parse(resumed.stdout) as SweepResult;
      const trials = result.outputs.train as TrainResult[];
      const report = result.outputs.report as ReportResult;
      // Work recomputed: the report only. Every trial and data step is a cache hit.
      expect(trials.map((t) => t.cached)).toEqual([true, true]);
      expect((result.outputs.download as { cached: boolean }).cached).toBe(true);
      expect((result.outputs.padding as { cached: boolean }).cached).toBe(true);
      expect(report.cached).toBe(false);
      expect(report.verdict).toMatch(/mean/);
    } finally {
      fixed.kill('SIGTERM');
      await untilExit(fixed);
    }
  });
});
