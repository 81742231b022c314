import { z } from 'zod';

/**
 * Search spaces: how one hyper-parameter may vary when a sweep searches instead of enumerating.
 * The zod schemas are the one source of truth (the pipeline schema embeds `searchSpaceSchema`, so
 * its problems come out with the file's line and the parameter's path); everything below them is
 * plain arithmetic on the parsed shapes.
 */

const finite = z.number().refine(Number.isFinite, 'expected a finite number');

const uniformSpec = z.strictObject({ type: z.literal('uniform'), low: finite, high: finite }).describe('A real number drawn evenly from [low, high].');

const loguniformSpec = z
  .strictObject({ type: z.literal('loguniform'), low: finite, high: finite })
  .describe('A positive real number whose logarithm is drawn evenly: for learning rates and weight decays.');

const intSpec = z
  .strictObject({
    type: z.literal('int'),
    low: z.number().int(),
    high: z.number().int(),
    step: z.number().int().positive().default(1).describe('Distance between two allowed values (default 1).'),
  })
  .describe('An integer among low, low + step, …, high.');

export const choiceValue = z.union([z.string(), z.number(), z.boolean()]);
export type ChoiceValue = z.infer<typeof choiceValue>;

const choiceSpec = z
  .strictObject({ type: z.literal('choice'), values: z.array(choiceValue).min(1, 'a choice needs at least one value') })
  .describe('One of the listed values, with no order among them.');

export const paramSpecSchema = z
  .discriminatedUnion('type', [uniformSpec, loguniformSpec, intSpec, choiceSpec])
  .superRefine((spec, ctx) => {
    const problem = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    switch (spec.type) {
      case 'uniform':
        if (!(spec.low < spec.high)) problem('high', `must be greater than low (${spec.low}), got ${spec.high}`);
        break;
      case 'loguniform':
        if (!(spec.low > 0)) problem('low', `must be positive for a log scale, got ${spec.low}; use type: uniform for ranges that include 0`);
        if (!(spec.low < spec.high)) problem('high', `must be greater than low (${spec.low}), got ${spec.high}`);
        break;
      case 'int':
        if (!(spec.low <= spec.high)) problem('high', `must be at least low (${spec.low}), got ${spec.high}`);
        else if ((spec.high - spec.low) % spec.step !== 0) {
          problem(
            'high',
            `high − low (${spec.high - spec.low}) must be a multiple of step (${spec.step}); e.g. high: ${spec.high - ((spec.high - spec.low) % spec.step)}`,
          );
        }
        break;
      case 'choice': {
        const seen = new Set<string>();
        spec.values.forEach((v, i) => {
          const key = JSON.stringify(v);
          if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['values', i], message: `${key} is listed twice` });
          seen.add(key);
        });
        break;
      }
    }
  })
  .describe('How one parameter is searched: uniform, loguniform, int (with step) or choice.');

export type ParamSpec = z.infer<typeof paramSpecSchema>;

export const searchSpaceSchema = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'parameter names are letters, digits and "_"'), paramSpecSchema)
  .refine((space) => Object.keys(space).length > 0, 'a search space needs at least one parameter')
  .describe('Parameters searched by the sampler, by name (a parameter is either a matrix axis or searched, not both).');

/** Parsed search space: parameter name → how it varies. */
export type SearchSpace = z.infer<typeof searchSpaceSchema>;

export type ParamValue = ChoiceValue;
export type Params = Record<string, ParamValue>;

/** A problem with a search declaration, located by its path (the pipeline loader adds file:line). */
export interface SpaceProblem {
  path: string;
  message: string;
}

export class SearchSpaceError extends Error {
  override name = 'SearchSpaceError';
  constructor(readonly problems: SpaceProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  }
}

function joinPath(base: string, keys: ReadonlyArray<PropertyKey>): string {
  return keys.reduce<string>((out, k) => (typeof k === 'number' ? `${out}[${k}]` : out ? `${out}.${String(k)}` : String(k)), base);
}

/** Parses a search space on its own (outside a pipeline), naming each problem by its path under `at`. */
export function parseSearchSpace(raw: unknown, at = 'search'): SearchSpace {
  const result = searchSpaceSchema.safeParse(raw);
  if (!result.success) throw new SearchSpaceError(result.error.issues.map((i) => ({ path: joinPath(at, i.path), message: i.message })));
  return result.data;
}

/** Parameter names in the fixed order every sampler uses: sorted, so reordering a file changes no suggestion. */
export function paramNames(space: SearchSpace): string[] {
  return Object.keys(space).sort();
}

/** The value at position `u` ∈ [0, 1) of a parameter's range: what random and quasi-random samplers draw. */
export function fromUnit(spec: ParamSpec, u: number): ParamValue {
  switch (spec.type) {
    case 'uniform':
      return spec.low + u * (spec.high - spec.low);
    case 'loguniform':
      return Math.exp(Math.log(spec.low) + u * (Math.log(spec.high) - Math.log(spec.low)));
    case 'int': {
      const count = (spec.high - spec.low) / spec.step + 1;
      return spec.low + spec.step * Math.min(count - 1, Math.floor(u * count));
    }
    case 'choice':
      return spec.values[Math.min(spec.values.length - 1, Math.floor(u * spec.values.length))]!;
  }
}

/** Whether a value lies in a parameter's space (a suggestion read back from an artifact is checked with this). */
export function contains(spec: ParamSpec, value: unknown): boolean {
  switch (spec.type) {
    case 'uniform':
    case 'loguniform':
      return typeof value === 'number' && value >= spec.low && value <= spec.high;
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && value >= spec.low && value <= spec.high && (value - spec.low) % spec.step === 0;
    case 'choice':
      return spec.values.some((v) => v === value);
  }
}

/**
 * A grid beside a search: each combination of the matrix axes (e.g. `pooling`) is one cell, and
 * each cell runs its own search over the searched parameters (e.g. `lr`, `weight_decay`), so every
 * variant is tuned on equal terms. A parameter is either an axis or searched, never both.
 */
export interface GridSearch {
  cells: Params[];
  space: SearchSpace;
}

export function composeWithGrid(matrix: Record<string, readonly ParamValue[]>, space: SearchSpace, at = 'search'): GridSearch {
  const problems: SpaceProblem[] = [];
  for (const name of paramNames(space)) {
    if (name in matrix) problems.push({ path: joinPath(at, [name]), message: `"${name}" is also a matrix axis; list it in matrix or in search, not both` });
  }
  if (problems.length) throw new SearchSpaceError(problems);
  let cells: Params[] = [{}];
  for (const [axis, values] of Object.entries(matrix)) cells = cells.flatMap((cell) => values.map((v) => ({ ...cell, [axis]: v })));
  return { cells, space };
}

/** A stable name for a grid cell, e.g. `pooling=mean`: the key of that cell's search history. */
export function cellKey(cell: Params): string {
  return Object.keys(cell)
    .sort()
    .map((k) => `${k}=${String(cell[k])}`)
    .join(',');
}
