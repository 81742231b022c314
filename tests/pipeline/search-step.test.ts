import { planFromText, PipelineError, type Problem } from '../../pipeline/load';
import type { Plan } from '../../pipeline/plan';

/** `search:` on a matrix step: a space checked against the step type's parameters, composable with grid axes. */

const pipeline = (train: string, report = true) => `name: search-test
steps:
  download: { uses: download, with: { urls: ["file:///data/g.zip"], md5: 7966323b95154f314e831c312e5cc33b } }
  dataset: { uses: dataset, needs: [download] }
  padding: { uses: padding, needs: [dataset] }
  train:
    uses: train
    needs: [padding]
${train}
${report ? '  report: { uses: report, needs: [train] }' : ''}
`;

function problemsOf(text: string): string[] {
  try {
    planFromText(text, 'search.yaml');
  } catch (err) {
    if (err instanceof PipelineError) return err.problems.map((p: Problem) => `${p.line}: ${p.path}: ${p.message}`);
    throw err;
  }
  throw new Error('expected problems');
}

const trainOf = (plan: Plan) => plan.steps.find((s) => s.name === 'train')!;

describe('search: on a matrix step', () => {
  it('plans a search beside a grid axis: the space, the cells and the budget, no trials yet', () => {
    const plan = planFromText(
      pipeline(`    matrix: { pooling: [last, mean] }
    search:
      sampler: tpe
      seed: 1
      trials: 12
      space:
        lr: { type: loguniform, low: 0.0001, high: 0.01 }
        hidden: { type: int, low: 16, high: 64, step: 16 }
    with: { epochs: 2 }`),
      'search.yaml',
    );
    const train = trainOf(plan);
    expect(train.trials).toEqual([]);
    expect(train.search).toEqual({
      sampler: 'tpe',
      seed: 1,
      trials: 12,
      metric: 'valid_acc',
      direction: 'maximize',
      space: { lr: { type: 'loguniform', low: 0.0001, high: 0.01 }, hidden: { type: 'int', low: 16, high: 64, step: 16 } },
      grid: { pooling: ['last', 'mean'] },
      cells: [{ pooling: 'last' }, { pooling: 'mean' }],
      with: { epochs: 2 },
    });
    expect(train.summary).toBe('train: tpe search of 12 trials per cell of pooling over lr, hidden');
  });

  it('runs without a matrix: one search', () => {
    const train = trainOf(
      planFromText(pipeline(`    search: { sampler: random, trials: 5, space: { dropout: { type: uniform, low: 0, high: 0.5 } } }`, false), 'search.yaml'),
    );
    expect(train.search!.cells).toEqual([{}]);
  });

  it('accepts a report downstream of a search with no grid axis: the report reports the search', () => {
    const plan = planFromText(pipeline(`    search: { sampler: random, trials: 5, space: { dropout: { type: uniform, low: 0, high: 0.5 } } }`), 'search.yaml');
    expect(plan.steps.map((s) => s.name)).toEqual(['download', 'dataset', 'padding', 'train', 'report']);
  });

  it('still refuses a report comparing an axis that a plain matrix upstream does not have', () => {
    const text = pipeline(`    matrix: { hidden: [8, 16] }`).replace('needs: [train] }', 'needs: [train], with: { compare: pooling } }');
    expect(problemsOf(text).join('\n')).toContain('"pooling" is not a matrix axis of the trials it reads (train: hidden)');
  });

  it('names the line and path of each problem of the space', () => {
    expect(
      problemsOf(
        pipeline(`    matrix: { pooling: [last, mean] }
    search:
      sampler: tpe
      trials: 600
      space:
        lr: { type: loguniform, low: 0, high: 0.01 }
        pooling: { type: choice, values: [last, mean] }
        hiden: { type: int, low: 8, high: 64 }
        hidden: { type: int, low: 0, high: 64, step: 8 }
        epochs: { type: choice, values: [] }
    with: { epochs: 2 }`),
      ),
    ).toEqual([
      '14: steps.train.search.space.lr.low: must be positive for a log scale, got 0; use type: uniform for ranges that include 0',
      '18: steps.train.search.space.epochs.values: a choice needs at least one value',
    ]);
    expect(
      problemsOf(
        pipeline(`    matrix: { pooling: [last, mean] }
    search:
      sampler: tpe
      trials: 600
      space:
        pooling: { type: choice, values: [last, mean] }
        hiden: { type: int, low: 8, high: 64 }
        hidden: { type: int, low: 0, high: 64, step: 8 }
        epochs: { type: choice, values: [2] }
    with: { epochs: 2 }`),
      ).map((p) => p.replace(/ \(.*$/, '')),
    ).toEqual([
      '12: steps.train.search.trials: 600 trials × 2 matrix cells make 1200; at most 1000 fit one sweep: lower trials or the matrix',
      '14: steps.train.search.space.pooling: "pooling" is also a matrix axis; list it in matrix or in search, not both',
      '15: steps.train.search.space.hiden: "hiden" is not a parameter of step type "train"',
      '16: steps.train.search.space.hidden.low: expected a number greater than 0, got 0',
      '18: steps.train.with.epochs: "epochs" is set both in with: and in search.space; keep one',
    ]);
  });

  it('takes a pruner, and refuses pause_at_epoch set by hand beside it', () => {
    const train = (extra: string) =>
      pipeline(
        `    search: { sampler: tpe, trials: 9, space: { lr: { type: loguniform, low: 0.0001, high: 0.01 } }, prune: { rule: asha, grace_epochs: 1, reduction_factor: 3 } }
    with: { epochs: 9${extra} }`,
        false,
      );
    const plan = planFromText(train(''), 'search.yaml');
    expect(trainOf(plan).search!.prune).toEqual({ rule: 'asha', metric: 'valid_acc', direction: 'maximize', grace_epochs: 1, reduction_factor: 3 });
    expect(problemsOf(train(', pause_at_epoch: 3'))).toEqual(['10: steps.train.with.pause_at_epoch: the pruner sets pause_at_epoch: remove it']);
    expect(problemsOf(train('').replace('rule: asha', 'rule: fifo'))[0]).toMatch(/^9: steps\.train\.search\.prune\.rule: /);
  });
});
