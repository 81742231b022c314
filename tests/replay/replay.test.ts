import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { repoRoot } from '../helpers/fixtures';

/**
 * Histories recorded from real sweeps, replayed against the current workflow code: a change that
 * would break determinism for sweeps already running (or being resumed) fails here.
 */
const dir = join(repoRoot, 'tests', 'replay', 'histories');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

describe('recorded workflow histories replay against the current workflow code', () => {
  it('has recorded histories of a sweep and of its trials', () => {
    expect(files.some((f) => f.startsWith('sweep-') && !f.includes('_trial-'))).toBe(true);
    expect(files.some((f) => f.includes('_trial-'))).toBe(true);
  });

  it('replays every one without a nondeterminism error', async () => {
    const histories = files.map((f) => ({
      workflowId: f.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))),
    }));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: require.resolve('../../workflows') }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
