import { join } from 'node:path';
import { loadPipeline, planFromText, PipelineError, type Problem } from '../../pipeline/load';
import type { Plan } from '../../pipeline/plan';
import { repoRoot } from '../helpers/fixtures';

/** `until:` on a matrix step: validated with file:line and path, planned as every trial up to max_seeds, seed by seed. */

const pipeline = (train: string, extra = '') => `name: until-test
steps:
  download: { uses: download, with: { urls: ["file:///data/g.zip"], md5: 7966323b95154f314e831c312e5cc33b } }
  dataset: { uses: dataset, needs: [download] }
  padding: { uses: padding, needs: [dataset] }
  train:
    uses: train
    needs: [padding]
${train}
    with: { epochs: 1, hidden: 8 }
  report: { uses: report, needs: [train]${extra} }
`;

function problemsOf(text: string): Problem[] {
  try {
    planFromText(text, 'until.yaml');
  } catch (err) {
    if (err instanceof PipelineError) return err.problems;
    throw err;
  }
  throw new Error('expected problems');
}

const trainOf = (plan: Plan) => plan.steps.find((s) => s.name === 'train')!;

describe('until: on a matrix step', () => {
  it('plans every trial up to max_seeds, seed by seed, with the rule for the workflow', () => {
    const plan = planFromText(
      pipeline(`    matrix: { pooling: [last, mean] }
    until: { compare: pooling, baseline: last, margin: 0.5, max_seeds: 4 }
    concurrency: 4`),
      'until.yaml',
    );
    const train = trainOf(plan);
    expect(train.trials!.map((t) => t.id)).toEqual([
      'gru_last-h8-s1',
      'gru_mean-h8-s1',
      'gru_last-h8-s2',
      'gru_mean-h8-s2',
      'gru_last-h8-s3',
      'gru_mean-h8-s3',
      'gru_last-h8-s4',
      'gru_mean-h8-s4',
    ]);
    expect(train.trials![3]!.cell).toEqual({ pooling: 'mean', seed: 2 });
    expect(train.trials![3]!.params).toMatchObject({ pooling: 'mean', seed: 2, epochs: 1, hidden: 8 });
    // Two values, four slots: two new seeds per round keep every slot busy.
    expect(train.until).toEqual({
      compare: 'pooling',
      baseline: 'last',
      confidence: 0.95,
      margin: 0.5,
      minSeeds: 2,
      maxSeeds: 4,
      roundSeeds: 2,
      seeds: [1, 2, 3, 4],
    });
  });

  it("starts with the matrix's own seeds and continues after the largest", () => {
    const train = trainOf(
      planFromText(
        pipeline(`    matrix: { seed: [7, 3, 5], pooling: [last, mean] }
    until: { compare: pooling, baseline: last, margin: 0.5, max_seeds: 5 }`),
        'until.yaml',
      ),
    );
    expect(train.until!.seeds).toEqual([7, 3, 5, 8, 9]);
    expect(train.until!.minSeeds).toBe(3);
    expect(train.until!.roundSeeds).toBe(1);
    expect(train.trials![0]!.cell).toEqual({ seed: 7, pooling: 'last' });
  });

  it('names the file, line and path of each problem of until:', () => {
    const problems = problemsOf(
      pipeline(
        `    matrix: { pooling: [last, mean], hidden: [8, 16], seed: [1, 1] }
    sample: { count: 2 }
    until: { compare: pooling, baseline: first, margin: 0.5, max_seeds: 3 }`,
        ', until: { compare: pooling, baseline: last, margin: 0.5, max_seeds: 3 }',
      ).replace('    with: { epochs: 1, hidden: 8 }', '    with: { epochs: 1 }'),
    );
    expect(problems.map((p) => `${p.line}: ${p.path}: ${p.message}`)).toEqual([
      '9: steps.train.matrix.hidden: with until:, the matrix holds only the compared axis (pooling) and seed; move hidden into with: (one value), or run one study per value',
      '9: steps.train.matrix.seed[1]: seed 1 is listed twice',
      '10: steps.train.sample: sample: and until: do not combine: until: decides how many seeds run; remove sample:',
      '11: steps.train.until.baseline: "first" is not a value of matrix.pooling ("last", "mean")',
      '13: steps.report.until: until applies only to a step with a matrix',
    ]);
  });

  it('refuses a compared axis that is not in the matrix, bad numbers, and more seeds than max_seeds', () => {
    const paths = (until: string, matrix = '{ pooling: [last, mean] }') =>
      problemsOf(pipeline(`    matrix: ${matrix}\n    until: ${until}`)).map((p) => `${p.path}: ${p.message}`);
    expect(paths('{ compare: hidden, baseline: last, margin: 0.5, max_seeds: 3 }')).toEqual([
      'steps.train.until.compare: "hidden" is not a matrix axis (axes: pooling)',
    ]);
    expect(paths('{ compare: pooling, baseline: last, confidence: 1.5, margin: 0, max_seeds: 3 }').map((p) => p.split(':')[0])).toEqual([
      'steps.train.until.confidence',
      'steps.train.until.margin',
    ]);
    expect(paths('{ compare: pooling, baseline: last, margin: 0.5, max_seeds: 2 }', '{ pooling: [last, mean], seed: [1, 2, 3] }')).toEqual([
      'steps.train.matrix.seed: lists 3 seeds, more than until.max_seeds (2): raise max_seeds or list fewer',
    ]);
    expect(paths('{ compare: pooling, baseline: last, margin: 0.5, max_seeds: 501 }')).toEqual([
      'steps.train.until.max_seeds: 2 values of pooling × 501 seeds could run 1002 trials; at most 1000 fit one sweep: lower max_seeds',
    ]);
  });

  it('pipelines/gestures-pooling-until-sure.yaml asks the seed study question sequentially', () => {
    const plan = loadPipeline(join(repoRoot, 'pipelines', 'gestures-pooling-until-sure.yaml'));
    const train = trainOf(plan);
    expect(train.until).toMatchObject({ compare: 'pooling', baseline: 'last', confidence: 0.95, margin: 0.5, minSeeds: 2, maxSeeds: 30 });
    expect(train.trials).toHaveLength(60);
    // The same recipe as the fixed-seed study.
    const fixed = trainOf(loadPipeline(join(repoRoot, 'pipelines', 'gestures-pooling.yaml')));
    const recipe = ({ seed: _s, pooling: _p, ...rest }: Record<string, unknown>) => rest;
    expect(recipe(train.trials![0]!.params)).toEqual(recipe(fixed.trials![0]!.params));
  });
});
