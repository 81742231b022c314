import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { next, type FinishedRun, type SearchState } from '../../activities/search';
import { trainStep } from '../../activities/train';
import type { TrainResult } from '../../activities/types';
import { assessUntilRound } from '../../activities/until';
import { loadPipeline } from '../../pipeline/load';
import type { SweepResult } from '../../workflows/sweep';
import { gesturesPipeline } from '../helpers/pipelines';
import { runCli, spawnWorker, startTestServer, untilExit, waitFor } from '../helpers/processes';

jest.setTimeout(15 * 60_000);

/**
 * Adaptive sweeps interrupted in the middle of a round (the sweep terminated while the second
 * round trains) and resumed: the resumed sweep makes the decisions an uninterrupted one makes,
 * i.e. exactly what the pure rules give on the trials' results. Trials are small but slow enough
 * to interrupt (op-by-op engine, a few epochs).
 */
const train = '{ epochs: 3, early_stop_patience: 3, hidden: 16, train_batches: 6, valid_batches: 2, backend: wasm, engine: tfjs }';

describe('adaptive sweeps interrupted mid-round and resumed', () => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-adaptive-'));
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let worker: ReturnType<typeof spawnWorker>;

  const write = (name: string, text: string) => {
    const file = join(home, `${name}.yaml`);
    writeFileSync(file, text);
    return file;
  };
  const submit = async (file: string) => {
    const run = await runCli(['sweep', file, '--detach'], server.env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    return run.stdout.trim();
  };
  /** Waits until the trial workflow exists (its round has started), then terminates the sweep. */
  const interruptWhenStarted = async (sweepId: string, trial: string) => {
    await waitFor(
      `${trial} to start`,
      async () => ((await server.client.workflow.getHandle(`${sweepId}/trial-${trial}`).describe()) ? true : undefined),
      300_000,
    );
    await server.client.workflow.getHandle(sweepId).terminate('test: interrupted mid-round');
  };
  const resume = async (sweepId: string) => {
    const run = await runCli(['resume', sweepId, '--no-worker', '--json'], server.env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    return JSON.parse(run.stdout) as SweepResult;
  };

  beforeAll(async () => {
    server = await startTestServer(home);
    worker = spawnWorker(server.env);
  });
  afterAll(async () => {
    worker.kill('SIGTERM');
    await untilExit(worker);
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it('seeds until sure: the resumed sweep decides as the rule does on the trials it ran', async () => {
    const file = write(
      'until',
      gesturesPipeline({ name: 'adaptive-until', matrix: '{ pooling: [last, mean] }', train }).replace(
        '    concurrency: 2',
        '    until: { compare: pooling, baseline: last, confidence: 0.5, margin: 100, max_seeds: 5 }\n    concurrency: 2',
      ),
    );
    const sweepId = await submit(file);
    await interruptWhenStarted(sweepId, 'gru_last-h16-s3');
    const result = await resume(sweepId);
    const trials = result.outputs.train as TrainResult[];
    expect(trials.filter((t) => t.cached).length).toBeGreaterThanOrEqual(4); // seeds 1 and 2 ran before the interruption
    const rule = loadPipeline(file).steps.find((s) => s.name === 'train')!.until!;
    const outcome = result.until!.train!;
    const expected = assessUntilRound(
      { step: 'train', rule, trials: trials.map((t) => ({ variant: t.params.pooling as string, seed: t.params.seed as number, validAcc: t.best.valid_acc })) },
      outcome.rounds,
    );
    expect(outcome).toEqual(expected);
    expect(outcome).toMatchObject({ seeds: [1, 2, 3], rounds: 2, stop: true });
  });

  it('search: the resumed sweep runs exactly the trials the sampler suggests from the results', async () => {
    const file = write(
      'search',
      gesturesPipeline({ name: 'adaptive-search', matrix: '{ pooling: [mean] }', train }).replace(
        '    concurrency: 2',
        '    search: { sampler: tpe, seed: 7, trials: 5, n_startup_trials: 2, space: { lr: { type: loguniform, low: 0.0003, high: 0.03 } } }\n    concurrency: 2',
      ),
    );
    const sweepId = await submit(file);
    await interruptWhenStarted(sweepId, 'gru_mean-h16-s1-t2');
    const result = await resume(sweepId);
    const trials = result.outputs.train as TrainResult[];
    expect(trials.filter((t) => t.cached).length).toBeGreaterThanOrEqual(2);

    // What an uninterrupted sweep does: rounds of two, each suggested from the results before it.
    const search = loadPipeline(file).steps.find((s) => s.name === 'train')!.search!;
    const byId = new Map(trials.map((t) => [t.trial, t]));
    const parse = (v: unknown) => trainStep.params.parse(v) as Record<string, unknown>;
    const name = trainStep.trialId!.bind(trainStep) as (params: never, cell: Record<string, unknown>) => string;
    let state: SearchState = { cells: search.cells.map((cell) => ({ cell, trials: [] })) };
    let finished: Array<{ trial: string; value: number }> = [];
    const expected: Array<[string, unknown]> = [];
    for (;;) {
      const round = next(state, { search, concurrency: 2, finished }, parse, name);
      state = round.state;
      if (round.trials.length === 0) break;
      expected.push(...round.trials.map((t): [string, unknown] => [t.id, t.params.lr]));
      finished = round.trials.map((t) => ({ trial: t.id, value: byId.get(t.id)!.best.valid_acc }));
    }
    expect(trials.map((t) => [t.trial, t.params.lr])).toEqual(expected);
    expect(trials).toHaveLength(5);
  });

  it('search with ASHA: terminated while a promoted trial trains, the resumed sweep pauses and promotes as the pruner does on the results', async () => {
    const file = write(
      'asha',
      gesturesPipeline({ name: 'adaptive-asha', matrix: '{ pooling: [mean] }', train }).replace(
        '    concurrency: 2',
        '    search: { sampler: random, seed: 3, trials: 4, space: { lr: { type: loguniform, low: 0.0003, high: 0.03 } }, prune: { rule: asha, grace_epochs: 1, reduction_factor: 2 } }\n    concurrency: 2',
      ),
    );
    const sweepId = await submit(file);
    // Rungs at 1 and 2 epochs of 3: interrupt once some trial is continued to its second rung.
    await waitFor(
      'a promoted run',
      async () => {
        for await (const wf of server.client.workflow.list({ query: `WorkflowId STARTS_WITH "${sweepId}/trial-"` }))
          if (wf.workflowId.endsWith('-e2')) return true;
        return undefined;
      },
      300_000,
    );
    await server.client.workflow.getHandle(sweepId).terminate('test: interrupted mid-rung');
    const result = await resume(sweepId);
    const runs = result.outputs.train as TrainResult[];
    expect(runs.some((r) => r.cached)).toBe(true);

    const search = loadPipeline(file).steps.find((s) => s.name === 'train')!.search!;
    const byId = new Map(runs.map((r) => [r.trial, r]));
    const epochsOf = (r: TrainResult) => JSON.parse(readFileSync(join(home, 'artifacts', r.ref.dir, r.metrics), 'utf8')) as Array<Record<string, number>>;
    const parse = (v: unknown) => trainStep.params.parse(v) as Record<string, unknown>;
    const name = trainStep.trialId!.bind(trainStep) as (params: never, cell: Record<string, unknown>) => string;
    let state: SearchState = { cells: search.cells.map((cell) => ({ cell, trials: [] })) };
    let finished: FinishedRun[] = [];
    const expected: string[] = [];
    for (;;) {
      const round = next(state, { search, concurrency: 2, finished }, parse, name);
      state = round.state;
      if (round.trials.length === 0) break;
      expected.push(...round.trials.map((t) => t.id));
      finished = round.trials.map((t) => {
        const r = byId.get(t.id)!;
        return { trial: t.id, value: r.best.valid_acc, epochs: epochsOf(r), stoppedEarly: r.stoppedEarly };
      });
    }
    expect(runs.map((r) => r.trial)).toEqual(expected);
    // A run that trained here (not a cache hit) beyond the first rung continued a checkpoint.
    for (const r of runs) if (!r.cached && !r.trial.endsWith('-e1')) expect(r.resumedFromEpoch).toBeGreaterThan(0);
  });
});
