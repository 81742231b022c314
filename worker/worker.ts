import { hostname } from 'node:os';
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities } from '../activities';
import { createArtifactStore } from '../artifacts/create';
import type { SweepsConfig } from '../client/config';
import { unreachable, type TemporalTarget } from '../client/server';
import { TrainPool } from '../ml/train-pool';

export type QueueRole = 'io' | 'train';

export interface RunningWorkers {
  identity: string;
  /** Settles when every worker has stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

let runtimeInstalled = false;

/** Routes the SDK's own logs into our structured log, once per process. */
function installRuntime(logger: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.SWEEPS_SDK_LOG_LEVEL ?? 'WARN') as LogLevel;
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      const fn = entry.level === 'ERROR' ? 'error' : entry.level === 'WARN' ? 'warn' : entry.level === 'INFO' ? 'info' : 'debug';
      logger[fn]({ sdk: true, ...entry.meta }, entry.message);
    }),
  });
}

/**
 * Starts the workers of this process: the workflow + data/report queue and the training queue
 * (training slots = cores, each slot with a warm training child process that trains one trial
 * after another). Either role can be left out to scale them separately.
 */
export async function startWorkers(
  config: SweepsConfig,
  target: TemporalTarget,
  logger: Logger,
  options: { roles?: QueueRole[]; identity?: string } = {},
): Promise<RunningWorkers> {
  installRuntime(logger);
  const roles = options.roles ?? ['io', 'train'];
  const identity = options.identity ?? (process.env.SWEEPS_WORKER_IDENTITY || `${hostname()}:${process.pid}`);
  // The store first: a bad artifact setting fails before a connection is opened.
  const store = await createArtifactStore(config, logger);
  const abandoned = await store.removeAbandonedBuilds().catch(() => []);
  if (abandoned.length > 0) logger.info({ abandoned }, 'removed build folders that killed processes left behind');
  const connection = await NativeConnection.connect(target.connectionOptions).catch((err: unknown) => {
    throw unreachable(target, err);
  });
  // One warm training process per slot, started before the worker polls: a trial pays no start-up.
  const trainPool = roles.includes('train') ? new TrainPool({ size: config.trainSlots }) : undefined;
  await trainPool?.warm();
  const activities = createActivities({
    store,
    logger,
    trainPool,
    // Each trial's result names the worker that trained it, by the identity Temporal records for
    // the activity (what the UI shows), so a sweep spread over machines says which one ran what.
    worker: `${identity}/train`,
    dataRoots: config.dataRoots,
    ui: target.uiUrl ? { url: target.uiUrl, namespace: target.namespace } : undefined,
  });
  const workers: Worker[] = [];
  if (roles.includes('io')) {
    workers.push(
      await Worker.create({
        connection,
        namespace: target.namespace,
        taskQueue: config.taskQueue,
        identity: `${identity}/io`,
        workflowsPath: require.resolve('../workflows'),
        activities,
        maxConcurrentActivityTaskExecutions: 4,
        maxHeartbeatThrottleInterval: '3s',
      }),
    );
  }
  if (roles.includes('train')) {
    workers.push(
      await Worker.create({
        connection,
        namespace: target.namespace,
        taskQueue: config.trainQueue,
        identity: `${identity}/train`,
        activities,
        maxConcurrentActivityTaskExecutions: config.trainSlots,
        // Cancellation reaches an activity only through a heartbeat's response: send them often
        // enough that cancelling a sweep stops its trainings within seconds.
        maxHeartbeatThrottleInterval: '3s',
      }),
    );
  }
  logger.info({ identity, roles, taskQueue: config.taskQueue, trainQueue: config.trainQueue, slots: config.trainSlots }, 'workers started');
  const done = Promise.all(workers.map((w) => w.run()))
    .finally(() => trainPool?.close())
    .then(async () => {
      await connection.close();
    });
  return {
    identity,
    done,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}
