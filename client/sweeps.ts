import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { sweepIdFor, type Plan } from '../pipeline/plan';
import { searchAttributes } from '../workflows/search-attributes';
import type { SweepInput, sweepWorkflow } from '../workflows/sweep';
import type { SweepsConfig } from './config';
import { ensureSearchAttributes, type TemporalTarget } from './server';

export type SweepHandle = WorkflowHandle<typeof sweepWorkflow>;

export async function connectClient(target: TemporalTarget): Promise<Client> {
  const connection = await Connection.connect(target.connectionOptions);
  await ensureSearchAttributes(connection, target.namespace);
  return new Client({ connection, namespace: target.namespace });
}

export function uiLink(target: TemporalTarget, workflowId: string): string | undefined {
  return target.uiUrl ? `${target.uiUrl}/namespaces/${target.namespace}/workflows/${encodeURIComponent(workflowId)}` : undefined;
}

/**
 * Starts the sweep of a plan under its stable id, or attaches to it when that sweep is already
 * running. A finished or failed sweep of the same plan starts again: its finished steps are
 * cache hits, so this is also how a failed sweep is resumed.
 */
export async function startOrAttach(
  client: Client,
  config: SweepsConfig,
  plan: Plan,
): Promise<{ handle: SweepHandle; attached: boolean }> {
  const workflowId = sweepIdFor(plan);
  const existing = client.workflow.getHandle<typeof sweepWorkflow>(workflowId);
  try {
    const description = await existing.describe();
    if (description.status.name === 'RUNNING') return { handle: existing, attached: true };
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  const input: SweepInput = { plan, trainQueue: config.trainQueue };
  try {
    const handle = await client.workflow.start<typeof sweepWorkflow>('sweepWorkflow', {
      taskQueue: config.taskQueue,
      workflowId,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `sweep ${plan.pipeline}: ${plan.description ?? plan.source}`,
      staticDetails: describePlan(plan),
      typedSearchAttributes: [
        { key: searchAttributes.pipeline, value: plan.pipeline },
        { key: searchAttributes.kind, value: 'sweep' },
        { key: searchAttributes.state, value: 'running' },
      ],
    });
    return { handle, attached: false };
  } catch (err) {
    // Someone else started it between our look and our start: watching it is what the user wants.
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { handle: existing, attached: true };
    throw err;
  }
}

/** The input of a sweep's latest run, read back from its history (the source of truth). */
export async function sweepInputOf(client: Client, sweepId: string): Promise<SweepInput> {
  const handle = client.workflow.getHandle(sweepId);
  const history = await handle.fetchHistory();
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const payload = started?.input?.payloads?.[0];
  if (!payload) throw new Error(`sweep ${sweepId}: its history has no input to resume from`);
  return client.options.loadedDataConverter.payloadConverter.fromPayload<SweepInput>(payload);
}

function describePlan(plan: Plan): string {
  const lines = [`Pipeline \`${plan.pipeline}\` from \`${plan.source}\` (digest ${plan.digest.slice(0, 12)}).`, ''];
  for (const step of plan.steps) {
    const needs = step.needs.length ? ` ← ${step.needs.join(', ')}` : '';
    const trials = step.trials ? ` · ${step.trials.length} trials, ${step.concurrency} at a time` : '';
    lines.push(`- **${step.name}** (${step.uses})${needs}${trials}`);
  }
  return lines.join('\n');
}
