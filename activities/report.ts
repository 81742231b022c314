import { ApplicationFailure } from '@temporalio/common';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ArtifactCorrupt, type ArtifactStore } from '../artifacts/store';
import { trialWorkflowId } from '../pipeline/plan';
import { buildReport, type TrialInput } from '../report/analysis';
import type { DataArtifact, ReportDocument, ReportEnvironment, ReportTracking } from '../report/document';
import { renderHtml } from '../report/html';
import { plotFile, renderMarkdown } from '../report/markdown';
import { plotSpecs, renderSvgs } from '../report/plots';
import { searchReport, searchVerdict, trialOfRun } from '../report/search';
import { plotsOf } from '../report/tables';
import { activityContext } from './context';
import { isDescribeResult } from './describe';
import type { ActivityDeps } from './deps';
import { parseStepParams } from './params';
import { defineStep } from './step-module';
import { withTrialResults } from './trial-results';
import { codeVersion, pipelineOfSweep, SweepRun, temporalUiLink, type CodeVersion } from './tracking';
import type { EpochMetrics, ReportResult, StepInput, TrainResult } from './types';

export const reportParams = z.strictObject({
  baseline: z.string().default('last').describe('The variant every other one is compared to (a value of the `compare` parameter).'),
  compare: z.string().default('pooling').describe('The trial parameter whose values are compared.'),
});
export type ReportParams = z.infer<typeof reportParams>;

/** Bump when the files a report writes for the same trials change. */
export const REPORT_VERSION = 3;

interface TrialOfStep {
  step: string;
  result: TrainResult;
}

/** What the report's manifest records besides its files (small: it goes into workflow history). */
interface ReportBody {
  verdict: string;
  variants: ReportResult['variants'];
  mlflow?: string;
  trackingProblems: number;
}

/**
 * Compares every trial of the upstream matrix step(s) by one parameter, paired by seed, and writes
 * report.html (self-contained), report.md (+ plots/*.svg) and report.json, plus a TensorBoard
 * logdir with every trial's events. With MLFLOW_TRACKING_URI set, the report also becomes the
 * artifact of a parent MLflow run for the sweep.
 */
export async function report(given: StepInput<ReportParams>, deps: ActivityDeps): Promise<ReportResult> {
  // A large step's results come as a reference to them in the store: read them, so that the report
  // (and its cache key) is the same whichever form the step's output took.
  const input = { ...given, inputs: await withTrialResults(deps.store, given.inputs) };
  const params = parseStepParams(reportParams, input.params, input.step);
  const trials: TrialOfStep[] = Object.entries(input.inputs).flatMap(([step, value]) =>
    (Array.isArray(value) ? value : []).filter(isTrainResult).map((result) => ({ step, result })),
  );
  if (trials.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `step ${input.step}: no trial results among its needs [${Object.keys(input.inputs).join(', ')}]; a report needs a matrix step upstream`,
      'BadPipeline',
    );
  }
  const described = Object.entries(input.inputs).flatMap(([step, result]) => (isDescribeResult(result) ? [{ step, result }] : []));
  const log = deps.logger.child({ sweep: input.sweepId, step: input.step });
  const started = Date.now();
  const identity = {
    type: 'report',
    version: REPORT_VERSION,
    params,
    inputs: {
      sweep: input.sweepId,
      trials: trials.map((t) => t.result.ref.dir).sort(),
      // Only when present, so that reports without them keep their cache keys.
      ...(described.length ? { describe: described.map((d) => d.result.ref.dir) } : {}),
      ...(input.pipelineParams ? { pipelineParams: input.pipelineParams } : {}),
      ...(input.until ? { until: input.until } : {}),
      ...(input.search ? { search: input.search } : {}),
    },
  };
  // The report's MLflow calls may wait out retries on a struggling server: keep the heartbeat going.
  const ctx = activityContext();
  const keepAlive = ctx ? setInterval(() => ctx.heartbeat({ phase: 'report' }), 10_000) : undefined;
  const { ref, result, cached } = await deps.store
    .getOrBuild<ReportBody>(identity, (dir) => writeReport(dir, input, params, trials, deps, log))
    .finally(() => clearInterval(keepAlive));
  // Paths on this worker (for a bucket store: in its cache), which is where the CLI of `npm start` runs too.
  const local = (file: string) => deps.store.localPath(ref, file);
  return {
    ref,
    cached,
    seconds: (Date.now() - started) / 1000,
    files: {
      html: await local('report.html'),
      markdown: await local('report.md'),
      json: await local('report.json'),
    },
    tracking: { ...(result.mlflow ? { mlflow: result.mlflow } : {}), tensorboard: await local('tensorboard'), problems: result.trackingProblems },
    verdict: result.verdict,
    variants: result.variants,
  };
}

/**
 * What the comparison part of the report reads: a search's trials once each (a pruned search runs a
 * trial rung by rung, `<trial>-e<rung>`: its last run is the trial), grouped by the grid beside the
 * search only, never by the searched parameters (each trial has its own values of those).
 */
function comparedTrials(trials: TrialOfStep[], search: StepInput<ReportParams>['search']): TrialOfStep[] {
  const last = new Map<string, TrialOfStep>();
  const out: TrialOfStep[] = [];
  for (const t of trials) {
    const summary = search?.[t.step];
    if (!summary) {
      out.push(t);
      continue;
    }
    const key = `${t.step}/${trialOfRun(t.result.trial)}`;
    const seen = last.get(key);
    if (seen && seen.result.epochsRun > t.result.epochsRun) continue;
    const params = Object.fromEntries(Object.entries(t.result.params).filter(([k]) => k !== 'pause_at_epoch' && !summary.params.includes(k)));
    last.set(key, { step: t.step, result: { ...t.result, params } });
  }
  return [...out, ...last.values()];
}

const isTrainResult = (t: unknown): t is TrainResult => typeof t === 'object' && t !== null && 'best' in t && 'params' in t && 'ref' in t;

async function writeReport(
  dir: string,
  input: StepInput<ReportParams>,
  params: ReportParams,
  trials: TrialOfStep[],
  deps: ActivityDeps,
  log: ActivityDeps['logger'],
): Promise<ReportBody> {
  const sweepUrl = temporalUiLink(deps.ui, input.sweepId);
  // Opened first so that the report can link to its own MLflow run.
  const sweepRun = await SweepRun.open({ sweepId: input.sweepId, step: input.step, params, link: sweepUrl }, log);
  try {
    return await writeReportFiles(dir, input, params, trials, deps, log, sweepRun, sweepUrl);
  } catch (err) {
    await sweepRun.abandon();
    throw err;
  }
}

async function writeReportFiles(
  dir: string,
  input: StepInput<ReportParams>,
  params: ReportParams,
  trials: TrialOfStep[],
  deps: ActivityDeps,
  log: ActivityDeps['logger'],
  sweepRun: SweepRun,
  sweepUrl: string | undefined,
): Promise<ReportBody> {
  const problems: ReportTracking['problems'] = [
    ...trials.flatMap(({ result }) => (result.tracking?.problems ?? []).map((message) => ({ source: `trial ${result.trial}`, message }))),
    ...sweepRun.record.problems.map((message) => ({ source: 'report', message })),
  ];
  problems.push(...(await collectEventFiles(deps.store, trials, join(dir, 'tensorboard'))));

  const compared = comparedTrials(trials, input.search);
  const inputs: TrialInput[] = await Promise.all(
    compared.map(async ({ step, result }) => {
      const workflowId = trialWorkflowId(input.sweepId, result.trial);
      const temporalUrl = temporalUiLink(deps.ui, workflowId);
      return {
        trial: result.trial,
        step,
        params: result.params,
        best: result.best,
        epochs: await readEpochs(deps.store, result),
        stoppedEarly: result.stoppedEarly,
        backend: computedBy(result),
        workflowId,
        ...(temporalUrl ? { temporalUrl } : {}),
        ...(result.tracking?.mlflow?.url ? { mlflowUrl: result.tracking.mlflow.url } : {}),
        trackingProblems: result.tracking?.problems ?? [],
      };
    }),
  );
  const opened = sweepRun.record.mlflow;
  const doc = buildReport({
    sweepId: input.sweepId,
    pipeline: pipelineOfSweep(input.sweepId),
    generatedAt: new Date().toISOString(),
    compare: params.compare,
    baseline: params.baseline,
    trials: inputs,
    // The trials of a search differ by their searched parameters, not by seed: no pairs to make.
    pairBySeed: !input.search,
    environment: await environmentOf(
      deps.store,
      trials.map((t) => t.result),
    ),
    tracking: {
      ...(opened
        ? {
            mlflow: {
              status: opened.status,
              ...(opened.url ? { url: opened.url } : {}),
              ...(opened.experimentUrl ? { experimentUrl: opened.experimentUrl } : {}),
            },
          }
        : {}),
      tensorboard: 'tensorboard',
      problems,
    },
    ...(sweepUrl ? { sweepUrl } : {}),
  });

  if (input.pipelineParams) doc.params = input.pipelineParams;
  if (input.until) doc.until = Object.values(input.until);
  if (input.search) {
    doc.search = Object.entries(input.search).map(([step, summary]) =>
      searchReport(
        step,
        summary,
        trials
          .filter((t) => t.step === step)
          .map(({ result }) => ({
            trial: result.trial,
            params: result.params,
            epochsRun: result.epochsRun,
            stoppedEarly: result.stoppedEarly,
            bestValidAcc: result.best.valid_acc,
          })),
      ),
    );
    // Only searches upstream: the verdict is what they found.
    if (compared.every((t) => input.search![t.step])) doc.verdict = doc.search.map(searchVerdict).join(' ');
  }
  const described = Object.entries(input.inputs).flatMap(([step, result]) => (isDescribeResult(result) ? [{ step, ...result.description }] : []));
  if (described.length) doc.datasets = described;

  const plots = plotsOf(doc);
  const svgs = await renderSvgs(plotSpecs(doc, plots));
  await mkdir(join(dir, 'plots'), { recursive: true });
  for (const plot of plots) await writeFile(join(dir, plotFile(plot)), svgs[plot] ?? '');
  await writeFile(join(dir, 'report.json'), `${JSON.stringify(doc, null, 2)}\n`);
  await writeFile(join(dir, 'report.md'), renderMarkdown(doc));
  await writeFile(join(dir, 'report.html'), renderHtml(doc, svgs));

  const problemsAtOpen = sweepRun.record.problems.length;
  const trialRuns = trials.flatMap(({ result }) => (result.tracking?.mlflow?.runId ? [result.tracking.mlflow.runId] : []));
  const tracked = await sweepRun.complete(dir, ['report.html', 'report.md', 'report.json', ...plots.map(plotFile)], sweepMetrics(doc), trialRuns);
  if (tracked.mlflow?.url) log.info({ mlflowRun: tracked.mlflow.url }, 'report logged to MLflow');
  return {
    verdict: doc.verdict,
    variants: doc.groups.map((g) => ({ name: g.label, trials: g.trials, meanAcc: g.bestValidAcc.mean, stdAcc: g.bestValidAcc.std })),
    ...(tracked.mlflow?.url ? { mlflow: tracked.mlflow.url } : {}),
    // Those of the upload came after the files were written: they are in the log and counted here.
    trackingProblems: problems.length + tracked.problems.length - problemsAtOpen,
  };
}

async function readEpochs(store: ArtifactStore, result: TrainResult): Promise<EpochMetrics[]> {
  try {
    // A damaged metrics file must not turn into a wrong report: check it against the trial's manifest.
    await store.verifyFile(result.ref, result.metrics);
    return JSON.parse(await readFile(await store.localPath(result.ref, result.metrics), 'utf8')) as EpochMetrics[];
  } catch (err) {
    if (err instanceof ArtifactCorrupt) {
      throw ApplicationFailure.nonRetryable(
        `trial ${result.trial}: ${err.message}; run the sweep again (the trial retrains, its damaged artifact is set aside)`,
        'ArtifactCorrupt',
      );
    }
    throw err;
  }
}

/** Copies each trial's event file into `<report>/tensorboard/<trial>/`: one logdir for the whole sweep. */
async function collectEventFiles(store: ArtifactStore, trials: TrialOfStep[], target: string): Promise<ReportTracking['problems']> {
  const problems: ReportTracking['problems'] = [];
  const steps = new Set(trials.map((t) => t.step));
  for (const { step, result } of trials) {
    const folder = result.tracking?.tensorboard;
    if (!folder) continue;
    const run = steps.size > 1 ? `${step}-${result.trial}` : result.trial;
    try {
      const source = await store.localPath(result.ref, folder);
      const files = (await readdir(source)).filter((f) => f.includes('tfevents'));
      await mkdir(join(target, run), { recursive: true });
      for (const file of files) await copyFile(join(source, file), join(target, run, file));
    } catch (err) {
      problems.push({ source: `trial ${result.trial}`, message: `tensorboard: ${(err as Error).message}` });
    }
  }
  return problems;
}

const STORE_DIR = /^[a-z][\w-]*\/[0-9a-f]{32}$/;

/**
 * The environment the trials ran in (from their results) and the data they trained on: the chain
 * of upstream artifacts (padding ← dataset ← download), read from the store's manifests, whose
 * identities name their inputs.
 */
async function environmentOf(store: ArtifactStore, results: TrainResult[]): Promise<ReportEnvironment> {
  const envs = results.flatMap((r) => (r.tracking?.environment ? [r.tracking.environment] : []));
  const distinct = <T extends string | number>(xs: Array<T | undefined>) => [...new Set(xs.filter((x): x is T => x !== undefined))].sort();
  const trainVersions: number[] = [];
  const data = new Map<string, DataArtifact>();

  const visit = async (dir: string, isTrain: boolean): Promise<void> => {
    // An upstream artifact cleaned away (or a store that does not answer): the report says less, it does not fail.
    const manifest = await store.describe(dir).catch(() => undefined);
    if (!manifest) return;
    if (isTrain) trainVersions.push(manifest.identity.version);
    else if (!data.has(dir)) {
      data.set(dir, {
        type: manifest.identity.type,
        dir,
        digest: manifest.ref.digest,
        version: manifest.identity.version,
        details: flatten(manifest.identity.params),
      });
    }
    for (const value of Object.values((manifest.identity.inputs ?? {}) as Record<string, unknown>)) {
      if (typeof value === 'string' && STORE_DIR.test(value) && !data.has(value)) await visit(value, false);
    }
  };
  for (const r of results) await visit(r.ref.dir, true);

  return {
    backends: distinct(results.map((r) => r.backend)),
    node: distinct(envs.map((e) => e.node)),
    tfjs: distinct(envs.map((e) => e.tfjs)),
    backendPackages: distinct(envs.map((e) => e.backendPackage)),
    temporalSdk: distinct(envs.map((e) => e.temporal)),
    hosts: distinct(envs.map((e) => e.host)),
    code: distinct([...envs.map((e) => codeLabel(e.code)), codeLabel(await codeVersion())]),
    trainVersions: distinct(trainVersions),
    reportVersion: REPORT_VERSION,
    data: [...data.values()],
    unrecorded: results.length - envs.length,
  };
}

const codeLabel = (c: CodeVersion) => `${c.package}${c.commit ? `, git ${c.commit.slice(0, 12)}${c.dirty ? ' with uncommitted changes' : ''}` : ''}`;

function flatten(value: unknown, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((value ?? {}) as Record<string, unknown>)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

/** The sweep run's headline numbers in MLflow (keys allow only a few characters). */
function sweepMetrics(doc: ReportDocument): Record<string, number> {
  const key = (s: string) => s.replace(/[^A-Za-z0-9_\-. /]+/g, '_');
  const metrics: Record<string, number> = {};
  for (const g of doc.groups) metrics[`best_valid_acc_mean/${key(g.label)}`] = g.bestValidAcc.mean;
  for (const c of doc.comparisons) {
    metrics[`diff_vs_${key(c.baseline)}/${key(c.label)}`] = c.mean;
    metrics[`p_better_vs_${key(c.baseline)}/${key(c.label)}`] = c.probabilityBetter;
  }
  return metrics;
}

export const reportStep = defineStep({
  type: 'report',
  params: reportParams,
  reads: { from: 'train', count: 'at least one', trials: true },
  matrix: false,
  durability: {
    startToCloseTimeout: '10m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
  summary: (p) => `compare trials by ${p.compare} against ${p.baseline}`,
  comparesAxis: (p) => p.compare,
  checkUpstream: (p, upstream) => {
    const withAxis = upstream.filter((u) => p.compare in u.axes);
    // A search without that grid axis is reported as a search: its best trials and how it went.
    if (withAxis.length === 0 && upstream.every((u) => u.search)) return [];
    if (withAxis.length === 0) {
      const axes = upstream.map((u) => `${u.step}: ${Object.keys(u.axes).join(', ')}`).join('; ');
      return [{ field: 'compare', message: `"${p.compare}" is not a matrix axis of the trials it reads (${axes}): compare one of those axes` }];
    }
    const values = [...new Set(withAxis.flatMap((u) => u.axes[p.compare]!.map(String)))];
    // With one value there is nothing to compare: the report summarises that one variant.
    if (values.length > 1 && !values.includes(p.baseline)) {
      return [{ field: 'baseline', message: `"${p.baseline}" is not a value of ${p.compare} in the matrix (${values.join(', ')}): name one of them` }];
    }
    return [];
  },
  activity: report,
});

/**
 * What computed a trial, for the report: the engine and kernel or backend it resolved to, and a
 * mix of engines (allowed by allow_engine_change) said in so many words. Older results: the backend.
 */
export function computedBy(result: TrainResult): string {
  const change = result.engineChange;
  if (change === undefined) return result.computedBy ?? result.backend;
  if (change.cacheHit) return `${change.from} (cached; this worker: ${change.to})`;
  return `${change.to} after ${change.atEpoch ?? '?'} epochs of ${change.from}`;
}
