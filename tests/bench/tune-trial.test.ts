import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { realPadded } from '../../bench/real-data';
import { runSegment, type EpochEvent, type TrialRequest } from '../../bench/tune-protocol';
import { bestAt, epochsToReach, median } from '../../bench/tune';
import { gesturesArchive, repoRoot } from '../helpers/fixtures';

/**
 * The one-trial JSON trainer of `npm run bench:tune` (bench/tune-trial.ts) on the real padded
 * gestures data, with a tiny config (a few batches per epoch): per-epoch metrics out, stopping after
 * an epoch keeps its checkpoint, a promotion continues from it exactly, and bad requests fail
 * clearly. Then the bench itself, end to end on a budget of a few such epochs.
 */

const script = path.join(repoRoot, 'dist', 'bench', 'tune-trial.js');
const tiny = { layers: 1, hidden: 8, train_batches: 3, valid_batches: 2 };

let root: string;
let store: string;
let padded: string;
let trainer: string[];
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tune-trial-'));
  store = path.join(root, 'store');
  process.env.SWEEPS_DATA = gesturesArchive();
  padded = (await realPadded(store)).path;
  trainer = [process.execPath, script, '--padded', padded, '--work', path.join(root, 'trials'), '--with', JSON.stringify(tiny)];
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const request = (overrides: Partial<TrialRequest> = {}): TrialRequest => ({
  trial: 't',
  seed: 3,
  params: { lr: 0.01, pooling: 'last' },
  from_epoch: 0,
  to_epoch: 4,
  resume_from: null,
  ...overrides,
});

/** Runs the trainer on raw input lines; its exit code and output. */
function raw(lines: string[], args: string[] = trainer.slice(1)): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { input: lines.map((l) => `${l}\n`).join(''), encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const withoutTime = (e: EpochEvent) => {
  const { seconds: _s, ...m } = e.metrics;
  return { epoch: e.epoch, ...m };
};

test('reports every epoch, and a trial stopped after an epoch continues from its checkpoint exactly as if it never stopped', async () => {
  const whole = await runSegment(trainer, request({ trial: 'whole' }), () => true);
  expect(whole.epochs.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
  for (const e of whole.epochs) {
    expect(e.metrics.valid_acc).toBeGreaterThanOrEqual(0);
    expect(e.metrics.valid_acc).toBeLessThanOrEqual(1);
    expect(fs.existsSync(e.checkpoint)).toBe(true);
  }
  expect(whole.done).toEqual({ event: 'done', epoch: 4, checkpoint: whole.epochs[3]!.checkpoint, stopped_early: false });

  // Paused after epoch 2 (the answer to epoch 2 is "stop"): its checkpoint stays, nothing later is trained.
  const first = await runSegment(trainer, request({ trial: 'paused' }), (e) => e.epoch < 2);
  expect(first.epochs.map((e) => e.epoch)).toEqual([1, 2]);
  expect(first.done.epoch).toBe(2);
  expect(path.basename(first.done.checkpoint!)).toBe('epoch-0002');
  expect(fs.readdirSync(path.dirname(first.done.checkpoint!)).filter((n) => n.startsWith('epoch-'))).toEqual(['epoch-0001', 'epoch-0002']);

  // Promoted: from epoch 2 to 4, in the same checkpoint folder.
  const rest = await runSegment(trainer, request({ trial: 'paused', from_epoch: 2, resume_from: first.done.checkpoint }), () => true);
  expect(rest.epochs.map((e) => e.epoch)).toEqual([3, 4]);
  expect(path.dirname(rest.done.checkpoint!)).toBe(path.dirname(first.done.checkpoint!));
  expect([...first.epochs, ...rest.epochs].map(withoutTime)).toEqual(whole.epochs.map(withoutTime));
  // Other parameters give other numbers (the request's params reach the trainer).
  const other = await runSegment(trainer, request({ trial: 'other', params: { lr: 0.001, pooling: 'last' }, to_epoch: 1 }), () => true);
  expect(other.epochs[0]!.metrics.train_loss).not.toBe(whole.epochs[0]!.metrics.train_loss);
});

test('end of input after an epoch stops the trial there, with its checkpoint', () => {
  const r = raw([JSON.stringify(request({ trial: 'eof' }))]);
  expect(r.code).toBe(0);
  const events = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; epoch: number });
  expect(events.map((e) => `${e.event}${e.epoch}`)).toEqual(['epoch1', 'done1']);
});

test.each([
  ['a request that is not JSON', ['{trial: 1}'], /the request is not JSON/],
  ['no request at all', [], /no request: the first line of input must be the trial request/],
  ['a parameter out of range', [JSON.stringify(request({ params: { lr: -1 } }))], /request\.params\.lr: .*(greater than 0|>0)/i],
  ['an unknown parameter', [JSON.stringify(request({ params: { lrr: 0.1 } }))], /request\.params: .*lrr/],
  ['the seed among the params', [JSON.stringify(request({ params: { seed: 2 } }))], /request\.params\.seed: not allowed here: use the request's "seed"/],
  [
    'pause_at_epoch among the params',
    [JSON.stringify(request({ params: { pause_at_epoch: 2 } }))],
    /request\.params\.pause_at_epoch: not allowed here: use "to_epoch"/,
  ],
  ['to_epoch not after from_epoch', [JSON.stringify(request({ to_epoch: 0 }))], /request\.to_epoch: /],
  [
    'a promotion without its checkpoint',
    [JSON.stringify(request({ from_epoch: 2 }))],
    /request\.resume_from: from_epoch is 2: name the checkpoint of that epoch/,
  ],
  ['a trial id that cannot name a folder', [JSON.stringify(request({ trial: '../x' }))], /request\.trial: a trial id is letters/],
  [
    'a checkpoint that is not an epoch folder',
    [JSON.stringify(request({ from_epoch: 1, resume_from: '/tmp' }))],
    /request\.resume_from: \/tmp is not an epoch checkpoint folder/,
  ],
])('rejects %s with a clear message and exit code 2, training nothing', (_what, lines, message) => {
  const r = raw(lines);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
});

test("rejects resuming from a checkpoint that is not the trial's newest, or of another epoch than from_epoch", async () => {
  const run = await runSegment(trainer, request({ trial: 'stale', to_epoch: 2 }), () => true);
  const first = run.epochs[0]!.checkpoint;
  const stale = raw([JSON.stringify(request({ trial: 'stale', from_epoch: 1, resume_from: first }))]);
  expect(stale.stderr).toMatch(/already holds epoch 2 of this trial; resume from its newest checkpoint/);
  expect(stale.code).toBe(2);
  const mismatch = raw([JSON.stringify(request({ trial: 'stale', from_epoch: 1, resume_from: run.done.checkpoint }))]);
  expect(mismatch.stderr).toMatch(/is the checkpoint of epoch 2, but from_epoch is 1/);
  expect(mismatch.code).toBe(2);
  // Another trial's parameters on this checkpoint: the trainer's own check, reported as bad input.
  const other = raw([JSON.stringify(request({ trial: 'stale', params: { lr: 0.002 }, from_epoch: 2, to_epoch: 3, resume_from: run.done.checkpoint }))]);
  expect(other.stderr).toMatch(/belongs to a different training run/);
  expect(other.code).toBe(2);
});

test('bench:tune runs random and TPE+ASHA through the sweep round function on one epoch budget, and writes its table as JSON', async () => {
  const out = path.join(root, 'tune.json');
  const args = [
    path.join(repoRoot, 'dist', 'bench', 'tune.js'),
    ...['--methods', 'random,tpe', '--seeds', '1', '--budget', '14', '--max-epochs', '4', '--grace', '1', '--eta', '2', '--n-startup', '2'],
    ...['--grid', 'small', '--train-batches', '2', '--valid-batches', '1', '--store', store, '--out', out],
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise((r) => child.on('close', r));
  expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  expect(stdout).toMatch(/\(a\) random/);
  expect(stdout).toMatch(/\(b\) tpe\+asha/);
  expect(stdout).toMatch(/grid's best/);
  const result = JSON.parse(fs.readFileSync(out, 'utf8')) as {
    runs: Array<{ method: string; spent: number; trials: number; curve: Array<[number, number]>; best: number }>;
    grid: { configs: number; spent: number; cached: number };
  };
  for (const r of result.runs) {
    expect(r.spent).toBe(14); // the budget, to the epoch
    expect(r.curve.at(-1)![1]).toBe(r.best);
  }
  const random = result.runs.find((r) => r.method === 'random')!;
  const tpe = result.runs.find((r) => r.method === 'tpe')!;
  expect(random.trials).toBe(4); // 4 + 4 + 4 + 2 epochs: no trial of random search is stopped early
  expect(tpe.trials).toBeGreaterThan(random.trials); // ASHA pauses trials at its rungs (1, 2 epochs)
  expect(result.grid.configs).toBe(6);
  // The grid is cached by config: a second run trains none of it again.
  const again = spawnSync(process.execPath, [...args.slice(0, 1), '--methods', 'random', ...args.slice(3)], { encoding: 'utf8' });
  expect(again.status).toBe(0);
  expect((JSON.parse(fs.readFileSync(out, 'utf8')) as typeof result).grid).toMatchObject({ configs: 6, cached: 6, spent: result.grid.spent });
});

test('epochs to reach a target, the best after some epochs, and the median', () => {
  const curve: Array<[number, number]> = [
    [1, 0.5],
    [4, 0.8],
    [9, 0.9],
  ];
  expect(epochsToReach(curve, 0.8)).toBe(4);
  expect(epochsToReach(curve, 0.85)).toBe(9);
  expect(epochsToReach(curve, 0.95)).toBeNull();
  expect([0, 1, 3, 4, 8, 9, 100].map((e) => bestAt(curve, e))).toEqual([0, 0.5, 0.5, 0.8, 0.8, 0.9, 0.9]);
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 2, 3])).toBe(2.5);
});
