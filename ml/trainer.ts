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
import { Adam, type AdamState } from './optim';
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
  /**
   * Resume from a checkpoint that another engine computed (another kernel build or backend,
   * e.g. on an unlike worker): the numbers then agree with an uninterrupted run only up to
   * rounding, and the outcome says so (`engineChange`). Default: refuse with EngineMismatchError.
   */
  allowEngineChange?: boolean;
}

/**
 * What computed a run's numbers, as one readable label: the engine, the kernel build for the
 * fused engines, and the TensorFlow.js backend where it computes (not for `fused`, whose
 * TensorFlow.js model only holds the state the kernel starts from). Two runs with the same label compute the
 * same floats.
 */
export function engineLabel(engine: Engine, kernelKind: KernelKind | undefined, backend: string): string {
  if (engine === 'fused') return `fused (${kernelKind ?? '?'} kernel)`;
  if (engine === 'fused-gru') return `fused-gru (${kernelKind ?? '?'} kernel, ${backend} backend)`;
  return `tfjs (${backend} backend)`;
}

/**
 * engineLabel() of what `train` would compute `cfg` with in this process: resolves the engine and
 * the kernel, and the backend where it computes (which loads TensorFlow.js's backend).
 */
export async function describeEngine(cfg: Pick<TrainConfig, 'engine' | 'backend'>): Promise<string> {
  const engine = resolveEngine(cfg.engine);
  const backend = engine === 'fused' ? '' : await initBackend(cfg.backend);
  return engineLabel(engine, engine === 'tfjs' ? undefined : kernel().kind, backend);
}

/** A checkpoint computed by another engine than the one resuming it, without `allowEngineChange`. */
export class EngineMismatchError extends Error {
  override name = 'EngineMismatchError';
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

/**
 * Where one epoch's wall time went, in seconds: kept apart from EpochMetrics because it differs
 * between identical runs and is not part of a checkpoint. `other` is the rest of the epoch
 * (yielding to the event loop for IPC and heartbeats, schedulers, bookkeeping).
 */
export interface EpochTiming {
  epoch: number;
  /** Training steps (the engine's forward, backward and optimizer update). */
  steps: number;
  stepCount: number;
  /** Planning the epoch's batches and gathering (and padding) their rows, train and valid. */
  batchAssembly: number;
  /** The evaluation pass over the valid batches. */
  evaluation: number;
  evalBatches: number;
  /** Copying the engine's state out and writing the checkpoint (fsync included). */
  checkpoint: number;
  other: number;
}

/** The sums of every epoch's timing that this call trained (not the resumed ones). */
export function sumTimings(timings: readonly EpochTiming[]): Omit<EpochTiming, 'epoch'> {
  const total = { steps: 0, stepCount: 0, batchAssembly: 0, evaluation: 0, evalBatches: 0, checkpoint: 0, other: 0 };
  for (const t of timings) for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += t[k];
  return total;
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
  /** Where the time of the epochs this call trained went. */
  timing: Omit<EpochTiming, 'epoch'>;
  /** engineLabel() of what computed this call's epochs. */
  computedBy: string;
  /** Set when the resumed checkpoint was computed by another engine (allowed by `allowEngineChange`). */
  engineChange?: { from: string; to: string; atEpoch: number };
}

export interface TrainOptions {
  checkpointDir: string;
  onEpoch?: (m: EpochMetrics, checkpointPath: string, timing: EpochTiming) => void;
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
  /** engineLabel() of what computed the checkpoint (absent in checkpoints written before it was recorded). */
  computedBy?: string;
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
 * left out because the engine a checkpoint was computed by is checked on its own (`computedBy`),
 * so that a mismatch gets its own message and can be allowed.
 */
function fingerprint(data: PaddedData, cfg: TrainConfig): string {
  const { epochs: _epochs, backend: _backend, engine: _engine, allowEngineChange: _allow, ...rest } = cfg;
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

/**
 * Lets IPC messages out, a parent's disconnect in, and other work on this event loop run, at most
 * every `everyMs`: a fast engine's step takes a millisecond or two, and a turn of the event loop
 * after every one of them cost a third of a trial's time on a loaded machine (bench:sweep).
 * `urgent`: yield now. While a checkpoint is being written, each of its dozen file operations
 * needs a turn of the loop to start the next, so the writer would crawl at one every 25 ms and
 * make the next epoch's end wait for it.
 */
function eventLoopYielder(everyMs = 25): (urgent?: boolean) => Promise<void> | undefined {
  let last = performance.now();
  return (urgent = false) => {
    const now = performance.now();
    if (!urgent && now - last < everyMs) return undefined;
    return new Promise((resolve) =>
      setImmediate(() => {
        last = performance.now();
        resolve();
      }),
    );
  };
}

function split(flat: Float32Array, sizes: number[]): Float32Array[] {
  let at = 0;
  return sizes.map((n) => flat.slice(at, (at += n)));
}

/**
 * The fused engine computes nothing in TensorFlow.js (its variables only hold the starting or
 * resumed state the kernel takes over), so its `auto` backend is the one that loads fastest and smallest: native
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
  /** The weights (getWeights layout) and Adam's state a checkpoint holds, copied out of whatever computes them. */
  snapshot(): { weights: Float32Array; adam: AdamState };
  dispose(): void;
}

function tfjsRunner(model: GruClassifier, optimizer: Adam): StepRunner {
  return {
    step: (batch, lr, dropoutRng) => {
      optimizer.lr = lr;
      return trainStep(model, optimizer, batch, dropoutRng);
    },
    evaluate: (batch) => evaluateBatch(model, batch),
    snapshot: () => ({ weights: model.getWeights(), adam: optimizer.exportState() }),
    dispose: () => undefined,
  };
}

/** The tfjs model and Adam hand the kernel its starting (or resumed) state; from then on the kernel owns weights and moments, and checkpoints read them from it. */
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
    // Straight from the kernel's memory: the same numbers a round trip through the tfjs mirror
    // would give back, without its dozen tensor uploads and downloads every epoch.
    snapshot: () => ({ weights: trainer.weights, adam: trainer.adamState(sizes) }),
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
  const computedBy = engineLabel(engine, engine === 'tfjs' ? undefined : kernel().kind, backend);
  let engineChange: TrainOutcome['engineChange'];

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
  let pendingCheckpoint: Promise<void> | undefined;
  try {
    const plateau = new ReduceLROnPlateau({ lr: cfg.lr, mode: 'min', factor: cfg.plateauFactor, patience: cfg.plateauPatience });
    const earlyStopping = new EarlyStopping(cfg.earlyStopPatience, cfg.earlyStopDelta);
    const sizes = model.params.map((p) => p.variable.size);
    let metrics: EpochMetrics[] = [];
    let stoppedEarly = false;

    const resumed = latestCheckpoint<TrainingProgress>(opts.checkpointDir, print);
    if (resumed !== null) {
      const p = resumed.state.payload;
      if (p.computedBy !== undefined && p.computedBy !== computedBy) {
        if (!cfg.allowEngineChange) {
          throw new EngineMismatchError(
            `checkpoint ${resumed.path} was computed by ${p.computedBy}, but this worker resolves the engine to ${computedBy}; ` +
              'resuming would mix their numerics. Resume on a worker like the first one, set the engine (and SWEEPS_KERNEL) explicitly, ' +
              'or allow it with the train parameter allow_engine_change: true (the trial and the report then say so)',
          );
        }
        engineChange = { from: p.computedBy, to: computedBy, atEpoch: p.metrics.length };
      }
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

    const timings: EpochTiming[] = [];
    const yieldToEventLoop = eventLoopYielder();
    let writing = false;
    for (let epoch = metrics.length + 1; epoch <= cfg.epochs && !stoppedEarly; epoch++) {
      const started = performance.now();
      const lr = plateau.lr;
      const t: EpochTiming = { epoch, steps: 0, stepCount: 0, batchAssembly: 0, evaluation: 0, evalBatches: 0, checkpoint: 0, other: 0 };
      let mark = performance.now();
      // Adds the time since the last mark to `phase`.
      const lap = (phase: 'steps' | 'batchAssembly' | 'evaluation' | 'checkpoint'): void => {
        const now = performance.now();
        t[phase] += (now - mark) / 1000;
        mark = now;
      };

      const trainPlan = planBatches(data.train, cfg.batchSize, cfg.batching, rngFor(cfg.seed, STREAM.trainOrder, epoch), cfg.trainBatches);
      let trainLoss = 0;
      for (let b = 0; b < trainPlan.length; b++) {
        if (opts.shouldStop?.()) throw new TrainingInterruptedError(epoch - 1);
        mark = performance.now();
        const batch = gatherBatch(data.train, data.maxLength, data.features, trainPlan[b] as Int32Array);
        const dropoutRng = cfg.dropout > 0 && cfg.layers > 1 ? rngFor(cfg.seed, STREAM.dropout, epoch, b) : undefined;
        lap('batchAssembly');
        trainLoss += runner.step(batch, lr, dropoutRng);
        lap('steps');
        t.stepCount += 1;
        opts.onBatch?.(epoch, b + 1, trainPlan.length);
        await yieldToEventLoop(writing);
      }

      mark = performance.now();
      const validPlan = planBatches(data.valid, cfg.batchSize, cfg.batching, rngFor(cfg.seed, STREAM.validOrder, epoch), cfg.validBatches);
      let validLoss = 0;
      let validAcc = 0;
      for (const rows of validPlan) {
        mark = performance.now();
        const batch = gatherBatch(data.valid, data.maxLength, data.features, rows);
        lap('batchAssembly');
        const r = runner.evaluate(batch);
        lap('evaluation');
        t.evalBatches += 1;
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

      // The previous epoch's checkpoint first: checkpoints appear (and are reported) in order.
      mark = performance.now();
      await pendingCheckpoint;
      const { weights, adam } = runner.snapshot();
      // Written while the next epoch trains; reported through onEpoch once it is on disk.
      const written = writeCheckpoint<TrainingProgress>(
        opts.checkpointDir,
        epoch,
        print,
        model.params.map((p) => ({ name: p.name, shape: p.shape })),
        weights,
        concat([...adam.m, ...adam.v]),
        { config: cfg, backend, computedBy, adamStep: adam.step, plateau: plateau.state(), earlyStopping: earlyStopping.state(), metrics, stoppedEarly },
      );
      lap('checkpoint');
      t.other = Math.max(0, (performance.now() - started) / 1000 - t.steps - t.batchAssembly - t.evaluation - t.checkpoint);
      timings.push(t);
      writing = true;
      pendingCheckpoint = written.then((checkpointPath) => {
        writing = false;
        opts.onEpoch?.(m, checkpointPath, t);
      });
      pendingCheckpoint.catch(() => undefined); // awaited below; a failed write must not crash the process meanwhile
      if (opts.shouldStop !== undefined) {
        // Whoever may stop the run sees every epoch reported before it is asked.
        await pendingCheckpoint;
        if (!stoppedEarly && epoch < cfg.epochs && opts.shouldStop()) throw new TrainingInterruptedError(epoch);
      }
    }
    await pendingCheckpoint;

    if (metrics.length === 0) throw new Error('train: no epoch ran (epochs must be at least 1)');
    const kernelKind = engine === 'tfjs' ? {} : { kernel: kernel().kind };
    return {
      best: bestOf(metrics, earlyStopping.bestEpoch),
      epochs: metrics,
      stoppedEarly,
      backend,
      engine,
      ...kernelKind,
      resumedFromEpoch,
      timing: sumTimings(timings),
      computedBy,
      ...(engineChange && { engineChange }),
    };
  } finally {
    await pendingCheckpoint?.catch(() => undefined); // no write outlives the run that started it
    runner?.dispose();
    optimizer.dispose();
    model.dispose();
  }
}
