/*
 * The fused GRU training kernel: PyTorch's GRU (gate order r, z, n; reset applied after the
 * recurrent product), the five poolings, the linear head, softmax cross-entropy and
 * torch.optim.Adam (L2 weight decay), on float32 arrays in this module's own memory.
 *
 * Why it exists: TensorFlow.js runs the GRU op by op, hundreds of tiny ops per timestep, and
 * at batch 32 × hidden 64 that dispatch, not arithmetic, is where a training step's time goes.
 * Here a whole sequence forward, and the whole backward pass through time, are each one call.
 *
 * Built for wasm32 with SIMD128 by build.sh (Debian clang 14.0.6 + lld, no libc, no libm):
 * the .wasm is committed and runs under every TensorFlow.js backend, and everywhere Node runs.
 * Where a C compiler is present, build.sh also compiles this same file for the host CPU as a
 * Node addon (native.c supplies the memory and the N-API glue; simd-native.h the same 128-bit
 * operations on GCC/Clang vector types), which the loader prefers when it is there.
 *
 * Conventions (shared with the TypeScript in ml/kernel/):
 * - GRU weights are stored as the TypeScript model stores them, transposed relative to PyTorch:
 *   wIh [I, 3H], wHh [H, 3H], bIh [3H], bHh [3H]; columns [0,H) r, [H,2H) z, [2H,3H) n.
 * - Sequences are time-major inside: a layer's input x is [T, B, I], its outputs h are [T, B, H].
 * - Per-gate quantities are kept gate-major ([T, B, H] per gate, not [T, B, 3H]) so that every
 *   elementwise loop runs over one contiguous block of B·H floats, VL lanes at a time.
 * - Every loop runs in a fixed order: the same inputs give the same bits on every run and every
 *   machine (wasm float arithmetic is IEEE-exact; nothing here is parallel, and the wasm build
 *   has no FMA). The native build contracts a·b + c into FMA: deterministic on its machine,
 *   equal to the wasm build up to rounding.
 */
#include <stddef.h>
#include <stdint.h>

/* vf: VL float lanes. WebAssembly has 128-bit vectors (VL = 4); the native build uses the host's
 * wider registers (simd-native.h: VL = 8, AVX2/AVX-512VL on x86-64). Every loop below steps by
 * VL, so both builds run the same code over their own vector width. */
#ifdef __wasm__
#include <wasm_simd128.h>
#define EXPORT(name) __attribute__((export_name(name)))
#define VL 4
typedef v128_t vf;
#define vf_add wasm_f32x4_add
#define vf_sub wasm_f32x4_sub
#define vf_mul wasm_f32x4_mul
#define vf_div wasm_f32x4_div
#define vf_sqrt wasm_f32x4_sqrt
#define vf_pmin wasm_f32x4_pmin
#define vf_pmax wasm_f32x4_pmax
#define vf_splat wasm_f32x4_splat
#define vf_lane wasm_f32x4_extract_lane
#define vf_load wasm_v128_load
#define vf_store wasm_v128_store
#define vf_load_splat wasm_v128_load32_splat
#define vi_add wasm_i32x4_add
#define vi_shl wasm_i32x4_shl
#define vi_splat wasm_i32x4_splat
#define vb_and wasm_v128_and
#define vb_andnot wasm_v128_andnot
#define vb_or wasm_v128_or
#define vb_xor wasm_v128_xor
/* c + a·b (vf_madd, vf_mul_add) and c − a·b (vf_nmadd): in gru-relaxed.wasm one fused
 * multiply-add each (one rounding; the loader uses that build only where the engine fuses it,
 * see load.ts), in gru.wasm a multiply then an add. vf_madd adds as c + a·b and vf_mul_add as
 * a·b + c: the same sum, spelt as gru.c had it, so that gru.wasm's bytes stay what they were. */
#ifdef __wasm_relaxed_simd__
#define vf_madd(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#define vf_mul_add(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#define vf_nmadd(a, b, c) wasm_f32x4_relaxed_nmadd(a, b, c)
#else
#define vf_madd(a, b, c) wasm_f32x4_add(c, wasm_f32x4_mul(a, b))
#define vf_mul_add(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#define vf_nmadd(a, b, c) wasm_f32x4_sub(c, wasm_f32x4_mul(a, b))
#endif
#else
#include "simd-native.h"
#define EXPORT(name)
#endif

/* ------------------------------------------------------------------------------------------ */
/* Memory: a bump allocator over the module's linear memory (grown on demand), or natively over
 * the arena native.c reserves. The TypeScript side allocates a model's buffers once, and
 * scratch for one custom-op call between a mark and a release; nothing is freed individually,
 * so there is no free list to get wrong. */

#ifdef __wasm__
extern unsigned char __heap_base;
static uintptr_t heap_start(void) { return (uintptr_t)&__heap_base; }
static int heap_reserve(uintptr_t end) {
  uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
  if (end <= have) return 1;
  return __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) != (size_t)-1;
}
#else
extern unsigned char *kernel_arena; /* native.c */
extern size_t kernel_arena_bytes;
/* Offset 0 stays unused, so that 0 means "no buffer" on both builds. */
static uintptr_t heap_start(void) { return (uintptr_t)kernel_arena + 64; }
static int heap_reserve(uintptr_t end) { return end <= (uintptr_t)kernel_arena + kernel_arena_bytes; }
#endif

static uintptr_t heap_top;

EXPORT("kalloc") void *kalloc(uint32_t bytes) {
  if (heap_top == 0) heap_top = heap_start();
  uintptr_t p = (heap_top + 15u) & ~(uintptr_t)15u; /* 16-byte aligned for v128 */
  uintptr_t end = p + bytes;
  if (end < p || !heap_reserve(end)) return 0;
  heap_top = end;
  return (void *)p;
}

EXPORT("kmark") uintptr_t kmark(void) {
  if (heap_top == 0) heap_top = heap_start();
  return heap_top;
}

EXPORT("krelease") void krelease(uintptr_t mark) { heap_top = mark; }

/* ------------------------------------------------------------------------------------------ */
/* Where the time goes: built with -DKERNEL_PROFILE (build.sh --profile, never the committed
 * gru.wasm), every phase below adds its elapsed milliseconds to a counter that the benchmark
 * reads (npm run bench:train -- --profile). In the normal builds the markers are empty. */

enum { PH_INPUT_PROJ, PH_RECURRENT, PH_GATES, PH_BPTT_GATES, PH_BPTT_RECURRENT, PH_WEIGHT_GRADS, PH_HEAD, PH_ADAM, PH_OTHER, PH_COUNT };

#ifdef KERNEL_PROFILE
#ifdef __wasm__
__attribute__((import_module("env"), import_name("now"))) double prof_now(void);
#else
#include <time.h>
static double prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}
#endif
static double prof_ms[PH_COUNT];
static double prof_mark;
#define PROF_START() (prof_mark = prof_now())
/* Charges the time since the last marker to phase ph. */
#define PROF(ph) (prof_ms[ph] += prof_now() - prof_mark, prof_mark = prof_now())
EXPORT("prof_read") double prof_read(int ph) { return ph >= 0 && ph < PH_COUNT ? prof_ms[ph] : -1; }
EXPORT("prof_reset") void prof_reset(void) {
  for (int i = 0; i < PH_COUNT; i++) prof_ms[i] = 0;
}
#else
#define PROF_START() ((void)0)
#define PROF(ph) ((void)0)
#endif

/* ------------------------------------------------------------------------------------------ */
/* The core's peak multiply-add rate, for the benchmark (npm run bench:train prints it beside the
 * kernel's achieved rate): n rounds of 12 independent vf_madd chains on registers only, so
 * 12·VL·n multiply-adds with no memory traffic; 12 chains cover the FMA latency (4 cycles) of two
 * pipes. Not in gru.wasm itself (its bytes stay as they were), only in its profile build. */
#if !defined(__wasm__) || defined(__wasm_relaxed_simd__) || defined(KERNEL_PROFILE)
EXPORT("simd_lanes") int simd_lanes(void) { return VL; }
EXPORT("peak_madd") float peak_madd(int n, float s) {
  const vf x = vf_splat(s), y = vf_splat(1.0f - s);
  /* Twelve different starting values: equal chains would be merged by the compiler. */
  vf a0 = vf_splat(0), a1 = vf_splat(1), a2 = vf_splat(2), a3 = vf_splat(3), a4 = vf_splat(4), a5 = vf_splat(5);
  vf a6 = vf_splat(6), a7 = vf_splat(7), a8 = vf_splat(8), a9 = vf_splat(9), a10 = vf_splat(10), a11 = vf_splat(11);
  for (int i = 0; i < n; i++) {
    a0 = vf_madd(a0, x, y), a1 = vf_madd(a1, x, y), a2 = vf_madd(a2, x, y), a3 = vf_madd(a3, x, y);
    a4 = vf_madd(a4, x, y), a5 = vf_madd(a5, x, y), a6 = vf_madd(a6, x, y), a7 = vf_madd(a7, x, y);
    a8 = vf_madd(a8, x, y), a9 = vf_madd(a9, x, y), a10 = vf_madd(a10, x, y), a11 = vf_madd(a11, x, y);
  }
  vf t = vf_add(vf_add(vf_add(a0, a1), vf_add(a2, a3)), vf_add(vf_add(a4, a5), vf_add(a6, a7)));
  return vf_lane(vf_add(t, vf_add(vf_add(a8, a9), vf_add(a10, a11))), 0);
}
#endif

static void zero(float *p, int n) { __builtin_memset(p, 0, (size_t)n * sizeof(float)); }
static void copy(float *dst, const float *src, int n) { __builtin_memcpy(dst, src, (size_t)n * sizeof(float)); }
/* A few floats (one timestep's inputs): in wasm a copy() is a memory.copy, a call into the engine
 * that costs more than copying 3 floats one by one; no_builtin keeps clang from making the loop
 * one again. */
#ifdef __clang__
__attribute__((no_builtin("memcpy")))
#endif
static void copy_small(float *dst, const float *src, int n) {
  for (int i = 0; i < n; i++) dst[i] = src[i];
}

/* ------------------------------------------------------------------------------------------ */
/* exp, sigmoid, tanh, log: there is no libm in a -nostdlib wasm build.
 *
 * exp(y) = 2^k · e^r with k = round(y / ln 2) and r = y − k·ln 2 (Cody–Waite: ln 2 split in a
 * part with few mantissa bits, so k·LN2_HI is exact, and the rest), |r| ≤ ln2/2. q = e^r − 1 is
 * a degree-7 Taylor polynomial (truncation < 2e-8 relative there). Keeping q apart from the 1
 * gives expm1 with full relative precision near 0 — which tanh needs for small arguments.
 * Measured against float64: exp ≤ 1 ulp, sigmoid and tanh ≤ 2.2 ulp, log ≤ 1.9 ulp.
 *
 * These run three times per hidden unit per timestep, so they are written for V8's x64 code:
 * pmin/pmax (one minps/maxps each; f32x4.min/max cost a NaN-fixing sequence), and k rounded by
 * adding 1.5·2^23 (then its bits *are* k + const) instead of f32x4.nearest + trunc_sat (a long
 * saturating sequence). Inputs are clamped to [-87, 88] so 2^k stays a normal float; the
 * operand order lets a NaN through unchanged, so a diverging run still shows NaN losses. */

#define LN2_HI 0.693145751953125f
#define LN2_LO 1.428606765330187e-06f
#define LOG2E 1.4426950408889634f
#define ROUNDING_MAGIC 12582912.0f /* 1.5·2^23, bits 0x4B400000 */

/*
 * The constants, splatted once per kernel call. Written as literals, clang emits each use as a
 * v128.const, which V8 materialises with three instructions every time (it does not hoist them
 * out of loops) — a third of the instructions of tanh. Read through a volatile table instead,
 * they are loaded once per call into wasm locals and stay in registers or stack slots.
 */
static volatile const float MATH_TABLE[] = {
    -87.0f, 88.0f, ROUNDING_MAGIC, LOG2E, LN2_HI, LN2_LO,
    1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f,
    1.0f, 2.0f, 40.0f,
};
static volatile const int32_t MATH_INTS[] = {127 - 0x4B400000, (int32_t)0x80000000u};

typedef struct {
  vf lo, hi, magic, log2e, ln2_hi, ln2_lo, c7, c6, c5, c4, c3, c2, one, two, forty;
  vf exp_bias; /* i32: 127 − bits(ROUNDING_MAGIC) */
  vf sign;     /* i32: the sign bit */
} Consts;

static inline Consts consts(void) {
  Consts c;
  vf *f[] = {&c.lo, &c.hi, &c.magic, &c.log2e, &c.ln2_hi, &c.ln2_lo, &c.c7, &c.c6,
                 &c.c5, &c.c4, &c.c3, &c.c2, &c.one, &c.two, &c.forty};
  for (unsigned i = 0; i < sizeof(f) / sizeof(f[0]); i++) *f[i] = vf_splat(MATH_TABLE[i]);
  c.exp_bias = vi_splat(MATH_INTS[0]);
  c.sign = vi_splat(MATH_INTS[1]);
  return c;
}

typedef struct {
  vf q;     /* e^r − 1 */
  vf scale; /* 2^k */
} ExpParts;

/* For y in [-87, 88] (the caller clamps). */
static inline ExpParts exp_parts(vf y, const Consts *c) {
  vf kb = vf_mul_add(y, c->log2e, c->magic);
  vf k = vf_sub(kb, c->magic); /* round(y / ln 2), ties to even, as a float */
  vf r = vf_nmadd(k, c->ln2_lo, vf_nmadd(k, c->ln2_hi, y));
  /* p = c2 + c3 r + … + c7 r⁵ by Estrin's scheme: half the dependency chain of Horner's. */
  vf r2 = vf_mul(r, r), r4 = vf_mul(r2, r2);
  vf p01 = vf_madd(c->c3, r, c->c2);
  vf p23 = vf_madd(c->c5, r, c->c4);
  vf p45 = vf_madd(c->c7, r, c->c6);
  vf p = vf_madd(r4, p45, vf_madd(r2, p23, p01));
  ExpParts e;
  e.q = vf_madd(r2, p, r);
  /* kb's bits are 0x4B400000 + k, so the bits of 2^k are (that − 0x4B400000 + 127) << 23. */
  e.scale = vi_shl(vi_add(kb, c->exp_bias), 23);
  return e;
}

/* pmax(a, b) = a < b ? b : a and pmin(a, b) = b < a ? b : a: a NaN in y is returned as is. */
static inline vf clamp_exp_arg(vf y, const Consts *c) { return vf_pmin(vf_pmax(y, c->lo), c->hi); }

static inline vf v_exp(vf y, const Consts *c) {
  ExpParts e = exp_parts(clamp_exp_arg(y, c), c);
  return vf_madd(e.scale, e.q, e.scale);
}

/* 1 / (1 + e^−x); −x by flipping the sign bit. */
static inline vf v_sigmoid(vf x, const Consts *c) {
  return vf_div(c->one, vf_add(c->one, v_exp(vb_xor(x, c->sign), c)));
}

/* tanh|x| = m / (m + 2) with m = expm1(2|x|) = 2^k·q + (2^k − 1), exact in q when k = 0; the
 * sign is copied back bitwise. For |x| > 9, m/(m+2) rounds to 1 as tanh does. */
static inline vf v_tanh(vf x, const Consts *c) {
  vf a = vb_andnot(x, c->sign);
  vf a2 = vf_pmin(vf_add(a, a), c->forty);
  ExpParts e = exp_parts(a2, c);
  vf m = vf_mul_add(e.scale, e.q, vf_sub(e.scale, c->one));
  vf t = vf_div(m, vf_add(m, c->two));
  return vb_or(t, vb_and(x, c->sign));
}

static inline float s_exp(float y, const Consts *c) { return vf_lane(v_exp(vf_splat(y), c), 0); }
static inline float s_sigmoid(float x, const Consts *c) { return vf_lane(v_sigmoid(vf_splat(x), c), 0); }
static inline float s_tanh(float x, const Consts *c) { return vf_lane(v_tanh(vf_splat(x), c), 0); }

/* ln x for a positive normal x: x = m·2^e with m in [√½, √2), ln m = 2·atanh(s), s = (m−1)/(m+1),
 * |s| < 0.172, by its odd series to s^11 (error < 1e-9). Only the loss uses it. */
static float s_log(float x) {
  union {
    float f;
    uint32_t u;
  } v = {x};
  int e = (int)((v.u >> 23) & 255u) - 127;
  v.u = (v.u & 0x007fffffu) | 0x3f800000u;
  float m = v.f;
  if (m > 1.41421356f) {
    m *= 0.5f;
    e += 1;
  }
  float s = (m - 1.0f) / (m + 1.0f);
  float s2 = s * s;
  float series = s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9 + s2 * (1.0f / 11)))));
  return (float)e * LN2_HI + ((float)e * LN2_LO + (2.0f * s + 2.0f * s * series));
}

EXPORT("test_exp") float test_exp(float x) { Consts c = consts(); return s_exp(x, &c); }
EXPORT("test_sigmoid") float test_sigmoid(float x) { Consts c = consts(); return s_sigmoid(x, &c); }
EXPORT("test_tanh") float test_tanh(float x) { Consts c = consts(); return s_tanh(x, &c); }
EXPORT("test_log") float test_log(float x) { return s_log(x); }

/* ------------------------------------------------------------------------------------------ */
/* Matrix products. C[M,N] = init + A·B where A(m,k) = A[m·ars + k·acs] (so one routine serves
 * both A·B and Aᵀ·B) and B is row-major with contiguous rows (ldb); init is 0, C itself
 * (accumulate) or a bias row broadcast over the rows.
 *
 * The 4-row × 2-vector register block (block_4rows: 4×8 in wasm) keeps 8 accumulators, 2 B
 * vectors and an A splat within the 16 XMM registers V8 maps v128 onto: measured 16–22 GMAC/s
 * here, about what 128-bit mul + add (wasm SIMD has no FMA) can issue. The native AVX-512 build
 * adds a 4-row × 4-vector block (block_4rows_wide). K is cut into chunks of 64 so that Aᵀ·B over all T·B rows (the
 * weight gradients, K up to 1600) keeps its A and B chunks in L1 (9 → 15 GMAC/s). Summation
 * order is fixed: each output is summed over k in increasing order, chunk after chunk. */

enum { MM_ZERO = 0, MM_ACC = 1, MM_BIAS = 2 };

#define MM_K_CHUNK 64

static inline vf init_vec(int mode, const float *c, const float *bias) {
  return mode == MM_ZERO ? vf_splat(0) : vf_load(mode == MM_ACC ? c : bias);
}

static inline void block_4rows(int K, const float *A, int ars, int acs, const float *B, int ldb, float *C, int ldc, int mode,
                            const float *bias) {
  float *r0 = C, *r1 = C + ldc, *r2 = C + 2 * ldc, *r3 = C + 3 * ldc;
  vf c00 = init_vec(mode, r0, bias), c01 = init_vec(mode, r0 + VL, bias + VL);
  vf c10 = init_vec(mode, r1, bias), c11 = init_vec(mode, r1 + VL, bias + VL);
  vf c20 = init_vec(mode, r2, bias), c21 = init_vec(mode, r2 + VL, bias + VL);
  vf c30 = init_vec(mode, r3, bias), c31 = init_vec(mode, r3 + VL, bias + VL);
  const float *a = A;
  for (int k = 0; k < K; k++) {
    vf b0 = vf_load(B), b1 = vf_load(B + VL);
    B += ldb;
    /* One splat at a time, used at once: fewer live registers than four splats up front. */
    vf x = vf_load_splat(a);
    c00 = vf_madd(x, b0, c00);
    c01 = vf_madd(x, b1, c01);
    x = vf_load_splat(a + ars);
    c10 = vf_madd(x, b0, c10);
    c11 = vf_madd(x, b1, c11);
    x = vf_load_splat(a + 2 * ars);
    c20 = vf_madd(x, b0, c20);
    c21 = vf_madd(x, b1, c21);
    x = vf_load_splat(a + 3 * ars);
    c30 = vf_madd(x, b0, c30);
    c31 = vf_madd(x, b1, c31);
    a += acs;
  }
  vf_store(r0, c00), vf_store(r0 + VL, c01);
  vf_store(r1, c10), vf_store(r1 + VL, c11);
  vf_store(r2, c20), vf_store(r2 + VL, c21);
  vf_store(r3, c30), vf_store(r3 + VL, c31);
}

/* Up to 3 rows × 8 columns: the rows below the last multiple of 4 (e.g. the 3 rows of dW_ih,
 * K = T·B), together, so each B load serves all of them. Unused rows compute on row 0 and are
 * not stored. */
static inline void block_few_rows(int R, int K, const float *A, int ars, int acs, const float *B, int ldb, float *C, int ldc,
                                 int mode, const float *bias) {
  const int r1 = R > 1 ? 1 : 0, r2 = R > 2 ? 2 : 0;
  vf c00 = init_vec(mode, C, bias), c01 = init_vec(mode, C + VL, bias + VL);
  vf c10 = init_vec(mode, C + r1 * ldc, bias), c11 = init_vec(mode, C + r1 * ldc + VL, bias + VL);
  vf c20 = init_vec(mode, C + r2 * ldc, bias), c21 = init_vec(mode, C + r2 * ldc + VL, bias + VL);
  const float *a = A;
  for (int k = 0; k < K; k++, a += acs, B += ldb) {
    vf b0 = vf_load(B), b1 = vf_load(B + VL);
    vf x = vf_load_splat(a);
    c00 = vf_madd(x, b0, c00);
    c01 = vf_madd(x, b1, c01);
    x = vf_load_splat(a + r1 * ars);
    c10 = vf_madd(x, b0, c10);
    c11 = vf_madd(x, b1, c11);
    x = vf_load_splat(a + r2 * ars);
    c20 = vf_madd(x, b0, c20);
    c21 = vf_madd(x, b1, c21);
  }
  if (R > 2) vf_store(C + 2 * ldc, c20), vf_store(C + 2 * ldc + VL, c21);
  if (R > 1) vf_store(C + ldc, c10), vf_store(C + ldc + VL, c11);
  vf_store(C, c00), vf_store(C + VL, c01);
}

/* One row, 4 columns: the columns right of the last multiple of 8. */
static inline void block_1row(int K, const float *A, int acs, const float *B, int ldb, float *C, int mode, const float *bias) {
  vf c = init_vec(mode, C, bias);
  for (int k = 0; k < K; k++, A += acs, B += ldb) c = vf_madd(vf_load_splat(A), vf_load(B), c);
  vf_store(C, c);
}

#if VL >= 16
/* 4 rows × 4 vectors (the native AVX-512 build: 64 columns, a whole gate of the seed's model):
 * 16 accumulators, which 32 vector registers hold beside the 4 B vectors and a broadcast, so
 * each broadcast feeds 4 FMAs instead of 2. Measured here, interleaved: a training step 14% and
 * an evaluation pass 16% faster than with block_4rows alone. Same sums in the same order. */
#define ACC4(r, x)                                                                                                     \
  c##r##0 = vf_madd(x, b0, c##r##0), c##r##1 = vf_madd(x, b1, c##r##1),                                   \
  c##r##2 = vf_madd(x, b2, c##r##2), c##r##3 = vf_madd(x, b3, c##r##3)
#define INIT4(r)                                                                                                       \
  vf c##r##0 = init_vec(mode, C + r * ldc, bias), c##r##1 = init_vec(mode, C + r * ldc + VL, bias + VL);                \
  vf c##r##2 = init_vec(mode, C + r * ldc + 2 * VL, bias + 2 * VL), c##r##3 = init_vec(mode, C + r * ldc + 3 * VL, bias + 3 * VL)
#define STORE4(r)                                                                                                      \
  vf_store(C + r * ldc, c##r##0), vf_store(C + r * ldc + VL, c##r##1), vf_store(C + r * ldc + 2 * VL, c##r##2),         \
      vf_store(C + r * ldc + 3 * VL, c##r##3)
static inline void block_4rows_wide(int K, const float *A, int ars, int acs, const float *B, int ldb, float *C, int ldc, int mode,
                                    const float *bias) {
  INIT4(0);
  INIT4(1);
  INIT4(2);
  INIT4(3);
  const float *a = A;
  for (int k = 0; k < K; k++, a += acs, B += ldb) {
    vf b0 = vf_load(B), b1 = vf_load(B + VL), b2 = vf_load(B + 2 * VL), b3 = vf_load(B + 3 * VL);
    vf x = vf_load_splat(a);
    ACC4(0, x);
    x = vf_load_splat(a + ars);
    ACC4(1, x);
    x = vf_load_splat(a + 2 * ars);
    ACC4(2, x);
    x = vf_load_splat(a + 3 * ars);
    ACC4(3, x);
  }
  STORE4(0);
  STORE4(1);
  STORE4(2);
  STORE4(3);
}
#endif

static void matmul_chunk(int M, int N, int K, const float *A, int ars, int acs, const float *B, int ldb, float *C, int ldc,
                         int mode, const float *bias) {
  int M4 = M & ~3, N8 = N & ~(2 * VL - 1), N4 = N & ~(VL - 1);
  /* Row blocks outside, column panels inside: measured 5–10% faster than the other order here. */
  for (int m = 0; m < M4; m += 4) {
    int n = 0;
#if VL >= 16
    for (; n + 4 * VL <= N8; n += 4 * VL) block_4rows_wide(K, A + m * ars, ars, acs, B + n, ldb, C + m * ldc + n, ldc, mode, bias ? bias + n : 0);
#endif
    for (; n < N8; n += 2 * VL) block_4rows(K, A + m * ars, ars, acs, B + n, ldb, C + m * ldc + n, ldc, mode, bias ? bias + n : 0);
  }
  if (M4 < M)
    for (int n = 0; n < N8; n += 2 * VL)
      block_few_rows(M - M4, K, A + M4 * ars, ars, acs, B + n, ldb, C + M4 * ldc + n, ldc, mode, bias ? bias + n : 0);
  for (int n = N8; n < N4; n += VL)
    for (int m = 0; m < M; m++) block_1row(K, A + m * ars, acs, B + n, ldb, C + m * ldc + n, mode, bias ? bias + n : 0);
  for (int n = N4; n < N; n++)
    for (int m = 0; m < M; m++) {
      float s = mode == MM_ZERO ? 0.0f : mode == MM_ACC ? C[m * ldc + n] : bias[n];
      for (int k = 0; k < K; k++) s += A[m * ars + k * acs] * B[k * ldb + n];
      C[m * ldc + n] = s;
    }
}

static void matmul(int M, int N, int K, const float *A, int ars, int acs, const float *B, int ldb, float *C, int ldc, int mode,
                   const float *bias) {
  if (K <= MM_K_CHUNK) {
    matmul_chunk(M, N, K, A, ars, acs, B, ldb, C, ldc, mode, bias);
    return;
  }
  for (int k0 = 0; k0 < K; k0 += MM_K_CHUNK) {
    int kc = K - k0 < MM_K_CHUNK ? K - k0 : MM_K_CHUNK;
    matmul_chunk(M, N, kc, A + k0 * acs, ars, acs, B + k0 * ldb, ldb, C, ldc, k0 == 0 ? mode : MM_ACC, bias);
  }
}

/* dst[c][r] = src[r][c] for an R×C block of a row-major matrix with row stride lds. */
static void transpose(int R, int Cn, const float *src, int lds, float *dst) {
  for (int r = 0; r < R; r++)
    for (int c = 0; c < Cn; c++) dst[c * R + r] = src[r * lds + c];
}

/* out[j] (= or +=) Σ_rows M[row][j], rows of length n. */
static void column_sums(int rows, int n, const float *M, float *out, int acc) {
  if (!acc) zero(out, n);
  int n4 = n & ~(VL - 1);
  for (int r = 0; r < rows; r++, M += n) {
    int j = 0;
    for (; j < n4; j += VL) vf_store(out + j, vf_add(vf_load(out + j), vf_load(M + j)));
    for (; j < n; j++) out[j] += M[j];
  }
}

static void fill_rows(int rows, int n, const float *row, float *dst) {
  for (int r = 0; r < rows; r++) copy(dst + r * n, row, n);
}

/* ------------------------------------------------------------------------------------------ */
/* One GRU layer. */

typedef struct {
  const float *wIh, *wHh, *bIh, *bHh;
} LayerWeights;

typedef struct {
  float *wIh, *wHh, *bIh, *bHh;
} LayerGrads;

/* What the backward pass needs from the forward pass, each [T, B, H]. */
typedef struct {
  float *h, *r, *z, *n, *ghn; /* ghn = W_hn h + b_hn, the term the reset gate multiplies */
} LayerTape;

/* Forward scratch: gi for r, z, n ([T,B,H] each), gh for r, z and h0 = 0 ([B,H] each). */
static int forward_scratch_floats(int T, int B, int H) { return 3 * T * B * H + 3 * B * H; }

/*
 *   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = n + z ⊙ (h − n)   (h0 = 0)
 * h' is evaluated as n + z ⊙ (h − n), as ATen's CPU gru_cell and the TypeScript reference do.
 */
/* gh_g = h_prev · W_hh[:, g] + b_hh[g] for the gates r, z, n; hp NULL is h0 = 0, whose product
 * is skipped (W_h h0 + b_h is b_h). Shared by layer_forward and layer_infer: the same bits. */
static inline __attribute__((always_inline)) void recurrent_products(int B, int H, const float *hp, LayerWeights w, float *ghr, float *ghz, float *ghn) {
  const int H3 = 3 * H;
  if (hp != 0) {
    matmul(B, H, H, hp, H, 1, w.wHh, H3, ghr, H, MM_BIAS, w.bHh);
    matmul(B, H, H, hp, H, 1, w.wHh + H, H3, ghz, H, MM_BIAS, w.bHh + H);
    matmul(B, H, H, hp, H, 1, w.wHh + 2 * H, H3, ghn, H, MM_BIAS, w.bHh + 2 * H);
  } else {
    fill_rows(B, H, w.bHh, ghr);
    fill_rows(B, H, w.bHh + H, ghz);
    fill_rows(B, H, w.bHh + 2 * H, ghn);
  }
}

/* One timestep's gate math over B·H values: r, z, n and h' from the input projections (ir, iz, in)
 * and the recurrent ones (ghr, ghz, ghn). `n` NULL: not kept (inference). Three passes rather than
 * one: a single pass chains σ → tanh → h, ~130 cycles of latency per vector, and V8's code then
 * waits on it; separate passes give the CPU independent vectors to overlap (measured 14 → 9.4 µs
 * per step at B·H = 2048). Shared by layer_forward and layer_infer: the same bits. */
static inline __attribute__((always_inline)) void gate_step(int BH, const float *ir, const float *iz, const float *in, const float *ghr, const float *ghz,
                                                            const float *ghn, const float *hp, float *r, float *z, float *n, float *h, const Consts *c) {
  const int BH4 = BH & ~(VL - 1);
  int i;
  for (i = 0; i < BH4; i += VL) vf_store(r + i, v_sigmoid(vf_add(vf_load(ir + i), vf_load(ghr + i)), c));
  for (; i < BH; i++) r[i] = s_sigmoid(ir[i] + ghr[i], c);
  for (i = 0; i < BH4; i += VL) vf_store(z + i, v_sigmoid(vf_add(vf_load(iz + i), vf_load(ghz + i)), c));
  for (; i < BH; i++) z[i] = s_sigmoid(iz[i] + ghz[i], c);
  for (i = 0; i < BH4; i += VL) {
    vf rv = vf_load(r + i), zv = vf_load(z + i), hpv = vf_load(hp + i);
    vf nv = v_tanh(vf_madd(rv, vf_load(ghn + i), vf_load(in + i)), c);
    if (n != 0) vf_store(n + i, nv);
    vf_store(h + i, vf_madd(zv, vf_sub(hpv, nv), nv));
  }
  for (; i < BH; i++) {
    const float nn = s_tanh(in[i] + r[i] * ghn[i], c);
    if (n != 0) n[i] = nn;
    h[i] = nn + z[i] * (hp[i] - nn);
  }
}

#ifndef __wasm__
/* The native build's matrix products on AMX tiles, where the CPU has them (amx-native.h). */
#include "amx-native.h"
#endif

static void layer_forward(int T, int B, int I, int H, const float *x, LayerWeights w, LayerTape tape, float *scratch) {
#ifndef __wasm__
  if (amx_cur && amx_layer(T, B, I, H, x, w, 0, &tape)) return;
#endif
  const int BH = B * H, H3 = 3 * H;
  const Consts c = consts();
  float *gi[3] = {scratch, scratch + T * BH, scratch + 2 * T * BH};
  float *ghr = scratch + 3 * T * BH, *ghz = ghr + BH, *zeros = ghz + BH;
  zero(zeros, BH);
  /* The input projection of every timestep at once: gi_g = x · W_ih[:, g] + b_ih[g]. */
  for (int g = 0; g < 3; g++) matmul(T * B, H, I, x, I, 1, w.wIh + g * H, H3, gi[g], H, MM_BIAS, w.bIh + g * H);
  PROF(PH_INPUT_PROJ);
  for (int t = 0; t < T; t++) {
    const int o = t * BH;
    float *ghn = tape.ghn + o;
    const float *hp = t > 0 ? tape.h + o - BH : zeros;
    recurrent_products(B, H, t > 0 ? hp : 0, w, ghr, ghz, ghn);
    PROF(PH_RECURRENT);
    gate_step(BH, gi[0] + o, gi[1] + o, gi[2] + o, ghr, ghz, ghn, hp, tape.r + o, tape.z + o, tape.n + o, tape.h + o, &c);
    PROF(PH_GATES);
  }
}

/* Inference (no backward pass will follow): the same arithmetic as layer_forward, so the same
 * bits, without the tape. Only h is kept, [T, B, H] (the next layer's input, or what pooling
 * reads), and the input projection is made TC timesteps at a time: scratch is O(TC·B·H), not
 * O(T·B·H). Scratch: gi for r, z, n ([TC,B,H] each), then gh_r, gh_z, gh_n, r, z, h0 = 0. */
#define INFER_TC 16
static int infer_scratch_floats(int B, int H) { return 3 * INFER_TC * B * H + 6 * B * H; }

static void layer_infer(int T, int B, int I, int H, const float *x, LayerWeights w, float *hs, float *scratch) {
#ifndef __wasm__
  if (amx_cur && amx_layer(T, B, I, H, x, w, hs, 0)) return;
#endif
  const int BH = B * H, H3 = 3 * H;
  const Consts c = consts();
  float *gi[3] = {scratch, scratch + INFER_TC * BH, scratch + 2 * INFER_TC * BH};
  float *ghr = scratch + 3 * INFER_TC * BH, *ghz = ghr + BH, *ghn = ghz + BH, *r = ghn + BH, *z = r + BH, *zeros = z + BH;
  zero(zeros, BH);
  for (int t0 = 0; t0 < T; t0 += INFER_TC) {
    const int tc = T - t0 < INFER_TC ? T - t0 : INFER_TC;
    for (int g = 0; g < 3; g++) matmul(tc * B, H, I, x + t0 * B * I, I, 1, w.wIh + g * H, H3, gi[g], H, MM_BIAS, w.bIh + g * H);
    PROF(PH_INPUT_PROJ);
    for (int t = t0; t < t0 + tc; t++) {
      const int o = (t - t0) * BH;
      const float *hp = t > 0 ? hs + (t - 1) * BH : zeros;
      float *h = hs + t * BH;
      recurrent_products(B, H, t > 0 ? hp : 0, w, ghr, ghz, ghn);
      PROF(PH_RECURRENT);
      gate_step(BH, gi[0] + o, gi[1] + o, gi[2] + o, ghr, ghz, ghn, hp, r, z, 0, h, &c);
      PROF(PH_GATES);
    }
  }
}

/* The input-weight gradients and the input-bias gradients as one product (fold_bias): with a
 * column of ones beside the input, [x 1]ᵀ · dG_i gives dW_ih in its first I rows and Σ_rows dG_i
 * — the bias gradient — in the last, with the same sums in the same order as column_sums (1·v is
 * v exactly, fused or not), so the same bits. It pays where the extra row fills a register block
 * that is partly empty anyway (I not a multiple of 4, e.g. the 3 accelerometer axes): three
 * passes over T·B·H values fewer. Elsewhere (I = H = 64) column_sums stays. */
static int fold_bias(int I) { return I % 4 != 0; }
static int fold_floats(int T, int B, int I, int H) { return fold_bias(I) ? T * B * (I + 1) + (I + 1) * H : 0; }

/* Backward scratch: dG for r and z (shared by the input and recurrent paths), for n on the
 * input path and on the recurrent path ([T,B,H] each); the carried dh [B,H]; W_hhᵀ and W_ihᵀ;
 * then [x 1] [T·B, I+1] and the folded product's [I+1, H] where fold_bias(I). */
static int backward_scratch_floats(int T, int B, int I, int H) {
  return 4 * T * B * H + B * H + 3 * H * H + 3 * H * I + fold_floats(T, B, I, H);
}

/*
 * Backward through time. dH [T,B,H] holds dLoss/dh_t from above (pooling, or the next layer);
 * it is read, not changed. Writes the weight gradients (overwriting) and, when dx is not null,
 * dLoss/dx [T,B,I]. With a = pre-activations:
 *   dn = dh(1−z), dz = dh(h_prev − n), dh_prev = dh·z + Σ_g dG_h,g · W_hh,gᵀ
 *   da_n = dn(1−n²), da_r = dn·ghn·r(1−r), da_z = dz·z(1−z)
 *   dG_i = (da_r, da_z, da_n), dG_h = (da_r, da_z, da_n·r)
 * The weight gradients are then one product each over all timesteps (K = T·B), not T small ones.
 */
static void layer_backward(int T, int B, int I, int H, const float *x, LayerWeights w, LayerTape tape, const float *dH,
                           LayerGrads g, float *dx, float *scratch) {
  const int BH = B * H, H3 = 3 * H, BH4 = BH & ~(VL - 1), TBH = T * BH;
  const Consts c = consts();
  float *dar = scratch, *daz = dar + TBH, *dgin = daz + TBH, *dghn = dgin + TBH;
  float *carry = dghn + TBH;
  float *wHhT = carry + BH; /* [3H, H]: gate g's block is rows [gH, gH+H) */
  float *wIhT = wHhT + 3 * H * H; /* [3H, I] */
  float *xa = wIhT + 3 * H * I;    /* [T·B, I+1]: x and a column of ones (fold_bias) */
  float *folded = xa + T * B * (I + 1); /* [I+1, H] */
  transpose(H, H3, w.wHh, H3, wHhT);
  if (dx) transpose(I, H3, w.wIh, H3, wIhT);
  zero(carry, BH);
  PROF(PH_OTHER);

#ifndef __wasm__
  if (!(amx_cur && amx_bptt(T, B, H, &tape, dH, wHhT, dar, daz, dgin, dghn)))
#endif
  for (int t = T - 1; t >= 0; t--) {
    const int o = t * BH;
    const float *hp = t > 0 ? tape.h + o - BH : 0;
    const float *r = tape.r + o, *z = tape.z + o, *n = tape.n + o, *ghn = tape.ghn + o, *dh_in = dH + o;
    float *ar = dar + o, *az = daz + o, *ain = dgin + o, *ahn = dghn + o;
    int i = 0;
    const vf one = c.one;
    for (; i < BH4; i += VL) {
      vf dh = vf_add(vf_load(dh_in + i), vf_load(carry + i));
      vf rv = vf_load(r + i), zv = vf_load(z + i), nv = vf_load(n + i);
      vf hpv = hp ? vf_load(hp + i) : vf_splat(0);
      vf dn = vf_mul(dh, vf_sub(one, zv));
      vf dz = vf_mul(dh, vf_sub(hpv, nv));
      vf dan = vf_mul(dn, vf_sub(one, vf_mul(nv, nv)));
      vf dar_ = vf_mul(vf_mul(dan, vf_load(ghn + i)), vf_mul(rv, vf_sub(one, rv)));
      vf daz_ = vf_mul(dz, vf_mul(zv, vf_sub(one, zv)));
      vf_store(ar + i, dar_);
      vf_store(az + i, daz_);
      vf_store(ain + i, dan);
      vf_store(ahn + i, vf_mul(dan, rv));
      vf_store(carry + i, vf_mul(dh, zv));
    }
    for (; i < BH; i++) {
      float dh = dh_in[i] + carry[i];
      float hps = hp ? hp[i] : 0.0f;
      float dn = dh * (1.0f - z[i]), dz = dh * (hps - n[i]);
      float dan = dn * (1.0f - n[i] * n[i]);
      ar[i] = (dan * ghn[i]) * (r[i] * (1.0f - r[i]));
      az[i] = dz * (z[i] * (1.0f - z[i]));
      ain[i] = dan;
      ahn[i] = dan * r[i];
      carry[i] = dh * z[i];
    }
    PROF(PH_BPTT_GATES);
    if (hp) { /* dh_{t−1} += dG_h · W_hhᵀ; at t = 0 the previous state is the constant h0 */
      matmul(B, H, H, ar, H, 1, wHhT, H, carry, H, MM_ACC, 0);
      matmul(B, H, H, az, H, 1, wHhT + H * H, H, carry, H, MM_ACC, 0);
      matmul(B, H, H, ahn, H, 1, wHhT + 2 * H * H, H, carry, H, MM_ACC, 0);
    }
    PROF(PH_BPTT_RECURRENT);
  }

  const float *dgi[3] = {dar, daz, dgin}, *dgh[3] = {dar, daz, dghn};
#ifndef __wasm__
  /* The native build's AMX path makes all three dW_hh,g in one tile product (amx-native.h). */
  const int whh_done = amx_cur && amx_wgrad((T - 1) * B, H, tape.h, dgh[0] + BH, dgh[1] + BH, dgh[2] + BH, g.wHh);
#endif
  const int fold = fold_bias(I), I1 = I + 1;
  if (fold)
    for (int row = 0; row < T * B; row++) {
      for (int i = 0; i < I; i++) xa[row * I1 + i] = x[row * I + i];
      xa[row * I1 + I] = 1.0f;
    }
  for (int k = 0; k < 3; k++) {
    /* dW_ih,g = xᵀ · dG_i,g over all T·B rows: A(m=i, k=row) = x[row·I + i]; folded, the bias
     * gradient Σ_rows dG_i,g comes out as row I. */
    if (fold) {
      matmul(I1, H, T * B, xa, 1, I1, dgi[k], H, folded, H, MM_ZERO, 0);
      for (int i = 0; i < I; i++) copy(g.wIh + i * H3 + k * H, folded + i * H, H);
      copy(g.bIh + k * H, folded + I * H, H);
    } else {
      matmul(I, H, T * B, x, 1, I, dgi[k], H, g.wIh + k * H, H3, MM_ZERO, 0);
      column_sums(T * B, H, dgi[k], g.bIh + k * H, 0);
    }
    /* dW_hh,g = Σ_t h_{t−1}ᵀ dG_h,g[t]; h_{−1} = 0, so rows 1..T−1 against h_0..h_{T−2}
     * (for T = 1 that is K = 0, which writes zeros). */
#ifndef __wasm__
    if (!whh_done)
#endif
    matmul(H, H, (T - 1) * B, tape.h, 1, H, dgh[k] + BH, H, g.wHh + k * H, H3, MM_ZERO, 0);
    if (k < 2) copy(g.bHh + k * H, g.bIh + k * H, H); /* r and z: the same dG on both paths */
    else column_sums(T * B, H, dgh[k], g.bHh + k * H, 0);
  }
  if (dx) {
    matmul(T * B, I, H, dar, H, 1, wIhT, I, dx, I, MM_ZERO, 0);
    matmul(T * B, I, H, daz, H, 1, wIhT + H * I, I, dx, I, MM_ACC, 0);
    matmul(T * B, I, H, dgin, H, 1, wIhT + 2 * H * I, I, dx, I, MM_ACC, 0);
  }
  PROF(PH_WEIGHT_GRADS);
}

/* ------------------------------------------------------------------------------------------ */
/* Pooling over time: ml/pooling.ts names the variants and says what each means; this table holds
 * their forward and backward passes under the same names, and the TypeScript side finds a
 * variant's index here by name (pool_name), so the two never need a second list of numbers. The
 * GRU keeps running over padding, as the reference does; only `lengths` tells the padding-aware
 * variants where it is.
 *
 * forward: pooled [B,H] from h [T,B,H]. backward: adds dLoss/dh_t into dH (zeroed by the caller)
 * from dLoss/dpooled. */

typedef struct {
  int T, B, H;
  const int32_t *lengths;
  const float *h; /* [T, B, H] */
} PoolArgs;

static void last_forward(PoolArgs a, float *pooled) { copy(pooled, a.h + (a.T - 1) * a.B * a.H, a.B * a.H); }
static void last_backward(PoolArgs a, const float *pooled, const float *dpooled, float *dH) {
  (void)pooled;
  copy(dH + (a.T - 1) * a.B * a.H, dpooled, a.B * a.H);
}

static void mean_forward(PoolArgs a, float *pooled) {
  const int BH = a.B * a.H;
  copy(pooled, a.h, BH);
  for (int t = 1; t < a.T; t++)
    for (int i = 0; i < BH; i++) pooled[i] += a.h[t * BH + i];
  for (int i = 0; i < BH; i++) pooled[i] /= (float)a.T;
}
static void mean_backward(PoolArgs a, const float *pooled, const float *dpooled, float *dH) {
  (void)pooled;
  const int BH = a.B * a.H;
  /* One division per element, not per element and step: every step gets the same row. */
  for (int i = 0; i < BH; i++) dH[i] = dpooled[i] / (float)a.T;
  for (int t = 1; t < a.T; t++) copy(dH + t * BH, dH, BH);
}

static void last_valid_forward(PoolArgs a, float *pooled) {
  for (int b = 0; b < a.B; b++) copy(pooled + b * a.H, a.h + (a.lengths[b] - 1) * a.B * a.H + b * a.H, a.H);
}
static void last_valid_backward(PoolArgs a, const float *pooled, const float *dpooled, float *dH) {
  (void)pooled;
  for (int b = 0; b < a.B; b++) copy(dH + (a.lengths[b] - 1) * a.B * a.H + b * a.H, dpooled + b * a.H, a.H);
}

static void mean_valid_forward(PoolArgs a, float *pooled) {
  const int BH = a.B * a.H, H = a.H;
  for (int b = 0; b < a.B; b++) {
    float *p = pooled + b * H;
    copy(p, a.h + b * H, H);
    for (int t = 1; t < a.lengths[b]; t++)
      for (int j = 0; j < H; j++) p[j] += a.h[t * BH + b * H + j];
    for (int j = 0; j < H; j++) p[j] /= (float)a.lengths[b];
  }
}
static void mean_valid_backward(PoolArgs a, const float *pooled, const float *dpooled, float *dH) {
  (void)pooled;
  const int BH = a.B * a.H, H = a.H;
  for (int b = 0; b < a.B; b++) {
    float *first = dH + b * H;
    for (int j = 0; j < H; j++) first[j] = dpooled[b * H + j] / (float)a.lengths[b];
    for (int t = 1; t < a.lengths[b]; t++) copy(first + t * BH, first, H);
  }
}

static void max_forward(PoolArgs a, float *pooled) {
  const int BH = a.B * a.H, H = a.H;
  for (int b = 0; b < a.B; b++) {
    float *p = pooled + b * H;
    copy(p, a.h + b * H, H);
    for (int t = 1; t < a.lengths[b]; t++)
      for (int j = 0; j < H; j++) {
        float v = a.h[t * BH + b * H + j];
        if (v > p[j]) p[j] = v;
      }
  }
}
/* Every valid step equal to the max gets the gradient (tf.max's rule; ties have probability ~0
 * on real data). */
static void max_backward(PoolArgs a, const float *pooled, const float *dpooled, float *dH) {
  const int BH = a.B * a.H, H = a.H;
  for (int b = 0; b < a.B; b++)
    for (int t = 0; t < a.lengths[b]; t++)
      for (int j = 0; j < H; j++) {
        int at = t * BH + b * H + j;
        if (a.h[at] == pooled[b * H + j]) dH[at] = dpooled[b * H + j];
      }
}

typedef struct {
  const char *name; /* as in ml/pooling.ts */
  void (*forward)(PoolArgs a, float *pooled);
  void (*backward)(PoolArgs a, const float *pooled, const float *dpooled, float *dH);
  int writes_all; /* backward writes every element of dH: no need to zero it first */
} PoolVariant;

static const PoolVariant POOLINGS[] = {
    {"last", last_forward, last_backward, 0},
    {"mean", mean_forward, mean_backward, 1},
    {"last-valid", last_valid_forward, last_valid_backward, 0},
    {"mean-valid", mean_valid_forward, mean_valid_backward, 0},
    {"max", max_forward, max_backward, 0},
};
#define POOL_COUNT ((int)(sizeof(POOLINGS) / sizeof(POOLINGS[0])))

EXPORT("pool_count") int pool_count(void) { return POOL_COUNT; }

/* Copies variant i's name (NUL-terminated) into dst, at most cap bytes; returns its length, or
 * −1 when i is out of range or the name does not fit. */
EXPORT("pool_name") int pool_name(int i, char *dst, int cap) {
  if (i < 0 || i >= POOL_COUNT) return -1;
  int n = 0;
  while (POOLINGS[i].name[n]) n++;
  if (n + 1 > cap) return -1;
  __builtin_memcpy(dst, POOLINGS[i].name, (size_t)n + 1);
  return n;
}

/* The TypeScript side checks mode against pool_count before any call. */
static void pool_forward(int mode, int T, int B, int H, const int32_t *lengths, const float *h, float *pooled) {
  PoolArgs a = {T, B, H, lengths, h};
  POOLINGS[mode].forward(a, pooled);
}

static void pool_backward(int mode, int T, int B, int H, const int32_t *lengths, const float *h, const float *pooled,
                          const float *dpooled, float *dH) {
  PoolArgs a = {T, B, H, lengths, h};
  if (!POOLINGS[mode].writes_all) zero(dH, T * B * H);
  POOLINGS[mode].backward(a, pooled, dpooled, dH);
}

/* ------------------------------------------------------------------------------------------ */
/* The custom op's entry points (ml/kernel/gru-op.ts): one layer's whole sequence, forward and
 * backward, on buffers the caller allocated in this memory. The tape (h, r, z, n, ghn) travels
 * through TensorFlow.js as the op's saved tensor between the two calls. */

EXPORT("gru_scratch_floats") int gru_scratch_floats(int T, int B, int I, int H) {
  int f = forward_scratch_floats(T, B, H), b = backward_scratch_floats(T, B, I, H);
  return f > b ? f : b;
}

/* tape: 5 blocks of [T,B,H]: h, r, z, n, ghn. */
static LayerTape tape_at(float *tape, int TBH) {
  LayerTape t = {tape, tape + TBH, tape + 2 * TBH, tape + 3 * TBH, tape + 4 * TBH};
  return t;
}

EXPORT("gru_forward")
void gru_forward(int T, int B, int I, int H, const float *x, const float *wIh, const float *wHh, const float *bIh,
                 const float *bHh, float *tape, float *scratch) {
  LayerWeights w = {wIh, wHh, bIh, bHh};
#ifndef __wasm__
  amx_cur = amx_setting;
#endif
  layer_forward(T, B, I, H, x, w, tape_at(tape, T * B * H), scratch);
}

EXPORT("gru_backward")
void gru_backward(int T, int B, int I, int H, const float *x, const float *wIh, const float *wHh, const float *bIh,
                  const float *bHh, float *tape, const float *dH, float *dx, float *dwIh, float *dwHh, float *dbIh,
                  float *dbHh, float *scratch) {
  LayerWeights w = {wIh, wHh, bIh, bHh};
  LayerGrads g = {dwIh, dwHh, dbIh, dbHh};
#ifndef __wasm__
  amx_cur = amx_setting;
#endif
  layer_backward(T, B, I, H, x, w, tape_at(tape, T * B * H), dH, g, dx, scratch);
}

EXPORT("pool_forward")
void pool_forward_export(int mode, int T, int B, int H, const int32_t *lengths, const float *h, float *pooled) {
  pool_forward(mode, T, B, H, lengths, h, pooled);
}

EXPORT("pool_backward")
void pool_backward_export(int mode, int T, int B, int H, const int32_t *lengths, const float *h, const float *pooled,
                          const float *dpooled, float *dH) {
  pool_backward(mode, T, B, H, lengths, h, pooled, dpooled, dH);
}

/* ------------------------------------------------------------------------------------------ */
/* The whole training step (ml/kernel/engine.ts): GRU layers → pooling → linear head → softmax
 * cross-entropy → backward → Adam, on one flat parameter vector laid out as the checkpoint is:
 * per layer wIh [I,3H], wHh [H,3H], bIh [3H], bHh [3H]; then the head's weight [H,C] and bias [C]. */

typedef struct {
  int I, H, L, C, maxT, maxB, P;
  float *params, *grads, *m, *v;
  float *x;        /* the batch as given, batch-first [B, T, I] */
  int32_t *lengths, *labels;
  float *masks;    /* inter-layer dropout masks, (L−1) × [T, B, H], filled by the caller */
  float *xt;       /* the batch time-major [T, B, I] */
  float *tapes;    /* L × 5 × [T, B, H] */
  float *inputs;   /* (L−1) × [T, B, H]: layer l+1's input (layer l's output, masked) */
  float *dH;       /* [T, B, H] */
  float *dX;       /* [T, B, H] */
  float *scratch;
  float *pooled, *dpooled, *logits, *dlogits; /* [B,H], [B,H], [B,C], [B,C] */
#ifndef __wasm__
  int amx; /* the matrix products on AMX tiles (amx_use() when the model was made) */
#endif
} Model;

static int layer_params(int I, int H) { return 3 * H * (I + H + 2); }

static float *layer_base(Model *md, int l) {
  return l == 0 ? md->params : md->params + layer_params(md->I, md->H) + (l - 1) * layer_params(md->H, md->H);
}

static LayerWeights weights_at(const float *p, int in, int H) {
  LayerWeights w = {p, p + 3 * H * in, p + 3 * H * (in + H), p + 3 * H * (in + H + 1)};
  return w;
}

static LayerGrads grads_at(float *p, int in, int H) {
  LayerGrads g = {p, p + 3 * H * in, p + 3 * H * (in + H), p + 3 * H * (in + H + 1)};
  return g;
}

EXPORT("model_param_count") int model_param_count(int I, int H, int L, int C) {
  return layer_params(I, H) + (L - 1) * layer_params(H, H) + H * C + C;
}

EXPORT("model_create") Model *model_create(int I, int H, int L, int C, int maxT, int maxB) {
  Model *md = kalloc(sizeof(Model));
  if (!md) return 0;
  const int TBH = maxT * maxB * H, P = model_param_count(I, H, L, C);
  int scratch = forward_scratch_floats(maxT, maxB, H);
  int bs = backward_scratch_floats(maxT, maxB, I, H), is = infer_scratch_floats(maxB, H);
  if (L > 1 && backward_scratch_floats(maxT, maxB, H, H) > bs) bs = backward_scratch_floats(maxT, maxB, H, H);
  if (bs > scratch) scratch = bs;
  if (is > scratch) scratch = is;
  md->I = I, md->H = H, md->L = L, md->C = C, md->maxT = maxT, md->maxB = maxB, md->P = P;
#ifndef __wasm__
  md->amx = amx_setting;
#endif
  float **bufs[] = {&md->params, &md->grads, &md->m, &md->v, &md->x, &md->masks, &md->xt, &md->tapes, &md->inputs,
                    &md->dH, &md->dX, &md->scratch, &md->pooled, &md->dpooled, &md->logits, &md->dlogits};
  int sizes[] = {P, P, P, P, maxT * maxB * I, (L - 1) * TBH, maxT * maxB * I, L * 5 * TBH, (L - 1) * TBH,
                 TBH, TBH, scratch, maxB * H, maxB * H, maxB * C, maxB * C};
  for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    *bufs[k] = kalloc((uint32_t)sizes[k] * 4u + 16u);
    if (!*bufs[k]) return 0;
    zero(*bufs[k], sizes[k]);
  }
  md->lengths = kalloc((uint32_t)maxB * 4u);
  md->labels = kalloc((uint32_t)maxB * 4u);
  if (!md->lengths || !md->labels) return 0;
  return md;
}

enum { BUF_PARAMS = 0, BUF_GRADS, BUF_M, BUF_V, BUF_X, BUF_LENGTHS, BUF_LABELS, BUF_MASKS, BUF_LOGITS };

EXPORT("model_buffer") void *model_buffer(Model *md, int which) {
  switch (which) {
  case BUF_PARAMS: return md->params;
  case BUF_GRADS: return md->grads;
  case BUF_M: return md->m;
  case BUF_V: return md->v;
  case BUF_X: return md->x;
  case BUF_LENGTHS: return md->lengths;
  case BUF_LABELS: return md->labels;
  case BUF_MASKS: return md->masks;
  case BUF_LOGITS: return md->logits;
  default: return 0;
  }
}

/* Logits for the batch in md->x; keeps every layer's tape for a backward pass. */
static void model_forward(Model *md, int T, int B, int pooling, int dropout) {
  const int I = md->I, H = md->H, C = md->C, TBH = T * B * H;
  for (int t = 0; t < T; t++)
    for (int b = 0; b < B; b++) copy_small(md->xt + (t * B + b) * I, md->x + (b * T + t) * I, I);
  PROF(PH_OTHER);
  const float *input = md->xt;
  int in = I;
  for (int l = 0; l < md->L; l++) {
    LayerTape tape = tape_at(md->tapes + l * 5 * TBH, TBH);
    layer_forward(T, B, in, H, input, weights_at(layer_base(md, l), in, H), tape, md->scratch);
    if (l < md->L - 1) {
      float *next = md->inputs + l * TBH;
      if (dropout) {
        const float *mask = md->masks + l * TBH;
        for (int i = 0; i < TBH; i++) next[i] = tape.h[i] * mask[i];
      } else {
        copy(next, tape.h, TBH);
      }
      PROF(PH_OTHER);
      input = next;
      in = H;
    }
  }
  pool_forward(pooling, T, B, H, md->lengths, md->tapes + (md->L - 1) * 5 * TBH, md->pooled);
  const float *W = md->params + md->P - H * C - C, *bias = W + H * C;
  matmul(B, C, H, md->pooled, H, 1, W, C, md->logits, C, MM_BIAS, bias);
  PROF(PH_HEAD);
}

/* Mean softmax cross-entropy of md->logits (torch.nn.CrossEntropyLoss); with dlogits, also
 * its gradient (softmax − onehot) / B. */
static float cross_entropy(Model *md, int B, float *dlogits) {
  const int C = md->C;
  const Consts k = consts();
  float total = 0;
  for (int b = 0; b < B; b++) {
    const float *row = md->logits + b * C;
    float mx = row[0];
    for (int c = 1; c < C; c++) mx = row[c] > mx ? row[c] : mx;
    float sum = 0;
#ifndef __wasm__
    /* Natively, the exponentials VL at a time (v_exp is lane for lane what s_exp computes: the
     * same bits), each computed once, summed in the same order: ~20 scalar calls of the whole
     * vector routine per row were most of an evaluation pass's head-and-loss time. */
    float e[C];
    int c = 0;
    for (; c + VL <= C; c += VL) vf_store(e + c, v_exp(vf_sub(vf_load(row + c), vf_splat(mx)), &k));
    for (; c < C; c++) e[c] = s_exp(row[c] - mx, &k);
    for (c = 0; c < C; c++) sum += e[c];
    total += mx + s_log(sum) - row[md->labels[b]];
    if (dlogits) {
      for (c = 0; c < C; c++) dlogits[b * C + c] = e[c] / sum / (float)B;
      dlogits[b * C + md->labels[b]] -= 1.0f / (float)B;
    }
#else
    for (int c = 0; c < C; c++) sum += s_exp(row[c] - mx, &k);
    total += mx + s_log(sum) - row[md->labels[b]];
    if (dlogits) {
      for (int c = 0; c < C; c++) dlogits[b * C + c] = s_exp(row[c] - mx, &k) / sum / (float)B;
      dlogits[b * C + md->labels[b]] -= 1.0f / (float)B;
    }
#endif
  }
  return total / (float)B;
}

/* Loss of the batch in md->x (lengths, labels set); md->grads ← dLoss/dparams. */
EXPORT("model_forward_backward") float model_forward_backward(Model *md, int T, int B, int pooling, int dropout) {
  const int H = md->H, C = md->C, TBH = T * B * H;
#ifndef __wasm__
  amx_cur = md->amx;
#endif
  PROF_START();
  model_forward(md, T, B, pooling, dropout);
  const float loss = cross_entropy(md, B, md->dlogits);

  const float *W = md->params + md->P - H * C - C;
  float *dW = md->grads + md->P - H * C - C, *db = dW + H * C;
  matmul(H, C, B, md->pooled, 1, H, md->dlogits, C, dW, C, MM_ZERO, 0); /* pooledᵀ · dlogits */
  column_sums(B, C, md->dlogits, db, 0);
  for (int b = 0; b < B; b++) /* dpooled = dlogits · Wᵀ (20 × 64: not worth a transpose) */
    for (int j = 0; j < H; j++) {
      float s = 0;
      for (int c = 0; c < C; c++) s += md->dlogits[b * C + c] * W[j * C + c];
      md->dpooled[b * H + j] = s;
    }
  const float *last_h = md->tapes + (md->L - 1) * 5 * TBH;
  pool_backward(pooling, T, B, H, md->lengths, last_h, md->pooled, md->dpooled, md->dH);
  PROF(PH_HEAD);

  for (int l = md->L - 1; l >= 0; l--) {
    const int in = l == 0 ? md->I : H;
    const float *input = l == 0 ? md->xt : md->inputs + (l - 1) * TBH;
    const int param_offset = (int)(layer_base(md, l) - md->params);
    LayerTape tape = tape_at(md->tapes + l * 5 * TBH, TBH);
    layer_backward(T, B, in, H, input, weights_at(layer_base(md, l), in, H), tape, md->dH,
                   grads_at(md->grads + param_offset, in, H), l > 0 ? md->dX : 0, md->scratch);
    if (l > 0) { /* the layer below's outputs get dX through the same dropout mask */
      if (dropout) {
        const float *mask = md->masks + (l - 1) * TBH;
        for (int i = 0; i < TBH; i++) md->dH[i] = md->dX[i] * mask[i];
      } else {
        copy(md->dH, md->dX, TBH);
      }
      PROF(PH_OTHER);
    }
  }
  return loss;
}

/* Loss of the batch in md->x without dropout; the logits stay in the logits buffer. Tape-free
 * (layer_infer): the same logits as model_forward's, bit for bit, for a fraction of the memory
 * traffic. Layer outputs alternate between the dH and dX buffers, which no backward pass needs. */
EXPORT("model_evaluate") float model_evaluate(Model *md, int T, int B, int pooling) {
  const int I = md->I, H = md->H, C = md->C;
#ifndef __wasm__
  amx_cur = md->amx;
#endif
  PROF_START();
  for (int t = 0; t < T; t++)
    for (int b = 0; b < B; b++) copy_small(md->xt + (t * B + b) * I, md->x + (b * T + t) * I, I);
  PROF(PH_OTHER);
  const float *input = md->xt;
  float *out = md->dH;
  int in = I;
  for (int l = 0; l < md->L; l++) {
    layer_infer(T, B, in, H, input, weights_at(layer_base(md, l), in, H), out, md->scratch);
    input = out;
    out = out == md->dH ? md->dX : md->dH;
    in = H;
  }
  pool_forward(pooling, T, B, H, md->lengths, input, md->pooled);
  const float *W = md->params + md->P - H * C - C, *bias = W + H * C;
  matmul(B, C, H, md->pooled, H, 1, W, C, md->logits, C, MM_BIAS, bias);
  const float loss = cross_entropy(md, B, 0);
  PROF(PH_HEAD);
  return loss;
}

/*
 * torch.optim.Adam (amsgrad off) with its L2 weight decay, over every parameter, in the same
 * float32 operation order as ml/optim.ts:
 *   g ← grad + wd·p;  m ← m + (g − m)(1−β1);  v ← β2·v + g²(1−β2)
 *   p ← p + (m / (√v / √(1−β2^t) + eps)) · (−lr/(1−β1^t))
 * The bias corrections, 1−β1 and 1−β2 come from the caller, computed in float64 (as torch does
 * with Python floats) and then rounded to float32, as ml/optim.ts's tf.scalar()s are.
 */
EXPORT("model_adam")
void model_adam(Model *md, float neg_step, float bias2_sqrt, float omb1, float beta2, float omb2, float eps, float wd) {
  const int P = md->P, P4 = P & ~(VL - 1);
  float *p = md->params, *g = md->grads, *m = md->m, *v = md->v;
  const vf vwd = vf_splat(wd), vomb1 = vf_splat(omb1), vb2 = vf_splat(beta2);
  const vf vomb2 = vf_splat(omb2), vb2s = vf_splat(bias2_sqrt), veps = vf_splat(eps);
  const vf vstep = vf_splat(neg_step);
  PROF_START();
  int i = 0;
  for (; i < P4; i += VL) {
    vf pv = vf_load(p + i), gv = vf_load(g + i), mv = vf_load(m + i), vv = vf_load(v + i);
    if (wd != 0.0f) gv = vf_add(gv, vf_mul(pv, vwd));
    mv = vf_add(mv, vf_mul(vf_sub(gv, mv), vomb1));
    vv = vf_add(vf_mul(vv, vb2), vf_mul(vf_mul(gv, gv), vomb2));
    vf denom = vf_add(vf_div(vf_sqrt(vv), vb2s), veps);
    vf_store(m + i, mv);
    vf_store(v + i, vv);
    vf_store(p + i, vf_add(pv, vf_mul(vf_div(mv, denom), vstep)));
  }
  for (; i < P; i++) {
    float gs = g[i];
    if (wd != 0.0f) gs = gs + p[i] * wd;
    float ms = m[i] + (gs - m[i]) * omb1;
    float vs = v[i] * beta2 + (gs * gs) * omb2;
    float denom = vf_lane(vf_sqrt(vf_splat(vs)), 0) / bias2_sqrt + eps;
    m[i] = ms, v[i] = vs;
    p[i] = p[i] + (ms / denom) * neg_step;
  }
  PROF(PH_ADAM);
}
