import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../client/config';
import { createLogger } from '../client/logger';
import { ensureEmbeddedServer, resolveTemporal, stopEmbeddedServer } from '../client/server';
import { obtainTemporalCli } from '../client/temporal-cli';
import { startWorkers } from '../worker/worker';
import { parse, say, UsageError } from './args';

const WORKER_HELP = `Usage: sweeps worker [--role io|train]... [--slots N] [--identity NAME] [--queue NAME] [--train-queue NAME]

Serves the sweep task queues until interrupted. Start more on other machines (same
TEMPORAL_ADDRESS and SWEEPS_ARTIFACTS) to spread trials over them.

  --role io|train      io: workflows and the data/report steps; train: trainings. Both by default;
                       give one to scale them apart (busy training slots never starve I/O steps)
  --slots N            trainings at once, each in its own process   env SWEEPS_TRAIN_SLOTS (default: cores)
  --identity NAME      name in Temporal and in each trial's result  env SWEEPS_WORKER_IDENTITY (default: host:pid)
  --queue NAME         queue of workflows and data/report steps     env SWEEPS_TASK_QUEUE (default: sweeps)
  --train-queue NAME   queue of trainings                           env SWEEPS_TRAIN_QUEUE (default: sweeps-train)

A flag wins over its environment variable. The command that submits a sweep takes its queues from
SWEEPS_TASK_QUEUE and SWEEPS_TRAIN_QUEUE: give it the same ones as its workers.`;

export async function workerCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      role: { type: 'string', multiple: true },
      slots: { type: 'string' },
      identity: { type: 'string' },
      queue: { type: 'string' },
      'train-queue': { type: 'string' },
    },
    WORKER_HELP,
  );
  if (positionals.length > 0) throw new UsageError(WORKER_HELP);
  const roles = (values.role ?? ['io', 'train']) as Array<'io' | 'train'>;
  for (const r of roles) if (r !== 'io' && r !== 'train') throw new UsageError(`--role ${r}: expected io or train\n\n${WORKER_HELP}`);
  const slots = values.slots === undefined ? undefined : Number(values.slots);
  if (slots !== undefined && (!Number.isInteger(slots) || slots <= 0)) throw new UsageError(`--slots ${values.slots}: expected a positive integer`);
  for (const flag of ['identity', 'queue', 'train-queue'] as const) {
    if (values[flag] !== undefined && values[flag].trim() === '') throw new UsageError(`--${flag}: expected a name, got an empty string`);
  }
  const config = loadConfig({
    ...(slots !== undefined && { trainSlots: slots }),
    ...(values.queue !== undefined && { taskQueue: values.queue }),
    ...(values['train-queue'] !== undefined && { trainQueue: values['train-queue'] }),
  });
  const target = await resolveTemporal(config, say);
  const workers = await startWorkers(config, target, createLogger({ file: join(config.home, 'logs', 'worker.log') }), {
    roles,
    identity: values.identity,
  });
  const queues = roles.map((r) => (r === 'io' ? config.taskQueue : `${config.trainQueue} with ${config.trainSlots} training slots`));
  say(`worker ${workers.identity} serving ${roles.join(' + ')} (queues ${queues.join(', ')}); Ctrl-C to stop`);
  const stop = () => void workers.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await workers.done;
  return 0;
}

const SERVER_HELP = `Usage: sweeps server [start|stop]

start (the default) starts the embedded Temporal dev server and its Web UI on 127.0.0.1, or
reuses the one running; stop stops it. Its state (history included) lives in $SWEEPS_HOME and
survives a restart. Ports: SWEEPS_SERVER_PORT (7233), SWEEPS_UI_PORT (8233).`;

export async function serverCommand(args: string[]): Promise<number> {
  const { positionals } = parse(args, {}, SERVER_HELP);
  const action = positionals[0] ?? 'start';
  if (positionals.length > 1 || (action !== 'start' && action !== 'stop')) throw new UsageError(SERVER_HELP);
  const config = loadConfig();
  if (action === 'stop') {
    say((await stopEmbeddedServer(config)) ? 'temporal: stopped the embedded server' : 'temporal: no embedded server of ours was running');
    return 0;
  }
  const target = await ensureEmbeddedServer(config, say);
  say(`temporal: ${target.kind === 'embedded-reused' ? 'already running' : 'running'} at ${target.connectionOptions.address}; Web UI ${target.uiUrl}`);
  return 0;
}

const SETUP_HELP = 'Usage: sweeps setup   (idempotent: obtains the Temporal CLI, builds tfjs-node and the native training kernel where it can)';

export async function setupCommand(args: string[]): Promise<number> {
  parse(args, {}, SETUP_HELP);
  if (!process.env.TEMPORAL_ADDRESS) {
    const cli = await obtainTemporalCli(say);
    say(cli ? `setup: temporal CLI at ${cli}` : 'setup: no temporal CLI; `sweeps sweep` will use the SDK download');
  }
  const script = resolve(__dirname, '..', '..', 'scripts', 'tfjs-node', 'setup.sh');
  if (process.env.SWEEPS_SKIP_TFJS_NODE) {
    say('setup: SWEEPS_SKIP_TFJS_NODE set; training uses the WebAssembly backend');
  } else if (existsSync(script)) {
    const result = spawnSync('bash', [script, resolve(__dirname, '..', '..')], { stdio: ['ignore', 'inherit', 'inherit'] });
    say(result.status === 0 ? 'setup: tfjs-node ready' : 'setup: tfjs-node unavailable; training falls back to the WebAssembly backend');
  }
  // The fused kernel's native build (same C source, this CPU's vector units) is ~1.4× faster than
  // the committed WebAssembly. Without a C compiler build.sh skips it (exit 0) and the WebAssembly
  // build is used; with one, a failed build is a broken setup, not a silent fallback.
  const kernel = resolve(__dirname, '..', '..', 'ml', 'kernel', 'build.sh');
  if (process.env.SWEEPS_KERNEL !== 'wasm' && existsSync(kernel)) {
    const result = spawnSync('bash', [kernel, '--native'], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (result.status !== 0) {
      say(
        'setup: the native kernel failed to build although a C compiler is there (its output is above); fix that, or set SWEEPS_KERNEL=wasm to use the WebAssembly kernel only',
      );
      return 1;
    }
  }
  return 0;
}
