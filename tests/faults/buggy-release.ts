/**
 * Preloaded (`node --require`) into a worker process to make it a release with a bug: its report
 * step dereferences something that is not there, as a real slip would. The fixed release is the
 * same worker without this file. Only that process is affected; the code on disk is unchanged.
 */
// The registry calls the step module's `activity`, so that is what the buggy release replaces.
const reportModule = require('../../activities/report') as { reportStep: { activity: (...args: unknown[]) => Promise<unknown> } };

reportModule.reportStep.activity = async () => {
  const options = undefined as unknown as { title: string };
  return options.title; // TypeError: Cannot read properties of undefined
};
