import { AshaPruner } from '../../search/asha';
import { HyperbandPruner } from '../../search/hyperband';
import { MedianPruner } from '../../search/median';
import type { EpochDecision, Pruner, TrialProgress } from '../../search/pruner';
import { createPruner, prunerConfigSchema } from '../../search/pruners';

/** A study's recorded progress, driven the way the engine would drive a pruner. */
class Study {
  readonly trials: Array<TrialProgress & { epochs: Array<Record<string, number>> }> = [];
  constructor(private readonly pruner: Pruner) {}

  start(trial: string): void {
    this.trials.push({ trial, epochs: [], state: 'running' });
  }

  /** Records the next epoch's accuracy of a running trial and applies the pruner's decision. */
  report(trial: string, acc: number, last = false): EpochDecision {
    const t = this.trials.find((x) => x.trial === trial)!;
    expect(t.state).toBe('running');
    t.epochs.push({ acc });
    const decision = this.pruner.afterEpoch(trial, this.trials);
    if (decision.action === 'pause') t.state = 'paused';
    else if (last) t.state = 'complete';
    return decision;
  }

  /** Runs a trial from its current epoch through `accs`, one epoch each, stopping early if paused. */
  run(trial: string, accs: number[], maxEpochs: number): EpochDecision {
    let decision: EpochDecision = { action: 'continue' };
    for (const acc of accs) {
      const t = this.trials.find((x) => x.trial === trial)!;
      decision = this.report(trial, acc, t.epochs.length + 1 === maxEpochs);
      if (decision.action === 'pause') break;
    }
    return decision;
  }

  promote(): ReturnType<Pruner['promotion']> {
    const promotion = this.pruner.promotion(this.trials);
    if (promotion) this.trials.find((x) => x.trial === promotion.trial)!.state = 'running';
    return promotion;
  }
}

const paused = (trial: string, atEpoch: number) => expect.objectContaining({ action: 'pause', trial, atEpoch });
const go = { action: 'continue' };

describe('ASHA', () => {
  // η = 3, grace 1 epoch, 9 epochs in all: rungs at epochs 1 and 3.
  const asha = () => new AshaPruner({ metric: 'acc', direction: 'maximize', minResource: 1, maxResource: 9, reductionFactor: 3, minEarlyStoppingRate: 0 });

  it('places rungs at grace · η^k below the full training length', () => {
    expect(asha().rungs).toEqual([1, 3]);
    expect(
      new AshaPruner({ metric: 'acc', direction: 'maximize', minResource: 2, maxResource: 50, reductionFactor: 2, minEarlyStoppingRate: 1 }).rungs,
    ).toEqual([4, 8, 16, 32]);
  });

  it('pauses and promotes the trials of a hand-computed example', () => {
    const s = new Study(asha());
    // A and B pause at epoch 1: with fewer than η trials at the rung, none goes on (⌊n/3⌋ = 0).
    s.start('A');
    expect(s.report('A', 0.5)).toEqual(paused('A', 1));
    expect(s.promote()).toBeNull();
    s.start('B');
    expect(s.report('B', 0.7)).toEqual(paused('B', 1));
    expect(s.promote()).toBeNull();
    // C makes three at the rung: the best of them, B, is promoted from its checkpoint, not C.
    s.start('C');
    expect(s.report('C', 0.6)).toEqual(paused('C', 1));
    expect(s.promote()).toEqual(expect.objectContaining({ trial: 'B', fromEpoch: 1, toEpoch: 3 }));
    expect(s.run('B', [0.72, 0.75], 9)).toEqual(paused('B', 3));
    expect(s.promote()).toBeNull();
    // D is the best at epoch 1 (rank 1 of 4, ⌊4/3⌋ = 1 go on), so it goes on without pausing.
    s.start('D');
    expect(s.report('D', 0.9)).toEqual(go);
    expect(s.run('D', [0.88, 0.85], 9)).toEqual(paused('D', 3));
    expect(s.promote()).toBeNull();
    s.start('E');
    expect(s.report('E', 0.4)).toEqual(paused('E', 1));
    expect(s.promote()).toBeNull();
    // F is second of six at epoch 1 (⌊6/3⌋ = 2 go on), but at epoch 3 it ranks behind D.
    s.start('F');
    expect(s.run('F', [0.8, 0.8, 0.8], 9)).toEqual(paused('F', 3));
    // Three trials at the epoch-3 rung: D is the best and continues from epoch 3 to the end.
    expect(s.promote()).toEqual(expect.objectContaining({ trial: 'D', fromEpoch: 3, toEpoch: 9 }));
    expect(s.run('D', [0.9, 0.9, 0.9, 0.9, 0.9, 0.92], 9)).toEqual(go);
    expect(s.trials.find((t) => t.trial === 'D')!.state).toBe('complete');
    expect(s.promote()).toBeNull();
    // G pauses at epoch 1 (third of seven); once nine trials are there, the best 3 include G: promoted.
    s.start('G');
    expect(s.report('G', 0.75)).toEqual(paused('G', 1));
    expect(s.promote()).toBeNull();
    s.start('H');
    expect(s.report('H', 0.3)).toEqual(paused('H', 1));
    s.start('I');
    expect(s.report('I', 0.2)).toEqual(paused('I', 1));
    expect(s.promote()).toEqual(expect.objectContaining({ trial: 'G', fromEpoch: 1, toEpoch: 3 }));
  });

  it('makes the same decisions from records restored after an interruption (a JSON round trip)', () => {
    const s = new Study(asha());
    for (const [id, acc] of [
      ['A', 0.5],
      ['B', 0.7],
      ['C', 0.6],
    ] as const) {
      s.start(id);
      s.report(id, acc);
    }
    const restored = JSON.parse(JSON.stringify(s.trials)) as TrialProgress[];
    expect(asha().promotion(restored)).toEqual(asha().promotion(s.trials));
    expect(asha().afterEpoch('C', restored)).toEqual(asha().afterEpoch('C', s.trials));
  });

  it('ranks by the declared metric and direction (lower loss is better)', () => {
    const pruner = new AshaPruner({ metric: 'loss', direction: 'minimize', minResource: 1, maxResource: 9, reductionFactor: 2, minEarlyStoppingRate: 0 });
    const trials: TrialProgress[] = [
      { trial: 'a', epochs: [{ loss: 0.9, acc: 0.9 }], state: 'paused' },
      { trial: 'b', epochs: [{ loss: 0.2, acc: 0.1 }], state: 'running' },
    ];
    expect(pruner.afterEpoch('b', trials)).toEqual(go);
    const byAcc = new AshaPruner({ metric: 'acc', direction: 'maximize', minResource: 1, maxResource: 9, reductionFactor: 2, minEarlyStoppingRate: 0 });
    expect(byAcc.afterEpoch('b', trials)).toEqual(paused('b', 1));
    const byMissing = new AshaPruner({ metric: 'val', direction: 'maximize', minResource: 1, maxResource: 9, reductionFactor: 3, minEarlyStoppingRate: 0 });
    expect(() => byMissing.afterEpoch('b', trials)).toThrow('epoch 1 has no metric "val" (it has: loss, acc)');
  });
});

describe('Hyperband', () => {
  const hyperband = () => new HyperbandPruner({ metric: 'acc', direction: 'maximize', minResource: 1, maxResource: 27, reductionFactor: 3 });

  it('has the brackets of Hyperband for 27 epochs and η = 3: first rungs at 1, 3, 9 and 27 epochs', () => {
    const hb = hyperband();
    expect(hb.brackets.map((b) => b.rungs)).toEqual([[1, 3, 9], [3, 9], [9], []]);
    // Trials per bracket ∝ ⌈B · η^(B−1−s) / (B − s)⌉ with B = 4 brackets.
    expect(hb.budgets).toEqual([27, 12, 6, 4]);
  });

  it('assigns trials to brackets in proportion to their budgets, by id alone', () => {
    const hb = hyperband();
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4900; i++) counts[hb.bracketOf(`trial-${i}`)]!++;
    [27, 12, 6, 4].forEach((budget, s) => expect(Math.abs(counts[s]! / 4900 - budget / 49)).toBeLessThan(0.03));
    expect(hyperband().bracketOf('trial-17')).toBe(hb.bracketOf('trial-17'));
  });

  it('judges a trial only against the trials of its own bracket', () => {
    const hb = hyperband();
    const ids = (s: number, n: number) =>
      Array.from({ length: 500 }, (_, i) => `t${i}`)
        .filter((id) => hb.bracketOf(id) === s)
        .slice(0, n);
    const [a, b, c] = ids(0, 3) as [string, string, string];
    const [late] = ids(2, 1) as [string];
    const trials: TrialProgress[] = [
      { trial: late, epochs: [{ acc: 0.99 }], state: 'running' },
      { trial: a, epochs: [{ acc: 0.5 }], state: 'paused' },
      { trial: b, epochs: [{ acc: 0.6 }], state: 'paused' },
      { trial: c, epochs: [{ acc: 0.1 }], state: 'running' },
    ];
    // Bracket 0 has three trials at epoch 1: b is its best, whatever the bracket-2 trial scored.
    expect(hb.afterEpoch(c, trials)).toEqual(expect.objectContaining({ action: 'pause', atEpoch: 1 }));
    expect(hb.promotion(trials)).toEqual(expect.objectContaining({ trial: b, fromEpoch: 1, toEpoch: 3 }));
    // The bracket-2 trial's first rung is at epoch 9: nothing judges it at epoch 1.
    expect(hb.afterEpoch(late, trials)).toEqual(go);
  });
});

describe('median stopping', () => {
  const medianRule = (startup = 2, warmup = 0) =>
    new MedianPruner({ metric: 'acc', direction: 'maximize', nStartupTrials: startup, nWarmupEpochs: warmup, nMinTrials: 1 });
  const done = (trial: string, accs: number[]): TrialProgress => ({ trial, epochs: accs.map((acc) => ({ acc })), state: 'complete' });
  const running = (accs: number[]): TrialProgress => ({ trial: 'x', epochs: accs.map((acc) => ({ acc })), state: 'running' });
  const finished = [done('a', [0.5, 0.6, 0.7]), done('b', [0.6, 0.7, 0.8]), done('c', [0.7, 0.8, 0.9])];

  it('pauses a trial whose best value so far is below the median of completed trials at that epoch', () => {
    expect(medianRule().afterEpoch('x', [...finished, running([0.4, 0.65])])).toEqual({
      action: 'pause',
      trial: 'x',
      atEpoch: 2,
      reason: 'best acc so far 0.65 is worse than the median 0.7 of 3 completed trials at epoch 2',
    });
  });

  it('lets a trial go on when its best value so far reaches the median', () => {
    expect(medianRule().afterEpoch('x', [...finished, running([0.75, 0.65])])).toEqual(go);
  });

  it('pauses nothing before enough trials completed or during the warm-up epochs', () => {
    expect(medianRule(4).afterEpoch('x', [...finished, running([0.1, 0.1])])).toEqual(go);
    expect(medianRule(2, 2).afterEpoch('x', [...finished, running([0.1, 0.1])])).toEqual(go);
    expect(medianRule(2, 2).afterEpoch('x', [...finished, running([0.1, 0.1, 0.1])])).toEqual(paused('x', 3));
  });

  it('never promotes', () => {
    expect(medianRule().promotion([...finished, { ...running([0.1]), state: 'paused' }])).toBeNull();
  });
});

describe('pruner configuration', () => {
  it('builds each rule from its pipeline declaration with defaults', () => {
    const asha = createPruner(prunerConfigSchema.parse({ rule: 'asha' }), 20) as AshaPruner;
    expect(asha.rungs).toEqual([1, 3, 9]);
    const hb = createPruner(prunerConfigSchema.parse({ rule: 'hyperband', grace_epochs: 2, reduction_factor: 2 }), 16) as HyperbandPruner;
    expect(hb.brackets.map((b) => b.rungs[0])).toEqual([2, 4, 8, undefined]);
  });

  it('rejects an unknown rule and a reduction factor below 2, naming the field', () => {
    const bad = prunerConfigSchema.safeParse({ rule: 'asha', reduction_factor: 1 });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.path).toEqual(['reduction_factor']);
    expect(prunerConfigSchema.safeParse({ rule: 'sha' }).success).toBe(false);
  });
});
