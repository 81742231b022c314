import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parse as parseYaml } from 'yaml';
import { JSON_SCHEMA_FILE, pipelineJsonSchemaText } from '../../pipeline/json-schema';
import { repoRoot } from '../helpers/fixtures';

/** The published JSON Schema: what editors check pipeline files with as they are typed. */

const committed = readFileSync(join(repoRoot, JSON_SCHEMA_FILE), 'utf8');
const pipelines = readdirSync(join(repoRoot, 'pipelines')).filter((f) => f.endsWith('.yaml'));
const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(committed) as object);
const errorsOf = (doc: unknown) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`));

describe(`${JSON_SCHEMA_FILE}`, () => {
  it('is what the zod schema generates (after a schema change, run `npm run schema`)', () => {
    expect(committed).toBe(pipelineJsonSchemaText());
  });

  it.each(pipelines)('is referenced by pipelines/%s for editors', (file) => {
    const first = readFileSync(join(repoRoot, 'pipelines', file), 'utf8').split('\n')[0];
    expect(first).toBe('# yaml-language-server: $schema=../schema/pipeline.schema.json');
  });

  it.each(pipelines)('accepts pipelines/%s', (file) => {
    expect(errorsOf(parseYaml(readFileSync(join(repoRoot, 'pipelines', file), 'utf8')))).toEqual([]);
  });

  const step = (decl: object) => ({ name: 'x', steps: { s: decl } });
  it.each([
    ['an unknown parameter of the step type', step({ uses: 'train', with: { hiden: 8 } }), '/steps/s/with must NOT have additional properties'],
    ['a matrix value of the wrong type', step({ uses: 'train', matrix: { seed: [1, 'one'] } }), '/steps/s/matrix/seed/1 must be integer'],
    ['a matrix axis that is not a parameter', step({ uses: 'train', matrix: { poolng: ['last'] } }), '/steps/s/matrix must NOT have additional properties'],
    ['a matrix on a step type without trials', step({ uses: 'dataset', matrix: { limit: [1] } }), '/steps/s/matrix boolean schema is false'],
    [
      'a pooling variant that does not exist',
      step({ uses: 'train', with: { pooling: 'avg' } }),
      '/steps/s/with/pooling must be equal to one of the allowed values',
    ],
    ['an unknown step type', step({ uses: 'trian' }), '/steps/s/uses must be equal to one of the allowed values'],
    ['an unknown key of a step', step({ uses: 'padding', neds: [] }), '/steps/s must NOT have additional properties'],
  ])('rejects %s, as the CLI does', (_name, doc, error) => {
    expect(errorsOf(doc)).toContain(error);
  });
});
