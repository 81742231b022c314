import { hostname } from 'node:os';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { ArtifactCorrupt, StorageError, stepKey, writeFileAtomic } from '../artifacts/store';
import { TrainingShare } from '../artifacts/training-share';
import { trainInChildProcess } from '../ml/train-process';
import type { TrainConfig } from '../ml/trainer';
import { epochSignal, type EpochReport } from '../workflows/progress';
import { activityContext } from './context';
import type { ActivityDeps } from './deps';
import { parseStepParams } from './params';
import { defineStep } from './step-module';
import { trackTrial } from './tracking';
import type { PaddingResult, StepInput, TrainResult } from './types';
import { damagedInput, upstreamOf, verifyInput } from './upstream';

export const poolingVariants = ['last', 'mean', 'last-valid', 'mean-valid', 'max'] as const;
export type Pooling = (typeof poolingVariants)[number];

export const trainParams = z.strictObject({
  pooling: z.enum(poolingVariants).default('mean').describe("How the GRU's outputs over time become one vector (the question of the seed study)."),
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
});
export type TrainParams = z.infer<typeof trainParams>;

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
  const identity = { type: 'train', version: TRAIN_VERSION, params, inputs: { padding: padded.ref.dir } };
  const ctx = activityContext();
  const log = deps.logger.child({ sweep: input.sweepId, step: input.step, trial: input.trial });
  const started = Date.now();
  let resumedFromEpoch = 0;

  const { ref, result, cached } = await deps.store
    .getOrBuild(identity, async (dir) => {
      // A damaged padded table must never be trained on silently: check it against its digest.
      await verifyInput(deps.store, padded.ref, padded.table, `trial ${input.trial ?? input.step}`, input.sweepId);
      const paddedPath = await deps.store.localPath(padded.ref, padded.table);
      const key = stepKey(identity).slice(0, 32);
      const checkpointDir = await deps.store.workDir('train', key);
      // With a bucket store, this trial may have started on another machine: continue from its checkpoint.
      const share = await TrainingShare.open(deps.store, key, log);
      await share.restore();
      const tracker = trackTrial({ sweepId: input.sweepId, step: input.step, trial: input.trial ?? input.step, identity }, deps, log);
      const notifyTrialWorkflow = progressNotifier(log);
      // "Best" means what early stopping keeps: the epoch with the lowest valid loss.
      let best = { loss: Infinity, acc: 0 };
      const outcome = await trainInChildProcess(
        { paddedPath, config: toConfig(params), checkpointDir },
        {
          signal: ctx?.cancellationSignal,
          onBatch: (epoch, batch, batches) => ctx?.heartbeat({ epoch, batch, batches }),
          onEpoch: (m, checkpoint) => {
            if (m.valid_loss < best.loss) best = { loss: m.valid_loss, acc: m.valid_acc };
            share.checkpointWritten(checkpoint);
            ctx?.heartbeat({ epoch: m.epoch, checkpoint });
            log.info({ ...m }, 'epoch finished');
            const report: EpochReport = {
              epoch: m.epoch,
              epochs: params.epochs,
              validAcc: m.valid_acc,
              validLoss: m.valid_loss,
              bestValidAcc: best.acc,
            };
            notifyTrialWorkflow(report);
            tracker.epoch(m, checkpoint);
          },
        },
      )
        .catch((err: Error) => {
          throw asFailure(deps.store.explainWrite(err, `the checkpoints of trial ${input.trial ?? input.step}`), input);
        })
        // Also after a failure or a cancellation: the newest checkpoint is what a retry elsewhere continues from.
        .finally(() => share.flush());
      resumedFromEpoch = outcome.resumedFromEpoch;
      if (resumedFromEpoch > 0) log.info({ resumedFromEpoch }, 'resumed from checkpoint');
      await writeFileAtomic(`${dir}/metrics.json`, JSON.stringify(outcome.epochs, null, 2));
      // MLflow, TensorBoard and settings.toml; never throws (tracking problems are recorded, not fatal).
      const tracking = await tracker.finish(outcome, dir);
      return {
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
  };
}

/** Errors that no retry can fix become non-retryable failures that name the trial and the way out. */
function asFailure(err: Error, input: StepInput<TrainParams>): Error {
  const where = `trial ${input.trial ?? input.step}`;
  if (err.name === 'TrainConfigError' || err.name === 'CheckpointMismatchError') {
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
  };
}

/**
 * Progress for the UI and the CLI. At most one signal every two seconds: each adds events to the
 * trial's history, and a fast engine finishes many epochs a second. The trial's final state comes
 * from its result, so a skipped report loses nothing; losing one (server briefly away) costs
 * nothing either, so this never fails the trial.
 */
function progressNotifier(log: ActivityDeps['logger'], minIntervalMs = 2000): (report: EpochReport) => void {
  let last = 0;
  return (report) => {
    const ctx = activityContext();
    const workflowId = ctx?.info.workflowExecution?.workflowId;
    if (!ctx || !workflowId || Date.now() - last < minIntervalMs) return;
    last = Date.now();
    const failed = (err: Error) => log.debug({ err: err.message }, 'could not report epoch progress');
    try {
      ctx.client.workflow.getHandle(workflowId).signal(epochSignal, report).catch(failed);
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
