import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';

// The project compiles without the DOM lib, where TypeScript declares WebAssembly; Node has it
// as a global. Only the few members used here are typed.
interface WasmGlobal {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  validate(bytes: Uint8Array): boolean;
}
const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WasmGlobal }).WebAssembly;

/** The C functions of gru.c, as exports of either build. Pointers are byte offsets into `memory` (0: none). */
export interface KernelExports {
  memory: { buffer: ArrayBuffer };
  kalloc(bytes: number): number;
  kmark(): number;
  krelease(mark: number): void;
  test_exp(x: number): number;
  test_sigmoid(x: number): number;
  test_tanh(x: number): number;
  test_log(x: number): number;
  gru_scratch_floats(T: number, B: number, I: number, H: number): number;
  gru_forward(T: number, B: number, I: number, H: number, x: number, wIh: number, wHh: number, bIh: number, bHh: number, tape: number, scratch: number): void;
  gru_backward(
    T: number,
    B: number,
    I: number,
    H: number,
    x: number,
    wIh: number,
    wHh: number,
    bIh: number,
    bHh: number,
    tape: number,
    dH: number,
    dx: number,
    dwIh: number,
    dwHh: number,
    dbIh: number,
    dbHh: number,
    scratch: number,
  ): void;
  pool_forward(mode: number, T: number, B: number, H: number, lengths: number, h: number, pooled: number): void;
  pool_backward(mode: number, T: number, B: number, H: number, lengths: number, h: number, pooled: number, dpooled: number, dH: number): void;
  pool_count(): number;
  pool_name(i: number, dst: number, cap: number): number;
  model_param_count(I: number, H: number, L: number, C: number): number;
  model_create(I: number, H: number, L: number, C: number, maxT: number, maxB: number): number;
  model_buffer(model: number, which: number): number;
  model_forward_backward(model: number, T: number, B: number, pooling: number, dropout: number): number;
  model_evaluate(model: number, T: number, B: number, pooling: number): number;
  model_adam(model: number, negStep: number, bias2Sqrt: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, eps: number, wd: number): void;
  /** The core's peak multiply-add rate (gru.c): not in gru.wasm, only in its profile build. */
  simd_lanes?(): number;
  peak_madd?(rounds: number, seed: number): number;
  /** Only in the profile builds (build.sh --profile): milliseconds spent in phase `phase` so far. */
  prof_read?(phase: number): number;
  prof_reset?(): void;
  /** Native build only (amx-native.h): choose the AMX tile path (1) or AVX-512/AVX2 (0) for what follows; returns what is used. */
  amx_use?(on: number): number;
  /** Native build only: 1 when CPUID has AMX-TILE and AMX-BF16 and Linux grants the tile-data permission. */
  amx_available?(): number;
  /** Native build only: how many GRU layer calls ran on AMX tiles in this process. */
  amx_layers?(): number;
  /** Native build only: n rounds of 4 independent tile products (16·16·32 bf16 multiply-adds each); −1 without AMX. */
  amx_peak?(rounds: number): number;
}

/** gru.c's profile phases, in its PH_* order. */
export const PROFILE_PHASES = [
  'input projection',
  'recurrent products (forward)',
  'gate math (forward)',
  'BPTT gate math',
  'BPTT recurrent products',
  'weight gradients (Σ over T·B)',
  'pooling, head, loss',
  'Adam',
  'layout copies in the kernel',
] as const;

/**
 * The kernel's folder in the source tree (ml/kernel/: gru.c, the committed gru.wasm, build/).
 * Compiled JavaScript runs from dist/ml/kernel/, which tsc fills with .js only, so the source
 * folder is looked up from there; a copy placed next to the .js (a bundler, a trimmed image) wins.
 */
export function kernelDir(): string {
  const candidates = [__dirname, path.resolve(__dirname, '..', '..', '..', 'ml', 'kernel')];
  const found = candidates.find((d) => existsSync(path.join(d, 'gru.wasm')));
  if (found === undefined) throw new Error(`gru.wasm not found (looked in ${candidates.join(', ')}); rebuild it with npm run build:kernel`);
  return found;
}

/**
 * One instance of the kernel (WebAssembly or native: the same interface) with helpers to move
 * Float32Arrays in and out. Views are created afresh on every access: growing WebAssembly memory
 * (kalloc does, on demand) detaches old ArrayBuffers.
 */
export class Kernel {
  private poolModes?: Map<string, number>;

  constructor(
    readonly fn: KernelExports,
    readonly kind: KernelKind,
  ) {}

  /** The pooling variants this build implements, in its table's order (gru.c's POOLINGS). */
  poolings(): string[] {
    return this.scoped(() => {
      const cap = 64;
      const dst = this.alloc(cap / 4);
      return Array.from({ length: this.fn.pool_count() }, (_, i) => {
        const n = this.fn.pool_name(i, dst, cap);
        if (n < 0) throw new Error(`fused kernel (${this.kind}): pooling variant ${i} has no name that fits ${cap} bytes`);
        return Buffer.from(this.fn.memory.buffer, dst, n).toString('utf8');
      });
    });
  }

  /** The kernel's index of the pooling variant `name` (ml/pooling.ts's names), for its pool_* calls. */
  poolMode(name: string): number {
    this.poolModes ??= new Map(this.poolings().map((n, i) => [n, i]));
    const mode = this.poolModes.get(name);
    if (mode === undefined) {
      throw new Error(
        `fused kernel (${this.kind}) has no pooling "${name}" (it has ${[...this.poolModes.keys()].join(', ')}): ` +
          'add it to the POOLINGS table in ml/kernel/gru.c and rebuild with npm run build:kernel',
      );
    }
    return mode;
  }

  /** Allocates `count` 4-byte elements; memory obtained after `mark()` is returned by `release(mark)`. */
  alloc(count: number): number {
    const ptr = this.fn.kalloc(Math.max(1, count) * 4);
    if (ptr === 0) throw new Error(`fused kernel (${this.kind}): out of memory allocating ${count * 4} bytes`);
    return ptr;
  }

  mark(): number {
    return this.fn.kmark();
  }

  release(mark: number): void {
    this.fn.krelease(mark);
  }

  f32(ptr: number, count: number): Float32Array {
    return new Float32Array(this.fn.memory.buffer, ptr, count);
  }

  i32(ptr: number, count: number): Int32Array {
    return new Int32Array(this.fn.memory.buffer, ptr, count);
  }

  /** Copies `values` into fresh kernel memory and returns its pointer. */
  put(values: ArrayLike<number> & { length: number }, kind: 'f32' | 'i32' = 'f32'): number {
    const ptr = this.alloc(values.length);
    (kind === 'f32' ? this.f32(ptr, values.length) : this.i32(ptr, values.length)).set(values);
    return ptr;
  }

  /** Runs `f` and gives back every byte it allocated, even when it throws. */
  scoped<T>(f: () => T): T {
    const mark = this.mark();
    try {
      return f();
    } finally {
      this.release(mark);
    }
  }
}

/**
 * Which build computes, recorded with every fused run (ml/trainer.ts's engine label), since each
 * rounds differently and a resume must not mix them silently:
 * - `wasm`: the committed gru.wasm (SIMD128, no fused multiply-add), everywhere;
 * - `wasm-relaxed`: the committed gru-relaxed.wasm, the same gru.c with relaxed SIMD's
 *   f32x4.relaxed_madd, where the runtime supports it and fuses it (relaxedSimd());
 * - `native`: the same gru.c built for this machine (AVX-512 or AVX2 vectors, FMA);
 * - `native-amx`: that build with its matrix products on AMX tiles (amx-native.h), where the CPU
 *   has AMX-BF16 and Linux grants the tile permission (SWEEPS_KERNEL=native-amx asks for it):
 *   fp32-accurate (three-way bf16 split) but rounded differently from `native`, hence a kind of its own.
 */
export type KernelKind = 'wasm' | 'wasm-relaxed' | 'native' | 'native-amx';
export const KERNEL_KINDS: readonly KernelKind[] = ['wasm', 'wasm-relaxed', 'native', 'native-amx'];

const instances = new Map<KernelKind, Kernel>();
const failures = new Map<KernelKind, Error>();

const WASM_FILES: Record<'wasm' | 'wasm-relaxed', string> = { wasm: 'gru.wasm', 'wasm-relaxed': 'gru-relaxed.wasm' };

function loadWasm(kind: 'wasm' | 'wasm-relaxed'): KernelExports {
  if (kind === 'wasm-relaxed') relaxedSimd();
  const module = new WebAssemblyApi.Module(readFileSync(path.join(kernelDir(), WASM_FILES[kind])));
  return new WebAssemblyApi.Instance(module, {}).exports as unknown as KernelExports;
}

/**
 * A module of one function, (a, b, c) => f32x4.extract_lane 0 (f32x4.relaxed_madd (splat a)
 * (splat b) (splat c)): the relaxed-SIMD probe. 0xfd 0x85 0x02 is relaxed_madd (opcode 0x105).
 */
// prettier-ignore
const RELAXED_PROBE = Uint8Array.of(
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7d, 0x7d, 0x7d, 0x01, 0x7d, // types: (f32, f32, f32) -> f32
  0x03, 0x02, 0x01, 0x00, // functions: one, of type 0
  0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // exports: "f" = function 0
  0x0a, 0x16, 0x01, 0x14, 0x00, // code: one body of 20 bytes, no locals
  0x20, 0x00, 0xfd, 0x13, 0x20, 0x01, 0xfd, 0x13, 0x20, 0x02, 0xfd, 0x13, // local.get i; f32x4.splat (×3)
  0xfd, 0x85, 0x02, 0xfd, 0x1f, 0x00, 0x0b, // f32x4.relaxed_madd; f32x4.extract_lane 0; end
);

/**
 * Checks that gru-relaxed.wasm can run here with the meaning its kind promises, else throws why:
 * - the runtime validates relaxed SIMD: V8 ships it from 11.4 (Node 22); Node 20's V8 11.3 has
 *   the same opcodes behind --experimental-wasm-relaxed-simd, which is switched on here, for
 *   this process, when the probe does not validate without it;
 * - f32x4.relaxed_madd is fused (one rounding, as FMA instructions do): the spec lets an engine
 *   compute it as a multiply then an add, which would round differently — fused, the build gives
 *   the same bits on every machine, as gru.wasm does. (1 + 2⁻¹²)² − (1 + 2⁻¹¹) is 2⁻²⁴ exactly,
 *   but 0 when the product is rounded to float32 first.
 */
export function relaxedSimd(): void {
  if (!WebAssemblyApi.validate(RELAXED_PROBE)) {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
    if (!WebAssemblyApi.validate(RELAXED_PROBE)) throw new Error(`this runtime (Node ${process.version}) does not support WebAssembly relaxed SIMD`);
  }
  const probe = new WebAssemblyApi.Instance(new WebAssemblyApi.Module(RELAXED_PROBE), {}).exports as { f(a: number, b: number, c: number): number };
  const a = 1 + 2 ** -12;
  const got = probe.f(a, a, -(1 + 2 ** -11));
  if (got !== 2 ** -24) throw new Error(`f32x4.relaxed_madd is not fused on this runtime (Node ${process.version}, got ${got}): gru.wasm computes instead`);
}

/**
 * The kernel with per-phase timers (build/gru-profile.wasm or build/gru-profile-native.node, made
 * by `bash ml/kernel/build.sh --profile`), for the benchmark only: a fresh instance, never the
 * process's shared one.
 */
export function profileKernel(kind: KernelKind): Kernel {
  const dir = path.join(kernelDir(), 'build');
  if (kind === 'native' || kind === 'native-amx') {
    const addon = require(path.join(dir, 'gru-profile-native.node')) as KernelExports;
    if (kind === 'native-amx' && addon.amx_available?.() !== 1) throw new Error('no AMX here (CPUID or the tile-data permission)');
    return new Kernel(nativeExports(addon, kind === 'native-amx'), kind);
  }
  if (kind === 'wasm-relaxed') relaxedSimd();
  const module = new WebAssemblyApi.Module(readFileSync(path.join(dir, kind === 'wasm' ? 'gru-profile.wasm' : 'gru-profile-relaxed.wasm')));
  return new Kernel(new WebAssemblyApi.Instance(module, { env: { now: () => performance.now() } }).exports as unknown as KernelExports, kind);
}

/**
 * build/gru-native.node, if `npm run build:kernel-native` made it on this machine from these sources:
 * an addon built for another CPU could die of an illegal instruction, and one built from older
 * sources would compute something else, so both are checked against build/gru-native.json.
 */
function loadNative(): KernelExports {
  const dir = kernelDir();
  const addon = path.join(dir, 'build', 'gru-native.node');
  const infoPath = path.join(dir, 'build', 'gru-native.json');
  if (!existsSync(addon) || !existsSync(infoPath)) throw new Error('not built here (npm run build:kernel-native builds it where a C compiler is present)');
  const info = JSON.parse(readFileSync(infoPath, 'utf8')) as { arch: string; cpu: string; sources: Record<string, string> };
  if (info.arch !== process.arch || info.cpu !== (cpus()[0]?.model ?? 'unknown')) {
    throw new Error(`built for ${info.arch} "${info.cpu}", not this machine: rebuild it with npm run build:kernel-native`);
  }
  for (const [file, digest] of Object.entries(info.sources)) {
    const now = createHash('sha256')
      .update(readFileSync(path.join(dir, file)))
      .digest('hex');
    if (now !== digest) throw new Error(`${file} changed since it was built: rebuild it with npm run build:kernel-native`);
  }
  return require(addon) as KernelExports;
}

/** Which path each native addon object was last switched to (amx_use is a global of the addon). */
const amxSelected = new WeakMap<object, boolean>();

/**
 * The addon's exports for one native kind: the `native` and `native-amx` kernels share the addon
 * (one per process) and its memory; the calls that start computing switch its matrix-product path
 * first. A model remembers the path it was made with (model_create), so its step and evaluate
 * calls need no switch.
 */
function nativeExports(addon: KernelExports, amx: boolean): KernelExports {
  const use = addon.amx_use;
  if (use === undefined) {
    if (amx) throw new Error('this native build has no AMX path: rebuild it with npm run build:kernel-native');
    return addon;
  }
  const select = (): void => {
    if (amxSelected.get(addon) === amx) return;
    if (use(amx ? 1 : 0) !== (amx ? 1 : 0)) throw new Error(`fused kernel (native): cannot ${amx ? 'enable' : 'disable'} its AMX path`);
    amxSelected.set(addon, amx);
  };
  return {
    ...addon,
    model_create: (...a) => (select(), addon.model_create(...a)),
    gru_forward: (...a) => (select(), addon.gru_forward(...a)),
    gru_backward: (...a) => (select(), addon.gru_backward(...a)),
  };
}

function loadNativeKind(kind: 'native' | 'native-amx'): KernelExports {
  const addon = loadNative();
  if (kind === 'native-amx') {
    if (addon.amx_available?.() !== 1) throw new Error('this CPU has no AMX-BF16 tiles, or Linux did not grant their use');
  }
  return nativeExports(addon, kind === 'native-amx');
}

/**
 * The kernel instance of this process (or worker thread), loaded on first use. SWEEPS_KERNEL
 * chooses: `auto` (default) takes the native build when it is there and valid (its AVX-512/AVX2
 * path, `native`), else the relaxed-SIMD WebAssembly build where the runtime runs it (fused), else
 * gru.wasm; `wasm`, `wasm-relaxed`, `native` or `native-amx` insist (the latter three fail where
 * they cannot run). `native-amx` is never chosen for the user: it rounds differently from
 * `native`, so taking it by default would change the results of studies already run (and refuse
 * their checkpoints on resume); it is asked for by name.
 */
export function kernel(kind: KernelKind | 'auto' = preferredKernel()): Kernel {
  if (kind === 'auto') return kernel((['native', 'wasm-relaxed'] as const).find((k) => kernelAvailable(k)) ?? 'wasm');
  const loaded = instances.get(kind);
  if (loaded !== undefined) return loaded;
  const failed = failures.get(kind);
  if (failed !== undefined) throw failed;
  try {
    const k = new Kernel(kind === 'native' || kind === 'native-amx' ? loadNativeKind(kind) : loadWasm(kind), kind);
    instances.set(kind, k);
    return k;
  } catch (err) {
    const e = new Error(`fused kernel (${kind}) unavailable: ${(err as Error).message}`);
    failures.set(kind, e);
    throw e;
  }
}

function preferredKernel(): KernelKind | 'auto' {
  const v = process.env.SWEEPS_KERNEL ?? 'auto';
  if (v !== 'auto' && !(KERNEL_KINDS as readonly string[]).includes(v)) {
    throw new Error(`SWEEPS_KERNEL must be auto, ${KERNEL_KINDS.join(', ')}, got "${v}"`);
  }
  return v as KernelKind | 'auto';
}

/** Whether that kernel loads here (WebAssembly with SIMD is in every Node ≥ 16.4; relaxed SIMD: see relaxedSimd()). */
export function kernelAvailable(kind: KernelKind | 'auto' = 'auto'): boolean {
  try {
    kernel(kind);
    return true;
  } catch {
    return false;
  }
}
