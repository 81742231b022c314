import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { searchAttributeRegistrations } from '../workflows/search-attributes';
import type { SweepsConfig } from './config';
import { obtainTemporalCli } from './temporal-cli';

/** The Temporal server this process talks to, and how it was found. */
export interface TemporalTarget {
  connectionOptions: NativeConnectionOptions;
  namespace: string;
  /** Web UI base URL when known (always for the embedded server). */
  uiUrl?: string;
  kind: 'configured' | 'embedded-started' | 'embedded-reused' | 'sdk-download';
  /** Stops a server that lives only as long as this process (the SDK-download fallback). */
  shutdown?: () => Promise<void>;
}

/**
 * A connection failure that names the address, where it came from, and what to do: the SDK's own
 * message ("Failed to connect before the deadline") names neither.
 */
export function unreachable(target: TemporalTarget, err: unknown): Error {
  const address = target.connectionOptions.address ?? 'localhost:7233';
  const advice =
    target.kind === 'configured'
      ? 'start that server (or check TEMPORAL_ADDRESS / the TEMPORAL_PROFILE settings, TLS and API key included), or unset TEMPORAL_ADDRESS to use the embedded server'
      : 'the embedded server did not answer: see $SWEEPS_HOME/logs, or run `sweeps server stop` and try again';
  return new Error(`cannot reach the Temporal server at ${address}: ${(err as Error).message} (${advice})`, { cause: err });
}

/**
 * With a Temporal address configured (`TEMPORAL_ADDRESS`, or a profile of the SDK's standard
 * environment configuration, TLS and API key included) uses that server and starts nothing.
 * Otherwise starts, or reuses, the embedded dev server with its Web UI on 127.0.0.1, persisting
 * to a file in the state folder so that history survives a restart.
 */
export async function resolveTemporal(config: SweepsConfig, say: (line: string) => void): Promise<TemporalTarget> {
  const configured = loadClientConnectConfig();
  if (configured.connectionOptions.address) {
    return {
      connectionOptions: configured.connectionOptions,
      namespace: configured.namespace ?? 'default',
      uiUrl: process.env.SWEEPS_UI_URL,
      kind: 'configured',
    };
  }
  return ensureEmbeddedServer(config, say);
}

/**
 * The embedded server reads each history shard's transfer queue (what moves a new workflow task,
 * activity task or child start on to matching) at most 20 times a second by default, so every such
 * hop waited about 30–40 ms: a trial makes six of them, and a sweep of short trials spent most of
 * its time there. A single user's server can read it whenever a task is written. Measured by
 * `npm run bench:sweep` (60 one-epoch trials, two slots): 13.2 s → 6.2–8.5 s, hops per trial
 * 280 → 80–130 ms. Reads stay event-driven: an idle server does not poll faster. docker-compose.yml
 * gives its server the same values (deploy/temporal-dynamic-config.yaml; a test keeps them equal).
 *
 * Its SQLite file ran in SQLite's default rollback-journal mode with `synchronous=FULL`: every
 * write of the server (a history event, a task, a visibility row) created, synced and deleted a
 * journal, three to four fsyncs of about 2 ms each here, one write after another. With a
 * write-ahead log and `synchronous=NORMAL` a commit is an append to the log, synced at its
 * checkpoints. A crash of the server (or of anything else but the operating system) loses nothing;
 * a power cut or kernel crash can lose the last commits, never the file's consistency, which is
 * the trade a single user's development server should make (the CLI's own default keeps all of it
 * in memory). Measured by `npm run bench:sweep` (default study, two slots, runs alternating with
 * the old setting under the same shared load): remainder, median of 19 runs before and 27 after,
 * 8.5 % → 4.9 % of the wall time, every Temporal dispatch 10–35 ms → 2 ms. (The compose file's
 * server keeps its data in PostgreSQL: this is the embedded server's alone.)
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, number>> = {
  'history.transferProcessorMaxPollRPS': 1000,
  'history.visibilityProcessorMaxPollRPS': 1000,
};
const DEV_SERVER_SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'];

/** The dev server's tuning arguments, with `extra` dynamic config values (a test's small blob limit) after the project's. */
function devServerTuning(extra: Readonly<Record<string, number>>): string[] {
  return [
    ...Object.entries({ ...DEV_SERVER_DYNAMIC_CONFIG, ...extra }).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${value}`]),
    ...DEV_SERVER_SQLITE_PRAGMAS.flatMap((pragma) => ['--sqlite-pragma', pragma]),
  ];
}

/**
 * `dynamicConfig`: more dynamic config values for a server this call starts (tests start one with a
 * small `limit.blobSize.error`); a server already running keeps its own.
 */
export async function ensureEmbeddedServer(
  config: SweepsConfig,
  say: (line: string) => void,
  dynamicConfig: Readonly<Record<string, number>> = {},
): Promise<TemporalTarget> {
  const { ip, port, uiPort } = config.server;
  const address = `${ip}:${port}`;
  const uiUrl = `http://${ip}:${uiPort}`;
  const base = { connectionOptions: { address }, namespace: 'default', uiUrl };
  if (await portOpen(ip, port)) {
    await waitForFrontend(address, 30_000);
    return { ...base, kind: 'embedded-reused' };
  }

  const cli = await obtainTemporalCli(say);
  if (!cli) return startWithSdkDownload(config, say, dynamicConfig);

  mkdirSync(join(config.home, 'logs'), { recursive: true });
  const log = openSync(join(config.home, 'logs', 'temporal-server.log'), 'a');
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--db-filename',
    join(config.home, 'temporal.db'),
    '--log-level',
    'warn',
    ...devServerTuning(dynamicConfig),
    ...searchAttributeRegistrations.flatMap((a) => ['--search-attribute', `${a.name}=${a.type}`]),
  ];
  // Detached: the server (and its UI) outlives this command, so the user can inspect history after.
  const child = spawn(cli, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  writeFileSync(serverPidFile(config), String(child.pid));
  say(`temporal: started the embedded dev server (pid ${child.pid}) on ${address}, Web UI ${uiUrl}`);
  await waitForFrontend(address, 60_000);
  return { ...base, kind: 'embedded-started' };
}

async function startWithSdkDownload(
  config: SweepsConfig,
  say: (line: string) => void,
  dynamicConfig: Readonly<Record<string, number>>,
): Promise<TemporalTarget> {
  say('temporal: starting a dev server through the Temporal SDK download (it lives as long as this command)…');
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      ip: config.server.ip,
      port: config.server.port,
      ui: true,
      uiPort: config.server.uiPort,
      dbFilename: join(config.home, 'temporal.db'),
      extraArgs: devServerTuning(dynamicConfig),
      searchAttributes: searchAttributeRegistrations.map((a) => ({ name: a.name, type: a.type.toUpperCase() as never })),
    },
  });
  return {
    connectionOptions: { address: env.address },
    namespace: env.namespace ?? 'default',
    uiUrl: `http://${config.server.ip}:${config.server.uiPort}`,
    kind: 'sdk-download',
    shutdown: () => env.teardown(),
  };
}

export function serverPidFile(config: SweepsConfig): string {
  return join(config.home, 'temporal-server.pid');
}

/** Stops the embedded server this project started (if any). Returns whether one was stopped. */
export async function stopEmbeddedServer(config: SweepsConfig): Promise<boolean> {
  let pid: number;
  try {
    pid = Number(readFileSync(serverPidFile(config), 'utf8'));
  } catch {
    return false;
  }
  rmSync(serverPidFile(config), { force: true });
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(pid, 'SIGKILL');
  return true;
}

export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitForFrontend(address: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        await connection.workflowService.getSystemInfo({});
        // The dev server answers before its default namespace is ready; wait for that too.
        await connection.workflowService.describeNamespace({ namespace: 'default' });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`the Temporal server at ${address} did not answer within ${timeoutMs / 1000} s: ${(last as Error)?.message}`);
}

/**
 * Registers the project's search attributes where they are missing (an external server, or a dev
 * server started by someone else), so that sweeps and trials can be filtered in the UI.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set(Object.keys({ ...existing.customAttributes, ...existing.systemAttributes }));
  const types = { Keyword: 2, Int: 3, Double: 4 } as const; // temporal.api.enums.v1.IndexedValueType
  const missing = searchAttributeRegistrations.filter((a) => !known.has(a.name));
  if (missing.length === 0) return;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((a) => [a.name, types[a.type]])),
  });
}
