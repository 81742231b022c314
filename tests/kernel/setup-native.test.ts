import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/fixtures';
import { cliPath } from '../helpers/processes';

/**
 * `sweeps setup` and the native kernel: no compiler is a choice of the machine (the WebAssembly
 * kernel runs), a compiler that fails is a broken setup (CI would otherwise skip the native tests
 * in silence). The Temporal CLI and tfjs-node steps are switched off; only the kernel step runs.
 */
const setup = (cc: string) =>
  spawnSync(process.execPath, [cliPath, 'setup'], {
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', SWEEPS_SKIP_TFJS_NODE: '1', SWEEPS_KERNEL: 'auto', CC: cc },
  });
const addon = join(repoRoot, 'ml', 'kernel', 'build', 'gru-native.node');

test('without a C compiler setup succeeds and says the WebAssembly kernel is used', () => {
  const run = setup('/nonexistent/cc');
  expect({ status: run.status, said: run.stdout + run.stderr }).toMatchObject({
    status: 0,
    said: expect.stringContaining('native kernel not built; gru.wasm is used'),
  });
});

test('a C compiler that fails the native kernel build fails setup, saying how to opt out', () => {
  const before = existsSync(addon);
  const run = setup('false'); // a "compiler" that exists and fails
  expect(run.status).toBe(1);
  expect(run.stderr).toContain('the native kernel failed to build although a C compiler is there');
  expect(run.stderr).toContain('SWEEPS_KERNEL=wasm');
  expect(existsSync(addon)).toBe(before); // a failed build replaces nothing
});
