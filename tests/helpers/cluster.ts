/**
 * A real Temporal cluster without Docker, for tests and benchmarks: a private PostgreSQL 15
 * (persistence and SQL visibility), the schema set up by the server's own sql tool, and the four
 * server services (history, matching, frontend, worker), each in its own process, from a config
 * adapted from the module's `config/development-postgres12.yaml` with loopback ports chosen at
 * run time. `scripts/setup-cluster-tools.sh` builds the binaries.
 *
 * Every process runs in its own process group, and `stop()` (or, as a last resort, this process's
 * exit) kills whole groups, so that no postgres backend or server survives a test. The folder with
 * the config, the database and the logs goes too, unless SWEEPS_KEEP_CLUSTER is set.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { parse, stringify } from 'yaml';
import { ensureSearchAttributes } from '../../client/server';
import { searchAttributeRegistrations } from '../../workflows/search-attributes';
import { freePort, repoRoot } from './fixtures';
import { describeIfAvailable } from './required';

const TEMPORAL_VERSION = 'v1.29.1';
const SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
type Service = (typeof SERVICES)[number];
const SETUP_HINT = 'run `bash scripts/setup-cluster-tools.sh` (builds the Temporal server and its sql tool from the Go module proxy)';

export interface ClusterTools {
  /** The Temporal server binary (`go.temporal.io/server/cmd/server`). */
  server: string;
  /** Its schema tool (`go.temporal.io/server/cmd/tools/sql`). */
  sql: string;
  /** `schema/postgresql/v12` of the server module: versioned schema files for the sql tool. */
  schema: string;
  /** PostgreSQL's bin folder (initdb, postgres, pg_isready, psql). */
  postgres: string;
}

/** Where setup-cluster-tools.sh puts things (or SWEEPS_TEMPORAL_SERVER, …), and what is missing. */
export function findClusterTools(): { tools?: ClusterTools; missing: string[] } {
  const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'durable-sweeps', 'cluster');
  const built = join(process.env.SWEEPS_CLUSTER_TOOLS ?? cache, `temporal-${TEMPORAL_VERSION}`);
  const tools: ClusterTools = {
    server: process.env.SWEEPS_TEMPORAL_SERVER ?? join(built, 'server'),
    sql: process.env.SWEEPS_TEMPORAL_SQL ?? join(built, 'sql'),
    schema: process.env.SWEEPS_TEMPORAL_SCHEMA ?? join(goModCache(), `go.temporal.io/server@${TEMPORAL_VERSION}`, 'schema', 'postgresql', 'v12'),
    postgres: process.env.SWEEPS_PG_BIN ?? '/usr/lib/postgresql/15/bin',
  };
  const missing = [
    tools.server,
    tools.sql,
    join(tools.schema, 'temporal', 'versioned'),
    join(tools.schema, 'visibility', 'versioned'),
    join(tools.postgres, 'initdb'),
    join(tools.postgres, 'postgres'),
    join(tools.postgres, 'psql'),
  ].filter((path) => !existsSync(path));
  return missing.length === 0 ? { tools, missing } : { missing };
}

function goModCache(): string {
  if (process.env.GOMODCACHE) return process.env.GOMODCACHE;
  const go = spawnSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' });
  return go.status === 0 && go.stdout.trim() !== '' ? go.stdout.trim() : join(homedir(), 'go', 'pkg', 'mod');
}

/** `describe` when the cluster's binaries are there (tests/helpers/required.ts says what happens otherwise). */
export function describeWithCluster(name: string, body: (tools: ClusterTools) => void): void {
  const { tools, missing } = findClusterTools();
  const message = tools ? undefined : `the Temporal cluster binaries are missing (${missing.join(', ')}): ${SETUP_HINT}`;
  describeIfAvailable(name, 'the Temporal cluster binaries', message, () => body(tools ?? { server: '', sql: '', schema: '', postgres: '' }));
}

export interface TemporalCluster {
  /** Frontend address (host:port); TEMPORAL_ADDRESS for the project's CLI and workers. */
  address: string;
  namespace: 'default';
  /** Environment that points `sweeps` commands at this cluster (nothing embedded is started). */
  env: NodeJS.ProcessEnv;
  client: Client;
  /** Seconds spent on each phase of the start. */
  timings: { postgres: number; schema: number; services: number; total: number };
  /** Folder with the generated config, the database and every process's log. */
  root: string;
  stop(): Promise<void>;
}

/** Groups still to kill if this process exits before `stop()` (a failed or timed-out test). */
const liveGroups = new Set<number>();
process.once('exit', () => {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
});

export async function startCluster(tools: ClusterTools, say: (line: string) => void = () => undefined): Promise<TemporalCluster> {
  const t0 = performance.now();
  const root = mkdtempSync(join(tmpdir(), 'sweeps-cluster-'));
  mkdirSync(join(root, 'logs'));
  const processes: ChildProcess[] = [];
  let connection: Connection | undefined;
  const stop = async () => {
    await connection?.close().catch(() => undefined);
    // Services first (they hold database connections), then the database.
    const services = processes.filter((p) => !isPostgres(p));
    await Promise.all(services.map((p) => stopGroup(p, 'SIGTERM')));
    await Promise.all(processes.filter(isPostgres).map((p) => stopGroup(p, 'SIGINT')));
    if (process.env.SWEEPS_KEEP_CLUSTER) say(`cluster: kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  };
  try {
    const pg = await startPostgres(tools, root, processes);
    const tPostgres = performance.now();
    await setupSchema(tools, pg.port);
    const tSchema = performance.now();

    const config = await serverConfig(pg.port);
    mkdirSync(join(root, 'config'));
    writeFileSync(join(root, 'config', 'cluster.yaml'), stringify(config.yaml));
    writeFileSync(join(root, 'config', 'dynamic.yaml'), stringify(dynamicConfig));
    // On a fresh database every service tries to write the cluster's metadata record, and all
    // but one fail on the conflict and exit: let history write it, then start the others.
    const [first, ...rest] = SERVICES;
    processes.push(startService(tools, root, first));
    await until('the cluster metadata record', 30_000, processes, root, async () => psql(tools, pg.port, 'SELECT count(*) FROM cluster_metadata_info') === '1');
    for (const service of rest) processes.push(startService(tools, root, service));
    const address = `127.0.0.1:${config.frontendPort}`;
    connection = await untilFrontendAnswers(address, processes, root);
    await prepareNamespace(connection);
    const tServices = performance.now();

    const timings = {
      postgres: (tPostgres - t0) / 1000,
      schema: (tSchema - tPostgres) / 1000,
      services: (tServices - tSchema) / 1000,
      total: (tServices - t0) / 1000,
    };
    say(
      `cluster: Temporal ${TEMPORAL_VERSION} at ${address} (PostgreSQL on ${pg.port}) ready in ${timings.total.toFixed(1)} s ` +
        `(postgres ${timings.postgres.toFixed(1)} s, schema ${timings.schema.toFixed(1)} s, services ${timings.services.toFixed(1)} s)`,
    );
    return {
      address,
      namespace: 'default',
      env: { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'default' },
      client: new Client({ connection, namespace: 'default' }),
      timings,
      root,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- PostgreSQL ----------------------------------------------------------------------------

const PG_ROLE = 'temporal';

/**
 * A throwaway PostgreSQL cluster on a free loopback port, TCP only (no socket file), with
 * durability turned off (the data dies with the test). PostgreSQL refuses to run as root, so under
 * root it runs as the `postgres` system user (or `nobody`) in a data folder owned by that user.
 */
async function startPostgres(tools: ClusterTools, root: string, processes: ChildProcess[]): Promise<{ port: number }> {
  const owner = process.getuid?.() === 0 ? (systemUser('postgres') ?? systemUser('nobody')) : undefined;
  if (process.getuid?.() === 0 && !owner) throw new Error('running as root, and neither a "postgres" nor a "nobody" user exists to run PostgreSQL as');
  const data = join(root, 'pgdata');
  mkdirSync(data, { mode: 0o700 });
  if (owner) {
    chmodSync(root, 0o755); // the database user must reach its data folder
    chownSync(data, owner.uid, owner.gid);
  }
  const asOwner = { ...(owner && { uid: owner.uid, gid: owner.gid }), cwd: root, env: { ...process.env, LC_ALL: 'C' } };
  const initdb = spawnSync(
    join(tools.postgres, 'initdb'),
    ['-D', data, '-U', PG_ROLE, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'],
    { ...asOwner, encoding: 'utf8' },
  );
  if (initdb.status !== 0) throw new Error(`initdb failed (exit ${initdb.status}): ${initdb.stderr || initdb.error?.message}`);

  const port = await freePort();
  const log = join(root, 'logs', 'postgres.log');
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    // Four services with up to 24 connections each, plus the sql tool.
    max_connections: '200',
  };
  const args = ['-D', data, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  processes.push(spawnGroup(join(tools.postgres, 'postgres'), args, log, asOwner, 'postgres'));
  const ready = join(tools.postgres, 'pg_isready');
  await until(`PostgreSQL to accept connections on ${port}`, 30_000, processes, root, async () => {
    const probe = spawnSync(ready, ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', PG_ROLE], { stdio: 'ignore' });
    return probe.status === 0;
  });
  return { port };
}

function systemUser(name: string): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  return uid && gid ? { uid: Number(uid), gid: Number(gid) } : undefined;
}

function psql(tools: ClusterTools, port: number, query: string): string {
  const run = spawnSync(join(tools.postgres, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', PG_ROLE, '-d', 'temporal', '-tAc', query], {
    encoding: 'utf8',
  });
  return run.status === 0 ? run.stdout.trim() : '';
}

/** The server's databases and their schemas at the binary's version, with its own sql tool. */
async function setupSchema(tools: ClusterTools, port: number): Promise<void> {
  const env = { ...process.env, SQL_PLUGIN: 'postgres12', SQL_HOST: '127.0.0.1', SQL_PORT: String(port), SQL_USER: PG_ROLE, SQL_PASSWORD: PG_ROLE };
  const sql = (database: string, ...args: string[]) =>
    promisify(execFile)(tools.sql, ['--db', database, ...args], { env }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`temporal sql tool ${args[0]} on ${database} failed: ${err.stderr || err.message}`);
    });
  await Promise.all(
    [
      ['temporal', 'temporal'],
      ['temporal_visibility', 'visibility'],
    ].map(async ([database, schema]) => {
      await sql(database!, 'create-database', '--defaultdb', 'postgres');
      await sql(database!, 'setup-schema', '-v', '0.0');
      await sql(database!, 'update-schema', '-d', join(tools.schema, schema!, 'versioned'));
    }),
  );
}

// ---- Temporal server -----------------------------------------------------------------------

/**
 * The server's config: `development-postgres12.yaml` with every port chosen free at run time, no
 * metrics or pprof listeners (four processes would fight over one port), and the public client
 * (what the system worker service dials) pointed at our frontend.
 */
async function serverConfig(postgresPort: number): Promise<{ yaml: unknown; frontendPort: number }> {
  const rpc = async () => ({
    grpcPort: await freePort(),
    // The cluster_membership table keeps this port in a SMALLINT: above 32767 a service cannot
    // join the ring (`value "56934" is out of range for type smallint`), and the OS hands out
    // free ports from its ephemeral range, far above that.
    membershipPort: await freePortBelow(32768),
    bindOnLocalHost: true,
  });
  const services = {
    frontend: { rpc: { ...(await rpc()), httpPort: await freePort() } },
    matching: { rpc: await rpc() },
    history: { rpc: await rpc() },
    worker: { rpc: await rpc() },
  };
  const frontend = `127.0.0.1:${services.frontend.rpc.grpcPort}`;
  const datastore = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `127.0.0.1:${postgresPort}`,
      connectProtocol: 'tcp',
      user: PG_ROLE,
      password: PG_ROLE,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const yaml = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: 4,
      datastores: { 'postgres-default': datastore('temporal', 20), 'postgres-visibility': datastore('temporal_visibility', 4) },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services,
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: frontend,
          httpAddress: `127.0.0.1:${services.frontend.rpc.httpPort}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    publicClient: { hostPort: frontend },
    dynamicConfigClient: { filepath: 'config/dynamic.yaml', pollInterval: '10s' },
  };
  return { yaml, frontendPort: services.frontend.rpc.grpcPort };
}

/**
 * Dynamic config: the module's development-sql.yaml essentials, what the dev server sets, and the
 * file docker-compose.yml gives its server (so a real server of the pinned version reads it here).
 */
const dynamicConfig = {
  ...(parse(readFileSync(join(repoRoot, 'deploy', 'temporal-dynamic-config.yaml'), 'utf8')) as Record<string, unknown>),
  'limit.maxIDLength': [{ value: 255 }],
  // Search attributes registered by a client are usable at once (the dev server does the same),
  // instead of after the cache's refresh, so a sweep can start right after registering them.
  'system.forceSearchAttributesCacheRefreshOnRead': [{ value: true }],
  'frontend.persistenceMaxQPS': [{ value: 10000 }],
  'history.persistenceMaxQPS': [{ value: 45000 }],
};

function startService(tools: ClusterTools, root: string, service: Service): ChildProcess {
  const args = ['--root', root, '--config', 'config', '--env', 'cluster', '--allow-no-auth', 'start', '--service', service];
  return spawnGroup(tools.server, args, join(root, 'logs', `${service}.log`), { cwd: root, env: process.env }, service);
}

async function untilFrontendAnswers(address: string, processes: ChildProcess[], root: string): Promise<Connection> {
  let connection: Connection | undefined;
  await until(`the frontend at ${address} to answer`, 60_000, processes, root, async () => {
    connection ??= await Connection.connect({ address, connectTimeout: 1000 });
    await connection.workflowService.getSystemInfo({});
    return true;
  });
  return connection!;
}

/**
 * The `default` namespace (the full server, unlike the dev server, starts with none) and the
 * project's search attributes, registered the way a user's server gets them: through the
 * project's own `ensureSearchAttributes` on the operator API, which the SQL visibility store
 * serves from its pre-allocated custom columns. Ready when a visibility query on every one works.
 */
async function prepareNamespace(connection: Connection): Promise<void> {
  await connection.workflowService
    .registerNamespace({ namespace: 'default', workflowExecutionRetentionPeriod: msToTs('3 days') })
    .catch((err: { code?: number }) => {
      if (err.code !== 6) throw err; // ALREADY_EXISTS
    });
  await ensureSearchAttributes(connection, 'default');
  const client = new Client({ connection, namespace: 'default' });
  const query = searchAttributeRegistrations.map((a) => `${a.name} ${a.type === 'Keyword' ? '= "probe"' : '> 0'}`).join(' AND ');
  let last: unknown;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(200)) {
    try {
      await client.workflow.count(query);
      return;
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`the namespace "default" did not accept a query on the search attributes: ${(last as Error)?.message}`);
}

// ---- processes and ports -------------------------------------------------------------------

const labels = new WeakMap<ChildProcess, string>();
const isPostgres = (p: ChildProcess) => labels.get(p) === 'postgres';

/** A child in a process group of its own (its pid is the group id), output to a log file. */
function spawnGroup(
  command: string,
  args: string[],
  logFile: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number },
  label: string,
): ChildProcess {
  const log = openSync(logFile, 'a'); // inherited as an open descriptor: the child needs no rights on the file
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  labels.set(child, label);
  if (child.pid !== undefined) {
    const pgid = child.pid;
    liveGroups.add(pgid);
    child.once('exit', () => liveGroups.delete(pgid));
  }
  return child;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone already
  }
}

/** Asks a group to stop, then kills what is left of it; resolves when its leader has exited. */
async function stopGroup(child: ChildProcess, signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
  if (child.pid === undefined) return;
  const pgid = child.pid;
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r));
  signalGroup(pgid, signal);
  const timer = setTimeout(() => signalGroup(pgid, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  // Children of the leader (postgres backends) may outlive it by a moment.
  signalGroup(pgid, 'SIGKILL');
  liveGroups.delete(pgid);
}

/** Polls `probe` until it returns true; fails at once, with the log, when one of the processes died. */
async function until(what: string, timeoutMs: number, processes: ChildProcess[], root: string, probe: () => Promise<boolean>): Promise<void> {
  let last: unknown;
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
    const dead = processes.find((p) => p.exitCode !== null || p.signalCode !== null);
    if (dead) {
      const label = labels.get(dead) ?? 'a process';
      throw new Error(`cluster: ${label} exited (${dead.exitCode ?? dead.signalCode}) while waiting for ${what}:\n${tail(join(root, 'logs', `${label}.log`))}`);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`cluster: timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A free loopback port in [20000, limit): random picks, each checked by binding it. */
async function freePortBelow(limit: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * (limit - 20_000));
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port below ${limit} on 127.0.0.1`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
