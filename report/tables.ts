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
      'P(better) is the probability that the true mean difference is above zero under a paired t model.',
    columns: [
      { title: 'comparison' },
      { title: 'pairs', numeric: true },
      { title: 'mean difference', numeric: true },
      { title: '95% interval', numeric: true },
      { title: 'P(better)', numeric: true },
      { title: 'better in', numeric: true },
      { title: 'conclusion' },
    ],
    rows: doc.comparisons.map((x) => [
      c(`${x.label} vs ${x.baseline}`),
      c(String(x.n)),
      c(f.points(x.mean)),
      c(x.n >= 2 ? f.pointsRange(x.low, x.high) : '– (one pair)'),
      c(f.probability(x.probabilityBetter)),
      c(f.count(x.wins, x.n)),
      c(CONCLUSIONS[x.conclusion]),
    ]),
  };
}

const CONCLUSIONS = {
  better: 'better (95% interval above zero)',
  worse: 'worse (95% interval below zero)',
  inconclusive: 'not enough evidence',
  'too-few-pairs': 'not enough evidence (one pair)',
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

export type PlotName = 'differences' | 'valid_acc' | 'valid_loss';

export interface Figure {
  plot: PlotName;
  title: string;
  caption: string;
}

export type Section = { kind: 'table'; table: Table } | { kind: 'figure'; figure: Figure };

/** What the report shows, in order; report.md and report.html both follow it. */
export function sectionsOf(doc: ReportDocument): Section[] {
  const table = (t: Table): Section => ({ kind: 'table', table: t });
  const figure = (plot: PlotName, title: string, caption: string): Section => ({ kind: 'figure', figure: { plot, title, caption } });
  const band = 'Line: mean over the seeds that trained that epoch (early stopping ends some trials sooner); band: lowest to highest seed.';
  return [
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
