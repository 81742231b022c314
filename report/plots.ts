/**
 * The report's plots as Vega-Lite specs, rendered to SVG by vega in a child Node process
 * (report/render-plots.ts): vega and vega-lite are ES modules only (vega uses top-level await),
 * which CommonJS code — the worker and jest alike — cannot require, and jest cannot import().
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { CurveMetric, ReportDocument, SearchReport } from './document';
import { SEARCH_PLOTS, searchPlot, type PlotName, type SearchPlotKind } from './tables';

/** A Vega-Lite spec; typed loosely here, validated by vega-lite's compiler in the child. */
export type VegaLiteSpec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const WIDTH = 640;
// Colour-blind-safe (Okabe–Ito), the baseline always first and so always the same colour.
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

function colorScale(doc: ReportDocument) {
  const labels = doc.groups.map((g) => g.label);
  return { domain: labels, range: labels.map((_, i) => PALETTE[i % PALETTE.length]!) };
}

export function curveSpec(doc: ReportDocument, metric: CurveMetric): VegaLiteSpec {
  const accuracy = metric === 'valid_acc';
  const title = accuracy ? 'validation accuracy' : 'validation loss';
  const values = doc.curves.filter((p) => p.metric === metric).map(({ label, epoch, n, mean, min, max }) => ({ label, epoch, n, mean, min, max }));
  const y = { type: 'quantitative', scale: { zero: false }, axis: accuracy ? { format: '.0%' } : {}, title };
  const color = { field: 'label', type: 'nominal', title: doc.compare, scale: colorScale(doc) };
  return {
    $schema: SCHEMA,
    width: WIDTH,
    height: 300,
    data: { values },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 }, title: 'epoch' },
      // Band and line share one legend; its symbols drawn as lines, not as the pale band.
      color: { ...color, legend: { symbolType: 'stroke', symbolStrokeWidth: 3, symbolOpacity: 1 } },
    },
    layer: [
      {
        mark: { type: 'area', opacity: 0.18 },
        encoding: { y: { field: 'min', ...y }, y2: { field: 'max' } },
      },
      {
        mark: { type: 'line', strokeWidth: 2, point: { size: 24 } },
        encoding: {
          y: { field: 'mean', ...y },
          tooltip: [
            { field: 'label', title: doc.compare },
            { field: 'epoch' },
            { field: 'mean', format: accuracy ? '.2%' : '.4f' },
            { field: 'n', title: 'seeds' },
          ],
        },
      },
    ],
    config: { legend: { orient: 'bottom' } },
  };
}

export function differencesSpec(doc: ReportDocument): VegaLiteSpec {
  const label = (l: string, baseline: string) => `${l} vs ${baseline}`;
  const intervals = doc.comparisons.map((c) => ({
    comparison: label(c.label, c.baseline),
    mean: c.mean * 100,
    // A single pair has no interval: draw none rather than a zero-width one that looks certain.
    low: c.n >= 2 ? c.low * 100 : null,
    high: c.n >= 2 ? c.high * 100 : null,
  }));
  const pairs = doc.comparisons.flatMap((c) =>
    c.pairs.map((p) => ({ comparison: label(c.label, c.baseline), seed: String(p.seed), difference: p.difference * 100 })),
  );
  const y = { field: 'comparison', type: 'nominal', title: null, sort: null };
  // Padding keeps the zero line off the axis when every difference has the same sign.
  const x = { type: 'quantitative', title: 'difference in best validation accuracy (points)', scale: { zero: true, padding: 12 } };
  return {
    $schema: SCHEMA,
    width: WIDTH,
    height: 48 * Math.max(1, intervals.length),
    layer: [
      { data: { values: [{ zero: 0 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#888' }, encoding: { x: { field: 'zero', ...x } } },
      {
        data: { values: intervals.filter((i) => i.low !== null) },
        mark: { type: 'rule', strokeWidth: 2, color: '#333' },
        encoding: { y, x: { field: 'low', ...x }, x2: { field: 'high' } },
      },
      {
        data: { values: intervals },
        mark: { type: 'tick', thickness: 3, size: 28, color: '#333' },
        encoding: { y, x: { field: 'mean', ...x } },
      },
      {
        // On top of the mean's tick, so that a seed at the mean stays visible.
        data: { values: pairs },
        mark: { type: 'circle', size: 60, opacity: 0.75, color: PALETTE[1] },
        encoding: { y, x: { field: 'difference', ...x }, tooltip: [{ field: 'seed' }, { field: 'difference', format: '+.2f' }] },
      },
    ],
  };
}

/** A search's best value found so far against the epochs it has spent (one line per grid cell). */
export function searchProgressSpec(s: SearchReport): VegaLiteSpec {
  const cells = [...new Set(s.progress.map((p) => p.cell))];
  return {
    $schema: SCHEMA,
    width: WIDTH,
    height: 260,
    data: { values: s.progress },
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2, point: { size: 16 } },
    encoding: {
      x: { field: 'epochsSpent', type: 'quantitative', title: 'epochs trained so far', axis: { tickMinStep: 1 } },
      y: { field: 'bestSoFar', type: 'quantitative', scale: { zero: false }, axis: { format: '.0%' }, title: 'best validation accuracy so far' },
      ...(cells.length > 1
        ? {
            color: {
              field: 'cell',
              type: 'nominal',
              title: s.axes.join(', '),
              scale: { domain: cells, range: cells.map((_, i) => PALETTE[i % PALETTE.length]!) },
            },
          }
        : { color: { value: PALETTE[0] } }),
      tooltip: [{ field: 'trial' }, { field: 'epochsSpent', title: 'epochs so far' }, { field: 'bestSoFar', format: '.2%', title: 'best so far' }],
    },
    config: { legend: { orient: 'bottom' } },
  };
}

const DECISIONS = { completed: PALETTE[2]!, paused: PALETTE[1]! };

/** Each trial's epochs, in the order the search suggested them, coloured by the pruner's last decision on it. */
export function searchEpochsSpec(s: SearchReport): VegaLiteSpec {
  const values = s.trials.map((t) => ({
    trial: t.trial,
    number: t.number,
    cell: t.cell && Object.keys(t.cell).length ? Object.values(t.cell).map(String).join(' · ') : '–',
    epochs: t.epochs,
    decision: t.decision,
    promotedAt: t.promotedAt.join(', ') || '–',
  }));
  const cells = new Set(values.map((v) => v.cell)).size;
  return {
    $schema: SCHEMA,
    data: { values },
    ...(cells > 1 ? { facet: { row: { field: 'cell', type: 'nominal', title: s.axes.join(', ') } }, spec: epochsLayer(cells) } : epochsLayer(1)),
    config: { legend: { orient: 'bottom' } },
  };
}

function epochsLayer(cells: number): VegaLiteSpec {
  return {
    width: WIDTH,
    height: Math.max(120, 260 / cells),
    mark: { type: 'bar', binSpacing: 0 },
    encoding: {
      // A band per trial; with hundreds of trials most labels give way to their neighbours.
      x: { field: 'number', type: 'ordinal', title: 'trial (in the order suggested)', axis: { labelOverlap: true, labelAngle: 0 } },
      y: { field: 'epochs', type: 'quantitative', title: 'epochs trained', axis: { tickMinStep: 1 } },
      color: {
        field: 'decision',
        type: 'nominal',
        title: 'decision',
        scale: { domain: Object.keys(DECISIONS), range: Object.values(DECISIONS) },
      },
      tooltip: [{ field: 'trial' }, { field: 'epochs' }, { field: 'decision' }, { field: 'promotedAt', title: 'promoted at' }],
    },
  };
}

/** Best validation accuracy against each searched parameter (a log axis for a parameter searched over orders of magnitude). */
export function searchParamsSpec(s: SearchReport): VegaLiteSpec {
  const values = s.trials.map((t) => ({ trial: t.trial, bestValidAcc: t.bestValidAcc, decision: t.decision, epochs: t.epochs, ...prefixed(t.params) }));
  return {
    $schema: SCHEMA,
    data: { values },
    columns: Math.min(3, s.params.length),
    concat: s.params.map((p) => {
      const xs = s.trials.map((t) => t.params[p]);
      const numeric = xs.every((x) => typeof x === 'number');
      const log = numeric && looksLogarithmic(xs as number[]);
      return {
        width: 200,
        height: 180,
        mark: { type: 'point', filled: true, opacity: 0.6, size: 24 },
        encoding: {
          x: {
            field: `param_${p}`,
            type: numeric ? 'quantitative' : 'nominal',
            title: p,
            ...(log ? { scale: { type: 'log' } } : numeric ? { scale: { zero: false } } : {}),
          },
          y: { field: 'bestValidAcc', type: 'quantitative', scale: { zero: false }, axis: { format: '.0%' }, title: 'best validation accuracy' },
          color: { field: 'decision', type: 'nominal', title: 'decision', scale: { domain: Object.keys(DECISIONS), range: Object.values(DECISIONS) } },
          tooltip: [{ field: 'trial' }, { field: `param_${p}`, title: p }, { field: 'bestValidAcc', format: '.2%' }, { field: 'epochs' }],
        },
      };
    }),
    config: { legend: { orient: 'bottom' } },
  };
}

/**
 * Whether values were drawn on a log scale (the report is not told the space): positive, spread over
 * two orders of magnitude or more, and bunched at the low end on a linear axis (loguniform over
 * three decades puts about 85% below the linear midpoint; uniform puts half).
 */
export function looksLogarithmic(xs: number[]): boolean {
  const low = Math.min(...xs);
  const high = Math.max(...xs);
  if (!(low > 0) || high / low < 100) return false;
  return xs.filter((x) => x < (low + high) / 2).length / xs.length > 0.75;
}

// Field names of their own: a parameter may be called like a field of the row (`epochs`, `trial`).
const prefixed = (params: Record<string, unknown>) => Object.fromEntries(Object.entries(params).map(([k, v]) => [`param_${k}`, v]));

export function plotSpecs(doc: ReportDocument, plots: PlotName[]): Record<string, VegaLiteSpec> {
  const specs: Record<string, VegaLiteSpec> = {};
  for (const plot of plots) {
    const search = searchPlotOf(doc, plot);
    if (search)
      specs[plot] =
        search.kind === 'progress' ? searchProgressSpec(search.s) : search.kind === 'epochs' ? searchEpochsSpec(search.s) : searchParamsSpec(search.s);
    else specs[plot] = plot === 'differences' ? differencesSpec(doc) : curveSpec(doc, plot as CurveMetric);
  }
  return specs;
}

function searchPlotOf(doc: ReportDocument, plot: PlotName): { kind: SearchPlotKind; s: SearchReport } | undefined {
  for (const s of doc.search ?? []) {
    for (const kind of SEARCH_PLOTS) if (plot === searchPlot(kind, s.step)) return { kind, s };
  }
  return undefined;
}

/** Renders Vega-Lite specs to SVG strings (by name) in a child Node process. */
export function renderSvgs(specs: Record<string, VegaLiteSpec>, timeoutMs = 60_000): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, 'render-plots.js')], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rendering the report's plots took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`rendering the report's plots failed (exit ${code}): ${Buffer.concat(err).toString().trim().slice(0, 2000)}`));
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(out).toString()) as Record<string, string>);
      } catch (e) {
        reject(new Error(`the plot renderer wrote no valid JSON: ${(e as Error).message}`));
      }
    });
    child.stdin.end(JSON.stringify(specs));
  });
}
