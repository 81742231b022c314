import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { SweepActivities } from '../activities';
import type { StepInput } from '../activities/types';
import type { Durability, PlanStep } from '../pipeline/plan';

/**
 * Plans made before each step carried its durability contract (sweeps in flight across an
 * upgrade) get this one: long enough for any step, with a heartbeat to notice a dead worker.
 * `sweeps resume` completes an old plan from the step modules instead (pipeline/contracts.ts).
 */
const LEGACY: Durability = {
  startToCloseTimeout: '6h',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10 },
};

/** The activity options of a step: the contract the planner resolved from its step module. */
export function activityOptionsFor(step: Omit<PlanStep, 'trials'>, taskQueue: string): ActivityOptions {
  const { startToCloseTimeout, heartbeatTimeout, retry } = step.durability ?? LEGACY;
  return {
    startToCloseTimeout: step.durability ? startToCloseTimeout : (step.timeout ?? startToCloseTimeout),
    heartbeatTimeout,
    retry: { ...retry },
    taskQueue,
  };
}

/**
 * Runs a step's activity under that step's durability contract: each call gets its own options,
 * so there are no workflow-wide defaults that would apply to nothing.
 */
export function executeStep(step: Omit<PlanStep, 'trials'>, taskQueue: string, summary: string, input: StepInput<Record<string, unknown>>): Promise<unknown> {
  return proxyActivities<SweepActivities>({ ...activityOptionsFor(step, taskQueue), summary })[step.uses]!(input);
}
