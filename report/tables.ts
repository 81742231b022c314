/**
 * The report's tables as data (titles, columns, formatted cells). report.md and report.html both
 * render these, so a number can only be shown one way.
 */
import type { ReportDocument } from './document';
import * as f from './format';

export interface TableCell {
  text: string;
  href?: string;
}

export interface Table {
  id: string;
  title: string;
  /** A sentence under the title: what the numbers are. */
  note?: string;
  columns: Array<{ title: string; numeric?: boolean }>;
  rows: TableCell[][];
}

const c = (text: string, href?: string): TableCell => (href ? { text, href } : { text });

export function summaryTable(doc: ReportDocument): Table {
  const withCell = doc.groups.some((g) => Object.keys(g.cell).length > 0);
  return {
    id: 'summary',
    title: `Best validation accuracy by ${doc.compare}`,
    note:
      'Per variant (and cell), over its seeds: "best" is the epoch early stopping keeps (lowest validation loss); ' +
      'the interval is the 95% t interval of the mean; train time is the mean per trial of the training epochs.',
    columns: [
      { title: doc.compare },
      ...(withCell ? [{ title: 'cell' }] : []),
      { title: 'trials', numeric: true },
      { title: 'best valid acc (mean ± std)', numeric: true },
      { title: '95% interval', numeric: true },
      { title: 'valid loss at best', numeric: true },
      { title: 'final valid loss', numeric: true },
      { title: 'best epoch (mean)', numeric: true },
      { title: 'early-stopped', numeric: true },
      { title: 'train time per trial', numeric: true },
    ],
    rows: doc.groups.map((g) => [
      c(g.variant),
      ...(withCell ? [c(f.cell(g.cell))] : []),
      c(String(g.trials)),
      c(f.pctSpread(g.bestValidAcc.mean, g.bestValidAcc.std)),
      c(g.trials >= 2 ? f.pctRange(g.bestValidAcc.low, g.bestValidAcc.high) : '– (one seed)'),
      c(f.lossSpread(g.bestValidLoss.mean, g.bestValidLoss.std)),
      c(f.lossSpread(g.finalValidLoss.mean, g.finalValidLoss.std)),
      c(f.epoch(g.bestEpoch.mean)),
      c(f.count(g.stoppedEarly, g.trials)),
      c(f.seconds(g.trainSeconds.mean)),
    ]),
  };
}

export function comparisonTable(doc: ReportDocument): Table {
  return {
    id: 'comparisons',
    title: `Paired by seed, against ${doc.baseline}`,
    note:
      'Difference = variant − baseline in best validation accuracy, per seed that ran for both. ' +
      'P(better) is the probability that the true mean difference is above zero under a paired t model. ' +
      'p (Holm) is the two-sided p-value adjusted for every comparison in this table that had at least 3 pairs with some spread; ' +
      'a variant is called better or worse only when it is below 0.05.',
    columns: [
      { title: 'comparison' },
      { title: 'pairs', numeric: true },
      { title: 'mean difference', numeric: true },
      { title: '95% interval', numeric: true },
      { title: 'P(better)', numeric: true },
      { title: 'better in', numeric: true },
      { title: 'p (Holm)', numeric: true },
      { title: 'conclusion' },
    ],
    rows: doc.comparisons.map((x) => [
      c(`${x.label} vs ${x.baseline}`),
      c(String(x.n)),
      c(f.points(x.mean)),
      c(x.n >= 2 ? f.pointsRange(x.low, x.high) : '– (one pair)'),
      c(f.probability(x.probabilityBetter)),
      c(f.count(x.wins, x.n)),
      c(f.pValue(x.pAdjusted)),
      c(CONCLUSIONS[x.conclusion]),
    ]),
  };
}

const CONCLUSIONS = {
  better: 'better (p < 0.05 after Holm)',
  worse: 'worse (p < 0.05 after Holm)',
  inconclusive: 'not enough evidence',
  'too-few-pairs': 'not enough evidence (fewer than 3 pairs)',
  'no-spread': 'not enough evidence (no spread between pairs)',
} as const;

export function pairsTable(doc: ReportDocument): Table {
  return {
    id: 'pairs',
    title: 'Every pair',
    columns: [
      { title: 'comparison' },
      { title: 'seed', numeric: true },
      { title: 'variant', numeric: true },
      { title: 'baseline', numeric: true },
      { title: 'difference', numeric: true },
    ],
    rows: doc.comparisons.flatMap((x) =>
      x.pairs.map((p) => [c(`${x.label} vs ${x.baseline}`), c(f.value(p.seed)), c(f.pct(p.variant)), c(f.pct(p.baseline)), c(f.points(p.difference))]),
    ),
  };
}

export function trialsTable(doc: ReportDocument): Table {
  const withCell = doc.trials.some((t) => Object.keys(t.cell).length > 0);
  const withMlflow = doc.trials.some((t) => t.mlflowUrl);
  return {
    id: 'trials',
    title: 'Trials',
    note: 'Each trial links to its workflow in the Temporal UI' + (withMlflow ? ' and to its MLflow run.' : '.'),
    columns: [
      { title: 'trial' },
      { title: doc.compare },
      ...(withCell ? [{ title: 'cell' }] : []),
      { title: 'seed', numeric: true },
      { title: 'best valid acc', numeric: true },
      { title: 'valid loss at best', numeric: true },
      { title: 'best epoch', numeric: true },
      { title: 'final valid loss', numeric: true },
      { title: 'epochs', numeric: true },
      { title: 'early-stopped' },
      { title: 'backend' },
      { title: 'train time', numeric: true },
      ...(withMlflow ? [{ title: 'MLflow' }] : []),
    ],
    rows: doc.trials.map((t) => [
      c(t.trial, t.temporalUrl),
      c(t.variant),
      ...(withCell ? [c(f.cell(t.cell))] : []),
      c(f.value(t.seed)),
      c(f.pct(t.bestValidAcc)),
      c(f.loss(t.bestValidLoss)),
      c(String(t.bestEpoch)),
      c(f.loss(t.finalValidLoss)),
      c(String(t.epochsRun)),
      c(t.stoppedEarly ? 'yes' : 'no'),
      c(t.backend),
      c(f.seconds(t.trainSeconds)),
      ...(withMlflow ? [t.mlflowUrl ? c('run', t.mlflowUrl) : c('–')] : []),
    ]),
  };
}

export function environmentTable(doc: ReportDocument): Table {
  const e = doc.environment;
  const list = (xs: Array<string | number>) => (xs.length ? xs.join(', ') : 'not recorded');
  const rows: TableCell[][] = [
    [c('backend'), c(list(e.backends))],
    [c('backend package'), c(list(e.backendPackages))],
    [c('TensorFlow.js'), c(list(e.tfjs))],
    [c('Node.js'), c(list(e.node))],
    [c('Temporal SDK'), c(list(e.temporalSdk))],
    [c('code'), c(list(e.code))],
    [c('step versions'), c(`train ${list(e.trainVersions)}, report ${e.reportVersion}`)],
    [c('training hosts'), c(list(e.hosts))],
    ...e.data.map((d) => [
      c(`data: ${d.type}`),
      c([`${d.dir}`, `digest ${f.short(d.digest)}`, ...Object.entries(d.details).map(([k, v]) => `${k} ${v}`)].join(' · ')),
    ]),
  ];
  if (e.unrecorded > 0) rows.push([c('note'), c(`${e.unrecorded} trial(s) trained before the environment was recorded`)]);
  return { id: 'environment', title: 'Environment', columns: [{ title: 'what' }, { title: 'value' }], rows };
}

export function trackingTable(doc: ReportDocument): Table {
  const t = doc.tracking;
  const rows: TableCell[][] = [];
  if (t.mlflow) {
    rows.push([c('MLflow sweep run'), t.mlflow.url ? c(t.mlflow.url, t.mlflow.url) : c(`not created (${t.mlflow.status})`)]);
  } else {
    rows.push([c('MLflow'), c('off (set MLFLOW_TRACKING_URI to log trials and reports to a tracking server)')]);
  }
  rows.push([c('TensorBoard'), c(`tensorboard --logdir ${t.tensorboard}/ in this report's folder (one run per trial)`)]);
  if (doc.temporal?.sweepUrl) rows.push([c('Temporal UI'), c(doc.temporal.sweepUrl, doc.temporal.sweepUrl)]);
  for (const p of t.problems) rows.push([c(`problem: ${p.source}`), c(p.message)]);
  return {
    id: 'tracking',
    title: 'Tracking',
    note: t.problems.length ? 'Tracking problems never fail a trial; they are listed here so that a gap in MLflow or TensorBoard is explained.' : undefined,
    columns: [{ title: 'what' }, { title: 'where' }],
    rows,
  };
}

export function paramsTable(doc: ReportDocument): Table {
  return {
    id: 'params',
    title: 'Pipeline parameters',
    columns: [{ title: 'parameter' }, { title: 'value' }],
    rows: Object.entries(doc.params ?? {}).map(([k, v]) => [c(k), c(String(v))]),
  };
}

/** Three tables per `describe` step: classes per split, sequence lengths, feature ranges. */
export function datasetTables(doc: ReportDocument): Table[] {
  const num = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4));
  return (doc.datasets ?? []).flatMap((d) => [
    {
      id: `${d.step}-classes`,
      title: `Data (${d.step}): classes`,
      note: `${d.sequences} sequences, ${d.classes.length} classes.`,
      columns: [{ title: 'class' }, { title: 'train', numeric: true }, { title: 'valid', numeric: true }],
      rows: d.classes.map((k) => [c(k.label), c(String(k.train)), c(String(k.valid))]),
    },
    {
      id: `${d.step}-lengths`,
      title: `Data (${d.step}): sequence lengths`,
      note: `From ${d.lengths.min} to ${d.lengths.max} timesteps, mean ${d.lengths.mean.toFixed(1)}.`,
      columns: [{ title: 'timesteps' }, { title: 'sequences', numeric: true }],
      rows: d.lengths.histogram.map((b) => [c(b.from === b.to ? String(b.from) : `${b.from}–${b.to}`), c(String(b.count))]),
    },
    {
      id: `${d.step}-features`,
      title: `Data (${d.step}): features`,
      columns: [
        { title: 'feature' },
        { title: 'min', numeric: true },
        { title: 'max', numeric: true },
        { title: 'mean', numeric: true },
        { title: 'std', numeric: true },
      ],
      rows: d.features.map((x) => [c(x.name), c(num(x.min)), c(num(x.max)), c(num(x.mean)), c(num(x.std))]),
    },
  ]);
}

export type SearchPlotKind = 'progress' | 'epochs' | 'params';
export const SEARCH_PLOTS: readonly SearchPlotKind[] = ['progress', 'epochs', 'params'];
/** A search's plot, by step: `search-train-progress`. */
export const searchPlot = (kind: SearchPlotKind, step: string): `search-${string}` => `search-${step}-${kind}`;

export type PlotName = 'differences' | 'valid_acc' | 'valid_loss' | `search-${string}`;

export interface Figure {
  plot: PlotName;
  title: string;
  caption: string;
}

export type Section = { kind: 'table'; table: Table } | { kind: 'figure'; figure: Figure };

/** A search's best trials with their parameters and the pruning decisions on them. */
export function searchTable(s: NonNullable<ReportDocument['search']>[number]): Table {
  const value = (v: unknown) => (typeof v === 'number' ? String(+v.toPrecision(4)) : String(v));
  const numeric = (p: string) => s.best.some((b) => typeof b.params[p] === 'number');
  return {
    id: `search-${s.step}`,
    title: `Search (${s.step}): best trials`,
    note:
      `${s.sampler} search, seed ${s.seed}: ${s.trialsPerCell} trials${s.cells > 1 ? ` in each of ${s.cells} cells of ${s.axes.join(' × ')}` : ''} ` +
      `over ${s.params.join(', ')}, suggested in rounds from the results so far; the ${s.best.length} best by best valid accuracy (a paused trial at the epochs it reached).` +
      (s.pruned ? ` Pruning: ${s.epochsSpent} epochs trained of the ${s.fullBudgetEpochs} the trials would take in full.` : ''),
    columns: [
      { title: 'trial' },
      { title: 'best valid accuracy', numeric: true },
      { title: 'epochs', numeric: true },
      ...(s.best.some((b) => b.decision) ? [{ title: 'decision' }] : []),
      ...s.axes.map((a) => ({ title: a })),
      ...s.params.map((p) => ({ title: p, numeric: numeric(p) })),
    ],
    rows: s.best.map((b) => [
      c(b.trial),
      c(f.pct(b.bestValidAcc)),
      c(String(b.epochs)),
      ...(s.best.some((x) => x.decision) ? [c(b.decision ?? '–')] : []),
      ...[...s.axes, ...s.params].map((p) => c(value(b.params[p]))),
    ]),
  };
}

/** Per search step: its best trials, best-so-far against epochs, epochs and decisions per trial, accuracy per parameter. */
function searchSections(doc: ReportDocument): Section[] {
  return (doc.search ?? []).flatMap((s) => [
    { kind: 'table' as const, table: searchTable(s) },
    ...(s.progress?.length
      ? [
          figure(
            searchPlot('progress', s.step),
            `Search (${s.step}): best so far against epochs trained`,
            `After each run, in the order the runs finished: the best validation accuracy found so far${s.cells > 1 ? ' in its cell' : ''}, against the epochs trained so far${s.pruned ? ' (a promoted trial counts only the epochs it trained after its rung)' : ''}.`,
          ),
          figure(
            searchPlot('epochs', s.step),
            `Search (${s.step}): epochs per trial and pruning decisions`,
            s.pruned
              ? 'Each trial in the order it was suggested: the epochs it trained, coloured by the last decision on it: paused at a rung (its checkpoint kept) or completed. Hover a bar for the rungs it was promoted at.'
              : 'Each trial in the order it was suggested: the epochs it trained (early stopping ends some sooner).',
          ),
          figure(
            searchPlot('params', s.step),
            `Search (${s.step}): best validation accuracy by parameter`,
            'One dot per trial, at its value of each searched parameter (a log axis where the values span two orders of magnitude or more); a paused trial at the accuracy it reached by its rung.',
          ),
        ]
      : []),
  ]);
}

/** Only searches upstream: their trials differ by their parameters, not by seed; there are no seed comparisons to show. */
export function isSearchOnly(doc: ReportDocument): boolean {
  return (doc.search?.length ?? 0) > 0 && doc.trials.every((t) => doc.search!.some((s) => s.step === t.step));
}

/** The report's subtitle: what it compares, or what it searched. */
export function subject(doc: ReportDocument): string {
  if (isSearchOnly(doc)) return `search of ${doc.search!.map((s) => `${s.params.join(', ')} (${s.step})`).join('; ')}`;
  return `variants of ${doc.compare} compared with ${doc.baseline}`;
}

const figure = (plot: PlotName, title: string, caption: string): Section => ({ kind: 'figure', figure: { plot, title, caption } });

/** What the report shows, in order; report.md and report.html both follow it. */
export function sectionsOf(doc: ReportDocument): Section[] {
  const table = (t: Table): Section => ({ kind: 'table', table: t });
  const band = 'Line: mean over the seeds that trained that epoch (early stopping ends some trials sooner); band: lowest to highest seed.';
  if (isSearchOnly(doc)) {
    return [
      ...searchSections(doc),
      table(trialsTable(doc)),
      ...(doc.params && Object.keys(doc.params).length ? [table(paramsTable(doc))] : []),
      ...datasetTables(doc).map(table),
      table(environmentTable(doc)),
      table(trackingTable(doc)),
    ];
  }
  return [
    ...searchSections(doc),
    table(summaryTable(doc)),
    ...(doc.comparisons.length
      ? [
          table(comparisonTable(doc)),
          figure(
            'differences',
            'Paired differences',
            "Dots: each seed's difference (variant − baseline); tick and bar: their mean and its 95% interval; dashed line: no difference.",
          ),
          table(pairsTable(doc)),
        ]
      : []),
    figure('valid_acc', 'Learning curves: validation accuracy', band),
    figure('valid_loss', 'Learning curves: validation loss', band),
    table(trialsTable(doc)),
    ...(doc.params && Object.keys(doc.params).length ? [table(paramsTable(doc))] : []),
    ...datasetTables(doc).map(table),
    table(environmentTable(doc)),
    table(trackingTable(doc)),
  ];
}

export function plotsOf(doc: ReportDocument): PlotName[] {
  return sectionsOf(doc).flatMap((s) => (s.kind === 'figure' ? [s.figure.plot] : []));
}
