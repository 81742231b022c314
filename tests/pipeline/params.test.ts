import { planFromText, PipelineError, type Problem } from '../../pipeline/load';
import type { Plan } from '../../pipeline/plan';
import { GESTURES_MD5 } from '../helpers/fixtures';

/** Pipeline parameters: `params:` declared in the file, `--param name=value` on the command line. */

const file = (params: string, trainWith = '{ epochs: "${{ params.epochs }}" }', extra = '') => `name: with-params
params:
${params}
steps:
  download:
    uses: download
    with: { urls: ["file:///data/\${{ params.archive }}.zip"], md5: ${GESTURES_MD5} }
  dataset: { uses: dataset, needs: [download] }
  padding: { uses: padding, needs: [dataset] }
  fit:
    uses: train
    needs: [padding]
    matrix: { seed: [1, 2] }
    with: ${trainWith}
${extra}`;

const declared = `  archive:
    type: string
    default: gestures-dataset
    description: File name of the archive, without .zip
  epochs:
    type: integer
    default: 3`;

function plan(text: string, params?: string[]): Plan {
  return planFromText(text, 'p.yaml', { params });
}

function problemsOf(text: string, params?: string[]): Problem[] {
  try {
    plan(text, params);
  } catch (err) {
    if (err instanceof PipelineError) return err.problems;
    throw err;
  }
  throw new Error('the pipeline was accepted');
}

const stepParams = (p: Plan, name: string) => {
  const step = p.steps.find((s) => s.name === name)!;
  return step.params ?? step.trials![0]!.params;
};

describe('pipeline params', () => {
  it('replaces a whole-value reference with the typed default, and interpolates one inside a string', () => {
    const p = plan(file(declared));
    expect(stepParams(p, 'fit').epochs).toBe(3);
    expect(stepParams(p, 'download').urls).toEqual(['file:///data/gestures-dataset.zip']);
    expect(p.params).toEqual({ archive: 'gestures-dataset', epochs: 3 });
  });

  it('takes --param values, read as the declared type', () => {
    const p = plan(file(declared), ['epochs=7', 'archive=other']);
    expect(stepParams(p, 'fit').epochs).toBe(7);
    expect(stepParams(p, 'download').urls).toEqual(['file:///data/other.zip']);
    expect(p.params).toEqual({ archive: 'other', epochs: 7 });
  });

  it('gives different values different sweep ids', () => {
    expect(plan(file(declared), ['epochs=7']).digest).not.toBe(plan(file(declared)).digest);
  });

  it('refuses a --param the pipeline does not declare, with a suggestion, naming the option', () => {
    expect(problemsOf(file(declared), ['epoch=2'])).toEqual([
      { path: 'params', origin: '--param epoch=2', message: 'there is no parameter "epoch" (did you mean "epochs"?)' },
    ]);
  });

  it('refuses a --param value of the wrong type', () => {
    expect(problemsOf(file(declared), ['epochs=many'])).toEqual([
      { path: 'params.epochs', origin: '--param epochs=many', message: 'expected an integer, got "many"' },
    ]);
  });

  it('refuses a --param without a value', () => {
    expect(problemsOf(file(declared), ['epochs'])[0]).toMatchObject({ origin: '--param epochs', message: expect.stringContaining('expected <name>=<value>') });
  });

  it('asks for a parameter that has no default, on the line that declares it', () => {
    const problems = problemsOf(file('  archive:\n    type: string\n  epochs: { type: integer, default: 3 }'));
    expect(problems).toEqual([{ path: 'params.archive', line: 3, column: 3, message: 'has no default: set it with --param archive=<string>' }]);
  });

  it('refuses a reference to a parameter that is not declared, where it is written', () => {
    const problems = problemsOf(file(declared, '{ epochs: "${{ params.epohcs }}" }'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      path: 'steps.fit.with.epochs',
      line: 20,
      message: expect.stringContaining('names no parameter (did you mean "epochs"?)'),
    });
  });

  it('checks the substituted value like any value of the file', () => {
    const problems = problemsOf(file(declared), ['epochs=0']);
    expect(problems[0]).toMatchObject({ path: 'steps.fit.with.epochs', message: expect.stringContaining('0') });
  });

  it('refuses a default of the wrong type, and a value outside the declared values', () => {
    expect(problemsOf(file('  archive: { type: string, default: x }\n  epochs: { type: integer, default: "three" }'))).toEqual([
      { path: 'params.epochs.default', line: 4, column: 28, message: 'expected an integer, got "three"' },
    ]);
    const choices = '  archive: { type: string, default: a, values: [a, b] }\n  epochs: { type: integer, default: 3 }';
    expect(problemsOf(file(choices), ['archive=c'])[0]).toMatchObject({ path: 'params.archive', message: '"c" is not one of ["a","b"]' });
    expect(plan(file(choices), ['archive=b']).params).toEqual({ archive: 'b', epochs: 3 });
  });

  it('refuses a badly named parameter', () => {
    expect(problemsOf(file('  Archive: { type: string, default: x }\n  epochs: { type: integer, default: 3 }'))[0]!.message).toContain(
      'parameter names are lowercase',
    );
  });

  it('leaves a pipeline without params as it was: no params in the plan', () => {
    const text = file(declared)
      .replace(/^params:[\s\S]*?^steps:/m, 'steps:')
      .replace('${{ params.archive }}', 'g')
      .replace('"${{ params.epochs }}"', '2');
    const p = plan(text);
    expect(p.params).toBeUndefined();
    expect(problemsOf(text, ['epochs=2'])[0]!.message).toBe('there is no parameter "epochs": this pipeline declares no params');
  });
});
