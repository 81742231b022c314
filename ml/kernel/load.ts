import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as path from 'node:path';

// The project compiles without the DOM lib, where TypeScript declares WebAssembly; Node has it
// as a global. Only the few members used here are typed.
interface WasmGlobal {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
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
  /** Only in the profile builds (build.sh --profile): milliseconds spent in phase `phase` so far. */
  prof_read?(phase: number): number;
  prof_reset?(): void;
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

/** `wasm`: the committed gru.wasm, everywhere. `native`: the same gru.c built for this machine. */
export type KernelKind = 'wasm' | 'native';

const instances = new Map<KernelKind, Kernel>();
const failures = new Map<KernelKind, Error>();

function loadWasm(): KernelExports {
  const module = new WebAssemblyApi.Module(readFileSync(path.join(kernelDir(), 'gru.wasm')));
  return new WebAssemblyApi.Instance(module, {}).exports as unknown as KernelExports;
}

/**
 * The kernel with per-phase timers (build/gru-profile.wasm or build/gru-profile-native.node, made
 * by `bash ml/kernel/build.sh --profile`), for the benchmark only: a fresh instance, never the
 * process's shared one.
 */
export function profileKernel(kind: KernelKind): Kernel {
  const dir = path.join(kernelDir(), 'build');
  if (kind === 'native') return new Kernel(require(path.join(dir, 'gru-profile-native.node')) as KernelExports, kind);
  const module = new WebAssemblyApi.Module(readFileSync(path.join(dir, 'gru-profile.wasm')));
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

/**
 * The kernel instance of this process (or worker thread), loaded on first use. SWEEPS_KERNEL
 * chooses: `auto` (default) takes the native build when it is there and valid, else WebAssembly;
 * `wasm` or `native` insist (the latter fails when there is no valid native build).
 */
export function kernel(kind: KernelKind | 'auto' = preferredKernel()): Kernel {
  if (kind === 'auto') return kernelAvailable('native') ? kernel('native') : kernel('wasm');
  const loaded = instances.get(kind);
  if (loaded !== undefined) return loaded;
  const failed = failures.get(kind);
  if (failed !== undefined) throw failed;
  try {
    const k = new Kernel(kind === 'wasm' ? loadWasm() : loadNative(), kind);
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
  if (v !== 'auto' && v !== 'wasm' && v !== 'native') throw new Error(`SWEEPS_KERNEL must be auto, wasm or native, got "${v}"`);
  return v;
}

/** Whether that kernel loads here (WebAssembly with SIMD is in every Node ≥ 16.4). */
export function kernelAvailable(kind: KernelKind | 'auto' = 'auto'): boolean {
  try {
    kernel(kind);
    return true;
  } catch {
    return false;
  }
}
