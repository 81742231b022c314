import { z } from 'zod';
import { describeValue, didYouMean, formatPath, issuesToProblems, knownList, parseOptions, type PathKey } from './problems';
import type { Finding } from './validate';

/**
 * Pipeline parameters: values a study leaves to whoever runs it (`params:` at the top of the file,
 * set with `--param name=value`), referenced inside steps as `${{ params.name }}`, as GitHub
 * Actions writes its expressions. A reference that is a whole value keeps the parameter's type;
 * one inside a longer string is interpolated as text.
 */

export const paramTypes = ['string', 'integer', 'number', 'boolean'] as const;
export type ParamType = (typeof paramTypes)[number];
export type ParamValue = string | number | boolean;

const paramName = z.string().regex(/^[a-z][a-z0-9_]*$/, 'parameter names are lowercase letters, digits and "_", starting with a letter');

export const paramDeclSchema = z
  .strictObject({
    type: z.enum(paramTypes).default('string').describe('What values it takes: string, integer, number or boolean.'),
    default: z.union([z.string(), z.number(), z.boolean()]).optional().describe('Its value when no --param sets it; without one, --param must.'),
    description: z.string().max(500).optional().describe('What it means, for people (shown by `sweeps validate` and in the report).'),
    values: z
      .array(z.union([z.string(), z.number(), z.boolean()]))
      .min(1)
      .optional()
      .describe('The values it may take, when there are few.'),
  })
  .describe('One parameter of the pipeline.');
export type ParamDecl = z.infer<typeof paramDeclSchema>;

export const paramsSchema = z
  .record(paramName, paramDeclSchema)
  .describe('Values left to whoever runs the pipeline: `--param name=value`, referenced in steps as `${{ params.name }}`.');

/** `${{ params.name }}`, spaces optional. */
const REFERENCE = /\$\{\{\s*params\.([A-Za-z0-9_]+)\s*\}\}/g;
const WHOLE_REFERENCE = /^\$\{\{\s*params\.([A-Za-z0-9_]+)\s*\}\}$/;

/** One `--param name=value`, as typed. */
export interface ParamAssignment {
  text: string;
  name: string;
  value: string;
}

export function parseParamAssignment(text: string): ParamAssignment {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error('expected <name>=<value>, e.g. --param dataset=JapaneseVowels');
  return { text, name: text.slice(0, eq), value: text.slice(eq + 1) };
}

/** Reads a command-line value as the declared type; throws a message saying what was expected. */
export function coerceParam(type: ParamType, text: string): ParamValue {
  switch (type) {
    case 'string':
      return text;
    case 'boolean':
      if (text === 'true' || text === 'false') return text === 'true';
      throw new Error(`expected true or false, got ${JSON.stringify(text)}`);
    case 'integer': {
      const n = Number(text);
      if (/^[-+]?\d+$/.test(text.trim()) && Number.isSafeInteger(n)) return n;
      throw new Error(`expected an integer, got ${JSON.stringify(text)}`);
    }
    case 'number': {
      const n = Number(text);
      if (text.trim() !== '' && Number.isFinite(n)) return n;
      throw new Error(`expected a finite number, got ${JSON.stringify(text)}`);
    }
  }
}

function hasType(type: ParamType, value: unknown): boolean {
  if (type === 'integer') return typeof value === 'number' && Number.isSafeInteger(value);
  if (type === 'number') return typeof value === 'number' && Number.isFinite(value);
  return typeof value === type;
}

export interface ResolvedParams {
  /** The pipeline with every reference replaced, `params:` removed. */
  raw: unknown;
  /** Every declared parameter's value (set or default), in declaration order. */
  values: Record<string, ParamValue>;
  /** The declarations, for people (descriptions). */
  declared: Record<string, ParamDecl>;
}

/**
 * Checks the `params:` declarations and the `--param` assignments, then replaces every reference
 * in the pipeline with its value. Problems are reported, not thrown, so that they come with the
 * file's others; `origin` names the `--param` a problem comes from.
 */
export function resolveParams(raw: unknown, assignments: readonly string[], report: (f: Finding & { origin?: string }) => void): ResolvedParams | undefined {
  const problem = (at: PathKey[], message: string, origin?: string) => report({ at, path: formatPath(at), message, origin });
  const root = isMapping(raw) ? raw : {};
  let ok = true;
  const declared: Record<string, ParamDecl> = {};
  if (root.params !== undefined) {
    const parsed = paramsSchema.safeParse(root.params, parseOptions);
    if (!parsed.success) {
      for (const f of issuesToProblems(parsed.error.issues, ['params'], paramsSchema)) report(f);
      return undefined;
    }
    for (const [name, decl] of Object.entries(parsed.data)) {
      const at = ['params', name];
      if (decl.default !== undefined && !hasType(decl.type, decl.default)) {
        problem([...at, 'default'], `expected ${article(decl.type)}, got ${describeValue(decl.default)}`);
        ok = false;
      }
      decl.values?.forEach((v, i) => {
        if (!hasType(decl.type, v)) {
          problem([...at, 'values', i], `expected ${article(decl.type)}, got ${describeValue(v)}`);
          ok = false;
        }
      });
      if (decl.default !== undefined && decl.values && !decl.values.includes(decl.default)) {
        problem([...at, 'default'], `${describeValue(decl.default)} is not one of its values ${JSON.stringify(decl.values)}`);
        ok = false;
      }
      declared[name] = decl;
    }
  }

  const values: Record<string, ParamValue> = {};
  for (const [name, decl] of Object.entries(declared)) if (decl.default !== undefined) values[name] = decl.default;
  const names = Object.keys(declared);
  for (const text of assignments) {
    const origin = `--param ${text}`;
    let assignment: ParamAssignment;
    try {
      assignment = parseParamAssignment(text);
    } catch (err) {
      problem([], (err as Error).message, origin);
      ok = false;
      continue;
    }
    const decl = Object.hasOwn(declared, assignment.name) ? declared[assignment.name] : undefined;
    if (!decl) {
      const known = names.length ? didYouMean(assignment.name, names) || knownList(names) : ': this pipeline declares no params';
      problem(['params'], `there is no parameter "${assignment.name}"${known}`, origin);
      ok = false;
      continue;
    }
    try {
      const value = coerceParam(decl.type, assignment.value);
      if (decl.values && !decl.values.includes(value)) throw new Error(`${describeValue(value)} is not one of ${JSON.stringify(decl.values)}`);
      values[assignment.name] = value;
    } catch (err) {
      problem(['params', assignment.name], (err as Error).message, origin);
      ok = false;
    }
  }
  for (const name of names) {
    if (!(name in values)) {
      problem(['params', name], `has no default: set it with --param ${name}=<${declared[name]!.type}>`);
      ok = false;
    }
  }

  const { params: _declarations, ...rest } = root;
  const substituted = substitute(rest, [], (at, name) => {
    if (Object.hasOwn(values, name)) return values[name]!;
    if (!Object.hasOwn(declared, name)) {
      problem(at, `\${{ params.${name} }} names no parameter${names.length ? didYouMean(name, names) || knownList(names) : ': declare it under params:'}`);
    }
    ok = false;
    return undefined;
  });
  if (!ok) return undefined;
  return { raw: isMapping(raw) ? substituted : raw, values, declared };
}

/** A copy of `value` with every reference replaced; `lookup` reports unknown names. */
function substitute(value: unknown, at: PathKey[], lookup: (at: PathKey[], name: string) => ParamValue | undefined): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE_REFERENCE.exec(value);
    if (whole) return lookup(at, whole[1]!);
    return value.replace(REFERENCE, (_match, name: string) => String(lookup(at, name) ?? ''));
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, [...at, i], lookup));
  if (isMapping(value)) {
    const out: Record<string, unknown> = {};
    // defineProperty: a key named `__proto__` stays a key instead of replacing the prototype.
    for (const [k, v] of Object.entries(value))
      Object.defineProperty(out, k, { value: substitute(v, [...at, k], lookup), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}

function article(type: ParamType): string {
  return type === 'integer' ? 'an integer' : type === 'boolean' ? 'true or false' : `a ${type}`;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
