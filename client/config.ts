import { availableParallelism } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where state lives and how the pieces find each other. Everything has a default that works on
 * one machine; every value can be set by environment (and most by CLI flags) for more.
 */
export interface SweepsConfig {
  /** State folder: artifacts, the embedded server's database, logs. */
  home: string;
  /**
   * Artifact store shared by every worker of a cluster: a folder (an absolute path), or an
   * S3-compatible bucket `s3://bucket/prefix` (artifacts/create.ts reads the AWS settings).
   */
  artifacts: string;
  /** This machine's cache of a bucket store's artifacts and work folders. */
  artifactsCache: string;
  /** Queue of workflows and the data/report steps. */
  taskQueue: string;
  /** Queue of training: separate, so that busy training slots never starve I/O steps. */
  trainQueue: string;
  /** Concurrent trainings per worker (each in its own process): defaults to the number of cores. */
  trainSlots: number;
  /**
   * Folders that `file:` download sources may read from (a pipeline must not make a worker read
   * anything else): SWEEPS_DATA_ROOTS (a path list), the folder of a local SWEEPS_DATA, and
   * $SWEEPS_HOME/data.
   */
  dataRoots: string[];
  /** Embedded dev server (used when no Temporal address is configured). */
  server: { ip: string; port: number; uiPort: number };
  /**
   * The Temporal server's blob size limit in bytes (its `limit.blobSize.error`), SWEEPS_BLOB_LIMIT,
   * when it is not Temporal's default 2 MB: a matrix step's results go to the artifact store at a quarter of it.
   */
  blobLimit?: number;
}

/** A URL (`s3://…`) stays as written; a folder becomes absolute, so that child processes agree on it. */
function artifactsLocation(value: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : resolve(value);
}

/** A setting from the environment that cannot be used: the CLI exits with 2 (bad input), naming the variable. */
export class ConfigError extends Error {}

function intFromEnv(name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.trim());
  if (raw.trim() === '' || !Number.isInteger(n) || n <= 0 || n > max) {
    const expected = max === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `an integer from 1 to ${max}`;
    throw new ConfigError(`${name}=${JSON.stringify(raw)}: expected ${expected}; set one, or unset ${name} for the default (${fallback})`);
  }
  return n;
}

const PORT_MAX = 65535;

export function loadConfig(overrides: Partial<SweepsConfig> = {}): SweepsConfig {
  const home = resolve(overrides.home ?? process.env.SWEEPS_HOME ?? '.sweeps');
  return {
    home,
    artifacts: artifactsLocation(overrides.artifacts ?? process.env.SWEEPS_ARTIFACTS ?? join(home, 'artifacts')),
    artifactsCache: resolve(overrides.artifactsCache ?? process.env.SWEEPS_ARTIFACTS_CACHE ?? join(home, 'artifacts-cache')),
    taskQueue: overrides.taskQueue ?? process.env.SWEEPS_TASK_QUEUE ?? 'sweeps',
    trainQueue: overrides.trainQueue ?? process.env.SWEEPS_TRAIN_QUEUE ?? 'sweeps-train',
    trainSlots: overrides.trainSlots ?? intFromEnv('SWEEPS_TRAIN_SLOTS', availableParallelism()),
    dataRoots: overrides.dataRoots ?? dataRootsFromEnv(home),
    server: overrides.server ?? {
      ip: process.env.SWEEPS_SERVER_IP ?? '127.0.0.1',
      port: intFromEnv('SWEEPS_SERVER_PORT', 7233, PORT_MAX),
      uiPort: intFromEnv('SWEEPS_UI_PORT', 8233, PORT_MAX),
    },
    ...blobLimitFromEnv(overrides.blobLimit),
  };
}

function blobLimitFromEnv(override: number | undefined): { blobLimit?: number } {
  if (override !== undefined) return { blobLimit: override };
  if (!process.env.SWEEPS_BLOB_LIMIT) return {};
  return { blobLimit: intFromEnv('SWEEPS_BLOB_LIMIT', 2 * 1024 * 1024) };
}

function dataRootsFromEnv(home: string): string[] {
  const roots = (process.env.SWEEPS_DATA_ROOTS ?? '')
    .split(delimiter)
    .filter((r) => r.trim() !== '')
    .map((r) => resolve(r));
  const data = process.env.SWEEPS_DATA ? localDataFolder(process.env.SWEEPS_DATA) : undefined;
  if (data) roots.push(data);
  roots.push(join(home, 'data'));
  return [...new Set(roots)];
}

/** The folder of a local dataset copy (`--data` / SWEEPS_DATA): a data root for this worker. */
export function localDataFolder(data: string): string | undefined {
  if (/^https?:/i.test(data)) return undefined;
  if (/^file:/i.test(data)) {
    try {
      return dirname(fileURLToPath(data));
    } catch {
      return dirname(resolve(decodeURIComponent(data.replace(/^file:/i, ''))));
    }
  }
  return dirname(isAbsolute(data) ? data : resolve(data));
}
