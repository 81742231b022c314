/**
 * Entry point of the training child process (forked by train-process.ts). Training is
 * CPU-bound and synchronous per batch; running it here keeps the parent's event loop (a
 * Temporal worker: heartbeats, other activities) responsive, and gives each trial its own
 * single-threaded TensorFlow.js backend.
 */
import { readPadded, type PaddedData } from './padded-data';
import type { ChildMessage, ParentMessage, TrainRequest } from './train-protocol';
import { train } from './trainer';

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send?.(message, undefined, {}, () => resolve());
  });
}

function loadData(request: TrainRequest): PaddedData {
  if (request.readerModule === undefined) return readPadded(request.paddedPath);
  const reader = require(request.readerModule) as { readPadded?: (path: string) => PaddedData };
  if (typeof reader.readPadded !== 'function') throw new Error(`${request.readerModule} does not export readPadded(path)`);
  return reader.readPadded(request.paddedPath);
}

async function run(request: TrainRequest): Promise<void> {
  try {
    const outcome = await train(loadData(request), request.config, {
      checkpointDir: request.checkpointDir,
      onEpoch: (metrics, checkpointPath) => void send({ type: 'epoch', metrics, checkpointPath }),
      onBatch: (epoch, batch, batches) => void send({ type: 'batch', epoch, batch, batches }),
    });
    await send({ type: 'result', outcome });
    process.exit(0);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    await send({ type: 'error', name: e.name, message: e.message, stack: e.stack, code: (e as NodeJS.ErrnoException).code });
    process.exit(1);
  }
}

if (process.send === undefined) {
  console.error('train-child: start me with child_process.fork (see ml/train-process.ts)');
  process.exit(2);
}
// An orphan would train on for hours with nobody listening: die with the parent.
process.on('disconnect', () => process.exit(1));
process.once('message', (message: ParentMessage) => {
  if (message?.type === 'train') void run(message.request);
  else void send({ type: 'error', name: 'Error', message: `train-child: unexpected message ${JSON.stringify(message)}` }).then(() => process.exit(1));
});
