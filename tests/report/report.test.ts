import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { report } from '../../activities/report';
import type { ReportResult } from '../../activities/types';
import { buildReport, type TrialInput } from '../../report/analysis';
import type { ReportDocument, ReportEnvironment } from '../../report/document';
import { removeDir, tempDir, testDeps } from '../data/helpers';
import { ARCHIVE_MD5, STUDY, SWEEP, buildSweep, epochsOf, type FixtureSweep, type TrialSpec } from './fixture';
import { htmlTables, markdownTables, showsNumbers } from './parse';

const UI = { url: 'http://127.0.0.1:8233', namespace: 'default' };
// t(0.975, 2) in closed form: (2p − 1) / √(2p(1 − p)).
const T2 = 0.95 / Math.sqrt(2 * 0.975 * 0.025);
const asHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&#39;');

let root: string;
let sweep: FixtureSweep;
let result: ReportResult;
let doc: ReportDocument;
let md: string;
let html: string;

beforeAll(async () => {
  root = tempDir('report');
  const deps = { ...testDeps(root), ui: UI };
  sweep = await buildSweep(deps, STUDY);
  // No tracking server in these tests: the report must not try to reach one.
  delete process.env.MLFLOW_TRACKING_URI;
  result = await report({ sweepId: SWEEP, step: 'report', params: { baseline: 'last', compare: 'pooling' }, inputs: { train: sweep.results } }, deps);
  doc = JSON.parse(readFileSync(result.files.json, 'utf8')) as ReportDocument;
  md = readFileSync(result.files.markdown, 'utf8');
  html = readFileSync(result.files.html, 'utf8');
});

afterAll(() => removeDir(root));

test('writes report.html, report.md and report.json and returns their paths', () => {
  expect(Object.keys(result.files).sort()).toEqual(['html', 'json', 'markdown']);
  for (const file of Object.values(result.files)) expect(existsSync(file)).toBe(true);
  expect(result.files.html.endsWith('report.html')).toBe(true);
  expect(result.verdict).toBe(doc.verdict);
});

test('each variant: trials, best valid accuracy mean ± std with its 95% interval, losses, best epoch, early stops, train time', () => {
  const [last, mean] = doc.groups;
  expect(last).toMatchObject({ variant: 'last', trials: 3, seeds: [1, 2, 3], stoppedEarly: 3 });
  expect(last!.bestValidAcc.mean).toBeCloseTo(0.92, 12);
  expect(last!.bestValidAcc.std).toBeCloseTo(0.02, 12);
  expect(last!.bestValidAcc.low).toBeCloseTo(0.92 - (T2 * 0.02) / Math.sqrt(3), 10);
  expect(last!.bestValidAcc.high).toBeCloseTo(0.92 + (T2 * 0.02) / Math.sqrt(3), 10);
  expect(last!.bestEpoch.mean).toBe(5); // epochs 4, 5, 6
  expect(last!.bestValidLoss.mean).toBeCloseTo(0.1, 12);
  // Final valid loss: 0.1 + 0.01 × (epochs − best) = 0.15 for each of the three.
  expect(last!.finalValidLoss.mean).toBeCloseTo(0.15, 12);
  // 2 s per epoch: 9, 10 and 11 epochs → 18, 20, 22 s.
  expect(last!.trainSeconds).toEqual({ total: 60, mean: 20 });
  expect(mean).toMatchObject({ variant: 'mean', trials: 3, stoppedEarly: 2 });
  expect(mean!.bestValidAcc.mean).toBeCloseTo(0.95, 12);
  expect(mean!.bestValidAcc.std).toBeCloseTo(Math.sqrt(0.0014 / 2), 12); // deviations −0.02, −0.01, 0.03: squares sum to 0.0014
  expect(mean!.finalValidLoss.mean).toBeCloseTo((0.15 + 0.15 + 0.35) / 3, 12);
});

test('pairs each variant with the baseline by seed: mean difference, 95% interval, probability, verdict', () => {
  expect(doc.comparisons).toHaveLength(1);
  const c = doc.comparisons[0]!;
  expect(c.pairs.map((p) => p.seed)).toEqual([1, 2, 3]);
  expect(c.pairs.map((p) => p.difference)).toEqual([expect.closeTo(0.03, 12), expect.closeTo(0.02, 12), expect.closeTo(0.04, 12)]);
  expect(c.mean).toBeCloseTo(0.03, 12);
  expect(c.low).toBeCloseTo(0.03 - (T2 * 0.01) / Math.sqrt(3), 10);
  expect(c.high).toBeCloseTo(0.03 + (T2 * 0.01) / Math.sqrt(3), 10);
  expect(c.probabilityBetter).toBeCloseTo(0.5 + (3 * Math.sqrt(3)) / (2 * Math.sqrt(29)), 8);
  expect(c.conclusion).toBe('better');
  expect(doc.verdict).toContain('mean scores 3.00 points higher than last');
  expect(doc.verdict).toContain('95% interval +0.52 to +5.48 points');
  expect(doc.verdict).toContain('The probability that mean is truly better is 98.2%');
  expect(doc.verdict).toContain('The interval excludes zero (p = 0.035): mean is better, with 95% confidence');
});

test('learning curves: per variant and epoch, the mean over seeds with their range', () => {
  const acc = doc.curves.filter((p) => p.metric === 'valid_acc' && p.label === 'last');
  // Epoch 1 of last: seeds with best epochs 4, 5, 6 → 0.90 − 0.06, 0.92 − 0.08, 0.94 − 0.10.
  expect(acc[0]).toMatchObject({ epoch: 1, n: 3 });
  expect(acc[0]!.mean).toBeCloseTo((0.84 + 0.84 + 0.84) / 3, 12);
  // Epoch 10 is run only by the seeds with 10 and 11 epochs.
  expect(acc.find((p) => p.epoch === 10)).toMatchObject({ n: 2 });
  expect(acc.at(-1)!.epoch).toBe(11);
  const loss = doc.curves.filter((p) => p.metric === 'valid_loss' && p.label === 'mean');
  expect(loss).toHaveLength(30);
  expect(loss[0]!.min).toBeCloseTo(0.3, 12); // mean seed 1: best epoch 3 → 0.1 + 2 × 0.1
  expect(loss[0]!.max).toBeCloseTo(0.5, 12); // mean seed 3: best epoch 5 → 0.1 + 4 × 0.1
});

test('html, md and json agree on every number', () => {
  const mdTables = markdownTables(md);
  const htmlT = htmlTables(html);
  expect([...htmlT.keys()]).toEqual([...mdTables.keys()]);
  for (const [title, rows] of mdTables) expect({ title, rows: htmlT.get(title) }).toEqual({ title, rows });

  // And what they show is report.json's numbers, rounded as shown.
  const pct = (x: number) => x * 100;
  const summary = mdTables.get('Best validation accuracy by pooling')!.slice(1);
  doc.groups.forEach((g, i) => {
    const [name, trials, acc, interval, lossAtBest, finalLoss, bestEpoch, early, seconds] = summary[i]!.map((c) => c.text);
    expect(name).toBe(g.variant);
    expect(showsNumbers(trials!, [g.trials])).toBe(true);
    expect(showsNumbers(acc!, [pct(g.bestValidAcc.mean), pct(g.bestValidAcc.std)])).toBe(true);
    expect(showsNumbers(interval!, [pct(g.bestValidAcc.low), pct(g.bestValidAcc.high)])).toBe(true);
    expect(showsNumbers(lossAtBest!, [g.bestValidLoss.mean, g.bestValidLoss.std])).toBe(true);
    expect(showsNumbers(finalLoss!, [g.finalValidLoss.mean, g.finalValidLoss.std])).toBe(true);
    expect(showsNumbers(bestEpoch!, [g.bestEpoch.mean])).toBe(true);
    expect(showsNumbers(early!, [g.stoppedEarly, g.trials])).toBe(true);
    expect(showsNumbers(seconds!, [g.trainSeconds.mean])).toBe(true);
  });

  const comparisons = mdTables.get('Paired by seed, against last')!.slice(1);
  doc.comparisons.forEach((c, i) => {
    const [, pairs, diff, interval, probability, wins] = comparisons[i]!.map((x) => x.text);
    expect(showsNumbers(pairs!, [c.n])).toBe(true);
    expect(showsNumbers(diff!, [pct(c.mean)])).toBe(true);
    expect(showsNumbers(interval!, [pct(c.low), pct(c.high)])).toBe(true);
    expect(showsNumbers(probability!, [pct(c.probabilityBetter)])).toBe(true);
    expect(showsNumbers(wins!, [c.wins, c.n])).toBe(true);
  });

  const pairs = mdTables.get('Every pair')!.slice(1);
  const expectedPairs = doc.comparisons.flatMap((c) => c.pairs);
  expect(pairs).toHaveLength(expectedPairs.length);
  expectedPairs.forEach((p, i) => {
    const [, seed, variant, baseline, difference] = pairs[i]!.map((x) => x.text);
    expect(showsNumbers(seed!, [p.seed as number])).toBe(true);
    expect(showsNumbers(variant!, [pct(p.variant)])).toBe(true);
    expect(showsNumbers(baseline!, [pct(p.baseline)])).toBe(true);
    expect(showsNumbers(difference!, [pct(p.difference)])).toBe(true);
  });

  const trials = mdTables.get('Trials')!.slice(1);
  doc.trials.forEach((t, i) => {
    const [trial, variant, seed, acc, lossAtBest, bestEpoch, finalLoss, epochs, early, backend, seconds] = trials[i]!.map((x) => x.text);
    expect([trial, variant, backend, early]).toEqual([t.trial, t.variant, t.backend, t.stoppedEarly ? 'yes' : 'no']);
    expect(showsNumbers(seed!, [t.seed as number])).toBe(true);
    expect(showsNumbers(acc!, [pct(t.bestValidAcc)])).toBe(true);
    expect(showsNumbers(lossAtBest!, [t.bestValidLoss])).toBe(true);
    expect(showsNumbers(bestEpoch!, [t.bestEpoch])).toBe(true);
    expect(showsNumbers(finalLoss!, [t.finalValidLoss])).toBe(true);
    expect(showsNumbers(epochs!, [t.epochsRun])).toBe(true);
    expect(showsNumbers(seconds!, [t.trainSeconds])).toBe(true);
  });

  // The verdict is the same text in all three.
  expect(md).toContain(doc.verdict);
  expect(html).toContain(asHtml(doc.verdict));
});

test('links every trial to its workflow in the Temporal UI', () => {
  const rows = markdownTables(md).get('Trials')!.slice(1);
  expect(rows).toHaveLength(6);
  for (const row of rows) {
    const trial = row[0]!;
    expect(trial.href).toBe(`${UI.url}/namespaces/default/workflows/${encodeURIComponent(`${SWEEP}/trial-${trial.text}`)}`);
  }
  expect(doc.trials.every((t) => t.temporalUrl === `${UI.url}/namespaces/default/workflows/${encodeURIComponent(t.workflowId)}`)).toBe(true);
});

test('plots are Vega renderings: learning curves of both variants, and the paired differences', () => {
  const figures = [...html.matchAll(/<figure data-plot="([^"]+)">\s*(<svg[\s\S]*?<\/svg>)/g)].map((m) => ({ plot: m[1]!, svg: m[2]! }));
  expect(figures.map((f) => f.plot)).toEqual(['differences', 'valid_acc', 'valid_loss']);
  for (const { plot, svg } of figures) {
    // vega's SVG renderer marks its output with class="marks" and role-mark groups.
    expect(svg).toMatch(/^<svg[^>]*class="marks"/);
    if (plot !== 'differences') {
      const lines = [...svg.matchAll(/<g class="mark-line role-mark[^"]*"[^>]*>([\s\S]*?)<\/g>/g)];
      const paths = lines.flatMap((g) => [...g[1]!.matchAll(/<path[^>]* d="M[^"]+"/g)]);
      expect(paths).toHaveLength(2); // one mean line per variant
      expect(svg).toContain('mark-area role-mark'); // the bands across seeds
      expect(svg).toMatch(/>last<\/text>/);
      expect(svg).toMatch(/>mean<\/text>/);
    }
  }
  // report.md shows the same plots from files beside it.
  const dir = join(result.files.markdown, '..');
  for (const plot of ['differences', 'valid_acc', 'valid_loss']) {
    expect(md).toContain(`](plots/${plot}.svg)`);
    expect(readFileSync(join(dir, 'plots', `${plot}.svg`), 'utf8')).toMatch(/^<svg[^>]*class="marks"/);
  }
});

test('report.html is self-contained: inline CSS and SVG, nothing to fetch', () => {
  expect(html).toContain('<style>');
  expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(\s*['"]?https?:/i);
  // Links to the Temporal UI and MLflow are navigation (<a href>), not resources the page loads.
  const tagsWithUrls = [...html.matchAll(/<([a-z]+)\b[^>]*\b(?:src|href|xlink:href)\s*=\s*"(?:https?:)?\/\/[^"]*"/gi)].map((m) => m[1]);
  expect(tagsWithUrls.every((tag) => tag === 'a')).toBe(true);
});

test('environment: backend, versions, data digests and code version', () => {
  const e = doc.environment;
  expect(e.backends).toEqual(['wasm']);
  expect(e.tfjs).toEqual([require('@tensorflow/tfjs/package.json').version]);
  expect(e.node).toEqual([process.version]);
  expect(e.temporalSdk).toEqual([require('@temporalio/worker/package.json').version]);
  expect(e.code[0]).toMatch(/^durable-sweeps@/);
  expect(e.trainVersions).toEqual([1]);
  expect(e.data.map((d) => d.type)).toEqual(['padding', 'dataset', 'download']);
  expect(e.data[0]).toMatchObject({ dir: sweep.padding.dir, digest: sweep.padding.digest });
  expect(e.data[2]!.details.md5).toBe(ARCHIVE_MD5);
  const shown = markdownTables(md)
    .get('Environment')!
    .map((r) => r.map((c) => c.text).join(' '));
  expect(shown).toContain('backend wasm');
  expect(shown.some((r) => r.includes(ARCHIVE_MD5) && r.startsWith('data: download'))).toBe(true);
});

test("a trial's tracking problems are reported, and the sweep's TensorBoard logdir holds every trial", () => {
  expect(doc.tracking.problems).toEqual([{ source: 'trial gru_last-h64-s3', message: 'mlflow: http://127.0.0.1:9 unreachable (ECONNREFUSED)' }]);
  expect(md).toContain('ECONNREFUSED');
  expect(result.tracking.problems).toBe(1);
  expect(readdirSync(result.tracking.tensorboard).sort()).toEqual(sweep.results.map((r) => r.trial).sort());
  for (const trial of readdirSync(result.tracking.tensorboard)) {
    expect(readdirSync(join(result.tracking.tensorboard, trial)).some((f) => f.includes('tfevents'))).toBe(true);
  }
});

test('a second run over the same trials is a cache hit with the same files', async () => {
  const again = await report(
    { sweepId: SWEEP, step: 'report', params: { baseline: 'last', compare: 'pooling' }, inputs: { train: sweep.results } },
    { ...testDeps(root), ui: UI },
  );
  expect(again.cached).toBe(true);
  expect(again.files).toEqual(result.files);
});

// ---------------------------------------------------------------------------------------------
// The verdict in words, on hand-made trials (no files needed).

const ENV: ReportEnvironment = {
  backends: [],
  node: [],
  tfjs: [],
  backendPackages: [],
  temporalSdk: [],
  hosts: [],
  code: [],
  trainVersions: [],
  reportVersion: 2,
  data: [],
  unrecorded: 0,
};

function trialsOf(specs: TrialSpec[]): TrialInput[] {
  return specs.map((s) => {
    const epochs = epochsOf(s);
    return {
      trial: `${s.pooling}-h${s.hidden ?? 64}-s${s.seed}`,
      step: 'train',
      params: { pooling: s.pooling, seed: s.seed, hidden: s.hidden ?? 64 },
      best: epochs[s.bestEpoch - 1]!,
      epochs,
      stoppedEarly: s.epochs < 30,
      backend: 'cpu',
      workflowId: `w-${s.pooling}-${s.seed}`,
    };
  });
}

const verdictFor = (specs: TrialSpec[], baseline = 'last') =>
  buildReport({
    sweepId: SWEEP,
    pipeline: 'p',
    generatedAt: '2026-01-01T00:00:00Z',
    compare: 'pooling',
    baseline,
    trials: trialsOf(specs),
    environment: ENV,
    tracking: { tensorboard: 'tensorboard', problems: [] },
  });

const spec = (pooling: string, seed: number, acc: number, hidden?: number): TrialSpec => ({ pooling, seed, acc, bestEpoch: 2, epochs: 4, hidden });

test('the verdict says the evidence is not enough when the interval includes zero, and how many seeds might settle it', () => {
  // Differences 0.01, −0.01, 0.03: mean 0.01, std 0.02 → interval includes zero; 18 pairs (see stats.test).
  const d = verdictFor([spec('last', 1, 0.9), spec('last', 2, 0.9), spec('last', 3, 0.9), spec('mean', 1, 0.91), spec('mean', 2, 0.89), spec('mean', 3, 0.93)]);
  expect(d.comparisons[0]!.conclusion).toBe('inconclusive');
  expect(d.verdict).toContain('mean scores 1.00 points higher than last');
  expect(d.verdict).toContain('the evidence is not enough to call a winner');
  expect(d.verdict).toContain('about 18 seed pairs would be needed');
});

test('a difference that rounds to zero is called the same, not higher or lower', () => {
  const d = verdictFor([
    spec('last', 1, 0.9),
    spec('last', 2, 0.91),
    spec('last', 3, 0.92),
    spec('mean', 1, 0.91),
    spec('mean', 2, 0.9),
    spec('mean', 3, 0.92),
  ]);
  expect(d.verdict).toContain('mean and last score the same best validation accuracy on average');
  expect(d.verdict).toContain('95% interval −');
});

test('one seed per variant is not enough evidence, whatever the difference', () => {
  const d = verdictFor([spec('last', 1, 0.8), spec('mean', 1, 0.95)]);
  expect(d.comparisons[0]!.conclusion).toBe('too-few-pairs');
  expect(d.verdict).toContain('from a single pair of runs');
  expect(d.verdict).toContain('not enough evidence');
});

test('two pairs are not enough evidence, however large and steady the difference', () => {
  // Differences 0.10 and 0.11: a 95% interval far above zero, but one degree of freedom.
  const d = verdictFor([spec('last', 1, 0.8), spec('last', 2, 0.8), spec('mean', 1, 0.9), spec('mean', 2, 0.91)]);
  expect(d.comparisons[0]!.conclusion).toBe('too-few-pairs');
  expect(d.comparisons[0]!.low).toBeGreaterThan(0);
  expect(d.verdict).toContain('from 2 pairs of runs');
  expect(d.verdict).toContain('Fewer than 3 pairs cannot tell a real difference from seed-to-seed noise');
  expect(d.verdict).not.toContain('95% confidence');
});

test('pairs with no spread are not enough evidence: the noise cannot be estimated', () => {
  const d = verdictFor([
    spec('last', 1, 0.8),
    spec('last', 2, 0.85),
    spec('last', 3, 0.9),
    spec('mean', 1, 0.82),
    spec('mean', 2, 0.87),
    spec('mean', 3, 0.92),
  ]);
  expect(d.comparisons[0]!.conclusion).toBe('no-spread');
  expect(d.verdict).toContain('every one differing by exactly +2.00 points');
  expect(d.verdict).toContain('no confidence can be stated');
  expect(d.verdict).not.toContain('95% confidence');
});

// last 0.90 on every seed; mean +0.03, +0.02, +0.04 (two-sided p 0.0351); max +0.02, +0.01, +0.03
// (t = 2√3, p = 1 − 2·3.4641/(2√14) = 0.0742). Holm: 0.0351 × 2 = 0.0702, then max(0.0702, 0.0742).
const threeVariants = (maxAccs: number[]) => [
  ...[1, 2, 3].map((s) => spec('last', s, 0.9)),
  ...[0.93, 0.92, 0.94].map((acc, i) => spec('mean', i + 1, acc)),
  ...maxAccs.map((acc, i) => spec('max', i + 1, acc)),
];

test('several variants against one baseline: Holm-adjusted, so a difference significant alone may not be called', () => {
  const d = verdictFor(threeVariants([0.92, 0.91, 0.93]));
  const [max, mean] = d.comparisons;
  expect(mean!.pValueTwoSided).toBeCloseTo(2 * (0.5 - (3 * Math.sqrt(3)) / (2 * Math.sqrt(29))), 8);
  expect(mean!.pAdjusted).toBeCloseTo(2 * mean!.pValueTwoSided, 8);
  expect(max!.pAdjusted).toBeCloseTo(1 - (2 * Math.sqrt(3)) / Math.sqrt(14), 8);
  expect(mean!.low).toBeGreaterThan(0); // the unadjusted interval excludes zero…
  expect(mean!.conclusion).toBe('inconclusive'); // …but not after adjusting for two comparisons
  expect(mean!.tests).toBe(2);
  expect(mean!.verdict).toContain('The interval excludes zero, but not after adjusting for the 2 comparisons with last (Holm, p = 0.070)');
});

test('several variants: a clear winner stays better after the Holm adjustment, and the report says it was adjusted', () => {
  const d = verdictFor(threeVariants([1.0, 1.01, 1.02]));
  const [max, mean] = d.comparisons;
  expect(max!.conclusion).toBe('better');
  expect(mean!.conclusion).toBe('better');
  expect(mean!.pAdjusted).toBeCloseTo(mean!.pValueTwoSided, 12); // the larger p is multiplied by 1
  expect(mean!.verdict).toContain('Adjusted for the 2 comparisons with last (Holm), p = 0.035: mean is better, with 95% confidence');
});

test('the verdict opens with one sentence ranking every variant, before the details', () => {
  const d = verdictFor(threeVariants([0.92, 0.91, 0.93]));
  expect(d.ranking).toBe('Ranked by mean best validation accuracy over seeds: mean 93.00% > max 92.00% > last (baseline) 90.00%.');
  expect(d.verdict.startsWith(d.ranking)).toBe(true);
  expect(d.verdict.indexOf('max vs last')).toBeGreaterThan(d.ranking.length);
});

test('a worse variant is called worse', () => {
  // Differences −0.05, −0.04, −0.05: mean −0.0467, std 0.0058 → interval −6.10 to −3.23 points.
  const d = verdictFor([
    spec('last', 1, 0.95),
    spec('last', 2, 0.96),
    spec('last', 3, 0.97),
    spec('mean', 1, 0.9),
    spec('mean', 2, 0.92),
    spec('mean', 3, 0.92),
  ]);
  expect(d.comparisons[0]!.conclusion).toBe('worse');
  expect(d.verdict).toContain('mean scores 4.67 points lower than last');
  expect(d.verdict).toContain('mean is worse, with 95% confidence');
});

test('without the baseline nothing is compared, and the verdict says so', () => {
  const d = verdictFor([spec('mean', 1, 0.9), spec('max', 1, 0.92)], 'last');
  expect(d.comparisons).toEqual([]);
  expect(d.verdict).toContain('No trials of the baseline "last"');
  expect(d.verdict).toContain('not enough evidence');
});

test('each hyper-parameter cell is its own group, compared with the baseline of the same cell', () => {
  const d = verdictFor([
    spec('last', 1, 0.9, 32),
    spec('last', 2, 0.91, 32),
    spec('mean', 1, 0.92, 32),
    spec('mean', 2, 0.94, 32),
    spec('last', 1, 0.95, 64),
    spec('last', 2, 0.96, 64),
    spec('mean', 1, 0.95, 64),
    spec('mean', 2, 0.95, 64),
  ]);
  expect(d.groups.map((g) => g.label)).toEqual(['last · hidden=32', 'last · hidden=64', 'mean · hidden=32', 'mean · hidden=64']);
  expect(d.comparisons.map((c) => [c.label, c.n])).toEqual([
    ['mean · hidden=32', 2],
    ['mean · hidden=64', 2],
  ]);
  expect(d.comparisons[0]!.mean).toBeCloseTo(0.025, 12); // (0.02 + 0.03) / 2
  expect(d.comparisons[1]!.mean).toBeCloseTo(-0.005, 12); // (0 − 0.01) / 2
});

test('seeds that ran for only one side are listed as unpaired, not compared', () => {
  const d = verdictFor([spec('last', 1, 0.9), spec('last', 2, 0.9), spec('mean', 1, 0.92), spec('mean', 2, 0.93), spec('mean', 3, 0.99)]);
  expect(d.comparisons[0]!.n).toBe(2);
  expect(d.comparisons[0]!.unpaired).toEqual([3]);
});
