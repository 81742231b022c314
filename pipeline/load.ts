import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, type Document } from 'yaml';
import { canonicalJson } from '../artifacts/canonical';
import { applyOverride, isWithin, parseOverride, type Override } from './overrides';
import { withContracts } from './contracts';
import { resolveParams } from './params';
import type { Plan, PlanStep } from './plan';
import { PipelineError, type PathKey, type Problem } from './problems';
import { validatePipeline, type Finding } from './validate';

export { PipelineError, type Problem } from './problems';

/**
 * Trials in one sweep. Measured on a sweep of 200 tiny trials (bench/sweep-history.ts): each trial
 * adds about 9 events (1.3 KB of its result) to the sweep's history, and the sweep's result and the
 * report's input carry every trial's result (about 1.3 KB each). At 1,000 trials that is about
 * 9,000 events (Temporal warns at 10,240) and payloads of about 1.3 MB (it rejects 2 MB). Larger
 * studies: draw a `sample:` or split them into several sweeps.
 */
export const MAX_TRIALS = 1000;

/** The plan is the sweep workflow's input, one payload (75 KB for 200 trials): Temporal rejects 2 MB. */
export const MAX_PLAN_BYTES = 1_000_000;

export interface LoadOptions {
  /** `path=value` overrides applied before validation (values are YAML scalars or flow collections). */
  set?: string[];
  /** `name=value` values of the pipeline's `params:` (read as each one's declared type). */
  params?: string[];
  /** Mirrors tried before those of every download step (e.g. a local copy of the archive). */
  dataMirrors?: string[];
}

/** Reads, overrides, validates and expands a pipeline file into a Plan, or throws PipelineError. */
export function loadPipeline(file: string, options: LoadOptions = {}): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PipelineError(file, [{ path: '', message: readFailure(err as NodeJS.ErrnoException) }]);
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

  // Overrides are judged like the file itself; their problems name the --set they come from.
  let raw: unknown = doc.toJS();
  const overrides: Override[] = [];
  const overrideProblems: Problem[] = [];
  for (const assignment of options.set ?? []) {
    try {
      const override = parseOverride(assignment);
      raw = applyOverride(raw, override);
      overrides.push(override);
    } catch (err) {
      overrideProblems.push({ path: '', origin: `--set ${assignment}`, message: (err as Error).message });
    }
  }
  if (overrideProblems.length > 0) throw new PipelineError(file, overrideProblems);

  const problems: Problem[] = [];
  const report = (f: Finding) => problems.push(locate(doc, lines, overrides, f));
  const resolved = resolveParams(raw, options.params ?? [], report);
  const pipeline = resolved ? validatePipeline(resolved.raw, report) : undefined;
  if (!pipeline || !resolved || problems.length > 0) {
    // In the file's order, as an editor lists them; problems of --set values (no line) last.
    const order = (p: Problem) => (p.line ?? Infinity) * 1e4 + (p.column ?? 0);
    problems.sort((a, b) => order(a) - order(b));
    throw new PipelineError(file, problems.length ? problems : [{ path: '', message: 'not a pipeline' }]);
  }

  if (options.dataMirrors?.length) {
    for (const step of pipeline.steps) {
      if (step.uses === 'download' && step.params) {
        step.params = { ...step.params, urls: [...options.dataMirrors, ...(step.params.urls as string[])] };
      }
    }
  }
  const ordered = uniqueTrialIds(topologicalOrder(pipeline.steps));
  const params = Object.keys(resolved.values).length > 0 ? resolved.values : undefined;
  // Without params the digest is what it was before params existed: those sweeps keep their ids.
  const effective = params ? { name: pipeline.name, params, steps: ordered } : { name: pipeline.name, steps: ordered };
  const digest = createHash('sha256').update(canonicalJson(effective)).digest('hex');
  const plan: Plan = { pipeline: pipeline.name, description: pipeline.description, source: file, digest, steps: ordered };
  if (params) plan.params = params;
  checkLimits(plan, file);
  return withContracts(plan);
}

function checkLimits(plan: Plan, file: string): void {
  const problems: Problem[] = [];
  const trials = plan.steps.reduce((n, s) => n + (s.trials?.length ?? 0), 0);
  if (trials > MAX_TRIALS) {
    problems.push({
      path: 'steps',
      message: `the sweep would run ${trials} trials; at most ${MAX_TRIALS} fit one sweep's history. Draw fewer with sample: {count, seed}, or split the study`,
    });
  }
  const bytes = Buffer.byteLength(JSON.stringify(plan));
  if (bytes > MAX_PLAN_BYTES) {
    problems.push({
      path: 'steps',
      message: `the expanded plan is ${(bytes / 1e6).toFixed(2)} MB; the sweep's input must stay under ${MAX_PLAN_BYTES / 1e6} MB (Temporal rejects 2 MB payloads)`,
    });
  }
  if (problems.length > 0) throw new PipelineError(file, problems);
}

/** Trial workflow ids must be unique in a sweep: with several matrix steps, trial ids start with their step's name. */
function uniqueTrialIds(steps: PlanStep[]): PlanStep[] {
  if (steps.filter((s) => s.trials).length < 2) return steps;
  return steps.map((s) => (s.trials ? { ...s, trials: s.trials.map((t) => ({ ...t, id: `${s.name}-${t.id}` })) } : s));
}

/** Every step after the steps it needs; otherwise the file's order. */
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

/**
 * Gives a finding its line and column in the file, or names the --set it comes from: a value set
 * on the command line has no line, and pointing at the file's old value would mislead.
 */
function locate(doc: Document, lines: LineCounter, overrides: Override[], f: Finding): Problem {
  // A value given on the command line has no line in the file.
  if (f.origin) return { path: f.path, message: f.message, origin: f.origin };
  const override = [...overrides].reverse().find((o) => isWithin(f.at, o.path) || isWithin(o.path, f.at));
  const problem: Problem = { path: f.path, message: f.message };
  if (override) problem.origin = `--set ${override.text}`;
  if (override && isWithin(f.at, override.path)) return problem;
  return { ...problem, ...positionOf(doc, lines, f.at) };
}

function positionOf(doc: Document, lines: LineCounter, path: PathKey[]): Pick<Problem, 'line' | 'column'> {
  // Walk up to the deepest node the file has: a default or an override may name a path it lacks.
  for (let n = path.length; n > 0; n--) {
    const parent = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
    if (isMap(parent)) {
      // Point at the key rather than at its value: that is where a person looks.
      const pair = parent.items.find((item) => String((item.key as { value?: unknown } | null)?.value) === String(path[n - 1]));
      const range = (pair?.key as { range?: [number, number, number] } | null)?.range;
      if (range) return position(lines, range[0]);
    }
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | null | undefined;
    if (node?.range) return position(lines, node.range[0]);
  }
  const root = (doc.contents as { range?: [number, number, number] } | null)?.range;
  return root ? position(lines, root[0]) : {};
}

function position(lines: LineCounter, offset: number): Pick<Problem, 'line' | 'column'> {
  const pos = lines.linePos(offset);
  return { line: pos.line, column: pos.col };
}

function readFailure(err: NodeJS.ErrnoException): string {
  const what =
    err.code === 'ENOENT'
      ? 'no such file: check the path (pipelines/ holds the shipped ones)'
      : err.code === 'EISDIR'
        ? 'this is a folder: name a .yaml file in it'
        : err.code === 'EACCES'
          ? 'no permission to read it: fix its permissions'
          : err.message;
  return `cannot read the pipeline file: ${what}`;
}
