import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { ChildMessage, ParentMessage, TrainRequest } from './train-protocol';
import type { EpochMetrics, TrainOutcome } from './trainer';

export type { TrainRequest } from './train-protocol';

export interface TrainHooks {
  onEpoch?(m: EpochMetrics, checkpointPath: string): void;
  onBatch?(epoch: number, batch: number, batches: number): void;
  /** Aborting kills the child (SIGTERM, then SIGKILL after `killGraceMs`); the promise rejects with the signal's reason once the child is gone. */
  signal?: AbortSignal;
  /** Called once the child runs, with its pid (for logs and for tests). */
  onStart?(pid: number): void;
  killGraceMs?: number;
}

/** The compiled child entry next to this file (dist/ml/train-child.js). */
const CHILD_SCRIPT = path.join(__dirname, 'train-child.js');

/**
 * Node flags the child may inherit. An allowlist, not the parent's execArgv: a parent started
 * as `node -e <code>` (or `-p`, `-r loader`, `--inspect`) would otherwise make the child run
 * that code again instead of the training script, and fork itself without end.
 */
export function childExecArgv(parentExecArgv: readonly string[]): string[] {
  return parentExecArgv.filter((a) => /^--(max-old-space-size|max-semi-space-size|stack-size|enable-source-maps)(=|$)/.test(a));
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error(reason === undefined ? 'training aborted' : `training aborted: ${String(reason)}`);
  err.name = 'AbortError';
  return err;
}

/** The child's error, re-created in the parent with the child's name, message, code and stack. */
function childError(msg: Extract<ChildMessage, { type: 'error' }>, pid: number | undefined): Error {
  const err: NodeJS.ErrnoException = new Error(msg.message);
  err.name = msg.name;
  if (msg.code !== undefined) err.code = msg.code;
  err.stack = `${msg.stack ?? `${msg.name}: ${msg.message}`}\n    at <training child process pid ${pid ?? '?'}>`;
  return err;
}

/**
 * Runs `train` (ml/trainer.ts) in a forked Node process and reports its progress. The child
 * exits when this process dies (it watches the IPC channel), so no orphan keeps training.
 */
export function trainInChildProcess(request: TrainRequest, hooks: TrainHooks = {}): Promise<TrainOutcome> {
  const { signal } = hooks;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  if (!existsSync(CHILD_SCRIPT)) {
    return Promise.reject(new Error(`${CHILD_SCRIPT} not found: training runs from the compiled JavaScript (npm run build)`));
  }

  return new Promise<TrainOutcome>((resolve, reject) => {
    const child = fork(CHILD_SCRIPT, [], {
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
      execArgv: childExecArgv(process.execArgv),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Structured clone instead of JSON: a diverged run's NaN losses must not arrive as null.
      serialization: 'advanced',
    });
    let outcome: TrainOutcome | undefined;
    let failure: Error | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const onAbort = (): void => {
      failure ??= abortReason(signal as AbortSignal);
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), hooks.killGraceMs ?? 2000);
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    child.on('spawn', () => {
      if (signal?.aborted) return; // onAbort is already killing it
      if (child.pid !== undefined) hooks.onStart?.(child.pid);
      const message: ParentMessage = { type: 'train', request };
      child.send(message);
    });

    child.on('message', (msg: ChildMessage) => {
      try {
        switch (msg.type) {
          case 'epoch':
            hooks.onEpoch?.(msg.metrics, msg.checkpointPath);
            break;
          case 'batch':
            hooks.onBatch?.(msg.epoch, msg.batch, msg.batches);
            break;
          case 'result':
            outcome = msg.outcome;
            break;
          case 'error':
            failure ??= childError(msg, child.pid);
            break;
        }
      } catch (err) {
        // A throwing hook must not leave a child training for nobody.
        failure ??= err instanceof Error ? err : new Error(String(err));
        child.kill('SIGKILL');
      }
    });

    child.on('error', (err) => {
      failure ??= err;
      // Never spawned: no 'close' will follow.
      if (child.pid === undefined) {
        signal?.removeEventListener('abort', onAbort);
        reject(failure);
      }
    });

    // 'exit' can precede the last 'message'; 'close' comes after all IPC and stdio is done.
    child.on('close', (code, sig) => {
      if (killTimer) clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      if (failure) reject(failure);
      else if (outcome && code === 0) resolve(outcome);
      else reject(new Error(`training child process (pid ${child.pid ?? '?'}) ended without a result (exit code ${code}, signal ${sig})`));
    });
  });
}
