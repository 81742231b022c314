import * as tf from '@tensorflow/tfjs';
import { initBackend, requireTfjsNode } from '../../ml/backend';

function tfjsNodeInstalled(): boolean {
  try {
    requireTfjsNode();
    return true;
  } catch {
    return false;
  }
}

test('wasm loads its binaries from the installed package and computes', async () => {
  expect(await initBackend('wasm')).toBe('wasm');
  const product = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0]);
  expect(product).toBe(11);
});

test('cpu is always available', async () => {
  expect(await initBackend('cpu')).toBe('cpu');
});

test('auto prefers native TensorFlow when tfjs-node loads, else wasm', async () => {
  const want = tfjsNodeInstalled() ? 'tensorflow' : 'wasm';
  expect(await initBackend('auto')).toBe(want);
  expect(tf.getBackend()).toBe(want);
});

test('an explicit tensorflow request fails loudly when tfjs-node is missing, instead of falling back', async () => {
  if (tfjsNodeInstalled()) {
    expect(await initBackend('tensorflow')).toBe('tensorflow');
  } else {
    await expect(initBackend('tensorflow')).rejects.toThrow("backend 'tensorflow' requested but @tensorflow/tfjs-node is not usable");
  }
});
