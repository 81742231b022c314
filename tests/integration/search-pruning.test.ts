import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../client/config';
import { stopEmbeddedServer } from '../../client/server';
import type { TrainResult } from '../../activities/types';
import type { SweepResult } from '../../workflows/sweep';
import { freePort } from '../helpers/fixtures';
import { tinyPipeline } from '../helpers/pipelines';
import { runCli, waitFor } from '../helpers/processes';
import type { ReportDocument } from '../../report/document';
import { searchAttributes } from '../../workflows/search-attributes';

jest.setTimeout(15 * 60_000);

/**
 * Pruning that pauses, end to end on a real server: a random search of 6 trials of 4 epochs with
 * ASHA (grace 1 epoch, η 2: rungs at 1 and 2 epochs). Each run trains to the next rung; a
 * continued trial resumes from its checkpoint at the rung where it paused, never from scratch.
 */
const pipeline = tinyPipeline(
  'search-asha',
  `    matrix: { pooling: [mean] }
    search:
      sampler: random
      seed: 4
      trials: 6
      space: { lr: { type: loguniform, low: 0.0001, high: 0.05 } }
      prune: { rule: asha, grace_epochs: 1, reduction_factor: 2 }
    concurrency: 2`,
  { trainWith: 'epochs: 4, early_stop_patience: 4, hidden: 8, train_batches: 3, valid_batches: 1, backend: wasm' },
);

describe('a search with ASHA on a real Temporal server', () => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-asha-'));
  afterAll(async () => {
    await stopEmbeddedServer(loadConfig({ home }));
    rmSync(home, { recursive: true, force: true });
  });

  it('pauses poor trials at rungs and continues promoted ones from their checkpoints', async () => {
    const file = join(home, 'search-asha.yaml');
    writeFileSync(file, pipeline);
    const env = {
      SWEEPS_HOME: home,
      SWEEPS_SERVER_PORT: String(await freePort()),
      SWEEPS_UI_PORT: String(await freePort()),
      SWEEPS_TRAIN_SLOTS: '2',
      TEMPORAL_ADDRESS: '',
    };
    const run = await runCli(['sweep', file, '--json'], env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const runs = (JSON.parse(run.stdout) as SweepResult).outputs.train as TrainResult[];

    const byTrial = new Map<string, TrainResult[]>();
    for (const r of runs) {
      const [, trial, to] = /^(.*)-e(\d+)$/.exec(r.trial)!;
      expect(r.epochsRun).toBe(Number(to));
      byTrial.set(trial!, [...(byTrial.get(trial!) ?? []), r]);
    }
    expect(byTrial.size).toBe(6);
    for (const segments of byTrial.values()) {
      // Every run after a trial's first continues from where the one before it stopped.
      segments.forEach((s, i) => expect(s.resumedFromEpoch).toBe(i === 0 ? 0 : segments[i - 1]!.epochsRun));
    }
    const reached = [...byTrial.values()].map((s) => s[s.length - 1]!.epochsRun);
    expect(reached.filter((e) => e === 4).length).toBeGreaterThanOrEqual(1);
    expect(reached.filter((e) => e < 4).length).toBeGreaterThanOrEqual(1);
    const trained = runs.reduce((n, r) => n + r.epochsRun - r.resumedFromEpoch, 0);
    expect(trained).toBeLessThan(6 * 4);
    // Runs stopped at their rung are findable in the Temporal UI: TrialState = "paused".
    const result = JSON.parse(run.stdout) as SweepResult;
    const connection = await Connection.connect({ address: `127.0.0.1:${env.SWEEPS_SERVER_PORT}` });
    try {
      const client = new Client({ connection });
      const paused = await waitFor('visibility to list the paused runs', async () => {
        const ids: string[] = [];
        for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH "${result.sweepId}/" AND TrialState = "paused"` }))
          ids.push(wf.workflowId);
        return ids.length === runs.filter((r) => r.epochsRun < 4).length ? ids : undefined;
      });
      expect(paused.every((id) => !id.endsWith('-e4'))).toBe(true);
      // Runs that continue a trial from its rung carry TrialDecision = "promoted", and TrialRung the epoch they stopped at.
      const promotions = [...byTrial.values()].reduce((n, segments) => n + segments.length - 1, 0);
      const promoted = await waitFor('visibility to list the promoted runs', async () => {
        const found: Array<[string, number | undefined]> = [];
        for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH "${result.sweepId}/" AND TrialDecision = "promoted"` }))
          found.push([wf.workflowId, wf.typedSearchAttributes.get(searchAttributes.rung)]);
        return found.length === promotions ? found : undefined;
      });
      expect(promoted.every(([id, rung]) => id.endsWith(`-e${rung}`))).toBe(true);
    } finally {
      await connection.close();
    }
    // `sweeps status`: each run with its rung and the decision on it.
    const status = await runCli(['status', result.sweepId], env);
    expect(status.code).toBe(0);
    for (const r of runs) {
      const line = status.stdout.split('\n').find((l) => l.includes(r.trial));
      const [, trial, to] = /^(.*)-e(\d+)$/.exec(r.trial)!;
      const later = byTrial.get(trial!)!.some((x) => x.epochsRun > r.epochsRun);
      const decision = r.epochsRun === 4 ? 'completed' : later ? 'promoted' : 'paused';
      expect(line).toMatch(new RegExp(`rung (\\d+→)?${to} +${decision}`));
    }
    // The report's best trials: one row per trial, at the epochs it reached.
    const doc = JSON.parse(readFileSync(result.report!.files.json, 'utf8')) as ReportDocument;
    expect(doc.search![0]!.best.map((b) => b.epochs).sort()).toEqual([...reached].sort());
    console.log(`ASHA: ${runs.length} runs, ${trained} epochs trained of ${6 * 4} for the full budget; epochs reached per trial: ${reached.join(', ')}`);
  });
});
