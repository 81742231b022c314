import { hostname } from 'node:os';
import { ApplicationFailure } from '@temporalio/common';
import { ArtifactCorrupt, StorageError, stepKey, writeFileAtomic } from '../artifacts/store';
import { TrainingShare } from '../artifacts/training-share';
import { trainInChildProcess } from '../ml/train-process';
import type { TrainConfig } from '../ml/trainer';
import { trainParams, type TrainParams } from '../pipeline/steps';
import { epochSignal, type EpochReport } from '../workflows/progress';
import { activityContext } from './context';
import type { ActivityDeps } from './deps';
import { trackTrial } from './tracking';
import type { PaddingResult, StepInput, TrainResult } from './types';
import { damagedInput, upstreamOf, verifyInput } from './upstream';

/** Bump when a change to training would change its results: it is part of every trial's cache key. */
export const TRAIN_VERSION = 1;

/**
 * One trial: trains the GRU with the trial's parameters in a child process (the worker's event
 * loop stays free for heartbeats and other activities), checkpointing every epoch. A retry on any
 * worker that shares the artifact store continues from the newest checkpoint; a trial that already
 * finished is a cache hit.
 */
export async function train(input: StepInput<TrainParams>, deps: ActivityDeps): Promise<TrainResult> {
  const parsed = trainParams.safeParse(input.params);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `step ${input.step} trial ${input.trial ?? ''}: bad parameters: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'BadParameters',
    );
  }
  const params = parsed.data;
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
    const failed = (err: Error) => log.debug({ err }, 'could not report epoch progress');
    try {
      ctx.client.workflow.getHandle(workflowId).signal(epochSignal, report).catch(failed);
    } catch (err) {
      failed(err as Error); // no client at all (an activity run outside a worker): nothing to tell
    }
  };
}
