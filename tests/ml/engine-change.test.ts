import * as fs from 'node:fs';
import * as path from 'node:path';
import { computedBy } from '../../activities/report';
import type { TrainResult } from '../../activities/types';
import { epochDirName } from '../../ml/checkpoint';
import { kernel } from '../../ml/kernel/load';
import { describeEngine, EngineMismatchError, train } from '../../ml/trainer';
import { quickConfig } from './quick-config';
import { data, scratchDirs } from './trainer-fixture';

const nextDir = scratchDirs('engine-change-');
const fusedLabel = () => `fused (${kernel().kind} kernel)`;

/** Two epochs by the op-by-op engine on wasm, as an unlike worker would have left them. */
async function startedByTfjs(): Promise<string> {
  const dir = nextDir();
  await train(data, quickConfig({ engine: 'tfjs', backend: 'wasm', epochs: 2 }), { checkpointDir: dir });
  return dir;
}

test('every checkpoint records what computed it', async () => {
  const dir = await startedByTfjs();
  const state = JSON.parse(fs.readFileSync(path.join(dir, epochDirName(2), 'state.json'), 'utf8')) as { payload: { computedBy?: string } };
  expect(state.payload.computedBy).toBe('tfjs (wasm backend)');
});

test('resuming a checkpoint that another engine computed is refused, naming both engines and the way out', async () => {
  const dir = await startedByTfjs();
  const resume = train(data, quickConfig({ engine: 'fused', epochs: 3 }), { checkpointDir: dir });
  await expect(resume).rejects.toThrow(EngineMismatchError);
  await expect(resume).rejects.toThrow(`was computed by tfjs (wasm backend), but this worker resolves the engine to ${fusedLabel()}`);
  await expect(resume).rejects.toThrow('allow_engine_change: true');
  // Nothing was trained on top of the foreign checkpoint.
  expect(fs.existsSync(path.join(dir, epochDirName(3)))).toBe(false);
});

test('allowEngineChange resumes across engines and says so in the outcome', async () => {
  const dir = await startedByTfjs();
  const outcome = await train(data, quickConfig({ engine: 'fused', epochs: 3, allowEngineChange: true }), { checkpointDir: dir });
  expect(outcome.resumedFromEpoch).toBe(2);
  expect(outcome.epochs).toHaveLength(3);
  expect(outcome.computedBy).toBe(fusedLabel());
  expect(outcome.engineChange).toEqual({ from: 'tfjs (wasm backend)', to: fusedLabel(), atEpoch: 2 });
});

test('resuming with the same engine reports no engine change', async () => {
  const dir = await startedByTfjs();
  const outcome = await train(data, quickConfig({ engine: 'tfjs', backend: 'wasm', epochs: 3 }), { checkpointDir: dir });
  expect(outcome.resumedFromEpoch).toBe(2);
  expect(outcome.engineChange).toBeUndefined();
  expect(outcome.computedBy).toBe(await describeEngine({ engine: 'tfjs', backend: 'wasm' }));
});

test("the report's trial table says what computed a trial, and an engine change in words", () => {
  const base = { backend: 'wasm' } as TrainResult;
  expect(computedBy(base)).toBe('wasm'); // results from before engines were recorded
  expect(computedBy({ ...base, computedBy: 'fused (native kernel)' })).toBe('fused (native kernel)');
  expect(
    computedBy({ ...base, computedBy: 'fused (wasm kernel)', engineChange: { from: 'fused (native kernel)', to: 'fused (wasm kernel)', atEpoch: 4 } }),
  ).toBe('fused (wasm kernel) after 4 epochs of fused (native kernel)');
  expect(
    computedBy({ ...base, computedBy: 'fused (native kernel)', engineChange: { from: 'fused (native kernel)', to: 'fused (wasm kernel)', cacheHit: true } }),
  ).toBe('fused (native kernel) (cached; this worker: fused (wasm kernel))');
});
