import { rngFor, streamKey } from '../../ml/rng';
import type { Params, SearchSpace } from '../../search/space';

/** A tuning problem shaped like the gestures sweep: a log-scale optimum for lr and weight decay, an int, a real and a choice. */
export const tuningSpace: SearchSpace = {
  lr: { type: 'loguniform', low: 1e-5, high: 1e-1 },
  weight_decay: { type: 'loguniform', low: 1e-6, high: 1e-2 },
  hidden: { type: 'int', low: 16, high: 128, step: 16 },
  dropout: { type: 'uniform', low: 0, high: 0.6 },
  pooling: { type: 'choice', values: ['last', 'mean', 'max'] },
};

const poolingBonus: Record<string, number> = { last: 0, mean: 0.03, max: 0.01 };

/** A validation accuracy in [0, 1] with its maximum 0.99 at lr 3e-3, weight decay 1e-4, hidden 96, dropout 0.2, mean pooling. */
export function syntheticAccuracy(p: Params): number {
  const lr = Math.log10(p.lr as number) - Math.log10(3e-3);
  const wd = Math.log10(p.weight_decay as number) + 4;
  const hidden = ((p.hidden as number) - 96) / 64;
  const dropout = ((p.dropout as number) - 0.2) / 0.4;
  return 0.96 + poolingBonus[p.pooling as string]! - 0.08 * lr * lr - 0.01 * wd * wd - 0.02 * hidden * hidden - 0.02 * dropout * dropout;
}

/** Validation accuracy after `epoch` epochs: rises towards syntheticAccuracy at a speed set by lr, with a little seeded noise. */
export function syntheticCurve(p: Params, epoch: number): number {
  const lr = Math.log10(p.lr as number) - Math.log10(3e-3);
  const speed = 0.25 * 10 ** Math.max(-1, Math.min(1, lr));
  const noise = 0.004 * (rngFor(streamKey([JSON.stringify(p)]), 'curve', epoch).uniform() - 0.5);
  return Math.max(0, Math.min(1, 0.05 + (syntheticAccuracy(p) - 0.05) * (1 - Math.exp(-speed * epoch)) + noise));
}
