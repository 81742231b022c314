import { Context } from '@temporalio/activity';

/** The activity context when running inside a Temporal activity; undefined in plain calls (tests, benchmarks). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
