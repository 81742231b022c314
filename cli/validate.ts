import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { writeFileAtomic } from '../artifacts/store';
import { pipelineJsonSchemaText } from '../pipeline/json-schema';
import { loadPipeline, PipelineError } from '../pipeline/load';
import { sweepIdFor } from '../pipeline/plan';
import { parse, single, UsageError, writeJson } from './args';

const VALIDATE_HELP = `Usage: sweeps validate <pipeline.yaml> [--param <name>=<value>]... [--set <path>=<value>]... [--json]

Checks a pipeline file (and overrides) and prints its plan: steps, their order and trials. Submits
nothing and needs no server. Every problem is reported with file:line:column and its path.

  --param <name>=<value> set a parameter the pipeline declares under params: (repeatable)
  --set <path>=<value>   override a value, as sweep does (repeatable)
  --json                 print {valid, sweepId, plan} or {valid: false, problems} on stdout

Exit codes: 0 valid, 2 problems found.`;

export async function validateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { param: { type: 'string', multiple: true }, set: { type: 'string', multiple: true }, json: { type: 'boolean' } },
    VALIDATE_HELP,
  );
  const file = single(positionals, 'one pipeline file', VALIDATE_HELP);
  let plan;
  try {
    plan = loadPipeline(file, { set: values.set, params: values.param });
  } catch (err) {
    // With --json the problems are data too; the readable form still goes to stderr.
    if (err instanceof PipelineError && values.json) writeJson({ valid: false, file, problems: err.problems });
    throw err;
  }
  if (values.json) {
    writeJson({ valid: true, file, sweepId: sweepIdFor(plan), plan });
    return 0;
  }
  const out = [`${file}: valid. Sweep id ${sweepIdFor(plan)}`];
  for (const [name, value] of Object.entries(plan.params ?? {})) out.push(`  param ${name} = ${JSON.stringify(value)}`);
  for (const step of plan.steps) {
    const needs = step.needs.length ? ` needs ${step.needs.join(', ')}` : '';
    const u = step.until;
    const sr = step.search;
    const trials = sr
      ? `, ${sr.sampler} search (seed ${sr.seed}) of ${sr.trials} trials${sr.cells.length > 1 ? ` in each of ${sr.cells.length} cells of ${Object.keys(sr.grid).join(' × ')}` : ''} over ${Object.keys(sr.space).join(', ')} (${step.concurrency} at a time), ${sr.direction === 'maximize' ? 'maximising' : 'minimising'} ${sr.metric}${sr.prune ? `, pruned by ${sr.prune.rule} (paused trials can be promoted)` : ''}`
      : u
        ? `, up to ${step.trials!.length} trials (${step.concurrency} at a time): seeds until ${u.compare} is decided against ${String(u.baseline)} (${u.confidence * 100}% anytime-valid, margin ${u.margin} points, ${u.minSeeds}–${u.maxSeeds} seeds)`
        : step.trials
          ? `, ${step.trials.length} trials (${step.concurrency} at a time)`
          : '';
    out.push(`  ${step.name} (${step.uses})${needs}${trials}`);
    for (const trial of step.trials ?? []) out.push(`    ${trial.id}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

const SCHEMA_HELP = `Usage: sweeps schema [--out <file>]

Prints the JSON Schema of pipeline files (generated from the same schema the CLI validates with),
or writes it to a file. Editors use it through the comment at the top of a pipeline file:
  # yaml-language-server: $schema=../schema/pipeline.schema.json`;

export async function schemaCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { out: { type: 'string' } }, SCHEMA_HELP);
  if (positionals.length > 0) throw new UsageError(SCHEMA_HELP);
  const text = pipelineJsonSchemaText();
  if (values.out) await writeOutput(values.out, text);
  else process.stdout.write(text);
  return 0;
}

/** Writes atomically (temp name, then rename); a bad --out names the folder and what to do. */
async function writeOutput(out: string, text: string): Promise<void> {
  const folder = dirname(resolve(out));
  if (!existsSync(folder)) throw new UsageError(`--out ${out}: the folder ${folder} does not exist; create it or choose another path`);
  try {
    await writeFileAtomic(resolve(out), text);
  } catch (err) {
    throw new UsageError(`--out ${out}: cannot write it (${(err as Error).message}); choose a writable path`);
  }
}
