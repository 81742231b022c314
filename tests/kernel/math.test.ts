import { kernel, KERNEL_KINDS, kernelAvailable, type KernelKind } from '../../ml/kernel/load';

/**
 * The kernel's own exp, sigmoid, tanh and log (a -nostdlib wasm build has no libm), against
 * float64, in units in the last place of the float32 result.
 */
const f32 = Math.fround;
const ulp = (v: number): number => (v === 0 ? 1.4e-45 : 2 ** (Math.floor(Math.log2(Math.abs(v))) - 23));

function worstUlps(fn: (x: number) => number, exact: (x: number) => number, from: number, to: number, step: number): number {
  let worst = 0;
  for (let x = from; x <= to; x += step) {
    const xf = f32(x);
    const want = exact(xf);
    worst = Math.max(worst, Math.abs(fn(xf) - want) / ulp(want));
  }
  return worst;
}

const KINDS = KERNEL_KINDS.filter((k) => kernelAvailable(k));

describe.each<[KernelKind]>(KINDS.map((k) => [k]))('%s kernel', (kind) => {
  const k = kernel(kind).fn;

  test('exp is within 2 ulp over the whole float range it serves', () => {
    expect(worstUlps(k.test_exp, Math.exp, -87, 88, 0.0011)).toBeLessThanOrEqual(2);
  });

  test('sigmoid and tanh are within 3 ulp, including tiny arguments where tanh x ≈ x', () => {
    expect(worstUlps(k.test_sigmoid, (x) => 1 / (1 + Math.exp(-x)), -30, 30, 0.0003)).toBeLessThanOrEqual(3);
    expect(worstUlps(k.test_tanh, Math.tanh, -12, 12, 0.0003)).toBeLessThanOrEqual(3);
    for (const x of [1e-30, 3e-12, 1e-7, -4e-5, 2e-3]) expect(Math.abs(k.test_tanh(x) - Math.tanh(f32(x))) / ulp(Math.tanh(f32(x)))).toBeLessThanOrEqual(3);
  });

  test('log is within 3 ulp from 1e-30 to 1e30', () => {
    let worst = 0;
    for (let x = 1e-30; x <= 1e30; x *= 1.0007) {
      const xf = f32(x);
      worst = Math.max(worst, Math.abs(k.test_log(xf) - Math.log(xf)) / ulp(Math.log(xf)));
    }
    expect(worst).toBeLessThanOrEqual(3);
  });

  test('saturation and NaN: sigmoid and tanh reach their limits, and a NaN stays NaN (a diverged run shows)', () => {
    expect(k.test_tanh(50)).toBe(1);
    expect(k.test_tanh(-50)).toBe(-1);
    expect(k.test_sigmoid(200)).toBe(1);
    expect(k.test_sigmoid(-200)).toBeLessThan(1e-37);
    expect(k.test_exp(-1000)).toBeLessThan(1e-37);
    expect(k.test_exp(1000)).toBeGreaterThan(1e38);
    for (const f of [k.test_exp, k.test_sigmoid, k.test_tanh]) expect(f(NaN)).toBeNaN();
  });
});
