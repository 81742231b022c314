import { z } from 'zod';

/** One thing wrong with a pipeline, located as precisely as the file allows. */
export interface Problem {
  /** Dotted path inside the pipeline, e.g. `steps.train.matrix.seed[1]`. */
  path: string;
  message: string;
  line?: number;
  column?: number;
  /** The `--set path=value` the problem comes from, when it is not (only) in the file. */
  origin?: string;
}

/** Every problem found in a pipeline file, each with its location; nothing was submitted. */
export class PipelineError extends Error {
  override name = 'PipelineError';
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    super(problems.map((p) => formatProblem(file, p)).join('\n'));
  }
}

/** `file:line:col: path: message`, the form editors and terminals turn into a link. */
export function formatProblem(file: string, p: Problem): string {
  const where = `${file}${p.line ? `:${p.line}:${p.column ?? 1}` : ''}`;
  const origin = p.origin ? ` (${p.line ? 'after ' : ''}${p.origin})` : '';
  return `${where}${origin}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

export type PathKey = string | number;

/** `steps.train.matrix.seed[1]`; keys that are not plain names are quoted: `steps["Train step"]`. */
export function formatPath(path: readonly PathKey[]): string {
  return path.reduce<string>((out, key) => {
    if (typeof key === 'number') return `${out}[${key}]`;
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return `${out}[${JSON.stringify(key)}]`;
    return out ? `${out}.${key}` : key;
  }, '');
}

/** A value as a person would name it in a message: `"one"`, `3`, `a list`, `a mapping`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value (null)';
  if (Array.isArray(value)) {
    const json = JSON.stringify(value);
    return json.length <= 40 ? `the list ${json}` : `a list of ${value.length}`;
  }
  if (typeof value === 'object') return 'a mapping';
  // JSON would say `null` for these: say what the file wrote.
  if (typeof value === 'number' && Number.isNaN(value)) return 'not a number (.nan)';
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return `${value < 0 ? 'minus ' : ''}infinity (.inf, or a number too large for a double, such as 1e999)`;
  }
  if (typeof value === 'string' && value.length > 60) return `${JSON.stringify(value.slice(0, 40))}… (${value.length} characters)`;
  return JSON.stringify(value) ?? String(value);
}

const expectedNames: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  tuple: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  map: 'a mapping',
  null: 'null',
};

/**
 * Messages for zod's own issues, in the words of pipeline files. Passed per parse, so a message a
 * schema spells out itself (`'a matrix axis needs at least one value'`) still wins over these.
 */
export const pipelineErrorMap: z.core.$ZodErrorMap = (issue) => {
  const input = issue.input;
  switch (issue.code) {
    case 'invalid_type': {
      // An integer field given a string fails zod's number check first: still say "an integer".
      const isInt = issue.expected === 'number' && (issue.inst as { isInt?: boolean } | undefined)?.isInt === true;
      const expected = isInt ? expectedNames.int! : (expectedNames[issue.expected] ?? issue.expected);
      return input === undefined ? `required: expected ${expected}` : `expected ${expected}, got ${describeValue(input)}`;
    }
    case 'too_small':
    case 'too_big':
      return sizeMessage(issue);
    case 'invalid_value':
      return oneOfMessage(issue.values, input);
    case 'invalid_format':
      return issue.format === 'regex' && 'pattern' in issue
        ? `expected text matching ${String(issue.pattern)}, got ${describeValue(input)}`
        : `expected ${issue.format} text, got ${describeValue(input)}`;
    case 'not_multiple_of':
      return `expected a multiple of ${String(issue.divisor)}, got ${describeValue(input)}`;
    case 'invalid_union': {
      const { discriminator, options } = issue as { discriminator?: string; options?: unknown[] };
      if (discriminator && options) {
        const value = input && typeof input === 'object' ? (input as Record<string, unknown>)[discriminator] : undefined;
        return oneOfMessage(options, value);
      }
      return `matches none of the allowed forms, got ${describeValue(input)}`;
    }
    default:
      return undefined;
  }
};

function sizeMessage(issue: z.core.$ZodRawIssue<z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig>): string {
  const small = issue.code === 'too_small';
  const bound = Number(small ? (issue as z.core.$ZodIssueTooSmall).minimum : (issue as z.core.$ZodIssueTooBig).maximum);
  const inclusive = issue.inclusive !== false;
  const got = describeValue(issue.input);
  switch (issue.origin) {
    case 'array':
    case 'set': {
      const n = Array.isArray(issue.input) ? issue.input.length : undefined;
      const items = (k: number) => `${k} item${k === 1 ? '' : 's'}`;
      return `expected ${small ? 'at least' : 'at most'} ${items(bound)}${n === undefined ? '' : `, got ${n}`}`;
    }
    case 'string':
      if (small && bound === 1) return 'must not be empty';
      return `expected ${small ? 'at least' : 'at most'} ${bound} characters, got ${got}`;
    default: {
      // Zod writes `.positive()` as "> 0" and `.int()`'s safe range as a huge maximum: say it plainly.
      if (small && bound === 0 && !inclusive) return `expected a number greater than 0, got ${got}`;
      if (!small && bound >= Number.MAX_SAFE_INTEGER) return `expected a safe integer, got ${got}`;
      const relation = small ? (inclusive ? 'at least' : 'greater than') : inclusive ? 'at most' : 'less than';
      return `expected a number ${relation} ${bound}, got ${got}`;
    }
  }
}

function oneOfMessage(values: readonly unknown[], input: unknown): string {
  const allowed = values.map((v) => JSON.stringify(v)).join(', ');
  const expected = values.length === 1 ? `expected ${allowed}` : `expected one of ${allowed}`;
  const hint =
    typeof input === 'string'
      ? didYouMean(
          input,
          values.filter((v): v is string => typeof v === 'string'),
        )
      : '';
  return `${expected}, got ${describeValue(input)}${hint}`;
}

/** ` (did you mean "needs"?)` when a known name is a small edit away from a typo; else ''. */
export function didYouMean(typo: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const d = editDistance(typo.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  const tolerance = Math.max(1, Math.ceil(typo.length / 3));
  return best !== undefined && bestDistance > 0 && bestDistance <= tolerance ? ` (did you mean "${best}"?)` : '';
}

/** Edits (insert, delete, substitute, swap two neighbours) from a to b: "trian" is one from "train". */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** Parse options of every pipeline check: our messages, and the input kept for them. */
export const parseOptions = { error: pipelineErrorMap, reportInput: true } as const;

/**
 * Turns zod's issues into problems under `prefix`. An unknown-keys issue becomes one problem per
 * key, located at the key and naming the keys the schema does take.
 */
export function issuesToProblems(
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PathKey[],
  schema: z.ZodType,
): Array<Omit<Problem, 'line' | 'column'> & { at: PathKey[] }> {
  const out: Array<Omit<Problem, 'line' | 'column'> & { at: PathKey[] }> = [];
  for (const issue of issues) {
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    const at = [...prefix, ...path];
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(schema, path);
      for (const key of issue.keys) {
        const hint = didYouMean(key, known);
        out.push({ path: formatPath([...at, key]), at: [...at, key], message: `unknown key "${key}"${hint || knownList(known)}` });
      }
    } else if (issue.code === 'invalid_key') {
      // A record key that breaks its rule (a step name): the inner issue says which rule.
      out.push({ path: formatPath(at), at, message: issue.issues[0]?.message ?? issue.message });
    } else {
      out.push({ path: formatPath(at), at, message: issue.message });
    }
  }
  return out;
}

/** `; expected one of: a, b, c`, or '' when there is nothing to list. */
export function knownList(known: readonly string[]): string {
  return known.length ? `; expected one of: ${known.join(', ')}` : '';
}

/** The keys an object schema takes at `path` (through optionals, defaults, records, lists, unions). */
function keysAt(schema: z.ZodType, path: readonly PathKey[]): string[] {
  let node: z.core.$ZodType | undefined = schema;
  const step = (n: z.core.$ZodType, key: PathKey | undefined): z.core.$ZodType | undefined => {
    const def = n._zod.def as unknown as Record<string, unknown> & { type: string };
    switch (def.type) {
      case 'optional':
      case 'default':
      case 'prefault':
      case 'nullable':
      case 'readonly':
      case 'catch':
        return step(def.innerType as z.core.$ZodType, key);
      case 'pipe':
        return step(def.in as z.core.$ZodType, key);
      case 'object':
        return key === undefined ? n : (def.shape as Record<string, z.core.$ZodType>)[String(key)];
      case 'record':
        return key === undefined ? n : (def.valueType as z.core.$ZodType);
      case 'array':
        return key === undefined ? n : (def.element as z.core.$ZodType);
      default:
        return key === undefined ? n : undefined;
    }
  };
  for (const key of path) {
    node = node && step(node, key);
    if (!node) return [];
  }
  const target = node && step(node, undefined);
  const def = target?._zod.def as { type?: string; shape?: Record<string, unknown>; options?: z.core.$ZodType[] } | undefined;
  if (def?.type === 'object') return Object.keys(def.shape ?? {});
  if (def?.type === 'union') return [...new Set((def.options ?? []).flatMap((o) => keysAt(o as z.ZodType, [])))];
  return [];
}
