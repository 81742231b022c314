import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTemporalCli } from '../../client/temporal-cli';
import { freePort, repoRoot } from '../helpers/fixtures';
import { spawnWorker, startTestServer, untilExit, waitFor } from '../helpers/processes';
import { testIfAvailable } from '../helpers/required';
import { interpolate, parseCompose, composeText, record, service, serviceEnvironment } from './compose-file';

/**
 * The parts of docker-compose.yml that run code of their own, run here without Docker: the two
 * one-shot jobs' scripts, exactly as the file writes them, against a real PostgreSQL with the
 * Temporal server's own sql tool and against a real Temporal server with the Temporal CLI; and
 * the workers' healthcheck against a real `sweeps worker`. Only the container boundary differs:
 * host names become 127.0.0.1 and the images' tool paths become this machine's.
 */

const compose = interpolate(parseCompose(composeText()), {});
const serverVersion = /^temporalio\/server:(.+)$/.exec(String(service(compose, 'temporal').image))![1]!;

const goModCache = spawnSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).stdout?.trim() ?? '';
const schemaDir = join(goModCache, `go.temporal.io/server@v${serverVersion}`, 'schema', 'postgresql', 'v12');
const clusterTools = process.env.SWEEPS_CLUSTER_TOOLS ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'durable-sweeps', 'cluster');
const sqlTool = process.env.SWEEPS_TEMPORAL_SQL ?? join(clusterTools, `temporal-v${serverVersion}`, 'sql');
const pgBin = process.env.SWEEPS_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const temporalCli = (() => {
  try {
    return findTemporalCli();
  } catch {
    return undefined;
  }
})();

const needs = {
  'PostgreSQL, the Temporal sql tool and schema files': () =>
    existsSync(join(pgBin, 'initdb')) && existsSync(sqlTool) && existsSync(schemaDir)
      ? undefined
      : `needs PostgreSQL's binaries (${pgBin}), the sql tool (${sqlTool}) and the schema files (${schemaDir}): run scripts/setup-cluster-tools.sh`,
  'the Temporal CLI': () => (temporalCli ? undefined : 'needs the Temporal CLI: run `npm run setup`'),
};

const gates = new Map<keyof typeof needs, jest.It>();
/** `test` when the tools are there (tests/helpers/required.ts); decided once per need. */
function testWith(need: keyof typeof needs): jest.It {
  const gate = gates.get(need) ?? testIfAvailable(need, needs[need]());
  gates.set(need, gate);
  return gate;
}

/** A folder of symlinks that gives this machine's binaries the names the images have. */
function toolsOnPath(dir: string, tools: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(tools)) symlinkSync(target, join(dir, name));
  return `${dir}:${process.env.PATH ?? ''}`;
}

/** Runs a one-shot service's script as its container would: its entrypoint, its command, its environment. */
function runJob(name: string, overrides: Record<string, string>): SpawnSyncReturns<string> {
  const job = service(compose, name);
  const env = serviceEnvironment(job);
  for (const key of Object.keys(overrides).filter((k) => k !== 'PATH')) {
    if (!(key in env)) throw new Error(`services.${name}.environment has no ${key} any more: update this test`);
  }
  const [shell, ...flags] = job.entrypoint as string[];
  const [script] = job.command as string[];
  return spawnSync(shell!, [...flags, script!], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env, ...overrides } });
}

describe('the temporal-schema job', () => {
  let dir = '';
  let port = 0;
  // PostgreSQL refuses to run as root: under root, the private cluster belongs to the postgres user.
  const owner = (() => {
    if (process.getuid?.() !== 0) return {};
    const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    return { uid: id('-u'), gid: id('-g') };
  })();
  const pg = (tool: string, args: string[]) => spawnSync(join(pgBin, tool), args, { ...owner, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  const psql = (db: string, sql: string) =>
    spawnSync(join(pgBin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'temporal', '-d', db, '-tAc', sql], { encoding: 'utf8' }).stdout.trim();

  beforeAll(async () => {
    if (needs['PostgreSQL, the Temporal sql tool and schema files']() !== undefined) return;
    dir = mkdtempSync(join(tmpdir(), 'sweeps-compose-pg-'));
    const data = join(dir, 'data');
    mkdirSync(data, { mode: 0o700 });
    if (owner.uid !== undefined) {
      chmodSync(dir, 0o755);
      chownSync(data, owner.uid, owner.gid!);
    }
    // The image's POSTGRES_USER is a superuser named temporal; trust stands in for its password.
    const init = pg('initdb', ['-D', data, '-U', 'temporal', '--auth=trust', '--no-sync', '--no-instructions']);
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.error?.message}`);
    port = await freePort();
    const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off`;
    const start = pg('pg_ctl', ['-D', data, '-l', join(data, 'postgres.log'), '-w', '-o', options, 'start']);
    if (start.status !== 0) throw new Error(`pg_ctl start failed: ${start.stderr || start.error?.message}`);
  }, 60_000);

  afterAll(() => {
    if (!dir) return;
    pg('pg_ctl', ['-D', join(dir, 'data'), '-m', 'fast', '-w', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  });

  const latest = (store: string) =>
    readdirSync(join(schemaDir, store, 'versioned'))
      .map((v) => v.replace(/^v/, ''))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
      .at(-1);

  testWith('PostgreSQL, the Temporal sql tool and schema files')(
    'creates both databases at the schema version of the server image, and a second run changes nothing',
    () => {
      const overrides = {
        SQL_HOST: '127.0.0.1',
        SQL_PORT: String(port),
        SCHEMA_DIR: schemaDir,
        PATH: toolsOnPath(join(dir, 'bin'), { 'temporal-sql-tool': sqlTool }),
      };
      const first = runJob('temporal-schema', overrides);
      expect({ status: first.status, tail: first.stderr.slice(-2000) }).toEqual({ status: 0, tail: expect.any(String) });
      expect(first.stdout).toContain('databases temporal and temporal_visibility are up to date');
      expect(psql('temporal', 'SELECT curr_version FROM schema_version')).toBe(latest('temporal'));
      expect(psql('temporal_visibility', 'SELECT curr_version FROM schema_version')).toBe(latest('visibility'));
      expect(psql('temporal', "SELECT count(*) FROM information_schema.tables WHERE table_name = 'executions'")).toBe('1');
      expect(psql('temporal_visibility', "SELECT count(*) FROM information_schema.tables WHERE table_name = 'executions_visibility'")).toBe('1');

      const again = runJob('temporal-schema', overrides);
      expect({ status: again.status, tail: again.stderr.slice(-2000) }).toEqual({ status: 0, tail: expect.any(String) });
      expect(psql('temporal', 'SELECT curr_version FROM schema_version')).toBe(latest('temporal'));
    },
    120_000,
  );
});

describe('the temporal-namespace job and the workers healthcheck, against a real server', () => {
  let home = '';
  let server: Awaited<ReturnType<typeof startTestServer>> | undefined;
  let address = '';

  beforeAll(async () => {
    if (needs['the Temporal CLI']() !== undefined) return;
    home = mkdtempSync(join(tmpdir(), 'sweeps-compose-'));
    server = await startTestServer(home);
    address = `127.0.0.1:${server.env.SWEEPS_SERVER_PORT}`;
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  testWith('the Temporal CLI')(
    'creates the namespace with a week of retention, ends once the frontend serves it, and is a no-op the second time',
    async () => {
      const namespace = 'compose-job-test';
      const overrides = { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace, PATH: toolsOnPath(join(home, 'bin'), { temporal: temporalCli! }) };
      const first = runJob('temporal-namespace', overrides);
      expect({ status: first.status, stderr: first.stderr }).toEqual({ status: 0, stderr: '' });
      expect(first.stdout).toContain(`${namespace} successfully registered`);
      expect(first.stdout).toContain(`temporal-namespace: ${namespace} is served`);
      const described = await server!.client.connection.workflowService.describeNamespace({ namespace });
      expect(Number(described.config?.workflowExecutionRetentionTtl?.seconds)).toBe(7 * 24 * 3600);

      const again = runJob('temporal-namespace', overrides);
      expect(again.status).toBe(0);
      expect(again.stdout).not.toContain('registered');
    },
    120_000,
  );

  const healthcheck = () => record(service(compose, 'worker').healthcheck, 'healthcheck');
  /** The worker service's healthcheck command, run as in the container (WORKDIR is the project root). */
  function checkHealth(env: Record<string, string>): SpawnSyncReturns<string> & { ms: number } {
    const [kind, program, ...args] = healthcheck().test as string[];
    if (kind !== 'CMD' || program !== 'node') throw new Error(`unexpected healthcheck ${JSON.stringify(healthcheck().test)}: update this test`);
    const started = Date.now();
    const run = spawnSync(process.execPath, args, { cwd: repoRoot, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
    return { ...run, ms: Date.now() - started };
  }

  testWith('the Temporal CLI')(
    "the worker healthcheck passes only while this host's worker polls the server",
    async () => {
      const env = { TEMPORAL_ADDRESS: address, SWEEPS_HOME: join(home, 'worker'), SWEEPS_TASK_QUEUE: 'health-io', SWEEPS_TRAIN_QUEUE: 'health-train' };
      const before = checkHealth(env);
      expect(before.status).toBe(1);
      expect(before.stderr).toContain('lists no poller');

      const worker = spawnWorker(env);
      try {
        const healthy = await waitFor('a healthy worker', async () => (checkHealth(env).status === 0 ? true : undefined), 90_000).catch((err: Error) => {
          throw new Error(`${err.message}\nworker output:\n${worker.output()}\nlast check: ${checkHealth(env).stderr}`);
        });
        expect(healthy).toBe(true);
        expect(checkHealth(env).stdout).toMatch(/healthy: .+\/(io|train) polled health-(io|train) \d+ s ago/);
        // Another container's worker (another identity) does not make this one healthy.
        expect(checkHealth({ ...env, SWEEPS_WORKER_IDENTITY: 'some-other-worker' }).status).toBe(1);
      } finally {
        worker.kill('SIGTERM');
        await untilExit(worker);
      }
    },
    150_000,
  );

  testWith('the Temporal CLI')(
    "the worker healthcheck fails within the healthcheck's timeout when the server is unreachable",
    async () => {
      const timeoutS = Number(/^(\d+)s$/.exec(String(healthcheck().timeout))?.[1]);
      const run = checkHealth({ TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`, SWEEPS_HOME: join(home, 'worker') });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain('cannot reach');
      expect(run.ms).toBeLessThan(timeoutS * 1000);
    },
    60_000,
  );
});
