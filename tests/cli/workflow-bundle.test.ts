import { statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { WORKFLOW_BUNDLE, workflowSource } from '../../worker/workflow-bundle';
import { repoRoot } from '../helpers/fixtures';

// `npm run build` (which every test run starts with) writes the bundle after compiling.

test('a worker loads the workflow bundle that the build wrote, without bundling at start', () => {
  const warnings: unknown[] = [];
  expect(workflowSource({ warn: (...args: unknown[]) => warnings.push(args) })).toEqual({ workflowBundle: { codePath: WORKFLOW_BUNDLE } });
  expect(WORKFLOW_BUNDLE).toBe(join(repoRoot, 'dist', 'workflow-bundle.js'));
  expect(warnings).toEqual([]);
});

test('a bundle older than the compiled workflow code is not used: the worker bundles at start and says why', () => {
  const bundle = statSync(WORKFLOW_BUNDLE);
  const older = new Date(bundle.mtimeMs - 60_000);
  utimesSync(WORKFLOW_BUNDLE, older, older);
  try {
    const warnings: Array<[{ reason: string }, string]> = [];
    const source = workflowSource({ warn: (obj: { reason: string }, msg: string) => warnings.push([obj, msg]) } as never);
    expect(source).toEqual({ workflowsPath: require.resolve('../../workflows') });
    expect(warnings[0]?.[0].reason).toBe('older than the compiled workflows');
  } finally {
    utimesSync(WORKFLOW_BUNDLE, bundle.atime, bundle.mtime);
  }
});
