import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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

/** Runs the real CLI in its own process and collects its output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, ...env }, cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
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

/** An embedded Temporal dev server on free ports with its own state folder, and a client to it. */
export async function startTestServer(home: string): Promise<{
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
  await ensureEmbeddedServer(config, () => undefined);
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
