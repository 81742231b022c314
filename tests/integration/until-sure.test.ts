import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../client/config';
import { stopEmbeddedServer } from '../../client/server';
import type { SweepResult } from '../../workflows/sweep';
import type { TrainResult, UntilOutcome } from '../../activities/types';
import { assessUntilRound } from '../../activities/until';
import { loadPipeline } from '../../pipeline/load';
import type { ReportDocument } from '../../report/document';
import { freePort } from '../helpers/fixtures';
import { tinyPipeline } from '../helpers/pipelines';
import { runCli } from '../helpers/processes';

jest.setTimeout(15 * 60_000);

/**
 * Seeds until sure on a real server with tiny trials (200 sequences, 1 epoch of 2 batches). The
 * rule is chosen so that the decision comes from the data before max_seeds: at 50% confidence
 * the interval is first bounded at 3 seed pairs, and a margin of 100 points is wider than any
 * interval of accuracy differences can then be, so the sweep must stop after its second round
 * (seeds 1–2, then seed 3) although max_seeds allows 5.
 */
const pipeline = tinyPipeline(
  'until-tiny',
  `    matrix: { pooling: [last, mean] }
    until: { compare: pooling, baseline: last, confidence: 0.5, margin: 100, max_seeds: 5 }
    concurrency: 2`,
);

describe('seeds until sure, end to end on a real Temporal server', () => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-until-'));
  const file = join(home, 'until-tiny.yaml');
  let env: NodeJS.ProcessEnv;
  let first: SweepResult;

  beforeAll(async () => {
    writeFileSync(file, pipeline);
    env = {
      SWEEPS_HOME: home,
      SWEEPS_SERVER_PORT: String(await freePort()),
      SWEEPS_UI_PORT: String(await freePort()),
      SWEEPS_TRAIN_SLOTS: '2',
      TEMPORAL_ADDRESS: '',
    };
  });

  afterAll(async () => {
    await stopEmbeddedServer(loadConfig({ home }));
    rmSync(home, { recursive: true, force: true });
  });

  it('adds seed rounds until the rule decides, runs no trial of later seeds, and reports why it stopped', async () => {
    const run = await runCli(['sweep', file, '--json'], env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    first = JSON.parse(run.stdout) as SweepResult;

    const trials = first.outputs.train as TrainResult[];
    expect(trials.map((t) => t.trial).sort()).toEqual([
      'gru_last-h8-s1',
      'gru_last-h8-s2',
      'gru_last-h8-s3',
      'gru_mean-h8-s1',
      'gru_mean-h8-s2',
      'gru_mean-h8-s3',
    ]);
    const outcome = first.until!.train!;
    expect(outcome).toMatchObject({ step: 'train', compare: 'pooling', seeds: [1, 2, 3], rounds: 2, stop: true });
    expect(outcome.comparisons).toHaveLength(1);
    expect(outcome.comparisons[0]).toMatchObject({ variant: 'mean', baseline: 'last', n: 3, decision: 'within-margin' });

    // The recorded decision is the rule applied to the trials' own results.
    const rule = loadPipeline(file).steps.find((s) => s.name === 'train')!.until!;
    const again = assessUntilRound(
      { step: 'train', rule, trials: trials.map((t) => ({ variant: t.params.pooling as string, seed: t.params.seed as number, validAcc: t.best.valid_acc })) },
      2,
    );
    expect(again).toEqual(outcome);

    const report = first.report!;
    const markdown = readFileSync(report.files.markdown, 'utf8');
    expect(markdown).toContain('## Seeds until sure (train)');
    expect(markdown).toContain('Seeds used: 3 (1, 2, 3) in 2 rounds.');
    expect(markdown).toContain('Why it stopped: mean vs last: after 3 seeds the 50% interval');
    expect(markdown).toContain("Rule: seed pairs (pooling = each value vs last, same seed) added in rounds until Lai's t confidence sequence");
    expect(readFileSync(report.files.html, 'utf8')).toContain('<h2>Seeds until sure (train)</h2>');
    const doc = JSON.parse(readFileSync(report.files.json, 'utf8')) as ReportDocument;
    expect(doc.until).toEqual([outcome]);
    expect(doc.trials).toHaveLength(6);
  });

  it('records each round’s decision in the sweep’s history as an activity result', async () => {
    const connection = await Connection.connect({ address: `127.0.0.1:${env.SWEEPS_SERVER_PORT}` });
    try {
      const history = await new Client({ connection }).workflow.getHandle(first.sweepId).fetchHistory();
      const decisions = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'assessUntil');
      expect(decisions).toHaveLength(2);
      const results = history.events!.flatMap((e) => {
        const payload = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
        if (!payload) return [];
        const value = JSON.parse(Buffer.from(payload).toString('utf8')) as Partial<UntilOutcome>;
        return value.rounds !== undefined && value.comparisons ? [value] : [];
      });
      expect(results.map((r) => [r.rounds, r.stop, r.seeds])).toEqual([
        [1, false, [1, 2]],
        [2, true, [1, 2, 3]],
      ]);
    } finally {
      await connection.close();
    }
  });

  it('makes the same decisions when the sweep runs again from the cache', async () => {
    const run = await runCli(['sweep', file, '--json'], env);
    expect(run.code).toBe(0);
    const again = JSON.parse(run.stdout) as SweepResult;
    expect((again.outputs.train as TrainResult[]).every((t) => t.cached)).toBe(true);
    expect(again.until).toEqual(first.until);
  });
});
