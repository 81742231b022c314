/**
 * What a sweep costs beyond its trials. Runs the seed study (pipelines/gestures-pooling.yaml, its
 * own recipe and concurrency) on the embedded Temporal server with one `sweeps worker` process
 * (training slots = cores), warm: the worker is up and polling (its training processes started)
 * before the clock starts. Then, on the same worker kind, a sweep of many one-epoch trials with
 * small `train_batches`, whose data steps are cache hits, so that what is timed is the per-trial
 * cost of scheduling and start-up.
 *
 * Prints, per sweep: wall time from submission to result; the sum of the trials' training time
 * (their epochs, as the trainer timed them) divided by the slots — the wall time an ideal scheduler
 * would need for the training; the data steps and the report (their activities' own times); and
 * the remainder, wall − training/slots − data − report, with what it consisted of: time inside
 * the train activities that is not training (process start-up, data load, input verification,
 * checkpoint and result writes, tracking), and time no slot trained at all (Temporal round trips:
 * child workflow starts, workflow tasks, activity scheduling). Two parts of the latter are shown on
 * their own: slots left idle at the end while the last trial still trains (trials finish unevenly),
 * and the sweep's first workflow task, which in a fresh worker is the first its workflow code runs.
 *
 *   node dist/bench/sweep.js [--trials 200] [--train-batches 4] [--only study|trials] [--slots N]
 *                            [--concurrency pipeline|all|N]   (the train step's; default: the pipeline's)
 *   (the archive: SWEEPS_DATA, else ../shared/data/gestures-dataset.zip)
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import type { StepResultBase, TrainResult } from '../activities/types';
import { withStoredResultsOrFail } from '../cli/results';
import { loadConfig } from '../client/config';
import { startOrAttach } from '../client/sweeps';
import type { EpochMetrics } from '../ml/trainer';
import { loadPipeline } from '../pipeline/load';
import type { SweepResult } from '../workflows/sweep';
import { gesturesArchive, repoRoot, serveFile } from '../tests/helpers/fixtures';
import { spawnWorker, startTestServer, untilExit, waitFor } from '../tests/helpers/processes';

interface Measured {
  name: string;
  concurrency: number;
  /** Mean seconds per trial of each Temporal hop, from the sweep's and the trials' histories. */
  hops: Record<string, number>;
  /** When each trial's train activity completed (seconds, any origin). */
  trainingEnds: number[];
  /** Seconds the worker took for the sweep's first workflow task (in a fresh worker, its first ever). */
  firstSweepTask: number;
  wall: number;
  trials: TrainResult[];
  /** Seconds each trial's epochs took, as the trainer timed them. */
  training: number[];
  data: number;
  report: number;
  slots: number;
  load: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const fmt = (s: number) => `${s.toFixed(1)} s`;
const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)} %`;

/** A trial's training time: the sum of the epochs it trained (metrics.json in its artifact folder). */
function trainingSeconds(store: string, trial: TrainResult): number {
  const epochs = JSON.parse(readFileSync(join(store, trial.ref.dir, trial.metrics), 'utf8')) as EpochMetrics[];
  return sum(epochs.slice(trial.resumedFromEpoch).map((e) => e.seconds));
}

function print(m: Measured): void {
  const ideal = sum(m.training) / m.slots;
  const remainder = m.wall - ideal - m.data - m.report;
  const inActivity = sum(m.trials.map((t, i) => t.seconds - (m.training[i] as number))) / m.slots;
  // Trials finish unevenly: the other slots sit idle from their last trial's end to the sweep's last.
  const lastEnds = [...m.trainingEnds].sort((a, b) => b - a).slice(0, m.slots);
  const unevenEnd = sum(lastEnds.map((t) => (lastEnds[0] as number) - t)) / m.slots;
  const rows: Array<[string, string, string]> = [
    ['wall time', fmt(m.wall), '100 %'],
    [`trial training / ${m.slots} slots (${m.trials.length} trials, ${fmt(sum(m.training))} in all)`, fmt(ideal), pct(ideal, m.wall)],
    ['data steps (download, dataset, padding)', fmt(m.data), pct(m.data, m.wall)],
    ['report step', fmt(m.report), pct(m.report, m.wall)],
    ['remainder', fmt(remainder), pct(remainder, m.wall)],
    [`  in the train activities, not training (/ ${m.slots} slots)`, fmt(inActivity), pct(inActivity, m.wall)],
    ['  no slot busy: scheduling, Temporal round trips', fmt(remainder - inActivity), pct(remainder - inActivity, m.wall)],
    [`    of it, slots idle at the end, waiting for the last trial (/ ${m.slots})`, fmt(unevenEnd), pct(unevenEnd, m.wall)],
    ["    of it, the sweep's first workflow task (a fresh worker's first)", fmt(m.firstSweepTask), pct(m.firstSweepTask, m.wall)],
  ];
  console.log(`\n${m.name}, concurrency ${m.concurrency} (load average before: ${m.load.toFixed(1)} on ${availableParallelism()} cores)`);
  for (const [label, value, share] of rows) console.log(`  ${label.padEnd(64)} ${value.padStart(9)} ${share.padStart(8)}`);
  console.log(`  trials per minute: ${((60 * m.trials.length) / m.wall).toFixed(0)}`);
  // The study's numbers, so that a change meant to save time shows that it changed no result.
  const byVariant = new Map<string, number[]>();
  for (const t of m.trials) byVariant.set(String(t.params.pooling), [...(byVariant.get(String(t.params.pooling)) ?? []), t.best.valid_acc]);
  const accuracy = [...byVariant].map(([v, accs]) => `${v} ${(sum(accs) / accs.length).toFixed(4)} (${accs.length})`);
  console.log(`  best valid accuracy, mean over seeds: ${accuracy.join(', ')}`);
  const hops = Object.entries(m.hops).map(([k, v]) => `${k} ${(1000 * v).toFixed(0)}`);
  console.log(`  Temporal hops per trial, mean ms: ${hops.join(', ')} (a trial waiting for a slot counts in slotPickUp)`);
  // Where the train activities' time went (the fields of TrainResult.timing; absent in older results).
  const phases = m.trials.map((t) => (t as { timing?: Record<string, number> }).timing).filter((t) => t !== undefined);
  if (phases.length > 0) {
    const total = (k: string) => sum(phases.map((p) => p[k] ?? 0));
    const keys = [
      'prepare',
      'verifyInput',
      'processWait',
      'dataLoad',
      'trainSetup',
      'trainEnd',
      'steps',
      'batchAssembly',
      'evaluation',
      'checkpoint',
      'epochOther',
      'heartbeat',
      'progressSignal',
      'finish',
      'commit',
    ];
    console.log(`  inside the train activities, summed over trials (s): ${keys.map((k) => `${k} ${total(k).toFixed(2)}`).join(', ')}`);
    // The activities' time outside their epochs, per trial: the parts timed around the epochs
    // (checkpoint: each epoch's snapshot and checkpoint hand-off, outside its measured seconds) and what is left.
    const outside = ['prepare', 'verifyInput', 'processWait', 'dataLoad', 'trainSetup', 'checkpoint', 'trainEnd', 'finish', 'commit'];
    const notTraining = sum(m.trials.map((t, i) => t.seconds - (m.training[i] as number)));
    const n = phases.length;
    const perTrial = outside.map((k) => `${k} ${((1000 * total(k)) / n).toFixed(1)}`);
    const rest = notTraining - sum(outside.map(total));
    console.log(
      `  not training, ms per trial: ${((1000 * notTraining) / m.trials.length).toFixed(1)} = ${perTrial.join(' + ')} + other ${((1000 * rest) / n).toFixed(1)}`,
    );
    const steps = total('stepCount');
    const activity = sum(m.trials.map((t) => t.seconds));
    if (steps > 0) {
      console.log(
        `  ${steps} training steps at ${((1000 * total('steps')) / steps).toFixed(2)} ms each; ` +
          `train activity time / (steps + evaluation) = ${(activity / (total('steps') + total('evaluation'))).toFixed(3)}`,
      );
    }
  }
}

const seconds = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) + (t?.nanos ?? 0) / 1e9;

/**
 * Where the time around each trial's training goes in Temporal, as mean seconds per trial:
 * the sweep starts the child workflow (initiated → started), the child schedules the train
 * activity (started → scheduled), a worker slot picks it up (scheduled → started), the child
 * completes after the activity (completed → child completed), the sweep records that
 * (→ ChildWorkflowExecutionCompleted) and starts the next trial in its next workflow task.
 */
async function temporalHops(client: Client, sweepId: string): Promise<Pick<Measured, 'hops' | 'trainingEnds' | 'firstSweepTask'>> {
  const sweep = await client.workflow.getHandle(sweepId).fetchHistory();
  const initiated = new Map<string, number>();
  const noticed = new Map<string, number>();
  const initiatedTimes: number[] = [];
  for (const e of sweep.events ?? []) {
    const id = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    if (id) {
      initiated.set(id, seconds(e.eventTime));
      initiatedTimes.push(seconds(e.eventTime));
    }
    const done = e.childWorkflowExecutionCompletedEventAttributes?.workflowExecution?.workflowId;
    if (done) noticed.set(done, seconds(e.eventTime));
  }
  const trainingEnds: number[] = [];
  const hops = {
    childStart: [] as number[],
    scheduleActivity: [] as number[],
    slotPickUp: [] as number[],
    childClose: [] as number[],
    sweepNotice: [] as number[],
    nextStart: [] as number[],
  };
  for (const [id, t0] of initiated) {
    const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    const at = (has: (e: (typeof events)[number]) => unknown) => {
      const e = events.find((x) => has(x));
      return e ? seconds(e.eventTime) : undefined;
    };
    const started = at((e) => e.workflowExecutionStartedEventAttributes);
    const scheduled = at((e) => e.activityTaskScheduledEventAttributes);
    const activityStarted = at((e) => e.activityTaskStartedEventAttributes);
    const activityDone = at((e) => e.activityTaskCompletedEventAttributes);
    const closed = at((e) => e.workflowExecutionCompletedEventAttributes);
    const seen = noticed.get(id);
    if ([started, scheduled, activityStarted, activityDone, closed, seen].some((v) => v === undefined)) continue;
    trainingEnds.push(activityDone as number);
    hops.childStart.push((started as number) - t0);
    hops.scheduleActivity.push((scheduled as number) - (started as number));
    hops.slotPickUp.push((activityStarted as number) - (scheduled as number));
    hops.childClose.push((closed as number) - (activityDone as number));
    hops.sweepNotice.push((seen as number) - (closed as number));
    // The next trial starts in the workflow task after a completion was recorded.
    const next = initiatedTimes.find((t) => t >= (seen as number));
    if (next !== undefined) hops.nextStart.push(next - (seen as number));
  }
  const mean = (xs: number[]) => (xs.length === 0 ? 0 : sum(xs) / xs.length);
  const wft = { trial: workflowTaskTimes([]), sweep: workflowTaskTimes(sweep.events ?? []) };
  for (const id of initiated.keys()) {
    const t = workflowTaskTimes((await client.workflow.getHandle(id).fetchHistory()).events ?? []);
    wft.trial.dispatch.push(...t.dispatch);
    wft.trial.worker.push(...t.worker);
  }
  const hopMeans = {
    ...Object.fromEntries(Object.entries(hops).map(([k, xs]) => [k, mean(xs)])),
    // Inside the hops: a workflow task waits for a poller (dispatch), then the worker runs it (worker).
    trialTaskDispatch: mean(wft.trial.dispatch),
    trialTaskWorker: mean(wft.trial.worker),
    sweepTaskDispatch: mean(wft.sweep.dispatch),
    sweepTaskWorker: mean(wft.sweep.worker),
  };
  return { hops: hopMeans, trainingEnds, firstSweepTask: wft.sweep.worker[0] ?? 0 };
}

/** Each workflow task's scheduled → started (a poller took it) and started → completed (the worker ran it), in seconds. */
function workflowTaskTimes(
  events: Array<{
    eventTime?: { seconds?: unknown; nanos?: number | null } | null;
    workflowTaskScheduledEventAttributes?: unknown;
    workflowTaskStartedEventAttributes?: unknown;
    workflowTaskCompletedEventAttributes?: unknown;
  }>,
): { dispatch: number[]; worker: number[] } {
  const out = { dispatch: [] as number[], worker: [] as number[] };
  let scheduled: number | undefined;
  let started: number | undefined;
  for (const e of events) {
    if (e.workflowTaskScheduledEventAttributes) scheduled = seconds(e.eventTime);
    if (e.workflowTaskStartedEventAttributes && scheduled !== undefined) {
      started = seconds(e.eventTime);
      out.dispatch.push(started - scheduled);
    }
    if (e.workflowTaskCompletedEventAttributes && started !== undefined) {
      out.worker.push(seconds(e.eventTime) - started);
      scheduled = started = undefined;
    }
  }
  return out;
}

async function main(): Promise<void> {
  const cores = availableParallelism();
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '200' },
      'train-batches': { type: 'string', default: '4' },
      only: { type: 'string' },
      slots: { type: 'string', default: String(cores) },
      concurrency: { type: 'string', default: 'pipeline' },
    },
  });
  // `pipeline`: the study's own (2); `all`: every trial at once, the worker's slots bound what trains.
  const concurrency = (trials: number): string[] =>
    values.concurrency === 'pipeline' ? [] : [`steps.train.concurrency=${values.concurrency === 'all' ? trials : Number(values.concurrency)}`];
  const slots = Number(values.slots);
  const archivePath = process.env.SWEEPS_DATA ? resolve(process.env.SWEEPS_DATA) : gesturesArchive();
  if (!existsSync(archivePath)) throw new Error(`the gestures archive is not at ${archivePath}: set SWEEPS_DATA`);
  const archive = await serveFile(archivePath);
  const home = mkdtempSync(join(tmpdir(), 'bench-sweep-'));
  const server = await startTestServer(join(home, 'server'));
  const store = join(home, 'artifacts');
  const env: NodeJS.ProcessEnv = { ...server.env, SWEEPS_ARTIFACTS: store, SWEEPS_TRAIN_SLOTS: String(slots) };
  let worker: ReturnType<typeof spawnWorker> | undefined;

  const run = async (client: Client, name: string, set: string[]): Promise<Measured> => {
    const plan = loadPipeline(join(repoRoot, 'pipelines', 'gestures-pooling.yaml'), { dataMirrors: [archive.url], set: [`name=${name}`, ...set] });
    const load = loadavg()[0] ?? 0;
    const t0 = performance.now();
    const { handle } = await startOrAttach(client, loadConfig(), plan);
    const result = (await handle.result()) as SweepResult;
    const wall = (performance.now() - t0) / 1000;
    const trials = (await withStoredResultsOrFail(result, loadConfig({ artifacts: store }))).outputs.train as TrainResult[];
    const step = (s: string) => (result.outputs[s] as StepResultBase | undefined)?.seconds ?? 0;
    return {
      name,
      concurrency: plan.steps.find((st) => st.name === 'train')?.concurrency ?? 0,
      ...(await temporalHops(client, result.sweepId)),
      wall,
      trials,
      training: trials.map((t) => trainingSeconds(store, t)),
      data: step('download') + step('dataset') + step('padding'),
      report: step('report'),
      slots,
      load,
    };
  };

  try {
    worker = spawnWorker(env, ['--slots', String(slots), '--identity', 'bench-sweep']);
    const w = worker;
    await waitFor('the worker to serve', async () => (w.output().includes(' serving ') ? true : undefined), 120_000);
    if (values.only !== 'trials') print(await run(server.client, 'bench-sweep-study', concurrency(10)));
    if (values.only !== 'study') {
      const n = Number(values.trials);
      const seeds = Array.from({ length: Math.ceil(n / 2) }, (_, i) => i + 1).join(', ');
      print(
        await run(server.client, 'bench-sweep-trials', [
          `steps.train.matrix.seed=[${seeds}]`,
          'steps.train.with.epochs=1',
          `steps.train.with.train_batches=${values['train-batches']}`,
          'steps.train.with.valid_batches=2',
          ...concurrency(2 * Math.ceil(n / 2)),
        ]),
      );
    }
  } finally {
    if (worker) {
      worker.kill('SIGTERM');
      await untilExit(worker);
    }
    await server.stop();
    await archive.close();
    rmSync(home, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
