import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { stepModules } from '../../activities/registry';
import { planFromText } from '../../pipeline/load';
import { GESTURES_MD5, repoRoot } from '../helpers/fixtures';

/**
 * The engine (workflows/, pipeline/, cli/ and the client's sweep code) knows no study: step types
 * live in their modules (activities/registry.ts), and what the UI shows of a trial comes from the
 * pipeline's matrix axes.
 */

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

/** The code of a file without its comments (examples in comments are for people). */
function code(file: string): string {
  return readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

const engineFiles = [...['workflows', 'pipeline', 'cli'].flatMap((d) => sources(join(repoRoot, d))), join(repoRoot, 'client', 'sweeps.ts')];

describe('the engine names no study', () => {
  const forbidden: Array<[string, RegExp]> = [
    ['the pooling question', /pooling/i],
    ['the GRU model', /\bgru/i],
    ['the gestures dataset', /gestures/i],
    ['a step called train or report', /['"`]\s*(train|report)\s*['"`]|steps\.(train|report)\b|uses\s*===?\s*['"`](?!string')/],
  ];
  it.each(forbidden)('no engine file names %s', (_what, pattern) => {
    // `sweeps worker --role train` names a kind of worker (the one that runs trials), not a step.
    const hits = engineFiles.flatMap((file) =>
      code(file)
        .split('\n')
        .flatMap((line, i) => (pattern.test(line) && !/--role|roles|role/.test(line) ? [`${relative(repoRoot, file)}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(hits).toEqual([]);
  });

  it('checks a real list of files (the grep above is not vacuous)', () => {
    expect(engineFiles.map((f) => relative(repoRoot, f))).toEqual(expect.arrayContaining(['workflows/sweep.ts', 'pipeline/validate.ts', 'cli/run.ts']));
    // The same pattern does find the study where it belongs.
    expect(/pooling/i.test(readFileSync(join(repoRoot, 'activities', 'train.ts'), 'utf8'))).toBe(true);
  });
});

describe('a step type is one module in the registry', () => {
  it('registers each type once, with a parameter schema, a durability contract and an activity', () => {
    const types = stepModules.map((m) => m.type);
    expect(new Set(types).size).toBe(types.length);
    expect(types).toEqual(expect.arrayContaining(['download', 'dataset', 'padding', 'train', 'report', 'describe']));
    for (const m of stepModules) {
      expect(typeof m.activity).toBe('function');
      expect(m.durability.startToCloseTimeout).toMatch(/^\d+(ms|s|m|h|d)$/);
      expect(m.durability.retry.maximumAttempts).toBeGreaterThan(0);
      // Every parameter has a default or is optional: `with: {}` parses, or names what is required.
      expect(typeof m.params.safeParse).toBe('function');
    }
  });

  it('every module the validator knows is what `uses:` accepts', () => {
    const text = (uses: string) => `name: one-step\nsteps:\n  only:\n    uses: ${uses}\n    with: {}\n`;
    expect(() => planFromText(text('no-such-type'), 'x.yaml')).toThrow(/uses: .*(describe|download)/s);
  });
});

describe('what the workflows show of a plan comes from its modules and its axes', () => {
  const text = `name: axes-study
steps:
  download:
    uses: download
    with: { urls: ["file:///data/x.zip"], md5: ${GESTURES_MD5} }
  dataset: { uses: dataset, needs: [download] }
  padding: { uses: padding, needs: [dataset] }
  fit:
    uses: train
    needs: [padding]
    timeout: 2h
    retry: { max_attempts: 4 }
    matrix: { lr: [0.001, 0.01], seed: [1, 2] }
  compare:
    uses: report
    needs: [fit]
    with: { compare: lr, baseline: "0.001" }
`;
  const plan = planFromText(text, 'axes.yaml');
  const fit = plan.steps.find((s) => s.name === 'fit')!;

  it('labels each trial with its matrix values', () => {
    expect(fit.trials!.map((t) => t.label)).toEqual(['lr=0.001 seed=1', 'lr=0.001 seed=2', 'lr=0.01 seed=1', 'lr=0.01 seed=2']);
  });

  it('takes the Variant from the axis the downstream step compares, and the Seed from the seed axis', () => {
    expect(fit.trials!.map((t) => [t.variant, t.seed])).toEqual([
      ['0.001', 1],
      ['0.001', 2],
      ['0.01', 1],
      ['0.01', 2],
    ]);
  });

  it("resolves each step's durability contract from its module, with the file's overrides", () => {
    const train = stepModules.find((m) => m.type === 'train')!;
    expect(fit.durability).toEqual({ ...train.durability, startToCloseTimeout: '2h', retry: { ...train.durability.retry, maximumAttempts: 4 } });
    const dataset = plan.steps.find((s) => s.name === 'dataset')!;
    expect(dataset.durability).toEqual(stepModules.find((m) => m.type === 'dataset')!.durability);
    expect(dataset.summary).toBe('parse sequences into an Arrow table, random split seed 42');
  });

  it('keeps these out of the digest: the same pipeline keeps its sweep id', () => {
    const bare = { ...plan, steps: plan.steps.map(({ durability: _d, summary: _s, ...s }) => s) };
    expect(planFromText(text, 'elsewhere.yaml').digest).toBe(bare.digest);
  });
});
