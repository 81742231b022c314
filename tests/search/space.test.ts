import { z } from 'zod';
import { prunerConfigSchema } from '../../search/pruners';
import { samplerConfigSchema } from '../../search/samplers';
import { untilSchema } from '../../search/until';
import { cellKey, composeWithGrid, contains, fromUnit, parseSearchSpace, searchSpaceSchema, SearchSpaceError, type SearchSpace } from '../../search/space';

function problemsOf(raw: unknown): Array<{ path: string; message: string }> {
  try {
    parseSearchSpace(raw, 'steps.train.search');
  } catch (err) {
    expect(err).toBeInstanceOf(SearchSpaceError);
    return (err as SearchSpaceError).problems;
  }
  throw new Error('expected the search space to be rejected');
}

describe('search space declaration', () => {
  it('accepts the four kinds of parameter and fills the int step', () => {
    const space = parseSearchSpace({
      lr: { type: 'loguniform', low: 1e-4, high: 1e-2 },
      dropout: { type: 'uniform', low: 0, high: 0.5 },
      hidden: { type: 'int', low: 32, high: 128 },
      pooling: { type: 'choice', values: ['last', 'mean'] },
    });
    expect(space.hidden).toEqual({ type: 'int', low: 32, high: 128, step: 1 });
  });

  it('names the path of each bound that is wrong', () => {
    expect(
      problemsOf({
        lr: { type: 'loguniform', low: 0, high: 1e-2 },
        dropout: { type: 'uniform', low: 0.5, high: 0.5 },
        hidden: { type: 'int', low: 16, high: 120, step: 16 },
      }),
    ).toEqual([
      { path: 'steps.train.search.lr.low', message: 'must be positive for a log scale, got 0; use type: uniform for ranges that include 0' },
      { path: 'steps.train.search.dropout.high', message: 'must be greater than low (0.5), got 0.5' },
      { path: 'steps.train.search.hidden.high', message: 'high − low (104) must be a multiple of step (16); e.g. high: 112' },
    ]);
  });

  it('rejects wrong types, an unknown kind, unknown keys, empty and repeated choices', () => {
    const problems = problemsOf({
      a: { type: 'int', low: 1.5, high: 4 },
      b: { type: 'normal', mean: 0 },
      c: { type: 'uniform', low: 0, high: 1, log: true },
      d: { type: 'choice', values: [] },
      e: { type: 'choice', values: ['x', 'y', 'x'] },
      f: { type: 'uniform', low: '0', high: 1 },
    });
    expect(problems.map((p) => p.path)).toEqual([
      'steps.train.search.a.low',
      'steps.train.search.b.type',
      'steps.train.search.c',
      'steps.train.search.d.values',
      'steps.train.search.e.values[2]',
      'steps.train.search.f.low',
    ]);
    expect(problems[3]!.message).toBe('a choice needs at least one value');
    expect(problems[4]!.message).toBe('"x" is listed twice');
  });

  it('rejects an empty space', () => {
    expect(problemsOf({})).toEqual([{ path: 'steps.train.search', message: 'a search space needs at least one parameter' }]);
  });
});

describe('values of a parameter', () => {
  it('maps the unit interval onto the range: evenly, on the log scale, onto the int grid, onto the choices', () => {
    expect(fromUnit({ type: 'uniform', low: 2, high: 4 }, 0.25)).toBe(2.5);
    expect(fromUnit({ type: 'loguniform', low: 1e-4, high: 1e-2 }, 0.5)).toBeCloseTo(1e-3, 15);
    expect([0, 0.24, 0.25, 0.99].map((u) => fromUnit({ type: 'int', low: 16, high: 64, step: 16 }, u))).toEqual([16, 16, 32, 64]);
    expect([0, 0.5, 0.99].map((u) => fromUnit({ type: 'choice', values: ['a', 'b'] }, u))).toEqual(['a', 'b', 'b']);
  });

  it('tells values inside the space from values outside it', () => {
    const int = { type: 'int', low: 16, high: 64, step: 16 } as const;
    expect([16, 48, 40, 80, 16.5].map((v) => contains(int, v))).toEqual([true, true, false, false, false]);
    expect(contains({ type: 'choice', values: ['a', 1] }, '1')).toBe(false);
  });
});

describe('a grid beside a search', () => {
  const space: SearchSpace = { lr: { type: 'loguniform', low: 1e-4, high: 1e-2 }, weight_decay: { type: 'loguniform', low: 1e-6, high: 1e-3 } };

  it('runs one search per grid cell', () => {
    const { cells } = composeWithGrid({ pooling: ['last', 'mean'], hidden: [32, 64] }, space);
    expect(cells.map(cellKey)).toEqual(['hidden=32,pooling=last', 'hidden=64,pooling=last', 'hidden=32,pooling=mean', 'hidden=64,pooling=mean']);
  });

  it('refuses a parameter that is both a grid axis and searched', () => {
    expect(() => composeWithGrid({ lr: [0.001] }, space, 'steps.train.search')).toThrow(
      'steps.train.search.lr: "lr" is also a matrix axis; list it in matrix or in search, not both',
    );
  });
});

describe('JSON Schema', () => {
  it('converts every search declaration to draft-7 JSON Schema, as the pipeline schema embeds them', () => {
    const options = { target: 'draft-7', io: 'input', unrepresentable: 'any' } as const;
    const space = z.toJSONSchema(searchSpaceSchema, options) as unknown as {
      additionalProperties: { oneOf: Array<{ properties: { type: { const: string } } }> };
    };
    expect(space.additionalProperties.oneOf.map((o) => o.properties.type.const)).toEqual(['uniform', 'loguniform', 'int', 'choice']);
    for (const schema of [untilSchema, samplerConfigSchema, prunerConfigSchema]) expect(z.toJSONSchema(schema, options)).toHaveProperty('$schema');
  });
});
