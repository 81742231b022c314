import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainResult } from '../../activities/types';
import { sweepInputOf } from '../../client/sweeps';
import type { SweepResult } from '../../workflows/sweep';
import { json, runCli, startUserStack, type UserStack } from '../helpers/processes';
import { manyTrialsPipeline, measureHistory, type HistoryMeasure } from './history';

/**
 * A sweep of 200 trials completes, and its history grows with the number of trials, not with
 * epochs or with the square of the trials: each trial adds a few events and a small input.
 * (About 100–150 s on 2 cores; bench/sweep-history.js prints the same numbers for any size.)
 */

jest.setTimeout(15 * 60_000);

const seeds = 40; // × 5 pooling variants = 200 trials
let stack: UserStack;
let result: SweepResult;
let sweep: HistoryMeasure;
let trials: HistoryMeasure[];

beforeAll(async () => {
  stack = await startUserStack('sweeps-200-');
  const file = join(stack.home, 'many-trials.yaml');
  writeFileSync(file, manyTrialsPipeline(seeds, 4));
  const started = Date.now();
  const run = await runCli(['sweep', file, '--no-worker', '--json'], stack.env);
  if (run.code !== 0) throw new Error(`the sweep failed:\n${run.stderr.slice(-3000)}`);
  result = json(run);
  sweep = await measureHistory(stack.client, result.sweepId);
  const ids = (result.outputs.train as TrainResult[]).map((t) => `${result.sweepId}/trial-${t.trial}`);
  trials = await Promise.all([ids[0]!, ids[ids.length - 1]!].map((id) => measureHistory(stack.client, id)));
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  process.stdout.write(
    `200 trials in ${((Date.now() - started) / 1000).toFixed(0)} s; sweep history ${sweep.events} events, ${kb(sweep.bytes)}, ` +
      `largest payload ${kb(sweep.largest.bytes)} (${sweep.largest.event}); one trial ${trials[0]!.events} events, ${kb(trials[0]!.bytes)}\n`,
  );
});
afterAll(async () => {
  await stack?.stop();
});

describe(`a sweep of ${seeds * 5} tiny trials`, () => {
  it('completes every trial', () => {
    expect(result.outputs.train as TrainResult[]).toHaveLength(seeds * 5);
    expect(result.report?.variants.map((v) => v.trials)).toEqual([seeds, seeds, seeds, seeds, seeds]);
  });

  it("grows the sweep's history by a few events per trial", () => {
    // Per trial: start initiated, started, completed, and the workflow tasks between them.
    expect(sweep.events / (seeds * 5)).toBeLessThan(12);
  });

  it("grows the sweep's history by a few kilobytes per trial, not with the square of the trials", () => {
    // Each child's input carries its own trial, not its siblings' (that was 72 KB each at 200 trials).
    expect(sweep.bytes / (seeds * 5)).toBeLessThan(10_000);
  });

  it('keeps every payload far below the 2 MB limit: the largest is the result of all trials', async () => {
    const plan = Buffer.byteLength(JSON.stringify((await sweepInputOf(stack.client, result.sweepId)).plan));
    expect(plan).toBeLessThan(150_000);
    expect(sweep.largest.bytes).toBeLessThan(400_000);
  });

  it("keeps each trial's history as small as a sweep of one trial would", () => {
    for (const t of trials) {
      expect(t.events).toBeLessThan(30);
      expect(t.largest.bytes).toBeLessThan(5_000);
    }
  });
});
