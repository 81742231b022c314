/**
 * Experiment tracking, the three report types of the reference trainer: each trial is an MLflow
 * run (when a tracking server is configured), writes TensorBoard event files, and a TOML file of
 * its settings. The report step adds a parent MLflow run per sweep holding the report.
 *
 * Tracking is a side channel: a tracking server that is down or rejects a call never fails a
 * trial or a report. Calls are retried with backoff; what still fails is logged and recorded in
 * the trial's result (and so in the report), and the trial trains on.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { arch, hostname, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { stepKey, writeFileAtomic, type StepIdentity } from '../artifacts/store';
import { activityContext } from './context';
import type { ActivityDeps } from './deps';
import type { EpochMetrics } from './types';
import { trialWorkflowId } from '../pipeline/plan';
import { MlflowClient, MlflowError, mlflowSettingsFromEnv, type MlflowSettings, type RunInfo } from '../tracking/mlflow';
import { epochScalars, eventFileName, fileVersionEvent, hparamsStartEvent, scalarsEvent, tfRecord, trialEventFile } from '../tracking/tensorboard';

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
const execFileAsync = promisify(execFile);

const packageVersions = new Map<string, string | undefined>();

/**
 * Version of an installed package, or undefined when it is not installed (optional dependencies).
 * Read once per process: the code this process has loaded does not change with a later install.
 */
export function packageVersion(name: string): string | undefined {
  if (!packageVersions.has(name)) packageVersions.set(name, readPackageVersion(name));
  return packageVersions.get(name);
}

function readPackageVersion(name: string): string | undefined {
  for (const candidate of [() => require.resolve(`${name}/package.json`), () => join(repoRoot, 'node_modules', name, 'package.json')]) {
    try {
      return (JSON.parse(readFileSync(candidate(), 'utf8')) as { version?: string }).version;
    } catch {
      // next candidate
    }
  }
  return undefined;
}

let codeVersionOnce: Promise<CodeVersion> | undefined;

/**
 * The code this process runs: the package, and the git commit (and whether the checkout has
 * uncommitted changes) where it is a checkout. Once per process (the code cannot change under a
 * running worker), without blocking the event loop: a training worker asks for it when its
 * activities are made, so its two `git` runs (10–15 ms) are not part of any trial's time.
 */
export function codeVersion(): Promise<CodeVersion> {
  codeVersionOnce ??= (async () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string };
    const version: CodeVersion = { package: `${pkg.name}@${pkg.version}` };
    try {
      const git = async (...args: string[]) => (await execFileAsync('git', args, { cwd: repoRoot, encoding: 'utf8', timeout: 5000 })).stdout.trim();
      const [commit, status] = await Promise.all([git('rev-parse', 'HEAD'), git('status', '--porcelain', '--untracked-files=no')]);
      Object.assign(version, { commit, dirty: status.length > 0 });
    } catch {
      // Not a git checkout (a container image, an npm tarball): the package version is what there is.
    }
    return version;
  })();
  return codeVersionOnce;
}

const BACKEND_PACKAGES: Record<string, string> = {
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs',
};

export function trainingEnvironment(backend: string, code: CodeVersion): TrainingEnvironment {
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
    code,
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
  /** Asked for when tracking starts, needed at the finish. */
  private readonly code: Promise<CodeVersion>;

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
    this.workflowId = trialWorkflowId(input.sweepId, input.trial);
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
    this.code = codeVersion();
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
  async finish(outcome: TrainingSummary, dir: string, alsoWritten: Promise<unknown> = Promise.resolve()): Promise<TrialTracking> {
    // A slow or hanging tracking server must not let the training activity miss its heartbeat
    // timeout (a retry would redo this finish, not the training): keep the heartbeat going.
    const ctx = activityContext();
    const keepAlive = ctx ? setInterval(() => ctx.heartbeat({ ...this.lastBeat, phase: 'tracking' }), 10_000) : undefined;
    try {
      return await this.finishTracking(
        outcome,
        dir,
        alsoWritten.catch(() => undefined),
      );
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async finishTracking(outcome: TrainingSummary, dir: string, alsoWritten: Promise<unknown>): Promise<TrialTracking> {
    await this.queue;
    const environment = trainingEnvironment(outcome.backend, await this.code);
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
    const eventFile = join(record.tensorboard, eventFileName(Date.now() / 1000));
    const eventData = trialEventFile(outcome.epochs, scalarParams(this.input.identity.params), this.input.trial, settingsToml, Date.now() / 1000);
    // Two different files: written side by side, each atomically (temp path, then rename).
    const [settingsWritten, eventWritten] = await Promise.allSettled([
      writeFileAtomic(join(dir, record.settings), settingsToml),
      writeFileAtomic(join(dir, eventFile), eventData),
    ]);
    const files: string[] = [];
    if (settingsWritten.status === 'fulfilled') files.push(record.settings);
    else this.problems.add('settings.toml', settingsWritten.reason);
    if (eventWritten.status === 'fulfilled') files.push(eventFile);
    else this.problems.add('tensorboard', eventWritten.reason);
    // The training's own files (metrics.json), written beside this finish, are complete before they are uploaded.
    await alsoWritten;

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
      const code = await this.code;
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
        const code = await codeVersion();
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
