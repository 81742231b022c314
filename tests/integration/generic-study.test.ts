import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DescribeResult } from '../../activities/describe';
import type { TrainResult } from '../../activities/types';
import type { ReportDocument } from '../../report/document';
import { searchAttributes } from '../../workflows/search-attributes';
import type { SweepResult } from '../../workflows/sweep';
import { GESTURES_MD5, gesturesArchive } from '../helpers/fixtures';
import { json, runCli, useTestServer, type CliRun } from '../helpers/processes';

jest.setTimeout(10 * 60_000);

/**
 * A study the engine has never heard of, as YAML only: its own step names, a question about the
 * learning rate rather than pooling, a `describe` step feeding the report, and a parameter set on
 * the command line. Everything the Temporal UI and the report show comes from its axes.
 */
const study = (archive: string) => `name: lr-study
description: does a larger learning rate help?
params:
  epochs:
    type: integer
    default: 5
    description: Epochs per trial
steps:
  fetch:
    uses: download
    with: { urls: ["${archive}"], md5: ${GESTURES_MD5} }
  sequences:
    uses: dataset
    needs: [fetch]
    with: { limit: 300 }
  look:
    uses: describe
    needs: [sequences]
    with: { bins: 5 }
  tensors:
    uses: padding
    needs: [sequences]
  fit:
    uses: train
    needs: [tensors]
    matrix: { lr: [0.001, 0.01], seed: [1] }
    with: { epochs: "\${{ params.epochs }}", hidden: 8, backend: wasm, train_batches: 2, valid_batches: 1 }
  verdict:
    uses: report
    needs: [fit, look]
    with: { compare: lr, baseline: "0.001" }
`;

describe('a study as YAML only, on a real Temporal server', () => {
  const stack = useTestServer('sweeps-generic-');
  // The fixture the tests read: the study swept once.
  let run: CliRun;
  const result = () => json<SweepResult>(run);

  beforeAll(async () => {
    const file = join(stack.home, 'lr-study.yaml');
    writeFileSync(file, study(pathToFileURL(gesturesArchive()).href));
    run = await runCli(['sweep', file, '--param', 'epochs=1', '--json'], { ...stack.server.env, SWEEPS_TRAIN_SLOTS: '2' });
  });

  it('runs with a --param, its trials named by their matrix values', () => {
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const trials = result().outputs.fit as TrainResult[];
    expect(trials.map((t) => [t.params.lr, t.epochsRun])).toEqual([
      [0.001, 1],
      [0.01, 1],
    ]);
  });

  it('shows each trial in the Temporal UI by its axes: summary, Variant from the compared axis, Seed', async () => {
    const trial = (result().outputs.fit as TrainResult[])[1]!;
    const handle = stack.server.client.workflow.getHandle(`${result().sweepId}/trial-${trial.trial}`);
    const described = await handle.describe();
    expect(await described.staticSummary()).toBe('lr-study · trial lr=0.01 seed=1');
    expect(described.typedSearchAttributes.get(searchAttributes.variant)).toBe('0.01');
    expect(described.typedSearchAttributes.get(searchAttributes.seed)).toBe(1);
    const history = await handle.fetchHistory();
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!;
    expect(scheduled.activityTaskScheduledEventAttributes!.activityType!.name).toBe('train');
    // The durability contract of the train module reached the activity.
    expect(Number(scheduled.activityTaskScheduledEventAttributes!.heartbeatTimeout!.seconds)).toBe(30);
  });

  it('puts the described data and the params in the report', () => {
    const { outputs, report } = result();
    const look = outputs.look as DescribeResult;
    expect(look.description.sequences).toBe(300);
    expect(look.description.classes.reduce((n, c) => n + c.train + c.valid, 0)).toBe(300);
    expect(look.description.features).toHaveLength(3);
    const doc = JSON.parse(readFileSync(report!.files.json, 'utf8')) as ReportDocument;
    expect(doc.compare).toBe('lr');
    expect(doc.params).toEqual({ epochs: 1 });
    expect(doc.datasets![0]!.step).toBe('look');
    const markdown = readFileSync(report!.files.markdown, 'utf8');
    expect(markdown).toContain('## Pipeline parameters');
    expect(markdown).toContain('## Data (look): sequence lengths');
  });

  it('shows the params in status', async () => {
    const status = await runCli(['status', result().sweepId], stack.server.env);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('  params epochs=1');
  });
});
