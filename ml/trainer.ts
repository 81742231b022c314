import { createHash } from 'node:crypto';
import { concat } from './arrays';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendPreference } from './backend';
import { gatherBatch, planBatches, type Batch, type Batching } from './batches';
import { latestCheckpoint, writeCheckpoint } from './checkpoint';
import { FusedTrainer } from './kernel/engine';
import { kernel, kernelAvailable, type KernelKind } from './kernel/load';
import { crossEntropy, GruClassifier } from './model';
import { Adam } from './optim';
import type { PaddedData } from './padded-data';
import type { Pooling } from './pooling';
import { rngFor, type Rng } from './rng';
import { EarlyStopping, ReduceLROnPlateau, type EarlyStoppingState, type PlateauState } from './schedule';

/**
 * How a training step is computed. Every engine trains the same model with the same recipe,
 * randomness and checkpoints; results agree up to float32 rounding.
 * - `tfjs`: op by op in TensorFlow.js (ml/gru.ts, autodiff, ml/optim.ts): the tested reference;
 * - `fused-gru`: the same TensorFlow.js model, but each GRU layer is one custom op with its own
 *   backward pass through time (ml/kernel/gru-op.ts); head, loss and Adam stay TensorFlow.js ops;
 * - `fused`: the whole step (GRU, pooling, head, loss, backward, Adam) in one kernel call
 *   (ml/kernel/engine.ts), ~15–30× faster than `tfjs`;
 * - `auto`: `fused`, or `tfjs` where the kernel cannot load.
 */
export type EngineChoice = 'auto' | 'fused' | 'fused-gru' | 'tfjs';
export type Engine = Exclude<EngineChoice, 'auto'>;

export function resolveEngine(choice: EngineChoice = 'auto'): Engine {
  if (choice !== 'auto') return choice;
  return kernelAvailable() ? 'fused' : 'tfjs';
}

export interface TrainConfig {
  pooling: Pooling;
  seed: number;
  hidden: number;
  layers: number;
  dropout: number;
  epochs: number;
  batchSize: number;
  batching: Batching;
  lr: number;
  weightDecay: number;
  plateauFactor: number;
  plateauPatience: number;
  earlyStopPatience: number;
  earlyStopDelta: number;
  trainBatches?: number;
  validBatches?: number;
  backend: BackendPreference;
  /** Default `auto`. */
  engine?: EngineChoice;
}

export interface EpochMetrics {
  /** 1-based. */
  epoch: number;
  train_loss: number;
  valid_loss: number;
  valid_acc: number;
  /** The learning rate the epoch trained with (before the plateau scheduler's step). */
  lr: number;
  /** Wall time of the epoch; the only field that differs between identical runs. */
  seconds: number;
}

export interface TrainOutcome {
  /** The epoch early stopping considers best (lowest valid loss by more than the delta). */
  best: EpochMetrics;
  epochs: EpochMetrics[];
  stoppedEarly: boolean;
  backend: string;
  engine: Engine;
  /** The fused engines' kernel build: the committed WebAssembly, or a native build of it made on this machine. */
  kernel?: KernelKind;
  /** Epochs restored from a checkpoint when this call started (0 when it started fresh). */
  resumedFromEpoch: number;
}

export interface TrainOptions {
  checkpointDir: string;
  onEpoch?: (m: EpochMetrics, checkpointPath: string) => void;
  onBatch?: (epoch: number, batch: number, batches: number) => void;
  /** Polled before every batch; when true, training stops with TrainingInterruptedError. */
  shouldStop?: () => boolean;
}

/** Thrown when `shouldStop` asked to stop: the checkpoints written so far are the result. */
export class TrainingInterruptedError extends Error {
  override name = 'TrainingInterruptedError';
  constructor(readonly completedEpochs: number) {
    super(`training interrupted after ${completedEpochs} completed epoch(s)`);
  }
}

/** Everything a checkpoint carries besides weights and optimizer moments. */
interface TrainingProgress {
  config: TrainConfig;
  backend: string;
  adamStep: number;
  plateau: PlateauState;
  earlyStopping: EarlyStoppingState;
  metrics: EpochMetrics[];
  stoppedEarly: boolean;
}

// Streams of randomness; renaming one changes every result, so they are fixed strings.
const STREAM = { init: 'init', trainOrder: 'train-order', validOrder: 'valid-order', dropout: 'dropout' } as const;

/** A configuration or data problem that no retry can fix. */
export class TrainConfigError extends Error {
  override name = 'TrainConfigError';
}

function validate(data: PaddedData, cfg: TrainConfig): void {
  const positive = { hidden: cfg.hidden, layers: cfg.layers, epochs: cfg.epochs, batchSize: cfg.batchSize };
  for (const [k, v] of Object.entries(positive)) {
    if (!Number.isInteger(v) || v < 1) throw new TrainConfigError(`train config: ${k} must be a positive integer, got ${v}`);
  }
  for (const k of ['trainBatches', 'validBatches'] as const) {
    const v = cfg[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new TrainConfigError(`train config: ${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(cfg.seed)) throw new TrainConfigError(`train config: seed must be an integer, got ${cfg.seed}`);
  for (const [name, split] of [
    ['train', data.train],
    ['valid', data.valid],
  ] as const) {
    if (split.count < cfg.batchSize) {
      throw new TrainConfigError(`${name} split has ${split.count} sequences, fewer than one batch of ${cfg.batchSize}`);
    }
    if (split.offsets === undefined && split.values.length !== split.count * data.maxLength * data.features) {
      throw new TrainConfigError(`${name} split: ${split.values.length} values for ${split.count} × ${data.maxLength} × ${data.features}`);
    }
    if (split.offsets !== undefined && (split.offsets.length !== split.count + 1 || (split.offsets[split.count] as number) > split.values.length)) {
      throw new TrainConfigError(`${name} split: ${split.offsets.length} row offsets for ${split.count} rows of ${split.values.length} values`);
    }
    for (let i = 0; i < split.count; i++) {
      const len = split.lengths[i] as number;
      const y = split.labels[i] as number;
      if (!(len >= 1 && len <= data.maxLength)) throw new TrainConfigError(`${name} row ${i}: length ${len} outside 1..${data.maxLength}`);
      if (!(y >= 0 && y < data.classes)) throw new TrainConfigError(`${name} row ${i}: label ${y} outside 0..${data.classes - 1}`);
    }
  }
}

/**
 * What a checkpoint must match to be resumed: every setting that changes the numbers, and
 * the data. `epochs` is left out so a finished run can be extended; `backend` and `engine` are
 * left out so a retry on a machine with another backend or engine still resumes (then equal
 * only up to rounding).
 */
function fingerprint(data: PaddedData, cfg: TrainConfig): string {
  const { epochs: _epochs, backend: _backend, engine: _engine, ...rest } = cfg;
  const settings = Object.fromEntries(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
  const h = createHash('sha256');
  h.update(JSON.stringify({ settings, maxLength: data.maxLength, features: data.features, classes: data.classes }));
  for (const split of [data.train, data.valid]) {
    for (const arr of [split.values, split.lengths, split.labels]) {
      h.update(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    }
  }
  return h.digest('hex');
}

function batchTensor(batch: Batch): tf.Tensor3D {
  return tf.tensor3d(batch.x, [batch.size, batch.steps, batch.features]);
}

/** One optimisation step on one batch; returns the batch's loss. */
export function trainStep(model: GruClassifier, optimizer: Adam, batch: Batch, dropoutRng?: Rng): number {
  return tf.tidy(() => {
    const x = batchTensor(batch);
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.logits(x, batch.lengths, dropoutRng), batch.labels), model.variables);
    optimizer.applyGradients(model.variables.map((v) => grads[v.name] as tf.Tensor));
    return value.dataSync()[0] as number;
  });
}

/** Loss and accuracy of one batch, without dropout. */
export function evaluateBatch(model: GruClassifier, batch: Batch): { loss: number; accuracy: number } {
  return tf.tidy(() => {
    const logits = model.logits(batchTensor(batch), batch.lengths);
    const loss = crossEntropy(logits, batch.labels).dataSync()[0] as number;
    const values = logits.dataSync();
    const classes = logits.shape[1];
    let correct = 0;
    for (let b = 0; b < batch.size; b++) {
      // First maximum wins, as torch.argmax does.
      let arg = 0;
      for (let c = 1; c < classes; c++) if ((values[b * classes + c] as number) > (values[b * classes + arg] as number)) arg = c;
      if (arg === batch.labels[b]) correct += 1;
    }
    return { loss, accuracy: correct / batch.size };
  });
}

// Lets IPC messages out, a parent's disconnect in, and other work on this event loop run.
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function split(flat: Float32Array, sizes: number[]): Float32Array[] {
  let at = 0;
  return sizes.map((n) => flat.slice(at, (at += n)));
}

/**
 * The fused engine computes nothing in TensorFlow.js (its variables only mirror the kernel's
 * state at checkpoints), so its `auto` backend is the one that loads fastest and smallest: native
 * TensorFlow would add ~200 MB and a second to every training process for nothing. wasm rather
 * than cpu, whose first tensor prints an "install tfjs-node" banner into every trial's log.
 */
async function mirrorBackend(pref: BackendPreference): Promise<string> {
  if (pref !== 'auto') return initBackend(pref);
  try {
    return await initBackend('wasm');
  } catch {
    return initBackend('cpu');
  }
}

/** One training run's steps, whichever engine computes them. */
interface StepRunner {
  step(batch: Batch, lr: number, dropoutRng?: Rng): number;
  evaluate(batch: Batch): { loss: number; accuracy: number };
  /** Makes the model's variables and the optimizer's state the runner's (before a checkpoint). */
  sync(): void;
  dispose(): void;
}

function tfjsRunner(model: GruClassifier, optimizer: Adam): StepRunner {
  return {
    step: (batch, lr, dropoutRng) => {
      optimizer.lr = lr;
      return trainStep(model, optimizer, batch, dropoutRng);
    },
    evaluate: (batch) => evaluateBatch(model, batch),
    sync: () => undefined,
    dispose: () => undefined,
  };
}

/** The kernel owns weights and moments while training; the tfjs model and Adam mirror them at checkpoints. */
function fusedRunner(model: GruClassifier, optimizer: Adam, data: PaddedData, cfg: TrainConfig): StepRunner {
  const { inputSize, hidden, layers, classes, dropout, pooling } = model.config;
  const trainer = new FusedTrainer(
    { inputSize, hidden, layers, classes, dropout, pooling, maxSteps: data.maxLength, maxBatch: cfg.batchSize },
    { beta1: optimizer.beta1, beta2: optimizer.beta2, eps: optimizer.eps, weightDecay: optimizer.weightDecay },
  );
  trainer.loadState(model.getWeights(), optimizer.exportState());
  const sizes = model.params.map((p) => p.variable.size);
  return {
    step: (batch, lr, dropoutRng) => trainer.step(batch, lr, dropoutRng),
    evaluate: (batch) => trainer.evaluate(batch),
    sync: () => {
      model.setWeights(trainer.weights);
      optimizer.importState(trainer.adamState(sizes));
    },
    dispose: () => trainer.dispose(),
  };
}

function bestOf(metrics: EpochMetrics[], bestEpoch: number | null): EpochMetrics {
  const best = bestEpoch === null ? undefined : metrics[bestEpoch - 1];
  return best ?? (metrics[metrics.length - 1] as EpochMetrics);
}

/**
 * Trains a GRU classifier with the reference recipe (mltrainer): per epoch, a fresh shuffle of
 * the train set in floor(n/batch) batches with an Adam step each; then the valid set, shuffled
 * by its own stream, in floor(n/batch) batches (loss and accuracy = means over batches); then
 * ReduceLROnPlateau and early stopping on the valid loss. Checkpoints after every epoch and
 * resumes from the newest intact checkpoint in `opts.checkpointDir`; a resumed run ends
 * bit-identical (weights and metrics, except `seconds`) to an uninterrupted one.
 */
export async function train(data: PaddedData, cfg: TrainConfig, opts: TrainOptions): Promise<TrainOutcome> {
  validate(data, cfg);
  const engine = resolveEngine(cfg.engine);
  const backend = engine === 'fused' ? await mirrorBackend(cfg.backend) : await initBackend(cfg.backend);
  const print = fingerprint(data, cfg);

  const model = new GruClassifier(
    {
      inputSize: data.features,
      hidden: cfg.hidden,
      layers: cfg.layers,
      dropout: cfg.dropout,
      classes: data.classes,
      pooling: cfg.pooling,
      gru: engine === 'fused-gru' ? 'fused' : 'ops',
    },
    rngFor(cfg.seed, STREAM.init),
  );
  const optimizer = new Adam(model.variables, { lr: cfg.lr, weightDecay: cfg.weightDecay });
  let runner: StepRunner | undefined;
  try {
    const plateau = new ReduceLROnPlateau({ lr: cfg.lr, mode: 'min', factor: cfg.plateauFactor, patience: cfg.plateauPatience });
    const earlyStopping = new EarlyStopping(cfg.earlyStopPatience, cfg.earlyStopDelta);
    const sizes = model.params.map((p) => p.variable.size);
    let metrics: EpochMetrics[] = [];
    let stoppedEarly = false;

    const resumed = latestCheckpoint<TrainingProgress>(opts.checkpointDir, print);
    if (resumed !== null) {
      const p = resumed.state.payload;
      model.setWeights(resumed.weights);
      const moments = split(resumed.optimizer, [...sizes, ...sizes]);
      optimizer.importState({ step: p.adamStep, m: moments.slice(0, sizes.length), v: moments.slice(sizes.length) });
      plateau.load(p.plateau);
      earlyStopping.load(p.earlyStopping);
      metrics = p.metrics;
      stoppedEarly = p.stoppedEarly;
    }
    const resumedFromEpoch = metrics.length;
    runner = engine === 'fused' ? fusedRunner(model, optimizer, data, cfg) : tfjsRunner(model, optimizer);

    for (let epoch = metrics.length + 1; epoch <= cfg.epochs && !stoppedEarly; epoch++) {
      const started = performance.now();
      const lr = plateau.lr;

      const trainPlan = planBatches(data.train, cfg.batchSize, cfg.batching, rngFor(cfg.seed, STREAM.trainOrder, epoch), cfg.trainBatches);
      let trainLoss = 0;
      for (let b = 0; b < trainPlan.length; b++) {
        if (opts.shouldStop?.()) throw new TrainingInterruptedError(epoch - 1);
        const batch = gatherBatch(data.train, data.maxLength, data.features, trainPlan[b] as Int32Array);
        const dropoutRng = cfg.dropout > 0 && cfg.layers > 1 ? rngFor(cfg.seed, STREAM.dropout, epoch, b) : undefined;
        trainLoss += runner.step(batch, lr, dropoutRng);
        opts.onBatch?.(epoch, b + 1, trainPlan.length);
        await yieldToEventLoop();
      }

      const validPlan = planBatches(data.valid, cfg.batchSize, cfg.batching, rngFor(cfg.seed, STREAM.validOrder, epoch), cfg.validBatches);
      let validLoss = 0;
      let validAcc = 0;
      for (const rows of validPlan) {
        const r = runner.evaluate(gatherBatch(data.valid, data.maxLength, data.features, rows));
        validLoss += r.loss;
        validAcc += r.accuracy;
        await yieldToEventLoop();
      }

      const m: EpochMetrics = {
        epoch,
        train_loss: trainLoss / trainPlan.length,
        valid_loss: validLoss / validPlan.length,
        valid_acc: validAcc / validPlan.length,
        lr,
        seconds: (performance.now() - started) / 1000,
      };
      plateau.step(m.valid_loss);
      earlyStopping.step(m.valid_loss, epoch);
      stoppedEarly = earlyStopping.shouldStop;
      metrics = [...metrics, m];

      runner.sync();
      const adam = optimizer.exportState();
      const checkpointPath = writeCheckpoint<TrainingProgress>(
        opts.checkpointDir,
        epoch,
        print,
        model.params.map((p) => ({ name: p.name, shape: p.shape })),
        model.getWeights(),
        concat([...adam.m, ...adam.v]),
        { config: cfg, backend, adamStep: adam.step, plateau: plateau.state(), earlyStopping: earlyStopping.state(), metrics, stoppedEarly },
      );
      opts.onEpoch?.(m, checkpointPath);
      if (!stoppedEarly && epoch < cfg.epochs && opts.shouldStop?.()) throw new TrainingInterruptedError(epoch);
    }

    if (metrics.length === 0) throw new Error('train: no epoch ran (epochs must be at least 1)');
    const kernelKind = engine === 'tfjs' ? {} : { kernel: kernel().kind };
    return { best: bestOf(metrics, earlyStopping.bestEpoch), epochs: metrics, stoppedEarly, backend, engine, ...kernelKind, resumedFromEpoch };
  } finally {
    runner?.dispose();
    optimizer.dispose();
    model.dispose();
  }
}
