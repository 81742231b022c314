/**
 * `npm run bench:tune`: how fast three tuners find a good gestures model, for the same budget of
 * training epochs, side by side in one command (issue 15, item 6). Tuned: lr, weight_decay,
 * hidden, dropout and pooling of the GRU (2 layers) on the padded gestures data.
 *
 *   (a) random search           the project's sampler, every trial trained to the end
 *   (b) TPE + pruning           the project's TPE with ASHA (or Hyperband) that pauses and promotes
 *   (c) Optuna                  TPESampler + SuccessiveHalvingPruner, ask-and-tell (bench/optuna_tune.py)
 *   grid                        a coarse grid of the same space, every config to the end: the reference
 *
 * (a) and (b) run in this process through activities/search.ts's `next` — the round function the
 * sweep workflow's suggest activity runs (same samplers, same search/scheduler.ts, same pruner
 * decisions, one trial in flight) — without Temporal, so what is compared is the search, not the
 * engine. All of them train through the same one-trial JSON trainer (bench/tune-trial.ts), and
 * every method's best-so-far counts every epoch it trained, in the order it trained them.
 * Grid results are cached on disk by config (<store>/tune-grid), so a re-run pays only for the searches.
 *
 *   node dist/bench/tune.js [--seeds 1,2,3] [--budget 180] [--max-epochs 27] [--grace 3] [--eta 3]
 *                           [--pruner asha|hyperband] [--n-startup 10] [--optuna-n-startup 10]
 *                           [--grid full|small|skip]
 *                           [--methods random,tpe,optuna] [--quick] [--train-batches N] [--valid-batches N]
 *                           [--store <dir>] [--out <file.json>]
 *   (the archive: SWEEPS_DATA, else ../shared/data/gestures-dataset.zip; Optuna: bench/setup-optuna.sh)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { next, type FinishedRun, type SearchState } from '../activities/search';
import { trainParams } from '../activities/train';
import type { PlanSearch } from '../pipeline/plan';
import { prunerConfigSchema } from '../search/pruners';
import { parseSearchSpace, type Params } from '../search/space';
import { realPadded } from './real-data';
import { runSegment, type TrialRequest } from './tune-protocol';

/** The issue's tuning problem (bench/optuna_tune.py's DEFAULT_SPACE; passed to it as --space). */
export const TUNE_SPACE = parseSearchSpace({
  lr: { type: 'loguniform', low: 1e-4, high: 3e-2 },
  weight_decay: { type: 'loguniform', low: 1e-6, high: 1e-2 },
  hidden: { type: 'int', low: 16, high: 128, step: 16 },
  dropout: { type: 'uniform', low: 0, high: 0.5 },
  pooling: { type: 'choice', values: ['last', 'mean', 'max'] },
});

/** The coarse grid over the same space: every combination trained to the end. */
const GRIDS: Record<'full' | 'small', Record<string, Array<string | number>>> = {
  full: { lr: [1e-3, 5e-3], weight_decay: [1e-5, 1e-3], hidden: [32, 96], dropout: [0, 0.3], pooling: ['last', 'mean', 'max'] },
  small: { lr: [3e-3], weight_decay: [1e-5], hidden: [32, 96], dropout: [0.2], pooling: ['last', 'mean', 'max'] },
};

/** Bump when the trainer's numbers or the grid cache's layout change. */
const GRID_CACHE_VERSION = 1;

interface Run {
  method: string;
  seed: number;
  best: number;
  /** Epochs spent when `best` was first reached. */
  epochsToBest: number;
  spent: number;
  trials: number;
  /** [epochs spent, best so far] at every improvement. */
  curve: Array<[number, number]>;
}

/** Best-so-far over epochs as they are trained. */
class Tracker {
  spent = 0;
  best = -Infinity;
  curve: Array<[number, number]> = [];
  epoch(acc: number): void {
    this.spent++;
    if (acc > this.best) {
      this.best = acc;
      this.curve.push([this.spent, acc]);
    }
  }
}

/** Epochs spent until the best so far reached `target`, or null. */
export function epochsToReach(curve: ReadonlyArray<readonly [number, number]>, target: number): number | null {
  const hit = curve.find(([, b]) => b >= target - 1e-9);
  return hit ? hit[0] : null;
}

/** The best so far after `epochs` epochs (0 before the first). */
export function bestAt(curve: ReadonlyArray<readonly [number, number]>, epochs: number): number {
  let best = 0;
  for (const [e, b] of curve) if (e <= epochs) best = b;
  return best;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Settings {
  seeds: number[];
  budget: number;
  maxEpochs: number;
  grace: number;
  eta: number;
  pruner: 'asha' | 'hyperband';
  nStartup: number;
  optunaNStartup: number;
  trainSeed: number;
  fixed: Record<string, unknown>;
  trainer: string[];
}

/** The early-stopping best of a trial's epochs: the valid accuracy at its lowest valid loss (what a sweep reports as the trial's value). */
function trialValue(epochs: ReadonlyArray<Record<string, number>>): number {
  let best = epochs[0]!;
  for (const e of epochs) if (e.valid_loss! < best.valid_loss!) best = e;
  return best.valid_acc!;
}

/** (a) and (b): the project's search, one trial in flight, round after round of activities/search.ts's `next`. */
async function projectSearch(method: 'random' | 'tpe', seed: number, s: Settings): Promise<Run> {
  const search: PlanSearch = {
    sampler: method,
    seed,
    ...(method === 'tpe' ? { nStartupTrials: s.nStartup } : {}),
    trials: 100_000, // the epoch budget ends the search
    metric: 'valid_acc',
    direction: 'maximize',
    space: TUNE_SPACE,
    grid: {},
    cells: [{}],
    with: { ...s.fixed, seed: s.trainSeed, epochs: s.maxEpochs },
    ...(method === 'tpe' ? { prune: prunerConfigSchema.parse({ rule: s.pruner, grace_epochs: s.grace, reduction_factor: s.eta }) } : {}),
  };
  const parse = (v: unknown) => trainParams.parse(v) as Record<string, unknown>;
  const track = new Tracker();
  const trials = new Map<string, { epochs: Array<Record<string, number>>; checkpoint: string | null }>();
  let state: SearchState = { cells: [{ cell: {}, trials: [] }] };
  let finished: FinishedRun[] = [];
  while (track.spent < s.budget) {
    const round = next(state, { search, concurrency: 1, finished }, parse);
    state = round.state;
    if (round.trials.length === 0) break;
    finished = [];
    for (const segment of round.trials) {
      if (track.spent >= s.budget) break;
      // With pruning a run is a segment `<trial>-e<epoch>` of a trial; without, the whole trial.
      const trial = search.prune ? state.cells[0]!.trials.find((t) => t.segment === segment.id)!.trial : segment.id;
      const rec = trials.get(trial) ?? { epochs: [], checkpoint: null };
      trials.set(trial, rec);
      const { seed: trainSeed, epochs, pause_at_epoch: pauseAt, ...params } = segment.params;
      const request: TrialRequest = {
        trial: `${method}-s${seed}-${trial}`,
        seed: trainSeed as number,
        params: params as Params,
        from_epoch: rec.epochs.length,
        to_epoch: (pauseAt ?? epochs) as number,
        resume_from: rec.checkpoint,
      };
      const got = await runSegment(s.trainer, request, (e) => {
        track.epoch(e.metrics.valid_acc!);
        return track.spent < s.budget;
      });
      rec.epochs.push(...got.epochs.map((e) => e.metrics));
      rec.checkpoint = got.done.checkpoint;
      finished.push({ trial: segment.id, value: trialValue(rec.epochs), epochs: rec.epochs, stoppedEarly: got.done.stopped_early });
    }
  }
  return { method, seed, best: track.best, epochsToBest: track.curve.at(-1)?.[0] ?? 0, spent: track.spent, trials: trials.size, curve: track.curve };
}

/** (c): bench/optuna_tune.py driving the same trainer. */
async function optunaSearch(seed: number, s: Settings, python: string, work: string): Promise<Run> {
  const out = join(work, `optuna-s${seed}.json`);
  const space = join(work, 'space.json');
  writeFileSync(space, JSON.stringify(TUNE_SPACE));
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const args = [
    join(__dirname, '..', '..', 'bench', 'optuna_tune.py'),
    'run',
    '--trainer',
    s.trainer.map(quote).join(' '),
    '--space',
    space,
    '--seeds',
    String(seed),
    '--epoch-budget',
    String(s.budget),
    '--max-epochs',
    String(s.maxEpochs),
    '--min-resource',
    String(s.grace),
    '--reduction-factor',
    String(s.eta),
    '--n-startup',
    String(s.optunaNStartup),
    '--train-seed',
    String(s.trainSeed),
    '--out',
    out,
  ];
  const code = await new Promise<number | null>((done, fail) => {
    const child = spawn(python, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', fail);
    child.on('close', done);
  });
  if (code !== 0) throw new Error(`bench/optuna_tune.py (seed ${seed}) exited with code ${code}; see its message above`);
  const r = (
    JSON.parse(readFileSync(out, 'utf8')) as { seeds: Array<{ best: number; epochs_spent: number; curve: Array<[number, number]>; trials: unknown[] }> }
  ).seeds[0]!;
  const curve: Array<[number, number]> = [];
  for (const [e, b] of r.curve) if (curve.length === 0 || b > curve.at(-1)![1]) curve.push([e, b]);
  return { method: 'optuna', seed, best: r.best, epochsToBest: curve.at(-1)?.[0] ?? 0, spent: r.epochs_spent, trials: r.trials.length, curve };
}

/** Every config of the grid trained to the end (or early stopping), each cached on disk by its config. */
async function gridSearch(
  grid: Record<string, Array<string | number>>,
  s: Settings,
  cacheDir: string,
  paddedKey: string,
): Promise<Run & { configs: number; cached: number }> {
  let configs: Params[] = [{}];
  for (const [k, vs] of Object.entries(grid)) configs = configs.flatMap((c) => vs.map((v) => ({ ...c, [k]: v })));
  mkdirSync(cacheDir, { recursive: true });
  const track = new Tracker();
  let cached = 0;
  for (const [i, params] of configs.entries()) {
    const identity = { version: GRID_CACHE_VERSION, data: paddedKey, fixed: s.fixed, params, seed: s.trainSeed, epochs: s.maxEpochs };
    const key = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32);
    const file = join(cacheDir, `${key}.json`);
    let accs: number[];
    if (existsSync(file)) {
      accs = (JSON.parse(readFileSync(file, 'utf8')) as { valid_acc: number[] }).valid_acc;
      cached++;
    } else {
      const got = await runSegment(
        s.trainer,
        { trial: `grid-${key}`, seed: s.trainSeed, params, from_epoch: 0, to_epoch: s.maxEpochs, resume_from: null },
        () => true,
      );
      accs = got.epochs.map((e) => e.metrics.valid_acc!);
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ identity, valid_acc: accs }));
      renameSync(tmp, file);
    }
    for (const a of accs) track.epoch(a);
    if ((i + 1) % 8 === 0 || i + 1 === configs.length) console.log(`  grid: ${i + 1}/${configs.length} configs (${cached} cached), ${track.spent} epochs`);
  }
  return {
    method: 'grid',
    seed: 0,
    best: track.best,
    epochsToBest: track.curve.at(-1)?.[0] ?? 0,
    spent: track.spent,
    trials: configs.length,
    curve: track.curve,
    configs: configs.length,
    cached,
  };
}

function optunaPython(): string {
  const venv = process.env.SWEEPS_OPTUNA_PYTHON ?? join(homedir(), '.cache', 'durable-sweeps', 'optuna-venv', 'bin', 'python');
  if (!existsSync(venv)) throw new Error(`no Optuna environment at ${venv}: run bash bench/setup-optuna.sh (or set SWEEPS_OPTUNA_PYTHON)`);
  return venv;
}

const pad = (v: string, n: number) => v.padStart(n);
const acc = (r: Run) => `${r.best.toFixed(4)} @ ${r.epochsToBest}`;

function table(runs: Run[], grid: (Run & { configs: number }) | undefined, s: Settings): { lines: string[]; targets: Record<string, unknown> } {
  const lines: string[] = [];
  const methods = [...new Set(runs.map((r) => r.method))];
  const label: Record<string, string> = {
    random: '(a) random',
    tpe: `(b) tpe+${s.pruner}`,
    optuna: '(c) optuna tpe+sha',
  };
  const w = 20;
  lines.push(`best valid accuracy @ epochs spent to reach it (budget ${s.budget} epochs per search, ≤ ${s.maxEpochs} per trial)`);
  lines.push(`${'method'.padEnd(20)}${s.seeds.map((x) => pad(`seed ${x}`, w)).join('')}${pad('median', w)}${pad('trials (median)', w)}`);
  for (const m of methods) {
    const rs = s.seeds.map((x) => runs.find((r) => r.method === m && r.seed === x)!);
    const med = `${median(rs.map((r) => r.best)).toFixed(4)} @ ${median(rs.map((r) => r.epochsToBest))}`;
    lines.push(`${(label[m] ?? m).padEnd(20)}${rs.map((r) => pad(acc(r), w)).join('')}${pad(med, w)}${pad(String(median(rs.map((r) => r.trials))), w)}`);
  }
  if (grid) lines.push(`${`grid (${grid.configs} configs)`.padEnd(20)}${pad(acc(grid), w)}   (cost: ${grid.spent} epochs)`);
  // Best so far against epochs spent: the median over seeds at fractions of the budget.
  const marks = [...new Set([1 / 9, 2 / 9, 1 / 3, 2 / 3, 1].map((f) => Math.max(1, Math.round(f * s.budget))))];
  lines.push('');
  lines.push(`best valid accuracy so far (median over seeds) after epochs spent`);
  lines.push(`${'method'.padEnd(20)}${marks.map((e) => pad(String(e), 9)).join('')}`);
  for (const m of methods) {
    const rs = runs.filter((r) => r.method === m);
    lines.push(`${(label[m] ?? m).padEnd(20)}${marks.map((e) => pad(median(rs.map((r) => bestAt(r.curve, e))).toFixed(4), 9)).join('')}`);
  }
  if (grid) lines.push(`${`grid (in its order)`.padEnd(20)}${marks.map((e) => pad(bestAt(grid.curve, e).toFixed(4), 9)).join('')}`);
  const targets: Record<string, unknown> = {};
  const tpe = s.seeds.map((x) => runs.find((r) => r.method === 'tpe' && r.seed === x));
  const compare = (name: string, target: (seed: number) => { value: number; epochs: number } | undefined, what: string) => {
    const rows = s.seeds.map((x, i) => {
      const t = target(x);
      const b = tpe[i];
      if (!t || !b) return undefined;
      const reached = epochsToReach(b.curve, t.value);
      return { seed: x, target: t.value, epochs: t.epochs, tpeEpochs: reached, ratio: reached === null ? null : t.epochs / reached };
    });
    if (rows.some((r) => r === undefined)) return;
    const rs = rows as Array<NonNullable<(typeof rows)[number]>>;
    const cells = rs.map((r) => pad(r.tpeEpochs === null ? `not reached` : `${r.tpeEpochs} vs ${r.epochs} (${r.ratio!.toFixed(1)}×)`, w));
    const ratios = rs.map((r) => r.ratio ?? 0);
    lines.push(`${what.padEnd(20)}${cells.join('')}${pad(`${median(ratios).toFixed(1)}×`, w)}`);
    targets[name] = rs;
  };
  lines.push('');
  lines.push(`(b)'s epochs to reach the target vs the target's own epochs (ratio: how many times fewer; ≥ 1 meets "no more", ≥ 3 the grid target;`);
  lines.push(`the median counts "not reached" as 0×)`);
  compare(
    'tpe_vs_optuna',
    (x) => {
      const o = runs.find((r) => r.method === 'optuna' && r.seed === x);
      return o && { value: o.best, epochs: o.epochsToBest };
    },
    "optuna's best",
  );
  if (grid) compare('tpe_vs_grid', () => ({ value: grid.best, epochs: grid.spent }), "grid's best");
  const random = s.seeds.map((x) => runs.find((r) => r.method === 'random' && r.seed === x));
  if (random.every(Boolean)) {
    compare(
      'tpe_vs_random',
      (x) => {
        const r = random[s.seeds.indexOf(x)]!;
        return { value: r.best, epochs: r.epochsToBest };
      },
      "random's best",
    );
  }
  return { lines, targets };
}

function writeJsonAtomic(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 1)}\n`);
  renameSync(tmp, file);
}

function positive(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      budget: { type: 'string' },
      'max-epochs': { type: 'string' },
      grace: { type: 'string', default: '3' },
      eta: { type: 'string', default: '3' },
      pruner: { type: 'string', default: 'asha' },
      'n-startup': { type: 'string' },
      'optuna-n-startup': { type: 'string' },
      grid: { type: 'string' },
      methods: { type: 'string', default: 'random,tpe,optuna' },
      quick: { type: 'boolean', default: false },
      'train-batches': { type: 'string' },
      'valid-batches': { type: 'string' },
      store: { type: 'string', default: process.env.SWEEPS_BENCH_STORE ?? join(homedir(), '.cache', 'durable-sweeps', 'bench-store') },
      out: { type: 'string', default: join(tmpdir(), 'durable-sweeps-bench-tune.json') },
    },
  });
  const quick = values.quick!;
  const seeds = (values.seeds ?? '1,2,3').split(',').map((x) => positive('seeds', x.trim()));
  if (seeds.length < 1) throw new Error('--seeds: give at least one seed');
  if (values.pruner !== 'asha' && values.pruner !== 'hyperband') throw new Error(`--pruner: asha or hyperband, got ${values.pruner}`);
  const gridKind = values.grid ?? (quick ? 'small' : 'full');
  if (gridKind !== 'full' && gridKind !== 'small' && gridKind !== 'skip') throw new Error(`--grid: full, small or skip, got ${gridKind}`);
  const methods = values.methods!.split(',');
  for (const m of methods) if (!['random', 'tpe', 'optuna'].includes(m)) throw new Error(`--methods: random, tpe, optuna; got ${m}`);
  const trainBatches = values['train-batches'] ?? (quick ? '10' : undefined);
  const fixed: Record<string, unknown> = {
    layers: 2,
    batch_size: 32,
    ...(trainBatches ? { train_batches: positive('train-batches', trainBatches) } : {}),
    ...(values['valid-batches'] ? { valid_batches: positive('valid-batches', values['valid-batches']) } : {}),
  };

  const python = methods.includes('optuna') ? optunaPython() : '';
  const { path: padded } = await realPadded(values.store!);
  const work = mkdtempSync(join(tmpdir(), 'bench-tune-'));
  const s: Settings = {
    seeds,
    budget: positive('budget', values.budget ?? (quick ? '36' : '180')),
    maxEpochs: positive('max-epochs', values['max-epochs'] ?? (quick ? '9' : '27')),
    grace: positive('grace', values.grace),
    eta: positive('eta', values.eta),
    pruner: values.pruner,
    nStartup: positive('n-startup', values['n-startup'] ?? (quick ? '4' : '10')),
    optunaNStartup: positive('optuna-n-startup', values['optuna-n-startup'] ?? (quick ? '4' : '10')),
    trainSeed: 1,
    fixed,
    trainer: [process.execPath, join(__dirname, 'tune-trial.js'), '--padded', padded, '--work', join(work, 'trials'), '--with', JSON.stringify(fixed)],
  };
  const load0 = loadavg()[0]!;
  const started = Date.now();
  console.log(
    `bench:tune: seeds ${seeds.join(',')}, budget ${s.budget} epochs per search, ≤ ${s.maxEpochs} per trial, ` +
      `${s.pruner} grace ${s.grace} η ${s.eta}, TPE startup ${s.nStartup} (b), ${s.optunaNStartup} (c), fixed ${JSON.stringify(fixed)}; load average ${load0.toFixed(2)}`,
  );
  try {
    const runs: Run[] = [];
    for (const seed of seeds) {
      for (const m of methods) {
        const t0 = Date.now();
        const r = m === 'optuna' ? await optunaSearch(seed, s, python, work) : await projectSearch(m as 'random' | 'tpe', seed, s);
        runs.push(r);
        console.log(
          `  seed ${seed} ${m.padEnd(7)} best ${r.best.toFixed(4)} at ${r.epochsToBest} of ${r.spent} epochs, ${r.trials} trials (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
        );
      }
    }
    const grid =
      gridKind === 'skip'
        ? undefined
        : await gridSearch(GRIDS[gridKind], s, join(values.store!, 'tune-grid'), createHash('sha256').update(resolve(padded)).digest('hex').slice(0, 16));
    const { lines, targets } = table(runs, grid, s);
    const load1 = loadavg()[0]!;
    console.log('');
    for (const l of lines) console.log(l);
    console.log(`\nwall ${((Date.now() - started) / 60000).toFixed(1)} min; load average ${load0.toFixed(2)} → ${load1.toFixed(2)} (2 cores)`);
    writeJsonAtomic(resolve(values.out!), { settings: { ...s, trainer: undefined, grid: gridKind }, runs, grid, targets, load: [load0, load1] });
    console.log(`wrote ${resolve(values.out!)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(`bench:tune: ${err.message}`);
    process.exit(1);
  });
}
