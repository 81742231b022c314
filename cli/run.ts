import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CancelledFailure, TerminatedFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { isStoredTrialResults } from '../activities/trial-results';
import type { TrainResult } from '../activities/types';
import { loadConfig, localDataFolder, type SweepsConfig } from '../client/config';
import { createLogger } from '../client/logger';
import { resolveTemporal, type TemporalTarget } from '../client/server';
import { connectClient, liveProgress, progressFromVisibility, startOrAttach, sweepInputOf, uiLink } from '../client/sweeps';
import { loadPipeline } from '../pipeline/load';
import { trialWorkflowId, type Plan } from '../pipeline/plan';
import type { SweepProgress } from '../workflows/progress';
import type { SweepResult, sweepWorkflow } from '../workflows/sweep';
import { startWorkers, type RunningWorkers } from '../worker/worker';
import { parse, say, single, UsageError, writeJson } from './args';
import { ProgressView, searchRunsOf } from './progress';
import { withStoredResults } from './results';
import { describeReuse, reuseOf } from './reuse';

const SWEEP_HELP = `Usage: sweeps sweep <pipeline.yaml> [options]

Validates the pipeline, submits its sweep (or attaches to the running sweep of the same plan), and
shows progress until it ends: a line per trial and a bar for the whole sweep. Ctrl-C detaches
without cancelling (\`sweeps watch <id>\` re-attaches; \`sweeps cancel <id>\` stops it).

  --param <name>=<value> set a parameter the pipeline declares under params: (repeatable), e.g. --param dataset=BasicMotions
  --set <path>=<value>   override a value of the pipeline (repeatable), e.g. --set steps.<step>.with.epochs=5
  --data <file|url>      try this copy of the dataset archive first (also: SWEEPS_DATA); its digest is still checked
  --no-worker            do not start a worker in this process (others serve the task queues)
  --detach               submit and return at once, printing the sweep id
  --json                 print the result (or, with --detach, the sweep id) as JSON on stdout

Exit codes: 0 finished, 1 failed or cancelled, 2 bad input (nothing submitted), 130 detached (Ctrl-C), 143 detached by SIGTERM.`;

export async function sweepCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      param: { type: 'string', multiple: true },
      set: { type: 'string', multiple: true },
      data: { type: 'string' },
      'no-worker': { type: 'boolean' },
      detach: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    SWEEP_HELP,
  );
  const file = single(positionals, 'one pipeline file', SWEEP_HELP);
  const data = values.data ?? process.env.SWEEPS_DATA;
  // Everything is checked before any connection is made: bad input submits nothing.
  const plan = loadPipeline(file, { set: values.set, params: values.param, dataMirrors: data ? [dataUrl(data)] : [] });
  const config = loadConfig();
  // The local worker may read the copy it was handed, wherever it is.
  const dataFolder = data ? localDataFolder(data) : undefined;
  if (dataFolder) config.dataRoots.push(dataFolder);
  const target = await resolveTemporal(config, say);
  const client = await connectClient(target);
  const workers = values['no-worker'] || values.detach ? undefined : await startLocalWorkers(config, target);
  try {
    const { handle, attached } = await startOrAttach(client, config, plan);
    say(`${attached ? 'attached to running' : 'started'} sweep ${handle.workflowId}`);
    const link = uiLink(target, handle.workflowId);
    if (link) say(`Temporal UI: ${link}`);
    if (values.detach) {
      if (values.json) writeJson({ sweepId: handle.workflowId, attached, ui: link });
      else process.stdout.write(`${handle.workflowId}\n`);
      say(`follow it with: sweeps watch ${handle.workflowId}`);
      return 0;
    }
    return await follow(client, handle.workflowId, target, { json: Boolean(values.json), workerHere: Boolean(workers) });
  } finally {
    await workers?.shutdown();
    await target.shutdown?.();
  }
}

const RESUME_HELP = `Usage: sweeps resume <sweep-id> [--no-worker] [--json]

Runs a failed, cancelled or terminated sweep again with the same pipeline (read from its history).
Finished steps and trials are cache hits; interrupted trials continue from their last epoch checkpoint.
A running sweep is attached to; a completed one is shown, not run again.`;

export async function resumeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { 'no-worker': { type: 'boolean' }, json: { type: 'boolean' } }, RESUME_HELP);
  const sweepId = single(positionals, 'a sweep id', RESUME_HELP);
  const config = loadConfig();
  const target = await resolveTemporal(config, say);
  const client = await connectClient(target);
  const input = await sweepInputOf(client, sweepId).catch((err: Error) => {
    throw new UsageError(`cannot resume ${sweepId}: ${err.message}. \`sweeps list\` shows the sweeps there are.`);
  });
  const { status } = await client.workflow.getHandle(sweepId).describe();
  if (status.name === 'COMPLETED') {
    // Its artifacts are what a re-run would produce: show the result rather than start a new run.
    say(`${sweepId} already completed: nothing to resume (to run its pipeline again: sweeps sweep ${input.plan.source})`);
    try {
      return await follow(client, sweepId, target, { json: Boolean(values.json), workerHere: false });
    } finally {
      await target.shutdown?.();
    }
  }
  const workers = values['no-worker'] ? undefined : await startLocalWorkers(config, target);
  try {
    const { handle, attached } = await startOrAttach(client, config, input.plan);
    say(`${attached ? 'sweep is still running; attached to' : 'resumed'} ${handle.workflowId}`);
    const link = uiLink(target, handle.workflowId);
    if (link) say(`Temporal UI: ${link}`);
    return await follow(client, handle.workflowId, target, { json: Boolean(values.json), workerHere: Boolean(workers) });
  } finally {
    await workers?.shutdown();
    await target.shutdown?.();
  }
}

const WATCH_HELP = `Usage: sweeps watch <sweep-id> [--worker] [--json]

Attaches to a sweep and shows its progress until it ends (at once for a sweep that has ended).
Starts no worker unless asked: without one anywhere, the sweep waits and watch says so.

  --worker   also serve the sweep's task queues from this process (as \`sweeps worker\` would)
  --json     print the result as JSON on stdout

Exit codes: 0 finished, 1 failed or cancelled, 130 detached (Ctrl-C; the sweep goes on), 143 detached by SIGTERM.`;

export async function watchCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { worker: { type: 'boolean' }, json: { type: 'boolean' } }, WATCH_HELP);
  const sweepId = single(positionals, 'a sweep id', WATCH_HELP);
  const config = loadConfig();
  const target = await resolveTemporal(config, say);
  const client = await connectClient(target);
  await sweepInputOf(client, sweepId).catch((err: Error) => {
    throw new UsageError(`cannot watch ${sweepId}: ${err.message}. \`sweeps list\` shows the sweeps there are.`);
  });
  const workers = values.worker ? await startLocalWorkers(config, target) : undefined;
  try {
    const link = uiLink(target, sweepId);
    if (link) say(`Temporal UI: ${link}`);
    return await follow(client, sweepId, target, { json: Boolean(values.json), workerHere: Boolean(workers) });
  } finally {
    await workers?.shutdown();
    await target.shutdown?.();
  }
}

export async function startLocalWorkers(config: SweepsConfig, target: TemporalTarget): Promise<RunningWorkers> {
  const logFile = join(config.home, 'logs', 'worker.log');
  const workers = await startWorkers(config, target, createLogger({ file: logFile }));
  say(`worker ${workers.identity} started in this process (${config.trainSlots} training slots; logs: ${logFile})`);
  return workers;
}

type Outcome = { ok: true; value: SweepResult } | { ok: false; err: unknown };

/**
 * Shows a sweep's progress until it ends, then its result. Progress comes from the workflow's
 * query while a worker answers, and from visibility (trial workflows' states) while none does.
 * Ctrl-C detaches; the sweep is not cancelled.
 */
async function follow(client: Client, sweepId: string, target: TemporalTarget, options: { json: boolean; workerHere: boolean }): Promise<number> {
  const handle = client.workflow.getHandle<typeof sweepWorkflow>(sweepId);
  const view = new ProgressView(process.stderr);
  const outcome: Promise<Outcome> = handle.result().then(
    (value) => ({ ok: true, value }),
    (err: unknown) => ({ ok: false, err }),
  );
  let detach: () => void = () => undefined;
  const detached = new Promise<'detached'>((r) => (detach = () => r('detached')));
  // SIGTERM (`timeout`, Docker, systemd) detaches like Ctrl-C, and the exit code says which it was.
  // The SDK's own handler stops this process's worker on either signal; without ours the command
  // would go on watching a sweep it no longer serves.
  let signalCode = 130;
  const onSignal = (signal: NodeJS.Signals, code: number) => () => {
    signalCode = code;
    detach();
    // A second signal means "now": don't wait for the worker to drain.
    process.once(signal, () => process.exit(code));
  };
  const onSigint = onSignal('SIGINT', 130);
  const onSigterm = onSignal('SIGTERM', 143);
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigterm);

  let plan: Plan | undefined;
  let tick = 0;
  let liveFailures = 0;
  const show = async () => {
    const status = (await handle.describe()).status.name;
    // Without an answer, ask the workflow again only now and then: each unanswered query waits.
    const tryLive = status === 'RUNNING' && (liveFailures === 0 || tick % 5 === 0);
    const live = tryLive ? await liveProgress(client, sweepId) : undefined;
    if (live) {
      liveFailures = 0;
      view.render(live);
      return;
    }
    liveFailures++;
    plan ??= (await sweepInputOf(client, sweepId)).plan;
    // Only a running sweep needs a worker to answer; an ended one is read from the server.
    const silent = status === 'RUNNING' && !(options.workerHere && liveFailures < 5);
    const note = silent ? 'no worker answers progress queries: trial states come from the server (start one: sweeps worker)' : undefined;
    view.render(await progressFromVisibility(client, sweepId, plan, status), note);
  };

  try {
    for (;;) {
      await show().catch(() => undefined); // progress is best effort; the result below is not
      tick++;
      const next = await Promise.race([outcome, detached, sleep(1000)]);
      if (next === 'detached') {
        say(
          options.workerHere
            ? `\ndetached from ${sweepId}: it stays on the server, but the worker of this process stops now. ` +
                `Continue it with \`sweeps watch ${sweepId} --worker\` (or run \`sweeps worker\`); cancel it with \`sweeps cancel ${sweepId}\`.`
            : `\ndetached; ${sweepId} goes on. Re-attach: sweeps watch ${sweepId}   Stop it: sweeps cancel ${sweepId}`,
        );
        return signalCode;
      }
      if (next !== 'tick') return await finish(client, sweepId, target, next, view, options.json);
    }
  } finally {
    view.close();
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigterm);
  }
}

async function finish(client: Client, sweepId: string, target: TemporalTarget, outcome: Outcome, view: ProgressView, json: boolean): Promise<number> {
  if (outcome.ok) {
    const plan = (await sweepInputOf(client, sweepId)).plan;
    const { result, problem } = await withStoredResults(outcome.value, loadConfig());
    view.render(progressFromResult(plan, result));
    if (problem) say(problem);
    printResult(result, plan, target, json);
    return 0;
  }
  const err = outcome.err;
  if (!(err instanceof WorkflowFailedError)) throw err;
  const plan = (await sweepInputOf(client, sweepId)).plan;
  const status = (await client.workflow.getHandle(sweepId).describe()).status.name;
  await progressFromVisibility(client, sweepId, plan, status).then(
    (p) => view.render(p),
    () => undefined,
  );
  const cause = err.cause;
  const kind = cause instanceof CancelledFailure ? 'cancelled' : cause instanceof TerminatedFailure ? 'terminated' : 'failed';
  // The workflow's own message starts by naming the sweep; say it once.
  const message = kind === 'failed' ? rootCause(err).replace(`sweep ${sweepId} failed: `, '') : undefined;
  if (json) writeJson({ sweepId, status, failure: message });
  say(`\nsweep ${sweepId} ${kind}${message ? `: ${message}` : ''}`);
  say(`to run it again (finished work is reused): sweeps resume ${sweepId}`);
  return 1;
}

/** The final view, from the result itself: exact for every trial, no query needed. */
function progressFromResult(plan: Plan, result: SweepResult): SweepProgress {
  const trials = plan.steps.flatMap((step) => {
    const outputs = (Array.isArray(result.outputs[step.name]) ? result.outputs[step.name] : []) as TrainResult[];
    // Seeds until sure runs only the rounds it needed (the trials of later seeds never ran); a search's trials are not in the plan.
    const ran = step.search
      ? outputs.map((o) => ({ id: o.trial, cell: {}, params: o.params }))
      : step.until
        ? (step.trials ?? []).filter((trial) => outputs.some((o) => o.trial === trial.id))
        : (step.trials ?? []);
    const searchRuns = step.search ? searchRunsOf(outputs) : undefined;
    return ran.map((trial) => {
      const r = outputs.find((o) => o.trial === trial.id);
      const search = searchRuns?.get(trial.id);
      return {
        ...(search ? { search } : {}),
        trial: trial.id,
        workflowId: trialWorkflowId(result.sweepId, trial.id),
        cell: trial.cell,
        state: 'done' as const,
        epoch: r?.epochsRun ?? 0,
        epochs: Number(trial.params.epochs ?? 0),
        bestValidAcc: r?.best.valid_acc,
        cached: r?.cached,
      };
    });
  });
  const steps = plan.steps.map((s) => ({
    name: s.name,
    uses: s.uses,
    state: 'done' as const,
    cached: (result.outputs[s.name] as { cached?: boolean } | undefined)?.cached,
    trials: ((s.until || s.search) && trialCount(result.outputs[s.name])) ?? s.trials?.length,
  }));
  return { sweepId: result.sweepId, pipeline: plan.pipeline, steps, trials };
}

/** How many trial results a step's output holds: its array's length, or the count of those in the store (not read here). */
function trialCount(output: unknown): number | undefined {
  if (Array.isArray(output)) return output.length;
  return isStoredTrialResults(output) ? output.count : undefined;
}

function printResult(result: SweepResult, plan: Plan, target: TemporalTarget, json: boolean): void {
  if (json) {
    writeJson(result);
    return;
  }
  const out: string[] = [''];
  out.push(`sweep ${result.sweepId} finished: ${describeReuse(reuseOf(plan, result))}.`);
  const link = uiLink(target, result.sweepId);
  if (link) out.push(`Temporal UI: ${link}`);
  if (result.report) {
    const { files, tracking } = result.report;
    out.push(`report: ${files.html}`, `        ${files.markdown}`, `        ${files.json}`);
    out.push(`tensorboard --logdir ${tracking.tensorboard}`);
    if (tracking.mlflow) out.push(`MLflow: ${tracking.mlflow}`);
    if (tracking.problems > 0) out.push(`(${tracking.problems} tracking call(s) failed; see the worker log)`);
    for (const v of result.report.variants) {
      out.push(`  ${v.name.padEnd(12)} valid accuracy ${v.meanAcc.toFixed(4)} ± ${v.stdAcc.toFixed(4)} (${v.trials} trials)`);
    }
    out.push('', result.report.verdict);
  }
  for (const u of Object.values(result.until ?? {})) {
    out.push('', `seeds until sure (${u.step}): ${u.seeds.length} seeds in ${u.rounds} rounds; ${u.reason}`);
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
