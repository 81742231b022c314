import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_TRIALS, planFromText, PipelineError, type Problem } from '../../pipeline/load';
import { GESTURES_MD5, repoRoot } from '../helpers/fixtures';

/**
 * The validator, against files that are wrong in one way each: every problem is reported with its
 * path, a message that says what is wrong, and the line it is on (the line marked `#<`).
 */

const base: Record<string, string> = {
  download: `  download:
    uses: download
    with: { urls: ["file:///data/gestures.zip"], md5: ${GESTURES_MD5} }`,
  dataset: `  dataset:
    uses: dataset
    needs: [download]
    with: { limit: 200 }`,
  padding: `  padding:
    uses: padding
    needs: [dataset]`,
  train: `  train:
    uses: train
    needs: [padding]
    matrix: { pooling: [last, mean], seed: [1, 2] }
    with: { epochs: 1, hidden: 8 }`,
  report: `  report:
    uses: report
    needs: [train]`,
};

/** A valid pipeline with some steps replaced (or removed, with ''). */
function pipeline(steps: Record<string, string> = {}, head = 'name: bad-pipeline'): string {
  const merged = { ...base, ...steps };
  return `${head}\nsteps:\n${Object.values(merged).filter(Boolean).join('\n')}\n`;
}

function problemsOf(text: string, set?: string[]): Problem[] {
  try {
    planFromText(text, 'bad.yaml', { set });
  } catch (err) {
    if (err instanceof PipelineError) return err.problems;
    throw err;
  }
  throw new Error('the pipeline was accepted');
}

/** The line the case marks with `#<`, where the problem must be located. */
function markedLine(text: string): number | undefined {
  const index = text.split('\n').findIndex((line) => line.includes('#<'));
  return index < 0 ? undefined : index + 1;
}

interface Case {
  name: string;
  text: string;
  path: string;
  message: string;
}

const cases: Case[] = [
  {
    name: 'an unknown top-level key, with a suggestion',
    text: pipeline({}, 'name: bad-pipeline\nnmae: typo #<'),
    path: 'nmae',
    message: 'unknown key "nmae" (did you mean "name"?)',
  },
  { name: 'a missing pipeline name', text: pipeline({}, 'description: no name'), path: 'name', message: 'required: expected a string' },
  {
    name: 'a pipeline name that cannot be a workflow id',
    text: pipeline({}, 'name: Gestures Pooling #<'),
    path: 'name',
    message: 'pipeline names are lowercase letters, digits and "-"',
  },
  { name: 'no steps at all', text: 'name: empty\nsteps: {} #<\n', path: 'steps', message: 'a pipeline needs at least one step' },
  { name: 'steps that are a list', text: 'name: listed\nsteps: [download] #<\n', path: 'steps', message: 'expected a mapping, got the list ["download"]' },
  {
    name: 'a step name with capitals',
    text: pipeline({ report: '  Report: #<\n    uses: report\n    needs: [train]' }),
    path: 'steps.Report',
    message: 'step names are lowercase letters',
  },
  {
    name: 'an unknown key in a step, with a suggestion',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    neds: [dataset] #<' }),
    path: 'steps.padding.neds',
    message: 'unknown key "neds" (did you mean "needs"?)',
  },
  {
    name: 'an unknown step type',
    text: pipeline({ train: '  train:\n    uses: trian #<\n    needs: [padding]' }),
    path: 'steps.train.uses',
    message: 'expected one of "download", "dataset", "padding", "train", "report", "describe", got "trian" (did you mean "train"?)',
  },
  {
    name: 'a dangling need of a step whose type is unknown (not hidden by the first problem)',
    text: pipeline({ train: '  train:\n    uses: trian\n    needs: [paddin] #<' }),
    path: 'steps.train.needs[0]',
    message: 'there is no step "paddin" (did you mean "padding"?)',
  },
  {
    name: 'a dangling need',
    text: pipeline({ report: '  report:\n    uses: report\n    needs: [train, plots] #<' }),
    path: 'steps.report.needs[1]',
    message: 'there is no step "plots"',
  },
  {
    name: 'a step that needs itself',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset, padding] #<' }),
    path: 'steps.padding.needs[1]',
    message: 'a step cannot need itself',
  },
  {
    name: 'a cycle',
    text: pipeline({ dataset: '  dataset:\n    uses: dataset\n    needs: [download, padding] #<' }),
    path: 'steps.dataset.needs',
    message: 'the steps form a cycle: dataset → padding → dataset',
  },
  {
    name: 'a need that is not a name',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset, 3] #<' }),
    path: 'steps.padding.needs[1]',
    message: 'expected a string, got 3',
  },
  {
    name: 'a step without the upstream result its type reads',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [dataset] #<\n    matrix: { seed: [1] }' }),
    path: 'steps.train.needs',
    message: 'a train step reads the result of exactly one padding step among its needs; it has none',
  },
  {
    name: 'a report of a train step without a matrix',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]', report: '  report:\n    uses: report\n    needs: [train] #<' }),
    path: 'steps.report.needs',
    message: 'a report step reads the trials of at least one train step with a matrix',
  },
  {
    name: 'an empty matrix',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: {} #<' }),
    path: 'steps.train.matrix',
    message: 'a matrix needs at least one axis',
  },
  {
    name: 'an empty matrix axis',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix:\n      pooling: [last]\n      seed: [] #<' }),
    path: 'steps.train.matrix.seed',
    message: 'a matrix axis needs at least one value',
  },
  {
    name: 'a matrix value of the wrong type',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix:\n      seed: [1, one] #<' }),
    path: 'steps.train.matrix.seed[1]',
    message: 'expected an integer, got "one"',
  },
  {
    name: 'a matrix value out of range',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix:\n      hidden: [32, 0] #<' }),
    path: 'steps.train.matrix.hidden[1]',
    message: 'expected a number greater than 0, got 0',
  },
  {
    name: 'a matrix value that is not a variant',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix:\n      pooling: [last, maen] #<' }),
    path: 'steps.train.matrix.pooling[1]',
    message: 'got "maen" (did you mean "mean"?)',
  },
  {
    name: 'a matrix axis that is not a parameter',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix:\n      poolng: [last] #<' }),
    path: 'steps.train.matrix.poolng',
    message: '"poolng" is not a parameter of step type "train" (did you mean "pooling"?)',
  },
  {
    name: 'a parameter set in with: and in matrix:',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: { seed: [1, 2] }\n    with: { seed: 3 } #<' }),
    path: 'steps.train.with.seed',
    message: '"seed" is set both in with: and in matrix:',
  },
  {
    name: 'a matrix on a step type that does not run trials',
    text: pipeline({ dataset: '  dataset:\n    uses: dataset\n    needs: [download]\n    matrix: { limit: [100, 200] } #<' }),
    path: 'steps.dataset.matrix',
    message: 'a dataset step cannot fan out over a matrix',
  },
  {
    name: 'an unknown parameter of a matrix step',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: { seed: [1] }\n    with:\n      hiden: 32 #<' }),
    path: 'steps.train.with.hiden',
    message: 'unknown parameter "hiden" of step type "train" (did you mean "hidden"?)',
  },
  {
    name: 'an unknown parameter of a plain step',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset]\n    with:\n      max_len: 40 #<' }),
    path: 'steps.padding.with.max_len',
    message: 'unknown key "max_len" (did you mean "max_length"?)',
  },
  {
    name: 'a parameter of the wrong type',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: { seed: [1] }\n    with:\n      epochs: many #<' }),
    path: 'steps.train.with.epochs',
    message: 'expected an integer, got "many"',
  },
  {
    name: 'a fraction where an integer is expected',
    text: pipeline({ dataset: '  dataset:\n    uses: dataset\n    needs: [download]\n    with:\n      limit: 2.5 #<' }),
    path: 'steps.dataset.with.limit',
    message: 'expected an integer, got 2.5',
  },
  {
    name: 'parameters that are not a mapping',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset]\n    with: 32 #<' }),
    path: 'steps.padding.with',
    message: 'expected a mapping, got 32',
  },
  {
    name: 'an unknown split kind',
    text: pipeline({ dataset: '  dataset:\n    uses: dataset\n    needs: [download]\n    with:\n      split: { kind: byuser } #<' }),
    path: 'steps.dataset.with.split.kind',
    message: 'expected one of "random", "by-user", got "byuser" (did you mean "by-user"?)',
  },
  {
    name: 'a by-user split without users',
    text: pipeline({ dataset: '  dataset:\n    uses: dataset\n    needs: [download]\n    with:\n      split: { kind: by-user, valid_users: [] } #<' }),
    path: 'steps.dataset.with.split.valid_users',
    message: 'name at least one user to hold out',
  },
  {
    name: 'a download that cannot be verified',
    text: pipeline({ download: '  download:\n    uses: download\n    with: { urls: ["file:///x.zip"] } #<' }),
    path: 'steps.download.with',
    message: 'declare md5 or sha256',
  },
  {
    name: 'concurrency on a step without a matrix',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset]\n    concurrency: 2 #<' }),
    path: 'steps.padding.concurrency',
    message: 'concurrency applies only to a step with a matrix',
  },
  {
    name: 'a concurrency of zero',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: { seed: [1] }\n    concurrency: 0 #<' }),
    path: 'steps.train.concurrency',
    message: 'expected a number greater than 0, got 0',
  },
  {
    name: 'a sample without a count',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: { seed: [1, 2, 3] }\n    sample: { seed: 4 } #<' }),
    path: 'steps.train.sample.count',
    message: 'required: expected an integer',
  },
  {
    name: 'a sample seed that is not an integer',
    text: pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: { seed: [1, 2, 3] }\n    sample: { count: 2, seed: 1.5 } #<' }),
    path: 'steps.train.sample.seed',
    message: 'expected an integer, got 1.5',
  },
  {
    name: 'a timeout that is not a duration',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset]\n    timeout: 10 minutes #<' }),
    path: 'steps.padding.timeout',
    message: 'expected a duration such as "90s"',
  },
  {
    name: 'an unknown key in a retry policy',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset]\n    retry: { attempts: 3 } #<' }),
    path: 'steps.padding.retry.attempts',
    message: 'unknown key "attempts"; expected one of: max_attempts, initial_interval, maximum_interval, backoff',
  },
  {
    name: 'a duplicate key',
    text: pipeline({ padding: '  padding:\n    uses: padding\n    needs: [dataset]\n    needs: [download] #<' }),
    path: '',
    message: 'not valid YAML',
  },
];

describe('the validator rejects a bad pipeline file with the path, a clear message and the line', () => {
  it.each(cases)('$name → $path', ({ text, path, message }) => {
    const problems = problemsOf(text);
    const problem = problems.find((p) => p.path === path);
    expect({ path: problem?.path, all: problems.map((p) => `${p.path}: ${p.message}`) }).toMatchObject({ path });
    expect(problem!.message).toContain(message);
    const line = markedLine(text);
    if (line !== undefined) expect(problem!.line).toBe(line);
  });

  it('reports every problem of a file in one run, in the order of the file', () => {
    const text = pipeline({
      padding: '  padding:\n    uses: paddng\n    needs: [datset]',
      train: '  train:\n    uses: train\n    needs: [padding]\n    matrix: { seed: [1, x], pooling: [] }\n    with: { epochs: 0 }',
    });
    const problems = problemsOf(text);
    expect(problems.map((p) => p.path)).toEqual([
      'steps.padding.uses',
      'steps.padding.needs[0]',
      'steps.train.matrix.seed[1]',
      'steps.train.matrix.pooling',
      'steps.train.with.epochs',
    ]);
    const lines = problems.map((p) => p.line!);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('formats problems as file:line:column: path: message', () => {
    const text = pipeline({ train: '  train:\n    uses: train\n    needs: [padding]\n    matrix:\n      seed: [1, one]' });
    let error: unknown;
    try {
      planFromText(text, 'pipelines/x.yaml');
    } catch (err) {
      error = err;
    }
    expect((error as Error).message).toBe('pipelines/x.yaml:17:17: steps.train.matrix.seed[1]: expected an integer, got "one"');
  });

  it(`refuses a sweep of more than ${MAX_TRIALS} trials, and suggests sampling`, () => {
    const seeds = Array.from({ length: MAX_TRIALS / 5 + 1 }, (_, i) => i).join(', ');
    const problems = problemsOf(
      pipeline({
        train: `  train:\n    uses: train\n    needs: [padding]\n    matrix: { pooling: [last, mean, last-valid, mean-valid, max], seed: [${seeds}] }`,
      }),
    );
    expect(problems).toEqual([
      expect.objectContaining({
        path: 'steps.train.matrix',
        line: 16,
        message: expect.stringContaining(`5 pooling × ${MAX_TRIALS / 5 + 1} seed: the sweep would run ${MAX_TRIALS + 5} trials`),
      }),
    ]);
    expect(problems[0]!.message).toContain('sample:');
  });
});

describe('the CLI on a bad pipeline file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sweeps-validate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

  it.each(cases.filter((c) => ['a cycle', 'an empty matrix', 'a matrix value of the wrong type', 'an unknown step type'].includes(c.name)))(
    'validate exits with 2 and prints file:line:column: path: message — $name',
    ({ name, text, path, message }) => {
      const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, text);
      const run = cli(['validate', file]);
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(`${file}:${markedLine(text)}:`);
      expect(run.stderr).toContain(`${path}: `);
      expect(run.stderr).toContain(message);
      expect(run.stderr).toMatch(/nothing was submitted/);
    },
  );

  it('validate --json prints the problems as data', () => {
    const file = join(dir, 'json.yaml');
    writeFileSync(file, cases.find((c) => c.name === 'a cycle')!.text);
    const run = cli(['validate', file, '--json']);
    expect(run.status).toBe(2);
    const out = JSON.parse(run.stdout) as { valid: boolean; problems: Problem[] };
    expect(out.valid).toBe(false);
    expect(out.problems).toEqual([expect.objectContaining({ path: 'steps.dataset.needs', line: 8, message: expect.stringContaining('cycle') })]);
  });

  it('sweep exits with 2 before it starts a server or submits anything', () => {
    const file = join(dir, 'sweep.yaml');
    writeFileSync(file, cases.find((c) => c.name === 'an empty matrix')!.text);
    const home = join(dir, 'home');
    // A port nobody listens on: were the sweep to get as far as connecting, it would say so.
    const run = cli(['sweep', file, '--json'], { SWEEPS_HOME: home, SWEEPS_SERVER_PORT: '9', TEMPORAL_ADDRESS: '' });
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('steps.train.matrix: a matrix needs at least one axis');
    expect(existsSync(home) ? readdirSync(home) : []).toEqual([]);
  });
});
