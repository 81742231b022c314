/**
 * Experiment tracking, the three report types of the reference trainer: each trial is an MLflow
 * run (when a tracking server is configured), writes TensorBoard event files, and a TOML file of
 * its settings. The report step adds a parent MLflow run per sweep holding the report.
 *
 * Tracking is a side channel: a tracking server that is down or rejects a call never fails a
 * trial or a report. Calls are retried with backoff; what still fails is logged and recorded in
 * the trial's result (and so in the report), and the trial trains on.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { arch, hostname, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { stepKey, writeFileAtomic, type StepIdentity } from '../artifacts/store';
import { activityContext } from './context';
import type { ActivityDeps } from './deps';
import type { EpochMetrics } from './types';
import { trialWorkflowId } from '../pipeline/plan';

// smol-toml declares ES-module types but ships a CommonJS build, which `require` loads.
const { stringify: toToml } = require('smol-toml') as typeof import('smol-toml', { with: { 'resolution-mode': 'import' } });

// ---------------------------------------------------------------------------------------------
// Where the code and the numbers came from

export interface CodeVersion {
  /** `name@version` of this project's package.json. */
  package: string;
  /** Git commit of the checkout the worker runs from, when it is one (not in a container image). */
  commit?: string;
  /** True when the checkout had uncommitted changes to tracked files. */
  dirty?: boolean;
}

export interface TrainingEnvironment {
  node: string;
  tfjs: string;
  /** The TensorFlow.js backend the trial trained on and the package that provides it. */
  backend: string;
  backendPackage?: string;
  temporal: string;
  host: string;
  platform: string;
  code: CodeVersion;
}

const repoRoot = resolve(__dirname, '..', '..');

/** Version of an installed package, or undefined when it is not installed (optional dependencies). */
export function packageVersion(name: string): string | undefined {
  for (const candidate of [() => require.resolve(`${name}/package.json`), () => join(repoRoot, 'node_modules', name, 'package.json')]) {
    try {
      return (JSON.parse(readFileSync(candidate(), 'utf8')) as { version?: string }).version;
    } catch {
      // next candidate
    }
  }
  return undefined;
}

let codeVersionMemo: CodeVersion | undefined;

/** Computed once per process: the code cannot change under a running worker. */
export function codeVersion(): CodeVersion {
  if (codeVersionMemo) return codeVersionMemo;
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string };
  const version: CodeVersion = { package: `${pkg.name}@${pkg.version}` };
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    version.commit = git('rev-parse', 'HEAD');
    version.dirty = git('status', '--porcelain', '--untracked-files=no').length > 0;
  } catch {
    // Not a git checkout (a container image, an npm tarball): the package version is what there is.
  }
  codeVersionMemo = version;
  return version;
}

const BACKEND_PACKAGES: Record<string, string> = {
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs',
};

export function trainingEnvironment(backend: string): TrainingEnvironment {
  const backendPackage = BACKEND_PACKAGES[backend];
  const backendVersion = backendPackage ? packageVersion(backendPackage) : undefined;
  return {
    node: process.version,
    tfjs: packageVersion('@tensorflow/tfjs') ?? 'unknown',
    backend,
    backendPackage: backendPackage && backendVersion ? `${backendPackage}@${backendVersion}` : undefined,
    temporal: packageVersion('@temporalio/worker') ?? 'unknown',
    host: hostname(),
    platform: `${platform()}-${arch()}`,
    code: codeVersion(),
  };
}

/** The pipeline name inside a sweep id (`sweep-<pipeline>-<8 hex digits>`, pipeline/plan.ts). */
export function pipelineOfSweep(sweepId: string): string {
  return /^sweep-(.+)-[0-9a-f]{8}$/.exec(sweepId)?.[1] ?? sweepId;
}

export function temporalUiLink(ui: ActivityDeps['ui'], workflowId: string): string | undefined {
  return ui ? `${ui.url.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(ui.namespace)}/workflows/${encodeURIComponent(workflowId)}` : undefined;
}

// ---------------------------------------------------------------------------------------------
// TensorBoard event files, written directly: TFRecord framing (length, masked CRC-32C of the
// length, data, masked CRC-32C of the data) around serialized `tensorboard.Event` protobufs. Our
// own writer works on every TensorFlow.js backend (tfjs-node's summary writer exists only where
// the native addon built) and in the worker process, where no tensors live.

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli), the checksum of TFRecord files. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC32C_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord masks its CRCs so that a CRC of data that itself holds CRCs stays well distributed. */
function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function tfRecord(data: Uint8Array): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(data.length));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(maskedCrc32c(length));
  const foot = Buffer.alloc(4);
  foot.writeUInt32LE(maskedCrc32c(data));
  return Buffer.concat([length, head, Buffer.from(data), foot]);
}

/** Just enough of the protobuf wire format for the few messages TensorBoard reads. */
class Proto {
  private readonly parts: Buffer[] = [];

  private varint(value: number): void {
    const bytes: number[] = [];
    let v = value;
    while (v >= 0x80) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.parts.push(Buffer.from(bytes));
  }
  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }
  uint(field: number, value: number): this {
    this.key(field, 0);
    this.varint(value);
    return this;
  }
  double(field: number, value: number): this {
    this.key(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    this.parts.push(b);
    return this;
  }
  float(field: number, value: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.parts.push(b);
    return this;
  }
  bytes(field: number, value: Uint8Array | string): this {
    const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    this.key(field, 2);
    this.varint(b.length);
    this.parts.push(b);
    return this;
  }
  message(field: number, value: Proto): this {
    return this.bytes(field, value.finish());
  }
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// Field numbers from tensorboard/compat/proto/{event,summary,tensor,tensor_shape}.proto and
// tensorboard/plugins/hparams/plugin_data.proto.
const DT_FLOAT = 1;
const DT_STRING = 7;
const HPARAMS_STATUS_SUCCESS = 1;

const event = (wallTime: number, step: number) => new Proto().double(1, wallTime).uint(2, step);

export function fileVersionEvent(wallTime: number): Buffer {
  return new Proto().double(1, wallTime).bytes(3, 'brain.Event:2').finish();
}

export function scalarsEvent(wallTime: number, step: number, values: Record<string, number>): Buffer {
  const summary = new Proto();
  for (const [tag, value] of Object.entries(values)) summary.message(1, new Proto().bytes(1, tag).float(2, value));
  return event(wallTime, step).message(5, summary).finish();
}

/** A text summary, shown in TensorBoard's Text tab (plugin "text", a scalar string tensor). */
export function textEvent(wallTime: number, step: number, tag: string, text: string): Buffer {
  const metadata = new Proto().message(1, new Proto().bytes(1, 'text'));
  const tensor = new Proto().uint(1, DT_STRING).message(2, new Proto()).bytes(8, text);
  const value = new Proto().bytes(1, tag).message(9, metadata).message(8, tensor);
  return event(wallTime, step).message(5, new Proto().message(1, value)).finish();
}

/** An hparams plugin summary: the plugin reads trials' parameters from these (HParams tab). */
function hparamsEvent(wallTime: number, tag: string, pluginData: Proto): Buffer {
  const metadata = new Proto().message(1, new Proto().bytes(1, 'hparams').message(2, pluginData));
  // The plugin's own writer attaches an empty float tensor of shape [0]; readers expect a tensor.
  const nullTensor = new Proto().uint(1, DT_FLOAT).message(2, new Proto().message(2, new Proto()));
  const value = new Proto().bytes(1, tag).message(9, metadata).message(8, nullTensor);
  return event(wallTime, 0).message(5, new Proto().message(1, value)).finish();
}

export function hparamsStartEvent(wallTime: number, hparams: Record<string, string | number | boolean>, group: string): Buffer {
  const start = new Proto();
  for (const [key, v] of Object.entries(hparams)) {
    const value = new Proto();
    if (typeof v === 'number') value.double(2, v);
    else if (typeof v === 'boolean') value.uint(4, v ? 1 : 0);
    else value.bytes(3, v);
    start.message(1, new Proto().bytes(1, key).message(2, value));
  }
  start.bytes(4, group).double(5, wallTime);
  return hparamsEvent(wallTime, '_hparams_/session_start_info', new Proto().message(3, start));
}

export function hparamsEndEvent(wallTime: number): Buffer {
  const end = new Proto().uint(1, HPARAMS_STATUS_SUCCESS).double(2, wallTime);
  return hparamsEvent(wallTime, '_hparams_/session_end_info', new Proto().message(4, end));
}

/** TensorBoard only reads files whose name contains "tfevents"; this is TensorFlow's own pattern. */
export function eventFileName(wallTime: number): string {
  return `events.out.tfevents.${Math.floor(wallTime)}.${hostname()}.${process.pid}`;
}

/** The per-epoch scalars, under the names metrics.json and MLflow use too. */
export function epochScalars(m: EpochMetrics): Record<string, number> {
  return { train_loss: m.train_loss, valid_loss: m.valid_loss, valid_acc: m.valid_acc, lr: m.lr, epoch_seconds: m.seconds };
}

/**
 * A whole trial as one event file: settings as text, the parameters for the HParams tab, and every
 * epoch's scalars. Wall times are reconstructed backwards from `endTime` with the epochs' own
 * durations, so TensorBoard's relative-time axis shows training time even for a resumed trial.
 */
export function trialEventFile(
  epochs: readonly EpochMetrics[],
  hparams: Record<string, string | number | boolean>,
  group: string,
  settingsToml: string,
  endTime: number,
): Buffer {
  const wall: number[] = [];
  let t = endTime;
  for (let i = epochs.length - 1; i >= 0; i--) {
    wall[i] = t;
    t -= epochs[i]!.seconds;
  }
  const records = [fileVersionEvent(t), hparamsStartEvent(t, hparams, group), textEvent(t, 0, 'settings', toMarkdownCode(settingsToml))];
  epochs.forEach((m, i) => records.push(scalarsEvent(wall[i]!, m.epoch, epochScalars(m))));
  records.push(hparamsEndEvent(endTime));
  return Buffer.concat(records.map(tfRecord));
}

// TensorBoard renders text summaries as markdown; indenting keeps the TOML verbatim.
const toMarkdownCode = (text: string) => text.trimEnd().replace(/^/gm, '    ');

// ---------------------------------------------------------------------------------------------
// MLflow, over its REST API (https://mlflow.org/docs/latest/rest-api.html), with Node's fetch.

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

interface RunInfo {
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

// ---------------------------------------------------------------------------------------------
// Problems: what went wrong with tracking, for the log, the trial result and the report.

class Problems {
  readonly list: string[] = [];
  constructor(private readonly log: ActivityDeps['logger']) {}
  add(what: string, err: unknown): void {
    const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
    this.log.warn({ err: message }, 'tracking problem (the trial goes on)');
    // A server that stays down fails every epoch the same way: one line with a count, not thirty.
    const last = this.list.length - 1;
    const repeated = /^(.*) \(×(\d+)\)$/.exec(this.list[last] ?? '');
    if (this.list[last] === message) this.list[last] = `${message} (×2)`;
    else if (repeated && repeated[1] === message) this.list[last] = `${message} (×${Number(repeated[2]) + 1})`;
    else if (this.list.length < 20) this.list.push(message);
  }
}

// ---------------------------------------------------------------------------------------------
// The trial hook: train.ts creates one per training, calls `epoch` after each epoch and `finish`
// before committing the trial's artifact.

export interface TrialTracking {
  /** File of the trial's settings inside the train artifact. */
  settings: string;
  /** Folder of the trial's TensorBoard event file inside the train artifact. */
  tensorboard: string;
  /** Where the event file grew while training (this machine's path): `tensorboard --logdir` it live. */
  liveTensorboard?: string;
  mlflow?: {
    /** `logged`: run, parameters, every epoch and the artifacts reached the server; `incomplete`: something did not. */
    status: 'logged' | 'incomplete';
    experimentId?: string;
    runId?: string;
    url?: string;
  };
  environment: TrainingEnvironment;
  /** Tracking failures (server down, …); the trial itself succeeded. */
  problems: string[];
}

export interface TrialTrackingInput {
  sweepId: string;
  step: string;
  trial: string;
  /** The train step's identity (type, version, params, inputs): its cache key names the trial's state. */
  identity: StepIdentity;
}

/** What survives a retry of the training activity: the MLflow run to continue and what it has. */
interface TrackerState {
  mlflow?: { uri: string; run: RunInfo; paramsLogged: boolean; loggedThroughEpoch: number };
  liveEventFile?: string;
}

export interface TrainingSummary {
  best: EpochMetrics;
  epochs: EpochMetrics[];
  stoppedEarly: boolean;
  backend: string;
}

export class TrialTracker {
  private readonly problems: Problems;
  private readonly stateFile: string;
  private state: TrackerState;
  private readonly mlflow?: MlflowClient;
  private queue: Promise<void> = Promise.resolve();
  private readonly seen: EpochMetrics[] = [];
  /** After a call failed for good, per-epoch logging pauses until then; `finish` always tries. */
  private mlflowPausedUntil = 0;
  private readonly workflowId: string;
  private readonly link?: string;
  /** The training's last heartbeat details, repeated while tracking finishes. */
  private lastBeat?: { epoch: number; checkpoint?: string };

  constructor(
    private readonly input: TrialTrackingInput,
    deps: ActivityDeps,
    private readonly log: ActivityDeps['logger'],
    settings: MlflowSettings | undefined,
    private readonly workDir: string,
    private readonly liveDir: string,
  ) {
    this.problems = new Problems(log);
    this.stateFile = join(workDir, 'tracking.json');
    this.state = readState(this.stateFile);
    this.workflowId = trialWorkflowId(input.sweepId, input.step, input.trial);
    this.link = temporalUiLink(deps.ui, this.workflowId);
    if (settings) {
      try {
        this.mlflow = new MlflowClient(settings);
      } catch (err) {
        this.problems.add('mlflow', err);
      }
    }
    // A different tracking server than the last attempt's: start a new run there.
    if (this.state.mlflow && this.state.mlflow.uri !== settings?.uri) delete this.state.mlflow;
    if (this.mlflow) this.enqueue(() => this.ensureRun());
  }

  /** After each epoch: returns at once; the event file grows now, MLflow catches up in the background. */
  epoch(m: EpochMetrics, checkpoint?: string): void {
    this.seen.push(m);
    this.lastBeat = { epoch: m.epoch, checkpoint };
    this.appendLive(m);
    if (this.mlflow && Date.now() >= this.mlflowPausedUntil) this.enqueue(() => this.logEpochs(this.seen));
  }

  /**
   * At the end of training, before the artifact is committed: writes settings.toml and the event
   * file into `dir`, brings the MLflow run up to date and closes it. Never throws.
   */
  async finish(outcome: TrainingSummary, dir: string): Promise<TrialTracking> {
    // A slow or hanging tracking server must not let the training activity miss its heartbeat
    // timeout (a retry would redo this finish, not the training): keep the heartbeat going.
    const ctx = activityContext();
    const keepAlive = ctx ? setInterval(() => ctx.heartbeat({ ...this.lastBeat, phase: 'tracking' }), 10_000) : undefined;
    try {
      return await this.finishTracking(outcome, dir);
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async finishTracking(outcome: TrainingSummary, dir: string): Promise<TrialTracking> {
    await this.queue;
    const environment = trainingEnvironment(outcome.backend);
    const record: TrialTracking = { settings: 'settings.toml', tensorboard: 'tensorboard', environment, problems: this.problems.list };
    if (this.state.liveEventFile) record.liveTensorboard = dirname(this.state.liveEventFile);

    let run: RunInfo | undefined;
    let complete = false;
    if (this.mlflow) {
      try {
        run = await this.ensureRun();
        await this.logEpochs(outcome.epochs);
        await this.mlflow.logBatch(run.runId, {
          metrics: [
            { key: 'best_valid_acc', value: outcome.best.valid_acc, step: outcome.best.epoch },
            { key: 'best_valid_loss', value: outcome.best.valid_loss, step: outcome.best.epoch },
            { key: 'best_epoch', value: outcome.best.epoch, step: outcome.best.epoch },
          ],
          tags: { backend: outcome.backend, stopped_early: String(outcome.stoppedEarly), epochs_run: String(outcome.epochs.length) },
        });
        complete = true;
      } catch (err) {
        this.problems.add('mlflow', err);
      }
    }

    const settingsToml = this.settingsToml(outcome, environment, run);
    const files: string[] = [];
    try {
      await writeFileAtomic(join(dir, record.settings), settingsToml);
      files.push(record.settings);
    } catch (err) {
      this.problems.add('settings.toml', err);
    }
    try {
      const eventFile = join(record.tensorboard, eventFileName(Date.now() / 1000));
      const hparams = scalarParams(this.input.identity.params);
      await writeFileAtomic(join(dir, eventFile), trialEventFile(outcome.epochs, hparams, this.input.trial, settingsToml, Date.now() / 1000));
      files.push(eventFile);
    } catch (err) {
      this.problems.add('tensorboard', err);
    }

    // Only while the server answers: after a call has failed through all its retries, more calls
    // would only add their own retries to the trial's time.
    if (this.mlflow && run && complete) {
      try {
        if (existsSync(join(dir, 'metrics.json'))) files.push('metrics.json');
        for (const file of files) await this.mlflow.uploadArtifact(run, file, join(dir, file));
        await this.mlflow.endRun(run.runId);
      } catch (err) {
        complete = false;
        this.problems.add('mlflow', err);
      }
    }
    if (this.mlflow || this.problems.list.some((p) => p.startsWith('mlflow'))) {
      record.mlflow = {
        status: complete ? 'logged' : 'incomplete',
        ...(run ? { experimentId: run.experimentId, runId: run.runId, url: this.mlflow?.runUrl(run.experimentId, run.runId) } : {}),
      };
    }
    // Done: should this trial ever train again (its artifact lost), that is a new run and a new
    // live file. An incomplete run keeps its state, so that a retry of this attempt continues it.
    if (complete || !this.mlflow) {
      try {
        rmSync(this.stateFile, { force: true });
      } catch (err) {
        this.problems.add('tracking state', err);
      }
    }
    return record;
  }

  private enqueue(op: () => Promise<unknown>): void {
    this.queue = this.queue.then(op).then(
      () => undefined,
      (err: unknown) => {
        this.problems.add('mlflow', err);
        // Do not make every following epoch wait out the same retries: try again in a minute.
        this.mlflowPausedUntil = Date.now() + 60_000;
      },
    );
  }

  private async ensureRun(): Promise<RunInfo> {
    const client = this.mlflow!;
    if (!this.state.mlflow) {
      const experimentId = await client.experimentId(pipelineOfSweep(this.input.sweepId));
      const code = codeVersion();
      const tags: Record<string, string> = {
        sweep_id: this.input.sweepId,
        trial_id: this.input.trial,
        step: this.input.step,
        'temporal.workflow_id': this.workflowId,
        'mlflow.source.name': code.package,
        'mlflow.source.type': 'JOB',
      };
      if (this.link) tags['temporal.ui'] = this.link;
      if (code.commit) tags['mlflow.source.git.commit'] = code.commit;
      for (const [k, v] of Object.entries(inputsOf(this.input.identity))) tags[`input.${k}`] = v;
      const run = await client.createRun(experimentId, this.input.trial, tags);
      this.state.mlflow = { uri: client.settings.uri, run, paramsLogged: false, loggedThroughEpoch: 0 };
      this.saveState();
      this.log.info({ mlflowRun: client.runUrl(experimentId, run.runId) }, 'tracking the trial in MLflow');
    }
    const mine = this.state.mlflow;
    if (!mine.paramsLogged) {
      await client.logBatch(mine.run.runId, { params: stringParams(this.input.identity.params) });
      mine.paramsLogged = true;
      this.saveState();
    }
    return mine.run;
  }

  private async logEpochs(epochs: readonly EpochMetrics[]): Promise<void> {
    const run = await this.ensureRun();
    const mine = this.state.mlflow!;
    const pending = epochs.filter((m) => m.epoch > mine.loggedThroughEpoch);
    if (pending.length === 0) return;
    const metrics = pending.flatMap((m) => Object.entries(epochScalars(m)).map(([key, value]) => ({ key, value, step: m.epoch })));
    await this.mlflow!.logBatch(run.runId, { metrics });
    mine.loggedThroughEpoch = Math.max(...pending.map((m) => m.epoch));
    this.saveState();
  }

  /** The live event file: one record per epoch, appended as it happens (TensorBoard tails it). */
  private appendLive(m: EpochMetrics): void {
    try {
      const now = Date.now() / 1000;
      let file = this.state.liveEventFile;
      if (!file || !existsSync(file)) {
        mkdirSync(this.liveDir, { recursive: true });
        file = join(this.liveDir, eventFileName(now));
        const hparams = scalarParams(this.input.identity.params);
        appendFileSync(file, Buffer.concat([fileVersionEvent(now), hparamsStartEvent(now, hparams, this.input.trial)].map(tfRecord)));
        this.state.liveEventFile = file;
        this.saveState();
      }
      appendFileSync(file, tfRecord(scalarsEvent(now, m.epoch, epochScalars(m))));
    } catch (err) {
      this.problems.add('tensorboard (live)', err);
    }
  }

  private settingsToml(outcome: TrainingSummary, environment: TrainingEnvironment, run: RunInfo | undefined): string {
    const doc = {
      trial: {
        sweep: this.input.sweepId,
        step: this.input.step,
        trial: this.input.trial,
        workflow_id: this.workflowId,
        ...(this.link ? { temporal_ui: this.link } : {}),
        ...(run && this.mlflow ? { mlflow_run: this.mlflow.runUrl(run.experimentId, run.runId) } : {}),
      },
      params: scalarParams(this.input.identity.params),
      inputs: inputsOf(this.input.identity),
      result: {
        best_epoch: outcome.best.epoch,
        best_valid_acc: outcome.best.valid_acc,
        best_valid_loss: outcome.best.valid_loss,
        epochs_run: outcome.epochs.length,
        stopped_early: outcome.stoppedEarly,
      },
      environment: {
        backend: environment.backend,
        ...(environment.backendPackage ? { backend_package: environment.backendPackage } : {}),
        node: environment.node,
        tfjs: environment.tfjs,
        temporal_sdk: environment.temporal,
        host: environment.host,
        platform: environment.platform,
        code: environment.code.package,
        ...(environment.code.commit ? { commit: environment.code.commit, dirty: environment.code.dirty ?? false } : {}),
      },
    };
    return `# Settings of trial ${this.input.trial} of ${this.input.sweepId}, written by durable-sweeps.\n${toToml(doc)}\n`;
  }

  private saveState(): void {
    // Synchronous on purpose: the state must be on disk before the next epoch can crash the attempt.
    try {
      mkdirSync(this.workDir, { recursive: true });
      const tmp = `${this.stateFile}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify(this.state, null, 2));
      renameSync(tmp, this.stateFile);
    } catch (err) {
      this.problems.add('tracking state', err);
    }
  }
}

function readState(file: string): TrackerState {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TrackerState;
  } catch {
    return {};
  }
}

/** Parameters as TOML, TensorBoard and MLflow can hold them: no undefined, no nesting. */
function scalarParams(params: unknown): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries((params ?? {}) as Record<string, unknown>)) {
    if (v === undefined || v === null) continue;
    out[k] = typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

const stringParams = (params: unknown) => Object.fromEntries(Object.entries(scalarParams(params)).map(([k, v]) => [k, String(v)]));

/** The step's upstream artifacts (store folders), e.g. `{ padding: "padding/3f2a…" }`. */
function inputsOf(identity: StepIdentity): Record<string, string> {
  return Object.fromEntries(Object.entries((identity.inputs ?? {}) as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/**
 * Starts tracking one trial. Reads the MLflow settings from the environment (MLFLOW_TRACKING_URI);
 * the tracker's state lives in the store's work area, keyed by the trial's cache key, so that a
 * retried attempt continues the same MLflow run.
 */
export function trackTrial(input: TrialTrackingInput, deps: ActivityDeps, log: ActivityDeps['logger'], settings = mlflowSettingsFromEnv()): TrialTracker {
  const key = stepKey(input.identity).slice(0, 32);
  const workDir = join(deps.store.root, 'work', 'tracking', key);
  // Readable names, so that `tensorboard --logdir <store>/work/tensorboard/<sweep>` compares a sweep's trials live.
  const liveDir = join(deps.store.root, 'work', 'tensorboard', safeName(input.sweepId), safeName(input.trial));
  return new TrialTracker(input, deps, log, settings, workDir, liveDir);
}

const safeName = (s: string) => s.replace(/[^A-Za-z0-9._=-]+/g, '_');

// ---------------------------------------------------------------------------------------------
// The sweep's parent run, holding the report; the trial runs become its children.

export interface SweepTracking {
  mlflow?: { status: 'logged' | 'incomplete'; experimentId?: string; runId?: string; url?: string; experimentUrl?: string };
  problems: string[];
}

export class SweepRun {
  private run?: RunInfo;
  private readonly problems: Problems;
  private readonly client?: MlflowClient;

  private constructor(log: ActivityDeps['logger'], settings: MlflowSettings | undefined) {
    this.problems = new Problems(log);
    if (settings) {
      try {
        this.client = new MlflowClient(settings);
      } catch (err) {
        this.problems.add('mlflow', err);
      }
    }
  }

  /** Creates the parent run (when MLflow is configured) so that the report can link to it. Never throws. */
  static async open(
    input: { sweepId: string; step: string; params: Record<string, unknown>; link?: string },
    log: ActivityDeps['logger'],
    settings = mlflowSettingsFromEnv(),
  ): Promise<SweepRun> {
    const sweep = new SweepRun(log, settings);
    if (sweep.client) {
      try {
        const experimentId = await sweep.client.experimentId(pipelineOfSweep(input.sweepId));
        const tags: Record<string, string> = { sweep_id: input.sweepId, step: input.step, 'temporal.workflow_id': input.sweepId };
        if (input.link) tags['temporal.ui'] = input.link;
        const code = codeVersion();
        if (code.commit) tags['mlflow.source.git.commit'] = code.commit;
        sweep.run = await sweep.client.createRun(experimentId, input.sweepId, tags);
        await sweep.client.logBatch(sweep.run.runId, { params: stringParams(input.params) });
      } catch (err) {
        sweep.problems.add('mlflow', err);
      }
    }
    return sweep;
  }

  get record(): SweepTracking {
    const c = this.client;
    const run = this.run;
    return {
      problems: this.problems.list,
      ...(c
        ? {
            mlflow: {
              status: run && !this.problems.list.length ? 'logged' : 'incomplete',
              ...(run
                ? {
                    experimentId: run.experimentId,
                    runId: run.runId,
                    url: c.runUrl(run.experimentId, run.runId),
                    experimentUrl: c.experimentUrl(run.experimentId),
                  }
                : {}),
            },
          }
        : {}),
    };
  }

  /** The report could not be written (the activity will retry and open a new run): close this one as failed. */
  async abandon(): Promise<void> {
    if (!this.client || !this.run) return;
    await this.client.endRun(this.run.runId, 'FAILED').catch((err: unknown) => this.problems.add('mlflow', err));
  }

  /**
   * Uploads the report files (paths relative to `dir`), logs summary metrics, makes the trial runs
   * children of this run, and closes it. Never throws; returns the final record.
   */
  async complete(dir: string, files: string[], metrics: Record<string, number>, trialRunIds: string[]): Promise<SweepTracking> {
    const c = this.client;
    const run = this.run;
    if (!c || !run) return this.record;
    // A server that stopped answering is not asked again for every file and every trial run.
    let down = false;
    const attempt = async (op: () => Promise<void>) => {
      if (down) return;
      try {
        await op();
      } catch (err) {
        this.problems.add('mlflow', err);
        down = !(err instanceof MlflowError) || err.retryable;
      }
    };
    await attempt(async () => {
      for (const file of files) await c.uploadArtifact(run, file, join(dir, file));
    });
    const entries = Object.entries(metrics).filter(([, v]) => Number.isFinite(v));
    if (entries.length) await attempt(() => c.logBatch(run.runId, { metrics: entries.map(([key, value]) => ({ key, value, step: 0 })) }));
    // Nesting in the MLflow UI is a tag, set now because the trial runs started before this run existed.
    // A trial run deleted meanwhile costs only its own nesting.
    for (const id of trialRunIds) await attempt(() => c.setTag(id, 'mlflow.parentRunId', run.runId));
    await attempt(() => c.endRun(run.runId));
    return this.record;
  }
}
