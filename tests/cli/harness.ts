import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../client/config';
import { stopEmbeddedServer } from '../../client/server';
import { freePort, GESTURES_MD5, gesturesArchive, repoRoot } from '../helpers/fixtures';

/** The real CLI, as a user runs it: its own process, its own exit code. */
export const cliPath = join(repoRoot, 'dist', 'cli', 'main.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number>;
}

/** Starts the CLI in the background (for `watch`, a worker, a sweep to interrupt). */
export function startCli(args: string[], env: NodeJS.ProcessEnv): CliProcess {
  const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, ...env }, cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

export async function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  const run = startCli(args, env);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** The output of a `--json` command, or a failure that shows what the command said. */
export function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`expected JSON on stdout (exit ${run.code}):\n${run.stdout}\n--- stderr:\n${run.stderr}`);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `probe` returns a value, or fails after the timeout naming what it waited for. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(300);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

export interface Cluster {
  home: string;
  env: NodeJS.ProcessEnv;
  ports: { server: number; ui: number };
  client: Client;
  /** A `sweeps worker` process serving both queues (2 training slots). */
  worker: CliProcess;
  stop(): Promise<void>;
}

/**
 * An embedded Temporal server on free ports with a temporary SWEEPS_HOME, started with
 * `sweeps server start`, and a `sweeps worker` process: what a user has after two commands.
 */
export async function startCluster(prefix: string): Promise<Cluster> {
  const home = mkdtempSync(join(tmpdir(), prefix));
  const ports = { server: await freePort(), ui: await freePort() };
  const env: NodeJS.ProcessEnv = {
    SWEEPS_HOME: home,
    SWEEPS_SERVER_PORT: String(ports.server),
    SWEEPS_UI_PORT: String(ports.ui),
    SWEEPS_TRAIN_SLOTS: '2',
    TEMPORAL_ADDRESS: '',
  };
  const server = await runCli(['server', 'start'], env);
  if (server.code !== 0) throw new Error(`sweeps server start failed: ${server.stderr}`);
  const worker = startCli(['worker'], env);
  await waitFor('the worker to start', async () => (worker.stderr().includes('serving io + train') ? true : undefined), 60_000);
  const connection = await Connection.connect({ address: `127.0.0.1:${ports.server}` });
  return {
    home,
    env,
    ports,
    client: new Client({ connection }),
    worker,
    async stop() {
      worker.child.kill('SIGINT');
      await worker.exited;
      await connection.close();
      await stopEmbeddedServer(loadConfig({ home }));
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** A small pipeline on the real archive: `limit: 200` sequences, trials of 1 epoch of 2 batches. */
export function tinyPipeline(name: string, train: string, options: { trainWith?: string; limit?: number } = {}): string {
  return `name: ${name}
steps:
  download: { uses: download, with: { urls: ["file://${gesturesArchive()}"], md5: ${GESTURES_MD5} } }
  dataset: { uses: dataset, needs: [download], with: { limit: ${options.limit ?? 200} } }
  padding: { uses: padding, needs: [dataset] }
  train:
    uses: train
    needs: [padding]
${train}
    with: { ${options.trainWith ?? 'epochs: 1, hidden: 8, train_batches: 2, valid_batches: 1, backend: wasm'} }
  report: { uses: report, needs: [train] }
`;
}

/** Training processes started for this SWEEPS_HOME (an orphan would show here). */
export function trainingProcessesOf(home: string): number[] {
  return readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      return cmdline.includes('train-child') && environ.includes(`SWEEPS_HOME=${home}\0`) ? [Number(entry)] : [];
    } catch {
      return []; // the process ended while we looked
    }
  });
}
