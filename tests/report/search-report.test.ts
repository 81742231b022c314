import { readFileSync } from 'node:fs';
import { report } from '../../activities/report';
import type { ReportResult, TrainResult } from '../../activities/types';
import type { ReportDocument } from '../../report/document';
import { looksLogarithmic } from '../../report/plots';
import { searchReport } from '../../report/search';
import { removeDir, tempDir, testDeps } from '../data/helpers';
import { htmlTables, markdownTables } from './parse';
import { buildSearch, SUMMARY } from './search-fixture';

/** The report of a search with no grid axis, pruned by ASHA: the runs of tests/report/search-fixture.ts (worked out by hand there). */

let root: string;
let results: TrainResult[];
let result: ReportResult;
let doc: ReportDocument;
let html: string;
let md: string;

beforeAll(async () => {
  root = tempDir('search-report');
  const deps = testDeps(root);
  delete process.env.MLFLOW_TRACKING_URI;
  results = await buildSearch(deps);
  result = await report(
    {
      sweepId: 'sweep-tune-0123abcd',
      step: 'report',
      params: { baseline: 'last', compare: 'pooling' },
      inputs: { train: results },
      search: { train: SUMMARY },
    },
    deps,
  );
  doc = JSON.parse(readFileSync(result.files.json, 'utf8')) as ReportDocument;
  html = readFileSync(result.files.html, 'utf8');
  md = readFileSync(result.files.markdown, 'utf8');
});

afterAll(() => removeDir(root));

test('each trial once, with the epochs it reached, the rungs it was promoted at and the last decision on it', () => {
  const trials = doc.search![0]!.trials.map((t) => [t.trial, t.epochs, t.promotedAt, t.decision, t.bestValidAcc]);
  expect(trials).toEqual([
    ['gru_mean-h8-s1-t0', 9, [1, 3], 'completed', 0.9],
    ['gru_mean-h8-s1-t1', 1, [], 'paused', 0.6],
    ['gru_mean-h8-s1-t2', 3, [1], 'paused', 0.78],
    ['gru_mean-h8-s1-t3', 1, [], 'paused', 0.5],
    ['gru_mean-h8-s1-t4', 9, [1, 3], 'completed', 0.95],
  ]);
  expect(doc.search![0]!.trials[0]!.params).toEqual({ lr: 0.001, dropout: 0.1 });
});

test('best so far against epochs trained: each run counts the epochs it trained after the rung it continued from', () => {
  const s = doc.search![0]!;
  expect(s.progress.map((p) => [p.epochsSpent, p.bestSoFar])).toEqual([
    [1, 0.7],
    [2, 0.7],
    [3, 0.75],
    [4, 0.75],
    [6, 0.8],
    [8, 0.8],
    [9, 0.8],
    [11, 0.85],
    [17, 0.9],
    [23, 0.95],
  ]);
  expect([s.pruned, s.epochsSpent, s.fullBudgetEpochs]).toEqual([true, 23, 45]);
});

test('the verdict is what the search found, and no trials are paired by seed', () => {
  expect(doc.comparisons).toEqual([]);
  expect(doc.verdict).toBe(
    'Search (train), tpe over lr, dropout: best validation accuracy 95.00% (trial gru_mean-h8-s1-t4, lr=0.002 dropout=0.15, 9 epochs). ' +
      '3 of 5 trials were paused at a rung; the search trained 23 epochs of the 45 its trials would take in full.',
  );
  expect(html).toContain('search of lr, dropout (train)');
  expect(md).toContain(doc.verdict);
});

test('the best trials table lists parameters and decisions, the same in report.md and report.html', () => {
  const title = 'Search (train): best trials';
  const fromMd = markdownTables(md).get(title)!;
  const fromHtml = htmlTables(html).get(title)!;
  expect(fromMd.map((r) => r.map((c) => c.text))).toEqual(fromHtml.map((r) => r.map((c) => c.text)));
  expect(fromMd.map((r) => r.map((c) => c.text))).toEqual([
    ['trial', 'best valid accuracy', 'epochs', 'decision', 'lr', 'dropout'],
    ['gru_mean-h8-s1-t4', '95.00%', '9', 'completed (promoted at 1, 3)', '0.002', '0.15'],
    ['gru_mean-h8-s1-t0', '90.00%', '9', 'completed (promoted at 1, 3)', '0.001', '0.1'],
    ['gru_mean-h8-s1-t2', '78.00%', '3', 'paused at 3 (promoted at 1)', '0.01', '0.3'],
    ['gru_mean-h8-s1-t1', '60.00%', '1', 'paused at 1', '0.0003', '0.2'],
    ['gru_mean-h8-s1-t3', '50.00%', '1', 'paused at 1', '0.05', '0.4'],
  ]);
  // Without seed comparisons, the report shows no summary by variant nor learning curves by seed.
  expect(md).not.toContain('## Paired by seed');
  expect(md).not.toContain('## Learning curves');
});

test('plots: best so far as a step line, one bar per trial coloured by decision, one dot per trial and parameter', () => {
  const figures = new Map([...html.matchAll(/<figure data-plot="([^"]+)">\s*(<svg[\s\S]*?<\/svg>)/g)].map((m) => [m[1]!, m[2]!]));
  expect([...figures.keys()]).toEqual(['search-train-progress', 'search-train-epochs', 'search-train-params']);
  for (const svg of figures.values()) expect(svg).toMatch(/^<svg[^>]*class="marks"/);
  const progress = figures.get('search-train-progress')!;
  expect([...progress.matchAll(/<g class="mark-line role-mark[^"]*"/g)]).toHaveLength(1);
  const epochs = figures.get('search-train-epochs')!;
  const bars = [...epochs.matchAll(/<g class="mark-rect role-mark[^"]*"[^>]*>([\s\S]*?)<\/g>/g)].flatMap((g) => [...g[1]!.matchAll(/<path /g)]);
  expect(bars).toHaveLength(5);
  expect(epochs).toMatch(/>paused<\/text>/);
  expect(epochs).toMatch(/>completed<\/text>/);
  const params = figures.get('search-train-params')!;
  const dots = [...params.matchAll(/<g class="mark-symbol role-mark[^"]*"[^>]*>([\s\S]*?)<\/g>/g)].flatMap((g) => [...g[1]!.matchAll(/<path /g)]);
  expect(dots).toHaveLength(2 * 5);
  expect(params).toMatch(/>lr<\/text>/);
  expect(params).toMatch(/>dropout<\/text>/);
  for (const plot of figures.keys()) expect(md).toContain(`](plots/${plot}.svg)`);
});

test('a search beside a grid axis: best so far per cell, each cell counting its own epochs', () => {
  const runs = [
    { trial: 'a-t0-e1', params: { pooling: 'last', epochs: 3, pause_at_epoch: 1, lr: 0.1 }, epochsRun: 1, stoppedEarly: false, bestValidAcc: 0.5 },
    { trial: 'b-t0-e1', params: { pooling: 'mean', epochs: 3, pause_at_epoch: 1, lr: 0.1 }, epochsRun: 1, stoppedEarly: false, bestValidAcc: 0.6 },
    { trial: 'a-t0-e3', params: { pooling: 'last', epochs: 3, lr: 0.1 }, epochsRun: 3, stoppedEarly: true, bestValidAcc: 0.7 },
  ];
  const s = searchReport('train', { ...SUMMARY, cells: 2, axes: ['pooling'], params: ['lr'] }, runs);
  expect(s.progress.map((p) => [p.cell, p.epochsSpent, p.bestSoFar])).toEqual([
    ['pooling=last', 1, 0.5],
    ['pooling=mean', 1, 0.6],
    ['pooling=last', 3, 0.7],
  ]);
  expect(s.trials.map((t) => [t.trial, t.decision, t.cell])).toEqual([
    ['a-t0', 'completed', { pooling: 'last' }],
    ['b-t0', 'paused', { pooling: 'mean' }],
  ]);
});

test('a log axis for a parameter drawn on a log scale, a linear one for one drawn uniformly', () => {
  const loguniform = Array.from({ length: 40 }, (_, i) => 10 ** (-4 + (3 * i) / 39));
  const uniform = Array.from({ length: 40 }, (_, i) => 0.001 + (0.5 * i) / 39);
  expect(looksLogarithmic(loguniform)).toBe(true);
  expect(looksLogarithmic(uniform)).toBe(false);
  expect(looksLogarithmic([0, 1, 100])).toBe(false);
});
