import { rngFor } from '../ml/rng';
import { checkTrials, uniform53, type Sampler, type TrialResult } from './sampler';
import { fromUnit, paramNames, type Params, type SearchSpace } from './space';

/**
 * Independent uniform draws. Trial n's parameters come from the stream (seed, 'random', n), so a
 * suggestion depends only on the seed and its trial number, never on how many came before it.
 */
export class RandomSampler implements Sampler {
  constructor(
    private readonly space: SearchSpace,
    private readonly seed: number,
  ) {}

  suggest(trials: readonly TrialResult[], count: number): Params[] {
    checkTrials(trials);
    return Array.from({ length: count }, (_, i) => this.paramsOf(trials.length + i));
  }

  /** The parameters random search gives trial `number` (TPE's start-up trials are these too). */
  paramsOf(number: number): Params {
    const rng = rngFor(this.seed, 'random', number);
    const next = () => rng.nextUint32();
    const params: Params = {};
    for (const name of paramNames(this.space)) params[name] = fromUnit(this.space[name]!, uniform53(next));
    return params;
  }
}
