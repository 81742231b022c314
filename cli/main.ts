#!/usr/bin/env node
import { ConfigError } from '../client/config';
import { PipelineError } from '../pipeline/load';
import { HelpShown, say, UsageError } from './args';
import { cancelCommand, listCommand, statusCommand } from './inspect';
import { serverCommand, setupCommand, workerCommand } from './ops';
import { resumeCommand, sweepCommand, watchCommand } from './run';
import { schemaCommand, validateCommand } from './validate';

const USAGE = `sweeps — ML experiment sweeps as durable Temporal workflows

Usage: sweeps <command> [options]

Commands:
  sweep <pipeline.yaml>     validate, submit and watch a sweep (starts a local server and worker if needed)
  watch <sweep-id>          attach to a sweep and show its progress until it ends
  status <sweep-id>         a sweep's state, its trials and its effective pipeline
  list                      recent sweeps
  cancel <sweep-id>         stop a running sweep (its trials stop; finished work is kept)
  resume <sweep-id>         run a failed or stopped sweep again: finished work is reused
  validate <pipeline.yaml>  check a pipeline file and print its plan; submits nothing
  worker                    run a worker (for more machines or processes)
  server [start|stop]       start (or reuse) / stop the embedded Temporal dev server and Web UI
  schema                    print the JSON Schema of pipeline files (for editors)
  setup                     obtain the Temporal CLI and build tfjs-node where possible (idempotent)

Run \`sweeps <command> --help\` for a command's options.
Exit codes: 0 success, 1 the sweep failed or was cancelled, 2 bad input (nothing submitted), 130 detached (Ctrl-C),
143 detached by SIGTERM (the sweep goes on; a worker in the process stops).
Environment: TEMPORAL_ADDRESS (use that server instead of the embedded one), SWEEPS_HOME (state folder,
default ./.sweeps), SWEEPS_DATA (local copy of the dataset archive), SWEEPS_TRAIN_SLOTS (default: cores).`;

const commands: Record<string, (args: string[]) => Promise<number>> = {
  sweep: sweepCommand,
  watch: watchCommand,
  status: statusCommand,
  list: listCommand,
  cancel: cancelCommand,
  resume: resumeCommand,
  validate: validateCommand,
  worker: workerCommand,
  server: serverCommand,
  schema: schemaCommand,
  setup: setupCommand,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    // `sweeps help <command>` is `sweeps <command> --help`; help for a command that does not exist is bad input.
    if (command === 'help' && rest[0] !== undefined) {
      const known = commands[rest[0]];
      if (!known) throw new UsageError(`help: unknown command "${rest[0]}"\n\n${USAGE}`);
      return known(['--help']);
    }
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  const run = commands[command];
  if (!run) throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
  return run(rest);
}

/**
 * Exits once stdout and stderr have been written out. A pipe that its reader drains slowly takes
 * writes asynchronously, and process.exit() would cut a large --json result short; the handles of
 * the Temporal connection would keep the process alive without an explicit exit.
 */
function exit(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exit, (err: unknown) => {
  if (err instanceof HelpShown) return exit(0);
  if (err instanceof PipelineError) {
    say(`${err.message}\n\n${err.problems.length} problem${err.problems.length > 1 ? 's' : ''} in ${err.file}; nothing was submitted.`);
    return exit(2);
  }
  if (err instanceof UsageError || err instanceof ConfigError) {
    say(err.message);
    return exit(2);
  }
  say(`error: ${(err as Error).message ?? String(err)}`);
  if (process.env.SWEEPS_DEBUG) say((err as Error).stack ?? '');
  exit(1);
});
