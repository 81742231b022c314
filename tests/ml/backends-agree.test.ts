import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../ml/backend';
import { gatherBatch, planBatches } from '../../ml/batches';
import { GruClassifier } from '../../ml/model';
import { Adam } from '../../ml/optim';
import { POOLINGS, type Pooling } from '../../ml/pooling';
import { rngFor } from '../../ml/rng';
import { trainStep } from '../../ml/trainer';
import { syntheticData } from './synthetic-data';
import { tfjsNodeLoads } from './trainer-fixture';

/**
 * tfjs-node (native TensorFlow) and the WebAssembly backend must compute the same model: a trial
 * resumed on a worker with the other backend, or a report mixing both, has to mean the same thing.
 */
const available = tfjsNodeLoads();
if (!available && process.env.CI) {
  // CI builds tfjs-node in its setup step; a silent skip there would hide a broken build.
  throw new Error('@tensorflow/tfjs-node does not load on CI: run `npm run setup` (scripts/tfjs-node/setup.sh)');
}
const describeIfNode = available ? describe : describe.skip;
if (!available) console.warn('tfjs-node is not installed here: the backend agreement tests are skipped');

const data = syntheticData({ seed: 11, train: 64, valid: 8, classes: 20, features: 3, maxLength: 30, minLength: 10 });
const rows = planBatches(data.train, 32, 'batch-max', rngFor(11, 'order'))[0]!;
const batch = gatherBatch(data.train, data.maxLength, data.features, rows);

/** Loss before and after three Adam steps, and the weights after, from the same seed. */
async function run(backend: 'tensorflow' | 'wasm', pooling: Pooling) {
  await initBackend(backend);
  const model = new GruClassifier({ inputSize: 3, hidden: 64, layers: 1, dropout: 0, classes: 20, pooling }, rngFor(5, 'init'));
  const adam = new Adam(model.variables, { lr: 1e-3, weightDecay: 1e-5 });
  const losses = [trainStep(model, adam, batch), trainStep(model, adam, batch), trainStep(model, adam, batch)];
  const weights = model.getWeights();
  adam.dispose();
  model.dispose();
  return { losses, weights };
}

describeIfNode('tfjs-node and wasm agree', () => {
  afterAll(() => tf.setBackend('cpu'));

  test.each(POOLINGS.map((p) => [p]))('%s: the same losses and weights over three training steps, within float32 tolerance', async (pooling) => {
    const native = await run('tensorflow', pooling);
    const wasm = await run('wasm', pooling);
    native.losses.forEach((loss, i) => expect(Math.abs(loss - wasm.losses[i]!) / Math.abs(loss)).toBeLessThan(1e-5));
    let worst = 0;
    native.weights.forEach((w, i) => {
      worst = Math.max(worst, Math.abs(w - wasm.weights[i]!));
    });
    // Adam's first steps move each weight by about lr; the backends may differ only in rounding.
    expect(worst).toBeLessThan(1e-5);
  });
});
