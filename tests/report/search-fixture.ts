/**
 * A pruned search without training, for the report: runs of a search with no grid axis (rung by
 * rung, `<trial>-e<rung>`), each with a hand-made metrics.json in a temp store, as the report
 * activity receives them.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ActivityDeps } from '../../activities/deps';
import type { EpochMetrics, SearchSummary, TrainResult } from '../../activities/types';

/**
 * The report of a search with no grid axis, pruned by ASHA (rungs at 1 and 3 of 9 epochs): five
 * trials, run rung by rung as a pruned search runs them. By hand:
 *   t0 → e1 (0.70), promoted → e3 (0.80), promoted → e9 (0.90): completed, promoted at 1, 3
 *   t1 → e1 (0.60): paused at 1
 *   t2 → e1 (0.75), promoted → e3 (0.78): paused at 3
 *   t3 → e1 (0.50): paused at 1
 *   t4 → e1 (0.72), promoted → e3 (0.85), promoted → e9 (0.95): completed, promoted at 1, 3
 * in the order t0-e1 t1-e1 t2-e1 t3-e1 t0-e3 t2-e3 t4-e1 t4-e3 t0-e9 t4-e9: epochs 1+1+1+1+2+2+1+2+6+6 = 23 of 45.
 */
export const RUNS: Array<[trial: number, epochs: number, acc: number]> = [
  [0, 1, 0.7],
  [1, 1, 0.6],
  [2, 1, 0.75],
  [3, 1, 0.5],
  [0, 3, 0.8],
  [2, 3, 0.78],
  [4, 1, 0.72],
  [4, 3, 0.85],
  [0, 9, 0.9],
  [4, 9, 0.95],
];
const LR = [0.001, 0.0003, 0.01, 0.05, 0.002];
const DROPOUT = [0.1, 0.2, 0.3, 0.4, 0.15];
export const SUMMARY: SearchSummary = { sampler: 'tpe', seed: 7, trialsPerCell: 5, cells: 1, axes: [], params: ['lr', 'dropout'] };

function metricsOf(epochs: number, acc: number): EpochMetrics[] {
  return Array.from({ length: epochs }, (_, i) => ({
    epoch: i + 1,
    train_loss: 1 / (i + 1),
    valid_loss: 1 - acc + (epochs - i - 1) * 0.01,
    valid_acc: acc - (epochs - i - 1) * 0.01,
    lr: 0.001,
    seconds: 1,
  }));
}

export async function buildSearch(deps: ActivityDeps): Promise<TrainResult[]> {
  const results: TrainResult[] = [];
  for (const [n, epochs, acc] of RUNS) {
    const params: Record<string, unknown> = {
      pooling: 'mean',
      seed: 1,
      hidden: 8,
      epochs: 9,
      lr: LR[n],
      dropout: DROPOUT[n],
      ...(epochs < 9 ? { pause_at_epoch: epochs } : {}),
    };
    const metrics = metricsOf(epochs, acc);
    const built = await deps.store.getOrBuild({ type: 'train', version: 1, params, inputs: {} }, async (dir) =>
      writeFile(join(dir, 'metrics.json'), JSON.stringify(metrics)),
    );
    results.push({
      ref: built.ref,
      cached: false,
      seconds: 0.1,
      trial: `gru_mean-h8-s1-t${n}-e${epochs}`,
      params,
      best: metrics.at(-1)!,
      epochsRun: epochs,
      stoppedEarly: false,
      backend: 'wasm',
      metrics: 'metrics.json',
      resumedFromEpoch: 0,
      worker: 'test:1',
    });
  }
  return results;
}
