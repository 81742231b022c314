import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { train, type EpochMetrics } from '../../ml/trainer';
import { childExecArgv, trainInChildProcess, type TrainRequest } from '../../ml/train-process';
import { quickConfig } from './quick-config';
import { syntheticData, type SyntheticSpec } from './synthetic-data';

const spec: SyntheticSpec = { seed: 1, train: 160, valid: 64, classes: 4, features: 3, maxLength: 12 };
// The child loads its data through this module (compiled next to this test) instead of an Arrow file.
const readerModule = require.resolve('./synthetic-data');

let root: string;
let specPath: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ml-child-'));
  specPath = path.join(root, 'spec.json');
  fs.writeFileSync(specPath, JSON.stringify(spec));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});
let n = 0;
const request = (overrides: Partial<TrainRequest['config']> = {}): TrainRequest => ({
  paddedPath: specPath,
  config: quickConfig(overrides),
  checkpointDir: path.join(root, `run-${++n}`),
  readerModule,
});

/** Running, and not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

test('trains in a child process, reports progress, and returns what an in-process run returns', async () => {
  const req = request({ epochs: 3 });
  const epochs: Array<[EpochMetrics, string]> = [];
  let batches = 0;
  let pid = 0;
  const outcome = await trainInChildProcess(req, {
    onStart: (p) => (pid = p),
    onEpoch: (m, checkpoint) => epochs.push([m, checkpoint]),
    onBatch: () => (batches += 1),
  });

  expect(pid).not.toBe(process.pid);
  expect(outcome.backend).toBe('wasm');
  expect(outcome.epochs).toHaveLength(3);
  expect(epochs.map(([m]) => m)).toEqual(outcome.epochs);
  expect(epochs.map(([, cp]) => path.basename(cp))).toEqual(['epoch-0001', 'epoch-0002', 'epoch-0003']);
  for (const [, cp] of epochs) expect(fs.existsSync(path.join(cp, 'state.json'))).toBe(true);
  expect(batches).toBe(30);

  const inProcess = await train(syntheticData(spec), req.config, { checkpointDir: path.join(root, 'in-process') });
  const strip = (ms: EpochMetrics[]): unknown[] => ms.map(({ seconds: _s, ...rest }) => rest);
  expect(strip(outcome.epochs)).toEqual(strip(inProcess.epochs));
});

test('aborting kills the child and rejects with the abort reason', async () => {
  const controller = new AbortController();
  let pid = 0;
  const run = trainInChildProcess(request({ epochs: 500 }), {
    signal: controller.signal,
    onStart: (p) => (pid = p),
    onBatch: () => controller.abort(new Error('trial cancelled')),
  });
  await expect(run).rejects.toThrow('trial cancelled');
  expect(pid).toBeGreaterThan(0);
  expect(alive(pid)).toBe(false);
});

test('an error in the child is re-thrown in the parent with the child’s message and stack', async () => {
  const err = (await trainInChildProcess(request({ hidden: 0 })).catch((e: unknown) => e)) as Error;
  expect(err).toBeInstanceOf(Error);
  expect(err.message).toBe('train config: hidden must be a positive integer, got 0');
  expect(err.stack).toMatch(/trainer\.js/);
  expect(err.stack).toMatch(/training child process pid \d+/);
});

test('the child exits when its parent dies', async () => {
  // A stand-in parent (as a worker would be) that starts training and prints the child's pid.
  const parentScript = path.join(root, 'stand-in-parent.js');
  fs.writeFileSync(
    parentScript,
    `const { trainInChildProcess } = require(${JSON.stringify(require.resolve('../../ml/train-process'))});
     trainInChildProcess(${JSON.stringify(request({ epochs: 500 }))}, { onStart: (pid) => console.log('child ' + pid) });`,
  );
  const parent = spawn(process.execPath, [parentScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  const childPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    parent.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /child (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    parent.on('exit', () => reject(new Error(`stand-in parent exited early: ${out}`)));
  });
  expect(alive(childPid)).toBe(true);
  parent.kill('SIGKILL');
  expect(await waitUntil(() => !alive(childPid), 10_000)).toBe(true);
});

test('the child inherits only harmless Node flags (a parent run with -e must not re-run its code)', () => {
  expect(childExecArgv(['-e', 'fork()', '--max-old-space-size=4096', '--inspect=9229', '-r', 'ts-node/register', '--enable-source-maps'])).toEqual([
    '--max-old-space-size=4096',
    '--enable-source-maps',
  ]);
});
