import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { GESTURES_MD5, gesturesArchive } from '../helpers/fixtures';

/**
 * A sweep of 5 pooling variants × `seeds` seeds of tiny trials (1 epoch of 2 batches): as many
 * trials as one likes, each about a second, to see how the sweep's history grows with them.
 */
export function manyTrialsPipeline(seeds: number, concurrency: number): string {
  return `name: many-trials
steps:
  download: { uses: download, with: { urls: ["file://${gesturesArchive()}"], md5: ${GESTURES_MD5} } }
  dataset: { uses: dataset, needs: [download], with: { limit: 200 } }
  padding: { uses: padding, needs: [dataset] }
  train:
    uses: train
    needs: [padding]
    matrix: { pooling: [last, mean, last-valid, mean-valid, max], seed: [${Array.from({ length: seeds }, (_, i) => i + 1).join(', ')}] }
    concurrency: ${concurrency}
    with: { epochs: 1, hidden: 8, train_batches: 2, valid_batches: 1, backend: wasm }
  report: { uses: report, needs: [train] }
`;
}

export interface HistoryMeasure {
  workflowId: string;
  events: number;
  /** Size of the history as the server stores it (describe: historySizeBytes). */
  bytes: number;
  /** The largest payload of any one event (an input, a result, a signal), and that event's type. */
  largest: { bytes: number; event: string };
}

interface JsonEvent {
  eventId: string;
  eventType: string;
  [attributes: string]: unknown;
}

/** Event count, bytes and the largest payload of a workflow's history. */
export async function measureHistory(client: Client, workflowId: string): Promise<HistoryMeasure> {
  const handle = client.workflow.getHandle(workflowId);
  const [history, description] = await Promise.all([handle.fetchHistory(), handle.describe()]);
  const events = (JSON.parse(historyToJSON(history)) as { events: JsonEvent[] }).events;
  let largest = { bytes: 0, event: '' };
  for (const event of events) {
    const size = payloadBytes(event);
    if (size > largest.bytes) largest = { bytes: size, event: `${event.eventType} (event ${event.eventId})` };
  }
  return { workflowId, events: events.length, bytes: Number(description.historySize ?? 0), largest };
}

/** Bytes of every payload inside an event (inputs, results, details), from their base64 data. */
function payloadBytes(value: unknown): number {
  if (!value || typeof value !== 'object') return 0;
  const record = value as Record<string, unknown>;
  if (typeof record.data === 'string' && 'metadata' in record) return Buffer.from(record.data, 'base64').length;
  return Object.values(record).reduce<number>((n, v) => n + payloadBytes(v), 0);
}
