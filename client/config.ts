import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Where state lives and how the pieces find each other. Everything has a default that works on
 * one machine; every value can be set by environment (and most by CLI flags) for more.
 */
export interface SweepsConfig {
  /** State folder: artifacts, the embedded server's database, logs. */
  home: string;
  /** Artifact store root; must be shared by every worker of a cluster. */
  artifacts: string;
  /** Queue of workflows and the data/report steps. */
  taskQueue: string;
  /** Queue of training: separate, so that busy training slots never starve I/O steps. */
  trainQueue: string;
  /** Concurrent trainings per worker (each in its own process): defaults to the number of cores. */
  trainSlots: number;
  /** Embedded dev server (used when no Temporal address is configured). */
  server: { ip: string; port: number; uiPort: number };
}

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${raw}: expected a positive integer`);
  return n;
}

export function loadConfig(overrides: Partial<SweepsConfig> = {}): SweepsConfig {
  const home = resolve(overrides.home ?? process.env.SWEEPS_HOME ?? '.sweeps');
  return {
    home,
    artifacts: resolve(overrides.artifacts ?? process.env.SWEEPS_ARTIFACTS ?? join(home, 'artifacts')),
    taskQueue: overrides.taskQueue ?? process.env.SWEEPS_TASK_QUEUE ?? 'sweeps',
    trainQueue: overrides.trainQueue ?? process.env.SWEEPS_TRAIN_QUEUE ?? 'sweeps-train',
    trainSlots: overrides.trainSlots ?? intFromEnv('SWEEPS_TRAIN_SLOTS', availableParallelism()),
    server: overrides.server ?? {
      ip: process.env.SWEEPS_SERVER_IP ?? '127.0.0.1',
      port: intFromEnv('SWEEPS_SERVER_PORT', 7233),
      uiPort: intFromEnv('SWEEPS_UI_PORT', 8233),
    },
  };
}
