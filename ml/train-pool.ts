import { ProcessLostBeforeTrial, TrainingProcess, type TrainHooks, type TrainRequest } from './train-process';
import type { TrainOutcome } from './trainer';

export interface TrainPoolOptions {
  /** Processes kept warm: one per training slot. */
  size: number;
  /**
   * A process is replaced after this many trials, so whatever a long-lived process accumulates
   * (heap fragmentation, a leak in a library) stays bounded. Default 50.
   */
  maxTrialsPerProcess?: number;
}

export interface PoolStats {
  /** Processes started, warm-up included. */
  started: number;
  /** Trials that ran in a process an earlier trial had already used (no start-up paid). */
  reused: number;
  /** Processes lost to a failed, aborted or crashed trial, or that died while idle. */
  lost: number;
  /** Processes replaced after maxTrialsPerProcess trials. */
  recycled: number;
}

/**
 * The training processes of one worker: `size` warm processes (one per slot), each training one
 * trial after another. A process whose trial failed, was cancelled (the process is killed, as
 * before) or crashed is dropped and a new one is started for the next trial; after
 * `maxTrialsPerProcess` trials a process is replaced by a fresh, warmed one, started while its
 * predecessor trains its last trial.
 */
export class TrainPool {
  private readonly idle: TrainingProcess[] = [];
  private readonly busy = new Set<TrainingProcess>();
  /** Replacements started while their process trains its last trial (maxTrialsPerProcess), so they are warm when it ends. */
  private readonly successors = new Map<TrainingProcess, TrainingProcess>();
  private closed = false;
  readonly stats: PoolStats = { started: 0, reused: 0, lost: 0, recycled: 0 };
  readonly size: number;
  readonly maxTrialsPerProcess: number;

  constructor(options: TrainPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new Error(`TrainPool: size must be a positive integer, got ${options.size}`);
    const max = options.maxTrialsPerProcess ?? 50;
    if (!Number.isInteger(max) || max < 1) throw new Error(`TrainPool: maxTrialsPerProcess must be a positive integer, got ${max}`);
    this.size = options.size;
    this.maxTrialsPerProcess = max;
  }

  /** Starts the warm processes now instead of at the first trials; resolves when they wait for work. */
  async warm(): Promise<void> {
    while (!this.closed && this.idle.length + this.busy.size < this.size) this.idle.push(this.spawn());
    await Promise.all(this.idle.map((p) => p.ready.catch(() => undefined)));
  }

  /** Pids of the pool's processes (idle, busy and replacements starting), for logs and tests. */
  pids(): number[] {
    return [...this.idle, ...this.busy, ...this.successors.values()].map((p) => p.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** Trains one trial in a warm process (or a new one when none is free). */
  async run(request: TrainRequest, hooks: TrainHooks = {}): Promise<TrainOutcome> {
    try {
      return await this.runOnce(request, hooks);
    } catch (err) {
      // An idle process can die (OOM killer, a stray signal) just before its end is seen: the trial
      // went to it but never began. It goes once more, to a fresh process; anything else is the trial's.
      if (!(err instanceof ProcessLostBeforeTrial) || hooks.signal?.aborted) throw err;
      return await this.runOnce(request, hooks, true);
    }
  }

  private async runOnce(request: TrainRequest, hooks: TrainHooks, fresh = false): Promise<TrainOutcome> {
    if (this.closed) throw new Error('the training pool is closed (the worker is shutting down)');
    const proc = fresh ? this.spawn() : this.acquire();
    if (proc.trials > 0) this.stats.reused += 1;
    this.busy.add(proc);
    try {
      const running = proc.run(request, hooks);
      // Its last trial: its replacement starts now (Node, TensorFlow.js, the kernel, the warm-up)
      // instead of on the way of the next trial.
      if (proc.trials >= this.maxTrialsPerProcess && !this.successors.has(proc)) this.successors.set(proc, this.spawn());
      return await running;
    } finally {
      this.busy.delete(proc);
      this.release(proc);
    }
  }

  /** Lets every process go (a running trial's process is killed); resolves when all have exited. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle.splice(0), ...this.busy, ...this.successors.values()];
    this.successors.clear();
    await Promise.all(all.map((p) => p.retire()));
  }

  private acquire(): TrainingProcess {
    // Drop processes that died while idle; the newest idle process first (it is the warmest).
    for (let p = this.idle.pop(); p !== undefined; p = this.idle.pop()) {
      if (p.reusable) return p;
      this.stats.lost += 1;
    }
    return this.spawn();
  }

  private release(proc: TrainingProcess): void {
    const successor = this.successors.get(proc);
    this.successors.delete(proc);
    if (!proc.reusable) {
      this.stats.lost += 1;
      void proc.retire(); // already exiting or killed; a new process starts with the next trial
      if (successor) this.keepOrRetire(successor);
      return;
    }
    if (this.closed || this.idle.length + this.busy.size >= this.size) {
      void proc.retire(); // more trials ran at once than the pool keeps warm
      if (successor) void successor.retire();
      return;
    }
    if (proc.trials >= this.maxTrialsPerProcess) {
      this.stats.recycled += 1;
      void proc.retire();
      this.idle.push(successor ?? this.spawn());
      return;
    }
    this.idle.push(proc);
    if (successor) void successor.retire();
  }

  private keepOrRetire(proc: TrainingProcess): void {
    if (this.closed || this.idle.length + this.busy.size >= this.size) void proc.retire();
    else this.idle.push(proc);
  }

  private spawn(): TrainingProcess {
    this.stats.started += 1;
    return new TrainingProcess();
  }
}
