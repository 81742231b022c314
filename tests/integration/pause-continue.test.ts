import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../client/config';
import { stopEmbeddedServer } from '../../client/server';
import type { EpochMetrics, TrainResult } from '../../activities/types';
import type { SweepResult } from '../../workflows/sweep';
import { freePort } from '../helpers/fixtures';
import { tinyPipeline } from '../helpers/pipelines';
import { runCli } from '../helpers/processes';

jest.setTimeout(15 * 60_000);

/**
 * Pruning that pauses, the training side: a trial run with `pause_at_epoch` stops there with its
 * checkpoints kept, and the same trial run further continues from that checkpoint, giving the
 * numbers of a run that never paused (compared with one in a separate store).
 */
const trainWith = (extra: string) => `epochs: 4, early_stop_patience: 4, hidden: 8, train_batches: 3, valid_batches: 1, backend: wasm${extra}`;
const pipeline = (name: string, extra: string) =>
  tinyPipeline(name, '    matrix: { seed: [3] }', { trainWith: trainWith(extra) }).replace(/ {2}report: .*\n/, '');

async function sweep(home: string, name: string, extra: string): Promise<TrainResult> {
  const file = join(home, `${name}.yaml`);
  writeFileSync(file, pipeline(name, extra));
  const env = {
    SWEEPS_HOME: home,
    SWEEPS_SERVER_PORT: String(await freePort()),
    SWEEPS_UI_PORT: String(await freePort()),
    SWEEPS_TRAIN_SLOTS: '1',
    TEMPORAL_ADDRESS: '',
  };
  try {
    const run = await runCli(['sweep', file, '--json'], env);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    return ((JSON.parse(run.stdout) as SweepResult).outputs.train as TrainResult[])[0]!;
  } finally {
    await stopEmbeddedServer(loadConfig({ home }));
  }
}

const metricsOf = (home: string, t: TrainResult) => JSON.parse(readFileSync(join(home, 'artifacts', t.ref.dir, t.metrics), 'utf8')) as EpochMetrics[];

describe('a trial paused at an epoch budget and continued', () => {
  const home = mkdtempSync(join(tmpdir(), 'sweeps-pause-'));
  const other = mkdtempSync(join(tmpdir(), 'sweeps-pause-ref-'));
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  });

  it('stops at pause_at_epoch, then continues from that checkpoint to the same numbers as an unpaused run', async () => {
    const paused = await sweep(home, 'pause-first', ', pause_at_epoch: 2');
    expect(paused).toMatchObject({ epochsRun: 2, resumedFromEpoch: 0, cached: false });

    const promoted = await sweep(home, 'pause-then', '');
    expect(promoted).toMatchObject({ epochsRun: 4, resumedFromEpoch: 2, cached: false });

    const straight = await sweep(other, 'pause-never', '');
    expect(straight).toMatchObject({ epochsRun: 4, resumedFromEpoch: 0 });
    const loss = (ms: EpochMetrics[]) => ms.map((m) => m.valid_loss);
    expect(loss(metricsOf(home, promoted))).toEqual(loss(metricsOf(other, straight)));
    expect(loss(metricsOf(home, paused))).toEqual(loss(metricsOf(other, straight)).slice(0, 2));
  });
});
