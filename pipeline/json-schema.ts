import { z } from 'zod';
import { pipelineSchema } from './schema';
import { stepModules } from '../activities/registry';

type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema> };

/** Where the published schema lives, relative to the project root; pipeline files point at it. */
export const JSON_SCHEMA_FILE = 'schema/pipeline.schema.json';

/**
 * The pipeline schema as JSON Schema (draft-07, what yaml-language-server and most editors
 * understand), generated from the zod schemas so that editors check exactly what the CLI checks,
 * less what JSON Schema cannot say (cross-field rules, the DAG).
 *
 * The zod schema keeps `with:` open (its type depends on `uses:`, and the CLI checks it in a
 * second pass to report every step's problems); here each step type adds its parameters through
 * if/then on `uses`, so that an editor also completes and checks `with:` and `matrix:`.
 */
export function pipelineJsonSchema(): JsonSchema {
  const options = { target: 'draft-7', io: 'input', unrepresentable: 'any' } as const;
  const root = z.toJSONSchema(pipelineSchema, options) as JsonSchema;
  const step = (root.properties?.steps as JsonSchema).additionalProperties as JsonSchema;
  step.allOf = stepModules.map(({ type, params: schema, matrix: fansOut }) => {
    const params = z.toJSONSchema(schema, options) as JsonSchema;
    delete params.$schema;
    const fields = params.properties ?? {};
    const matrix: JsonSchema | false = fansOut
      ? {
          type: 'object',
          minProperties: 1,
          additionalProperties: false,
          properties: Object.fromEntries(
            Object.entries(fields).map(([key, field]) => [
              key,
              { type: 'array', minItems: 1, items: withoutDefault(field), description: `Values of ${key}, one trial each.` },
            ]),
          ),
        }
      : false;
    return {
      if: { properties: { uses: { const: type } }, required: ['uses'] },
      then: { properties: { with: params, matrix } },
    };
  });
  return { $schema: root.$schema, title: 'durable-sweeps pipeline', ...root };
}

function withoutDefault(field: JsonSchema): JsonSchema {
  const { default: _ignored, ...rest } = field;
  return rest;
}

/** The file's text as written to disk: stable key order, two-space indent, final newline. */
export function pipelineJsonSchemaText(): string {
  return `${JSON.stringify(pipelineJsonSchema(), null, 2)}\n`;
}
