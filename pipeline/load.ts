import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, parse as parseYaml, isMap, isSeq, type Document } from 'yaml';
import { z } from 'zod';
import { canonicalJson } from '../artifacts/canonical';
import type { Plan, PlanStep, PlanTrial } from './plan';
import { pipelineOuterSchema, stepSchema, type StepDecl } from './schema';
import { stepTypes, type StepType } from './steps';

export interface Problem {
  /** Dotted path inside the pipeline, e.g. `steps.train.matrix.seed[1]`. */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Every problem found in a pipeline file, each with its location; nothing was submitted. */
export class PipelineError extends Error {
  override name = 'PipelineError';
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    super(
      problems
        .map((p) => `${file}${p.line ? `:${p.line}:${p.column ?? 1}` : ''}: ${p.path ? `${p.path}: ` : ''}${p.message}`)
        .join('\n'),
    );
  }
}

export interface LoadOptions {
  /** `path=value` overrides applied before validation (values are YAML scalars or flow collections). */
  set?: string[];
  /** Mirrors tried before those of every download step (e.g. a local copy of the archive). */
  dataMirrors?: string[];
}

/** Reads, overrides, validates and expands a pipeline file into a Plan, or throws PipelineError. */
export function loadPipeline(file: string, options: LoadOptions = {}): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PipelineError(file, [{ path: '', message: `cannot read the pipeline file (${(err as Error).message})` }]);
  }
  return planFromText(text, file, options);
}

export function planFromText(text: string, file: string, options: LoadOptions = {}): Plan {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new PipelineError(
      file,
      doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { path: '', message: `not valid YAML: ${e.message.split('\n')[0]}`, line: pos.line, column: pos.col };
      }),
    );
  }
  const locate = (path: (string | number)[]): Pick<Problem, 'line' | 'column'> => locateIn(doc, lines, path);

  let raw: unknown = doc.toJS();
  const overrideProblems: Problem[] = [];
  for (const assignment of options.set ?? []) {
    try {
      raw = applyOverride(raw, assignment);
    } catch (err) {
      overrideProblems.push({ path: `--set ${assignment}`, message: (err as Error).message });
    }
  }
  if (overrideProblems.length > 0) throw new PipelineError(file, overrideProblems);

  const problems: Problem[] = [];
  const report = (p: Problem) => problems.push(p);
  const outer = pipelineOuterSchema.safeParse(raw, { reportInput: true });
  if (!outer.success) {
    for (const issue of outer.error.issues) report(toProblem(issue, [], locate));
    // Without a steps mapping there is nothing more to check.
    if (!outer.data && !(raw && typeof raw === 'object' && 'steps' in raw)) throw new PipelineError(file, problems);
  }
  const rawSteps = (raw as { steps?: Record<string, unknown> } | null)?.steps ?? {};
  const decls: Record<string, StepDecl> = {};
  for (const [name, rawStep] of Object.entries(typeof rawSteps === 'object' ? rawSteps : {})) {
    const step = stepSchema.safeParse(rawStep, { reportInput: true });
    if (step.success) decls[name] = step.data;
    else for (const issue of step.error.issues) report(toProblem(issue, ['steps', name], locate));
  }
  if (options.dataMirrors?.length) {
    for (const step of Object.values(decls)) {
      if (step.uses === 'download') {
        const urls = Array.isArray(step.with.urls) ? (step.with.urls as unknown[]) : [];
        step.with.urls = [...options.dataMirrors, ...urls];
      }
    }
  }

  const steps: PlanStep[] = [];
  for (const [name, decl] of Object.entries(decls)) {
    const step = planStep(name, decl, report, locate);
    if (step) steps.push(step);
  }
  problems.push(...graphProblems(Object.keys(rawSteps), decls, locate));
  if (problems.length > 0) throw new PipelineError(file, problems);
  const pipeline = outer.data!;

  const ordered = topologicalOrder(steps);
  const effective = { name: pipeline.name, steps: ordered };
  const digest = createHash('sha256').update(canonicalJson(effective)).digest('hex');
  return { pipeline: pipeline.name, description: pipeline.description, source: file, digest, steps: ordered };
}

function planStep(
  name: string,
  decl: StepDecl,
  report: (p: Problem) => void,
  locate: (path: (string | number)[]) => Pick<Problem, 'line' | 'column'>,
): PlanStep | undefined {
  const schema = stepTypes[decl.uses] as z.ZodType<Record<string, unknown>>;
  const base = { name, uses: decl.uses, needs: decl.needs, retry: decl.retry, timeout: decl.timeout };
  if (!decl.matrix) {
    if (decl.sample) report({ path: `steps.${name}.sample`, message: 'sample needs a matrix to draw from', ...locate(['steps', name, 'sample']) });
    if (decl.concurrency !== undefined) {
      report({ path: `steps.${name}.concurrency`, message: 'concurrency only applies to a step with a matrix', ...locate(['steps', name, 'concurrency']) });
    }
    const result = schema.safeParse(decl.with, { reportInput: true });
    if (!result.success) {
      for (const issue of result.error.issues) report(toProblem(issue, ['steps', name, 'with'], locate));
      return undefined;
    }
    return { ...base, params: result.data, concurrency: 1 };
  }

  const shape = shapeOf(schema);
  let ok = true;
  for (const [key, value] of Object.entries(decl.with)) {
    const field = shape[key];
    const r = field?.safeParse(value, { reportInput: true });
    if (!field) {
      ok = false;
      report({ path: `steps.${name}.with`, message: `unknown key "${key}" for step type "${decl.uses}"`, ...locate(['steps', name, 'with', key]) });
    } else if (r && !r.success) {
      ok = false;
      for (const issue of r.error.issues) report(toProblem(issue, ['steps', name, 'with', key], locate));
    }
  }
  for (const [axis, values] of Object.entries(decl.matrix)) {
    const field = shape[axis];
    if (!field) {
      ok = false;
      report({
        path: `steps.${name}.matrix.${axis}`,
        message: `"${axis}" is not a parameter of step type "${decl.uses}" (known: ${Object.keys(shape).join(', ')})`,
        ...locate(['steps', name, 'matrix', axis]),
      });
      continue;
    }
    values.forEach((value, i) => {
      const r = field.safeParse(value, { reportInput: true });
      if (!r.success) {
        ok = false;
        for (const issue of r.error.issues) report(toProblem(issue, ['steps', name, 'matrix', axis, i], locate));
      }
    });
    if (axis in decl.with) {
      ok = false;
      report({
        path: `steps.${name}.with.${axis}`,
        message: `"${axis}" is set both in with: and in matrix:; keep one`,
        ...locate(['steps', name, 'with', axis]),
      });
    }
  }
  if (!ok) return undefined;

  let cells = grid(decl.matrix);
  if (decl.sample) cells = sampleCells(cells, decl.sample.count, decl.sample.seed);
  const trials: PlanTrial[] = [];
  const seen = new Map<string, number>();
  for (const cell of cells) {
    const result = schema.safeParse({ ...decl.with, ...cell }, { reportInput: true });
    if (!result.success) {
      for (const issue of result.error.issues) report(toProblem(issue, ['steps', name, 'with'], locate));
      return undefined;
    }
    let id = trialId(decl.uses, result.data, cell);
    const n = seen.get(id) ?? 0;
    seen.set(id, n + 1);
    if (n > 0) id = `${id}-${n + 1}`;
    trials.push({ id, params: result.data, cell });
  }
  return { ...base, trials, concurrency: decl.concurrency ?? 2 };
}

/** `gru_mean-h64-s1` for training trials (the names people use); `key-value` pairs otherwise. */
export function trialId(uses: StepType, params: Record<string, unknown>, cell: Record<string, unknown>): string {
  const clean = (v: unknown) => String(v).replace(/[^A-Za-z0-9.]+/g, '_');
  if (uses === 'train') {
    const extra = Object.keys(cell)
      .filter((k) => !['pooling', 'hidden', 'seed'].includes(k))
      .sort()
      .map((k) => `${k}${clean(cell[k])}`);
    return [`gru_${clean(params.pooling)}`, `h${clean(params.hidden)}`, ...extra, `s${clean(params.seed)}`].join('-');
  }
  return Object.keys(cell)
    .sort()
    .map((k) => `${k}${clean(cell[k])}`)
    .join('-');
}

function grid(matrix: Record<string, unknown[]>): Record<string, unknown>[] {
  let cells: Record<string, unknown>[] = [{}];
  for (const [axis, values] of Object.entries(matrix)) {
    cells = cells.flatMap((cell) => values.map((v) => ({ ...cell, [axis]: v })));
  }
  return cells;
}

/** A seeded draw without replacement, keeping the grid's order so trial ids stay readable. */
function sampleCells<T>(cells: T[], count: number, seed: number): T[] {
  if (count >= cells.length) return cells;
  let state = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const index = cells.map((_, i) => i);
  for (let i = index.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [index[i], index[j]] = [index[j]!, index[i]!];
  }
  return index
    .slice(0, count)
    .sort((a, b) => a - b)
    .map((i) => cells[i]!);
}

function graphProblems(
  allNames: string[],
  steps: Record<string, StepDecl>,
  locate: (path: (string | number)[]) => Pick<Problem, 'line' | 'column'>,
): Problem[] {
  const problems: Problem[] = [];
  const names = new Set(allNames);
  for (const [name, step] of Object.entries(steps)) {
    step.needs.forEach((need, i) => {
      if (!names.has(need)) {
        problems.push({
          path: `steps.${name}.needs[${i}]`,
          message: `needs "${need}", but there is no step of that name (steps: ${[...names].join(', ')})`,
          ...locate(['steps', name, 'needs', i]),
        });
      } else if (need === name) {
        problems.push({ path: `steps.${name}.needs[${i}]`, message: 'a step cannot need itself', ...locate(['steps', name, 'needs', i]) });
      }
    });
  }
  const cycle = findCycle(steps);
  if (cycle) {
    problems.push({
      path: `steps.${cycle[0]}.needs`,
      message: `the steps form a cycle: ${cycle.join(' → ')}`,
      ...locate(['steps', cycle[0]!, 'needs']),
    });
  }
  return problems;
}

function findCycle(steps: Record<string, StepDecl>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const need of steps[name]?.needs ?? []) {
      if (need === name || !(need in steps)) continue;
      const found = visit(need);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of Object.keys(steps)) {
    const found = visit(name);
    if (found) return found;
  }
  return undefined;
}

function topologicalOrder(steps: PlanStep[]): PlanStep[] {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const done = new Set<string>();
  const out: PlanStep[] = [];
  const visit = (step: PlanStep) => {
    if (done.has(step.name)) return;
    done.add(step.name);
    for (const need of step.needs) {
      const upstream = byName.get(need);
      if (upstream) visit(upstream);
    }
    out.push(step);
  };
  steps.forEach(visit);
  return out;
}

/** Applies `a.b[2].c=value` to a plain object; the value is read as YAML (`3`, `true`, `[1, 2]`). */
export function applyOverride(target: unknown, assignment: string): unknown {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new Error('expected <path>=<value>, e.g. steps.train.with.epochs=3');
  const path = parsePath(assignment.slice(0, eq));
  const value: unknown = parseYaml(assignment.slice(eq + 1));
  const root = (target ?? {}) as Record<string | number, unknown>;
  let node: Record<string | number, unknown> = root;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const child = node[key];
    if (child === undefined || child === null) {
      node[key] = typeof path[i + 1] === 'number' ? [] : {};
    } else if (typeof child !== 'object') {
      throw new Error(`${path.slice(0, i + 1).join('.')} is a ${typeof child}, not a mapping`);
    }
    node = node[key] as Record<string | number, unknown>;
  });
  return root;
}

function parsePath(text: string): (string | number)[] {
  const path: (string | number)[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]/g;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    path.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
    consumed += m[0].length;
  }
  const dots = (text.match(/\./g) ?? []).length;
  if (path.length === 0 || consumed + dots !== text.length) throw new Error(`"${text}" is not a path like steps.train.with.epochs`);
  return path;
}

function shapeOf(schema: z.ZodType): Record<string, z.ZodType> {
  const def = (schema as unknown as { shape?: Record<string, z.ZodType> }).shape;
  return def ?? {};
}

function toProblem(
  issue: z.core.$ZodIssue,
  prefix: (string | number)[],
  locate: (path: (string | number)[]) => Pick<Problem, 'line' | 'column'>,
): Problem {
  const full = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    return {
      path: formatPath(full),
      message: `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`,
      ...locate([...full, keys[0]!]),
    };
  }
  if (issue.code === 'invalid_type') {
    message = `expected ${issue.expected === 'int' ? 'an integer' : issue.expected}, got ${describe(issue.input)}`;
  } else if (issue.code === 'invalid_value' && 'values' in issue) {
    message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(issue.input)}`;
  }
  return { path: formatPath(full), message, ...locate(full) };
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? String(value);
}

export function formatPath(path: (string | number)[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${key}` : key), '');
}

function locateIn(doc: Document, lines: LineCounter, path: (string | number)[]): Pick<Problem, 'line' | 'column'> {
  // Walk down as far as the document has nodes: an override or a default may name a path the file lacks.
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null)?.range;
    if (range && (n === 0 || isMap(node) || isSeq(node) || node)) {
      // For a key we would rather point at the key than at its value: find the pair.
      const parent = n > 0 ? (n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true)) : undefined;
      if (isMap(parent)) {
        const pair = parent.items.find((item) => (item.key as { value?: unknown } | null)?.value === path[n - 1]);
        const keyRange = (pair?.key as { range?: [number, number, number] } | null)?.range;
        if (keyRange) {
          const pos = lines.linePos(keyRange[0]);
          return { line: pos.line, column: pos.col };
        }
      }
      const pos = lines.linePos(range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}
