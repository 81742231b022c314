import { z } from 'zod';
import { AshaPruner } from './asha';
import { HyperbandPruner } from './hyperband';
import { MedianPruner } from './median';
import type { Pruner } from './pruner';

/**
 * The pruner registry: each rule's options as a zod schema and its constructor, so a new rule is
 * one file plus one entry here. `max_epochs` is not part of the options: it is the trial's own
 * training length, which the engine passes in.
 */

const objective = {
  metric: z.string().default('valid_acc').describe('Metric reported each epoch that decisions are made on.'),
  direction: z.enum(['maximize', 'minimize']).default('maximize'),
};
const halving = {
  grace_epochs: z.number().int().positive().default(1).describe('Epochs every trial gets before its first judgement (min resource).'),
  reduction_factor: z.number().int().min(2).default(3).describe('η: one trial in η goes on from each rung.'),
};

export const prunerConfigSchema = z
  .discriminatedUnion('rule', [
    z.strictObject({ rule: z.literal('asha'), ...objective, ...halving }).describe('Asynchronous successive halving: pause at rungs, promote the best.'),
    z.strictObject({ rule: z.literal('hyperband'), ...objective, ...halving }).describe('Brackets of ASHA with different grace periods.'),
    z
      .strictObject({
        rule: z.literal('median'),
        ...objective,
        startup_trials: z.number().int().min(0).default(5).describe('Completed trials before any pausing.'),
        warmup_epochs: z.number().int().min(0).default(0).describe('Epochs of each trial before it can be paused.'),
        min_trials: z.number().int().positive().default(1).describe('Completed trials that must have reached an epoch to judge it.'),
      })
      .describe('Pause a trial whose best value is worse than the median of completed trials at the same epoch.'),
  ])
  .describe('Early stopping of poor trials; a stopped trial is paused at its checkpoint, never discarded.');

export type PrunerConfig = z.infer<typeof prunerConfigSchema>;

export function createPruner(config: PrunerConfig, maxEpochs: number): Pruner {
  switch (config.rule) {
    case 'asha':
    case 'hyperband': {
      const options = {
        metric: config.metric,
        direction: config.direction,
        minResource: config.grace_epochs,
        maxResource: maxEpochs,
        reductionFactor: config.reduction_factor,
      };
      return config.rule === 'asha' ? new AshaPruner({ ...options, minEarlyStoppingRate: 0 }) : new HyperbandPruner(options);
    }
    case 'median':
      return new MedianPruner({
        metric: config.metric,
        direction: config.direction,
        nStartupTrials: config.startup_trials,
        nWarmupEpochs: config.warmup_epochs,
        nMinTrials: config.min_trials,
      });
  }
}
