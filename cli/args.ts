import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Bad arguments: the CLI prints the message (with the command's usage) and exits with 2. */
export class UsageError extends Error {}

/** `--help` was answered: the CLI exits with 0 once the help is written out. */
export class HelpShown extends Error {}

/** People read stderr; stdout carries results (`--json`, ids) for scripts. */
export const say = (line: string) => process.stderr.write(`${line}\n`);

export type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a command's arguments strictly (an unknown flag is a usage error, not silently ignored)
 * and answers `--help` / `-h` with the command's help.
 */
export function parse<const O extends Options>(args: string[], options: O, help: string) {
  const config = { args, options: { ...options, help: { type: 'boolean', short: 'h' } } as O, allowPositionals: true, strict: true } as const;
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${help}`);
  }
  if ((parsed.values as Record<string, unknown>).help) {
    process.stdout.write(`${help}\n`);
    throw new HelpShown();
  }
  return parsed;
}

/** The one positional argument a command takes (a file, a sweep id). */
export function single(positionals: string[], what: string, help: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected ${what}\n\n${help}`);
  if (positionals[0]!.trim() === '') throw new UsageError(`expected ${what}, got an empty argument\n\n${help}`);
  return positionals[0]!;
}

export function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
