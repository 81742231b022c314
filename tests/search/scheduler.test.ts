import { AshaPruner } from '../../search/asha';
import { createSampler } from '../../search/samplers';
import { nextActions, samplerView, type Action, type SearchPlan, type SearchTrial } from '../../search/scheduler';
import { syntheticCurve, tuningSpace } from './synthetic';

const MAX_EPOCHS = 27;

function plan(): SearchPlan {
  return {
    sampler: createSampler(
      tuningSpace,
      { algorithm: 'tpe', seed: 4, n_startup_trials: 10, n_ei_candidates: 24, prior_weight: 1, multivariate: false, constant_liar: true },
      'maximize',
    ),
    pruner: new AshaPruner({
      metric: 'valid_acc',
      direction: 'maximize',
      minResource: 1,
      maxResource: MAX_EPOCHS,
      reductionFactor: 3,
      minEarlyStoppingRate: 0,
    }),
    metric: 'valid_acc',
    maxEpochs: MAX_EPOCHS,
    maxTrials: 60,
  };
}

/**
 * Runs a sweep on synthetic learning curves with `concurrency` trials in flight, one epoch per
 * trial per tick, from recorded `trials` (empty, or restored after an interruption). Stops after
 * `ticks` ticks if given. Every action is checked against the records: a continued trial resumes
 * at its checkpoint.
 */
function simulate(trials: SearchTrial[], concurrency: number, ticks = Infinity): { trials: SearchTrial[]; actions: Action[]; epochs: number } {
  const p = plan();
  const actions: Action[] = [];
  let epochs = 0;
  for (let tick = 0; tick < ticks; tick++) {
    const running = () => trials.filter((t) => t.state === 'running');
    for (const action of nextActions(trials, p, concurrency - running().length)) {
      actions.push(action);
      if (action.kind === 'start') trials.push({ trial: action.trial, number: action.number, params: action.params, epochs: [], state: 'running' });
      else {
        const t = trials.find((x) => x.trial === action.trial)!;
        expect({ trial: t.trial, state: t.state, checkpoint: t.epochs.length }).toEqual({ trial: action.trial, state: 'paused', checkpoint: action.fromEpoch });
        t.state = 'running';
      }
    }
    if (running().length === 0) break;
    for (const t of running()) {
      (t.epochs as Array<Record<string, number>>).push({ valid_acc: syntheticCurve(t.params, t.epochs.length + 1) });
      epochs++;
      const decision = p.pruner!.afterEpoch(t.trial, trials);
      if (decision.action === 'pause') t.state = 'paused';
      else if (t.epochs.length === MAX_EPOCHS) t.state = 'complete';
    }
  }
  return { trials, actions, epochs };
}

describe('adaptive sweep scheduling (TPE + ASHA on synthetic learning curves)', () => {
  let sweep: ReturnType<typeof simulate>;
  beforeAll(() => {
    sweep = simulate([], 2);
  });

  it('runs every trial it may, spending under a quarter of the epochs of training them all to the end', () => {
    const { trials, epochs } = sweep;
    expect(trials).toHaveLength(60);
    expect(epochs).toBeLessThan((60 * MAX_EPOCHS) / 4);
    expect(trials.filter((t) => t.state === 'complete').length).toBeGreaterThan(0);
  });

  it('leaves every trial either trained to the end or paused at a rung (epochs 1, 3 or 9), never running', () => {
    const { trials } = sweep;
    const ends = new Set(trials.map((t) => `${t.state}@${t.epochs.length}`));
    expect([...ends].every((e) => ['complete@27', 'paused@1', 'paused@3', 'paused@9'].includes(e))).toBe(true);
  });

  it('continues paused trials from their checkpoint: promotions come first, each checked against the records', () => {
    const { actions } = sweep;
    const promotions = actions.filter((a) => a.kind === 'continue');
    expect(promotions.length).toBeGreaterThan(0);
    expect(promotions.every((a) => a.kind === 'continue' && a.toEpoch > a.fromEpoch)).toBe(true);
  });

  it('takes the same decisions after an interruption mid-rung as without one', () => {
    const straight = simulate([], 3);
    const before = simulate([], 3, 40);
    const restored = JSON.parse(JSON.stringify(before.trials)) as SearchTrial[];
    const after = simulate(restored, 3);
    expect([...before.actions, ...after.actions]).toEqual(straight.actions);
    expect(after.trials).toEqual(straight.trials);
  });

  it('shows the sampler complete trials by their last value and paused ones by their curve', () => {
    const trials: SearchTrial[] = [
      { trial: 'b', number: 1, params: { x: 2 }, epochs: [{ valid_acc: 0.5 }], state: 'paused' },
      { trial: 'a', number: 0, params: { x: 1 }, epochs: [{ valid_acc: 0.6 }, { valid_acc: 0.7 }], state: 'complete' },
      { trial: 'c', number: 2, params: { x: 3 }, epochs: [], state: 'running' },
    ];
    expect(samplerView(trials, 'valid_acc')).toEqual([
      { number: 0, params: { x: 1 }, state: 'complete', value: 0.7, intermediate: [0.6, 0.7] },
      { number: 1, params: { x: 2 }, state: 'pruned', intermediate: [0.5] },
      { number: 2, params: { x: 3 }, state: 'running' },
    ]);
  });
});
