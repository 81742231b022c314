import { stepModule } from '../activities/registry';
import type { Durability, Plan, PlanStep, PlanTrial } from './plan';

/**
 * Completes a plan with what the workflows need from each step's module and cannot import
 * themselves (modules do I/O): the durability contract, the UI summary, and each trial's label
 * and search-attribute values, all derived from the step types and the matrix axes. Also applied
 * to plans read back from an older sweep's history (`sweeps resume`), which lack these fields.
 * Not part of the plan's digest: the same pipeline keeps its sweep id.
 */
export function withContracts(plan: Plan): Plan {
  return { ...plan, steps: plan.steps.map((step) => stepWithContract(step, plan.steps)) };
}

function stepWithContract(step: PlanStep, steps: readonly PlanStep[]): PlanStep {
  const module = stepModule(step.uses);
  if (!module) throw new Error(`step "${step.name}" uses "${step.uses}", which no registered step type is`);
  const durability = withOverrides(module.durability, step);
  if (!step.trials) {
    const params = module.params.safeParse(step.params ?? {});
    // A plan from an older sweep may hold parameters this version no longer reads: name the step plainly.
    return { ...step, durability, summary: params.success ? module.summary(params.data) : `${step.uses} ${step.name}` };
  }
  // The axis a downstream step compares (a report's `compare`) names each trial's variant.
  const compared = steps
    .filter((s) => s.needs.includes(step.name))
    .map((s) => {
      const downstream = stepModule(s.uses);
      const params = downstream?.params.safeParse(s.params ?? {});
      return params?.success ? downstream?.comparesAxis?.(params.data) : undefined;
    })
    .find((axis) => axis !== undefined);
  const axes = Object.keys(step.trials[0]?.cell ?? {});
  const s = step.search;
  const summary = s
    ? `${step.uses}: ${s.sampler} search of ${s.trials} trials${s.cells.length > 1 ? ` per cell of ${Object.keys(s.grid).join(' × ')}` : ''} over ${Object.keys(s.space).join(', ')}`
    : `${step.uses} ${step.trials.length} trials over ${axes.join(' × ')}`;
  return { ...step, durability, summary, trials: step.trials.map((t) => trialWithLabels(t, compared)) };
}

function trialWithLabels(trial: PlanTrial, compared: string | undefined): PlanTrial {
  const label = Object.entries(trial.cell)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const out: PlanTrial = { ...trial, label: label || trial.id };
  const variant = compared !== undefined ? (trial.cell[compared] ?? trial.params[compared]) : undefined;
  if (variant !== undefined) out.variant = String(variant);
  const seed = trial.cell.seed ?? trial.params.seed;
  if (typeof seed === 'number' && Number.isSafeInteger(seed)) out.seed = seed;
  return out;
}

function withOverrides(base: Durability, step: PlanStep): Durability {
  const retry = { ...base.retry };
  if (step.retry?.max_attempts !== undefined) retry.maximumAttempts = step.retry.max_attempts;
  if (step.retry?.initial_interval !== undefined) retry.initialInterval = step.retry.initial_interval;
  if (step.retry?.maximum_interval !== undefined) retry.maximumInterval = step.retry.maximum_interval;
  if (step.retry?.backoff !== undefined) retry.backoffCoefficient = step.retry.backoff;
  return { ...base, retry, startToCloseTimeout: step.timeout ?? base.startToCloseTimeout };
}
