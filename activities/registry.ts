import { datasetStep } from './dataset';
import { describeStep } from './describe';
import { downloadStep } from './download';
import { paddingStep } from './padding';
import { reportStep } from './report';
import type { StepModule } from './step-module';
import { trainStep } from './train';

/**
 * Every step type a pipeline's `uses:` may name, one module each (see ./step-module.ts): a new
 * step type is its module plus one line here.
 */
// prettier-ignore
export const stepModules: readonly StepModule[] = [
  downloadStep,
  datasetStep,
  paddingStep,
  trainStep,
  reportStep,
  describeStep,
];

export const stepTypeNames: readonly string[] = stepModules.map((m) => m.type);

/** The module of a registered step type; undefined for a name no module has. */
export function stepModule(type: string): StepModule | undefined {
  return stepModules.find((m) => m.type === type);
}
