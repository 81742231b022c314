/**
 * docker-compose.yml as Docker Compose reads it, checked without a Docker engine: YAML with merge
 * keys, Compose's variable substitution, the official Compose JSON Schema (from the compose-go Go
 * module, which scripts/setup-test-tools.sh fetches from the Go module proxy), and the deployment
 * rules that schema cannot express.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../helpers/fixtures';

export type Doc = Record<string, unknown>;
export type Env = Record<string, string | undefined>;

export const composeFile = join(repoRoot, 'docker-compose.yml');
export const composeText = (): string => readFileSync(composeFile, 'utf8');

/** The YAML as Compose parses it: anchors resolved and `<<` merge keys applied. */
export function parseCompose(text: string): Doc {
  const doc: unknown = parseYaml(text, { merge: true });
  return record(doc, 'the compose file');
}

export function record(value: unknown, what: string): Doc {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what}: expected a mapping`);
  return value as Doc;
}

export function services(doc: Doc): Record<string, Doc> {
  const all = record(doc.services, 'services');
  return Object.fromEntries(Object.entries(all).map(([name, s]) => [name, record(s, `services.${name}`)]));
}

export function service(doc: Doc, name: string): Doc {
  const s = services(doc)[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
}

const VARIABLE = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/**
 * Compose's substitution in one string: `$$` is a literal `$`; `${VAR:-default}` (unset or empty),
 * `${VAR-default}` (unset), `${VAR:+other}` / `${VAR+other}` (set), `${VAR:?error}` / `${VAR?error}`,
 * `${VAR}` and `$VAR`. Nested substitutions are not used in this project and are refused.
 */
export function substitute(text: string, env: Env): string {
  return text.replace(VARIABLE, (_match, dollar?: string, braced?: string, op?: string, arg?: string, bare?: string) => {
    if (dollar) return '$';
    const name = (braced ?? bare)!;
    const value = env[name];
    if (op === undefined) return value ?? '';
    if (arg!.includes('$')) throw new Error(`\${${name}${op}${arg}}: nested substitution is not supported here`);
    const set = op.startsWith(':') ? value !== undefined && value !== '' : value !== undefined;
    switch (op.replace(':', '')) {
      case '-':
        return set ? value! : arg!;
      case '+':
        return set ? arg! : '';
      default:
        if (!set) throw new Error(`${name}: ${arg || 'required variable is missing'}`);
        return value!;
    }
  });
}

/** Substitution over every string value of the file (keys are not substituted, as in Compose). */
export function interpolate<T>(value: T, env: Env): T {
  if (typeof value === 'string') return substitute(value, env) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => interpolate(v, env)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)])) as T;
  }
  return value;
}

/** The compose-go module that ships the schema, as pinned by scripts/setup-test-tools.sh. */
export function composeGoModule(): string {
  const script = readFileSync(join(repoRoot, 'scripts', 'setup-test-tools.sh'), 'utf8');
  const module = /^COMPOSE_GO_MODULE="([^"]+)"/m.exec(script)?.[1];
  if (!module) throw new Error('scripts/setup-test-tools.sh no longer sets COMPOSE_GO_MODULE="<module>@<version>"');
  return module;
}

/** The schema file in the Go module cache, or undefined (with the reason) when it is not there. */
export function composeSchemaFile(): { file?: string; missing?: string } {
  const module = composeGoModule();
  const go = spawnSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' });
  if (go.status !== 0) return { missing: `no Go toolchain to locate ${module} (go env GOMODCACHE failed)` };
  const file = join(go.stdout.trim(), module, 'schema', 'compose-spec.json');
  return existsSync(file) ? { file } : { missing: `${file} is missing: run scripts/setup-test-tools.sh (go mod download ${module})` };
}

/** A validator for the Compose schema (JSON Schema draft 2020-12); returns one line per error. */
export function composeSchemaValidator(schemaFile: string): (doc: unknown) => string[] {
  const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as { $schema?: string };
  if (schema.$schema !== 'https://json-schema.org/draft/2020-12/schema') {
    throw new Error(`${schemaFile}: expected a draft 2020-12 schema, got ${schema.$schema}: pick the matching Ajv class`);
  }
  // Strict about what could make validation weaker than Compose's (unknown keywords, unknown
  // formats); not about the schema's authoring style (keywords without a sibling "type", union
  // types such as ["integer", "string"] that let a ${VARIABLE} stand for a number).
  const ajv = new Ajv2020({ allErrors: true, strictSchema: true, strictTypes: false, strictTuples: false, strictRequired: false });
  const validate = ajv.compile(schema);
  return (doc) => {
    if (validate(doc)) return [];
    return (validate.errors ?? []).map((e) => {
      const params = e.params as { additionalProperty?: string; unevaluatedProperty?: string };
      const name = params.additionalProperty ?? params.unevaluatedProperty;
      const extra = name === undefined ? '' : ` (${name})`;
      return `${e.instancePath || '/'} ${e.message ?? e.keyword}${extra}`;
    });
  };
}

// ---------------------------------------------------------------- deployment rules

const LONG_RUNNING_RESTART = /^(always|unless-stopped|on-failure(:\d+)?)$/;

function dependencies(s: Doc): Record<string, Doc | undefined> {
  const deps = s.depends_on;
  if (deps === undefined) return {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [String(d), undefined]));
  return Object.fromEntries(Object.entries(record(deps, 'depends_on')).map(([k, v]) => [k, record(v, `depends_on.${k}`)]));
}

/** Services that others wait for to finish (`service_completed_successfully`): one-shot setup jobs. */
export function oneShots(doc: Doc): Set<string> {
  const result = new Set<string>();
  for (const s of Object.values(services(doc))) {
    for (const [dep, opts] of Object.entries(dependencies(s))) if (opts?.condition === 'service_completed_successfully') result.add(dep);
  }
  return result;
}

/** Services that stay up with the deployment: neither one-shot jobs nor run-on-demand profiles. */
export function longRunning(doc: Doc): string[] {
  const jobs = oneShots(doc);
  return Object.entries(services(doc))
    .filter(([name, s]) => !jobs.has(name) && s.profiles === undefined)
    .map(([name]) => name);
}

function hasHealthcheck(s: Doc): boolean {
  if (s.healthcheck === undefined) return false;
  const h = record(s.healthcheck, 'healthcheck');
  if (h.disable === true || h.disable === 'true') return false;
  const test = h.test;
  return Array.isArray(test) ? test.length > 1 && test[0] !== 'NONE' : typeof test === 'string' && test.trim() !== '';
}

/** The host address a published port listens on ('' for all interfaces). */
function hostIp(port: unknown): string {
  if (typeof port === 'number') return '';
  if (typeof port === 'string') {
    const parts = port.replace(/\/(tcp|udp)$/, '').split(':');
    return parts.length === 3 ? parts[0]! : '';
  }
  const p = record(port, 'port');
  return typeof p.host_ip === 'string' ? p.host_ip : '';
}

function environment(s: Doc): Record<string, string | undefined> {
  const env = s.environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((e) => String(e)).map((e) => [e.split('=')[0]!, e.includes('=') ? e.slice(e.indexOf('=') + 1) : undefined]));
  }
  return Object.fromEntries(Object.entries(record(env, 'environment')).map(([k, v]) => [k, v === null ? undefined : String(v)]));
}
export { environment as serviceEnvironment };

/** Volumes of a service in short syntax as { source, target }. */
export function mounts(s: Doc): Array<{ source: string; target: string; readOnly: boolean }> {
  return ((s.volumes as unknown[] | undefined) ?? []).map((v) => {
    if (typeof v === 'string') {
      const [source = '', target = '', mode = ''] = v.split(':');
      return { source, target, readOnly: mode.split(',').includes('ro') };
    }
    const m = record(v, 'volume');
    return { source: String(m.source ?? ''), target: String(m.target ?? ''), readOnly: m.read_only === true };
  });
}

const isNamedVolume = (source: string) => /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(source);

/**
 * What the deployment promises beyond the schema, checked on the substituted file. Each problem
 * names its place in the file (`services.worker.ports[0]: …`).
 */
export function deploymentProblems(doc: Doc): string[] {
  const problems: string[] = [];
  const all = services(doc);
  const declaredVolumes = new Set(Object.keys(doc.volumes === undefined ? {} : record(doc.volumes, 'volumes')));
  const jobs = oneShots(doc);

  for (const [name, s] of Object.entries(all)) {
    const at = `services.${name}`;
    ((s.ports as unknown[] | undefined) ?? []).forEach((port, i) => {
      if (hostIp(port) !== '127.0.0.1') problems.push(`${at}.ports[${i}]: ${JSON.stringify(port)} is published on all interfaces, not 127.0.0.1 only`);
    });
    for (const [dep, opts] of Object.entries(dependencies(s))) {
      const target = all[dep];
      if (!target) {
        problems.push(`${at}.depends_on.${dep}: no such service`);
        continue;
      }
      const condition = opts?.condition;
      if (condition === undefined || condition === 'service_started') {
        problems.push(`${at}.depends_on.${dep}: waits only for the container to start; use service_healthy or service_completed_successfully`);
      } else if (condition === 'service_healthy' && !hasHealthcheck(target)) {
        problems.push(`${at}.depends_on.${dep}: service_healthy, but ${dep} has no healthcheck`);
      } else if (condition === 'service_completed_successfully' && typeof target.restart === 'string' && target.restart !== 'no') {
        problems.push(`${at}.depends_on.${dep}: waits for ${dep} to finish, but its restart policy "${target.restart}" restarts it`);
      }
    }
    for (const m of mounts(s)) {
      if (isNamedVolume(m.source) && !declaredVolumes.has(m.source)) problems.push(`${at}.volumes: named volume "${m.source}" is not declared under volumes:`);
    }
    const replicas = record(s.deploy ?? {}, `${at}.deploy`).replicas;
    if (replicas !== undefined && (s.container_name !== undefined || s.hostname !== undefined)) {
      problems.push(`${at}: replicas cannot share a fixed container_name or hostname`);
    }
  }

  for (const name of longRunning(doc)) {
    const s = all[name]!;
    if (typeof s.restart !== 'string' || !LONG_RUNNING_RESTART.test(s.restart)) {
      problems.push(`services.${name}: a long-running service needs a restart policy (unless-stopped, always or on-failure), has ${JSON.stringify(s.restart)}`);
    }
    if (!hasHealthcheck(s)) problems.push(`services.${name}: a long-running service needs a healthcheck`);
  }
  for (const name of jobs) {
    if (all[name]?.profiles !== undefined) problems.push(`services.${name}: others wait for it, so it cannot hide behind a profile`);
  }

  // The project's own services (built from the Dockerfile): the worker scales out, and every one of
  // them finds the server by service name and shares one artifact store.
  const worker = all.worker;
  if (!worker) problems.push('services.worker: missing');
  else {
    const replicas = Number(record(worker.deploy ?? {}, 'services.worker.deploy').replicas);
    if (!Number.isInteger(replicas) || replicas < 1)
      problems.push(`services.worker.deploy.replicas: expected a positive integer, got ${JSON.stringify(replicas)}`);
    if (environment(worker).SWEEPS_WORKER_IDENTITY !== undefined)
      problems.push('services.worker.environment.SWEEPS_WORKER_IDENTITY: fixed, so every replica would claim the same identity');
  }
  const artifactVolumes = new Set<string>();
  for (const [name, s] of Object.entries(all).filter(([, s]) => s.build !== undefined)) {
    const env = environment(s);
    const address = env.TEMPORAL_ADDRESS ?? '';
    const host = address.split(':')[0] ?? '';
    if (!all[host] || jobs.has(host)) problems.push(`services.${name}.environment.TEMPORAL_ADDRESS: "${address}" names no server service of this file`);
    const store = env.SWEEPS_ARTIFACTS;
    const mount = mounts(s).find((m) => m.target === store);
    if (!store || !mount) problems.push(`services.${name}: SWEEPS_ARTIFACTS (${store}) is not a mounted volume`);
    else if (!isNamedVolume(mount.source) || mount.readOnly)
      problems.push(`services.${name}: the artifact store must be a writable named volume, is "${mount.source}"`);
    else artifactVolumes.add(mount.source);
  }
  if (artifactVolumes.size > 1) problems.push(`the project's services use different artifact volumes: ${[...artifactVolumes].join(', ')}`);
  return problems;
}
