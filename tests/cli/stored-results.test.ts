import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { appendTrialResults, sealTrialResults, type StoredTrialResults } from '../../activities/trial-results';
import type { TrainResult } from '../../activities/types';
import { LocalArtifactStore } from '../../artifacts/local-store';
import { ConfigError, loadConfig } from '../../client/config';
import { withStoredResults } from '../../cli/results';
import { describeReuse, reuseOf } from '../../cli/reuse';
import { planFromText } from '../../pipeline/load';
import type { SweepResult } from '../../workflows/sweep';
import { tinyPipeline } from '../helpers/pipelines';

/** The CLI reads a sweep's result whichever form its matrix step's output took: inline, or stored. */

const plan = planFromText(tinyPipeline('stored', '    matrix: { pooling: [last, mean], seed: [1, 2] }'), 'stored.yaml');
const trial = (id: string, cached: boolean, resumedFromEpoch: number, epochsRun: number) =>
  ({
    ref: { dir: `train/${id}`, digest: 'd' },
    trial: id,
    cached,
    resumedFromEpoch,
    epochsRun,
    seconds: 1,
    best: { valid_acc: 0.5 },
  }) as unknown as TrainResult;
const trials = [
  trial('gru_last-h8-s1', true, 0, 3),
  trial('gru_last-h8-s2', false, 2, 3),
  trial('gru_mean-h8-s1', false, 0, 3),
  trial('gru_mean-h8-s2', false, 0, 2),
];
const step = { ref: { dir: 'x/y', digest: 'z' }, cached: true, seconds: 0 };
const result = (train: unknown): SweepResult => ({
  sweepId: 'sweep-stored-00000000',
  pipeline: 'stored',
  outputs: { download: step, dataset: step, padding: step, train, report: step },
});

describe('a sweep result whose trial results are in the artifact store', () => {
  let root: string;
  let output: StoredTrialResults;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'sweeps-stored-results-'));
    const deps = { store: new LocalArtifactStore(join(root, 'artifacts')), logger: pino({ level: 'silent' }), dataRoots: [] };
    const pages = await appendTrialResults({ sweepId: 'sweep-stored-00000000', step: 'train', results: trials }, deps);
    output = await sealTrialResults({ sweepId: 'sweep-stored-00000000', step: 'train', pages }, deps);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads them from the store: the reuse line is that of the same results inline', async () => {
    const { result: read, problem } = await withStoredResults(result(output), { artifacts: join(root, 'artifacts'), artifactsCache: join(root, 'cache') });
    expect(problem).toBeUndefined();
    expect(read.outputs.train).toEqual(trials);
    expect(describeReuse(reuseOf(plan, read))).toBe(describeReuse(reuseOf(plan, result(trials))));
    expect(describeReuse(reuseOf(plan, read))).toBe('reused 4 of 4 steps and 1 of 4 trials; trained 3 trials (1 from a checkpoint), 6 epochs');
  });

  it('says so when the store cannot be read here, and counts the trials without splitting them', async () => {
    const { result: kept, problem } = await withStoredResults(result(output), { artifacts: join(root, 'elsewhere'), artifactsCache: join(root, 'cache') });
    expect(kept.outputs.train).toEqual(output);
    expect(problem).toMatch(/^the trial results of train are in the artifact store \(.*elsewhere\) and could not be read here: /);
    const reuse = reuseOf(plan, kept);
    expect(reuse.trials).toEqual({ total: 4, reused: 0, resumed: 0, fresh: 0, unread: 4 });
    expect(describeReuse(reuse)).toBe("reused 4 of 4 steps and 0 of 4 trials; 4 trials' results could not be read from the artifact store here");
  });

  it('leaves a result without stored trial results as it is, without opening a store', async () => {
    const inline = result(trials);
    const { result: same, problem } = await withStoredResults(inline, { artifacts: 's3://not-opened', artifactsCache: join(root, 'cache') });
    expect(same).toBe(inline);
    expect(problem).toBeUndefined();
  });
});

describe('SWEEPS_BLOB_LIMIT: the server blob size limit a sweep is submitted with', () => {
  const saved = process.env.SWEEPS_BLOB_LIMIT;
  afterEach(() => {
    if (saved === undefined) delete process.env.SWEEPS_BLOB_LIMIT;
    else process.env.SWEEPS_BLOB_LIMIT = saved;
  });

  it('is absent by default (the workflow then assumes Temporal’s 2 MB) and read as bytes when set', () => {
    delete process.env.SWEEPS_BLOB_LIMIT;
    expect(loadConfig().blobLimit).toBeUndefined();
    process.env.SWEEPS_BLOB_LIMIT = '65536';
    expect(loadConfig().blobLimit).toBe(65536);
  });

  it('refuses a value that is not a positive integer, naming the variable', () => {
    process.env.SWEEPS_BLOB_LIMIT = '2MB';
    expect(() => loadConfig()).toThrow(ConfigError);
    expect(() => loadConfig()).toThrow(/^SWEEPS_BLOB_LIMIT="2MB": expected a positive integer/);
  });
});
