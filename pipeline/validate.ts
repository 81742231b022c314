import { z } from 'zod';
import { cellAt, grid, MAX_SAMPLED_GRID, MAX_TRIALS, range, sampleCells, trialId } from './expand';
import type { PlanStep, PlanTrial } from './plan';
import { didYouMean, formatPath, issuesToProblems, knownList, parseOptions, type PathKey } from './problems';
import { pipelineOuterSchema, stepSchema, type StepDecl } from './schema';
import { stepModule, stepModules } from '../activities/registry';
import { checkUntil } from '../search/until';
import { fromUnit, type ParamValue } from '../search/space';

/** A problem before it is located in the file: `at` is its path as keys. */
export interface Finding {
  at: PathKey[];
  path: string;
  message: string;
  /** The command-line option it comes from (`--param x=1`), when not the file. */
  origin?: string;
}

export interface ValidPipeline {
  name: string;
  description?: string;
  /** In file order; every step is valid, with defaults applied and its matrix expanded. */
  steps: PlanStep[];
}

/**
 * A step as far as it could be read. When the step as a whole is invalid, every field that is
 * valid on its own is still here, so that its other problems (parameters, dangling `needs`) are
 * reported in the same run rather than one fix at a time.
 */
interface ReadStep {
  decl: Partial<StepDecl>;
  /** Valid entries of `needs`, with their index in the file. */
  needs: Array<{ name: string; index: number }>;
  /** The fields that failed on their own (their problems are already reported). */
  broken: Set<string>;
  /** Present in the file at all (even when broken). */
  hasMatrix: boolean;
  complete: boolean;
}

/**
 * Checks a pipeline read from YAML (after overrides) and returns its expanded steps, reporting
 * every problem found: the shape of the file, each step's fields, its type's parameters, matrix
 * values, and the graph (dangling needs, cycles, steps that lack the upstream result they read).
 */
export function validatePipeline(raw: unknown, report: (f: Finding) => void): ValidPipeline | undefined {
  let found = 0;
  const note = (f: Finding) => {
    found++;
    report(f);
  };
  const outer = pipelineOuterSchema.safeParse(raw, parseOptions);
  if (!outer.success) for (const f of issuesToProblems(outer.error.issues, [], pipelineOuterSchema)) note(f);
  const rawSteps = isMapping(raw) && isMapping(raw.steps) ? raw.steps : undefined;
  if (!rawSteps) return undefined;

  const read = new Map<string, ReadStep>();
  for (const [name, rawStep] of Object.entries(rawSteps)) read.set(name, readStep(name, rawStep, note));
  const steps: PlanStep[] = [];
  for (const [name, step] of read) {
    const planned = planStep(name, step, rawSteps[name], note);
    if (planned) steps.push(planned);
  }
  checkGraph(read, note);
  if (found === 0) checkUpstream(steps, note);
  if (found > 0 || !outer.success) return undefined;
  return { name: outer.data.name, description: outer.data.description, steps };
}

function readStep(name: string, raw: unknown, report: (f: Finding) => void): ReadStep {
  const parsed = stepSchema.safeParse(raw, parseOptions);
  const needsOf = (value: unknown) => (Array.isArray(value) ? value.flatMap((n, index) => (typeof n === 'string' ? [{ name: n, index }] : [])) : []);
  if (parsed.success) {
    const fans = parsed.data.matrix !== undefined || parsed.data.search !== undefined;
    return { decl: parsed.data, needs: needsOf(parsed.data.needs), broken: new Set(), hasMatrix: fans, complete: true };
  }
  for (const f of issuesToProblems(parsed.error.issues, ['steps', name], stepSchema)) report(f);
  if (!isMapping(raw)) return { decl: {}, needs: [], broken: new Set(['*']), hasMatrix: false, complete: false };

  const decl: Record<string, unknown> = {};
  const broken = new Set<string>();
  for (const [key, field] of Object.entries(stepSchema.shape) as Array<[string, z.ZodType]>) {
    const r = field.safeParse(raw[key]);
    if (r.success) decl[key] = r.data;
    else broken.add(key);
  }
  return {
    decl: decl as Partial<StepDecl>,
    needs: needsOf(raw.needs),
    broken,
    hasMatrix: raw.matrix !== undefined || raw.search !== undefined,
    complete: false,
  };
}

/** The second pass: the step type's parameters, its matrix, and (when all is well) its trials. */
function planStep(name: string, step: ReadStep, raw: unknown, report: (f: Finding) => void): PlanStep | undefined {
  const { decl } = step;
  if (!decl.uses) return undefined;
  const uses = decl.uses;
  const module = stepModule(uses);
  if (!module) return undefined;
  const schema = module.params as z.ZodType<Record<string, unknown>>;
  const at = (...keys: PathKey[]): PathKey[] => ['steps', name, ...keys];
  const problem = (keys: PathKey[], message: string) => report({ at: at(...keys), path: formatPath(at(...keys)), message });
  const issues = (result: z.ZodSafeParseError<unknown>, keys: PathKey[]) => {
    for (const f of issuesToProblems(result.error.issues, at(...keys), schema)) report(f);
  };
  let ok = step.complete;
  const base = { name, uses, needs: decl.needs ?? [], retry: decl.retry, timeout: decl.timeout };

  if (!step.hasMatrix) {
    for (const key of ['sample', 'concurrency', 'until'] as const) {
      if (isMapping(raw) && raw[key] !== undefined) {
        problem([key], `${key} applies only to a step with a matrix`);
        ok = false;
      }
    }
    if (step.broken.has('with') || !decl.with) return undefined;
    const result = schema.safeParse(decl.with, parseOptions);
    if (!result.success) {
      issues(result, ['with']);
      return undefined;
    }
    return ok ? { ...base, params: result.data, concurrency: 1 } : undefined;
  }

  if (!module.matrix) {
    const fanning = stepModules.filter((m) => m.matrix).map((m) => m.type);
    problem(['matrix'], `a ${uses} step cannot fan out over a matrix; only ${fanning.join(', ')} steps run trials`);
    return undefined;
  }
  // The matrix may be partly broken (an empty axis): its other axes are still worth checking.
  const matrix = decl.matrix ?? lenientMatrix(isMapping(raw) ? raw.matrix : undefined);
  const shape = shapeOf(schema);
  const known = Object.keys(shape);
  if (!step.broken.has('with')) {
    for (const [key, value] of Object.entries(decl.with ?? {})) {
      const field = shape[key];
      if (!field) {
        ok = false;
        problem(['with', key], `unknown parameter "${key}" of step type "${uses}"${didYouMean(key, known) || knownList(known)}`);
        continue;
      }
      const r = field.safeParse(value, parseOptions);
      if (!r.success) {
        ok = false;
        issues(r, ['with', key]);
      }
    }
  }
  for (const [axis, values] of Object.entries(matrix)) {
    const field = shape[axis];
    if (!field) {
      ok = false;
      problem(['matrix', axis], `"${axis}" is not a parameter of step type "${uses}"${didYouMean(axis, known) || knownList(known)}`);
      continue;
    }
    values.forEach((value, i) => {
      const r = field.safeParse(value, parseOptions);
      if (!r.success) {
        ok = false;
        issues(r, ['matrix', axis, i]);
      }
    });
    if (decl.with && axis in decl.with) {
      ok = false;
      problem(['with', axis], `"${axis}" is set both in with: and in matrix:; keep one`);
    }
  }
  if (!ok || step.broken.size > 0) return undefined;
  if (decl.search) return planSearchStep({ ...base, concurrency: decl.concurrency ?? 2 }, decl, matrix, schema, problem, issues);
  if (decl.until) return planUntilStep({ ...base, concurrency: decl.concurrency ?? 2 }, decl, matrix, schema, module, problem, issues);

  // Counted before anything is built: three axes of 1,000 values are a billion cells.
  const size = Object.values(matrix).reduce((n, values) => n * values.length, 1);
  const axesText = Object.entries(matrix)
    .map(([axis, values]) => `${values.length} ${axis}`)
    .join(' × ');
  if (decl.sample && decl.sample.count > size) {
    problem(['sample', 'count'], `draws ${decl.sample.count} trials from a grid of ${size} (${axesText}): lower it, or remove sample: to run the whole grid`);
    return undefined;
  }
  if (!decl.sample && size > MAX_TRIALS) {
    problem(
      ['matrix'],
      `${axesText}: the sweep would run ${size} trials; at most ${MAX_TRIALS} fit one sweep's history. Draw fewer with sample: {count, seed}, or split the study`,
    );
    return undefined;
  }
  if (size > MAX_SAMPLED_GRID) {
    problem(['matrix'], `${axesText} make ${size} cells; sample: draws from grids of at most ${MAX_SAMPLED_GRID}: use fewer values per axis`);
    return undefined;
  }
  const cells = decl.sample ? sampleCells(range(size), decl.sample.count, decl.sample.seed).map((i) => cellAt(matrix, i)) : grid(matrix);
  const trials: PlanTrial[] = [];
  const seen = new Map<string, number>();
  for (const cell of cells) {
    const result = schema.safeParse({ ...decl.with, ...cell }, parseOptions);
    if (!result.success) {
      // A rule across parameters: say it once for the step, not once per trial.
      issues(result, ['with']);
      return undefined;
    }
    let id = module.trialId?.(result.data, cell) ?? trialId(cell);
    const n = seen.get(id) ?? 0;
    seen.set(id, n + 1);
    if (n > 0) id = `${id}-${n + 1}`;
    trials.push({ id, params: result.data, cell });
  }
  return { ...base, trials, concurrency: decl.concurrency ?? 2 };
}

/**
 * A step with `search:`: the sampler suggests its trials while the sweep runs, so the plan holds
 * the space, the grid cells beside it and the budget, all checked here against the step type's
 * parameters (a bound outside a parameter's range is named like a matrix value would be).
 */
function planSearchStep(
  base: Omit<PlanStep, 'trials' | 'search'>,
  decl: Partial<StepDecl>,
  matrix: Record<string, unknown[]>,
  schema: z.ZodType<Record<string, unknown>>,
  problem: (keys: PathKey[], message: string) => void,
  issues: (result: z.ZodSafeParseError<unknown>, keys: PathKey[]) => void,
): PlanStep | undefined {
  const search = decl.search!;
  const shape = shapeOf(schema);
  const known = Object.keys(shape);
  let ok = true;
  const fail = (keys: PathKey[], message: string) => {
    ok = false;
    problem(keys, message);
  };
  if (decl.sample) fail(['sample'], 'sample: and search: do not combine: search: draws its own trials; remove sample:');
  if (search.prune && !('pause_at_epoch' in shape))
    fail(['search', 'prune'], `a ${base.uses} step cannot pause at an epoch budget: pruning needs a step type with pause_at_epoch`);
  if (search.prune && (decl.with?.pause_at_epoch !== undefined || 'pause_at_epoch' in matrix))
    fail(['with', 'pause_at_epoch'], 'the pruner sets pause_at_epoch: remove it');
  if (decl.until) fail(['until'], 'until: and search: do not combine: run the search, then ask until: of its best settings in another study');
  for (const [name, spec] of Object.entries(search.space)) {
    const field = shape[name];
    if (!field) {
      fail(['search', 'space', name], `"${name}" is not a parameter of step type "${base.uses}"${didYouMean(name, known) || knownList(known)}`);
      continue;
    }
    if (name in matrix) fail(['search', 'space', name], `"${name}" is also a matrix axis; list it in matrix or in search, not both`);
    if (decl.with && name in decl.with) fail(['with', name], `"${name}" is set both in with: and in search.space; keep one`);
    const ends: Array<[PathKey[], unknown]> =
      spec.type === 'choice'
        ? spec.values.map((v, i): [PathKey[], unknown] => [['values', i], v])
        : [
            [['low'], spec.low],
            [['high'], spec.high],
          ];
    for (const [keys, value] of ends) {
      const r = field.safeParse(value, parseOptions);
      if (!r.success) {
        ok = false;
        issues(r, ['search', 'space', name, ...keys]);
      }
    }
  }
  const cells = grid(matrix);
  if (cells.length * search.trials > MAX_TRIALS) {
    fail(
      ['search', 'trials'],
      `${search.trials} trials × ${cells.length} matrix cells make ${cells.length * search.trials}; at most ${MAX_TRIALS} fit one sweep: lower trials or the matrix`,
    );
  }
  if (!ok) return undefined;
  // A rule across parameters (with the space's midpoints): said once, before anything runs.
  const middle = Object.fromEntries(Object.entries(search.space).map(([name, spec]) => [name, fromUnit(spec, 0.5)]));
  for (const cell of cells) {
    const r = schema.safeParse({ ...decl.with, ...cell, ...middle }, parseOptions);
    if (!r.success) {
      issues(r, ['with']);
      return undefined;
    }
  }
  return {
    ...base,
    trials: [],
    search: {
      sampler: search.sampler,
      seed: search.seed,
      ...(search.n_startup_trials !== undefined ? { nStartupTrials: search.n_startup_trials } : {}),
      trials: search.trials,
      metric: search.metric,
      direction: search.direction,
      space: search.space,
      grid: matrix,
      cells,
      with: decl.with ?? {},
      ...(search.prune ? { prune: search.prune } : {}),
    },
  };
}

/**
 * A step with `until:` (seeds until sure): its matrix is the compared axis and optionally `seed`
 * (the first seeds); the plan holds every trial up to `max_seeds`, seed by seed, and the workflow
 * runs them in rounds until the comparison is decided.
 */
function planUntilStep(
  base: Omit<PlanStep, 'trials' | 'until'>,
  decl: Partial<StepDecl>,
  matrix: Record<string, unknown[]>,
  schema: z.ZodType<Record<string, unknown>>,
  module: NonNullable<ReturnType<typeof stepModule>>,
  problem: (keys: PathKey[], message: string) => void,
  issues: (result: z.ZodSafeParseError<unknown>, keys: PathKey[]) => void,
): PlanStep | undefined {
  const until = decl.until!;
  let ok = true;
  const fail = (keys: PathKey[], message: string) => {
    ok = false;
    problem(keys, message);
  };
  for (const p of checkUntil(until, matrix as Record<string, ParamValue[]>)) fail(p.path.split('.'), p.message);
  if (decl.sample) fail(['sample'], 'sample: and until: do not combine: until: decides how many seeds run; remove sample:');
  if (!('seed' in shapeOf(schema))) fail(['until'], `a ${base.uses} step has no seed parameter: until: adds seeds, so it needs a step type with one`);
  for (const axis of Object.keys(matrix)) {
    if (until.compare in matrix && axis !== until.compare && axis !== 'seed') {
      fail(
        ['matrix', axis],
        `with until:, the matrix holds only the compared axis (${until.compare}) and seed; move ${axis} into with: (one value), or run one study per value`,
      );
    }
  }
  const given = (matrix.seed ?? []) as unknown[];
  given.forEach((seed, i) => {
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) fail(['matrix', 'seed', i], 'with until:, seeds are integers');
    else if (given.indexOf(seed) !== i) fail(['matrix', 'seed', i], `seed ${seed} is listed twice`);
  });
  if (given.length > until.max_seeds)
    fail(['matrix', 'seed'], `lists ${given.length} seeds, more than until.max_seeds (${until.max_seeds}): raise max_seeds or list fewer`);
  const values = matrix[until.compare] ?? [];
  if (values.length * until.max_seeds > MAX_TRIALS) {
    fail(
      ['until', 'max_seeds'],
      `${values.length} values of ${until.compare} × ${until.max_seeds} seeds could run ${values.length * until.max_seeds} trials; at most ${MAX_TRIALS} fit one sweep: lower max_seeds`,
    );
  }
  if (!ok) return undefined;

  const seeds = [...(given as number[])];
  for (let next = Math.max(0, ...seeds) + 1; seeds.length < until.max_seeds; next++) seeds.push(next);
  const order = Object.keys(matrix).includes('seed') ? Object.keys(matrix) : [until.compare, 'seed'];
  const trials: PlanTrial[] = [];
  for (const seed of seeds) {
    for (const value of values) {
      const cell = Object.fromEntries(order.map((axis) => [axis, axis === 'seed' ? seed : value]));
      const result = schema.safeParse({ ...decl.with, ...cell }, parseOptions);
      if (!result.success) {
        issues(result, ['with']);
        return undefined;
      }
      trials.push({ id: module.trialId?.(result.data, cell) ?? trialId(cell), params: result.data, cell });
    }
  }
  const ids = new Set(trials.map((t) => t.id));
  if (ids.size < trials.length) {
    problem(['matrix'], `the trials' ids repeat (the step type names its trials by fewer values than the matrix has): compare another axis`);
    return undefined;
  }
  return {
    ...base,
    trials,
    until: {
      compare: until.compare,
      baseline: until.baseline,
      confidence: until.confidence,
      margin: until.margin,
      minSeeds: Math.max(until.min_seeds, Math.min(given.length, until.max_seeds)),
      maxSeeds: until.max_seeds,
      roundSeeds: Math.max(1, Math.floor(base.concurrency / values.length)),
      seeds,
    },
  };
}

function checkGraph(steps: Map<string, ReadStep>, report: (f: Finding) => void): void {
  const names = [...steps.keys()];
  const problem = (at: PathKey[], message: string) => report({ at, path: formatPath(at), message });
  for (const [name, step] of steps) {
    const listed = new Set<string>();
    for (const { name: need, index } of step.needs) {
      const at = ['steps', name, 'needs', index];
      if (need === name) problem(at, 'a step cannot need itself');
      else if (!steps.has(need)) problem(at, `there is no step "${need}"${didYouMean(need, names)} (steps: ${names.join(', ')})`);
      else if (listed.has(need)) problem(at, `"${need}" is listed twice`);
      listed.add(need);
    }
  }
  const cycle = findCycle(steps);
  if (cycle) problem(['steps', cycle[0]!, 'needs'], `the steps form a cycle: ${cycle.join(' → ')}; remove one of these needs`);

  // Each step type reads one kind of upstream result; say so now rather than after the data steps ran.
  for (const [name, step] of steps) {
    const uses = step.decl.uses;
    const input = uses ? stepModule(uses)?.reads : undefined;
    if (!input || step.broken.has('needs')) continue;
    const upstream = step.needs.map((n) => steps.get(n.name));
    if (upstream.some((u) => !u?.decl.uses)) continue; // a dangling or broken need is reported already
    const matching = step.needs.filter((n) => {
      const u = steps.get(n.name)!;
      return u.decl.uses === input.from && (!input.trials || u.hasMatrix);
    });
    const wanted = input.trials ? `the trials of ${input.count} ${input.from} step with a matrix` : `the result of ${input.count} ${input.from} step`;
    const found = matching.length === 0 ? 'none' : `${matching.length} (${matching.map((n) => n.name).join(', ')})`;
    if (matching.length === 0 || (input.count === 'exactly one' && matching.length > 1)) {
      problem(['steps', name, 'needs'], `a ${uses} step reads ${wanted} among its needs; it has ${found}`);
    }
  }
}

/** Each step type's own check of its parameters against the matrices it reads (see StepModule.checkUpstream). */
function checkUpstream(steps: readonly PlanStep[], report: (f: Finding) => void): void {
  for (const step of steps) {
    const module = stepModule(step.uses);
    if (!module?.checkUpstream || !step.params) continue;
    const upstream = step.needs.flatMap((need) => {
      const found = steps.find((s) => s.name === need);
      if (found?.search) return [{ step: need, axes: { ...found.search.grid }, search: true }];
      const trials = found?.trials;
      if (!trials) return [];
      const axes: Record<string, unknown[]> = {};
      for (const t of trials) for (const [axis, value] of Object.entries(t.cell)) if (!(axes[axis] ??= []).includes(value)) axes[axis].push(value);
      return [{ step: need, axes }];
    });
    if (upstream.length === 0) continue;
    for (const { field, message } of module.checkUpstream(step.params, upstream)) {
      const at = ['steps', step.name, 'with', field];
      report({ at, path: formatPath(at), message });
    }
  }
}

function findCycle(steps: Map<string, ReadStep>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const { name: need } of steps.get(name)?.needs ?? []) {
      if (need === name || !steps.has(need)) continue;
      const found = visit(need);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of steps.keys()) {
    const found = visit(name);
    if (found) return found;
  }
  return undefined;
}

/** The axes of a matrix that failed as a whole (their own problems are reported already) that are usable lists. */
function lenientMatrix(raw: unknown): Record<string, unknown[]> {
  if (!isMapping(raw)) return {};
  return Object.fromEntries(Object.entries(raw).filter((e): e is [string, unknown[]] => Array.isArray(e[1]) && e[1].length > 0));
}

function shapeOf(schema: z.ZodType): Record<string, z.ZodType> {
  return (schema as unknown as { shape?: Record<string, z.ZodType> }).shape ?? {};
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
