import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/fixtures';
import { cliPath } from '../helpers/processes';
import { ciReach, commandsOf, dockerignore, exists, finalStageEnv, packageJson, parseDockerfile, repoPathsIn, type Command } from './dockerfile';

/**
 * The image is built by the steps CI runs: every RUN of the Dockerfile is an install, a script CI
 * also runs, or OS housekeeping. A step CI never runs would ship untested; a step this test does
 * not know fails it until someone decides which it is.
 */

const instructions = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const runs = instructions.filter((i) => i.keyword === 'RUN');
const ci = ciReach();
const ciText = ci.texts.join('\n');

/** Operating-system steps: packages and folders, not project code. */
const HOUSEKEEPING = new Set(['apt-get', 'rm', 'mkdir', 'chown']);

function problemOf(command: Command): string | undefined {
  const [tool, verb, name] = command.words;
  if (tool === 'npm' && (verb === 'ci' || verb === 'install')) {
    return /\bnpm (ci|install)\b/.test(ciText) ? undefined : `"${command.text}": CI installs no npm packages`;
  }
  // Dropping dev dependencies before the runtime stage copies the app (never reinstalling anything).
  if (tool === 'npm' && verb === 'prune') {
    return command.words.includes('--omit=dev') && command.words.includes('--ignore-scripts')
      ? undefined
      : `"${command.text}": prune only with --omit=dev --ignore-scripts`;
  }
  if (tool === 'npm' && verb === 'run') {
    if (!name || packageJson.scripts[name] === undefined) return `"${command.text}": package.json has no script "${name}"`;
    return ci.scripts.has(name) ? undefined : `"${command.text}": CI never runs the script "${name}"`;
  }
  const paths = repoPathsIn(command);
  if (paths.length > 0) {
    const missing = paths.filter((p) => !exists(p));
    if (missing.length > 0) return `"${command.text}": ${missing.join(', ')} not in the repository`;
    const untested = paths.filter((p) => !ciText.includes(p));
    return untested.length === 0 ? undefined : `"${command.text}": CI never runs ${untested.join(', ')}`;
  }
  return tool !== undefined && HOUSEKEEPING.has(tool) ? undefined : `"${command.text}": neither a CI step nor OS housekeeping`;
}

describe('Dockerfile', () => {
  it('has RUN steps to check', () => {
    expect(runs.length).toBeGreaterThanOrEqual(3);
  });

  it.each(runs.map((r) => [`line ${r.line}: RUN ${r.args.slice(0, 60)}`, r.args] as const))('%s is a step CI also runs', (_label, args) => {
    expect(
      commandsOf(args)
        .map(problemOf)
        .filter((p) => p !== undefined),
    ).toEqual([]);
  });

  it('installs, builds and sets up in the order of npm test (npm install, then pretest: build, setup)', () => {
    const steps = runs.flatMap((r) => commandsOf(r.args)).map((c) => c.words.slice(0, 3).join(' '));
    const order = ['npm ci', 'npm run build', 'npm run setup'].map((s) => steps.findIndex((x) => x.startsWith(s)));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(packageJson.scripts.pretest).toBe('npm run build && npm run setup');
  });

  it('checks itself: a step CI does not run, or a script that does not exist, is reported', () => {
    expect(problemOf(commandsOf('npm run bench:train')[0]!)).toBe('"npm run bench:train": CI never runs the script "bench:train"');
    expect(problemOf(commandsOf('bash scripts/nope.sh')[0]!)).toBe('"bash scripts/nope.sh": scripts/nope.sh not in the repository');
    expect(problemOf(commandsOf('curl -o x https://example.org/x')[0]!)).toBe('"curl -o x https://example.org/x": neither a CI step nor OS housekeeping');
  });

  it('runs setup with a Temporal address, so the Temporal CLI is not built into the image', () => {
    const setup = runs.flatMap((r) => commandsOf(r.args)).find((c) => c.words.join(' ') === 'npm run setup');
    expect(setup?.env.TEMPORAL_ADDRESS).toMatch(/^temporal:\d+$/);
    expect(instructions.some((i) => /\bgo install\b|temporalio\/cli/.test(i.args))).toBe(false);
  });

  it('uses the setup that really skips the Temporal CLI when TEMPORAL_ADDRESS is set (and honours the SWEEPS_SKIP_TFJS_NODE build arg)', () => {
    // No PATH (so no go, no temporal) and an empty cache: any attempt to obtain the CLI says so.
    const cache = mkdtempSync(join(tmpdir(), 'sweeps-setup-'));
    try {
      const env = { XDG_CACHE_HOME: cache, PATH: cache, SWEEPS_SKIP_TFJS_NODE: '1', SWEEPS_KERNEL: 'wasm' };
      const run = (extra: Record<string, string>) => spawnSync(process.execPath, [cliPath, 'setup'], { encoding: 'utf8', env: { ...env, ...extra } });
      const asInImage = run({ TEMPORAL_ADDRESS: 'temporal:7233' });
      expect(asInImage.status).toBe(0);
      expect(asInImage.stderr).not.toMatch(/temporal CLI/i);
      expect(asInImage.stderr).toContain('SWEEPS_SKIP_TFJS_NODE set');
      const withoutAddress = run({});
      expect(withoutAddress.stderr).toMatch(/temporal CLI/i); // the control: otherwise it would try
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('builds on a current LTS Node that package.json lists and CI tests, the same in both stages', () => {
    const majors = instructions.filter((i) => i.keyword === 'FROM').map((i) => Number(/^node:(\d+)-/.exec(i.args)?.[1]));
    const listed = [...packageJson.engines.node.matchAll(/\^(\d+)\./g)].map((m) => Number(m[1]));
    const ciRun = readFileSync(join(repoRoot, '.ci', 'run'), 'utf8');
    const tested = [...(/^OTHER_NODES="([^"]*)"/m.exec(ciRun)?.[1] ?? '').matchAll(/(\d+)\.\d+\.\d+/g)].map((m) => Number(m[1]));
    expect(majors.length).toBe(2);
    expect(new Set(majors).size).toBe(1); // the addons built in the first stage run in the second
    // Even majors are the LTS lines; 20 reached its end of life in April 2026.
    expect(majors[0]! % 2).toBe(0);
    expect(majors[0]!).toBeGreaterThanOrEqual(24);
    expect(listed).toContain(majors[0]);
    expect(tested).toContain(majors[0]);
  });

  it("package.json's engines lists the Node majors CI tests: this machine's (the full suite) and .ci/run's other releases", () => {
    const listed = [...packageJson.engines.node.matchAll(/\^(\d+)\./g)].map((m) => Number(m[1]));
    const ciRun = readFileSync(join(repoRoot, '.ci', 'run'), 'utf8');
    const others = [...(/^OTHER_NODES="([^"]*)"/m.exec(ciRun)?.[1] ?? '').matchAll(/(\d+)\.\d+\.\d+/g)].map((m) => Number(m[1]));
    expect(others.length).toBeGreaterThanOrEqual(2);
    const tested = [...new Set([Number(process.versions.node.split('.')[0]), ...others])].sort((a, b) => a - b);
    expect(listed).toEqual(tested);
  });

  it('the runtime stage carries no dev dependencies: the build stage prunes them after setup, and the runtime copies that stage', () => {
    const commands = runs.flatMap((r) => commandsOf(r.args).map((c) => ({ line: r.line, words: c.words })));
    const setup = commands.find((c) => c.words.join(' ') === 'npm run setup');
    const prune = commands.find((c) => c.words[0] === 'npm' && c.words[1] === 'prune');
    expect(prune?.words).toEqual(expect.arrayContaining(['--omit=dev', '--ignore-scripts']));
    expect(prune!.line).toBeGreaterThan(setup!.line);
    const stages = instructions.filter((i) => i.keyword === 'FROM');
    const runtime = stages.at(-1)!;
    expect(prune!.line).toBeLessThan(runtime.line);
    const copies = instructions.filter((i) => i.keyword === 'COPY' && i.line > runtime.line);
    expect(copies.map((c) => c.args)).toEqual(['--from=build /app /app']);
    // And what a prune keeps is what runs: no dev dependency is required by the built code.
    const dev = Object.keys(packageJson.devDependencies ?? {});
    expect(dev.length).toBeGreaterThan(0);
    const required = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name);
        if (entry.isDirectory() && entry.name !== 'tests' && entry.name !== 'bench') walk(full);
        else if (entry.name.endsWith('.js'))
          for (const m of readFileSync(full, 'utf8').matchAll(/require\("((?:@[^/"]+\/)?[^/"]+)[^"]*"\)/g)) required.add(m[1]!);
      }
    };
    walk(join(repoRoot, 'dist'));
    expect(dev.filter((d) => required.has(d))).toEqual([]);
  });

  it('copies only files that exist, and starts the CLI that package.json publishes', () => {
    for (const copy of instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(exists(source)).toBe(true);
    }
    const entrypoint = JSON.parse(instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args) as string[];
    expect(entrypoint).toEqual(['node', packageJson.bin.sweeps]);
    const cmd = JSON.parse(instructions.find((i) => i.keyword === 'CMD')!.args) as string[];
    expect(spawnSync(process.execPath, [cliPath, cmd[0]!, '--help']).status).toBe(0);
  });

  it('runs as an unprivileged user with state and artifacts outside the code', () => {
    const user = instructions.filter((i) => i.keyword === 'USER').at(-1);
    expect(user?.args).toBe('node');
    const env = finalStageEnv(instructions);
    expect(env.SWEEPS_HOME).toBe('/sweeps');
    expect(env.SWEEPS_ARTIFACTS).toBe('/artifacts');
  });
});

describe('.dockerignore', () => {
  const ignored = dockerignore();

  it.each(['node_modules', 'dist', 'ml/kernel/build/gru-native.node', '.sweeps/artifacts/x', '.git', 'data/gestures-dataset.zip', 'logs/worker.log'])(
    'keeps %s out of the build context (host builds and data never reach the image)',
    (path) => {
      expect(ignored(path)).toBe(true);
    },
  );

  it.each([
    'package.json',
    'package-lock.json',
    'scripts/tfjs-node/setup.sh',
    'scripts/clean-dist.js',
    'scripts/worker-health.js',
    'ml/kernel/build.sh',
    'ml/kernel/gru.wasm',
    'pipelines/gestures-pooling.yaml',
    'tsconfig.json',
  ])('lets %s into the image', (path) => {
    expect(exists(path)).toBe(true);
    expect(ignored(path)).toBe(false);
  });
});
