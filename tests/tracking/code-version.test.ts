import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

// A fresh copy of the module for each test: both functions keep their answer for the process.
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

test('the code version asked for ahead (without blocking) is the one the synchronous call computes', async () => {
  const ahead = await load().codeVersionAsync();
  const direct = load().codeVersion();
  expect(ahead).toEqual(direct);
  expect(ahead.package).toMatch(/^durable-sweeps@/);
  expect(ahead.commit).toBe(head());
});

test('once asked for ahead, the synchronous call answers from it and the environment records it', async () => {
  const tracking = load();
  const ahead = await tracking.codeVersionAsync();
  expect(tracking.codeVersion()).toBe(ahead);
  expect(tracking.trainingEnvironment('wasm').code).toBe(ahead);
});
