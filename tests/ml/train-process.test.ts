import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { train, type EpochMetrics } from '../../ml/trainer';
import { childExecArgv, trainInChildProcess, type TrainRequest } from '../../ml/train-process';
import { TrainPool } from '../../ml/train-pool';
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

/** The final weights of a run, as the bytes of its newest checkpoint. */
function finalWeights(req: TrainRequest): Buffer {
  const newest = fs
    .readdirSync(req.checkpointDir)
    .filter((d) => d.startsWith('epoch-'))
    .sort()
    .at(-1);
  return fs.readFileSync(path.join(req.checkpointDir, newest as string, 'weights.bin'));
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
  // Every epoch's first batch at least, not every batch (10 per epoch here) of a fast engine.
  expect(batches).toBeGreaterThanOrEqual(3);
  expect(batches).toBeLessThanOrEqual(30);

  const inProcess = await train(syntheticData(spec), req.config, { checkpointDir: path.join(root, 'in-process') });
  const strip = (ms: EpochMetrics[]): unknown[] => ms.map(({ seconds: _s, ...rest }) => rest);
  expect(strip(outcome.epochs)).toEqual(strip(inProcess.epochs));
});

test("a new process's warm-up training leaves no folder behind, and a trial reports its setup and train() times", async () => {
  const warmTmp = path.join(root, 'warm-tmp');
  fs.mkdirSync(warmTmp);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = warmTmp; // the child's os.tmpdir(), where its warm-up trains
  let setupMs: number | undefined;
  let trainMs: number | undefined;
  try {
    const outcome = await trainInChildProcess(request({ epochs: 2 }), { onSetup: (ms) => (setupMs = ms), onTrained: (ms) => (trainMs = ms) });
    expect(outcome.epochs).toHaveLength(2);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  expect(fs.readdirSync(warmTmp)).toEqual([]);
  expect(setupMs).toBeGreaterThan(0);
  expect(trainMs).toBeGreaterThan(setupMs as number);
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

describe('a pool of warm training processes', () => {
  let pool: TrainPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  test('trains trial after trial in the same process, with the same weights bit for bit as a fresh process', async () => {
    pool = new TrainPool({ size: 1 });
    await pool.warm();
    const [warmPid] = pool.pids();
    const runs = [request({ seed: 1, epochs: 2 }), request({ seed: 2, pooling: 'last', epochs: 2 }), request({ seed: 1, epochs: 2 })];
    const pids: number[] = [];
    for (const req of runs) await pool.run(req, { onStart: (pid) => pids.push(pid) });
    expect(pids).toEqual([warmPid, warmPid, warmPid]);
    expect(pool.stats).toMatchObject({ started: 1, reused: 2, lost: 0 });

    // The third trial ran after two others in that process; a fresh process gives the same bytes.
    const fresh = request({ seed: 1, epochs: 2 });
    await trainInChildProcess(fresh);
    expect(finalWeights(runs[2] as TrainRequest).equals(finalWeights(fresh))).toBe(true);
    expect(finalWeights(runs[0] as TrainRequest).equals(finalWeights(fresh))).toBe(true);
  });

  test('a cancelled trial still kills its process, and the next trial gets a new one', async () => {
    pool = new TrainPool({ size: 1 });
    const controller = new AbortController();
    let killed = 0;
    const run = pool.run(request({ epochs: 500 }), {
      signal: controller.signal,
      onStart: (p) => (killed = p),
      onBatch: () => controller.abort(new Error('trial cancelled')),
    });
    await expect(run).rejects.toThrow('trial cancelled');
    expect(alive(killed)).toBe(false);

    let next = 0;
    const outcome = await pool.run(request({ epochs: 1 }), { onStart: (p) => (next = p) });
    expect(outcome.epochs).toHaveLength(1);
    expect(next).not.toBe(killed);
    expect(pool.stats.lost).toBe(1);
  });

  test('a process that dies while idle is replaced at the next trial', async () => {
    pool = new TrainPool({ size: 1 });
    await pool.warm();
    const [dead] = pool.pids();
    process.kill(dead as number, 'SIGKILL');
    expect(await waitUntil(() => !alive(dead as number), 5000)).toBe(true);
    let next = 0;
    await pool.run(request({ epochs: 1 }), { onStart: (p) => (next = p) });
    expect(next).not.toBe(dead);
    expect(pool.stats).toMatchObject({ started: 2, lost: 1 });
  });

  test('a process killed just as a trial is handed to it: the trial goes to a fresh process and trains', async () => {
    pool = new TrainPool({ size: 1 });
    await pool.warm();
    const [dead] = pool.pids();
    process.kill(dead as number, 'SIGKILL'); // its end cannot have been seen yet: the pool still holds it as idle
    const handedTo: number[] = [];
    const outcome = await pool.run(request({ epochs: 1 }), { onStart: (p) => handedTo.push(p) });
    expect(outcome.epochs).toHaveLength(1);
    expect(handedTo[0]).toBe(dead);
    expect(handedTo.at(-1)).not.toBe(dead);
    expect(pool.stats).toMatchObject({ started: 2, lost: 1 });
  });

  test('a process that failed a trial is not reused', async () => {
    pool = new TrainPool({ size: 1 });
    let failedIn = 0;
    await expect(pool.run(request({ hidden: 0 }), { onStart: (p) => (failedIn = p) })).rejects.toThrow('hidden must be a positive integer');
    expect(await waitUntil(() => !alive(failedIn), 5000)).toBe(true);
    let next = 0;
    await pool.run(request({ epochs: 1 }), { onStart: (p) => (next = p) });
    expect(next).not.toBe(failedIn);
  });

  test('replaces a process after maxTrialsPerProcess trials', async () => {
    pool = new TrainPool({ size: 1, maxTrialsPerProcess: 2 });
    const pids: number[] = [];
    for (let i = 0; i < 3; i++) await pool.run(request({ epochs: 1 }), { onStart: (p) => pids.push(p) });
    expect(pids[0]).toBe(pids[1]);
    expect(pids[2]).not.toBe(pids[0]);
    expect(await waitUntil(() => !alive(pids[0] as number), 5000)).toBe(true);
    expect(pool.stats.recycled).toBe(1);
  });

  test('one process per slot: two trials at once run in two processes', async () => {
    pool = new TrainPool({ size: 2 });
    await pool.warm();
    const warm = pool.pids().sort();
    const pids: number[] = [];
    await Promise.all([1, 2].map((seed) => pool?.run(request({ seed, epochs: 2 }), { onStart: (p) => pids.push(p) })));
    expect(pids.sort()).toEqual(warm);
  });

  test('the replacement of a process starts while it trains its last trial, and takes the next one', async () => {
    pool = new TrainPool({ size: 1, maxTrialsPerProcess: 2 });
    const p = pool;
    await p.run(request({ epochs: 1 }));
    let duringLast: number[] = [];
    let last = 0;
    await p.run(request({ epochs: 2 }), { onStart: (pid) => (last = pid), onEpoch: () => (duringLast = p.pids()) });
    expect(duringLast).toHaveLength(2);
    const successor = duringLast.find((pid) => pid !== last) as number;
    let next = 0;
    await p.run(request({ epochs: 1 }), { onStart: (pid) => (next = pid) });
    expect(next).toBe(successor);
    expect(p.stats.started).toBe(2);
  });
  test('closing the pool ends every process', async () => {
    pool = new TrainPool({ size: 2 });
    await pool.warm();
    const pids = pool.pids();
    expect(pids).toHaveLength(2);
    await pool.close();
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });
});
