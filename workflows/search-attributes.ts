import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes that let a user filter sweeps and trials in the Temporal UI
 * (e.g. `Pipeline = "my-study" AND SweepKind = "trial" AND Variant = "mean"`).
 * The server setup registers exactly this list.
 */
export const searchAttributes = {
  pipeline: defineSearchAttributeKey('Pipeline', SearchAttributeType.KEYWORD),
  kind: defineSearchAttributeKey('SweepKind', SearchAttributeType.KEYWORD),
  variant: defineSearchAttributeKey('Variant', SearchAttributeType.KEYWORD),
  seed: defineSearchAttributeKey('Seed', SearchAttributeType.INT),
  state: defineSearchAttributeKey('TrialState', SearchAttributeType.KEYWORD),
  bestValidAcc: defineSearchAttributeKey('BestValidAcc', SearchAttributeType.DOUBLE),
  /** A run of a pruned search: the rung (epoch) it trains to, then the epoch it stopped at. */
  rung: defineSearchAttributeKey('TrialRung', SearchAttributeType.INT),
  /** A run of a pruned search: how the pruner started it (`sampled`: a new trial; `promoted`: continued from the rung where it paused). */
  decision: defineSearchAttributeKey('TrialDecision', SearchAttributeType.KEYWORD),
} as const;

/** Name → server type, for registration (`temporal server start-dev --search-attribute`). */
export const searchAttributeRegistrations: Array<{ name: string; type: 'Keyword' | 'Int' | 'Double' }> = [
  { name: 'Pipeline', type: 'Keyword' },
  { name: 'SweepKind', type: 'Keyword' },
  { name: 'Variant', type: 'Keyword' },
  { name: 'Seed', type: 'Int' },
  { name: 'TrialState', type: 'Keyword' },
  { name: 'BestValidAcc', type: 'Double' },
  { name: 'TrialRung', type: 'Int' },
  { name: 'TrialDecision', type: 'Keyword' },
];
