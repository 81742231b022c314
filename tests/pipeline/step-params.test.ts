import { ApplicationFailure } from '@temporalio/common';
import { badParameter, BAD_PARAMETER, parseStepParams } from '../../activities/params';
import { stepModules } from '../../activities/registry';

/** Parameter errors inside activities: one failure type, never retried, naming the step and field. */

function failureOf(fn: () => unknown): ApplicationFailure {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('no failure');
}

describe('step parameter errors', () => {
  it.each(stepModules.map((m) => [m.type, m] as const))(
    '%s: an unknown parameter is a non-retryable BadParameter naming steps.<step>.with',
    (_type, module) => {
      const failure = failureOf(() => parseStepParams(module.params, { no_such_parameter: 1 }, 'my-step'));
      expect(failure.type).toBe(BAD_PARAMETER);
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain('steps.my-step.with');
      expect(failure.message).toContain('no_such_parameter');
    },
  );

  it('names the field of a wrong value', () => {
    const train = stepModules.find((m) => m.type === 'train')!;
    const failure = failureOf(() => parseStepParams(train.params, { epochs: 'many' }, 'fit'));
    expect(failure.message).toMatch(/^invalid parameters: steps\.fit\.with\.epochs: /);
  });

  it('fills defaults, so that a cache key does not depend on whether a default was written out', () => {
    const report = stepModules.find((m) => m.type === 'report')!;
    expect(parseStepParams(report.params, {}, 'r')).toEqual(parseStepParams(report.params, report.params.parse({}), 'r'));
  });

  it('gives a step its own rule in the same form', () => {
    const failure = badParameter('data', 'root', '"x" must be a folder inside the unpacked archive');
    expect([failure.type, failure.nonRetryable, failure.message]).toEqual([
      BAD_PARAMETER,
      true,
      'steps.data.with.root: "x" must be a folder inside the unpacked archive',
    ]);
  });
});
