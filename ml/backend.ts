import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

let wasmPathsSet = false;

/**
 * The .wasm binaries ship next to the package's entry point (dist/). Emscripten's
 * default lookup in Node is relative to the script that loads it, which breaks as soon
 * as a bundler or a different entry point is involved, so the folder is given explicitly.
 */
function pointWasmAtPackage(): void {
  if (wasmPathsSet) return;
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  setWasmPaths(dir + path.sep);
  wasmPathsSet = true;
}

/**
 * Loads @tensorflow/tfjs-node. Its 4.22 release calls `util.isNullOrUndefined` (and
 * `util.isArray`) at run time; Node 23 removed the first, so on Node 24 and later every op that
 * passes attributes fails with "isNullOrUndefined is not a function". The two are put back,
 * with their documented meaning, only where this Node lacks them.
 */
export function requireTfjsNode(): unknown {
  const util = require('node:util') as Record<string, unknown>;
  if (typeof util.isNullOrUndefined !== 'function') util.isNullOrUndefined = (v: unknown) => v === null || v === undefined;
  if (typeof util.isArray !== 'function') util.isArray = Array.isArray;
  return require('@tensorflow/tfjs-node');
}

/**
 * tfjs-node is an optional dependency whose native build may be missing. Requiring it
 * registers the 'tensorflow' backend in the global tfjs engine; the check below makes
 * sure that registration is visible through *our* `@tensorflow/tfjs` import (it is
 * whenever npm resolved a single tfjs-core; a second copy would silently train on a
 * different engine).
 */
function loadTensorflowBackend(): void {
  requireTfjsNode();
  if (tf.findBackendFactory('tensorflow') == null) {
    throw new Error(
      '@tensorflow/tfjs-node loaded but its backend is not registered in this @tensorflow/tfjs ' +
        'instance: more than one copy of @tensorflow/tfjs-core is installed; align the tfjs versions',
    );
  }
}

async function activate(name: string): Promise<void> {
  if (tf.getBackend() === name) return;
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`TensorFlow.js backend '${name}' failed to initialise`);
  await tf.ready();
}

async function tryTensorflow(): Promise<boolean> {
  try {
    loadTensorflowBackend();
    await activate('tensorflow');
    return true;
  } catch {
    return false;
  }
}

async function tryWasm(): Promise<boolean> {
  try {
    pointWasmAtPackage();
    await activate('wasm');
    return true;
  } catch {
    return false;
  }
}

/**
 * Selects the TensorFlow.js backend for this process and returns the name in use.
 * 'auto' prefers native TensorFlow, then wasm, then the pure-JS cpu backend; an explicit
 * choice fails loudly instead of falling back, so a benchmark never measures the wrong thing.
 */
export async function initBackend(pref: BackendPreference): Promise<string> {
  switch (pref) {
    case 'auto':
      if (!(await tryTensorflow()) && !(await tryWasm())) await activate('cpu');
      break;
    case 'tensorflow':
      try {
        loadTensorflowBackend();
      } catch (err) {
        throw new Error(`backend 'tensorflow' requested but @tensorflow/tfjs-node is not usable: ${(err as Error).message}`, { cause: err });
      }
      await activate('tensorflow');
      break;
    case 'wasm':
      pointWasmAtPackage();
      await activate('wasm');
      break;
    case 'cpu':
      await activate('cpu');
      break;
    default: {
      const never: never = pref;
      throw new Error(`unknown backend preference ${String(never)}`);
    }
  }
  return tf.getBackend();
}
