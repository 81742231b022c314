import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/fixtures';

/**
 * scripts/apt-install.sh while another apt holds the lock. Holding the machine's real apt lock
 * would stall every other install on it, so an `apt-get` first on PATH answers as apt does when
 * the lock is taken (its message and exit code 100), a given number of times, then succeeds.
 */
function withApt(lockedCalls: number, otherError?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'sweeps-apt-'));
  writeFileSync(
    join(dir, 'apt-get'),
    `#!/usr/bin/env bash
n=$(cat "${dir}/calls" 2>/dev/null || echo 0); echo $((n + 1)) > "${dir}/calls"
echo "$*" >> "${dir}/args"
${otherError ? `echo "${otherError}" >&2; exit 100` : ''}
if [ "$n" -lt ${lockedCalls} ]; then echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2; exit 100; fi
`,
  );
  chmodSync(join(dir, 'apt-get'), 0o755);
  const run = spawnSync('bash', [join(repoRoot, 'scripts', 'apt-install.sh'), 'tmux'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, APT_LOCK_WAIT: '60' },
  });
  const calls = Number(readFileSync(join(dir, 'calls'), 'utf8'));
  const args = readFileSync(join(dir, 'args'), 'utf8');
  rmSync(dir, { recursive: true, force: true });
  return { run, calls, args };
}

const onlyAsRoot = process.getuid?.() === 0 ? test : test.skip; // otherwise the script calls sudo

onlyAsRoot('waits while another apt holds the lock, then installs', () => {
  const { run, calls, args } = withApt(2);
  expect({ status: run.status, stderr: run.stderr }).toMatchObject({ status: 0 });
  expect(run.stderr.match(/waiting for another apt\/dpkg to finish/g)).toHaveLength(2);
  expect(calls).toBe(4); // update refused twice, then update and install
  expect(args).toContain('-o DPkg::Lock::Timeout=60'); // and apt itself waits for dpkg's lock
});

onlyAsRoot('fails at once, with apt output, on an error that is not a lock', () => {
  const { run, calls } = withApt(0, 'E: Unable to locate package tmux');
  expect(run.status).toBe(1);
  expect(calls).toBe(1);
  expect(run.stderr).toContain('E: Unable to locate package tmux');
  expect(run.stderr).toContain('apt-install: installing tmux failed');
});
