/**
 * Trials per hour with one and with two worker processes. The same sweep of real trials (the seed
 * study's recipe on the full real data, the default engine, 30 epochs at most with early stopping,
 * every trial submitted at once) runs on a multi-process Temporal cluster with PostgreSQL
 * (tests/helpers/cluster.ts; `--server dev` or missing cluster binaries: the embedded dev server)
 * under each configuration of `sweeps worker` processes × training slots:
 *
 *   1x2  one process with slots = cores (this machine: 2), the default deployment
 *   2x1  two processes with one slot each: the same number of slots, spread over processes
 *   2x2  two processes with the default slots each: twice as many trainings as cores
 *
 * Each run gets a fresh artifact store that already holds the data steps' outputs (copied from a
 * warm-up sweep), so what is timed is training plus Temporal's scheduling, from submission to the
 * sweep's result; the workers are up and polling before the clock starts.
 *
 *   node dist/bench/workers.js [--seeds 6] [--configs 1x2,2x1,2x2] [--rounds 1] [--server cluster|dev]
 *   (the archive: SWEEPS_DATA, else ../shared/data/gestures-dataset.zip)
 */
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import type { TrainResult } from '../activities/types';
import { withStoredResultsOrFail } from '../cli/results';
import { loadConfig } from '../client/config';
import { startOrAttach } from '../client/sweeps';
import { kernel } from '../ml/kernel/load';
import { loadPipeline } from '../pipeline/load';
import type { Plan } from '../pipeline/plan';
import type { SweepResult } from '../workflows/sweep';
import { findClusterTools, startCluster } from '../tests/helpers/cluster';
import { gesturesArchive, repoRoot, serveFile } from '../tests/helpers/fixtures';
import { spawnWorker, startTestServer, untilExit, waitFor } from '../tests/helpers/processes';

interface Layout {
  name: string;
  processes: number;
  slots: number;
}

interface Run {
  layout: Layout;
  seconds: number;
  trials: TrainResult[];
}

/**
 * The seed study itself (pipelines/gestures-pooling.yaml, so its recipe cannot drift from the
 * bench's) under another name, with `seeds` seeds per variant and every trial at once (the workers'
 * slots, not the pipeline, bound what runs in parallel), keeping the steps `keep` accepts.
 */
function studyPlan(name: string, url: string, seeds: number, keep: (uses: string) => boolean): Plan {
  const seedList = Array.from({ length: seeds }, (_, i) => i + 1).join(', ');
  const plan = loadPipeline(join(repoRoot, 'pipelines', 'gestures-pooling.yaml'), {
    dataMirrors: [url],
    set: [`name=${name}`, `steps.train.matrix.seed=[${seedList}]`, `steps.train.concurrency=${2 * seeds}`],
  });
  return { ...plan, steps: plan.steps.filter((step) => keep(step.uses)) };
}

function parseLayout(text: string): Layout {
  const match = /^(\d+)x(\d+)$/.exec(text);
  if (!match) throw new Error(`--configs: "${text}" is not <processes>x<slots>, e.g. 2x1`);
  return { name: text, processes: Number(match[1]), slots: Number(match[2]) };
}

async function main(): Promise<void> {
  const cores = availableParallelism();
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '6' },
      configs: { type: 'string', default: `1x${cores},2x${Math.max(1, cores / 2)},2x${cores}` },
      rounds: { type: 'string', default: '1' },
      server: { type: 'string' },
    },
  });
  const layouts = [...new Set(values.configs.split(','))].map(parseLayout);
  const seeds = Number(values.seeds);
  const tools = values.server === 'dev' ? undefined : findClusterTools().tools;
  if (values.server === 'cluster' && !tools) throw new Error('--server cluster: the cluster binaries are missing (bash scripts/setup-cluster-tools.sh)');
  const archivePath = process.env.SWEEPS_DATA ? resolve(process.env.SWEEPS_DATA) : gesturesArchive();
  if (!existsSync(archivePath)) throw new Error(`the gestures archive is not at ${archivePath}: set SWEEPS_DATA`);
  // Served over loopback HTTP, as a mirror would be.
  const archive = await serveFile(archivePath);
  const home = mkdtempSync(join(tmpdir(), 'bench-workers-'));
  const server = await (tools ? startCluster(tools) : startTestServer(join(home, 'dev-server'))).catch(async (err: unknown) => {
    await archive.close();
    rmSync(home, { recursive: true, force: true });
    throw err;
  });
  const serverName = tools ? 'a multi-process Temporal cluster (4 services + PostgreSQL)' : 'the embedded Temporal dev server';
  const env: NodeJS.ProcessEnv = { SWEEPS_HOME: home, ...server.env };
  const workers: Array<ReturnType<typeof spawnWorker>> = [];

  /** Starts `layout`'s worker processes on `store` and waits until every one polls. */
  const startWorkers = async (layout: Layout, store: string) => {
    for (let i = 1; i <= layout.processes; i++) {
      workers.push(spawnWorker({ ...env, SWEEPS_ARTIFACTS: store }, ['--slots', String(layout.slots), '--identity', `bench-${layout.name}-${i}`]));
    }
    for (const w of workers) await waitFor('a worker to serve', async () => (w.output().includes(' serving ') ? true : undefined), 60_000);
  };
  const stopWorkers = async () => {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(untilExit));
    workers.length = 0;
  };
  // Without the report: what is timed is training plus Temporal's scheduling.
  const sweep = async (client: Client, name: string, trainStep: boolean) => {
    const plan = studyPlan(name, archive.url, seeds, (uses) => uses !== 'report' && (trainStep || uses !== 'train'));
    const { handle } = await startOrAttach(client, loadConfig(), plan);
    return (await handle.result()) as SweepResult;
  };

  try {
    // The data steps once, into a store every run starts from.
    const warm = join(home, 'warm-store');
    await startWorkers({ name: 'warm-up', processes: 1, slots: 1 }, warm);
    await sweep(server.client, 'bench-workers-data', false);
    await stopWorkers();

    const runs: Run[] = [];
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const layout of layouts) {
        const store = join(home, `store-${layout.name}-${round}`);
        cpSync(warm, store, { recursive: true });
        await startWorkers(layout, store);
        // Other work on the machine skews every number: the 1-minute load average shows it.
        const load = loadavg()[0] ?? 0;
        const t0 = performance.now();
        const result = await sweep(server.client, `bench-workers-${layout.name}-r${round}`, true);
        const seconds = (performance.now() - t0) / 1000;
        await stopWorkers();
        const trials = (await withStoredResultsOrFail(result, loadConfig({ artifacts: store }))).outputs.train as TrainResult[];
        rmSync(store, { recursive: true, force: true });
        runs.push({ layout, seconds, trials });
        const perWorker = countBy(trials.map((t) => t.worker));
        console.log(
          `round ${round} ${layout.name}: ${trials.length} trials in ${seconds.toFixed(1)} s = ${perHour(trials.length, seconds).toFixed(0)} trials/h` +
            `  (mean trial ${mean(trials.map((t) => t.seconds)).toFixed(1)} s; trials by worker ${Object.values(perWorker).join('/')}; load before ${load.toFixed(1)})`,
        );
      }
    }

    // The trainers choose their kernel the same way (native build when valid, else WebAssembly).
    const engine = `fused engine, ${kernel().kind} kernel`;
    console.log(`\n${cores} cores, ${serverName}; ${2 * seeds} trials per sweep (last/mean × ${seeds} seeds, full data, the seed study's recipe, ${engine})`);
    const summary = layouts.map((layout) => {
      const mine = runs.filter((r) => r.layout === layout);
      const trials = mine.reduce((n, r) => n + r.trials.length, 0);
      const seconds = mine.reduce((s, r) => s + r.seconds, 0);
      return { layout, rate: perHour(trials, seconds) };
    });
    const baseline = summary[0]!;
    for (const { layout, rate } of summary) {
      const label = `${layout.processes} worker process${layout.processes > 1 ? 'es' : ''} × ${layout.slots} slot${layout.slots > 1 ? 's' : ''}`;
      console.log(`${label.padEnd(28)} ${rate.toFixed(0).padStart(6)} trials/h   ${(rate / baseline.rate).toFixed(2)}× ${baseline.layout.name}`);
    }
  } finally {
    await stopWorkers();
    await server.stop();
    await archive.close();
    rmSync(home, { recursive: true, force: true });
  }
}

const perHour = (trials: number, seconds: number) => (trials * 3600) / seconds;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const countBy = (keys: string[]) => keys.reduce<Record<string, number>>((acc, k) => ({ ...acc, [k]: (acc[k] ?? 0) + 1 }), {});

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
