/**
 * MLflow, over its REST API (https://mlflow.org/docs/latest/rest-api.html), with Node's fetch:
 * experiments, runs, batched params/metrics/tags and artifact uploads, each call retried with
 * backoff on what a retry can change.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface MlflowSettings {
  /** Base URL of the tracking server (MLFLOW_TRACKING_URI). */
  uri: string;
  headers: Record<string, string>;
  /** Tries per call, and the first pause between them (doubling each time). */
  attempts: number;
  backoffMs: number;
  timeoutMs: number;
}

/**
 * The MLflow client's own environment variables: MLFLOW_TRACKING_URI, and MLFLOW_TRACKING_TOKEN or
 * MLFLOW_TRACKING_USERNAME/PASSWORD. Undefined when no tracking URI is set: tracking to MLflow is off.
 */
export function mlflowSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): MlflowSettings | undefined {
  const uri = env.MLFLOW_TRACKING_URI?.trim();
  if (!uri) return undefined;
  const headers: Record<string, string> = {};
  if (env.MLFLOW_TRACKING_TOKEN) headers.authorization = `Bearer ${env.MLFLOW_TRACKING_TOKEN}`;
  else if (env.MLFLOW_TRACKING_USERNAME) {
    const basic = Buffer.from(`${env.MLFLOW_TRACKING_USERNAME}:${env.MLFLOW_TRACKING_PASSWORD ?? ''}`).toString('base64');
    headers.authorization = `Basic ${basic}`;
  }
  return { uri: uri.replace(/\/+$/, ''), headers, attempts: 4, backoffMs: 500, timeoutMs: 10_000 };
}

export class MlflowError extends Error {
  override name = 'MlflowError';
  constructor(
    message: string,
    /** MLflow's error_code (RESOURCE_DOES_NOT_EXIST, …) or the HTTP status for a non-JSON answer. */
    readonly code?: string,
    /** False for answers a retry cannot change (a 4xx). */
    readonly retryable = true,
  ) {
    super(message);
  }
}

export interface RunInfo {
  runId: string;
  experimentId: string;
  artifactUri: string;
}

const MAX_ENTITIES_PER_BATCH = 1000; // runs/log-batch limits
const MAX_PARAMS_PER_BATCH = 100;
const MAX_TAGS_PER_BATCH = 100;
const MAX_PARAM_LENGTH = 6000;

export class MlflowClient {
  constructor(readonly settings: MlflowSettings) {
    if (!/^https?:\/\//.test(settings.uri)) {
      throw new MlflowError(
        `MLFLOW_TRACKING_URI=${settings.uri} is not an http(s) tracking server; durable-sweeps logs to MLflow over its REST API only`,
        'UNSUPPORTED_URI',
        false,
      );
    }
  }

  runUrl(experimentId: string, runId: string): string {
    return `${this.settings.uri}/#/experiments/${experimentId}/runs/${runId}`;
  }

  experimentUrl(experimentId: string): string {
    return `${this.settings.uri}/#/experiments/${experimentId}`;
  }

  /** One REST call, retried with exponential backoff on network errors, 5xx and 429. */
  async call<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, raw?: { bytes: Uint8Array; contentType: string }): Promise<T> {
    const { attempts, backoffMs } = this.settings;
    let last: MlflowError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await this.once<T>(method, path, body, raw);
      } catch (err) {
        last = err instanceof MlflowError ? err : new MlflowError((err as Error).message);
        if (!last.retryable || attempt === attempts) break;
        await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
      }
    }
    const tries = last?.retryable ? ` after ${attempts} attempts` : '';
    throw new MlflowError(`MLflow ${method} ${path} failed${tries}: ${last?.message ?? 'unknown error'}`, last?.code, last?.retryable);
  }

  private async once<T>(method: string, path: string, body: unknown, raw?: { bytes: Uint8Array; contentType: string }): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.settings.uri}${path}`, {
        method,
        headers: { ...this.settings.headers, 'content-type': raw ? raw.contentType : 'application/json' },
        body: raw ? raw.bytes : body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new MlflowError(`${this.settings.uri} unreachable (${cause?.code ?? cause?.message ?? (err as Error).message})`);
    }
    const text = await response.text();
    if (response.ok) return (text ? JSON.parse(text) : {}) as T;
    let code = `HTTP_${response.status}`;
    let message = text.slice(0, 300);
    try {
      const parsed = JSON.parse(text) as { error_code?: string; message?: string };
      code = parsed.error_code ?? code;
      message = parsed.message ?? message;
    } catch {
      // not JSON (a proxy's error page): keep the start of the text
    }
    const retryable = response.status >= 500 || response.status === 429;
    throw new MlflowError(`${response.status} ${code}: ${message}`, code, retryable);
  }

  /** The experiment of this name, created when missing (and tolerating a concurrent creator). */
  async experimentId(name: string): Promise<string> {
    const byName = async () => {
      try {
        const found = await this.call<{ experiment: { experiment_id: string } }>(
          'GET',
          `/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`,
        );
        return found.experiment.experiment_id;
      } catch (err) {
        if ((err as MlflowError).code === 'RESOURCE_DOES_NOT_EXIST') return undefined;
        throw err;
      }
    };
    const existing = await byName();
    if (existing) return existing;
    try {
      return (await this.call<{ experiment_id: string }>('POST', '/api/2.0/mlflow/experiments/create', { name })).experiment_id;
    } catch (err) {
      // Two trials starting at once both see no experiment; the second create loses the race.
      if ((err as MlflowError).code !== 'RESOURCE_ALREADY_EXISTS') throw err;
      const raced = await byName();
      if (!raced) throw err;
      return raced;
    }
  }

  async createRun(experimentId: string, runName: string, tags: Record<string, string>): Promise<RunInfo> {
    const created = await this.call<{ run: { info: { run_id: string; artifact_uri: string } } }>('POST', '/api/2.0/mlflow/runs/create', {
      experiment_id: experimentId,
      run_name: runName,
      start_time: Date.now(),
      tags: Object.entries({ 'mlflow.runName': runName, ...tags }).map(([key, value]) => ({ key, value })),
    });
    return { runId: created.run.info.run_id, experimentId, artifactUri: created.run.info.artifact_uri };
  }

  async logBatch(
    runId: string,
    batch: {
      metrics?: Array<{ key: string; value: number; step: number; timestamp?: number }>;
      params?: Record<string, string>;
      tags?: Record<string, string>;
    },
  ): Promise<void> {
    const now = Date.now();
    const metrics = (batch.metrics ?? []).map((m) => ({ ...m, timestamp: m.timestamp ?? now, value: finiteOrString(m.value) }));
    const params = Object.entries(batch.params ?? {}).map(([key, value]) => ({ key, value: value.slice(0, MAX_PARAM_LENGTH) }));
    const tags = Object.entries(batch.tags ?? {}).map(([key, value]) => ({ key, value }));
    // Within the per-request limits: at most 100 params, 100 tags and 1000 entities in all.
    let [m, p, t] = [0, 0, 0];
    while (m < metrics.length || p < params.length || t < tags.length) {
      const ps = params.slice(p, p + MAX_PARAMS_PER_BATCH);
      const ts = tags.slice(t, t + MAX_TAGS_PER_BATCH);
      const ms = metrics.slice(m, m + MAX_ENTITIES_PER_BATCH - ps.length - ts.length);
      await this.call('POST', '/api/2.0/mlflow/runs/log-batch', { run_id: runId, metrics: ms, params: ps, tags: ts });
      [m, p, t] = [m + ms.length, p + ps.length, t + ts.length];
    }
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.call('POST', '/api/2.0/mlflow/runs/set-tag', { run_id: runId, key, value });
  }

  async endRun(runId: string, status: 'FINISHED' | 'FAILED' = 'FINISHED'): Promise<void> {
    await this.call('POST', '/api/2.0/mlflow/runs/update', { run_id: runId, status, end_time: Date.now() });
  }

  /**
   * Stores a file as an artifact of a run. A server that proxies artifacts (`mlflow-artifacts:`
   * URIs, the default of `mlflow server`) takes it over HTTP; a local artifact root (`file:` or a
   * path) is written directly, as MLflow's own client does.
   */
  async uploadArtifact(run: RunInfo, artifactPath: string, file: string): Promise<void> {
    const uri = run.artifactUri;
    if (uri.startsWith('mlflow-artifacts:')) {
      const path = uri.replace(/^mlflow-artifacts:(\/\/[^/]+)?/, '').replace(/^\/+/, '');
      const bytes = await readFile(file);
      const target = `/api/2.0/mlflow-artifacts/artifacts/${path}/${artifactPath.split('/').map(encodeURIComponent).join('/')}`;
      await this.call('PUT', target, undefined, { bytes, contentType: contentTypeOf(file) });
    } else if (uri.startsWith('file:') || uri.startsWith('/')) {
      const root = uri.startsWith('file:') ? new URL(uri).pathname : uri;
      const target = join(root, artifactPath);
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(file, target);
    } else {
      throw new MlflowError(`artifact store ${uri} is not reachable from Node (only mlflow-artifacts: and local paths are)`, 'UNSUPPORTED_ARTIFACT_URI', false);
    }
  }
}

// MLflow stores NaN and ±Infinity, but only spelled as JSON strings.
function finiteOrString(x: number): number | string {
  if (Number.isFinite(x)) return x;
  return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
}

function contentTypeOf(file: string): string {
  if (file.endsWith('.html')) return 'text/html; charset=utf-8';
  if (file.endsWith('.json')) return 'application/json';
  if (file.endsWith('.md') || file.endsWith('.toml')) return 'text/plain; charset=utf-8';
  if (file.endsWith('.svg')) return 'image/svg+xml';
  return 'application/octet-stream';
}
