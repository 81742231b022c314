import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeZip } from '../data/helpers';
import { freePort, GESTURES_MD5 } from '../helpers/fixtures';
import { gesturesPipeline } from '../helpers/pipelines';
import { runCli, startTestServer } from '../helpers/processes';

/**
 * The bad-input catalogue: everything a user can get wrong — pipeline files, --set values, CLI
 * arguments, environment, data files, archives, unreachable servers, the artifact folder — run
 * through the real CLI against a real server. Each must end with a non-zero exit, a message that
 * names the thing and says what to do, and nothing half-written: no temp file left, no artifact
 * committed for the step that failed, and no sweep submitted when the input was refused up front.
 */

jest.setTimeout(10 * 60_000);

interface Case {
  name: string;
  /** CLI arguments; `dir` is the case's own folder (its files and its SWEEPS_HOME). */
  args: (dir: string) => string[];
  env?: (dir: string) => NodeJS.ProcessEnv;
  /** 2: refused before anything ran (nothing submitted); 1: the run failed. */
  exit: 1 | 2;
  /** The message names the thing that is wrong... */
  names: RegExp;
  /** ...and says what to do about it. */
  advice: RegExp;
  /** Artifact types that must not have been committed (the step that failed). */
  uncommitted?: string[];
  /** Runs the case without the test server's address (for the unreachable-server case). */
  ownServer?: boolean;
}

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

const VALID = gesturesPipeline({
  name: 'catalogue',
  limit: 200,
  matrix: '{ pooling: [last, mean], seed: [1] }',
  train: '{ epochs: 1, hidden: 8, train_batches: 2, valid_batches: 1 }',
});

/** Writes a file into the case folder and returns its path. */
function put(dir: string, name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** A pipeline of a download step tried once (its failure is the point), and `more` steps after it. */
function downloadOnly(dir: string, name: string, url: string, digest: string, more = ''): string {
  return put(
    dir,
    `${name}.yaml`,
    `name: ${name}
steps:
  download:
    uses: download
    with: { urls: ["${url}"], md5: ${digest} }
    retry: { max_attempts: 1 }
${more}`,
  );
}

/** Downloads `archive` (written into the case folder, a data root), then builds its dataset once. */
function archivePipeline(dir: string, name: string, archive: Buffer, datasetWith = ''): string {
  const zip = put(dir, `${name}.zip`, archive);
  const dataset = `  dataset:\n    uses: dataset\n    needs: [download]\n    retry: { max_attempts: 1 }\n${datasetWith}`;
  return downloadOnly(dir, name, pathToFileURL(zip).href, md5(archive), dataset);
}

const sequence = (rows: string[]) => rows.join('\n') + '\n';
/** A line as the dataset writes it: three timestamps, then x, y, z acceleration. */
const row = (i: number, z = '9.81') => `${1384186054309 + i} ${78952598976553 + i} ${1452892000000 + i} 0.1 -0.2 ${z}`;
const goodTree = (user: string) => [{ name: `gestures-dataset/${user}/01/` }, { name: `gestures-dataset/${user}/01/1.txt`, data: sequence([row(1), row(2)]) }];

const cases: Case[] = [
  // --- Pipeline files -------------------------------------------------------------------------
  {
    name: 'a pipeline file that does not exist',
    args: (d) => ['validate', join(d, 'nope.yaml')],
    exit: 2,
    names: /nope\.yaml/,
    advice: /no such file: check the path/,
  },
  {
    name: 'a folder instead of a pipeline file',
    args: (d) => ['validate', d],
    exit: 2,
    names: /cannot read the pipeline file/,
    advice: /name a \.yaml file in it/,
  },
  {
    name: 'an empty pipeline file',
    args: (d) => ['validate', put(d, 'empty.yaml', '')],
    exit: 2,
    names: /empty\.yaml/,
    advice: /expected a mapping/,
  },
  {
    name: 'a YAML syntax error',
    args: (d) => ['validate', put(d, 'syntax.yaml', 'name: x\nsteps: [\n')],
    exit: 2,
    names: /syntax\.yaml:\d+:\d+: not valid YAML/,
    advice: /must be sufficiently indented and end with a \]/,
  },
  {
    name: 'a misspelt top-level key',
    args: (d) => ['validate', put(d, 'typo.yaml', VALID.replace('name: catalogue', 'name: catalogue\nnmae: x'))],
    exit: 2,
    names: /typo\.yaml:2:1: nmae/,
    advice: /did you mean "name"/,
  },
  {
    name: 'steps that form a cycle',
    args: (d) => ['validate', put(d, 'cycle.yaml', VALID.replace('needs: [download]', 'needs: [download, padding]'))],
    exit: 2,
    names: /cycle\.yaml:\d+:\d+: steps\.\w+\.needs: the steps form a cycle: dataset → padding → dataset/,
    advice: /remove one of these needs/,
  },
  {
    name: 'an unknown step type',
    args: (d) => ['validate', put(d, 'uses.yaml', VALID.replace('uses: padding', 'uses: pading'))],
    exit: 2,
    names: /steps\.padding\.uses/,
    advice: /did you mean "padding"/,
  },
  {
    name: 'a matrix value of the wrong type',
    args: (d) => ['validate', put(d, 'matrix.yaml', VALID.replace('seed: [1]', 'seed: [1, x]'))],
    exit: 2,
    names: /steps\.train\.matrix\.seed\[1\]/,
    advice: /expected an integer/,
  },
  {
    name: 'a dataset root that leaves the archive',
    args: (d) => ['validate', put(d, 'root.yaml', VALID.replace('with: { limit: 200 }', 'with: { limit: 200, root: ../../../etc }'))],
    exit: 2,
    names: /steps\.dataset\.with\.root/,
    advice: /a relative path without "\.\."/,
  },
  {
    name: 'a download URL with credentials in it',
    args: (d) => ['validate', put(d, 'secret.yaml', VALID.replace(/urls: \["[^"]+"\]/, 'urls: ["https://me:hunter2@example.org/g.zip"]'))],
    exit: 2,
    names: /steps\.download\.with\.urls\[0\]/,
    advice: /credentials may not be in them/,
  },
  {
    name: 'a download URL of an unsupported scheme',
    args: (d) => ['validate', put(d, 'ftp.yaml', VALID.replace(/urls: \["[^"]+"\]/, 'urls: ["ftp://example.org/g.zip"]'))],
    exit: 2,
    names: /steps\.download\.with\.urls\[0\]/,
    advice: /use an http:\/\/, https:\/\/ or file: URL/,
  },
  {
    name: 'a sweep too large for one history',
    args: (d) => ['validate', put(d, 'huge.yaml', VALID.replace('seed: [1]', `seed: [${Array.from({ length: 600 }, (_, i) => i + 1).join(', ')}]`))],
    exit: 2,
    names: /would run 1200 trials/,
    advice: /Draw fewer with sample/,
  },
  // --- --set values ---------------------------------------------------------------------------
  {
    name: '--set with a value of the wrong type',
    args: (d) => ['validate', put(d, 'v.yaml', VALID), '--set', 'steps.train.with.epochs=many'],
    exit: 2,
    names: /--set steps\.train\.with\.epochs=many\): steps\.train\.with\.epochs/,
    advice: /expected an integer, got "many"/,
  },
  {
    name: '--set of a step that does not exist',
    args: (d) => ['validate', put(d, 'v.yaml', VALID), '--set', 'steps.trian.with.epochs=3'],
    exit: 2,
    names: /steps\.trian/,
    advice: /(needs|uses|did you mean|required)/,
  },
  {
    name: '--set without a value',
    args: (d) => ['validate', put(d, 'v.yaml', VALID), '--set', 'steps.train.with.epochs'],
    exit: 2,
    names: /--set steps\.train\.with\.epochs/,
    advice: /expected <path>=<value>/,
  },
  {
    name: '--set with a value that is not YAML',
    args: (d) => ['validate', put(d, 'v.yaml', VALID), '--set', 'steps.train.matrix.seed=[1'],
    exit: 2,
    names: /--set steps\.train\.matrix\.seed=\[1/,
    advice: /not valid YAML/,
  },
  // --- Hostile input (issue 17): refused before anything is submitted --------------------------
  {
    name: '--set reaching Object.prototype through __proto__',
    args: (d) => ['validate', put(d, 'v.yaml', VALID), '--set', '__proto__.polluted=1'],
    exit: 2,
    names: /--set __proto__\.polluted=1\): "__proto__" cannot be a key/,
    advice: /reach their prototype through it; rename it/,
  },
  {
    name: '--set reaching Object.prototype through constructor.prototype',
    args: (d) => ['validate', put(d, 'v.yaml', VALID), '--set', 'constructor.prototype.polluted=1'],
    exit: 2,
    names: /"constructor" cannot be a key/,
    advice: /rename it/,
  },
  {
    name: 'a step named __proto__',
    args: (d) => ['validate', put(d, 'proto.yaml', `${VALID}  __proto__:\n    uses: padding\n    needs: [dataset]\n`)],
    exit: 2,
    names: /proto\.yaml:\d+:3: steps\.__proto__: "__proto__" cannot be a key/,
    advice: /rename it/,
  },
  {
    name: 'a __proto__ key in with:',
    args: (d) => ['validate', put(d, 'with.yaml', VALID.replace('with: { limit: 200 }', 'with: { limit: 200, __proto__: { root: x } }'))],
    exit: 2,
    names: /with\.yaml:\d+:\d+: steps\.dataset\.with\.__proto__/,
    advice: /cannot be a key/,
  },
  {
    name: '--data with a password in its URL',
    args: (d) => ['sweep', put(d, 'v.yaml', VALID), '--data', 'https://me:hunter2@example.org/g.zip'],
    exit: 2,
    names: /\(--data https:\/\/me:hunter2@example\.org\/g\.zip\): steps\.download\.with\.urls\[0\]/,
    advice: /credentials may not be in them/,
  },
  {
    name: 'a report baseline that is not a value of the compared axis',
    args: (d) => ['validate', put(d, 'baseline.yaml', `${VALID}  report:\n    uses: report\n    needs: [train]\n    with: { baseline: lstm }\n`)],
    exit: 2,
    names: /baseline\.yaml:\d+:\d+: steps\.report\.with\.baseline/,
    advice: /is not a value of pooling in the matrix \(last, mean\): name one of them/,
  },
  {
    name: 'a report comparing a parameter that is not a matrix axis',
    args: (d) => ['validate', put(d, 'compare.yaml', `${VALID}  report:\n    uses: report\n    needs: [train]\n    with: { compare: hidden }\n`)],
    exit: 2,
    names: /steps\.report\.with\.compare/,
    advice: /is not a matrix axis of the trials it reads \(train: pooling, seed\): compare one of those axes/,
  },
  {
    name: 'a number too large for a double (1e999)',
    args: (d) => ['validate', put(d, 'inf.yaml', VALID.replace('epochs: 1,', 'epochs: 1, lr: 1e999,'))],
    exit: 2,
    names: /steps\.train\.with\.lr/,
    advice: /expected a number, got infinity \(\.inf, or a number too large for a double/,
  },
  {
    name: 'a .nan value',
    args: (d) => ['validate', put(d, 'nan.yaml', VALID.replace('seed: [1]', 'seed: [1, .nan]'))],
    exit: 2,
    names: /steps\.train\.matrix\.seed\[1\]/,
    advice: /got not a number \(\.nan\)/,
  },
  {
    name: 'a pipeline file that is not UTF-8',
    args: (d) => ['validate', put(d, 'latin1.yaml', Buffer.concat([Buffer.from('description: caf'), Buffer.from([0xe9]), Buffer.from(`\n${VALID}`)]))],
    exit: 2,
    names: /latin1\.yaml:1:\d+: not valid UTF-8 \(byte 16 of the file\)/,
    advice: /save the file as UTF-8/,
  },
  {
    name: 'a sample larger than its grid',
    args: (d) => ['validate', put(d, 'sample.yaml', VALID.replace('concurrency: 2', 'concurrency: 2\n    sample: { count: 5 }'))],
    exit: 2,
    names: /steps\.train\.sample\.count: draws 5 trials from a grid of 2 \(2 pooling × 1 seed\)/,
    advice: /lower it, or remove sample: to run the whole grid/,
  },
  {
    name: 'three matrix axes of 1,000 values (counted, not built)',
    args: (d) => {
      const values = `[${Array.from({ length: 1000 }, (_, i) => i + 1).join(', ')}]`;
      return [
        'validate',
        put(
          d,
          'grid.yaml',
          VALID.replace('matrix: { pooling: [last, mean], seed: [1] }', `matrix: { seed: ${values}, layers: ${values}, batch_size: ${values} }`),
        ),
      ];
    },
    exit: 2,
    names: /steps\.train\.matrix: 1000 seed × 1000 layers × 1000 batch_size: the sweep would run 1000000000 trials/,
    advice: /Draw fewer with sample/,
  },
  {
    name: 'a description too long for the Temporal UI',
    args: (d) => ['validate', put(d, 'long.yaml', VALID.replace('name: catalogue', `name: catalogue\ndescription: ${'word '.repeat(400_000)}`))],
    exit: 2,
    names: /long\.yaml:2:1: description/,
    advice: /expected at most 500 characters/,
  },
  {
    name: 'a pipeline name too long for the server',
    args: (d) => ['sweep', put(d, 'name.yaml', VALID.replace('name: catalogue', `name: ${'n'.repeat(1000)}`))],
    exit: 2,
    names: /name: makes the sweep id 1015 characters long/,
    advice: /the server accepts 1000: shorten the name/,
  },
  {
    name: 'a pipeline name that makes trial workflow ids too long for the server',
    args: (d) => ['sweep', put(d, 'trialname.yaml', VALID.replace('name: catalogue', `name: ${'t'.repeat(970)}`))],
    exit: 2,
    names: /steps\.train\.matrix: trial workflow id sweep-t+… would be 1006 characters/,
    advice: /shorten the pipeline name or the matrix values that name the trials/,
  },
  {
    name: 'a YAML alias bomb',
    args: (d) => {
      const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
      for (let i = 1; i < 9; i++)
        levels.push(
          `l${i}: &l${i} [${Array(9)
            .fill(i === 1 ? '*a' : `*l${i - 1}`)
            .join(', ')}]`,
        );
      return ['validate', put(d, 'bomb.yaml', `${levels.join('\n')}\n${VALID}`)];
    },
    exit: 2,
    names: /bomb\.yaml: cannot be read/,
    advice: /expand fewer aliases/,
  },
  {
    name: '--param the pipeline does not declare',
    args: (d) => ['validate', put(d, 'v.yaml', VALID), '--param', 'epochs=3'],
    exit: 2,
    names: /\(--param epochs=3\): params: there is no parameter "epochs"/,
    advice: /this pipeline declares no params/,
  },
  {
    name: '--param of the wrong type',
    args: (d) => [
      'validate',
      put(
        d,
        'p.yaml',
        VALID.replace('name: catalogue', 'name: catalogue\nparams:\n  epochs: { type: integer, default: 1 }').replace(
          'epochs: 1,',
          'epochs: "${{ params.epochs }}",',
        ),
      ),
      '--param',
      'epochs=three',
    ],
    exit: 2,
    names: /\(--param epochs=three\): params\.epochs/,
    advice: /expected an integer, got "three"/,
  },
  // --- CLI arguments --------------------------------------------------------------------------
  { name: 'an unknown command', args: () => ['sweeep'], exit: 2, names: /unknown command "sweeep"/, advice: /Commands:/ },
  { name: 'an unknown flag', args: (d) => ['sweep', put(d, 'v.yaml', VALID), '--detatch'], exit: 2, names: /--detatch/, advice: /Usage: sweeps sweep/ },
  { name: 'a missing pipeline argument', args: () => ['sweep'], exit: 2, names: /expected one pipeline file/, advice: /Usage: sweeps sweep <pipeline\.yaml>/ },
  { name: 'worker --slots 0', args: () => ['worker', '--slots', '0'], exit: 2, names: /--slots 0/, advice: /expected a positive integer/ },
  { name: 'worker --role of no queue', args: () => ['worker', '--role', 'gpu'], exit: 2, names: /--role gpu/, advice: /expected io or train/ },
  {
    name: '--data naming a file that does not exist',
    args: (d) => ['sweep', put(d, 'v.yaml', VALID), '--data', join(d, 'missing.zip')],
    exit: 2,
    names: /--data .*missing\.zip: no such file/,
    advice: /no such file/,
  },
  {
    name: 'schema --out into a folder that does not exist',
    args: (d) => ['schema', '--out', join(d, 'no', 'such', 'schema.json')],
    exit: 2,
    names: /--out .*schema\.json/,
    advice: /create it or choose another path/,
  },
  {
    name: 'resume of a sweep that does not exist',
    args: () => ['resume', 'sweep-nothing-here-00000000'],
    exit: 2,
    names: /sweep-nothing-here-00000000/,
    advice: /sweeps list/,
  },
  // --- Environment ----------------------------------------------------------------------------
  {
    name: 'SWEEPS_TRAIN_SLOTS that is not a number',
    args: () => ['worker'],
    env: () => ({ SWEEPS_TRAIN_SLOTS: 'lots' }),
    exit: 1,
    names: /SWEEPS_TRAIN_SLOTS=lots/,
    advice: /unset SWEEPS_TRAIN_SLOTS for the default/,
  },
  {
    name: 'an unreachable Temporal server',
    args: () => ['status', 'sweep-x'],
    env: () => ({ TEMPORAL_ADDRESS: `127.0.0.1:${unusedPort}` }),
    ownServer: true,
    exit: 1,
    names: new RegExp(`cannot reach the Temporal server at 127\\.0\\.0\\.1:\\d+`),
    advice: /start that server .* or unset TEMPORAL_ADDRESS/,
  },
  // --- Data files and archives (the sweep runs and fails; its error names the cause) ----------
  {
    name: 'an archive whose content is not what the pipeline declares',
    args: (d) => {
      const wrong = put(d, 'other.zip', makeZip(goodTree('U02')));
      return ['sweep', downloadOnly(d, 'digest', pathToFileURL(wrong).href, md5(makeZip(goodTree('U01'))))];
    },
    exit: 1,
    names: /other\.zip/,
    advice: /no mirror served the declared content.*expected md5/,
    uncommitted: ['download'],
  },
  {
    name: 'a file: source outside the data roots',
    args: (d) => ['sweep', downloadOnly(d, 'outside', 'file:///etc/hostname', GESTURES_MD5)],
    exit: 1,
    names: /\/etc\/hostname is outside the data roots/,
    advice: /add the folder to SWEEPS_DATA_ROOTS or move the file/,
    uncommitted: ['download'],
  },
  {
    name: 'a download server that does not answer',
    args: (d) => ['sweep', downloadOnly(d, 'unreachable', `http://127.0.0.1:${unusedPort}/gestures-dataset.zip`, GESTURES_MD5)],
    exit: 1,
    names: new RegExp(`http://127\\.0\\.0\\.1:\\d+/gestures-dataset\\.zip`),
    advice: /ECONNREFUSED|refused/,
    uncommitted: ['download'],
  },
  {
    name: 'an archive that is not a zip',
    args: (d) => ['sweep', archivePipeline(d, 'notzip', Buffer.from('this is not a zip archive at all'))],
    exit: 1,
    names: /notzip\.zip/,
    advice: /zip/i,
    uncommitted: ['download'],
  },
  {
    name: 'an archive with an entry that escapes its folder',
    args: (d) => ['sweep', archivePipeline(d, 'escape', makeZip([...goodTree('U01'), { name: '../../escaped.txt', data: 'x' }]))],
    exit: 1,
    names: /\.\.\/\.\.\/escaped\.txt/,
    advice: /(outside|escape|refus)/i,
    uncommitted: ['download'],
  },
  {
    name: 'a data file with a value that is not a number',
    args: (d) => [
      'sweep',
      archivePipeline(d, 'nan', makeZip([...goodTree('U01'), { name: 'gestures-dataset/U01/01/2.txt', data: sequence([row(1), row(2, 'oops')]) }])),
    ],
    exit: 1,
    names: /U01\/01\/2\.txt.*line 2/,
    advice: /oops/,
    uncommitted: ['dataset'],
  },
  {
    name: 'a by-user split naming a user who is not in the data',
    args: (d) => [
      'sweep',
      archivePipeline(d, 'users', makeZip([...goodTree('U01'), ...goodTree('U02')]), '    with: { split: { kind: by-user, valid_users: [U09] } }\n'),
    ],
    exit: 1,
    names: /U09/,
    advice: /U01, U02/,
    uncommitted: ['dataset'],
  },
  // --- The artifact folder --------------------------------------------------------------------
  {
    name: 'an artifact folder that is a file',
    args: (d) => ['sweep', put(d, 'store.yaml', VALID.replace('name: catalogue', 'name: store-is-a-file'))],
    env: (d) => ({ SWEEPS_ARTIFACTS: put(d, 'artifacts-file', 'not a folder') }),
    exit: 1,
    names: /artifacts-file/,
    advice: /point SWEEPS_ARTIFACTS at a folder/,
  },
];

let unusedPort = 0;

/** Every path under `root` that looks half-written: temp names, partial downloads, temp folders. */
function halfWritten(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (/\.tmp-|\.part$/.test(entry.name)) found.push(relative(root, full));
      if (entry.isDirectory()) {
        if (entry.name === '.tmp' && readdirSync(full).length > 0) found.push(relative(root, full));
        walk(full);
      }
    }
  };
  walk(root);
  return found;
}

function committed(artifacts: string, type: string): string[] {
  try {
    return readdirSync(join(artifacts, type));
  } catch {
    return [];
  }
}

describe('the bad-input catalogue', () => {
  const root = mkdtempSync(join(tmpdir(), 'sweeps-catalogue-'));
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let address = '';

  beforeAll(async () => {
    server = await startTestServer(join(root, 'server'));
    address = `127.0.0.1:${server.env.SWEEPS_SERVER_PORT}`;
    unusedPort = await freePort();
  });
  afterAll(async () => {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const sweepCount = async () => {
    let n = 0;
    for await (const _ of server.client.workflow.list({ query: "SweepKind = 'sweep'" })) n++;
    return n;
  };

  it(`has at least 25 entries`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it.each(cases)('$name', async (c) => {
    const dir = join(root, c.name.replace(/[^a-z0-9]+/gi, '-'));
    mkdirSync(dir, { recursive: true });
    const home = join(dir, 'home');
    const env: NodeJS.ProcessEnv = {
      SWEEPS_HOME: home,
      // Each case's own folder is a data root, like the shared archive's folder (tests/helpers/env).
      SWEEPS_DATA_ROOTS: `${dir}:${process.env.SWEEPS_DATA_ROOTS ?? ''}`,
      TEMPORAL_ADDRESS: c.ownServer ? '' : address,
      ...c.env?.(dir),
    };
    const before = c.exit === 2 ? await sweepCount() : 0;
    const run = await runCli(c.args(dir), env);
    const said = run.stderr + run.stdout;

    expect({ exit: run.code, said }).toMatchObject({ exit: c.exit });
    expect(said).toMatch(c.names);
    expect(said).toMatch(c.advice);
    expect(halfWritten(dir)).toEqual([]);
    for (const type of c.uncommitted ?? []) expect(committed(env.SWEEPS_ARTIFACTS ?? join(home, 'artifacts'), type)).toEqual([]);
    // Refused up front: nothing reached the server.
    if (c.exit === 2) expect(await sweepCount()).toBe(before);
  });
});
