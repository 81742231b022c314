import { isCancellation } from '@temporalio/workflow';
import type { PlanStep } from '../pipeline/plan';
import type { StepState } from './progress';

/** A step that did not run because a step it needs failed (that failure is reported once). */
export class UpstreamFailed extends Error {
  constructor(readonly step: string) {
    super(`${step} did not run: a step it needs failed`);
  }
}

/**
 * Walks the plan's DAG: every step starts as soon as the steps it needs have finished, so
 * independent steps run in parallel; each receives its upstream results by step name. Resolves
 * with every step's outcome, in plan order.
 */
export function walkDag(
  steps: readonly PlanStep[],
  execute: (step: PlanStep, inputs: Record<string, unknown>) => Promise<unknown>,
  onState: (step: PlanStep, state: StepState, detail?: { output?: unknown; err?: unknown }) => void,
): Promise<PromiseSettledResult<unknown>[]> {
  const started = new Map<string, Promise<unknown>>();
  const run = (step: PlanStep): Promise<unknown> => {
    let running = started.get(step.name);
    if (!running) {
      running = (async () => {
        let values: unknown[];
        try {
          values = await Promise.all(step.needs.map((need) => run(steps.find((s) => s.name === need)!)));
        } catch (err) {
          if (isCancellation(err)) throw err;
          // Said once, by the step that failed; this one only did not run.
          onState(step, 'skipped');
          throw new UpstreamFailed(step.name);
        }
        onState(step, 'running');
        try {
          const output = await execute(step, Object.fromEntries(step.needs.map((need, i) => [need, values[i]])));
          onState(step, 'done', { output });
          return output;
        } catch (err) {
          onState(step, isCancellation(err) ? 'cancelled' : 'failed', { err });
          throw err;
        }
      })();
      started.set(step.name, running);
    }
    return running;
  };
  return Promise.allSettled(steps.map(run));
}
