import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { dataset } from '../../activities/dataset';
import { download } from '../../activities/download';
import { padding } from '../../activities/padding';
import { report } from '../../activities/report';
import { train } from '../../activities/train';
import { trackTrial } from '../../activities/tracking';
import { MlflowClient, mlflowSettingsFromEnv, type MlflowSettings } from '../../tracking/mlflow';
import type { EpochMetrics, TrainResult } from '../../activities/types';
import { trainParams } from '../../activities/train';
import type { ReportDocument } from '../../report/document';
import { ARCHIVE, ARCHIVE_MD5, removeDir, tempDir, testDeps } from '../data/helpers';
import { freePort } from '../helpers/fixtures';
import { STUDY, SWEEP, buildSweep } from '../report/fixture';
import { startMlflow, testWith, type MlflowServer } from './tools';

jest.setTimeout(10 * 60_000);

const withMlflow = testWith('mlflow');
const UI = { url: 'http://127.0.0.1:8233', namespace: 'default' };

let root: string;
let server: MlflowServer | undefined;
let client: MlflowClient;

beforeAll(async () => {
  root = tempDir('mlflow');
  if (withMlflow === test) {
    server = await startMlflow(join(root, 'mlflow'));
    client = new MlflowClient(mlflowSettingsFromEnv({ MLFLOW_TRACKING_URI: server.uri })!);
  }
}, 200_000);

afterAll(async () => {
  delete process.env.MLFLOW_TRACKING_URI;
  await server?.stop();
  removeDir(root);
});

const epochs: EpochMetrics[] = [1, 2, 3].map((epoch) => ({
  epoch,
  train_loss: 1 / epoch,
  valid_loss: 1.2 / epoch,
  valid_acc: 0.6 + epoch / 10,
  lr: 0.001,
  seconds: 1.5,
}));

interface RunData {
  info: { run_id: string; experiment_id: string; status: string; run_name: string };
  data: { params?: Array<{ key: string; value: string }>; tags?: Array<{ key: string; value: string }> };
}

const getRun = async (runId: string) => (await client.call<{ run: RunData }>('GET', `/api/2.0/mlflow/runs/get?run_id=${runId}`)).run;
const tagsOf = (run: RunData) => Object.fromEntries((run.data.tags ?? []).map((t) => [t.key, t.value]));
const paramsOf = (run: RunData) => Object.fromEntries((run.data.params ?? []).map((t) => [t.key, t.value]));
const history = async (runId: string, key: string) =>
  (await client.call<{ metrics?: Array<{ step: number; value: number }> }>('GET', `/api/2.0/mlflow/metrics/get-history?run_id=${runId}&metric_key=${key}`))
    .metrics ?? [];
const artifacts = async (runId: string, path = '') =>
  (
    (await client.call<{ files?: Array<{ path: string; is_dir: boolean }> }>('GET', `/api/2.0/mlflow/artifacts/list?run_id=${runId}&path=${path}`)).files ?? []
  ).map((f) => f.path);

const trackerFor = (trial: string, settings: MlflowSettings | undefined, params: Record<string, unknown> = { pooling: 'mean', seed: 1 }) => {
  const deps = { ...testDeps(join(root, 'store')), ui: UI };
  const identity = { type: 'train', version: 1, params, inputs: { padding: 'padding/0123' } };
  return trackTrial({ sweepId: 'sweep-tracking-test-0123abcd', step: 'train', trial, identity }, deps, deps.logger, settings);
};

withMlflow('each trial is an MLflow run: parameters, metrics per epoch (step = epoch), sweep/trial tags with the Temporal link, its files', async () => {
  const tracker = trackerFor('gru_mean-h64-s1', mlflowSettingsFromEnv({ MLFLOW_TRACKING_URI: server!.uri }));
  for (const m of epochs) tracker.epoch(m);
  const dir = join(root, 'trial-1');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify(epochs));
  const record = await tracker.finish({ best: epochs[2]!, epochs, stoppedEarly: false, backend: 'wasm' }, dir);

  expect(record.problems).toEqual([]);
  expect(record.mlflow).toMatchObject({ status: 'logged' });
  const run = await getRun(record.mlflow!.runId!);
  expect(run.info.status).toBe('FINISHED');
  expect(run.info.run_name).toBe('gru_mean-h64-s1');
  const experiment = await client.call<{ experiment: { name: string } }>('GET', `/api/2.0/mlflow/experiments/get?experiment_id=${run.info.experiment_id}`);
  expect(experiment.experiment.name).toBe('tracking-test'); // the pipeline's name
  expect(paramsOf(run)).toEqual({ pooling: 'mean', seed: '1' });
  expect(tagsOf(run)).toMatchObject({
    sweep_id: 'sweep-tracking-test-0123abcd',
    trial_id: 'gru_mean-h64-s1',
    'temporal.workflow_id': 'sweep-tracking-test-0123abcd/trial-gru_mean-h64-s1',
    'temporal.ui': `${UI.url}/namespaces/default/workflows/${encodeURIComponent('sweep-tracking-test-0123abcd/trial-gru_mean-h64-s1')}`,
    'input.padding': 'padding/0123',
    backend: 'wasm',
    stopped_early: 'false',
  });
  const acc = await history(run.info.run_id, 'valid_acc');
  expect(acc.map((m) => m.step).sort()).toEqual([1, 2, 3]);
  expect(acc.find((m) => m.step === 2)!.value).toBeCloseTo(0.8, 12);
  for (const key of ['train_loss', 'valid_loss', 'lr', 'epoch_seconds']) expect(await history(run.info.run_id, key)).toHaveLength(3);
  expect((await history(run.info.run_id, 'best_valid_acc'))[0]).toMatchObject({ step: 3 });
  expect(await artifacts(run.info.run_id)).toEqual(expect.arrayContaining(['settings.toml', 'metrics.json', 'tensorboard']));
  expect((await artifacts(run.info.run_id, 'tensorboard'))[0]).toMatch(/^tensorboard\/events\.out\.tfevents\./);
  expect(record.mlflow!.url).toBe(`${server!.uri}/#/experiments/${run.info.experiment_id}/runs/${run.info.run_id}`);
  // The settings file names the run, for someone who only has the artifact folder.
  expect(readFileSync(join(dir, 'settings.toml'), 'utf8')).toContain(`mlflow_run = "${record.mlflow!.url}"`);
});

withMlflow('a retried training attempt continues the same run, and every epoch is logged once', async () => {
  const settings = mlflowSettingsFromEnv({ MLFLOW_TRACKING_URI: server!.uri });
  const params = { pooling: 'last', seed: 9 };
  const first = trackerFor('gru_last-h64-s9', settings, params);
  first.epoch(epochs[0]!);
  first.epoch(epochs[1]!);
  // The attempt dies here (worker lost): no finish. The retry resumes training from epoch 2's checkpoint.
  await (first as unknown as { queue: Promise<void> }).queue;
  const retry = trackerFor('gru_last-h64-s9', settings, params);
  retry.epoch(epochs[2]!);
  const dir = join(root, 'trial-9');
  const record = await retry.finish({ best: epochs[2]!, epochs, stoppedEarly: false, backend: 'cpu' }, dir);

  expect(record.mlflow?.status).toBe('logged');
  const runs = await client.call<{ runs?: RunData[] }>('POST', '/api/2.0/mlflow/runs/search', {
    experiment_ids: [record.mlflow!.experimentId],
    filter: "tags.trial_id = 'gru_last-h64-s9'",
  });
  expect(runs.runs).toHaveLength(1);
  expect((await history(record.mlflow!.runId!, 'valid_loss')).map((m) => m.step).sort()).toEqual([1, 2, 3]);
});

/** A stand-in for a tracking server in trouble: answers 503 to the first `failures` requests. */
async function flakyServer(failures: number): Promise<{ uri: string; requests: () => number; close: () => Promise<void> }> {
  let count = 0;
  const s: Server = createServer((req, res) => {
    count++;
    req.resume();
    if (count <= failures) {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error_code: 'TEMPORARILY_UNAVAILABLE', message: 'try later' }));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    }
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    uri: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    requests: () => count,
    close: () => new Promise((r) => s.close(() => r())),
  };
}

test('calls are retried with exponential backoff on 5xx answers', async () => {
  const flaky = await flakyServer(2);
  try {
    const c = new MlflowClient({ ...mlflowSettingsFromEnv({ MLFLOW_TRACKING_URI: flaky.uri })!, attempts: 4, backoffMs: 100 });
    const started = Date.now();
    await c.setTag('r', 'k', 'v');
    expect(flaky.requests()).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100 + 200 - 20); // two pauses: 100 ms, then 200 ms
  } finally {
    await flaky.close();
  }
});

test('a tracking server that stays down never fails the trial: it is retried, logged and recorded', async () => {
  const down = await flakyServer(Number.MAX_SAFE_INTEGER);
  const refused = `http://127.0.0.1:${await freePort()}`;
  try {
    for (const uri of [down.uri, refused]) {
      const settings = { ...mlflowSettingsFromEnv({ MLFLOW_TRACKING_URI: uri })!, attempts: 3, backoffMs: 10 };
      const tracker = trackerFor(`down-${uri.split(':').at(-1)}`, settings);
      for (const m of epochs) tracker.epoch(m);
      const dir = join(root, `down-${uri.split(':').at(-1)}`);
      const record = await tracker.finish({ best: epochs[2]!, epochs, stoppedEarly: false, backend: 'cpu' }, dir);
      expect(record.mlflow).toEqual({ status: 'incomplete' });
      expect(record.problems.length).toBeGreaterThan(0);
      expect(record.problems.join('\n')).toMatch(uri === refused ? /unreachable \(ECONNREFUSED\)/ : /failed after 3 attempts: 503 TEMPORARILY_UNAVAILABLE/);
      // TensorBoard and settings do not depend on the server.
      expect(readFileSync(join(dir, 'settings.toml'), 'utf8')).toContain('[params]');
    }
    expect(down.requests()).toBeGreaterThanOrEqual(3);
  } finally {
    await down.close();
  }
});

test('a tracking URI that is not an http(s) server is reported, not fatal', async () => {
  const tracker = trackerFor('file-uri', mlflowSettingsFromEnv({ MLFLOW_TRACKING_URI: 'file:./mlruns' }));
  const record = await tracker.finish({ best: epochs[0]!, epochs: [epochs[0]!], stoppedEarly: false, backend: 'cpu' }, join(root, 'file-uri'));
  expect(record.problems[0]).toMatch(/MLFLOW_TRACKING_URI=file:\.\/mlruns is not an http\(s\) tracking server/);
  expect(record.mlflow).toEqual({ status: 'incomplete' });
});

withMlflow('the report is an artifact of a parent run for the sweep, whose children are the trial runs', async () => {
  const deps = { ...testDeps(join(root, 'report-store')), ui: UI };
  const sweep = await buildSweep(deps, STUDY.slice(0, 2).concat(STUDY.slice(3, 5)));
  const settings = mlflowSettingsFromEnv({ MLFLOW_TRACKING_URI: server!.uri });
  // Each fixture trial gets a real MLflow run, as training would have made.
  for (const result of sweep.results) {
    const trialEpochs = JSON.parse(readFileSync(deps.store.path(result.ref, 'metrics.json'), 'utf8')) as EpochMetrics[];
    const tracker = trackTrial(
      { sweepId: SWEEP, step: 'train', trial: result.trial, identity: { type: 'train', version: 1, params: result.params, inputs: {} } },
      deps,
      deps.logger,
      settings,
    );
    for (const m of trialEpochs) tracker.epoch(m);
    const record = await tracker.finish(
      { best: result.best, epochs: trialEpochs, stoppedEarly: result.stoppedEarly, backend: 'wasm' },
      join(root, 'report-trials', result.trial),
    );
    result.tracking = { ...result.tracking!, mlflow: record.mlflow };
  }

  process.env.MLFLOW_TRACKING_URI = server!.uri;
  // Set for this call only: a failure here must not leave it set for the tests after this one.
  const result = await report(
    { sweepId: SWEEP, step: 'report', params: { baseline: 'last', compare: 'pooling' }, inputs: { train: sweep.results } },
    deps,
  ).finally(() => delete process.env.MLFLOW_TRACKING_URI);

  expect(result.tracking.problems).toBe(0);
  const parentId = /runs\/([0-9a-f]+)$/.exec(result.tracking.mlflow!)![1]!;
  const parent = await getRun(parentId);
  expect(parent.info.status).toBe('FINISHED');
  expect(parent.info.run_name).toBe(SWEEP);
  expect(tagsOf(parent)).toMatchObject({ sweep_id: SWEEP, 'temporal.ui': `${UI.url}/namespaces/default/workflows/${SWEEP}` });
  expect(paramsOf(parent)).toEqual({ baseline: 'last', compare: 'pooling' });
  expect(await artifacts(parentId)).toEqual(expect.arrayContaining(['report.html', 'report.md', 'report.json', 'plots']));
  expect((await history(parentId, 'best_valid_acc_mean/mean'))[0]!.value).toBeCloseTo((0.93 + 0.94) / 2, 12);
  for (const trial of sweep.results) expect(tagsOf(await getRun(trial.tracking!.mlflow!.runId!))['mlflow.parentRunId']).toBe(parentId);

  // The uploaded report is the one on disk, and it links to its run and to every trial's run.
  const uploaded = await fetch(`${server!.uri}/get-artifact?path=report.html&run_uuid=${parentId}`).then((r) => r.text());
  expect(uploaded).toBe(readFileSync(result.files.html, 'utf8'));
  const doc = JSON.parse(readFileSync(result.files.json, 'utf8')) as ReportDocument;
  expect(doc.tracking.mlflow?.url).toBe(result.tracking.mlflow);
  expect(doc.trials.every((t) => t.mlflowUrl?.startsWith(`${server!.uri}/#/experiments/`))).toBe(true);
});

withMlflow('end to end on real data: the train activity logs each trial to MLflow and writes TensorBoard and TOML files', async () => {
  const deps = { ...testDeps(join(root, 'e2e')), ui: UI };
  const sweepId = 'sweep-gestures-tiny-0badcafe';
  const dl = await download(
    { sweepId, step: 'download', params: { urls: [`file://${ARCHIVE}`], md5: ARCHIVE_MD5, unpack: true, max_unpacked_bytes: 1 << 30 }, inputs: {} },
    deps,
  );
  const ds = await dataset(
    {
      sweepId,
      step: 'dataset',
      params: { root: 'gestures-dataset', limit: 200, split: { kind: 'random', seed: 42, valid_fraction: 0.2 } },
      inputs: { download: dl },
    },
    deps,
  );
  const pad = await padding({ sweepId, step: 'padding', params: { batch_size: 32 }, inputs: { dataset: ds } }, deps);

  process.env.MLFLOW_TRACKING_URI = server!.uri;
  const trials: TrainResult[] = [];
  try {
    for (const pooling of ['last', 'mean'] as const) {
      const params = trainParams.parse({ pooling, seed: 1, epochs: 2, hidden: 8, train_batches: 2, valid_batches: 2, backend: 'cpu' });
      trials.push(await train({ sweepId, step: 'train', trial: `gru_${pooling}-h8-s1`, params, inputs: { padding: pad } }, deps));
    }
  } finally {
    delete process.env.MLFLOW_TRACKING_URI;
  }

  for (const t of trials) {
    expect(t.tracking?.problems).toEqual([]);
    expect(t.tracking?.mlflow?.status).toBe('logged');
    const run = await getRun(t.tracking!.mlflow!.runId!);
    expect(run.info.status).toBe('FINISHED');
    expect(tagsOf(run)).toMatchObject({ sweep_id: sweepId, trial_id: t.trial, 'input.padding': pad.ref.dir });
    expect(paramsOf(run)).toMatchObject({ pooling: t.params.pooling, epochs: '2', hidden: '8' });
    const valid = await history(run.info.run_id, 'valid_acc');
    expect(valid.map((m) => m.step).sort()).toEqual([1, 2]);
    const metrics = JSON.parse(readFileSync(deps.store.path(t.ref, 'metrics.json'), 'utf8')) as EpochMetrics[];
    expect(valid.sort((a, b) => a.step - b.step).map((m) => m.value)).toEqual(metrics.map((m) => m.valid_acc));
    // The files are part of the committed, verified artifact.
    const files = Object.keys(await deps.store.files(t.ref));
    expect(files).toEqual(expect.arrayContaining(['metrics.json', 'settings.toml']));
    expect(files.some((f) => /^tensorboard\/events\.out\.tfevents\./.test(f))).toBe(true);
  }
});
