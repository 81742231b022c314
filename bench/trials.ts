/**
 * Real trials with each training engine: the seed study's recipe on the real data, 30 epochs
 * (or until early stopping), each trial in its own process as the worker runs it. Prints per
 * trial the best valid accuracy (the epoch early stopping keeps), wall time, peak RSS and whether
 * the live tensor count stayed the same after every epoch; then the accuracies paired by seed.
 *
 *   node dist/bench/trials.js [--engines fused,tfjs] [--poolings last,mean] [--seeds 1,2,3]
 *                             [--epochs 30] [--parallel 1] [--backend auto]
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { toConfig } from '../activities/train';
import { readPadded } from '../ml/padded-data';
import { train, type TrainOutcome } from '../ml/trainer';
import { trainParams } from '../activities/train';
import { realPadded } from './real-data';

interface TrialSpec {
  engine: string;
  pooling: string;
  seed: number;
  epochs: number;
  backend: string;
  paddedPath: string;
  checkpointDir: string;
}

interface TrialResult {
  spec: TrialSpec;
  outcome: TrainOutcome;
  seconds: number;
  maxRssMB: number;
  tensorsPerEpoch: number[];
}

async function runChild(spec: TrialSpec): Promise<void> {
  const data = readPadded(spec.paddedPath);
  const config = toConfig(trainParams.parse({ pooling: spec.pooling, seed: spec.seed, epochs: spec.epochs, backend: spec.backend, engine: spec.engine }));
  const tensorsPerEpoch: number[] = [];
  const t0 = performance.now();
  const outcome = await train(data, config, { checkpointDir: spec.checkpointDir, onEpoch: () => tensorsPerEpoch.push(tf.memory().numTensors) });
  const result: TrialResult = { spec, outcome, seconds: (performance.now() - t0) / 1000, maxRssMB: process.resourceUsage().maxRSS / 1024, tensorsPerEpoch };
  process.send!(result);
}

function runTrial(spec: TrialSpec): Promise<TrialResult> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--child', JSON.stringify(spec)], {
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let result: TrialResult | undefined;
    child.on('message', (m) => (result = m as TrialResult));
    child.on('error', reject);
    child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`trial ${JSON.stringify(spec)} exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      engines: { type: 'string', default: 'fused,tfjs' },
      poolings: { type: 'string', default: 'last,mean' },
      seeds: { type: 'string', default: '1,2,3' },
      epochs: { type: 'string', default: '30' },
      parallel: { type: 'string', default: '1' },
      backend: { type: 'string', default: 'auto' },
    },
  });
  if (values.child !== undefined) return runChild(JSON.parse(values.child) as TrialSpec);

  const root = mkdtempSync(join(tmpdir(), 'bench-trials-'));
  try {
    const { path } = await realPadded(process.env.SWEEPS_BENCH_STORE ?? join(homedir(), '.cache', 'durable-sweeps', 'bench-store'));
    const specs: TrialSpec[] = [];
    for (const engine of values.engines!.split(',')) {
      for (const pooling of values.poolings!.split(',')) {
        for (const seed of values.seeds!.split(',').map(Number)) {
          specs.push({
            engine,
            pooling,
            seed,
            epochs: Number(values.epochs),
            backend: values.backend!,
            paddedPath: path,
            checkpointDir: join(root, `${engine}-${pooling}-${seed}`),
          });
        }
      }
    }
    const results: TrialResult[] = [];
    const queue = [...specs];
    const started = performance.now();
    const workers = Array.from({ length: Number(values.parallel) }, async () => {
      for (let spec = queue.shift(); spec; spec = queue.shift()) {
        const r = await runTrial(spec);
        results.push(r);
        const o = r.outcome;
        console.log(
          `${spec.engine.padEnd(9)} ${spec.pooling.padEnd(10)} seed ${spec.seed}  best valid acc ${o.best.valid_acc.toFixed(4)} (epoch ${o.best.epoch}/${o.epochs.length}${o.stoppedEarly ? ', stopped early' : ''})  ` +
            `${r.seconds.toFixed(1)} s  peak RSS ${r.maxRssMB.toFixed(0)} MB  tensors per epoch ${new Set(r.tensorsPerEpoch).size === 1 ? `constant (${r.tensorsPerEpoch[0]})` : r.tensorsPerEpoch.join(',')}  [${o.engine}, ${o.backend}]`,
        );
      }
    });
    await Promise.all(workers);
    console.log(`\nall ${results.length} trials: ${((performance.now() - started) / 1000).toFixed(1)} s wall, ${values.parallel} at a time`);

    const engines = values.engines!.split(',');
    for (const pooling of values.poolings!.split(',')) {
      const by = (engine: string) => results.filter((r) => r.spec.engine === engine && r.spec.pooling === pooling).sort((a, b) => a.spec.seed - b.spec.seed);
      const line = engines.map((e) => {
        const rs = by(e);
        const accs = rs.map((r) => r.outcome.best.valid_acc);
        const mean = accs.reduce((s, a) => s + a, 0) / accs.length;
        const secs = rs.map((r) => r.seconds).reduce((s, a) => s + a, 0) / rs.length;
        return `${e}: mean best acc ${mean.toFixed(4)} [${accs.map((a) => a.toFixed(3)).join(' ')}], mean ${secs.toFixed(1)} s/trial`;
      });
      console.log(`${pooling}: ${line.join(' | ')}`);
      if (engines.length === 2) {
        const [a, b] = engines.map(by) as [TrialResult[], TrialResult[]];
        const diffs = a.map((r, i) => r.outcome.best.valid_acc - b[i]!.outcome.best.valid_acc);
        console.log(`  paired by seed, ${engines[0]} − ${engines[1]}: ${diffs.map((d) => d.toFixed(4)).join(' ')}`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
