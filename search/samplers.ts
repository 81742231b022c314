import { z } from 'zod';
import { HaltonSampler } from './halton';
import { RandomSampler } from './random';
import type { Direction, Sampler, TrialResult } from './sampler';
import { searchSpaceSchema, type Params, type SearchSpace } from './space';
import { TpeSampler, tpeDefaults } from './tpe';

/**
 * The sampler registry: one entry per algorithm (its options schema and a constructor), so adding
 * an algorithm is one file plus one entry here.
 */

const seed = z.number().int().default(0).describe('Seed of the search: the same seed and the same results give the same suggestions.');

export const samplerConfigSchema = z
  .discriminatedUnion('algorithm', [
    z.strictObject({ algorithm: z.literal('random'), seed }).describe('Independent uniform draws.'),
    z.strictObject({ algorithm: z.literal('halton'), seed }).describe('Scrambled Halton points: quasi-random, evenly spread.'),
    z
      .strictObject({
        algorithm: z.literal('tpe'),
        seed,
        n_startup_trials: z.number().int().min(0).default(tpeDefaults.nStartupTrials).describe('Random trials before the model is used.'),
        n_ei_candidates: z.number().int().positive().default(tpeDefaults.nEiCandidates).describe('Candidates drawn from l(x) per suggestion.'),
        prior_weight: z.number().positive().default(tpeDefaults.priorWeight),
        multivariate: z.boolean().default(tpeDefaults.multivariate).describe('One joint model of all parameters instead of one per parameter.'),
        constant_liar: z.boolean().default(tpeDefaults.constantLiar).describe('Treat trials in flight as bad results, so parallel suggestions spread out.'),
      })
      .describe('Tree-structured Parzen estimator, as Optuna defines it.'),
  ])
  .describe('How the next trials are chosen.');

export type SamplerConfig = z.infer<typeof samplerConfigSchema>;

export function createSampler(space: SearchSpace, config: SamplerConfig, direction: Direction): Sampler {
  switch (config.algorithm) {
    case 'random':
      return new RandomSampler(space, config.seed);
    case 'halton':
      return new HaltonSampler(space, config.seed);
    case 'tpe':
      return new TpeSampler(space, config.seed, direction, {
        nStartupTrials: config.n_startup_trials,
        nEiCandidates: config.n_ei_candidates,
        priorWeight: config.prior_weight,
        multivariate: config.multivariate,
        constantLiar: config.constant_liar,
      });
  }
}

/**
 * Everything a search needs to make its next suggestions, as plain JSON: it lives in an artifact
 * (referenced from workflow history), and an activity computes `suggest(state, count)` from it.
 */
export const studyStateSchema = z.strictObject({
  space: searchSpaceSchema,
  sampler: samplerConfigSchema,
  direction: z.enum(['maximize', 'minimize']),
  trials: z.array(
    z.strictObject({
      number: z.number().int().min(0),
      params: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
      state: z.enum(['running', 'complete', 'pruned']),
      value: z.number().optional(),
      intermediate: z.array(z.number()).optional(),
    }),
  ),
});

export type StudyState = z.infer<typeof studyStateSchema>;

export function suggest(state: StudyState, count: number): Params[] {
  return createSampler(state.space, state.sampler, state.direction).suggest(state.trials as TrialResult[], count);
}
