import type { ActivityOptions } from '@temporalio/workflow';
import type { PlanStep } from '../pipeline/plan';
import type { StepType } from '../pipeline/steps';

/**
 * The durability contract of each step type: how long one attempt may take, how often it must
 * prove it is alive, and how it is retried. Errors no retry can fix (a digest mismatch, malformed
 * data, a bad parameter) are thrown as non-retryable by the activities themselves.
 */
const defaults: Record<StepType, ActivityOptions> = {
  download: {
    startToCloseTimeout: '20m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
  },
  dataset: {
    startToCloseTimeout: '15m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
  padding: {
    startToCloseTimeout: '15m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
  // Training is long and resumes from its last epoch checkpoint, so retrying it is cheap: allow
  // many attempts, and detect a dead worker quickly through the heartbeat. The trainer runs in a
  // child process, so the worker's event loop is free to heartbeat however busy the cores are.
  train: {
    startToCloseTimeout: '6h',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10 },
  },
  report: {
    startToCloseTimeout: '10m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
};

export function activityOptionsFor(step: PlanStep, taskQueue: string): ActivityOptions {
  const base = defaults[step.uses];
  const retry = { ...base.retry };
  if (step.retry?.max_attempts !== undefined) retry.maximumAttempts = step.retry.max_attempts;
  if (step.retry?.initial_interval !== undefined) retry.initialInterval = step.retry.initial_interval;
  if (step.retry?.maximum_interval !== undefined) retry.maximumInterval = step.retry.maximum_interval;
  if (step.retry?.backoff !== undefined) retry.backoffCoefficient = step.retry.backoff;
  return { ...base, retry, taskQueue, startToCloseTimeout: step.timeout ?? base.startToCloseTimeout };
}
