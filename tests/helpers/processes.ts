import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../client/config';
import { ensureEmbeddedServer, stopEmbeddedServer } from '../../client/server';
import { freePort, repoRoot } from './fixtures';

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

/** Runs the real CLI in its own process and collects its output. */
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

/** A worker in its own process (`sweeps worker`), so a test can kill it like a crash would. */
export function spawnWorker(env: NodeJS.ProcessEnv, args: string[] = []): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [cliPath, 'worker', ...args], {
    env: { ...process.env, ...env },
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return Object.assign(child, { output: () => output });
}

export async function untilExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => child.once('exit', resolve));
}

/**
 * An embedded Temporal dev server on free ports with its own state folder, and a client to it;
 * `dynamicConfig`: server settings beyond the project's (e.g. a small `limit.blobSize.error`).
 */
export async function startTestServer(
  home: string,
  dynamicConfig: Readonly<Record<string, number>> = {},
): Promise<{
  env: NodeJS.ProcessEnv;
  client: Client;
  stop: () => Promise<void>;
}> {
  const ports = { port: await freePort(), uiPort: await freePort() };
  const env: NodeJS.ProcessEnv = {
    SWEEPS_HOME: home,
    SWEEPS_SERVER_PORT: String(ports.port),
    SWEEPS_UI_PORT: String(ports.uiPort),
    TEMPORAL_ADDRESS: '',
  };
  const config = loadConfig({ home, server: { ip: '127.0.0.1', ...ports } });
  await ensureEmbeddedServer(config, () => undefined, dynamicConfig);
  const connection = await Connection.connect({ address: `127.0.0.1:${ports.port}` });
  return {
    env,
    client: new Client({ connection }),
    stop: async () => {
      await connection.close();
      await stopEmbeddedServer(config);
    },
  };
}

export type TestServer = Awaited<ReturnType<typeof startTestServer>>;

/**
 * A test server for the enclosing describe block: a temp state folder and an embedded server,
 * started before its tests, stopped (and the folder removed) after them.
 */
export function useTestServer(prefix: string, dynamicConfig: Readonly<Record<string, number>> = {}): { home: string; readonly server: TestServer } {
  const home = mkdtempSync(join(tmpdir(), prefix));
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startTestServer(home, dynamicConfig);
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
  });
  return {
    home,
    get server(): TestServer {
      if (!server) throw new Error('the test server starts in beforeAll');
      return server;
    },
  };
}

/** Whether a process group (a server started detached, with its children) still has a live member. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops a process group: `signal` first, then SIGKILL for whatever is left after `graceMs`. */
export async function stopProcessGroup(pgid: number, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (!groupAlive(pgid)) return;
  process.kill(-pgid, signal);
  for (const deadline = Date.now() + graceMs; Date.now() < deadline && groupAlive(pgid);) await sleep(100);
  if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value (not undefined) or the time runs out. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

/** Training child processes that belong to a test's state folder (orphans would show here). */
export function trainingProcessesOf(home: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmdline.includes('train-child') && environ.includes(`SWEEPS_HOME=${home}`)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

export interface UserStack {
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
export async function startUserStack(prefix: string): Promise<UserStack> {
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
