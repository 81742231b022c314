/**
 * How long one training step takes (forward, backward through time, Adam) for the seed study's
 * model — batch 32, input 3, GRU 64, 20 classes — at 20 and 51 timesteps and on real padded
 * batches, for every implementation at hand, measured in one command so the ratios hold even on
 * a busy machine:
 *
 *   npm run bench:train -- [--rounds 3] [--steps 30] [--warmup 10] [--pooling mean] [--rows a,b] [--batch 32]
 *
 * Rows: stock `tf.layers.gru` per backend (what TensorFlow.js users get today; a different GRU:
 * reset gate before the product, hard sigmoid, output at the last step), the project's op-by-op
 * GRU (engine `tfjs`), its GRU as one custom op (engine `fused-gru`), the whole-step kernel
 * (engine `fused`) as committed WebAssembly (gru.wasm, and gru-relaxed.wasm where this Node runs
 * relaxed SIMD) and — when `npm run build:kernel-native` made it here — as the native build of the
 * same C, with AVX-512/AVX2 only (fused-native) and with its products on AMX tiles where the CPU
 * has them (fused-amx), and PyTorch on one CPU thread when SWEEPS_BENCH_PYTHON names a Python with
 * torch (bench/setup-torch.sh makes one). The kernel rows also time gru.c's peak_madd, the core's
 * peak multiply-add rate in their vectors (and the AMX row amx_peak, the tile unit's bf16 rate),
 * and the table of achieved GMAC/s sets them side by side. Each row runs in its own process, rows run one after
 * another, and with --rounds N the whole table is measured N times, interleaved; the figures are
 * medians over rounds of each round's median over --steps timed steps.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../ml/backend';
import { gatherBatch, planBatches, type Batch } from '../ml/batches';
import { FusedTrainer } from '../ml/kernel/engine';
import { kernel, kernelAvailable, kernelDir, profileKernel, PROFILE_PHASES, type Kernel } from '../ml/kernel/load';
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
/** The batch size (--batch; the seed study's is 32). */
const DEFAULT_BATCH = 32;

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
  /** Long sequences: only the kernel and PyTorch run them, each in a process of its own (so its max RSS is this scenario's). */
  long?: boolean;
  /** Timesteps, for the per-timestep column (synthetic scenarios). */
  T?: number;
}

/** What every row (and torch_step.py) reads: the same batches, byte for byte. */
interface Spec {
  bin: string;
  pooling: Pooling;
  hidden: number;
  classes: number;
  features: number;
  batch: number;
  seed: number;
  /**
   * `cpu`: each step's CPU time (process.cpuUsage here, time.process_time in PyTorch), which a
   * shared machine's other processes inflate far less than wall time (a step preempted for 10 ms
   * counts its own work only); `wall`: performance.now / perf_counter.
   */
  clock: 'cpu' | 'wall';
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
  | 'fused-relaxed'
  | 'fused-native'
  | 'fused-amx'
  | 'profile-wasm'
  | 'profile-relaxed'
  | 'profile-native'
  | 'profile-amx'
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
  { id: 'fused-relaxed', label: 'whole-step kernel (engine fused), wasm relaxed-SIMD build' },
  { id: 'fused-native', label: 'whole-step kernel (engine fused), native, AVX-512' },
  { id: 'fused-amx', label: 'whole-step kernel (engine fused), native, AMX tiles' },
  { id: 'torch', label: 'PyTorch, 1 thread' },
  { id: 'profile-wasm', label: 'whole-step kernel, wasm, profile build' },
  { id: 'profile-relaxed', label: 'whole-step kernel, wasm relaxed SIMD, profile build' },
  { id: 'profile-native', label: 'whole-step kernel, native AVX-512, profile build' },
  { id: 'profile-amx', label: 'whole-step kernel, native AMX, profile build' },
];

/** The rows that also run the long-sequence scenarios (the others would take minutes a step). */
const LONG_ROWS: RowId[] = ['fused', 'fused-relaxed', 'fused-native', 'fused-amx', 'torch'];
const PROFILE_ROWS: RowId[] = ['profile-wasm', 'profile-relaxed', 'profile-native', 'profile-amx'];

// ---------------------------------------------------------------------------------------------
// The batches.

function syntheticBatches(T: number, count: number, seed: string, batch: number): Batch[] {
  const rng = rngFor(7, 'bench', seed, T);
  return Array.from({ length: count }, () => ({
    x: rng.fillUniform(new Float32Array(batch * T * FEATURES), -2, 2),
    lengths: new Int32Array(batch).fill(T),
    labels: Int32Array.from({ length: batch }, () => rng.int(CLASSES)),
    size: batch,
    steps: T,
    features: FEATURES,
  }));
}

function writeSpec(
  dir: string,
  pooling: Pooling,
  clock: Spec['clock'],
  paddedPath: string,
  steps: number,
  warmup: number,
  longTs: number[],
  longSteps: number,
  batch: number,
): string {
  const data = readPadded(paddedPath);
  // The reference recipe's epoch 1 for seed 1: batches of 32 (--batch) padded to their own longest
  // sequence; the timed steps take the first, the warm-up the last. An epoch of larger batches
  // may hold fewer than warm-up + timed: then every batch is timed, in turn.
  const plan = planBatches(data.train, batch, 'batch-max', rngFor(1, 'train-order', 1));
  const real = plan.map((rows) => gatherBatch(data.train, data.maxLength, data.features, rows));
  if (real.length === 0) throw new Error(`the training split holds no batch of ${batch}`);
  const enough = real.length >= steps + warmup;
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
  const realTimed = enough ? real.slice(0, steps) : cycle(real, steps);
  const realWarm = enough ? real.slice(real.length - warmup) : cycle(real, warmup);
  const meanT = realTimed.reduce((s, b) => s + b.steps, 0) / steps;
  const scenarios: Scenario[] = [
    {
      id: 'T20',
      label: '20 steps',
      warmup: refs(cycle(syntheticBatches(20, 4, 'warm', batch), warmup)),
      timed: refs(cycle(syntheticBatches(20, 8, 'timed', batch), steps)),
    },
    {
      id: 'T51',
      label: '51 steps',
      warmup: refs(cycle(syntheticBatches(51, 4, 'warm', batch), warmup)),
      timed: refs(cycle(syntheticBatches(51, 8, 'timed', batch), steps)),
    },
    { id: 'real', label: `real (T̄=${meanT.toFixed(1)})`, warmup: refs(realWarm), timed: refs(realTimed) },
    ...longTs.map((T) => ({
      id: `T${T}`,
      label: `${T} steps`,
      warmup: refs(syntheticBatches(T, 1, 'warm', batch)),
      timed: refs(cycle(syntheticBatches(T, 2, 'timed', batch), longSteps)),
      long: true,
      T,
    })),
  ];
  scenarios[0]!.T = 20;
  scenarios[1]!.T = 51;
  const bin = join(dir, 'batches.bin');
  writeFileSync(bin, Buffer.concat(chunks));
  const spec: Spec = { bin, pooling, hidden: HIDDEN, classes: CLASSES, features: FEATURES, batch, seed: 1, clock, scenarios };
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

interface RowRunner {
  train: Step;
  /** The evaluation pass (forward and loss, no gradient buffers), where the row has one. */
  evaluate?: Step;
  /** Profile builds only: milliseconds per phase (PROFILE_PHASES) since the last reset. */
  readProfile?: () => number[];
  resetProfile?: () => void;
  /** The core's peak multiply-add rate in this build's vectors (GMAC/s), where the build has gru.c's peak_madd. */
  peak?: () => { gmacs: number; lanes: number };
  /** The AMX tile unit's peak bf16 multiply-add rate (GMAC/s), where the native build has AMX. */
  amxPeak?: () => number;
}

const FUSED_KERNELS: Partial<Record<RowId, () => Kernel>> = {
  fused: () => kernel('wasm'),
  'fused-relaxed': () => kernel('wasm-relaxed'),
  'fused-native': () => kernel('native'),
  'fused-amx': () => kernel('native-amx'),
  'profile-wasm': () => profileKernel('wasm'),
  'profile-relaxed': () => profileKernel('wasm-relaxed'),
  'profile-native': () => profileKernel('native'),
  'profile-amx': () => profileKernel('native-amx'),
};

async function makeRow(row: RowId, spec: Spec, scenarios: Scenario[]): Promise<RowRunner> {
  const [kind, backendName] = row.split('@') as [string, string | undefined];
  const fusedKernel = FUSED_KERNELS[row];
  if (fusedKernel !== undefined) {
    // Sized for what this process runs: a long-sequence scenario's process holds that batch only.
    const maxSteps = Math.max(...scenarios.flatMap((s) => [...s.warmup, ...s.timed].map((b) => b.steps)));
    // The kernel needs no TensorFlow.js backend; the model only supplies PyTorch's initialisation.
    await initBackend('cpu');
    const init = new GruClassifier({ inputSize: FEATURES, hidden: HIDDEN, layers: 1, dropout: 0, classes: CLASSES, pooling: spec.pooling }, rngFor(1, 'init'));
    const k = fusedKernel();
    const trainer = new FusedTrainer(
      { inputSize: FEATURES, hidden: HIDDEN, layers: 1, classes: CLASSES, dropout: 0, pooling: spec.pooling, maxSteps, maxBatch: spec.batch },
      { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-5 },
      k,
    );
    const zeros = init.params.map((p) => new Float32Array(p.variable.size));
    trainer.loadState(init.getWeights(), { step: 0, m: zeros, v: zeros });
    init.dispose();
    const { prof_read: read, prof_reset: reset, peak_madd: peakMadd, simd_lanes: lanes, amx_peak: amxPeak } = k.fn;
    return {
      train: (batch) => void trainer.step(batch, 1e-3),
      evaluate: (batch) => void trainer.evaluate(batch),
      readProfile: read && (() => PROFILE_PHASES.map((_, i) => read(i))),
      resetProfile: reset,
      peak: peakMadd && lanes && (() => peakRate(peakMadd, lanes())),
      amxPeak: k.kind === 'native-amx' && amxPeak ? () => amxPeakRate(amxPeak) : undefined,
    };
  }

  const used = await initBackend(backendName as 'wasm' | 'tensorflow' | 'cpu');
  if (used !== backendName) throw new Error(`asked for backend ${backendName}, got ${used}`);
  if (kind === 'stock') {
    const model = tf.sequential({
      layers: [tf.layers.gru({ units: HIDDEN, inputShape: [null, FEATURES] }), tf.layers.dense({ units: CLASSES })],
    });
    const optimizer = tf.train.adam(1e-3);
    return {
      train: (batch) =>
        tf.tidy(() => {
          const x = tf.tensor3d(batch.x, [batch.size, batch.steps, batch.features]);
          const y = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), CLASSES);
          const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor2D) as tf.Scalar, true);
          loss?.dataSync();
        }),
    };
  }
  const model = new GruClassifier(
    { inputSize: FEATURES, hidden: HIDDEN, layers: 1, dropout: 0, classes: CLASSES, pooling: spec.pooling, gru: kind === 'fused-gru' ? 'fused' : 'ops' },
    rngFor(1, 'init'),
  );
  const adam = new Adam(model.variables, { lr: 1e-3, weightDecay: 1e-5 });
  return { train: (batch) => void trainStep(model, adam, batch) };
}

/**
 * gru.c's peak_madd (12 independent multiply-add chains on registers) timed on the wall clock:
 * the best of 7 runs of ~20 ms each, in multiply-adds per second over lanes × 12 × rounds.
 */
function peakRate(peakMadd: (rounds: number, seed: number) => number, lanes: number): { gmacs: number; lanes: number } {
  const rounds = 200_000;
  peakMadd(rounds, 0.5);
  let best = 0;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    peakMadd(rounds, 0.5);
    best = Math.max(best, (rounds * 12 * lanes) / ((performance.now() - t0) * 1e6));
  }
  return { gmacs: best, lanes };
}

/**
 * amx-native.h's amx_peak (4 independent TDPBF16PS on loaded tiles, 16·16·32 bf16 multiply-adds
 * each) timed on the wall clock: the best of 7 runs of ~10 ms each.
 */
function amxPeakRate(amxPeak: (rounds: number) => number): number {
  const rounds = 400_000;
  amxPeak(rounds);
  let best = 0;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    amxPeak(rounds);
    best = Math.max(best, (rounds * 4 * 16 * 16 * 32) / ((performance.now() - t0) * 1e6));
  }
  return best;
}

/**
 * Times each step; a profile build's phase timers are read after each step too, so that every
 * figure (phase or step) can be a median over steps, which a preempted step does not move.
 */
function timed(run: RowRunner, step: Step, batches: Batch[], clock: Spec['clock']): { times: number[]; phases: number[][] } {
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  // The profile builds' phase timers read wall time, so their rows do too (medians over steps
  // keep preempted steps out).
  const now = clock === 'cpu' && run.readProfile === undefined ? cpuMs : () => performance.now();
  const phases: number[][] = [];
  const times = batches.map((b) => {
    run.resetProfile?.();
    const t0 = now();
    step(b);
    const t = now() - t0;
    if (run.readProfile) phases.push(run.readProfile());
    return t;
  });
  return { times, phases };
}

async function runRow(row: RowId, specPath: string, only: string | undefined): Promise<void> {
  const spec = JSON.parse(readFileSync(specPath, 'utf8')) as Spec;
  const scenarios = spec.scenarios.filter((s) => (only === undefined ? !s.long : s.id === only));
  const run = await makeRow(row, spec, scenarios);
  const times: Record<string, number[]> = {};
  const phases: Record<string, number[]> = {};
  for (const sc of scenarios) {
    const warm = loadBatches(spec, sc.warmup);
    const batches = loadBatches(spec, sc.timed);
    const modes: Array<[string, Step | undefined]> = [
      ['', run.train],
      [':eval', run.evaluate],
    ];
    for (const [suffix, step] of modes) {
      if (step === undefined) continue;
      warm.forEach(step);
      const t = timed(run, step, batches, spec.clock);
      times[sc.id + suffix] = t.times;
      // Per phase, the median over steps; then the JavaScript around the call, per step.
      if (run.readProfile) {
        const js = t.times.map((total, i) => total - t.phases[i]!.reduce((a, b) => a + b, 0));
        phases[sc.id + suffix] = [...PROFILE_PHASES.map((_, p) => median(t.phases.map((ph) => ph[p]!))), median(js)];
      }
    }
  }
  const peak = only === undefined ? run.peak?.() : undefined;
  const amxPeak = only === undefined ? run.amxPeak?.() : undefined;
  process.stdout.write(JSON.stringify({ times, phases, peak, amxPeak, maxRssMB: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

// ---------------------------------------------------------------------------------------------
// The parent: rows × rounds, then the tables.

interface RowResult {
  times: Record<string, number[]>;
  phases?: Record<string, number[]>;
  maxRssMB?: number;
  /** Max RSS of the process that ran each long scenario alone. */
  rssByScenario?: Record<string, number>;
  torch?: string;
  peak?: { gmacs: number; lanes: number };
  amxPeak?: number;
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
      only: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      steps: { type: 'string', default: '30' },
      warmup: { type: 'string', default: '10' },
      pooling: { type: 'string', default: 'mean' },
      rows: { type: 'string' },
      long: { type: 'string', default: '1000,5000' },
      'long-steps': { type: 'string', default: '3' },
      clock: { type: 'string', default: 'cpu' },
      profile: { type: 'boolean', default: false },
      batch: { type: 'string', default: String(DEFAULT_BATCH) },
    },
  });
  if (values.child !== undefined) return runRow(values.child as RowId, values.spec!, values.only);

  const rounds = Number(values.rounds);
  const steps = Number(values.steps);
  const warmup = Number(values.warmup);
  const longTs = values.long === '' ? [] : values.long.split(',').map(Number);
  const python = process.env.SWEEPS_BENCH_PYTHON;
  const hasNode = tfjsNodeLoads();
  const wanted = values.rows?.split(',');
  const hasNative = kernelAvailable('native');
  const hasAmx = kernelAvailable('native-amx');
  const hasRelaxed = kernelAvailable('wasm-relaxed');
  // build.sh --profile skips the relaxed profile build where clang-19 is missing (it says so).
  const hasRelaxedProfile = () => hasRelaxed && existsSync(join(kernelDir(), 'build', 'gru-profile-relaxed.wasm'));
  if (values.profile) {
    const built = spawnSync('bash', [join(__dirname, '..', '..', 'ml', 'kernel', 'build.sh'), '--profile'], { stdio: 'inherit' });
    if (built.status !== 0) throw new Error('build.sh --profile failed');
  }
  const rows = ROWS.filter(
    (r) =>
      (wanted === undefined || wanted.includes(r.id) || PROFILE_ROWS.includes(r.id)) &&
      (hasNode || !r.id.endsWith('@tensorflow')) &&
      (r.id !== 'torch' || python) &&
      (r.id !== 'fused-native' || hasNative) &&
      (r.id !== 'fused-amx' || hasAmx) &&
      (r.id !== 'fused-relaxed' || hasRelaxed) &&
      (!PROFILE_ROWS.includes(r.id) ||
        (values.profile &&
          (r.id !== 'profile-native' || hasNative) &&
          (r.id !== 'profile-amx' || hasAmx) &&
          (r.id !== 'profile-relaxed' || hasRelaxedProfile()))),
  );

  const dir = mkdtempSync(join(tmpdir(), 'bench-train-step-'));
  try {
    const store = process.env.SWEEPS_BENCH_STORE ?? join(homedir(), '.cache', 'durable-sweeps', 'bench-store');
    const { path } = await realPadded(store);
    if (values.clock !== 'cpu' && values.clock !== 'wall') throw new Error(`--clock must be cpu or wall, got "${values.clock}"`);
    const batch = Number(values.batch);
    if (!(Number.isInteger(batch) && batch >= 1)) throw new Error(`--batch must be a positive integer, got "${values.batch}"`);
    const specPath = writeSpec(dir, values.pooling as Pooling, values.clock, path, steps, warmup, longTs, Number(values['long-steps']), batch);
    const spec = JSON.parse(readFileSync(specPath, 'utf8')) as Spec;
    console.log(
      `batch ${spec.batch}, input ${FEATURES}, hidden ${HIDDEN}, ${CLASSES} classes, pooling ${spec.pooling}; ` +
        `${warmup} warm-up + ${steps} timed steps per figure (long sequences: 1 + ${values['long-steps']}), ${rounds} round(s); cores: ${availableParallelism()}`,
    );
    const load = () =>
      loadavg()
        .map((v) => v.toFixed(2))
        .join(' ');
    console.log(`load average at start: ${load()} (other work on the machine slows every row; the ratios come from interleaved rounds)`);
    console.log(
      spec.clock === 'cpu'
        ? 'clock: CPU time per step (--clock wall for wall time; on a busy machine wall time counts the waits for a core too)'
        : 'clock: wall time per step',
    );
    if (!hasNode) console.log('tfjs-node does not load here: its rows are left out');
    if (!hasNative) console.log('no native build of the kernel here (npm run build:kernel-native makes one where a C compiler is present)');
    else if (!hasAmx) console.log('no AMX tiles here (CPU or Linux permission): the native kernel runs on AVX-512/AVX2 only');
    if (!hasRelaxed) console.log(`no relaxed-SIMD WebAssembly kernel on this runtime (${process.version}): only gru.wasm`);
    if (!python) console.log('SWEEPS_BENCH_PYTHON is not set: no PyTorch row (bench/setup-torch.sh makes a Python with torch)');

    const results = new Map<RowId, RowResult[]>();
    let torchVersion = '';
    const torchScript = join(__dirname, '..', '..', 'bench', 'torch_step.py');
    const runOne = (row: RowId, only?: string): Promise<RowResult> => {
      const extra = only === undefined ? [] : ['--only', only];
      return row === 'torch'
        ? runProcess(python!, [torchScript, specPath, ...extra])
        : runProcess(process.execPath, [__filename, '--child', row, '--spec', specPath, ...extra]);
    };
    for (let round = 1; round <= rounds; round++) {
      for (const row of rows) {
        process.stderr.write(`round ${round}/${rounds}: ${row.label}…\n`);
        const r = await runOne(row.id);
        r.rssByScenario = {};
        if (LONG_ROWS.includes(row.id)) {
          for (const sc of spec.scenarios.filter((s) => s.long)) {
            process.stderr.write(`round ${round}/${rounds}: ${row.label}, ${sc.label}…\n`);
            const long = await runOne(row.id, sc.id);
            Object.assign(r.times, long.times);
            r.rssByScenario[sc.id] = long.maxRssMB ?? NaN;
          }
        }
        if (r.torch) torchVersion = `${r.torch}`;
        results.set(row.id, [...(results.get(row.id) ?? []), r]);
      }
    }
    console.log(`load average at end: ${load()}`);

    const ms = (row: RowId, sc: string, round: number): number | undefined => {
      const t = results.get(row)?.[round]?.times[sc];
      return t === undefined ? undefined : median(t);
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
    const short = scs.filter((s) => !s.long);
    const pad = (s: string, n: number) => s.padEnd(n);
    const num = (v: number | undefined, digits = 2) => (v === undefined ? '—' : v < 10 ? v.toFixed(digits) : v.toFixed(1));
    const have = new Set(rows.map((r) => r.id));
    const mainRows = rows.filter((r) => !PROFILE_ROWS.includes(r.id));
    const header = (first: string, cols: Scenario[], suffix = '') => console.log(`${pad(first, 58)}${cols.map((s) => pad(s.label, 18)).join('')}${suffix}`);

    console.log(`\nms per training step (${spec.clock} time; median over rounds of each round's median)`);
    header('implementation', scs, 'max RSS');
    for (const row of mainRows) {
      const rss = median((results.get(row.id) ?? []).map((r) => r.maxRssMB ?? NaN));
      console.log(`${pad(row.label, 58)}${scs.map((s) => pad(num(fig(row.id, s.id)), 18)).join('')}${Number.isNaN(rss) ? '' : `${rss.toFixed(0)} MB`}`);
    }
    if (torchVersion) console.log(`(PyTorch ${torchVersion}, torch.set_num_threads(1))`);

    const evalRows = mainRows.filter((r) => fig(r.id, 'T20:eval') !== undefined);
    if (evalRows.length) {
      console.log(`\nms per evaluation pass (forward and loss, no gradient buffers; PyTorch under torch.no_grad())`);
      header('implementation', scs);
      for (const row of evalRows) console.log(`${pad(row.label, 58)}${scs.map((s) => pad(num(fig(row.id, `${s.id}:eval`)), 18)).join('')}`);
    }

    const pairs: Array<[RowId, RowId, string, string]> = [
      ['fused', 'torch', 'fused (wasm) / PyTorch, training (target ≤ 0.40)', ''],
      ['fused-relaxed', 'torch', 'fused (wasm relaxed SIMD) / PyTorch, training (≤ 0.40)', ''],
      ['fused-native', 'torch', 'fused (native AVX-512) / PyTorch, training (≤ 0.22)', ''],
      ['fused-amx', 'torch', 'fused (native AMX) / PyTorch, training (target ≤ 0.22)', ''],
      ['fused', 'torch', 'fused (wasm) / PyTorch, evaluation (target ≤ 0.15)', ':eval'],
      ['fused-relaxed', 'torch', 'fused (wasm relaxed) / PyTorch, evaluation (≤ 0.15)', ':eval'],
      ['fused-native', 'torch', 'fused (native AVX-512) / PyTorch, evaluation (≤ 0.15)', ':eval'],
      ['fused-amx', 'torch', 'fused (native AMX) / PyTorch, evaluation (target ≤ 0.15)', ':eval'],
      ['fused-amx', 'fused-native', 'fused native AMX / native AVX-512, training', ''],
      ['fused-amx', 'fused-native', 'fused native AMX / native AVX-512, evaluation', ':eval'],
      ['fused-relaxed', 'fused', 'fused wasm relaxed SIMD / fused wasm, training', ''],
      ['fused-relaxed', 'fused', 'fused wasm relaxed SIMD / fused wasm, evaluation', ':eval'],
      ['stock@wasm', 'fused', 'stock tf.layers.gru on wasm / fused wasm (target ≥ 10)', ''],
      ['stock@tensorflow', 'fused', 'stock tf.layers.gru on tfjs-node / fused wasm', ''],
      ['stock@cpu', 'fused', 'stock tf.layers.gru on cpu / fused wasm', ''],
      ['tfjs@wasm', 'fused', 'op-by-op (wasm) / fused wasm', ''],
      ['tfjs@tensorflow', 'fused', 'op-by-op (tfjs-node) / fused wasm', ''],
      ['fused-gru@wasm', 'fused', 'fused GRU op (wasm) / fused wasm', ''],
      ['fused-gru@wasm', 'torch', 'fused GRU op (wasm) / PyTorch', ''],
    ];
    console.log(`\nratios (median over rounds of same-round ratios)`);
    header('', scs);
    for (const [a, b, label, suffix] of pairs) {
      if (!have.has(a) || !have.has(b)) continue;
      console.log(`${pad(label, 58)}${scs.map((s) => pad(num(ratio(a, b, s.id + suffix), 3), 18)).join('')}`);
    }

    printArithmetic(spec, short, mainRows, results, fig, pad, header);

    const perStep = scs.filter((s) => s.T !== undefined);
    const longScs = scs.filter((s) => s.long);
    if (longScs.length) {
      console.log(`\nlong sequences: µs per timestep (ms per step / T; flat = linear in T), and each long scenario's max RSS`);
      header('implementation', perStep, longScs.map((s) => pad(`RSS ${s.label}`, 18)).join(''));
      for (const row of mainRows.filter((r) => LONG_ROWS.includes(r.id))) {
        const perT = perStep.map((s) => {
          const v = fig(row.id, s.id);
          return pad(v === undefined ? '—' : ((v / s.T!) * 1000).toFixed(1), 18);
        });
        const rss = longScs.map((s) => {
          const v = median((results.get(row.id) ?? []).map((r) => r.rssByScenario?.[s.id] ?? NaN));
          return pad(Number.isNaN(v) ? '—' : `${v.toFixed(0)} MB`, 18);
        });
        console.log(`${pad(row.label, 58)}${perT.join('')}${rss.join('')}`);
      }
    }

    for (const row of rows.filter((r) => PROFILE_ROWS.includes(r.id))) {
      const rs = results.get(row.id) ?? [];
      for (const mode of ['', ':eval']) {
        const what = mode ? 'an evaluation pass' : 'a training step';
        console.log(`\nwhere ${what}'s time goes: ${row.label} (wall ms, median over steps, then over rounds; share of the step's median)`);
        header('phase', short);
        const phase = (sc: string, i: number) => median(rs.map((r) => r.phases?.[sc + mode]?.[i] ?? NaN));
        const total = (sc: string) => median(rs.map((r) => median(r.times[sc + mode] ?? [NaN])));
        const cell = (v: number, sc: string) => pad(`${v.toFixed(3)} (${((100 * v) / total(sc)).toFixed(0)}%)`, 18);
        [...PROFILE_PHASES, 'JavaScript around the call (step − kernel)'].forEach((name, i) =>
          console.log(`${pad(name, 58)}${short.map((s) => cell(phase(s.id, i), s.id)).join('')}`),
        );
        console.log(`${pad('whole step (median; includes the timers)', 58)}${short.map((s) => pad(total(s.id).toFixed(3), 18)).join('')}`);
        if (row.id === 'profile-amx')
          console.log(
            "(AMX: the forward's input projection and gate math run interleaved with its tile products, all three in 'recurrent products (forward)'; " +
              "the backward's gate math interleaved with its products too, in 'BPTT recurrent products' but for the last timestep's)",
          );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Multiply-adds of one step of the benchmark's model on a batch (1 layer, input I, hidden H,
 * C classes), as the kernel counts them: the input projection over T steps, the recurrent
 * product over T − 1 (h0 = 0), the head; training adds the recurrent product's two transposes
 * (BPTT, dW_hh), dW_ih and the head's gradients.
 */
function stepMacs(b: BatchRef, train: boolean): number {
  const { size: B, steps: T, features: I } = b;
  const H3 = 3 * HIDDEN;
  const input = T * B * I * H3;
  const recurrent = (T - 1) * B * HIDDEN * H3;
  const head = B * HIDDEN * CLASSES;
  return train ? 2 * input + 3 * recurrent + 3 * head : input + recurrent + head;
}

/** The rates achieved against the core's peak, and what the evaluation target asks of it. */
function printArithmetic(
  spec: Spec,
  short: Scenario[],
  rows: Array<{ id: RowId; label: string }>,
  results: Map<RowId, RowResult[]>,
  fig: (row: RowId, sc: string) => number | undefined,
  pad: (s: string, n: number) => string,
  header: (first: string, cols: Scenario[], suffix?: string) => void,
): void {
  const macs = (sc: Scenario, train: boolean) => sc.timed.reduce((s, b) => s + stepMacs(b, train), 0) / sc.timed.length;
  const peaks = [...results.entries()]
    .map(([row, rs]) => ({ row, peak: median(rs.map((r) => r.peak?.gmacs ?? NaN)), lanes: rs[0]?.peak?.lanes }))
    .filter((p) => !Number.isNaN(p.peak));
  if (peaks.length === 0) return;
  console.log(`\nthe core's peak fp32 multiply-add rate (gru.c's peak_madd: 12 independent chains on registers, best of 7; median over rounds)`);
  const how: Partial<Record<RowId, string>> = {
    'fused-native': 'native build, fused multiply-add',
    'profile-native': 'native build, fused multiply-add',
    'fused-amx': 'native build, fused multiply-add',
    'profile-amx': 'native build, fused multiply-add',
    'fused-relaxed': 'wasm relaxed SIMD, f32x4.relaxed_madd',
    'profile-relaxed': 'wasm relaxed SIMD, f32x4.relaxed_madd',
    'profile-wasm': 'wasm SIMD128, f32x4.mul + f32x4.add',
  };
  const seen = new Set<string>();
  for (const p of peaks) {
    const what = `${how[p.row] ?? p.row}, ${p.lanes} lanes`;
    if (seen.has(what)) continue;
    seen.add(what);
    console.log(`  ${pad(what, 56)}${p.peak.toFixed(1)} GMAC/s`);
  }
  const amxPeaks = [...results.values()].flatMap((rs) => rs.map((r) => r.amxPeak ?? NaN)).filter((v) => !Number.isNaN(v));
  if (amxPeaks.length) {
    console.log(
      `  ${pad('AMX tiles, bf16 TDPBF16PS (amx_peak)', 56)}${median(amxPeaks).toFixed(1)} GMAC/s ` +
        '(bf16 products, fp32 sums; the fp32-accurate split does 6 of them per fp32 multiply-add: a sixth of this)',
    );
  }
  console.log(
    `\nachieved GMAC/s (multiply-adds per step / ${spec.clock} time per step; training ${(macs(short[0]!, true) / 1e6).toFixed(1)} M, evaluation ${(macs(short[0]!, false) / 1e6).toFixed(1)} M MACs at T = 20)`,
  );
  header('implementation', short);
  for (const row of rows) {
    for (const [mode, train] of [
      ['', true],
      [':eval', false],
    ] as const) {
      const cells = short.map((s) => {
        const ms = fig(row.id, s.id + mode);
        return pad(ms === undefined ? '—' : (macs(s, train) / ms / 1e6).toFixed(1), 18);
      });
      if (cells.every((c) => c.trim() === '—')) continue;
      const name = row.label.replace('whole-step kernel (engine fused), ', 'fused, ');
      console.log(`${pad(`${name}, ${train ? 'training' : 'evaluation'}`, 58)}${cells.join('')}`);
    }
  }
  // What a target ratio asks of the arithmetic: all multiply-adds in target × PyTorch's time,
  // with nothing else (gate math, head, Adam) costing anything. Above the peak: out of reach.
  const needs: Array<[string, string, boolean, number]> = [
    ['training at 0.40 × PyTorch needs at least', '', true, 0.4],
    ['training at 0.22 × PyTorch needs at least', '', true, 0.22],
    ['evaluation at 0.15 × PyTorch needs at least', ':eval', false, 0.15],
  ];
  for (const [label, mode, train, target] of needs) {
    const cells = short.map((s) => {
      const t = fig('torch', s.id + mode);
      return pad(t === undefined ? '—' : (macs(s, train) / (target * t) / 1e6).toFixed(1), 18);
    });
    if (cells.some((c) => c.trim() !== '—')) console.log(`${pad(label, 58)}${cells.join('')}`);
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
