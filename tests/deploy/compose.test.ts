import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../../client/server';
import { loadPipeline } from '../../pipeline/load';
import { repoRoot } from '../helpers/fixtures';
import { cliPath } from '../helpers/processes';
import { testIfAvailable } from '../helpers/required';
import {
  composeSchemaFile,
  composeSchemaValidator,
  composeText,
  deploymentProblems,
  interpolate,
  longRunning,
  mounts,
  oneShots,
  parseCompose,
  record,
  service,
  serviceEnvironment,
  services,
  substitute,
  type Doc,
  type Env,
} from './compose-file';
import { finalStageEnv, parseDockerfile } from './dockerfile';

/**
 * docker-compose.yml, checked where no Docker engine runs: against the official Compose schema,
 * against the rules a deployment must keep that the schema cannot express, and against the
 * project it deploys (commands, pipelines, paths). The one-shot jobs' scripts and the worker's
 * healthcheck run for real in compose-services.test.ts.
 */

const raw = parseCompose(composeText());
/** The file as `docker compose up` with no variables set sees it. */
const defaults = interpolate(raw, {});
const mutated = (change: (doc: Doc) => void): Doc => {
  const copy = structuredClone(defaults);
  change(copy);
  return copy;
};

const schema = composeSchemaFile();
const schemaTest = testIfAvailable('the Compose schema', schema.file ? undefined : schema.missing);
const validate = schema.file ? composeSchemaValidator(schema.file) : () => [];

describe('docker-compose.yml against the Compose specification schema', () => {
  schemaTest('is valid as written (${VARIABLES} in place)', () => {
    expect(validate(raw)).toEqual([]);
  });

  schemaTest('is valid after substitution, with defaults and with every variable set', () => {
    expect(validate(defaults)).toEqual([]);
    const env: Env = { SWEEPS_WORKERS: '5', SWEEPS_UI_PORT: '9233', SWEEPS_SERVER_PORT: '9234', SWEEPS_TRAIN_SLOTS: '1', SWEEPS_DATA_DIR: '/srv/data' };
    expect(validate(interpolate(raw, env))).toEqual([]);
  });

  schemaTest('rejects a copy with a misspelt key (the schema is really applied)', () => {
    const broken = mutated((doc) => {
      const worker = service(doc, 'worker');
      worker.healthcheck = { ...record(worker.healthcheck, 'healthcheck'), intervall: '30s' };
    });
    expect(validate(broken)).toContain('/services/worker/healthcheck must NOT have additional properties (intervall)');
  });

  /** Everything this file checks, from the text: the schema before and after substitution, and the rules. */
  const problemsOfText = (text: string) => {
    const doc = parseCompose(text);
    const substituted = interpolate(doc, {});
    return [...validate(doc), ...validate(substituted), ...deploymentProblems(substituted)];
  };
  const edit = (text: string, from: string, to: string) => {
    expect(text).toContain(from);
    return text.replace(from, to);
  };

  schemaTest('fails an edited copy of the file: a port off loopback, a misspelt key', () => {
    const text = composeText();
    expect(problemsOfText(text)).toEqual([]);
    const open = edit(text, '"127.0.0.1:${SWEEPS_SERVER_PORT:-7233}:7233"', '"${SWEEPS_SERVER_PORT:-7233}:7233"');
    expect(problemsOfText(open)).toEqual(['services.temporal.ports[0]: "7233:7233" is published on all interfaces, not 127.0.0.1 only']);
    const typo = edit(text, '    stop_grace_period: 30s', '    stop_grace_priod: 30s');
    expect(problemsOfText(typo)).toContain('/services/worker must NOT have unevaluated properties (stop_grace_priod)');
  });

  schemaTest('rejects a copy whose restart policy or depends_on has the wrong shape', () => {
    const broken = mutated((doc) => {
      service(doc, 'temporal').restart = ['unless-stopped'];
      service(doc, 'worker').depends_on = { temporal: { condition: 'service_healthy', wait: true } };
    });
    const errors = validate(broken);
    expect(errors).toContain('/services/temporal/restart must be string');
    expect(errors).toContain('/services/worker/depends_on/temporal must NOT have additional properties (wait)');
  });
});

describe('docker-compose.yml as a deployment', () => {
  it('keeps every rule: loopback ports, restart policies and healthchecks, waiting dependencies, scalable workers, one artifact store', () => {
    expect(deploymentProblems(defaults)).toEqual([]);
  });

  it('has the expected shape: four long-running services, two one-shot setup jobs, the CLI on demand', () => {
    expect(longRunning(defaults).sort()).toEqual(['postgresql', 'temporal', 'temporal-ui', 'worker']);
    expect([...oneShots(defaults)].sort()).toEqual(['temporal-namespace', 'temporal-schema']);
    expect(service(defaults, 'cli').profiles).toEqual(['cli']);
  });

  it.each([
    [
      'a port published on all interfaces',
      (d: Doc) => (service(d, 'temporal').ports = ['7233:7233']),
      'services.temporal.ports[0]: "7233:7233" is published on all interfaces, not 127.0.0.1 only',
    ],
    [
      'a port without a host address',
      (d: Doc) => (service(d, 'temporal-ui').ports = [8080]),
      'services.temporal-ui.ports[0]: 8080 is published on all interfaces, not 127.0.0.1 only',
    ],
    [
      'a long-running service without restart policy',
      (d: Doc) => delete service(d, 'temporal-ui').restart,
      'services.temporal-ui: a long-running service needs a restart policy (unless-stopped, always or on-failure), has undefined',
    ],
    [
      'a long-running service without healthcheck',
      (d: Doc) => delete service(d, 'postgresql').healthcheck,
      'services.postgresql: a long-running service needs a healthcheck',
    ],
    [
      'waiting for a service without healthcheck',
      (d: Doc) => delete service(d, 'temporal').healthcheck,
      'services.worker.depends_on.temporal: service_healthy, but temporal has no healthcheck',
    ],
    [
      'a dependency that only waits for a start',
      (d: Doc) => (service(d, 'temporal-ui').depends_on = ['temporal']),
      'services.temporal-ui.depends_on.temporal: waits only for the container to start; use service_healthy or service_completed_successfully',
    ],
    [
      'a dependency on a missing service',
      (d: Doc) => (service(d, 'worker').depends_on = { tempral: { condition: 'service_healthy' } }),
      'services.worker.depends_on.tempral: no such service',
    ],
    [
      'a one-shot job that restarts',
      (d: Doc) => (service(d, 'temporal-schema').restart = 'unless-stopped'),
      'services.temporal.depends_on.temporal-schema: waits for temporal-schema to finish, but its restart policy "unless-stopped" restarts it',
    ],
    ['a worker without replicas', (d: Doc) => delete service(d, 'worker').deploy, 'services.worker.deploy.replicas: expected a positive integer, got null'],
    [
      'replicas with a fixed container name',
      (d: Doc) => (service(d, 'worker').container_name = 'worker'),
      'services.worker: replicas cannot share a fixed container_name or hostname',
    ],
    [
      'a fixed worker identity',
      (d: Doc) => (record(service(d, 'worker').environment, 'env').SWEEPS_WORKER_IDENTITY = 'w'),
      'services.worker.environment.SWEEPS_WORKER_IDENTITY: fixed, so every replica would claim the same identity',
    ],
    [
      'a worker without the artifact volume',
      (d: Doc) => (service(d, 'worker').volumes = []),
      'services.worker: SWEEPS_ARTIFACTS (/artifacts) is not a mounted volume',
    ],
    [
      'a CLI with its own artifact store',
      (d: Doc) => (service(d, 'cli').volumes = ['other:/artifacts']),
      'services.cli.volumes: named volume "other" is not declared under volumes:',
    ],
    [
      'a worker pointed at no server',
      (d: Doc) => (record(service(d, 'worker').environment, 'env').TEMPORAL_ADDRESS = 'localhost:7233'),
      'services.worker.environment.TEMPORAL_ADDRESS: "localhost:7233" names no server service of this file',
    ],
  ])('flags a copy with %s', (_name, change, problem) => {
    expect(deploymentProblems(mutated(change))).toContain(problem);
  });

  it('runs SWEEPS_WORKERS workers, 2 by default', () => {
    expect(record(service(defaults, 'worker').deploy, 'deploy').replicas).toBe('2');
    expect(record(service(interpolate(raw, { SWEEPS_WORKERS: '6' }), 'worker').deploy, 'deploy').replicas).toBe('6');
  });

  it('publishes the frontend and the Web UI on the ports the embedded server uses, overridable the same way', () => {
    expect(service(defaults, 'temporal').ports).toEqual(['127.0.0.1:7233:7233']);
    expect(service(defaults, 'temporal-ui').ports).toEqual(['127.0.0.1:8233:8080']);
    const moved = interpolate(raw, { SWEEPS_SERVER_PORT: '17233', SWEEPS_UI_PORT: '18233' });
    expect(service(moved, 'temporal').ports).toEqual(['127.0.0.1:17233:7233']);
    expect(serviceEnvironment(service(moved, 'worker')).SWEEPS_UI_URL).toBe('http://127.0.0.1:18233');
  });

  it('pins one Temporal server version for the server and its admin tools, and no image floats', () => {
    const images = Object.values(services(defaults)).map((s) => String(s.image));
    for (const image of images) expect(image).toMatch(/:[\w.-]+$/);
    expect(images.filter((i) => /:latest$/.test(i))).toEqual([]);
    const server = /^temporalio\/server:(\d+\.\d+\.\d+)$/.exec(String(service(defaults, 'temporal').image))?.[1];
    expect(server).toBeDefined();
    for (const job of ['temporal-schema', 'temporal-namespace'])
      expect(String(service(defaults, job).image)).toMatch(new RegExp(`^temporalio/admin-tools:${server!.replace(/\./g, '\\.')}\\b`));
    expect(images.some((i) => i.startsWith('temporalio/auto-setup'))).toBe(false);
  });
});

describe("the Temporal server's dynamic config", () => {
  const server = service(defaults, 'temporal');
  const path = serviceEnvironment(server).DYNAMIC_CONFIG_FILE_PATH;
  const version = /^temporalio\/server:(.+)$/.exec(String(server.image))![1]!;
  const gomod = spawnSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).stdout?.trim() ?? '';
  const template = join(gomod, `go.temporal.io/server@v${version}`, 'config', 'docker.yaml');
  const templateTest = testIfAvailable(
    "the server's config template",
    gomod && existsSync(template) ? undefined : `${template} is missing: run scripts/setup-cluster-tools.sh`,
  );

  it('is deploy/temporal-dynamic-config.yaml, mounted read-only at the path DYNAMIC_CONFIG_FILE_PATH names', () => {
    expect(path).toBe('/etc/temporal/config/dynamicconfig/docker.yaml');
    expect(mounts(server)).toContainEqual({ source: './deploy/temporal-dynamic-config.yaml', target: path, readOnly: true });
  });

  it('sets what the embedded dev server sets, as dynamic config entries', () => {
    const file = parse(readFileSync(join(repoRoot, 'deploy', 'temporal-dynamic-config.yaml'), 'utf8')) as Record<string, unknown>;
    const values = Object.fromEntries(Object.entries(file).map(([key, entries]) => [key, (entries as Array<{ value: unknown }>)[0]?.value]));
    expect(values).toEqual(DEV_SERVER_DYNAMIC_CONFIG);
    for (const entries of Object.values(file)) expect(entries).toEqual([{ value: expect.any(Number) }]);
  });

  templateTest("is where the pinned server image's config template reads it (and its default path too)", () => {
    // The template's line: filepath: "{{ default "<default path>" (env "DYNAMIC_CONFIG_FILE_PATH") }}"
    const line = readFileSync(template, 'utf8')
      .split('\n')
      .find((l) => l.includes('DYNAMIC_CONFIG_FILE_PATH'));
    expect(line).toMatch(/^\s*filepath:/);
    expect(line).toContain(`"${path}"`);
  });
});

describe('docker-compose.yml against the project it deploys', () => {
  const runtimeEnv = finalStageEnv(parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8')));

  it.each(['worker', 'cli'])('runs a real CLI command in the %s service', (name) => {
    const command = service(defaults, name).command as string[];
    const help = spawnSync(process.execPath, [cliPath, command[0]!, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
  });

  it("the CLI service's default command validates as the pipeline it names", () => {
    const [verb, ...args] = service(defaults, 'cli').command as string[];
    expect(verb).toBe('sweep');
    const file = args.find((a) => a.endsWith('.yaml'))!;
    expect(loadPipeline(join(repoRoot, file)).pipeline).toBe('gestures-pooling');
  });

  // Commands in the compose file's header, and in the README inline (`…`) or on lines of their own
  // (code blocks), after any VAR=value prefix and before any trailing # comment.
  const commandLine = /^(?:#\s*)?\s*(?:[A-Z_]+=\S+\s+)*(docker compose .*?)(?:\s+#.*)?$/gm;
  const oneLiners = [
    ...composeText()
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .join('\n')
      .matchAll(commandLine),
    ...readFileSync(join(repoRoot, 'README.md'), 'utf8').matchAll(commandLine),
    ...readFileSync(join(repoRoot, 'README.md'), 'utf8').matchAll(/`(docker compose [^`]+)`/g),
  ].map((m) => m[1]!.trim());

  it('documents one-liners in its header and in the README', () => {
    expect(oneLiners.filter((l) => l.startsWith('docker compose run')).length).toBeGreaterThanOrEqual(2);
  });

  it.each(oneLiners)('"%s" names real services and valid pipeline files', (line) => {
    const [, , verb, ...rest] = line.split(/\s+/);
    const names = Object.keys(services(defaults));
    const positional: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      const word = rest[i]!;
      if (word === '--scale') expect(names).toContain(rest[++i]!.split('=')[0]);
      else if (/^(-e|--env|-v|--volume|--entrypoint|-w|--workdir|-u|--user|--name)$/.test(word)) i++;
      else if (!word.startsWith('-')) positional.push(word);
    }
    if (verb === 'run') expect(names).toContain(positional[0]);
    if (verb === 'up') for (const name of positional) expect(names).toContain(name);
    for (const file of positional.filter((a) => a.endsWith('.yaml'))) expect(() => loadPipeline(join(repoRoot, file))).not.toThrow();
  });

  it('mounts the local dataset folder at the same path in the CLI and the workers, inside $SWEEPS_HOME/data (a folder download may read)', () => {
    expect(runtimeEnv.SWEEPS_HOME).toBe('/sweeps');
    const header = composeText()
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .join('\n');
    const documented = /--data (\S+)`/.exec(header)?.[1];
    expect(documented).toBe(`${runtimeEnv.SWEEPS_HOME}/data/gestures-dataset.zip`);
    const pointed = interpolate(raw, { SWEEPS_DATA_DIR: '/srv/gestures' });
    for (const name of ['worker', 'cli']) {
      const target = `${runtimeEnv.SWEEPS_HOME}/data`;
      expect(mounts(service(pointed, name))).toContainEqual({ source: '/srv/gestures', target, readOnly: true });
      expect(mounts(service(defaults, name))).toContainEqual({ source: './.sweeps/data', target, readOnly: true });
    }
  });

  it("runs the worker's healthcheck from a script that is in the image", () => {
    const test = record(service(defaults, 'worker').healthcheck, 'healthcheck').test as string[];
    expect(test).toEqual(['CMD', 'node', 'scripts/worker-health.js']);
    expect(() => readFileSync(join(repoRoot, test[2]!))).not.toThrow();
  });

  it('renders the one-shot scripts with $$ as a literal dollar for the shell', () => {
    const script = (service(defaults, 'temporal-schema').command as string[])[0]!;
    expect(script).toContain('temporal-sql-tool --db "$1" create-database');
    expect(script).toContain('"$SCHEMA_DIR/$2/versioned"');
  });
});

describe('Compose variable substitution as this test applies it', () => {
  it.each([
    ['${A:-x}', {}, 'x'],
    ['${A:-x}', { A: '' }, 'x'],
    ['${A-x}', { A: '' }, ''],
    ['${A:+y}', { A: '1' }, 'y'],
    ['${A:+y}', {}, ''],
    ['$$A and $${A}', { A: '1' }, '$A and ${A}'],
    ['$A/${A}', { A: '1' }, '1/1'],
  ])('%s with %j is "%s"', (text, env, expected) => {
    expect(substitute(text, env as Env)).toBe(expected);
  });

  it('fails on a required variable that is missing', () => {
    expect(() => substitute('${A:?set A}', {})).toThrow('A: set A');
  });
});
