/**
 * The external tools some report and tracking tests drive: Chromium, and a Python venv with MLflow
 * and TensorBoard (scripts/setup-test-tools.sh installs both). In CI a missing tool is a failing
 * test that says what to run; on a developer machine those tests are skipped with a visible note.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/fixtures';
import { stopProcessGroup } from '../helpers/processes';
import { testIfAvailable } from '../helpers/required';

export const CHROMIUM = process.env.SWEEPS_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

export const VENV = process.env.SWEEPS_TEST_VENV ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'durable-sweeps', 'venv');
export const PYTHON = join(VENV, 'bin', 'python');
const MLFLOW = join(VENV, 'bin', 'mlflow');

const SETUP_HINT = 'run scripts/setup-test-tools.sh (apt chromium; a venv with mlflow and tensorboard)';

function pythonHas(modules: string): boolean {
  return existsSync(PYTHON) && spawnSync(PYTHON, ['-c', `import ${modules}`], { stdio: 'ignore', timeout: 60_000 }).status === 0;
}

export const tools = {
  chromium: () => existsSync(CHROMIUM),
  mlflow: () => existsSync(MLFLOW) && pythonHas('mlflow'),
  tensorboard: () => pythonHas('tensorboard'),
};

/** `test` when the tool is there (tests/helpers/required.ts says what happens otherwise). */
export function testWith(tool: keyof typeof tools): jest.It {
  return testIfAvailable(tool, tools[tool]() ? undefined : `${tool} is not installed: ${SETUP_HINT}`);
}

/** Runs a Python script in the tools venv; returns its stdout parsed as JSON. */
export function runPython<T>(script: string, args: string[] = []): T {
  const run = spawnSync(PYTHON, ['-c', script, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', PYTHONWARNINGS: 'ignore' },
  });
  if (run.status !== 0) throw new Error(`python failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as T;
}

export interface MlflowServer {
  uri: string;
  stop(): Promise<void>;
}

/**
 * A real MLflow tracking server on loopback, started lean (no job runners, no telemetry) as its
 * own process group, so that stopping it stops every process it forked.
 */
export async function startMlflow(dir: string, timeoutMs = 150_000): Promise<MlflowServer> {
  mkdirSync(join(dir, 'artifacts'), { recursive: true });
  const port = await freePort();
  const log = openSync(join(dir, 'mlflow.log'), 'a');
  const child = spawn(
    MLFLOW,
    [
      'server',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--workers',
      '1',
      '--backend-store-uri',
      `sqlite:///${join(dir, 'mlflow.db')}`,
      '--artifacts-destination',
      join(dir, 'artifacts'),
    ],
    {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false', MLFLOW_DISABLE_TELEMETRY: 'true' },
    },
  );
  const pid = child.pid!;
  writeFileSync(join(dir, 'mlflow.pid'), String(pid));
  const uri = `http://127.0.0.1:${port}`;
  const stop = () => stopProcessGroup(pid);
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`mlflow server exited with ${child.exitCode}: see ${join(dir, 'mlflow.log')}`);
    const up = await fetch(`${uri}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return { uri, stop };
    await new Promise((r) => setTimeout(r, 500));
  }
  await stop();
  throw new Error(`mlflow server did not answer on ${uri} within ${timeoutMs} ms: see ${join(dir, 'mlflow.log')}`);
}
