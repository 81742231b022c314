import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { report } from '../../activities/report';
import type { ReportResult } from '../../activities/types';
import { removeDir, tempDir, testDeps } from '../data/helpers';
import { CHROMIUM, CHROMIUM_ARGS, testWith } from '../tracking/tools';
import { STUDY, SWEEP, buildSweep } from './fixture';
import { markdownTables } from './parse';
import { buildSearch, SUMMARY } from './search-fixture';

const withChromium = testWith('chromium');

let root: string;
let result: ReportResult;
let browser: Browser | undefined;

beforeAll(async () => {
  root = tempDir('report-browser');
  const deps = { ...testDeps(join(root, 'store')), ui: { url: 'http://127.0.0.1:8233', namespace: 'default' } };
  const sweep = await buildSweep(deps, STUDY);
  delete process.env.MLFLOW_TRACKING_URI;
  result = await report({ sweepId: SWEEP, step: 'report', params: { baseline: 'last', compare: 'pooling' }, inputs: { train: sweep.results } }, deps);
});

afterAll(async () => {
  await browser?.close();
  // The screenshot stays for people to look at; the store does not.
  removeDir(join(root, 'store'));
});

withChromium('report.html renders offline in headless Chromium with no console errors and shows the curves', async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, offline: true });
  const page = await context.newPage();
  const errors: string[] = [];
  const fetched: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith('file:')) fetched.push(r.url());
  });

  await page.goto(`file://${result.files.html}`, { waitUntil: 'load' });

  // Each plot is an inline SVG that the browser lays out at a real size.
  const plots = await page.$$eval('figure[data-plot]', (figures) =>
    figures.map((f) => {
      const svg = f.querySelector('svg');
      const box = svg?.getBoundingClientRect();
      const size = (e: { getBoundingClientRect(): { width: number; height: number } }) => {
        const r = e.getBoundingClientRect();
        return { width: r.width, height: r.height };
      };
      const lines = [...f.querySelectorAll('g.mark-line path')].map(size);
      const bands = [...f.querySelectorAll('g.mark-area path')].map(size);
      const legend = [...f.querySelectorAll('g.role-legend text')].map((t) => t.textContent);
      return { plot: f.getAttribute('data-plot'), width: box?.width ?? 0, height: box?.height ?? 0, lines, bands, legend };
    }),
  );
  expect(plots.map((p) => p.plot)).toEqual(['differences', 'valid_acc', 'valid_loss']);
  for (const p of plots) {
    expect(p.width).toBeGreaterThan(400);
    expect(p.height).toBeGreaterThan(60);
  }
  for (const curve of plots.filter((p) => p.plot !== 'differences')) {
    // Two mean lines that span most of the epochs, two bands, a legend naming both variants.
    expect(curve.lines).toHaveLength(2);
    for (const line of curve.lines) expect(line.width).toBeGreaterThan(100);
    expect(curve.bands).toHaveLength(2);
    expect(curve.legend).toEqual(expect.arrayContaining(['last', 'mean']));
  }

  // The rendered tables are those of report.md, cell for cell.
  const rendered = await page.$$eval('section', (sections) =>
    sections
      .filter((s) => s.querySelector('table'))
      .map((s) => ({
        title: s.querySelector('h2')!.textContent,
        rows: [...s.querySelectorAll('tr')].map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent?.trim())),
      })),
  );
  const md = markdownTables(readFileSync(result.files.markdown, 'utf8'));
  expect(rendered.map((t) => t.title)).toEqual([...md.keys()]);
  for (const t of rendered) expect(t.rows).toEqual(md.get(t.title!)!.map((row) => row.map((c) => c.text)));

  const shots = join(root, 'screenshots');
  mkdirSync(shots, { recursive: true });
  const shot = join(shots, 'report.png');
  await page.screenshot({ path: shot, fullPage: true });
  expect(statSync(shot).size).toBeGreaterThan(50_000);
  process.stdout.write(`report screenshot: ${shot}\n`);

  expect(errors).toEqual([]);
  expect(fetched).toEqual([]);
});

withChromium("a search's report renders offline with its three plots at a real size: a step line, a bar per trial, a dot per trial and parameter", async () => {
  const deps = testDeps(join(root, 'search-store'));
  const searched = await report(
    {
      sweepId: 'sweep-tune-0123abcd',
      step: 'report',
      params: { baseline: 'last', compare: 'pooling' },
      inputs: { train: await buildSearch(deps) },
      search: { train: SUMMARY },
    },
    deps,
  );
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 }, offline: true })).newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  await page.goto(`file://${searched.files.html}`, { waitUntil: 'load' });
  const plots = await page.$$eval('figure[data-plot]', (figures) =>
    figures.map((f) => {
      const box = f.querySelector('svg')!.getBoundingClientRect();
      const sized = (selector: string) =>
        [...f.querySelectorAll(selector)].map((e) => e.getBoundingClientRect()).filter((r) => r.width > 0 && r.height > 0).length;
      return {
        plot: f.getAttribute('data-plot'),
        width: box.width,
        height: box.height,
        lines: sized('g.mark-line path'),
        bars: sized('g.mark-rect path'),
        dots: sized('g.mark-symbol path'),
      };
    }),
  );
  expect(plots.map((p) => p.plot)).toEqual(['search-train-progress', 'search-train-epochs', 'search-train-params']);
  for (const p of plots) {
    expect(p.width).toBeGreaterThan(400);
    expect(p.height).toBeGreaterThan(150);
  }
  expect(plots[0]!.lines).toBe(1);
  expect(plots[1]!.bars).toBe(5);
  // One dot per trial and parameter, besides the legend's symbols.
  expect(plots[2]!.dots).toBeGreaterThanOrEqual(10);
  const shot = join(root, 'screenshots', 'search-report.png');
  mkdirSync(join(root, 'screenshots'), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  process.stdout.write(`search report screenshot: ${shot}\n`);
  expect(errors).toEqual([]);
});
