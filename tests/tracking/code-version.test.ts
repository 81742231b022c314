import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

// A fresh copy of the module for each test: it keeps its answer for the process.
const load = () => {
  let mod: typeof import('../../activities/tracking') | undefined;
  jest.isolateModules(() => {
    mod = require('../../activities/tracking') as typeof import('../../activities/tracking');
  });
  return mod!;
};

const repoRoot = resolve(__dirname, '..', '..', '..');
const head = (): string | undefined => {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined; // not a git checkout: both report the package only
  }
};

test("the code version names the package and this checkout's commit", async () => {
  const version = await load().codeVersion();
  expect(version.package).toMatch(/^durable-sweeps@/);
  expect(version.commit).toBe(head());
});

test('it is computed once per process, and the training environment records it', async () => {
  const tracking = load();
  const first = tracking.codeVersion();
  expect(tracking.codeVersion()).toBe(first);
  const version = await first;
  expect(tracking.trainingEnvironment('wasm', version).code).toBe(version);
});
