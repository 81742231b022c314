import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { ArtifactCorrupt, StorageError, stepKey, writeFileAtomic } from '../artifacts/store';
import { TrainingShare } from '../artifacts/training-share';
import { POOLINGS } from '../ml/pooling';
import { trainInChildProcess, type TrainHooks, type TrainRequest } from '../ml/train-process';
import { describeEngine, type TrainConfig, type TrainOutcome } from '../ml/trainer';
import { epochSignal, type EpochReport } from '../workflows/progress';
import { activityContext } from './context';
import type { ActivityDeps } from './deps';
import { parseStepParams } from './params';
import { defineStep } from './step-module';
import { trackTrial } from './tracking';
import type { PaddingResult, StepInput, TrainResult, TrainTiming } from './types';
import { damagedInput, upstreamOf, verifyInput } from './upstream';

export const trainParams = z.strictObject({
  pooling: z.enum(POOLINGS).default('mean').describe("How the GRU's outputs over time become one vector (the question of the seed study)."),
  seed: z.number().int().min(0).default(1).describe('Seed of initialisation, shuffling and dropout.'),
  hidden: z.number().int().positive().default(64).describe('GRU hidden size.'),
  layers: z.number().int().positive().default(1).describe('Stacked GRU layers.'),
  dropout: z.number().min(0).lt(1).default(0).describe('Dropout between stacked GRU layers.'),
  epochs: z.number().int().positive().default(30).describe('Most epochs to train (early stopping may end sooner).'),
  batch_size: z.number().int().positive().default(32),
  batching: z
    .enum(['batch-max', 'bucket'])
    .default('batch-max')
    .describe('`batch-max`: each batch padded to its own longest sequence (the reference); `bucket`: batches of similar lengths.'),
  lr: z.number().positive().default(1e-3).describe('Adam learning rate.'),
  weight_decay: z.number().min(0).default(1e-5).describe('L2 weight decay, added to the gradient (as torch.optim.Adam does).'),
  plateau_factor: z.number().gt(0).lt(1).default(0.5).describe('ReduceLROnPlateau: factor applied to the learning rate.'),
  plateau_patience: z.number().int().min(0).default(5).describe('ReduceLROnPlateau: epochs without improvement before reducing.'),
  early_stop_patience: z.number().int().min(0).default(5).describe('Early stopping: epochs without improvement of the valid loss.'),
  early_stop_delta: z.number().min(0).default(0).describe('Early stopping: smallest decrease of the valid loss that counts.'),
  train_batches: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('Cap on training batches per epoch, for quick runs (the reference streams floor(n / batch) batches).'),
  valid_batches: z.number().int().positive().optional().describe('Cap on validation batches per epoch, for quick runs.'),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto').describe('TensorFlow.js backend; `auto` prefers tfjs-node.'),
  engine: z
    .enum(['auto', 'fused', 'fused-gru', 'tfjs'])
    .default('auto')
    .describe(
      'How a training step is computed: `fused`, the whole step in one WebAssembly kernel; `fused-gru`, the TensorFlow.js model with each GRU layer as one fused op; `tfjs`, op by op (the reference); `auto`, fused where the kernel loads.',
    ),
  pause_at_epoch: z
    .number()
    .int()
    .positive()
    .optional()
    .describe(
      'Pruning that pauses: train only up to this epoch. The result is that of a run of this many epochs; the checkpoints are those of the whole trial, so a later run with a larger pause_at_epoch (or none) continues from them instead of starting over.',
    ),
  allow_engine_change: z
    .boolean()
    .optional()
    .describe(
      'Accept a checkpoint or a cached result that another engine computed (another kernel build or backend, e.g. an unlike worker) instead of failing; the trial and the report then say so. Its numbers agree with a one-engine run only up to rounding.',
    ),
});
export type TrainParams = z.infer<typeof trainParams>;

/** Padded tables this process has verified, by local path: the file's identity when it was. */
const verifiedInputs = new Map<string, string>();

/** Changes with any write to the file (or its replacement): then it is verified again. */
async function fileIdentity(file: string): Promise<string> {
  const s = await stat(file).catch(() => undefined);
  return s === undefined ? 'missing' : `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

/** Bump when a change to training would change its results: it is part of every trial's cache key. */
export const TRAIN_VERSION = 1;

/**
 * One trial: trains the GRU with the trial's parameters in a child process (the worker's event
 * loop stays free for heartbeats and other activities), checkpointing every epoch. A retry on any
 * worker that shares the artifact store continues from the newest checkpoint; a trial that already
 * finished is a cache hit.
 */
export async function train(input: StepInput<TrainParams>, deps: ActivityDeps): Promise<TrainResult> {
  const params = parseStepParams(trainParams, input.params, input.step);
  const padded = upstreamOf<PaddingResult>(input.inputs, 'padding', (v) => 'maxLength' in v && 'table' in v);
  // A paused run (pause_at_epoch) is the artifact of a run of that many epochs, trained in the
  // checkpoint folder of the whole trial: its promotion continues there. Without it, both are the trial's own.
  const { pause_at_epoch: pauseAt, ...whole } = params;
  const trained = pauseAt !== undefined ? { ...whole, epochs: Math.min(pauseAt, whole.epochs) } : whole;
  const identity = { type: 'train', version: TRAIN_VERSION, params: trained, inputs: { padding: padded.ref.dir } };
  const checkpoints = { ...identity, params: whole };
  const ctx = activityContext();
  const log = deps.logger.child({ sweep: input.sweepId, step: input.step, trial: input.trial });
  const started = Date.now();
  const activityStarted = performance.now();
  let built = 0;
  let resumedFromEpoch = 0;
  const timing = emptyTiming();
  // Set by this attempt's training; a cache hit compares what computed it with this worker's engine.
  let computedHere: string | undefined;
  let engineChange: TrainResult['engineChange'];

  const { ref, result, cached } = await deps.store
    .getOrBuild(identity, async (dir) => {
      // A damaged padded table must never be trained on silently: check it against its digest
      // (once per worker process while the file stays the same one: a sweep's trials share it).
      const verifying = performance.now();
      const paddedPath = await deps.store.localPath(padded.ref, padded.table);
      const identityOfFile = await fileIdentity(paddedPath);
      if (verifiedInputs.get(paddedPath) !== identityOfFile) {
        await verifyInput(deps.store, padded.ref, padded.table, `trial ${input.trial ?? input.step}`, input.sweepId);
        verifiedInputs.set(paddedPath, identityOfFile);
      }
      timing.verifyInput = (performance.now() - verifying) / 1000;
      const key = stepKey(checkpoints).slice(0, 32);
      const checkpointDir = await deps.store.workDir('train', key);
      // With a bucket store, this trial may have started on another machine: continue from its checkpoint.
      const share = await TrainingShare.open(deps.store, key, log);
      await share.restore();
      const tracker = trackTrial({ sweepId: input.sweepId, step: input.step, trial: input.trial ?? input.step, identity }, deps, log);
      const notifyTrialWorkflow = progressNotifier(log, timing);
      // "Best" means what early stopping keeps: the epoch with the lowest valid loss.
      let best = { loss: Infinity, acc: 0 };
      const heartbeat = (details: unknown): void => {
        const t0 = performance.now();
        ctx?.heartbeat(details);
        timing.heartbeat += (performance.now() - t0) / 1000;
      };
      const asked = performance.now();
      let trainMs: number | undefined;
      const hooks: TrainHooks = {
        signal: ctx?.cancellationSignal,
        onStart: () => {
          timing.processWait = (performance.now() - asked) / 1000;
          timing.prepare = Math.max(0, (asked - activityStarted) / 1000 - timing.verifyInput);
        },
        onLoaded: (ms) => (timing.dataLoad = ms / 1000),
        onSetup: (ms) => (timing.trainSetup = ms / 1000),
        onTrained: (ms) => (trainMs = ms),
        onBatch: (epoch, batch, batches) => heartbeat({ epoch, batch, batches }),
        onEpoch: (m, checkpoint) => {
          if (m.valid_loss < best.loss) best = { loss: m.valid_loss, acc: m.valid_acc };
          share.checkpointWritten(checkpoint);
          heartbeat({ epoch: m.epoch, checkpoint });
          log.info({ ...m }, 'epoch finished');
          const report: EpochReport = {
            epoch: m.epoch,
            epochs: params.epochs,
            validAcc: m.valid_acc,
            validLoss: m.valid_loss,
            bestValidAcc: best.acc,
          };
          // The last epoch's numbers reach the trial workflow with the result a moment later: a
          // signal would only cost it a workflow task (one per trial in a sweep of short trials).
          if (m.epoch < trained.epochs) notifyTrialWorkflow(report);
          tracker.epoch(m, checkpoint);
        },
      };
      const request: TrainRequest = { paddedPath, config: toConfig(trained), checkpointDir };
      const outcome = await (deps.trainPool ? deps.trainPool.run(request, hooks) : trainInChildProcess(request, hooks))
        .catch((err: Error) => {
          throw asFailure(deps.store.explainWrite(err, `the checkpoints of trial ${input.trial ?? input.step}`), input);
        })
        // Also after a failure or a cancellation: the newest checkpoint is what a retry elsewhere continues from.
        .finally(() => share.flush());
      resumedFromEpoch = outcome.resumedFromEpoch;
      if (resumedFromEpoch > 0) log.info({ resumedFromEpoch }, 'resumed from checkpoint');
      if (outcome.engineChange) log.warn({ engineChange: outcome.engineChange }, 'resumed a checkpoint another engine computed (allow_engine_change)');
      addTrainerTiming(timing, outcome);
      if (trainMs !== undefined) {
        const epochs = outcome.epochs.slice(outcome.resumedFromEpoch).reduce((s, e) => s + e.seconds, 0);
        timing.trainEnd = Math.max(0, trainMs / 1000 - (timing.trainSetup ?? 0) - epochs - timing.checkpoint);
      }
      const finishing = performance.now();
      const metricsWritten = writeFileAtomic(`${dir}/metrics.json`, JSON.stringify(outcome.epochs, null, 2));
      // MLflow, TensorBoard and settings.toml, beside metrics.json (uploaded once written); never
      // throws (tracking problems are recorded, not fatal).
      const tracking = await tracker.finish(outcome, dir, metricsWritten);
      await metricsWritten;
      timing.finish = (performance.now() - finishing) / 1000;
      computedHere = outcome.computedBy;
      engineChange = outcome.engineChange;
      built = performance.now();
      return {
        computedBy: outcome.computedBy,
        best: outcome.best,
        epochsRun: outcome.epochs.length,
        stoppedEarly: outcome.stoppedEarly,
        backend: outcome.backend,
        trainSeconds: (Date.now() - started) / 1000,
        tracking,
      };
    })
    .catch((err: Error) => {
      // Storage errors outside the training itself (the trial's artifact folder) fail the same way.
      throw asFailure(err, input);
    });
  if (built > 0) timing.commit = (performance.now() - built) / 1000;
  if (cached && result.computedBy !== undefined) {
    const here = await describeEngine(toConfig(trained));
    if (here !== result.computedBy) {
      if (!params.allow_engine_change) {
        throw ApplicationFailure.nonRetryable(
          `trial ${input.trial ?? input.step}: its cached result (${ref.dir}) was computed by ${result.computedBy}, but this worker resolves ` +
            `engine ${params.engine} to ${here}; reusing it would mix their numerics in one comparison. Run the sweep on workers like the first ` +
            'one, set the engine (and SWEEPS_KERNEL) explicitly, or allow it with the train parameter allow_engine_change: true',
          'EngineMismatchError',
        );
      }
      engineChange = { from: result.computedBy, to: here, cacheHit: true };
      log.warn({ engineChange }, 'cache hit computed by another engine (allow_engine_change)');
    }
  }

  return {
    ref,
    cached,
    seconds: (Date.now() - started) / 1000,
    trial: input.trial ?? input.step,
    params,
    best: result.best,
    epochsRun: result.epochsRun,
    stoppedEarly: result.stoppedEarly,
    backend: result.backend,
    metrics: 'metrics.json',
    resumedFromEpoch,
    worker: deps.worker ?? `${hostname()}:${process.pid}`,
    tracking: result.tracking,
    ...(result.computedBy !== undefined && { computedBy: result.computedBy }),
    ...(engineChange && { engineChange }),
    ...(!cached && computedHere !== undefined && { timing }),
  };
}

function emptyTiming(): TrainTiming {
  return {
    prepare: 0,
    verifyInput: 0,
    processWait: 0,
    dataLoad: 0,
    trainSetup: 0,
    trainEnd: 0,
    steps: 0,
    stepCount: 0,
    batchAssembly: 0,
    evaluation: 0,
    checkpoint: 0,
    epochOther: 0,
    heartbeat: 0,
    progressSignal: 0,
    progressSignals: 0,
    finish: 0,
    commit: 0,
  };
}

function addTrainerTiming(timing: TrainTiming, outcome: TrainOutcome): void {
  const t = outcome.timing;
  Object.assign(timing, {
    steps: t.steps,
    stepCount: t.stepCount,
    batchAssembly: t.batchAssembly,
    evaluation: t.evaluation,
    checkpoint: t.checkpoint,
    epochOther: t.other,
  });
}

/** Errors that no retry can fix become non-retryable failures that name the trial and the way out. */
function asFailure(err: Error, input: StepInput<TrainParams>): Error {
  const where = `trial ${input.trial ?? input.step}`;
  if (err.name === 'TrainConfigError' || err.name === 'CheckpointMismatchError' || err.name === 'EngineMismatchError') {
    return ApplicationFailure.nonRetryable(`${where}: ${err.message}`, err.name);
  }
  if (err instanceof ArtifactCorrupt) return damagedInput(err, where, input.sweepId);
  if (err instanceof StorageError) {
    // Retrying into a full or read-only disk only burns attempts: fail now, resume after the fix.
    return ApplicationFailure.nonRetryable(
      `${where}: ${err.message}; then \`sweeps resume ${input.sweepId}\` continues from its last checkpoint`,
      'StorageError',
    );
  }
  return err;
}

export function toConfig(p: TrainParams): TrainConfig {
  return {
    pooling: p.pooling,
    seed: p.seed,
    hidden: p.hidden,
    layers: p.layers,
    dropout: p.dropout,
    epochs: p.epochs,
    batchSize: p.batch_size,
    batching: p.batching,
    lr: p.lr,
    weightDecay: p.weight_decay,
    plateauFactor: p.plateau_factor,
    plateauPatience: p.plateau_patience,
    earlyStopPatience: p.early_stop_patience,
    earlyStopDelta: p.early_stop_delta,
    trainBatches: p.train_batches,
    validBatches: p.valid_batches,
    backend: p.backend,
    engine: p.engine,
    ...(p.allow_engine_change !== undefined && { allowEngineChange: p.allow_engine_change }),
  };
}

/**
 * Progress for the UI and the CLI. At most one signal every two seconds: each adds events to the
 * trial's history, and a fast engine finishes many epochs a second. The trial's final state comes
 * from its result, so a skipped report loses nothing; losing one (server briefly away) costs
 * nothing either, so this never fails the trial.
 */
function progressNotifier(log: ActivityDeps['logger'], timing: TrainTiming, minIntervalMs = 2000): (report: EpochReport) => void {
  let last = 0;
  // Taken now: the training process's messages arrive outside the activity's async context (a
  // pooled process was started before this activity), where activityContext() knows no activity.
  const ctx = activityContext();
  return (report) => {
    const workflowId = ctx?.info.workflowExecution?.workflowId;
    if (!ctx || !workflowId || Date.now() - last < minIntervalMs) return;
    last = Date.now();
    const failed = (err: Error) => log.debug({ err }, 'could not report epoch progress');
    const sent = performance.now();
    const done = () => {
      timing.progressSignal += (performance.now() - sent) / 1000;
      timing.progressSignals += 1;
    };
    try {
      ctx.client.workflow
        .getHandle(workflowId)
        .signal(epochSignal, report)
        .then(done, (err: Error) => {
          done();
          failed(err);
        });
    } catch (err) {
      failed(err as Error); // no client at all (an activity run outside a worker): nothing to tell
    }
  };
}

/** `gru_mean-h64-s1`: the names people use for trials of the GRU (the matrix values beyond these follow). */
function gruTrialId(params: TrainParams, cell: Record<string, unknown>): string {
  const clean = (v: unknown) => String(v).replace(/[^A-Za-z0-9.]+/g, '_');
  const extra = Object.keys(cell)
    .filter((k) => !['pooling', 'hidden', 'seed'].includes(k))
    .sort()
    .map((k) => `${k}${clean(cell[k])}`);
  return [`gru_${clean(params.pooling)}`, `h${clean(params.hidden)}`, ...extra, `s${clean(params.seed)}`].join('-');
}

export const trainStep = defineStep({
  type: 'train',
  params: trainParams,
  reads: { from: 'padding', count: 'exactly one' },
  matrix: true,
  // Training is long and resumes from its last epoch checkpoint, so retrying it is cheap: allow
  // many attempts, and detect a dead worker quickly through the heartbeat. The trainer runs in a
  // child process, so the worker's event loop is free to heartbeat however busy the cores are.
  durability: {
    startToCloseTimeout: '6h',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10 },
  },
  summary: (p) => `train a GRU (${p.pooling} pooling, hidden ${p.hidden}, seed ${p.seed})`,
  trialId: gruTrialId,
  activity: train,
});
