import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { requireTfjsNode } from '../../ml/backend';
import { epochDirName } from '../../ml/checkpoint';
import type { EpochMetrics } from '../../ml/trainer';
import { syntheticData } from './synthetic-data';

/** What the trainer tests share: one small separable data set, scratch folders, comparisons. */
export const data = syntheticData({ seed: 1, train: 160, valid: 64, classes: 4, features: 3, maxLength: 12 });

/** A fresh checkpoint folder per call, all under one temp folder removed after the file's tests. */
export function scratchDirs(prefix: string): () => string {
  let root = '';
  let n = 0;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });
  return () => path.join(root, `run-${++n}`);
}

/** Everything but wall time, which is the one thing that legitimately differs between runs. */
export const numbers = (ms: EpochMetrics[]): Array<Omit<EpochMetrics, 'seconds'>> => ms.map(({ seconds: _s, ...rest }) => rest);

export const fileBytes = (dir: string, epoch: number, file: string): Buffer => fs.readFileSync(path.join(dir, epochDirName(epoch), file));

/** Whether native TensorFlow (tfjs-node) loads here: an optional dependency whose build may be missing. */
export function tfjsNodeLoads(): boolean {
  try {
    requireTfjsNode();
    return true;
  } catch {
    return false;
  }
}
