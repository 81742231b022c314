#!/usr/bin/env node
// Health check of a `sweeps worker` for container orchestrators (docker-compose.yml runs it in each
// worker container). Healthy means more than "the process is alive": the configured Temporal
// frontend answers, and it lists a poller of *this* worker (identity `<hostname>:<pid>/io|train`,
// or `$SWEEPS_WORKER_IDENTITY/…`) on the worker's task queues that polled within the last
// MAX_POLL_AGE_S seconds. A worker whose connection is gone, or that never started polling, fails.
//
//   node scripts/worker-health.js     exit 0 healthy, 1 unhealthy (one line on stderr says why)
//
// Needs the build (dist/) and a configured server (TEMPORAL_ADDRESS or an SDK profile): it never
// starts the embedded one. Plain JavaScript beside the other scripts; it reads the queue names
// through the same loadConfig the worker uses (SWEEPS_TASK_QUEUE / SWEEPS_TRAIN_QUEUE: a worker
// given other queues by --queue flags is not found).
'use strict';

const { hostname } = require('node:os');
const { Connection } = require('@temporalio/client');
const { loadClientConnectConfig } = require('@temporalio/envconfig');
const { loadConfig } = require('../dist/client/config');

// An idle worker's polls are long polls and the server records a poller when its poll arrives, so
// a live idle worker shows ages of up to about a minute (measured: 1-60 s, cycling). A worker whose
// training slots are all busy stops polling the training queue, but its workflow poller keeps
// going: one fresh poller of this worker on any of its queues is enough. (A `--role train` worker
// whose slots stay busy longer than this would read as unhealthy; docker-compose.yml's workers
// serve both roles.)
const MAX_POLL_AGE_S = 180;
const TIMEOUT_MS = 8000;
const WORKFLOW = 1; // temporal.api.enums.v1.TaskQueueType
const ACTIVITY = 2;

function unhealthy(reason) {
  process.stderr.write(`worker-health: unhealthy: ${reason}\n`);
  process.exit(1);
}

async function main() {
  const configured = loadClientConnectConfig();
  if (!configured.connectionOptions.address) unhealthy('no Temporal server configured (set TEMPORAL_ADDRESS)');
  const namespace = configured.namespace ?? 'default';
  const config = loadConfig();
  const prefix = process.env.SWEEPS_WORKER_IDENTITY ? `${process.env.SWEEPS_WORKER_IDENTITY}/` : `${hostname()}:`;

  const connection = await Connection.connect({ ...configured.connectionOptions, connectTimeout: TIMEOUT_MS }).catch((err) =>
    unhealthy(`cannot reach ${configured.connectionOptions.address}: ${err.message}`),
  );
  try {
    const probes = [
      { queue: config.taskQueue, type: WORKFLOW },
      { queue: config.taskQueue, type: ACTIVITY },
      { queue: config.trainQueue, type: ACTIVITY },
    ];
    const now = Date.now();
    const seen = [];
    for (const { queue, type } of probes) {
      const { pollers } = await connection.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: queue },
        taskQueueType: type,
      });
      for (const p of pollers ?? []) {
        if (!p.identity?.startsWith(prefix)) continue;
        const ageS = p.lastAccessTime ? (now - Number(p.lastAccessTime.seconds ?? 0) * 1000) / 1000 : Infinity;
        seen.push(`${p.identity} on ${queue} ${ageS.toFixed(0)} s ago`);
        if (ageS <= MAX_POLL_AGE_S) {
          process.stdout.write(`worker-health: healthy: ${p.identity} polled ${queue} ${Math.max(0, ageS).toFixed(0)} s ago\n`);
          return;
        }
      }
    }
    unhealthy(
      seen.length === 0
        ? `${configured.connectionOptions.address} lists no poller of ${prefix}* on ${config.taskQueue} or ${config.trainQueue}`
        : `no poll within ${MAX_POLL_AGE_S} s (${seen.join('; ')})`,
    );
  } finally {
    await connection.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => unhealthy(err instanceof Error ? err.message : String(err)),
);
