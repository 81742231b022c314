import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, type Document } from 'yaml';
import { canonicalJson } from '../artifacts/canonical';
import { applyOverride, FORBIDDEN_KEYS, forbiddenKeyMessage, isWithin, parseOverride, type Override } from './overrides';
import { stepModule } from '../activities/registry';
import { withContracts } from './contracts';
import { MAX_TRIALS } from './expand';
import { resolveParams } from './params';
import { sweepIdFor, trialWorkflowId, type Plan, type PlanStep } from './plan';
import { formatPath, PipelineError, type PathKey, type Problem } from './problems';
import { validatePipeline, type Finding } from './validate';

export { PipelineError, type Problem } from './problems';

export { MAX_TRIALS } from './expand';

/** Aliases (`*name`) a file may expand: enough for any pipeline, too few for an alias bomb. */
const MAX_ALIASES = 100;

/**
 * Longest workflow id the server accepts (the Temporal server's `limit.maxIDLength`, 1,000 by
 * default). A longer trial id would fail the sweep's workflow task over and over, the sweep
 * RUNNING forever: every id the plan will create is checked before submitting.
 */
export const MAX_WORKFLOW_ID_LENGTH = 1000;

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
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new PipelineError(file, [{ path: '', message: readFailure(err as NodeJS.ErrnoException) }]);
  }
  return planFromText(decodeUtf8(bytes, file), file, options);
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

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    // The yaml library refuses to expand an alias bomb (a few lines that become gigabytes).
    throw new PipelineError(file, [{ path: '', message: `cannot be read: ${(err as Error).message}; expand fewer aliases (*name), or write the values out` }]);
  }
  const forbidden: Problem[] = [];
  forEachKey(raw, [], (at, key) => {
    if (FORBIDDEN_KEYS.has(key)) forbidden.push({ path: formatPath([...at, key]), message: forbiddenKeyMessage(key), ...positionOf(doc, lines, [...at, key]) });
  });
  if (forbidden.length > 0) throw new PipelineError(file, forbidden);

  // Overrides are judged like the file itself; their problems name the --set they come from.
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
  if (options.dataMirrors?.length) {
    const added = addDataSources(raw, options.dataMirrors);
    raw = added.raw;
    overrides.push(...added.overrides);
  }

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
  const sweepId = sweepIdFor(plan);
  if (sweepId.length > MAX_WORKFLOW_ID_LENGTH) {
    problems.push({
      path: 'name',
      message: `makes the sweep id ${sweepId.length} characters long; the server accepts ${MAX_WORKFLOW_ID_LENGTH}: shorten the name`,
    });
  } else {
    for (const step of plan.steps) {
      const longest = (step.trials ?? []).reduce((a, t) => (t.id.length > a.length ? t.id : a), '');
      const id = trialWorkflowId(sweepId, longest);
      if (longest && id.length > MAX_WORKFLOW_ID_LENGTH) {
        problems.push({
          path: `steps.${step.name}.matrix`,
          message: `trial workflow id ${id.slice(0, 60)}… would be ${id.length} characters; the server accepts ${MAX_WORKFLOW_ID_LENGTH}: shorten the pipeline name or the matrix values that name the trials`,
        });
      }
    }
  }
  const trials = plan.steps.reduce((n, s) => n + (s.trials?.length ?? 0) + (s.search ? s.search.trials * s.search.cells.length : 0), 0);
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

/**
 * Hands the `--data` copies to every step whose type takes them, before validation: a copy is
 * checked like a value of the file (a URL with a password is refused the same way), and its
 * problems name the `--data` they come from.
 */
function addDataSources(raw: unknown, sources: string[]): { raw: unknown; overrides: Override[] } {
  const steps = isMapping(raw) && isMapping(raw.steps) ? raw.steps : {};
  const overrides: Override[] = [];
  for (const [name, step] of Object.entries(steps)) {
    const module = isMapping(step) && typeof step.uses === 'string' ? stepModule(step.uses) : undefined;
    if (!module?.addDataSources || !isMapping(step)) continue;
    step.with = module.addDataSources(isMapping(step.with) ? step.with : {}, sources);
    overrides.push({ text: sources.join(' '), origin: `--data ${sources.join(' ')}`, path: ['steps', name, 'with'], value: step.with });
  }
  return { raw, overrides };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
  if (override) problem.origin = override.origin ?? `--set ${override.text}`;
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

/** The file's text, or which byte is not UTF-8 (Node would silently replace it with U+FFFD). */
function decodeUtf8(bytes: Buffer, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    let at = 0;
    // The first offset where decoding a prefix fails is where the bad byte is.
    for (let end = 1; end <= bytes.length; end++) {
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(at, end));
      } catch {
        if (end - at > 4) break;
        continue;
      }
      at = end;
    }
    const line = bytes.subarray(0, at).toString('utf8').split('\n').length;
    throw new PipelineError(file, [{ path: '', line, message: `not valid UTF-8 (byte ${at} of the file): save the file as UTF-8` }]);
  }
}

/** Calls `visit` with every mapping key of a plain value read from YAML, and where it is. */
function forEachKey(value: unknown, at: PathKey[], visit: (at: PathKey[], key: string) => void): void {
  if (Array.isArray(value)) value.forEach((v, i) => forEachKey(v, [...at, i], visit));
  else if (isMapping(value)) {
    for (const key of Object.keys(value)) {
      visit(at, key);
      forEachKey(value[key], [...at, key], visit);
    }
  }
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
