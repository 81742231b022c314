import { Context } from '@temporalio/activity';

/** The activity context when running inside a Temporal activity; undefined in plain calls (tests, benchmarks). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeats when running inside a Temporal activity; a no-op elsewhere. */
export function heartbeatIfActivity(details: unknown): void {
  activityContext()?.heartbeat(details);
}

/** The activity's cancellation signal, when there is an activity. */
export function activitySignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}
