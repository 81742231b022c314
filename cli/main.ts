#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import type { SweepResult } from '../workflows/sweep';
import { loadConfig, type SweepsConfig } from '../client/config';
import { createLogger } from '../client/logger';
import { ensureEmbeddedServer, resolveTemporal, stopEmbeddedServer, type TemporalTarget } from '../client/server';
import { connectClient, startOrAttach, sweepInputOf, uiLink, type SweepHandle } from '../client/sweeps';
import { obtainTemporalCli } from '../client/temporal-cli';
import { loadPipeline, PipelineError } from '../pipeline/load';
import { sweepIdFor } from '../pipeline/plan';
import { startWorkers, type RunningWorkers } from '../worker/worker';
import { ProgressView } from './progress';

const USAGE = `sweeps — ML experiment sweeps as durable Temporal workflows

Usage: sweeps <command> [options]

Commands:
  sweep <pipeline.yaml>   validate, submit and watch a sweep (starts a local server and worker if needed)
  resume <sweep-id>       run a failed or stopped sweep again: finished work is reused
  status <sweep-id>       show a sweep's state and its trials
  validate <pipeline.yaml> check a pipeline file and print its plan; submits nothing
  worker                  run a worker (for more machines or processes)
  server [start|stop]     start (or reuse) / stop the embedded Temporal dev server and Web UI
  setup                   obtain the Temporal CLI and build tfjs-node where possible (idempotent)

Run \`sweeps <command> --help\` for a command's options.
Environment: TEMPORAL_ADDRESS (use that server instead of the embedded one), SWEEPS_HOME (state folder,
default ./.sweeps), SWEEPS_DATA (local copy of the dataset archive), SWEEPS_TRAIN_SLOTS (default: cores).`;

class UsageError extends Error {}

const say = (line: string) => process.stderr.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'sweep':
      return sweepCommand(rest);
    case 'resume':
      return resumeCommand(rest);
    case 'status':
      return statusCommand(rest);
    case 'validate':
      return validateCommand(rest);
    case 'worker':
      return workerCommand(rest);
    case 'server':
      return serverCommand(rest);
    case 'setup':
      return setupCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
  }
}

function parse<const O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, help: string) {
  const config = { args, options: { ...options, help: { type: 'boolean', short: 'h' } } as O, allowPositionals: true, strict: true } as const;
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${help}`);
  }
  if ((parsed.values as Record<string, unknown>).help) {
    process.stdout.write(`${help}\n`);
    process.exit(0);
  }
  return parsed;
}

const SWEEP_HELP = `Usage: sweeps sweep <pipeline.yaml> [options]

  --set <path>=<value>   override a value of the pipeline (repeatable), e.g. --set steps.train.with.epochs=5
  --data <file|url>      try this copy of the dataset archive first (also: SWEEPS_DATA); its digest is still checked
  --no-worker            do not start a worker in this process (others serve the task queues)
  --detach               submit and return at once, printing the sweep id
  --json                 print the result as JSON on stdout`;

async function sweepCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      set: { type: 'string', multiple: true },
      data: { type: 'string' },
      'no-worker': { type: 'boolean' },
      detach: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    SWEEP_HELP,
  );
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError(`expected one pipeline file\n\n${SWEEP_HELP}`);
  const data = values.data ?? process.env.SWEEPS_DATA;
  const plan = loadPipeline(file, { set: values.set, dataMirrors: data ? [dataUrl(data)] : [] });
  const config = loadConfig();
  const target = await resolveTemporal(config, say);
  const client = await connectClient(target);
  const workers = values['no-worker'] || values.detach ? undefined : await startLocalWorkers(config, target);
  try {
    const { handle, attached } = await startOrAttach(client, config, plan);
    say(`${attached ? 'attached to running' : 'started'} sweep ${handle.workflowId}`);
    const link = uiLink(target, handle.workflowId);
    if (link) say(`Temporal UI: ${link}`);
    if (values.detach) {
      process.stdout.write(`${handle.workflowId}\n`);
      return 0;
    }
    return await watch(client, handle, target, Boolean(values.json));
  } finally {
    await workers?.shutdown();
    await target.shutdown?.();
  }
}

const RESUME_HELP = `Usage: sweeps resume <sweep-id> [--no-worker] [--json]

Runs a failed, cancelled or terminated sweep again with the same pipeline. Finished steps and trials
are cache hits; interrupted trials continue from their last epoch checkpoint.`;

async function resumeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { 'no-worker': { type: 'boolean' }, json: { type: 'boolean' } }, RESUME_HELP);
  const sweepId = positionals[0];
  if (!sweepId) throw new UsageError(`expected a sweep id\n\n${RESUME_HELP}`);
  const config = loadConfig();
  const target = await resolveTemporal(config, say);
  const client = await connectClient(target);
  const input = await sweepInputOf(client, sweepId).catch((err: Error) => {
    throw new UsageError(`cannot resume ${sweepId}: ${err.message}. \`sweeps status ${sweepId}\` shows whether it exists.`);
  });
  const workers = values['no-worker'] ? undefined : await startLocalWorkers(config, target);
  try {
    const { handle, attached } = await startOrAttach(client, config, input.plan);
    say(`${attached ? 'sweep is still running; attached to' : 'resumed'} ${handle.workflowId}`);
    const link = uiLink(target, handle.workflowId);
    if (link) say(`Temporal UI: ${link}`);
    return await watch(client, handle, target, Boolean(values.json));
  } finally {
    await workers?.shutdown();
    await target.shutdown?.();
  }
}

async function statusCommand(args: string[]): Promise<number> {
  const help = 'Usage: sweeps status <sweep-id> [--json]';
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, help);
  const sweepId = positionals[0];
  if (!sweepId) throw new UsageError(help);
  const config = loadConfig();
  const target = await resolveTemporal(config, say);
  const client = await connectClient(target);
  const handle = client.workflow.getHandle(sweepId);
  const description = await handle.describe();
  const view = new ProgressView(process.stdout, false);
  const progress = values.json ? undefined : await view.poll(client, sweepId);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ sweepId, status: description.status.name, runId: description.runId }, null, 2)}\n`);
  } else {
    process.stdout.write(`${sweepId}: ${description.status.name}${progress ? '' : ' (no progress available)'}\n`);
  }
  return 0;
}

async function validateCommand(args: string[]): Promise<number> {
  const help = 'Usage: sweeps validate <pipeline.yaml> [--set <path>=<value>]... [--json]';
  const { values, positionals } = parse(args, { set: { type: 'string', multiple: true }, json: { type: 'boolean' } }, help);
  const file = positionals[0];
  if (!file) throw new UsageError(help);
  const plan = loadPipeline(file, { set: values.set });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`${file}: valid. Sweep id ${sweepIdFor(plan)}\n`);
  for (const step of plan.steps) {
    const trials = step.trials ? `, ${step.trials.length} trials (${step.concurrency} at a time)` : '';
    process.stdout.write(`  ${step.name} (${step.uses})${step.needs.length ? ` needs ${step.needs.join(', ')}` : ''}${trials}\n`);
  }
  return 0;
}

async function workerCommand(args: string[]): Promise<number> {
  const help = `Usage: sweeps worker [--role io|train]... [--slots N] [--identity NAME]

Serves the sweep task queues until interrupted: "io" runs workflows and the data/report steps,
"train" runs trainings (N at a time, default: cores). Both by default.`;
  const { values } = parse(
    args,
    { role: { type: 'string', multiple: true }, slots: { type: 'string' }, identity: { type: 'string' } },
    help,
  );
  const roles = (values.role ?? ['io', 'train']) as Array<'io' | 'train'>;
  for (const r of roles) if (r !== 'io' && r !== 'train') throw new UsageError(`--role ${r}: expected io or train\n\n${help}`);
  const slots = values.slots === undefined ? undefined : Number(values.slots);
  if (slots !== undefined && (!Number.isInteger(slots) || slots <= 0)) throw new UsageError(`--slots ${values.slots}: expected a positive integer`);
  const config = loadConfig(slots ? { trainSlots: slots } : {});
  const target = await resolveTemporal(config, say);
  const workers = await startWorkers(config, target, createLogger({ file: join(config.home, 'logs', 'worker.log') }), {
    roles,
    identity: values.identity,
  });
  say(`worker ${workers.identity} serving ${roles.join(' + ')} (${config.trainSlots} training slots); Ctrl-C to stop`);
  const stop = () => void workers.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await workers.done;
  return 0;
}

async function serverCommand(args: string[]): Promise<number> {
  const help = 'Usage: sweeps server [start|stop]   (the embedded Temporal dev server and its Web UI, on 127.0.0.1)';
  const { positionals } = parse(args, {}, help);
  const action = positionals[0] ?? 'start';
  const config = loadConfig();
  if (action === 'stop') {
    say((await stopEmbeddedServer(config)) ? 'temporal: stopped the embedded server' : 'temporal: no embedded server of ours was running');
    return 0;
  }
  if (action !== 'start') throw new UsageError(help);
  const target = await ensureEmbeddedServer(config, say);
  say(`temporal: ${target.kind === 'embedded-reused' ? 'already running' : 'running'} at ${target.connectionOptions.address}; Web UI ${target.uiUrl}`);
  return 0;
}

async function setupCommand(args: string[]): Promise<number> {
  parse(args, {}, 'Usage: sweeps setup   (idempotent: obtains the Temporal CLI, builds tfjs-node where it can)');
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
  return 0;
}

async function startLocalWorkers(config: SweepsConfig, target: TemporalTarget): Promise<RunningWorkers> {
  const logFile = join(config.home, 'logs', 'worker.log');
  const workers = await startWorkers(config, target, createLogger({ file: logFile }));
  say(`worker ${workers.identity} started in this process (${config.trainSlots} training slots; logs: ${logFile})`);
  return workers;
}

async function watch(client: Client, handle: SweepHandle, target: TemporalTarget, json: boolean): Promise<number> {
  const view = new ProgressView(process.stderr);
  let finished = false;
  const result = handle.result().finally(() => {
    finished = true;
  });
  let detach: () => void = () => undefined;
  const detached = new Promise<'detached'>((resolve) => {
    detach = () => resolve('detached');
  });
  process.once('SIGINT', detach);
  try {
    while (!finished) {
      await view.poll(client, handle.workflowId);
      const outcome = await Promise.race([result.then(() => 'done' as const, () => 'done' as const), detached, sleep(1000)]);
      if (outcome === 'detached') {
        say(`\ndetached; the sweep goes on while a worker serves it. Re-attach: sweeps resume ${handle.workflowId} (or status)`);
        return 130;
      }
    }
    await view.poll(client, handle.workflowId);
    const value: SweepResult = await result;
    printResult(value, target, json);
    return 0;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      say(`\nsweep ${handle.workflowId} failed: ${rootCause(err)}`);
      say(`after fixing the cause: sweeps resume ${handle.workflowId}`);
      return 1;
    }
    throw err;
  } finally {
    process.removeListener('SIGINT', detach);
  }
}

function printResult(result: SweepResult, target: TemporalTarget, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const out: string[] = [''];
  out.push(`sweep ${result.sweepId} finished.`);
  const link = uiLink(target, result.sweepId);
  if (link) out.push(`Temporal UI: ${link}`);
  if (result.report) {
    out.push(`report: ${result.report.files.markdown}`);
    out.push(`        ${result.report.files.json}`);
    for (const v of result.report.variants) {
      out.push(`  ${v.name.padEnd(12)} valid accuracy ${v.meanAcc.toFixed(4)} ± ${v.stdAcc.toFixed(4)} (${v.trials} trials)`);
    }
    out.push('', result.report.verdict);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

function rootCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e.cause) e = e.cause as typeof e;
  return e.message ?? String(err);
}

function dataUrl(data: string): string {
  if (/^(https?|file):/.test(data)) return data;
  const path = isAbsolute(data) ? data : resolve(data);
  if (!existsSync(path)) throw new UsageError(`--data ${data}: no such file (${path})`);
  return pathToFileURL(path).href;
}

const sleep = (ms: number) => new Promise<'tick'>((r) => setTimeout(() => r('tick'), ms));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof PipelineError) {
      say(`${err.message}\n\n${err.problems.length} problem${err.problems.length > 1 ? 's' : ''} in ${err.file}; nothing was submitted.`);
      process.exit(2);
    }
    if (err instanceof UsageError) {
      say(err.message);
      process.exit(2);
    }
    say(`error: ${(err as Error).message ?? String(err)}`);
    if (process.env.SWEEPS_DEBUG) say((err as Error).stack ?? '');
    process.exit(1);
  },
);
