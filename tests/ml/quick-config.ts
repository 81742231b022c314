import type { TrainConfig } from '../../ml/trainer';

/** A trial small enough for unit tests: hidden 8, batches of 16, a few epochs, on wasm. */
export function quickConfig(overrides: Partial<TrainConfig> = {}): TrainConfig {
  return {
    pooling: 'mean',
    seed: 1,
    hidden: 8,
    layers: 1,
    dropout: 0,
    epochs: 4,
    batchSize: 16,
    batching: 'batch-max',
    lr: 1e-2,
    weightDecay: 1e-5,
    plateauFactor: 0.5,
    plateauPatience: 5,
    earlyStopPatience: 5,
    earlyStopDelta: 0,
    backend: 'wasm',
    ...overrides,
  };
}
