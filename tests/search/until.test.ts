import { rngFor, type Rng } from '../../ml/rng';
import { tQuantile975 } from '../../ml/stats';
import { assessPaired, checkUntil, confidenceSequence, logBayesFactor, untilSchema, type Decision } from '../../search/until';

function normal(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.uniform())) * Math.cos(2 * Math.PI * rng.uniform());
}

type Draw = (rng: Rng) => number;
const gaussian: Draw = normal;
/** Laplace (double exponential) with unit variance: symmetric, heavier tails than the normal. */
const laplace: Draw = (rng) => (rng.uniform() < 0.5 ? -1 : 1) * Math.log(1 - rng.uniform()) * Math.SQRT1_2;

interface Outcome {
  decision: Decision;
  seeds: number;
  low: number;
  high: number;
}

/** One study: a seed pair per round, assessed after each, until the rule stops it. */
function study(seed: number, meanDiff: number, draw: Draw, rule = { confidence: 0.95, margin: 1e-6, maxSeeds: 30 }): Outcome {
  const rng = rngFor(seed, 'until-study');
  const diffs: number[] = [];
  for (;;) {
    diffs.push(meanDiff + draw(rng));
    const a = assessPaired(diffs, rule);
    if (a.stop) return { decision: a.decision, seeds: a.n, low: a.low, high: a.high };
  }
}

const STUDIES = 2000;
const share = (outcomes: Outcome[], decision: Decision) => outcomes.filter((o) => o.decision === decision).length / outcomes.length;

describe('seeds until sure: anytime-valid confidence sequence', () => {
  it(`declares a winner in at most 5% of ${STUDIES} simulated studies with no true difference, checked after every seed up to 30`, () => {
    const outcomes = Array.from({ length: STUDIES }, (_, s) => study(s, 0, gaussian));
    const falseWinners = share(outcomes, 'different');
    expect(falseWinners).toBeLessThanOrEqual(0.05);
    // Measured 2.2% here (reported in the issue's note); Ville's inequality bounds it by 5%.
    expect(falseWinners).toBeGreaterThan(0);
  });

  it('stays within 5% false winners for symmetric heavy-tailed (Laplace) differences', () => {
    const outcomes = Array.from({ length: STUDIES }, (_, s) => study(s, 0, laplace));
    expect(share(outcomes, 'different')).toBeLessThanOrEqual(0.05);
  });

  it('is a simulation that catches an invalid rule: the fixed-n t interval, checked after every seed, declares far more than 5%', () => {
    let winners = 0;
    for (let s = 0; s < STUDIES; s++) {
      const rng = rngFor(s, 'until-study');
      const diffs: number[] = [];
      for (let n = 1; n <= 30; n++) {
        diffs.push(normal(rng));
        if (n < 2) continue;
        const mean = diffs.reduce((a, b) => a + b, 0) / n;
        const sd = Math.sqrt(diffs.reduce((a, d) => a + (d - mean) ** 2, 0) / (n - 1));
        if (Math.abs(mean) > (tQuantile975(n - 1) * sd) / Math.sqrt(n)) {
          winners++;
          break;
        }
      }
    }
    expect(winners / STUDIES).toBeGreaterThan(0.2);
  });

  it('decides under a real difference of one standard deviation: the right winner in ≥ 95% of studies, ~13 seeds on average', () => {
    const outcomes = Array.from({ length: 500 }, (_, s) => study(s, 1, gaussian));
    expect(outcomes.filter((o) => o.decision === 'different' && o.low > 0).length / outcomes.length).toBeGreaterThanOrEqual(0.95);
    const meanSeeds = outcomes.reduce((a, o) => a + o.seeds, 0) / outcomes.length;
    expect(meanSeeds).toBeLessThan(16);
    // Covers the true difference when it stops: the interval is still valid after stopping on the data.
    expect(outcomes.filter((o) => o.low <= 1 && 1 <= o.high).length / outcomes.length).toBeGreaterThanOrEqual(0.95);
  });

  it('stops when the interval is narrower than the margin: no difference that matters', () => {
    const outcomes = Array.from({ length: 200 }, (_, s) => study(s, 0, (rng) => 0.1 * normal(rng), { confidence: 0.95, margin: 0.5, maxSeeds: 30 }));
    expect(share(outcomes, 'within-margin')).toBeGreaterThanOrEqual(0.95);
    expect(Math.max(...outcomes.map((o) => o.high - o.low))).toBeLessThan(0.5);
  });

  it('stops at max_seeds undecided and says why', () => {
    const a = assessPaired([0.5, -0.4, 0.3, -0.6], { confidence: 0.95, margin: 0.1, maxSeeds: 4 });
    expect(a).toEqual(expect.objectContaining({ n: 4, decision: 'max-seeds', stop: true }));
    expect(a.reason).toBe('max_seeds (4) reached undecided: the 95% interval [−∞, ∞] contains 0 and is wider than the margin');
  });

  it('gives no interval before enough seeds and a finite one, wider than the fixed-n t interval, after', () => {
    expect(confidenceSequence([0.1], 0.95)).toEqual({ low: -Infinity, high: Infinity });
    const diffs = [0.012, 0.009, 0.015, 0.011, 0.008, 0.013, 0.01, 0.014, 0.009, 0.012];
    const cs = confidenceSequence(diffs, 0.95);
    const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    expect(cs.low + cs.high).toBeCloseTo(2 * mean, 12);
    const sd = Math.sqrt(diffs.reduce((a, d) => a + (d - mean) ** 2, 0) / 9);
    expect(cs.high - mean).toBeGreaterThan((tQuantile975(9) * sd) / Math.sqrt(10));
    expect(assessPaired(diffs, { confidence: 0.95, margin: 0.005, maxSeeds: 30 })).toEqual(expect.objectContaining({ decision: 'different', stop: true }));
  });

  it('computes the Bayes factor that numeric integration over the effect and the scale gives', () => {
    const x = [0.3, 1.1, -0.2, 0.8, 0.5];
    const mu0 = 0.1;
    const g = 1;
    const logLik = (mu: number, sigma: number) => x.reduce((s, v) => s - 0.5 * ((v - mu) / sigma) ** 2 - Math.log(sigma), 0);
    // B = ∫∫ L(μ0 + δσ, σ) N(δ; 0, g) dδ dσ/σ  /  ∫ L(μ0, σ) dσ/σ, integrated over log σ and δ.
    let num = 0;
    let den = 0;
    for (let i = 0; i < 500; i++) {
      const sigma = Math.exp(-6 + (i + 0.5) * 0.02);
      den += Math.exp(logLik(mu0, sigma));
      for (let j = 0; j < 500; j++) {
        const delta = -12 + (j + 0.5) * 0.048;
        num += Math.exp(logLik(mu0 + delta * sigma, sigma) - (0.5 * delta * delta) / g) * (0.048 / Math.sqrt(2 * Math.PI * g));
      }
    }
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const sd = Math.sqrt(x.reduce((a, v) => a + (v - mean) ** 2, 0) / (x.length - 1));
    const t = (mean - mu0) / (sd / Math.sqrt(x.length));
    expect(logBayesFactor(t, x.length, g)).toBeCloseTo(Math.log(num / den), 4);
  });
});

describe('until: declaration', () => {
  const matrix = { pooling: ['last', 'mean'], seed: [1, 2] };
  const parse = (raw: unknown) => untilSchema.safeParse(raw);

  it('accepts the issue example and fills defaults', () => {
    const until = untilSchema.parse({ compare: 'pooling', baseline: 'last', margin: 0.5, max_seeds: 30 });
    expect(until).toEqual({ compare: 'pooling', baseline: 'last', confidence: 0.95, margin: 0.5, max_seeds: 30, min_seeds: 2 });
    expect(checkUntil(until, matrix)).toEqual([]);
  });

  it('rejects bad fields, naming each', () => {
    const r = parse({ compare: 'pooling', baseline: 'last', confidence: 1.5, margin: -1, max_seeds: 2.5, extra: true });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.')).sort()).toEqual(['', 'confidence', 'margin', 'max_seeds']);
    expect(parse({ compare: 'pooling', baseline: 'last', margin: 0.5, max_seeds: 5, min_seeds: 6 }).error!.issues[0]).toEqual(
      expect.objectContaining({ path: ['min_seeds'], message: 'must not exceed max_seeds' }),
    );
  });

  it('checks compare and baseline against the matrix', () => {
    const until = (compare: string, baseline: string) => untilSchema.parse({ compare, baseline, margin: 0.5, max_seeds: 30 });
    expect(checkUntil(until('hidden', 'last'), matrix, 'steps.train.until')).toEqual([
      { path: 'steps.train.until.compare', message: '"hidden" is not a matrix axis (axes: pooling, seed)' },
    ]);
    expect(checkUntil(until('pooling', 'max'), matrix, 'steps.train.until')).toEqual([
      { path: 'steps.train.until.baseline', message: '"max" is not a value of matrix.pooling ("last", "mean")' },
    ]);
  });
});
