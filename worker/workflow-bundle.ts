/**
 * The workflow code as one bundle, built once by `npm run build` (webpack + swc take seconds and
 * the memory of a second process) instead of at every worker start. A worker uses the bundle when
 * it is at least as new as the compiled workflow code, and bundles at start otherwise (after a bare
 * `tsc`), saying so in its log.
 *
 *   node dist/worker/workflow-bundle.js     writes dist/workflow-bundle.js
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../artifacts/store';

const dist = join(__dirname, '..');
export const WORKFLOW_BUNDLE = join(dist, 'workflow-bundle.js');
const workflowsPath = require.resolve('../workflows');
/** The compiled folders the workflow code is made of (workflows/ and the plan types it reads). */
const SOURCES = ['workflows', 'pipeline'].map((d) => join(dist, d));

export type WorkflowSource = { workflowBundle: { codePath: string } } | { workflowsPath: string };

/** What Worker.create should load: the prebuilt bundle, or the workflow code to bundle now. */
export function workflowSource(logger?: Pick<Logger, 'warn'>): WorkflowSource {
  const built = mtime(WORKFLOW_BUNDLE);
  const newest = Math.max(...SOURCES.map(newestIn));
  if (built !== undefined && built >= newest) return { workflowBundle: { codePath: WORKFLOW_BUNDLE } };
  logger?.warn(
    { bundle: WORKFLOW_BUNDLE, reason: built === undefined ? 'missing' : 'older than the compiled workflows' },
    'bundling the workflow code at start; `npm run build` prebuilds it',
  );
  return { workflowsPath };
}

export async function writeWorkflowBundle(path = WORKFLOW_BUNDLE): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath });
  await writeFileAtomic(path, code);
}

function mtime(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function newestIn(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.js')) newest = Math.max(newest, mtime(join(entry.parentPath, entry.name)) ?? 0);
  }
  return newest;
}

if (require.main === module) {
  const started = Date.now();
  writeWorkflowBundle().then(
    () => process.stdout.write(`workflow bundle: ${WORKFLOW_BUNDLE} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`),
    (err: Error) => {
      process.stderr.write(`could not bundle the workflow code: ${err.message}\n`);
      process.exit(1);
    },
  );
}
