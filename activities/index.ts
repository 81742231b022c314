import type { DatasetParams, DownloadParams, PaddingParams, ReportParams, TrainParams } from '../pipeline/steps';
import { dataset } from './dataset';
import type { ActivityDeps } from './deps';
import { download } from './download';
import { padding } from './padding';
import { report } from './report';
import { train } from './train';
import type { StepInput } from './types';

/**
 * The activities the worker registers, one per step type; the names are the `uses:` of pipeline
 * steps and the activity types shown in the Temporal UI.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    download: (input: StepInput<DownloadParams>) => download(input, deps),
    dataset: (input: StepInput<DatasetParams>) => dataset(input, deps),
    padding: (input: StepInput<PaddingParams>) => padding(input, deps),
    train: (input: StepInput<TrainParams>) => train(input, deps),
    report: (input: StepInput<ReportParams>) => report(input, deps),
  };
}

export type SweepActivities = ReturnType<typeof createActivities>;
