import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { ChildMessage, ParentMessage, TrainRequest } from './train-protocol';
import type { EpochMetrics, EpochTiming, TrainOutcome } from './trainer';

export type { TrainRequest } from './train-protocol';

export interface TrainHooks {
  onEpoch?(m: EpochMetrics, checkpointPath: string, timing: EpochTiming): void;
  onBatch?(epoch: number, batch: number, batches: number): void;
  /** The trial's data is loaded (`reused`: the process still held it from its previous trial). */
  onLoaded?(ms: number, reused: boolean): void;
  /** The trial's first step began, `ms` after train() was called (model, optimizer, checkpoint lookup). */
  onSetup?(ms: number): void;
  /** The trial's train() call returned after `ms` (in the child), just before its result is sent. */
  onTrained?(ms: number): void;
  /** Aborting kills the child (SIGTERM, then SIGKILL after `killGraceMs`); the promise rejects with the signal's reason once the child is gone. */
  signal?: AbortSignal;
  /** Called when a child is handed this trial, with its pid (for logs and for tests); again if the trial moves to a fresh process (see ProcessLostBeforeTrial). */
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
 * The process ended before it began the trial (it died while idle, and its end had not yet been
 * seen when the trial was handed to it). Nothing of the trial ran, so it can go to another process.
 */
export class ProcessLostBeforeTrial extends Error {
  constructor(cause: Error) {
    super(`${cause.message}, before it began the trial`, { cause });
    this.name = 'ProcessLostBeforeTrial';
  }
}

interface Running {
  hooks: TrainHooks;
  /** The child has answered this trial (any message): from then on the trial has begun. */
  begun?: boolean;

  resolve(outcome: TrainOutcome): void;
  reject(err: Error): void;
  failure?: Error;
  killTimer?: NodeJS.Timeout;
}

/**
 * One training child process that trains one trial after another. It loads TensorFlow.js and
 * the kernel when it starts (`ready`), so the trials it runs pay none of that. A process whose
 * trial failed, was aborted or crashed is not reused (`reusable` turns false). The child exits
 * when this process dies or disconnects from it (it watches the IPC channel), so no orphan keeps
 * training. Its IPC channel holds this process's event loop open until it is retired.
 */
export class TrainingProcess {
  private readonly child: ChildProcess;
  private running: Running | undefined;
  private healthy = true;
  private exitedFlag = false;
  /** Trials started in this process. */
  trials = 0;
  /** Resolves with the child's start-up time (ms) once it waits for work; rejects if it died first. */
  readonly ready: Promise<number>;
  /** Resolves once the child has exited and its IPC and stdio are closed. */
  readonly exited: Promise<void>;

  constructor() {
    if (!existsSync(CHILD_SCRIPT)) {
      throw new Error(`${CHILD_SCRIPT} not found: training runs from the compiled JavaScript (npm run build)`);
    }
    this.child = fork(CHILD_SCRIPT, [], {
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
      execArgv: childExecArgv(process.execArgv),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Structured clone instead of JSON: a diverged run's NaN losses must not arrive as null.
      serialization: 'advanced',
    });
    let readyResolve: (ms: number) => void = () => undefined;
    let readyReject: (err: Error) => void = () => undefined;
    this.ready = new Promise<number>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    this.ready.catch(() => undefined); // observed by run(); an idle process may die unobserved
    let spawnError: Error | undefined;
    this.child.on('error', (err) => {
      spawnError ??= err;
      this.healthy = false;
      if (this.child.pid === undefined) this.onClose(null, null, spawnError, readyReject);
    });
    this.child.on('message', (msg: ChildMessage) => {
      if (msg.type === 'ready') readyResolve(msg.startupMs);
      else this.onMessage(msg);
    });
    // 'exit' can precede the last 'message'; 'close' comes after all IPC and stdio is done.
    let exitedResolve: () => void = () => undefined;
    this.exited = new Promise<void>((resolve) => (exitedResolve = resolve));
    const closed = (code: number | null, sig: NodeJS.Signals | null): void => {
      this.onClose(code, sig, spawnError, readyReject);
      exitedResolve();
    };
    this.child.on('close', closed);
    // After this side disconnected, Node emits no 'close' (seen on Node 20); no message can come any more.
    this.child.on('exit', (code, sig) => {
      if (!this.child.connected) closed(code, sig);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Alive, healthy and not training: can take the next trial. */
  get reusable(): boolean {
    return this.healthy && !this.exitedFlag && this.running === undefined;
  }

  /** Trains one trial. Rejects when the trial fails, is aborted (the process is then killed) or the process dies. */
  async run(request: TrainRequest, hooks: TrainHooks = {}): Promise<TrainOutcome> {
    const { signal } = hooks;
    if (signal?.aborted) throw abortReason(signal);
    if (this.running !== undefined) throw new Error(`training process ${this.pid ?? '?'} is already training`);
    if (!this.reusable) throw new Error(`training process ${this.pid ?? '?'} cannot take another trial`);
    this.trials += 1;
    return new Promise<TrainOutcome>((resolve, reject) => {
      const running: Running = { hooks, resolve, reject };
      this.running = running;
      const onAbort = (): void => {
        running.failure ??= abortReason(signal as AbortSignal);
        this.kill(hooks.killGraceMs ?? 2000);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => {
        signal?.removeEventListener('abort', onAbort);
        if (running.killTimer) clearTimeout(running.killTimer);
        if (this.running === running) this.running = undefined;
      };
      running.resolve = (outcome) => {
        settle();
        resolve(outcome);
      };
      running.reject = (err) => {
        settle();
        reject(err);
      };
      this.ready.then(
        () => {
          if (running.failure !== undefined || this.running !== running) return; // being killed: 'close' rejects
          if (this.pid !== undefined) hooks.onStart?.(this.pid);
          const message: ParentMessage = { type: 'train', request };
          this.child.send(message);
        },
        () => undefined, // onClose rejects the running trial
      );
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. A running trial rejects once the process is gone. */
  kill(graceMs = 2000): void {
    this.healthy = false;
    if (this.exitedFlag) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    timer.unref();
    if (this.running) this.running.killTimer = timer;
  }

  /** Lets an idle process go: it exits when its IPC channel closes. Resolves once it has. */
  async retire(graceMs = 5000): Promise<void> {
    this.healthy = false;
    if (this.exitedFlag) return;
    if (this.running !== undefined) this.kill();
    else if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private onMessage(msg: Exclude<ChildMessage, { type: 'ready' }>): void {
    const running = this.running;
    if (running === undefined) return;
    running.begun = true;
    try {
      switch (msg.type) {
        case 'loaded':
          running.hooks.onLoaded?.(msg.ms, msg.reused);
          break;
        case 'epoch':
          running.hooks.onEpoch?.(msg.metrics, msg.checkpointPath, msg.timing);
          break;
        case 'batch':
          if (msg.setupMs !== undefined) running.hooks.onSetup?.(msg.setupMs);
          running.hooks.onBatch?.(msg.epoch, msg.batch, msg.batches);
          break;
        case 'result':
          if (msg.trainMs !== undefined) running.hooks.onTrained?.(msg.trainMs);
          if (running.failure === undefined) running.resolve(msg.outcome);
          break;
        case 'error':
          // Whatever failed may have left the process in a state no next trial should inherit.
          this.healthy = false;
          running.failure ??= childError(msg, this.pid);
          if (!this.exitedFlag) void this.retire();
          break;
      }
    } catch (err) {
      // A throwing hook must not leave a child training for nobody.
      running.failure ??= err instanceof Error ? err : new Error(String(err));
      this.healthy = false;
      this.child.kill('SIGKILL');
    }
  }

  private onClose(code: number | null, sig: NodeJS.Signals | null, spawnError: Error | undefined, readyReject: (err: Error) => void): void {
    if (this.exitedFlag) return;
    this.exitedFlag = true;
    this.healthy = false;
    const ended = spawnError ?? new Error(`training child process (pid ${this.pid ?? '?'}) ended without a result (exit code ${code}, signal ${sig})`);
    readyReject(ended);
    const running = this.running;
    if (running === undefined) return;
    running.reject(running.failure ?? (running.begun ? ended : new ProcessLostBeforeTrial(ended)));
  }
}

/**
 * Runs `train` (ml/trainer.ts) in a fresh Node process of its own and reports its progress; the
 * process ends with the trial. Workers use a TrainPool (ml/train-pool.ts) instead, which keeps
 * processes warm across trials.
 */
export async function trainInChildProcess(request: TrainRequest, hooks: TrainHooks = {}): Promise<TrainOutcome> {
  if (hooks.signal?.aborted) throw abortReason(hooks.signal);
  const proc = new TrainingProcess();
  try {
    return await proc.run(request, hooks);
  } finally {
    await proc.retire();
  }
}
