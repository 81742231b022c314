import { join } from 'node:path';
import { loadPipeline, planFromText, PipelineError } from '../../pipeline/load';
import type { Plan, PlanStep } from '../../pipeline/plan';
import { repoRoot } from '../helpers/fixtures';

/** New studies are YAML only: each file validates and expands into exactly the trials it means. */

const study = (name: string) => loadPipeline(join(repoRoot, 'pipelines', `${name}.yaml`));
const stepOf = (plan: Plan, name: string) => plan.steps.find((s) => s.name === name)!;
const trialIds = (step: PlanStep) => step.trials!.map((t) => t.id);
const grid = (pooling: string[], hidden: number[], seeds: number[]) =>
  pooling.flatMap((p) => hidden.flatMap((h) => seeds.map((s) => `gru_${p.replace(/-/g, '_')}-h${h}-s${s}`)));

describe('the studies in pipelines/', () => {
  it('gestures-pooling: last vs mean, five seeds each (the seed study)', () => {
    const plan = study('gestures-pooling');
    expect(plan.steps.map((s) => s.name)).toEqual(['download', 'dataset', 'padding', 'train', 'report']);
    expect(trialIds(stepOf(plan, 'train'))).toEqual(grid(['last', 'mean'], [64], [1, 2, 3, 4, 5]));
  });

  it('gestures-pooling-all: all five pooling variants, five seeds each', () => {
    const train = stepOf(study('gestures-pooling-all'), 'train');
    expect(trialIds(train)).toEqual(grid(['last', 'mean', 'last-valid', 'mean-valid', 'max'], [64], [1, 2, 3, 4, 5]));
    expect(new Set(train.trials!.map((t) => t.params.pooling))).toEqual(new Set(['last', 'mean', 'last-valid', 'mean-valid', 'max']));
    expect(train.trials!.every((t) => t.params.hidden === 64 && t.params.epochs === 30)).toBe(true);
  });

  it('gestures-hidden-sizes: hidden 32/64/128 × pooling last/mean × three seeds', () => {
    const plan = study('gestures-hidden-sizes');
    const train = stepOf(plan, 'train');
    expect(train.trials).toHaveLength(18);
    expect(new Set(trialIds(train))).toEqual(new Set(grid(['last', 'mean'], [32, 64, 128], [1, 2, 3])));
    expect(train.trials!.find((t) => t.id === 'gru_mean-h128-s2')!.cell).toEqual({ hidden: 128, pooling: 'mean', seed: 2 });
    expect(stepOf(plan, 'report').params).toEqual({ compare: 'pooling', baseline: 'last' });
  });

  it('gestures-by-user: users U07 and U08 held out for validation', () => {
    const plan = study('gestures-by-user');
    expect(stepOf(plan, 'dataset').params!.split).toEqual({ kind: 'by-user', valid_users: ['U07', 'U08'] });
    expect(trialIds(stepOf(plan, 'train'))).toEqual(grid(['last', 'mean'], [64], [1, 2, 3, 4, 5]));
  });

  it('gives every study its own sweep id', () => {
    const ids = ['gestures-pooling', 'gestures-pooling-all', 'gestures-hidden-sizes', 'gestures-by-user'].map((n) => study(n).digest);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('matrix expansion', () => {
  const withTrain = (train: string) => `name: sampled
steps:
  download: { uses: download, with: { urls: ["file:///x.zip"], md5: 7966323b95154f314e831c312e5cc33b } }
  dataset: { uses: dataset, needs: [download] }
  padding: { uses: padding, needs: [dataset] }
  train:
    uses: train
    needs: [padding]
${train}
`;
  const trialsOf = (train: string) => stepOf(planFromText(withTrain(train), 'x.yaml'), 'train').trials!;

  it('runs the full grid in the order of the file, the last axis fastest', () => {
    const trials = trialsOf('    matrix: { pooling: [last, mean], hidden: [8, 16], seed: [1, 2] }');
    expect(trials.map((t) => t.id)).toEqual(grid(['last', 'mean'], [8, 16], [1, 2]));
    expect(trials[0]!.params).toMatchObject({ pooling: 'last', hidden: 8, seed: 1, epochs: 30, lr: 0.001 });
  });

  it('draws a seeded random sample within the trial budget, the same for the same seed', () => {
    const matrix = '    matrix: { pooling: [last, mean, last-valid, mean-valid, max], seed: [1, 2, 3, 4] }';
    const a = trialsOf(`${matrix}\n    sample: { count: 6, seed: 7 }`).map((t) => t.id);
    const again = trialsOf(`${matrix}\n    sample: { count: 6, seed: 7 }`).map((t) => t.id);
    const other = trialsOf(`${matrix}\n    sample: { count: 6, seed: 8 }`).map((t) => t.id);
    const all = grid(['last', 'mean', 'last-valid', 'mean-valid', 'max'], [64], [1, 2, 3, 4]);
    expect(a).toHaveLength(6);
    expect(new Set(a).size).toBe(6);
    expect(all).toEqual(expect.arrayContaining(a));
    expect(again).toEqual(a);
    expect(other).not.toEqual(a);
    // The grid's order is kept, so trial ids stay easy to scan.
    expect(a).toEqual(all.filter((id) => a.includes(id)));
  });

  it('says so when the budget is larger than the grid, rather than running the grid without a word', () => {
    expect(() => trialsOf('    matrix: { seed: [1, 2] }\n    sample: { count: 10 }')).toThrow(
      'x.yaml:10:15: steps.train.sample.count: draws 10 trials from a grid of 2 (2 seed): lower it, or remove sample: to run the whole grid',
    );
  });

  it('counts the cells of a huge matrix instead of building them, and samples from it by index', () => {
    const values = `[${Array.from({ length: 1000 }, (_, i) => i + 1).join(', ')}]`;
    expect(() => trialsOf(`    matrix: { seed: ${values}, hidden: ${values}, layers: ${values} }`)).toThrow('the sweep would run 1000000000 trials');
    const drawn = trialsOf(`    matrix: { seed: ${values}, hidden: ${values} }\n    sample: { count: 3, seed: 1 }`);
    expect(drawn).toHaveLength(3);
    expect(new Set(drawn.map((t) => t.id)).size).toBe(3);
  });

  it('bounds the trials of a matrix step by its concurrency (default 2)', () => {
    const plan = planFromText(withTrain('    matrix: { seed: [1, 2, 3] }\n    concurrency: 1'), 'x.yaml');
    expect(stepOf(plan, 'train').concurrency).toBe(1);
    expect(stepOf(planFromText(withTrain('    matrix: { seed: [1] }'), 'x.yaml'), 'train').concurrency).toBe(2);
  });

  it('keeps per-step retry and timeout overrides in the plan', () => {
    const plan = planFromText(withTrain('    matrix: { seed: [1] }\n    retry: { max_attempts: 2, initial_interval: 5s }\n    timeout: 30m'), 'x.yaml');
    expect(stepOf(plan, 'train')).toMatchObject({ retry: { max_attempts: 2, initial_interval: '5s' }, timeout: '30m' });
  });

  it('orders the plan so that every step comes after the steps it needs', () => {
    const text = `name: reordered
steps:
  report: { uses: report, needs: [train] }
  train: { uses: train, needs: [padding], matrix: { pooling: [last], seed: [1] } }
  padding: { uses: padding, needs: [dataset] }
  dataset: { uses: dataset, needs: [download] }
  download: { uses: download, with: { urls: ["file:///x.zip"], md5: 7966323b95154f314e831c312e5cc33b } }
`;
    expect(planFromText(text, 'x.yaml').steps.map((s) => s.name)).toEqual(['download', 'dataset', 'padding', 'train', 'report']);
  });
});

describe('--set overrides', () => {
  const file = join(repoRoot, 'pipelines', 'gestures-pooling.yaml');

  it('change the effective pipeline, and with it the sweep id', () => {
    const plain = loadPipeline(file);
    const quick = loadPipeline(file, { set: ['steps.train.with.epochs=2', 'steps.train.matrix.seed=[7]', 'steps.dataset.with.limit=200'] });
    expect(quick.digest).not.toBe(plain.digest);
    expect(trialIds(stepOf(quick, 'train'))).toEqual(['gru_last-h64-s7', 'gru_mean-h64-s7']);
    expect(stepOf(quick, 'train').trials!.every((t) => t.params.epochs === 2)).toBe(true);
    expect(stepOf(quick, 'dataset').params!.limit).toBe(200);
  });

  it('take YAML values, flow collections included', () => {
    const plan = loadPipeline(file, { set: ['steps.dataset.with.split={kind: by-user, valid_users: [U01]}'] });
    expect(stepOf(plan, 'dataset').params!.split).toEqual({ kind: 'by-user', valid_users: ['U01'] });
  });

  const problemsOf = (set: string[]) => {
    try {
      loadPipeline(file, { set });
    } catch (err) {
      if (err instanceof PipelineError) return err.problems;
      throw err;
    }
    throw new Error('accepted');
  };

  it('are validated like the file, and their problems name the --set (not a line of the file)', () => {
    const problems = problemsOf(['steps.train.with.epochs=zero', 'steps.train.with.hiden=32']);
    expect(problems).toEqual([
      { path: 'steps.train.with.epochs', message: 'expected an integer, got "zero"', origin: '--set steps.train.with.epochs=zero' },
      expect.objectContaining({
        path: 'steps.train.with.hiden',
        origin: '--set steps.train.with.hiden=32',
        message: expect.stringContaining('did you mean "hidden"'),
      }),
    ]);
    expect(problems[0]!.line).toBeUndefined();
  });

  it('name the --set in the message of the error', () => {
    expect(() => loadPipeline(file, { set: ['steps.train.matrix.seed=[]'] })).toThrow(
      `${file} (--set steps.train.matrix.seed=[]): steps.train.matrix.seed: a matrix axis needs at least one value`,
    );
  });

  it('may not invent steps: a misspelt step name is an error, with a suggestion', () => {
    expect(problemsOf(['steps.trian.with.epochs=3'])).toEqual([
      { path: '', origin: '--set steps.trian.with.epochs=3', message: expect.stringContaining('there is no step "trian" (did you mean "train"?)') },
    ]);
  });

  it('reject what is not an assignment to a path', () => {
    expect(problemsOf(['epochs'])[0]!.message).toContain('expected <path>=<value>');
    expect(problemsOf(['steps..train=1'])[0]!.message).toContain('is not a path');
    expect(problemsOf(['steps.train.needs[3]=x'])[0]!.message).toContain('would leave a gap');
  });
});
