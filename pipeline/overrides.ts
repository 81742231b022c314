import { parse as parseYaml } from 'yaml';
import { didYouMean, type PathKey } from './problems';

/**
 * Keys through which a plain object reaches its prototype: an override or a file key with one of
 * these names would change every object of the process, or vanish silently.
 */
export const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function forbiddenKeyMessage(key: string): string {
  return `"${key}" cannot be a key: JavaScript objects reach their prototype through it; rename it`;
}

/** One `--set path=value`, parsed. */
export interface Override {
  /** The assignment as the user typed it, to name it in messages. */
  text: string;
  /** How messages name it when it is not a `--set` (e.g. `--data <file>`). */
  origin?: string;
  path: PathKey[];
  value: unknown;
}

/** Parses `a.b[2].c=value`; the value is read as YAML (`3`, `true`, `[1, 2]`, `{kind: by-user}`). */
export function parseOverride(assignment: string): Override {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new Error('expected <path>=<value>, e.g. steps.<step>.with.epochs=3');
  const path = parsePath(assignment.slice(0, eq));
  const unsafe = path.find((key) => typeof key === 'string' && FORBIDDEN_KEYS.has(key));
  if (unsafe !== undefined) throw new Error(forbiddenKeyMessage(String(unsafe)));
  let value: unknown;
  try {
    value = parseYaml(assignment.slice(eq + 1));
  } catch (err) {
    throw new Error(`the value is not valid YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  return { text: assignment, path, value };
}

/**
 * Applies an override to the plain object read from the file. It may add keys (the validation
 * then judges them like keys of the file), but not steps: a typo in a step name would otherwise
 * become a new, half-declared step.
 */
export function applyOverride(target: unknown, override: Override): unknown {
  const { path, value } = override;
  const root = (target ?? {}) as Record<PathKey, unknown>;
  const steps = root.steps;
  if (path[0] === 'steps' && path.length > 1 && steps && typeof steps === 'object' && !Object.hasOwn(steps, String(path[1]))) {
    const names = Object.keys(steps);
    throw new Error(`there is no step "${String(path[1])}"${didYouMean(String(path[1]), names)} (steps: ${names.join(', ')})`);
  }
  let node: Record<PathKey, unknown> = root;
  path.forEach((key, i) => {
    if (Array.isArray(node) && typeof key === 'number' && key > node.length) {
      throw new Error(`${pathText(path.slice(0, i))} has ${node.length} items; index ${key} would leave a gap`);
    }
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const child = Object.hasOwn(node, key) ? node[key] : undefined;
    if (child === undefined || child === null) {
      node[key] = typeof path[i + 1] === 'number' ? [] : {};
    } else if (typeof child !== 'object') {
      throw new Error(`${pathText(path.slice(0, i + 1))} is ${JSON.stringify(child)}, not a mapping or a list`);
    }
    node = node[key] as Record<PathKey, unknown>;
  });
  return root;
}

function pathText(path: PathKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${key}` : key), '');
}

function parsePath(text: string): PathKey[] {
  if (!/^[^.[\]=]+(\.[^.[\]=]+|\[\d+\])*$/.test(text)) throw new Error(`"${text}" is not a path like steps.<step>.with.epochs`);
  return [...text.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
}

/** Whether `inner` is `outer` or lies inside it. */
export function isWithin(inner: readonly PathKey[], outer: readonly PathKey[]): boolean {
  return outer.length <= inner.length && outer.every((key, i) => String(key) === String(inner[i]));
}
