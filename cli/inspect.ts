import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { loadConfig } from '../client/config';
import { resolveTemporal, type TemporalTarget } from '../client/server';
import { cancelSweep, connectClient, listSweeps, sweepStatus, uiLink } from '../client/sweeps';
import { parse, say, single, UsageError, writeJson } from './args';
import { trialLine } from './progress';
import { withStoredResults } from './results';
import { describeReuse, reuseOf } from './reuse';

async function connect(): Promise<{ client: Client; target: TemporalTarget }> {
  const config = loadConfig();
  const target = await resolveTemporal(config, say);
  return { client: await connectClient(target), target };
}

/** A sweep id that does not exist is the user's input, not a crash. */
function notFound(sweepId: string) {
  return (err: unknown): never => {
    if (err instanceof WorkflowNotFoundError) throw new UsageError(`no sweep ${sweepId} on this server; \`sweeps list\` shows the sweeps there are`);
    throw err;
  };
}

const STATUS_HELP = `Usage: sweeps status <sweep-id> [--json]

The state of a sweep and of each of its trials, and the effective pipeline it runs (the plan it
was started with, --set overrides applied). Needs no worker: without one, trial states come from
the server's visibility records; with one, also each running trial's epoch and accuracy.

  --json   everything as JSON on stdout (status, plan, steps, trials, result or failure)`;

export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, STATUS_HELP);
  const sweepId = single(positionals, 'a sweep id', STATUS_HELP);
  const { client, target } = await connect();
  const recorded = await sweepStatus(client, sweepId).catch(notFound(sweepId));
  // A large step's trial results are in the artifact store: read them, to show every trial.
  const resolved = recorded.result ? await withStoredResults(recorded.result, loadConfig()) : undefined;
  const status = resolved ? { ...recorded, result: resolved.result } : recorded;
  if (resolved?.problem) say(resolved.problem);
  if (values.json) {
    writeJson({ ...status, ui: uiLink(target, sweepId) });
    return 0;
  }
  const out = [
    `${sweepId}: ${status.status}${status.closeTime ? ` (ended ${status.closeTime})` : ` (started ${status.startTime})`}`,
    `  pipeline ${status.plan.pipeline} from ${status.plan.source}, digest ${status.plan.digest.slice(0, 12)}`,
    ...(status.plan.params ? [`  params ${paramsText(status.plan.params)}`] : []),
    `  history: ${status.historyEvents} events${status.historyBytes ? `, ${(status.historyBytes / 1024).toFixed(1)} KB` : ''}`,
  ];
  const link = uiLink(target, sweepId);
  if (link) out.push(`  Temporal UI: ${link}`);
  if (!status.live && status.status === 'RUNNING') out.push('  (no worker answers progress queries: epochs unknown; start one with `sweeps worker`)');
  for (const s of status.steps) out.push(`  ${s.name.padEnd(10)} ${s.state}${s.trials ? ` · ${s.trials} trials` : ''}`);
  for (const t of status.trials) out.push(`    ${trialLine(t)}`);
  if (status.failure) out.push(`  failure: ${status.failure}`);
  if (status.result) out.push(`  ${describeReuse(reuseOf(status.plan, status.result))}`);
  if (status.result?.report) out.push(`  report: ${status.result.report.files.html}`, `  ${status.result.report.verdict}`);
  for (const u of Object.values(status.result?.until ?? {}))
    out.push(`  seeds until sure (${u.step}): ${u.seeds.length} seeds in ${u.rounds} rounds; ${u.reason}`);
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

/** `dataset=JapaneseVowels standardise=false`: a pipeline's params on one line. */
export function paramsText(params: Record<string, string | number | boolean>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
}

const LIST_HELP = `Usage: sweeps list [--limit N] [--pipeline NAME] [--json]

Recent sweeps on the server, newest first (a visibility query: SweepKind = "sweep").

  --limit N         how many (default 20)
  --pipeline NAME   only sweeps of this pipeline
  --json            as JSON on stdout`;

export async function listCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { limit: { type: 'string', default: '20' }, pipeline: { type: 'string' }, json: { type: 'boolean' } }, LIST_HELP);
  if (positionals.length > 0) throw new UsageError(LIST_HELP);
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`--limit ${values.limit}: expected a positive integer`);
  const { client } = await connect();
  const sweeps = await listSweeps(client, { limit, pipeline: values.pipeline });
  if (values.json) {
    writeJson(sweeps);
    return 0;
  }
  if (sweeps.length === 0) {
    process.stdout.write('no sweeps yet\n');
    return 0;
  }
  const rows = sweeps.map((s) => [
    s.status,
    s.startTime.replace('T', ' ').slice(0, 19),
    s.sweepId,
    s.bestValidAcc === undefined ? '' : `best ${s.bestValidAcc.toFixed(4)}`,
    s.runs > 1 ? `${s.runs} runs` : '',
  ]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`${rows.map((row) => line(row).trimEnd()).join('\n')}\n`);
  return 0;
}

const CANCEL_HELP = `Usage: sweeps cancel <sweep-id>

Asks a running sweep to stop: its trials are cancelled (a training stops at its next heartbeat,
within seconds) and the sweep ends as cancelled. Finished work stays in the artifact store:
\`sweeps resume <sweep-id>\` runs the rest later.`;

export async function cancelCommand(args: string[]): Promise<number> {
  const { positionals } = parse(args, {}, CANCEL_HELP);
  const sweepId = single(positionals, 'a sweep id', CANCEL_HELP);
  const { client } = await connect();
  const before = await cancelSweep(client, sweepId).catch(notFound(sweepId));
  if (before !== 'RUNNING') {
    say(`${sweepId} is not running (${before}); nothing to cancel`);
    return 0;
  }
  say(`cancellation requested for ${sweepId}; its trials stop at their next heartbeat. \`sweeps status ${sweepId}\` shows when it has.`);
  return 0;
}
