/**
 * Entry point of a training child process (forked by train-process.ts). Training is CPU-bound
 * and synchronous per batch; running it here keeps the parent's event loop (a Temporal worker:
 * heartbeats, other activities) responsive, and gives each trial its own single-threaded
 * TensorFlow.js backend.
 *
 * The process is kept warm between trials: it loads TensorFlow.js and the kernel once, then
 * trains one request after another, so a trial does not pay Node's, TensorFlow.js's and the
 * kernel's start-up. Nothing of one trial carries over into the next except the loaded data of
 * the same padded file (content-addressed, read-only) and the loaded libraries.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { initBackend } from './backend';
import { kernelAvailable } from './kernel/load';
import { readPadded, type PaddedData } from './padded-data';
import type { ChildMessage, ParentMessage, TrainRequest } from './train-protocol';
import { train, type TrainConfig } from './trainer';

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send?.(message, undefined, {}, () => resolve());
  });
}

/** The last data read, kept for the next trial on the same file (the usual case: a sweep's trials share one). */
let cached: { key: string; data: PaddedData } | undefined;

function loadData(request: TrainRequest): { data: PaddedData; reused: boolean } {
  const { size, mtimeMs } = statSync(request.paddedPath);
  const key = JSON.stringify([request.paddedPath, request.readerModule ?? '', size, mtimeMs]);
  if (cached?.key === key) return { data: cached.data, reused: true };
  cached = undefined; // let the old data go before reading the new
  let data: PaddedData;
  if (request.readerModule === undefined) data = readPadded(request.paddedPath);
  else {
    const reader = require(request.readerModule) as { readPadded?: (path: string) => PaddedData };
    if (typeof reader.readPadded !== 'function') throw new Error(`${request.readerModule} does not export readPadded(path)`);
    data = reader.readPadded(request.paddedPath);
  }
  cached = { key, data };
  return { data, reused: false };
}

const BATCH_REPORT_MS = 200;
let lastBatchReport = 0;

async function run(request: TrainRequest): Promise<void> {
  try {
    const t0 = performance.now();
    const { data, reused } = loadData(request);
    await send({ type: 'loaded', ms: performance.now() - t0, reused });
    const trainCalled = performance.now();
    let setupMs: number | undefined;
    const outcome = await train(data, request.config, {
      checkpointDir: request.checkpointDir,
      onEpoch: (metrics, checkpointPath, timing) => void send({ type: 'epoch', metrics, checkpointPath, timing }),
      onBatch: (epoch, batch, batches) => {
        // The trial's first step also tells what train() did before it (model, optimizer, checkpoint lookup).
        const setup = setupMs === undefined ? { setupMs: (setupMs = performance.now() - trainCalled) } : {};
        // The parent heartbeats on these (throttled by the SDK to seconds anyway): the first batch
        // of an epoch and then every BATCH_REPORT_MS, not each of a fast engine's millisecond steps.
        const now = performance.now();
        if (batch !== 1 && setup.setupMs === undefined && now - lastBatchReport < BATCH_REPORT_MS) return;
        lastBatchReport = now;
        void send({ type: 'batch', epoch, batch, batches, ...setup });
      },
    });
    await send({ type: 'result', outcome, trainMs: performance.now() - trainCalled });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    await send({ type: 'error', name: e.name, message: e.message, stack: e.stack, code: (e as NodeJS.ErrnoException).code });
  }
}

/**
 * Loads what every trial needs before the first one arrives: the default backend and the kernel,
 * then trains a tiny model on made-up data for one batch, so that the first real trial does not
 * pay the first use of the engine (the `auto` backend's start, the kernel's and V8's first runs:
 * measured at 20-30 ms of a cold process's first trial). Its model, optimizer and checkpoint are
 * thrown away; trials never share state (each builds its own), so no trial's numbers change.
 */
async function warmUp(): Promise<void> {
  try {
    await initBackend('wasm');
  } catch {
    // A trial that needs the backend reports the problem itself.
  }
  kernelAvailable();
  if (process.env.SWEEPS_TRAIN_WARMUP === '0') return;
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'sweeps-train-warmup-'));
    await train(warmUpData(), WARM_UP_CONFIG, { checkpointDir: dir });
  } catch {
    // Only a head start (no writable temp folder, no engine): a trial reports its own problem.
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

const WARM_UP_CONFIG: TrainConfig = {
  pooling: 'mean',
  seed: 1,
  hidden: 64,
  layers: 1,
  dropout: 0,
  epochs: 1,
  batchSize: 8,
  batching: 'batch-max',
  lr: 1e-3,
  weightDecay: 0,
  plateauFactor: 0.5,
  plateauPatience: 1,
  earlyStopPatience: 1,
  earlyStopDelta: 0,
  trainBatches: 1,
  validBatches: 1,
  backend: 'auto',
  engine: 'auto',
};

/** Eight sequences of 16 steps × 4 features per split, two classes. */
function warmUpData(): PaddedData {
  const [count, maxLength, features] = [8, 16, 4];
  const split = () => ({
    values: Float32Array.from({ length: count * maxLength * features }, (_, i) => Math.sin(i)),
    lengths: Int32Array.from({ length: count }, (_, i) => maxLength - (i % 4)),
    labels: Int32Array.from({ length: count }, (_, i) => i % 2),
    count,
  });
  return { maxLength, features, classes: 2, train: split(), valid: split() };
}

if (process.send === undefined) {
  console.error('train-child: start me with child_process.fork (see ml/train-process.ts)');
  process.exit(2);
}
// An orphan would train on for hours with nobody listening: die with the parent. The parent also
// retires a process by disconnecting.
process.on('disconnect', () => process.exit(0));

let queue = warmUp().then(() => send({ type: 'ready', startupMs: process.uptime() * 1000 }));
process.on('message', (message: ParentMessage) => {
  if (message?.type === 'train') queue = queue.then(() => run(message.request));
  else void send({ type: 'error', name: 'Error', message: `train-child: unexpected message ${JSON.stringify(message)}` });
});
