/**
 * How long one training step takes (forward, backward through time, Adam) for the seed study's
 * model — batch 32, input 3, GRU 64, 20 classes — at 20 and 51 timesteps and on real padded
 * batches, for every implementation at hand, measured in one command so the ratios hold even on
 * a busy machine:
 *
 *   npm run bench:train -- [--rounds 3] [--steps 30] [--warmup 10] [--pooling mean] [--rows a,b]
 *
 * Rows: stock `tf.layers.gru` per backend (what TensorFlow.js users get today; a different GRU:
 * reset gate before the product, hard sigmoid, output at the last step), the project's op-by-op
 * GRU (engine `tfjs`), its GRU as one custom op (engine `fused-gru`), the whole-step kernel
 * (engine `fused`) as committed WebAssembly and — when `npm run build:kernel-native` made it here — as
 * the native build of the same C, and PyTorch on one CPU thread when SWEEPS_BENCH_PYTHON names a
 * Python with torch (bench/setup-torch.sh makes one). Each row runs in its own process, rows run one after
 * another, and with --rounds N the whole table is measured N times, interleaved; the figures are
 * medians over rounds of each round's median over --steps timed steps.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../ml/backend';
import { gatherBatch, planBatches, type Batch } from '../ml/batches';
import { FusedTrainer } from '../ml/kernel/engine';
import { kernel, kernelAvailable } from '../ml/kernel/load';
import { GruClassifier } from '../ml/model';
import { Adam } from '../ml/optim';
import { readPadded } from '../ml/padded-data';
import type { Pooling } from '../ml/pooling';
import { rngFor } from '../ml/rng';
import { trainStep } from '../ml/trainer';
import { realPadded } from './real-data';

const HIDDEN = 64;
const CLASSES = 20;
const FEATURES = 3;
const BATCH = 32;

interface BatchRef {
  size: number;
  steps: number;
  features: number;
  /** Byte offsets into the .bin file. */
  x: number;
  lengths: number;
  labels: number;
}

interface Scenario {
  id: string;
  label: string;
  warmup: BatchRef[];
  timed: BatchRef[];
}

/** What every row (and torch_step.py) reads: the same batches, byte for byte. */
interface Spec {
  bin: string;
  pooling: Pooling;
  hidden: number;
  classes: number;
  features: number;
  seed: number;
  scenarios: Scenario[];
}

type RowId =
  | 'stock@wasm'
  | 'stock@tensorflow'
  | 'stock@cpu'
  | 'tfjs@wasm'
  | 'tfjs@tensorflow'
  | 'fused-gru@wasm'
  | 'fused-gru@tensorflow'
  | 'fused'
  | 'fused-native'
  | 'torch';

const ROWS: Array<{ id: RowId; label: string }> = [
  { id: 'stock@wasm', label: 'stock tf.layers.gru, wasm' },
  { id: 'stock@tensorflow', label: 'stock tf.layers.gru, tfjs-node' },
  { id: 'stock@cpu', label: 'stock tf.layers.gru, cpu' },
  { id: 'tfjs@wasm', label: 'project GRU op by op (engine tfjs), wasm' },
  { id: 'tfjs@tensorflow', label: 'project GRU op by op (engine tfjs), tfjs-node' },
  { id: 'fused-gru@wasm', label: 'fused GRU custom op (engine fused-gru), wasm' },
  { id: 'fused-gru@tensorflow', label: 'fused GRU custom op (engine fused-gru), tfjs-node' },
  { id: 'fused', label: 'whole-step kernel (engine fused), wasm build' },
  { id: 'fused-native', label: 'whole-step kernel (engine fused), native build' },
  { id: 'torch', label: 'PyTorch, 1 thread' },
];

// ---------------------------------------------------------------------------------------------
// The batches.

function syntheticBatches(T: number, count: number, seed: string): Batch[] {
  const rng = rngFor(7, 'bench', seed, T);
  return Array.from({ length: count }, () => ({
    x: rng.fillUniform(new Float32Array(BATCH * T * FEATURES), -2, 2),
    lengths: new Int32Array(BATCH).fill(T),
    labels: Int32Array.from({ length: BATCH }, () => rng.int(CLASSES)),
    size: BATCH,
    steps: T,
    features: FEATURES,
  }));
}

function writeSpec(dir: string, pooling: Pooling, paddedPath: string, steps: number, warmup: number): string {
  const data = readPadded(paddedPath);
  // The reference recipe's epoch 1 for seed 1: batches of 32 padded to their own longest sequence.
  const plan = planBatches(data.train, BATCH, 'batch-max', rngFor(1, 'train-order', 1));
  const real = plan.map((rows) => gatherBatch(data.train, data.maxLength, data.features, rows));
  if (real.length < steps + warmup) throw new Error(`only ${real.length} real batches for ${warmup} + ${steps} steps`);
  const chunks: Buffer[] = [];
  let offset = 0;
  const put = (a: Float32Array | Int32Array): number => {
    const at = offset;
    chunks.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    offset += a.byteLength;
    return at;
  };
  const refs = (batches: Batch[]): BatchRef[] =>
    batches.map((b) => ({ size: b.size, steps: b.steps, features: b.features, x: put(b.x), lengths: put(b.lengths), labels: put(b.labels) }));
  const cycle = (batches: Batch[], n: number): Batch[] => Array.from({ length: n }, (_, i) => batches[i % batches.length]!);
  const meanT = real.slice(0, steps).reduce((s, b) => s + b.steps, 0) / steps;
  const scenarios: Scenario[] = [
    { id: 'T20', label: '20 steps', warmup: refs(cycle(syntheticBatches(20, 4, 'warm'), warmup)), timed: refs(cycle(syntheticBatches(20, 8, 'timed'), steps)) },
    { id: 'T51', label: '51 steps', warmup: refs(cycle(syntheticBatches(51, 4, 'warm'), warmup)), timed: refs(cycle(syntheticBatches(51, 8, 'timed'), steps)) },
    { id: 'real', label: `real (T̄=${meanT.toFixed(1)})`, warmup: refs(real.slice(real.length - warmup)), timed: refs(real.slice(0, steps)) },
  ];
  const bin = join(dir, 'batches.bin');
  writeFileSync(bin, Buffer.concat(chunks));
  const spec: Spec = { bin, pooling, hidden: HIDDEN, classes: CLASSES, features: FEATURES, seed: 1, scenarios };
  const specPath = join(dir, 'spec.json');
  writeFileSync(specPath, JSON.stringify(spec));
  return specPath;
}

function loadBatches(spec: Spec, refs: BatchRef[]): Batch[] {
  const blob = readFileSync(spec.bin);
  const bytes = new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength);
  // Copies, so every array is aligned whatever its offset.
  const f32 = (at: number, n: number) => new Float32Array(bytes.slice(at, at + n * 4).buffer);
  const i32 = (at: number, n: number) => new Int32Array(bytes.slice(at, at + n * 4).buffer);
  return refs.map((r) => ({
    x: f32(r.x, r.size * r.steps * r.features),
    lengths: i32(r.lengths, r.size),
    labels: i32(r.labels, r.size),
    size: r.size,
    steps: r.steps,
    features: r.features,
  }));
}

// ---------------------------------------------------------------------------------------------
// One row, in its own process.

type Step = (batch: Batch) => void;

async function makeStep(row: RowId, spec: Spec): Promise<Step> {
  const [kind, backendName] = row.split('@') as [string, string | undefined];
  if (kind === 'fused' || kind === 'fused-native') {
    const maxSteps = Math.max(...spec.scenarios.flatMap((s) => [...s.warmup, ...s.timed].map((b) => b.steps)));
    // The kernel needs no TensorFlow.js backend; the model only supplies PyTorch's initialisation.
    await initBackend('cpu');
    const init = new GruClassifier({ inputSize: FEATURES, hidden: HIDDEN, layers: 1, dropout: 0, classes: CLASSES, pooling: spec.pooling }, rngFor(1, 'init'));
    const trainer = new FusedTrainer(
      { inputSize: FEATURES, hidden: HIDDEN, layers: 1, classes: CLASSES, dropout: 0, pooling: spec.pooling, maxSteps, maxBatch: BATCH },
      { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-5 },
      kernel(kind === 'fused' ? 'wasm' : 'native'),
    );
    const zeros = init.params.map((p) => new Float32Array(p.variable.size));
    trainer.loadState(init.getWeights(), { step: 0, m: zeros, v: zeros });
    init.dispose();
    return (batch) => void trainer.step(batch, 1e-3);
  }

  const used = await initBackend(backendName as 'wasm' | 'tensorflow' | 'cpu');
  if (used !== backendName) throw new Error(`asked for backend ${backendName}, got ${used}`);
  if (kind === 'stock') {
    const model = tf.sequential({
      layers: [tf.layers.gru({ units: HIDDEN, inputShape: [null, FEATURES] }), tf.layers.dense({ units: CLASSES })],
    });
    const optimizer = tf.train.adam(1e-3);
    return (batch) =>
      tf.tidy(() => {
        const x = tf.tensor3d(batch.x, [batch.size, batch.steps, batch.features]);
        const y = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), CLASSES);
        const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor2D) as tf.Scalar, true);
        loss?.dataSync();
      });
  }
  const model = new GruClassifier(
    { inputSize: FEATURES, hidden: HIDDEN, layers: 1, dropout: 0, classes: CLASSES, pooling: spec.pooling, gru: kind === 'fused-gru' ? 'fused' : 'ops' },
    rngFor(1, 'init'),
  );
  const adam = new Adam(model.variables, { lr: 1e-3, weightDecay: 1e-5 });
  return (batch) => void trainStep(model, adam, batch);
}

async function runRow(row: RowId, specPath: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specPath, 'utf8')) as Spec;
  const step = await makeStep(row, spec);
  const times: Record<string, number[]> = {};
  for (const sc of spec.scenarios) {
    for (const b of loadBatches(spec, sc.warmup)) step(b);
    times[sc.id] = loadBatches(spec, sc.timed).map((b) => {
      const t0 = performance.now();
      step(b);
      return performance.now() - t0;
    });
  }
  process.stdout.write(JSON.stringify({ times, maxRssMB: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

// ---------------------------------------------------------------------------------------------
// The parent: rows × rounds, then the table.

interface RowResult {
  times: Record<string, number[]>;
  maxRssMB?: number;
  torch?: string;
}

function runProcess(cmd: string, args: string[]): Promise<RowResult> {
  return new Promise((resolve, reject) => {
    // The fused GRU op rows measure the committed WebAssembly kernel, as a fresh install runs it.
    const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', SWEEPS_KERNEL: 'wasm' };
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{'))
        return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim().split('\n').slice(-5).join('\n')}`));
      resolve(JSON.parse(line) as RowResult);
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function tfjsNodeLoads(): boolean {
  const r = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' }, stdio: 'ignore' });
  return r.status === 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      spec: { type: 'string' },
      rounds: { type: 'string', default: '1' },
      steps: { type: 'string', default: '30' },
      warmup: { type: 'string', default: '10' },
      pooling: { type: 'string', default: 'mean' },
      rows: { type: 'string' },
    },
  });
  if (values.child !== undefined) return runRow(values.child as RowId, values.spec!);

  const rounds = Number(values.rounds);
  const steps = Number(values.steps);
  const warmup = Number(values.warmup);
  const python = process.env.SWEEPS_BENCH_PYTHON;
  const hasNode = tfjsNodeLoads();
  const wanted = values.rows?.split(',');
  const hasNative = kernelAvailable('native');
  const rows = ROWS.filter(
    (r) =>
      (wanted === undefined || wanted.includes(r.id)) &&
      (hasNode || !r.id.endsWith('@tensorflow')) &&
      (r.id !== 'torch' || python) &&
      (r.id !== 'fused-native' || hasNative),
  );

  const dir = mkdtempSync(join(tmpdir(), 'bench-train-step-'));
  try {
    const store = process.env.SWEEPS_BENCH_STORE ?? join(homedir(), '.cache', 'durable-sweeps', 'bench-store');
    const { path } = await realPadded(store);
    const specPath = writeSpec(dir, values.pooling as Pooling, path, steps, warmup);
    const spec = JSON.parse(readFileSync(specPath, 'utf8')) as Spec;
    console.log(
      `batch ${BATCH}, input ${FEATURES}, hidden ${HIDDEN}, ${CLASSES} classes, pooling ${spec.pooling}; ` +
        `${warmup} warm-up + ${steps} timed steps per figure, ${rounds} round(s); cores: ${availableParallelism()}`,
    );
    if (!hasNode) console.log('tfjs-node does not load here: its rows are left out');
    if (!hasNative) console.log('no native build of the kernel here (npm run build:kernel-native makes one where a C compiler is present)');
    if (!python) console.log('SWEEPS_BENCH_PYTHON is not set: no PyTorch row (bench/setup-torch.sh makes a Python with torch)');

    const results = new Map<RowId, RowResult[]>();
    let torchVersion = '';
    for (let round = 1; round <= rounds; round++) {
      for (const row of rows) {
        process.stderr.write(`round ${round}/${rounds}: ${row.label}…\n`);
        const r =
          row.id === 'torch'
            ? await runProcess(python!, [join(__dirname, '..', '..', 'bench', 'torch_step.py'), specPath])
            : await runProcess(process.execPath, [__filename, '--child', row.id, '--spec', specPath]);
        if (r.torch) torchVersion = `${r.torch}`;
        results.set(row.id, [...(results.get(row.id) ?? []), r]);
      }
    }

    const ms = (row: RowId, sc: string, round: number): number | undefined => {
      const r = results.get(row)?.[round];
      return r === undefined ? undefined : median(r.times[sc]!);
    };
    const fig = (row: RowId, sc: string): number | undefined => {
      const per = Array.from({ length: rounds }, (_, i) => ms(row, sc, i)).filter((v): v is number => v !== undefined);
      return per.length ? median(per) : undefined;
    };
    /** Median over rounds of the per-round ratio: both figures of a ratio come from the same round. */
    const ratio = (a: RowId, b: RowId, sc: string): number | undefined => {
      const per = Array.from({ length: rounds }, (_, i) => {
        const x = ms(a, sc, i);
        const y = ms(b, sc, i);
        return x !== undefined && y !== undefined ? x / y : undefined;
      }).filter((v): v is number => v !== undefined);
      return per.length ? median(per) : undefined;
    };

    const scs = spec.scenarios;
    const pad = (s: string, n: number) => s.padEnd(n);
    const num = (v: number | undefined, digits = 2) => (v === undefined ? '—' : v < 10 ? v.toFixed(digits) : v.toFixed(1));
    console.log(`\nms per training step (median)`);
    console.log(`${pad('implementation', 58)}${scs.map((s) => pad(s.label, 18)).join('')}max RSS`);
    for (const row of rows) {
      const rss = median((results.get(row.id) ?? []).map((r) => r.maxRssMB ?? NaN));
      console.log(`${pad(row.label, 58)}${scs.map((s) => pad(num(fig(row.id, s.id)), 18)).join('')}${Number.isNaN(rss) ? '' : `${rss.toFixed(0)} MB`}`);
    }
    if (torchVersion) console.log(`(PyTorch ${torchVersion}, torch.set_num_threads(1))`);

    const have = new Set(rows.map((r) => r.id));
    const pairs: Array<[RowId, RowId, string]> = [
      ['fused', 'torch', 'fused (wasm) / PyTorch (target ≤ 0.5)'],
      ['fused-native', 'torch', 'fused (native) / PyTorch'],
      ['stock@wasm', 'fused', 'stock tf.layers.gru on wasm / fused wasm (target ≥ 10)'],
      ['stock@tensorflow', 'fused', 'stock tf.layers.gru on tfjs-node / fused wasm'],
      ['stock@cpu', 'fused', 'stock tf.layers.gru on cpu / fused wasm'],
      ['tfjs@wasm', 'fused', 'op-by-op (wasm) / fused wasm'],
      ['tfjs@tensorflow', 'fused', 'op-by-op (tfjs-node) / fused wasm'],
      ['fused-gru@wasm', 'fused', 'fused GRU op (wasm) / fused wasm'],
      ['fused-gru@wasm', 'torch', 'fused GRU op (wasm) / PyTorch'],
    ];
    console.log(`\nratios (median over rounds of same-round ratios)`);
    for (const [a, b, label] of pairs) {
      if (!have.has(a) || !have.has(b)) continue;
      console.log(`${pad(label, 58)}${scs.map((s) => pad(num(ratio(a, b, s.id)), 18)).join('')}`);
    }
    if (!have.has('torch')) {
      const fused = fig('fused', 'T20');
      if (fused !== undefined) {
        console.log(
          `\nPyTorch not measured here. ENVIRONMENT.md's figure for PyTorch on one thread of this kind of machine, ` +
            `6–7 ms at 20 steps (NOT measured in this run), would give fused / PyTorch ≈ ${(fused / 7).toFixed(2)}–${(fused / 6).toFixed(2)}.`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
