/**
 * The Dockerfile and CI's own steps, read as data: the image must be built by the commands CI
 * runs (.ci/run and the package.json scripts it reaches), so that what CI tests is what ships.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/fixtures';

export interface Instruction {
  keyword: string;
  args: string;
  /** The build stage the instruction belongs to: its AS name, or #n for the n-th unnamed one. */
  stage: string;
  line: number;
}

/** Instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const result: Instruction[] = [];
  let stage = '';
  let froms = 0;
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && !pending)) return;
    const current = pending ?? { text: '', line: i + 1 };
    const continues = line.endsWith('\\');
    current.text += ` ${continues ? line.slice(0, -1) : line}`;
    if (continues) {
      pending = current;
      return;
    }
    pending = undefined;
    const [, keyword = '', args = ''] = /^\s*(\S+)\s*(.*)$/.exec(current.text) ?? [];
    if (keyword.toUpperCase() === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? `#${froms++}`;
    result.push({ keyword: keyword.toUpperCase(), args: args.trim(), stage, line: current.line });
  });
  return result;
}

/** The ENV of the image's final stage (what the containers run with). */
export function finalStageEnv(instructions: Instruction[]): Record<string, string> {
  const last = instructions.filter((i) => i.keyword === 'FROM').at(-1)?.stage;
  return Object.fromEntries(
    instructions
      .filter((i) => i.keyword === 'ENV' && i.stage === last)
      .flatMap((i) => i.args.split(/\s+/))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

/** One shell command of a RUN: its words, without leading VAR=value assignments. */
export interface Command {
  env: Record<string, string>;
  words: string[];
  text: string;
}

export function commandsOf(run: string): Command[] {
  return run
    .split(/&&|\|\||;/)
    .map((c) => c.trim())
    .filter((c) => c !== '')
    .map((text) => {
      const words = text.split(/\s+/);
      const env: Record<string, string> = {};
      while (words[0] !== undefined && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) {
        const [name = '', ...value] = words.shift()!.split('=');
        env[name] = value.join('=');
      }
      return { env, words, text };
    });
}

export const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  bin: Record<string, string>;
  engines: { node: string };
  devDependencies?: Record<string, string>;
};

/**
 * What CI runs: the commands of .ci/run, and every package.json script they reach (with npm's
 * pre/post hooks and nested `npm run`). Returns the script names and all command texts.
 */
export function ciReach(): { scripts: Set<string>; texts: string[] } {
  const ci = readFileSync(join(repoRoot, '.ci', 'run'), 'utf8')
    .split('\n')
    .filter((l) => !l.trim().startsWith('#'))
    .join('\n');
  const scripts = new Set<string>();
  const texts = [ci];
  const visit = (name: string) => {
    if (scripts.has(name) || packageJson.scripts[name] === undefined) return;
    scripts.add(name);
    const body = packageJson.scripts[name]!;
    texts.push(body);
    for (const m of body.matchAll(/npm (?:run )?([\w:-]+)/g)) visit(m[1]!);
  };
  const runs = (text: string) => [...text.matchAll(/\bnpm (?:run ([\w:-]+)|(test|start))\b/g)].map((m) => (m[1] ?? m[2])!);
  for (const name of runs(ci)) {
    visit(`pre${name}`);
    visit(name);
    visit(`post${name}`);
  }
  return { scripts, texts };
}

/** Repository files a command runs (`bash scripts/x.sh`, `node dist/…`, `ml/kernel/build.sh`). */
export function repoPathsIn(command: Command): string[] {
  return command.words.filter((w) => /^(\.\/)?[\w.-]+\/[\w./-]+\.(sh|js|ts|py)$/.test(w)).map((w) => w.replace(/^\.\//, ''));
}

export const exists = (path: string) => existsSync(join(repoRoot, path));

const GLOB: Record<string, string> = { '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' };

/** .dockerignore's patterns as matchers on paths relative to the context root. */
export function dockerignore(): (path: string) => boolean {
  const patterns = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (patterns.some((p) => p.startsWith('!'))) throw new Error('.dockerignore: exceptions (!) are not understood by this test');
  const regexes = patterns.map((p) => {
    const body = p
      .replace(/^\/+|\/+$/g, '')
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((part) => GLOB[part] ?? part.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
      .join('');
    // A pattern excludes what it names and everything below it.
    return new RegExp(`^${body}(?:/.*)?$`);
  });
  return (path) => regexes.some((r) => r.test(path));
}
