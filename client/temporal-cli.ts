import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The Temporal CLI tag that builds with `go install` from the module proxy (later tags use `replace`). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

/** User-level cache shared by every clone of the project: a one-time build serves them all. */
export function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'durable-sweeps');
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the Temporal CLI (dev server + Web UI) is, without building anything: a configured path
 * (`SWEEPS_TEMPORAL_CLI`), `temporal` on PATH, or the project's cache.
 */
export function findTemporalCli(): string | undefined {
  const configured = process.env.SWEEPS_TEMPORAL_CLI;
  if (configured) {
    if (!executable(configured)) throw new Error(`SWEEPS_TEMPORAL_CLI=${configured} is not an executable file`);
    return configured;
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && executable(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  const cached = join(cacheDir(), 'bin', 'temporal');
  return executable(cached) ? cached : undefined;
}

function goBinary(): string | undefined {
  const found = spawnSync('go', ['version'], { encoding: 'utf8' });
  return found.status === 0 ? 'go' : undefined;
}

/**
 * Finds the Temporal CLI or builds it once from its Go module into the user cache. Returns
 * undefined when neither works (the caller then falls back to the SDK's own download).
 */
export async function obtainTemporalCli(say: (line: string) => void): Promise<string | undefined> {
  const found = findTemporalCli();
  if (found) return found;
  if (!goBinary()) {
    say('temporal CLI: not found, and no Go toolchain to build it; falling back to the Temporal SDK download');
    return undefined;
  }
  const bin = join(cacheDir(), 'bin');
  mkdirSync(bin, { recursive: true });
  say(
    `temporal CLI: not found; building ${TEMPORAL_CLI_MODULE} with Go into ${bin} ` +
      '(one time: about 5–12 minutes on 2 cores with a cold Go cache; later runs reuse it)…',
  );
  const started = Date.now();
  const code = await new Promise<number>((resolve) => {
    const child = spawn('go', ['install', TEMPORAL_CLI_MODULE], {
      env: { ...process.env, GOBIN: bin },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let tail = '';
    child.stderr.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-4000);
    });
    const ticker = setInterval(() => say(`temporal CLI: still building (${Math.round((Date.now() - started) / 1000)} s)…`), 60_000);
    child.on('close', (status) => {
      clearInterval(ticker);
      if (status !== 0) say(`temporal CLI: go install failed:\n${tail}`);
      resolve(status ?? 1);
    });
  });
  const built = join(bin, 'temporal');
  if (code === 0 && executable(built)) {
    say(`temporal CLI: built in ${Math.round((Date.now() - started) / 1000)} s: ${built}`);
    return built;
  }
  return undefined;
}
