import { join } from 'node:path';
import { loadPipeline, PipelineError } from '../../pipeline/load';
import type { Plan } from '../../pipeline/plan';
import { repoRoot } from '../helpers/fixtures';

/** The UEA studies are YAML only, with the seed study's recipe exactly. */
const file = (name: string) => join(repoRoot, 'pipelines', `${name}.yaml`);
const stepOf = (plan: Plan, name: string) => plan.steps.find((s) => s.name === name)!;
/** What a trial trains with, less what the study varies. */
const recipe = (plan: Plan) => {
  const { pooling: _p, seed: _s, ...rest } = stepOf(plan, 'train').trials![0]!.params;
  return rest;
};

describe('UEA pooling studies', () => {
  const seed = loadPipeline(file('gestures-pooling'));

  it("japanese-vowels-pooling: five poolings × five seeds, the archive's split, the seed study's recipe", () => {
    const plan = loadPipeline(file('japanese-vowels-pooling'));
    expect(stepOf(plan, 'dataset').params).toMatchObject({ format: 'uea', name: 'JapaneseVowels', split: { kind: 'archive' } });
    const train = stepOf(plan, 'train');
    expect(train.trials).toHaveLength(25);
    expect(new Set(train.trials!.map((t) => t.params.pooling))).toEqual(new Set(['last', 'mean', 'last-valid', 'mean-valid', 'max']));
    expect(recipe(plan)).toEqual(recipe(seed));
    expect(stepOf(plan, 'padding').params).toMatchObject({ batch_size: 32, standardize: false });
  });

  it('uea-pooling: the dataset is a --param, standardisation off unless asked', () => {
    const plan = loadPipeline(file('uea-pooling'), { params: ['dataset=BasicMotions'] });
    expect(stepOf(plan, 'dataset').params).toMatchObject({ format: 'uea', name: 'BasicMotions', split: { kind: 'archive' } });
    expect(stepOf(plan, 'padding').params).toMatchObject({ standardize: false, layout: 'ragged' });
    expect(recipe(plan)).toEqual(recipe(seed));
    const scaled = loadPipeline(file('uea-pooling'), { params: ['dataset=BasicMotions', 'standardize=true'] });
    expect(stepOf(scaled, 'padding').params).toMatchObject({ standardize: true });
    expect(scaled.digest).not.toBe(plan.digest);
  });

  it('uea-pooling without --param dataset is refused before anything runs', () => {
    expect(() => loadPipeline(file('uea-pooling'))).toThrow(PipelineError);
    expect(() => loadPipeline(file('uea-pooling'))).toThrow(/params\.dataset: has no default: set it with --param dataset=/);
  });
});
