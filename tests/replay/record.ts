/**
 * Records the histories of a finished sweep and its trials into tests/replay/histories/, for the
 * replay test. Run against a server that has one:
 *   node dist/tests/replay/record.js <sweep-id> [address] [--as <label>]
 * Files are named by workflow id (the replay needs the sweep's own: its trials' ids derive from
 * it); `--as` adds `@<label>`, so the same sweep recorded in two states (cancelled, then resumed)
 * keeps both recordings. A workflow that continued as new (a search) is recorded run by run: its
 * latest run as above, each earlier one as `@run<k>` (k = 1 for its first), so that what a run
 * does before it continues as new is replayed too.
 * Re-record (and keep the old files) only when a workflow change is deliberately incompatible and
 * guarded with patched(): old histories must keep replaying.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const asAt = args.indexOf('--as');
  const label = asAt >= 0 ? args.splice(asAt, 2)[1] : undefined;
  const [sweepId, address = '127.0.0.1:7233'] = args;
  if (!sweepId) throw new Error('usage: record.js <sweep-id> [address] [--as <label>]');
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const ids = [sweepId];
  for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH "${sweepId}/"` })) ids.push(wf.workflowId);
  const dir = join(__dirname, '..', '..', '..', 'tests', 'replay', 'histories');
  for (const id of new Set(ids)) {
    const base = join(dir, id.replace(/[^A-Za-z0-9_.-]+/g, '_'));
    const history = await client.workflow.getHandle(id).fetchHistory();
    const file = `${base}${label ? `@${label}` : ''}.json`;
    writeFileSync(file, historyToJSON(history));
    process.stdout.write(`${file}\n`);
    const runs: Array<{ runId: string; startTime: Date; status: string }> = [];
    for await (const wf of client.workflow.list({ query: `WorkflowId = "${id}"` }))
      runs.push({ runId: wf.runId, startTime: wf.startTime, status: wf.status.name });
    const earlier = runs.filter((r) => r.status === 'CONTINUED_AS_NEW').sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
    for (const [k, run] of earlier.entries()) {
      const runFile = `${base}@${label ? `${label}-` : ''}run${k + 1}.json`;
      writeFileSync(runFile, historyToJSON(await client.workflow.getHandle(id, run.runId).fetchHistory()));
      process.stdout.write(`${runFile}\n`);
    }
  }
  await connection.close();
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
