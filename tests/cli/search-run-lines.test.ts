import { searchRunsOf, trialLine } from '../../cli/progress';
import type { TrialProgress } from '../../workflows/progress';

/** How `sweeps status` and the live view show a run of a pruned search: its rung and the decision on it. */

const run = (search: TrialProgress['search'], state: TrialProgress['state'] = 'done'): TrialProgress => ({
  trial: `gru_mean-h8-s1-t3-e${search!.rung}`,
  workflowId: 'w',
  cell: { lr: 0.003 },
  state,
  epoch: search!.rung,
  epochs: 9,
  bestValidAcc: 0.9,
  search,
});

test('a new trial paused at its first rung', () => {
  expect(trialLine(run({ trial: 'gru_mean-h8-s1-t3', from: 0, rung: 1, decision: 'paused' }))).toMatch(/ rung 1 +paused +best val acc 0\.9000 +done$/);
});

test('a promoted run shows the rung it continued from', () => {
  expect(trialLine(run({ trial: 'gru_mean-h8-s1-t3', from: 3, rung: 9, decision: 'completed' }))).toMatch(/ rung 3→9 +completed /);
  expect(trialLine(run({ trial: 'gru_mean-h8-s1-t3', from: 1, rung: 3, decision: 'promoted' }))).toMatch(/ rung 1→3 +promoted /);
});

test('a run still training says so; a trial of a plain matrix has no rung column', () => {
  expect(trialLine(run({ trial: 'gru_mean-h8-s1-t3', from: 1, rung: 3, decision: 'training' }, 'running'))).toMatch(/ rung 1→3 +training /);
  const { search: _none, ...plain } = run({ trial: 'x', from: 0, rung: 1, decision: 'paused' });
  expect(trialLine(plain)).not.toContain('rung');
});

test("a finished search's runs, from their results in order: promoted, paused, completed", () => {
  const r = (trial: string, epochsRun: number, stoppedEarly = false) => ({ trial, epochsRun, stoppedEarly, params: { epochs: 9 } });
  const runs = searchRunsOf([r('a-t0-e1', 1), r('a-t1-e1', 1), r('a-t0-e3', 3), r('a-t0-e9', 9), r('a-t1-e3', 2, true)]);
  expect([...runs].map(([id, s]) => [id, s.from, s.rung, s.decision])).toEqual([
    ['a-t0-e1', 0, 1, 'promoted'],
    ['a-t1-e1', 0, 1, 'promoted'],
    ['a-t0-e3', 1, 3, 'promoted'],
    ['a-t0-e9', 3, 9, 'completed'],
    ['a-t1-e3', 1, 2, 'completed'],
  ]);
});
