/*
 * The GRU layer's matrix products on Intel AMX tiles (the native build only; included by gru.c
 * when it is compiled for the host CPU, never by the WebAssembly builds).
 *
 * AMX multiplies bf16 matrices into fp32 accumulators (TDPBF16PS: 16×16 outputs += 16×32 · 32×16,
 * each bf16 product exact in fp32, summed with fp32 rounding). To keep fp32 accuracy, each fp32
 * operand is split into three bf16 parts, a = a0 + a1 + a2 (each the round-to-nearest-even bf16
 * of the remainder; |a1| ≤ 2⁻⁸|a|, |a2| ≤ 2⁻¹⁶|a|), and the six largest cross products are summed:
 * a0b0 + a0b1 + a0b2 + a1b0 + a1b1 + a2b0 (what is dropped is ≤ 3·2⁻²⁴ relative, fp32's own
 * rounding). That is one bf16 product with K' = 6K:
 *   A' row = [a0 a0 a0 a1 a1 a2],  B' = [b0; b1; b2; b0; b1; b0].
 *
 * One timestep of a layer is then one tile product: A' = [h_{t−1} split | x_t split] (B rows padded
 * to a multiple of 16), B' = [W_hh split; W_ih split] in AMX's VNNI pair layout, with the biases as
 * the accumulators' initial rows. For the r and z gates the input and recurrent parts go into one
 * accumulator (W_i x + b_i + W_h h + b_h); for n they stay apart (W_in x + b_in and W_hn h + b_hn,
 * which the reset gate multiplies). The input projection therefore needs no pass of its own.
 * The weights are split and packed once per call (kept while they do not change: an evaluation
 * over many batches packs them once); the moving operand h is split per timestep. The gate math
 * runs in slices between the tile instructions (the two use different units).
 *
 * Training uses the same scheme twice more: backward through time (dh_{t−1} += [dG_r dG_z dG_hn]
 * · W_hhᵀ per timestep, the gate math of the timestep before interleaved) and the recurrent
 * weights' gradients (dW_hh = Σ_t h_{t−1}ᵀ dG_h over all T·B rows, in chunks). The input weights'
 * gradients (K = 3 inputs), the head and Adam stay gru.c's vector code.
 *
 * Used only when CPUID says AMX-TILE and AMX-BF16 and Linux grants the tile-data permission
 * (arch_prctl ARCH_REQ_XCOMP_PERM), and only for hidden sizes that are multiples of 32; else
 * gru.c's AVX-512/AVX2 code runs unchanged. The tile configuration is loaded at every layer call
 * and released at its end. Results are deterministic on one machine (fixed order, no threads),
 * but differ in the last bits from the AVX-512 path: the kernel kind `native-amx` (load.ts).
 */
#ifndef AMX_NATIVE_H
#define AMX_NATIVE_H

#if VL == 16 && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AMX_BUILD 1
#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_avail = -1;   /* −1: not probed yet */
static int amx_setting;      /* what the caller asked for (amx_use), if available */
static int amx_cur;          /* what the running call uses */
static double amx_layer_count; /* layer calls that ran on tiles, for the tests */

/* CPUID.(EAX=7,ECX=0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE, EBX bit 16 AVX-512F; then the OS's permission. */
static int amx_probe(void) {
  if (amx_avail >= 0) return amx_avail;
  unsigned a, b, c, d;
  amx_avail = 0;
  unsigned a1 = 0, b1, c1, d1;
  /* CPUID.(7,1):EAX bit 5: AVX512_BF16 (the exact bf16 packing of h's parts). */
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) && (d & (1u << 24)) && (b & (1u << 16)) /* AVX-512F */ &&
      __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5))) {
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0) amx_avail = 1;
  }
  return amx_avail;
}

typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} AmxConfig;

/* Tiles 0–3 accumulators, 4–5 A, 6–7 B: all 16 rows × 64 bytes. A static object, not a local:
 * GCC's _tile_loadconfig tells the compiler it reads 8 bytes only, so the stores that fill a local
 * configuration may be dropped as dead (measured: ldtilecfg then faults on garbage). */
static const AmxConfig AMX_CONFIG = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};
AMX_TARGET static void amx_begin(void) { _tile_loadconfig(&AMX_CONFIG); }
AMX_TARGET static void amx_end(void) { _tile_release(); }

/* ---- bf16 splitting, on fp32 bit patterns: round to nearest even, kept as the fp32 it is ---- */

static inline uint32_t bf16_round_bits(uint32_t u) { return (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u; }
static inline float bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t f_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
/* The three parts of v, each as fp32 bits with a zero low half. */
static inline void split3(float v, uint32_t p[3]) {
  p[0] = bf16_round_bits(f_bits(v));
  float r = v - bits_f(p[0]);
  p[1] = bf16_round_bits(f_bits(r));
  p[2] = bf16_round_bits(f_bits(r - bits_f(p[1])));
}

AMX_TARGET static inline __m512i v_bf16_round(__m512i u) {
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), _mm512_set1_epi32((int)0xffff0000u));
}
AMX_TARGET static inline void v_split3(__m512 v, __m512i p[3]) {
  p[0] = v_bf16_round(_mm512_castps_si512(v));
  __m512 r = _mm512_sub_ps(v, _mm512_castsi512_ps(p[0]));
  p[1] = v_bf16_round(_mm512_castps_si512(r));
  p[2] = v_bf16_round(_mm512_castps_si512(_mm512_sub_ps(r, _mm512_castsi512_ps(p[1]))));
}

/* Segment s of A' holds part SEG_A[s], of B' part SEG_B[s]. */
static const int SEG_A[6] = {0, 0, 0, 1, 1, 2};
static const int SEG_B[6] = {0, 1, 2, 0, 1, 0};

/* ---- buffers, grown on demand (single-threaded: native.c refuses a second thread) ---- */

static void *amx_grow(void **buf, size_t *have, size_t bytes) {
  if (*have >= bytes) return *buf;
  free(*buf);
  *have = 0;
  *buf = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
  if (*buf) *have = bytes;
  return *buf;
}

/* A packed layer: B' [KS k-steps][NT column tiles] tiles of 16 pair-rows × 32 bf16 (1 KiB each),
 * the fused r/z bias, and the fp32 weights it was packed from (to see when they change). */
typedef struct {
  int I, H;
  const float *key; /* wHh as passed */
  float *saved;     /* wIh, wHh, bIh, bHh as packed */
  size_t saved_have;
  uint16_t *bp;
  size_t bp_have;
  float *bias_rz; /* b_ih + b_hh for r and z, [2H] */
  size_t bias_have;
} AmxPacked;

#define AMX_SLOTS 4
static AmxPacked amx_slots[AMX_SLOTS];
static int amx_next_slot;

static int amx_kx(int I) { return (6 * I + 31) & ~31; } /* x segment of K', padded */

/* Writes element (row kk of B', column n) into the VNNI tile layout. */
static inline void bp_put(uint16_t *bp, int NT, int kk, int n, uint32_t bits) {
  const int ks = kk >> 5, r2 = (kk & 31) >> 1;
  bp[((size_t)(ks * NT + (n >> 4)) * 16 + r2) * 32 + 2 * (n & 15) + (kk & 1)] = (uint16_t)(bits >> 16);
}

AMX_TARGET static AmxPacked *amx_pack(int I, int H, LayerWeights w) {
  const int H3 = 3 * H, NT = H3 / 16, KX = amx_kx(I), KB = 3 * (H / 32) + KX / 32;
  const size_t nsave = (size_t)H3 * (I + H + 2);
  for (int s = 0; s < AMX_SLOTS; s++) {
    AmxPacked *p = &amx_slots[s];
    if (p->key == w.wHh && p->I == I && p->H == H && p->bp && !memcmp(p->saved, w.wIh, (size_t)H3 * I * 4) &&
        !memcmp(p->saved + H3 * I, w.wHh, (size_t)H3 * H * 4) && !memcmp(p->saved + H3 * (I + H), w.bIh, (size_t)H3 * 4) &&
        !memcmp(p->saved + H3 * (I + H + 1), w.bHh, (size_t)H3 * 4))
      return p;
  }
  AmxPacked *p = &amx_slots[amx_next_slot];
  amx_next_slot = (amx_next_slot + 1) % AMX_SLOTS;
  p->key = 0;
  if (!amx_grow((void **)&p->saved, &p->saved_have, nsave * 4) || !amx_grow((void **)&p->bp, &p->bp_have, (size_t)KB * NT * 1024) ||
      !amx_grow((void **)&p->bias_rz, &p->bias_have, (size_t)2 * H * 4))
    return 0;
  memcpy(p->saved, w.wIh, (size_t)H3 * I * 4);
  memcpy(p->saved + H3 * I, w.wHh, (size_t)H3 * H * 4);
  memcpy(p->saved + H3 * (I + H), w.bIh, (size_t)H3 * 4);
  memcpy(p->saved + H3 * (I + H + 1), w.bHh, (size_t)H3 * 4);
  uint16_t *bp = p->bp;
  /* W_hh: rows k, k+1, 16 columns at a time: one 64-byte tile row in each part's k-steps. */
  for (int k = 0; k < H; k += 2)
    for (int ct = 0; ct < NT; ct++) {
      __m512i lo[3], hi[3], pair[3];
      v_split3(_mm512_loadu_ps(w.wHh + (size_t)k * H3 + ct * 16), lo);
      v_split3(_mm512_loadu_ps(w.wHh + (size_t)(k + 1) * H3 + ct * 16), hi);
      for (int q = 0; q < 3; q++) pair[q] = _mm512_or_si512(hi[q], _mm512_srli_epi32(lo[q], 16));
      for (int q = 0; q < 3; q++) {
        const int kk = q * H + k, ks = kk >> 5, r2 = (kk & 31) >> 1;
        _mm512_storeu_si512(bp + ((size_t)(ks * NT + ct) * 16 + r2) * 32, pair[q]);
      }
    }
  /* W_ih: 6·I rows (I may be odd), padded with zero rows to a whole k-step. */
  memset(bp + (size_t)(3 * H / 32) * NT * 512, 0, (size_t)(KX / 32) * NT * 1024);
  for (int i = 0; i < I; i++)
    for (int n = 0; n < H3; n++) {
      uint32_t parts[3];
      split3(w.wIh[(size_t)i * H3 + n], parts);
      for (int s = 0; s < 6; s++) bp_put(bp, NT, 3 * H + s * I + i, n, parts[SEG_B[s]]);
    }
  for (int j = 0; j < 2 * H; j++) p->bias_rz[j] = w.bIh[j] + w.bHh[j];
  p->I = I, p->H = H, p->key = w.wHh;
  return p;
}

/* ---- the timestep's tile product ---- */

/*
 * A' is kept without its copies: the three bf16 parts of h ([Mp, H] each) and the x segment
 * ([Mp, KX]: [x0 x0 x0 x1 x1 x2] per row, then zeros). K-step ks of A' (32 wide; H is a multiple
 * of 32, so none straddles two segments) is then read from part SEG_A[segment] at its column, or
 * from the x segment: half the stores of writing A' out in full.
 */
typedef struct {
  uint16_t *part[3], *xs;
} AmxA;

static inline const uint16_t *amx_a_at(const AmxA *a, int H, int KSH, int ks, int *stride) {
  if (ks < KSH) {
    const int per = H / 32;
    *stride = H * 2;
    return a->part[SEG_A[ks / per]] + (ks % per) * 32;
  }
  *stride = 0; /* the caller knows the x segment's stride */
  return a->xs + (ks - KSH) * 32;
}

/* The x segment for rows [0, B): x [B, I] → [x0 x0 x0 x1 x1 x2] (then the zero padding). */
static void amx_split_x(int B, int I, int KX, const float *x, uint16_t *xs) {
  for (int m = 0; m < B; m++) {
    uint16_t *row = xs + (size_t)m * KX;
    for (int i = 0; i < I; i++) {
      uint32_t parts[3];
      split3(x[(size_t)m * I + i], parts);
      for (int s = 0; s < 6; s++) row[s * I + i] = (uint16_t)(parts[SEG_A[s]] >> 16);
    }
  }
}

/* ---- the gate math, run in slices between the tile instructions ----
 *
 * The tile products and the vector gate math use different units, but one after the other they
 * add up (measured: 2.1 µs of products + 1.7 of gate math + 0.5 of splitting took 5.6 µs per
 * timestep together). So the gate math of one column group runs in slices after each k-step of
 * the next group's tile products: σ of the r and z groups while the following groups multiply,
 * then n and h' of one column pair of n while the next pair multiplies, the last pair's while the
 * next timestep's W_in x products run. h' is split into the next timestep's A' on the spot (A' is
 * double-buffered: this timestep's is still being read). A unit of work is one row of the group's
 * 32 columns (gru.c's σ and tanh; a reciprocal estimate + Newton step instead of vdivps was
 * measured slower here, 1.81 vs 1.65 µs per timestep: the FMA ports, not the divider, bound it).
 */
typedef struct {
  int kind; /* 0 nothing, 1 σ, 2 n and h' */
  int v, nv, H;
  const Consts *c;
  const float *pre; /* σ: out = σ(pre) */
  float *out;
  const float *ghn, *gin, *r, *z, *hp; /* n and h': all at the group's first column */
  float *h, *tn, *tghn;                /* tn, tghn: the tape's n and ghn, or null */
  uint16_t *anext[3];                  /* next timestep's h parts at this group's column, or null */
} AmxWork;

AMX_TARGET static inline __attribute__((always_inline)) void amx_work(AmxWork *w, int upto) {
  if (upto > w->nv) upto = w->nv;
  const int H = w->H;
  for (; w->v < upto; w->v++) {
    const size_t i = (size_t)w->v * H;
    if (w->kind == 1) {
      vf_store(w->out + i, v_sigmoid(vf_load(w->pre + i), w->c));
      vf_store(w->out + i + 16, v_sigmoid(vf_load(w->pre + i + 16), w->c));
    } else {
      vf hv[2];
      for (int u = 0; u < 2; u++) {
        const size_t k = i + 16 * u;
        vf rv = vf_load(w->r + k), zv = vf_load(w->z + k), g = vf_load(w->ghn + k);
        vf nv = v_tanh(vf_madd(rv, g, vf_load(w->gin + k)), w->c);
        hv[u] = vf_madd(zv, vf_sub(vf_load(w->hp + k), nv), nv);
        vf_store(w->h + k, hv[u]);
        if (w->tn) vf_store(w->tn + k, nv), vf_store(w->tghn + k, g);
      }
      if (w->anext[0]) {
        __m512i lo[3], hi[3];
        v_split3((__m512)hv[0], lo);
        v_split3((__m512)hv[1], hi);
        /* The parts are bf16 values already: the conversion is exact. */
        for (int q = 0; q < 3; q++)
          _mm512_storeu_si512(w->anext[q] + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_castsi512_ps(hi[q]), _mm512_castsi512_ps(lo[q])));
      }
    }
  }
}

/* B' is kept without its copies too: W_hh's three parts, H/32 k-steps each, then the x segment's
 * k-steps. K-step ks of B' (segment ks / (H/32)) is read from part SEG_B[segment]. Each part of a
 * column pair's tiles (4 KiB at H = 64) is then read up to three times per timestep from L1, where
 * the copies (147 KiB at H = 64, over L1's 48) came from L2 every time. */
/*
 * One k-step of a block of 16×16 output tiles: tiles 0 and 1 (and 2 and 3 for the next 16 rows,
 * when `two`) += A (16 rows at a, the next 16 at a + 16 rows; row stride lda bytes) · B's two
 * column tiles at b and b + 512 (VNNI pairs, 64 bytes a row). Every tile product of this file.
 */
AMX_TARGET static inline __attribute__((always_inline)) void amx_kstep(const uint16_t *a, int lda, const uint16_t *b, int two) {
  _tile_loadd(4, a, lda);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b + 512, 64);
  _tile_dpbf16ps(0, 4, 6);
  _tile_dpbf16ps(1, 4, 7);
  if (two) {
    _tile_loadd(5, a + (size_t)16 * (lda / 2), lda);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
}

static inline int amx_b_step(int ks, int H, int KSH) {
  const int per = H / 32;
  return ks < KSH ? SEG_B[ks / per] * per + ks % per : 3 * per + (ks - KSH);
}

/*
 * One column pair [ct, ct+1] over all row tiles and k-steps [k0, k1): accumulators start from the
 * bias row (bias for ct, bias + 16 for ct+1, loaded with stride 0), results go to out (row stride
 * H) and out + 16. The pending gate math w advances a slice after every k-step.
 */
AMX_TARGET static inline __attribute__((always_inline)) void amx_group(int Mp, int H, const AmxA *A, int KX, const uint16_t *bp, int NT, int ct,
                                                                        const int *order, int k0, int k1, const float *bias, float *out,
                                                                        AmxWork *w) {
  const int ldo = H * 4, KSH = 6 * H / 32, blocks = (Mp + 31) / 32, steps = blocks * (k1 - k0);
  const int v0 = w->v, left = w->nv - w->v;
  int done = 0; /* k-steps issued so far: the work is spread evenly over them */
  for (int rt = 0; rt < Mp; rt += 32) {
    float *o = out + (size_t)rt * H;
    const int two = Mp - rt >= 32;
    _tile_loadd(0, bias, 0);
    _tile_loadd(1, bias + 16, 0);
    if (two) {
      _tile_loadd(2, bias, 0);
      _tile_loadd(3, bias + 16, 0);
    }
    for (int i = k0; i < k1; i++) {
      const int ks = order[i];
      int lda;
      const uint16_t *a = amx_a_at(A, H, KSH, ks, &lda);
      if (lda == 0) lda = KX * 2;
      amx_kstep(a + (size_t)rt * (lda / 2), lda, bp + ((size_t)amx_b_step(ks, H, KSH) * NT + ct) * 512, two);
      amx_work(w, v0 + left * ++done / steps);
    }
    if (two) {
      _tile_stored(2, o + (size_t)16 * H, ldo);
      _tile_stored(3, o + (size_t)16 * H + 16, ldo);
    }
    _tile_stored(0, o, ldo);
    _tile_stored(1, o + 16, ldo);
  }
}

/* ---- one layer over the whole sequence ---- */

static void *amx_a_buf, *amx_o_buf;
static size_t amx_a_have, amx_o_have;

/*
 * layer_forward (tape not null: r, z, n, ghn and h kept) or layer_infer (tape null: h only, into
 * hs) on tiles. Returns 0 without doing anything when this shape cannot use them (H not a
 * multiple of 32, or out of memory); the caller then runs its own code.
 *
 * Timestep t, with HT = H/16 column tiles per gate: the r and z column pairs (pre-activations
 * W_i x + b_i + W_h h + b_h in one accumulator; σ of each pair during the next pair's products);
 * the n pairs' W_hn h + b_hn (n and h' of a pair during the next pair's products); then the next
 * timestep's W_in x + b_in (it needs no h), during which the last pair's n and h' run.
 */
AMX_TARGET static int amx_layer(int T, int B, int I, int H, const float *x, LayerWeights w, float *hs, const LayerTape *tape) {
  if (H % 32 != 0 || T < 1 || B < 1) return 0;
  const int Mp = (B + 15) & ~15, BH = B * H, KX = amx_kx(I);
  const int NT = 3 * H / 16, HT = H / 16, KSH = 6 * H / 32, KS = KSH + KX / 32;
  AmxPacked *p = amx_pack(I, H, w);
  if (!p) return 0;
  const size_t abytes = ((size_t)3 * Mp * H + (size_t)Mp * KX) * 2;
  uint16_t *abuf = amx_grow(&amx_a_buf, &amx_a_have, 2 * abytes);
  float *o = amx_grow(&amx_o_buf, &amx_o_have, (size_t)(7 * Mp * H + BH + 2 * (6 * H / 32 + KX / 32)) * 4);
  if (!abuf || !o) return 0;
  memset(abuf, 0, 2 * abytes); /* padding rows and columns stay zero */
  AmxA As[2];
  for (int b = 0; b < 2; b++) {
    uint16_t *base = abuf + b * (abytes / 2);
    for (int q = 0; q < 3; q++) As[b].part[q] = base + (size_t)q * Mp * H;
    As[b].xs = base + (size_t)3 * Mp * H;
  }
  float *pre_r = o, *pre_z = o + Mp * H, *ghn = o + 2 * Mp * H, *gins[2] = {o + 3 * Mp * H, o + 4 * Mp * H};
  float *rs = o + 5 * Mp * H, *zs = o + 6 * Mp * H, *zeros = o + 7 * Mp * H;
  memset(zeros, 0, (size_t)BH * 4);
  const Consts c = consts();
  const float *bHn = w.bHh + 2 * H, *bIn = w.bIh + 2 * H;
  AmxWork wk = {.H = H, .c = &c};
  /* K-step orders: ident; order = the x k-steps, then the h k-steps column by column (those of
   * h's first columns first: their parts were written earliest in the previous timestep). */
  int *ident = (int *)(zeros + BH), *order = ident + KS;
  for (int i = 0; i < KS; i++) ident[i] = i;
  {
    int n = 0;
    for (int k = KSH; k < KS; k++) order[n++] = k;
    for (int col = 0; col < H / 32; col++)
      for (int sg = 0; sg < 6; sg++) order[n++] = sg * (H / 32) + col;
  }
  amx_begin();
  amx_split_x(B, I, KX, x, As[0].xs);
  for (int q = 0; q < HT / 2; q++) amx_group(Mp, H, &As[0], KX, p->bp, NT, 2 * HT + 2 * q, ident, KSH, KS, bIn + 32 * q, gins[0] + 32 * q, &wk);
  for (int t = 0; t < T; t++) {
    const size_t off = (size_t)t * BH;
    const AmxA *A = &As[t & 1], *An = &As[(t + 1) & 1];
    float *gin = gins[t & 1], *gin_next = gins[(t + 1) & 1];
    float *h = tape ? tape->h + off : hs + off;
    const float *hp = t > 0 ? h - BH : zeros;
    float *r = tape ? tape->r + off : rs, *z = tape ? tape->z + off : zs;
    const int k0 = t > 0 ? 0 : KSH;
    for (int g = 0; g < HT; g++) { /* r and z column pairs */
      const int ct = 2 * g, gate_col = (ct % HT) * 16;
      float *pre = (ct < HT ? pre_r : pre_z) + gate_col;
      amx_group(Mp, H, A, KX, p->bp, NT, ct, t > 0 ? order : ident, k0, KS, p->bias_rz + ct * 16, pre, &wk);
      amx_work(&wk, wk.nv);
      if (g == 0 && t + 1 < T) amx_split_x(B, I, KX, x + (size_t)(t + 1) * B * I, An->xs);
      wk.kind = 1, wk.v = 0, wk.nv = B, wk.pre = pre, wk.out = (ct < HT ? r : z) + gate_col;
    }
    for (int q = 0; q < HT / 2; q++) { /* n column pairs: W_hn h + b_hn */
      const int ct = 2 * HT + 2 * q, col = 32 * q;
      if (t > 0)
        amx_group(Mp, H, A, KX, p->bp, NT, ct, order + (KS - KSH), 0, KSH, bHn + col, ghn + col, &wk);
      else
        for (int m = 0; m < Mp; m++) memcpy(ghn + (size_t)m * H + col, bHn + col, 32 * 4);
      amx_work(&wk, wk.nv);
      wk.kind = 2, wk.v = 0, wk.nv = B;
      wk.ghn = ghn + col, wk.gin = gin + col, wk.r = r + col, wk.z = z + col, wk.hp = hp + col, wk.h = h + col;
      wk.tn = tape ? tape->n + off + col : 0, wk.tghn = tape ? tape->ghn + off + col : 0;
      for (int k = 0; k < 3; k++) wk.anext[k] = t + 1 < T ? An->part[k] + col : 0;
    }
    if (t + 1 < T) /* the next timestep's W_in x + b_in */
      for (int q = 0; q < HT / 2; q++) amx_group(Mp, H, An, KX, p->bp, NT, 2 * HT + 2 * q, ident, KSH, KS, bIn + 32 * q, gin_next + 32 * q, &wk);
    amx_work(&wk, wk.nv);
    wk.kind = 0, wk.v = 0, wk.nv = 0;
    PROF(PH_RECURRENT);
  }
  amx_end();
  amx_layer_count += 1;
  return 1;
}

/* ---- backward through time: dh_{t−1} += [dG_r dG_z dG_hn] · W_hhᵀ on tiles ---- */

static void *amx_bb_buf, *amx_ba_buf, *amx_bc_buf;
static size_t amx_bb_have, amx_ba_have, amx_bc_have;

/* W [K, N] (row stride ldw; K and N multiples of 32 and 16) into its three bf16 parts, each
 * K/32 k-steps × N/16 column tiles in the VNNI pair layout: part q's k-step c, column tile ct at
 * tile index (q·K/32 + c)·N/16 + ct. */
AMX_TARGET static void amx_pack_parts(int K, int N, const float *W, int ldw, uint16_t *bp) {
  const int NT = N / 16;
  for (int k = 0; k < K; k += 2)
    for (int ct = 0; ct < NT; ct++) {
      __m512i lo[3], hi[3];
      v_split3(_mm512_loadu_ps(W + (size_t)k * ldw + ct * 16), lo);
      v_split3(_mm512_loadu_ps(W + (size_t)(k + 1) * ldw + ct * 16), hi);
      for (int q = 0; q < 3; q++) {
        const int kk = q * K + k, ks = kk >> 5, r2 = (kk & 31) >> 1;
        _mm512_storeu_si512(bp + ((size_t)(ks * NT + ct) * 16 + r2) * 32, _mm512_or_si512(hi[q], _mm512_srli_epi32(lo[q], 16)));
      }
    }
}

/* One row m of BPTT's gate math at timestep o (offset into the [T, B, H] arrays) over columns
 * [j0, j0 + 32): gru.c's loop (the same bits); with parts, dG_r, dG_z, dG_hn of those columns
 * are split into the next tile product's A parts too. */
typedef struct {
  int H, H3;
  const float *hp, *r, *z, *n, *ghn, *dh_in; /* at the timestep */
  float *ar, *az, *ain, *ahn, *carry;
  uint16_t *parts[3]; /* null: the last timestep, no product follows */
} BpttRow;

AMX_TARGET static inline __attribute__((always_inline)) void amx_bptt_row(const BpttRow *g, int m, int j0, vf one) {
  vf out[3][2];
  for (int u = 0; u < 2; u++) {
    const size_t i = (size_t)m * g->H + j0 + 16 * u;
    vf dh = vf_add(vf_load(g->dh_in + i), vf_load(g->carry + i));
    vf rv = vf_load(g->r + i), zv = vf_load(g->z + i), nv = vf_load(g->n + i);
    vf hpv = g->hp ? vf_load(g->hp + i) : vf_splat(0);
    vf dn = vf_mul(dh, vf_sub(one, zv));
    vf dz = vf_mul(dh, vf_sub(hpv, nv));
    vf dan = vf_mul(dn, vf_sub(one, vf_mul(nv, nv)));
    vf dar_ = vf_mul(vf_mul(dan, vf_load(g->ghn + i)), vf_mul(rv, vf_sub(one, rv)));
    vf daz_ = vf_mul(dz, vf_mul(zv, vf_sub(one, zv)));
    vf dahn = vf_mul(dan, rv);
    vf_store(g->ar + i, dar_);
    vf_store(g->az + i, daz_);
    vf_store(g->ain + i, dan);
    vf_store(g->ahn + i, dahn);
    vf_store(g->carry + i, vf_mul(dh, zv));
    out[0][u] = dar_, out[1][u] = daz_, out[2][u] = dahn;
  }
  if (g->parts[0])
    for (int gate = 0; gate < 3; gate++) {
      __m512i lo[3], hi[3];
      v_split3((__m512)out[gate][0], lo);
      v_split3((__m512)out[gate][1], hi);
      for (int q = 0; q < 3; q++)
        _mm512_storeu_si512(g->parts[q] + (size_t)m * g->H3 + gate * g->H + j0,
                            (__m512i)_mm512_cvtne2ps_pbh(_mm512_castsi512_ps(hi[q]), _mm512_castsi512_ps(lo[q])));
    }
}

static BpttRow amx_bptt_at(int t, int B, int H, const LayerTape *tape, const float *dH, float *dar, float *daz, float *dgin, float *dghn,
                           float *carry, uint16_t *parts[3]) {
  const int o = t * B * H;
  BpttRow g = {H,           3 * H,       t > 0 ? tape->h + o - B * H : 0, tape->r + o, tape->z + o, tape->n + o, tape->ghn + o, dH + o,
               dar + o,     daz + o,     dgin + o,                        dghn + o,    carry,       {0, 0, 0}};
  for (int q = 0; q < 3; q++) g.parts[q] = t > 0 ? parts[q] : 0; /* at t = 0 no product follows */
  return g;
}

/*
 * gru.c's time loop of layer_backward with its recurrent product on tiles: the same gate math
 * (the same bits), then dh_{t−1} = dh·z + [dG_r dG_z dG_hn] · W_hhᵀ as one fp32-accurate tile
 * product onto the carry (wHhT: [3H, H], gate g's block rows [gH, gH+H)), one column pair (32
 * columns of dh) at a time; timestep t−1's gate math for a column pair's columns needs only
 * that pair's carry, so it runs in slices during the next pair's products (A' is double-
 * buffered). Returns 0 without doing anything where the tiles cannot be used (H not a multiple
 * of 32, out of memory).
 */
AMX_TARGET static int amx_bptt(int T, int B, int H, const LayerTape *tape, const float *dH, const float *wHhT, float *dar, float *daz,
                               float *dgin, float *dghn) {
  if (H % 32 != 0 || T < 1 || B < 1) return 0;
  const int Mp = (B + 15) & ~15, H3 = 3 * H, NT = H / 16, KC = H3 / 32, lda = H3 * 2, ldc = H * 4;
  uint16_t *bp = amx_grow(&amx_bb_buf, &amx_bb_have, (size_t)3 * H3 * H * 2);
  uint16_t *abuf = amx_grow(&amx_ba_buf, &amx_ba_have, (size_t)6 * Mp * H3 * 2);
  float *carry = amx_grow(&amx_bc_buf, &amx_bc_have, (size_t)Mp * H * 4);
  if (!bp || !abuf || !carry) return 0;
  memset(abuf, 0, (size_t)6 * Mp * H3 * 2);
  memset(carry, 0, (size_t)Mp * H * 4);
  uint16_t *parts[2][3];
  for (int b = 0; b < 2; b++)
    for (int q = 0; q < 3; q++) parts[b][q] = abuf + (size_t)(3 * b + q) * Mp * H3;
  amx_pack_parts(H3, H, wHhT, H, bp);
  const Consts c = consts();
  const vf one = c.one;
  amx_begin();
  /* The last timestep's gate math, whole. */
  BpttRow g = amx_bptt_at(T - 1, B, H, tape, dH, dar, daz, dgin, dghn, carry, parts[(T - 1) & 1]);
  for (int j = 0; j < H; j += 32)
    for (int m = 0; m < B; m++) amx_bptt_row(&g, m, j, one);
  PROF(PH_BPTT_GATES);
  for (int t = T - 1; t > 0; t--) {
    /* carry += A'_t · B' pair by pair; timestep t−1's gate math for pair p−1 meanwhile. */
    uint16_t *const *A = parts[t & 1];
    BpttRow prev = amx_bptt_at(t - 1, B, H, tape, dH, dar, daz, dgin, dghn, carry, parts[(t - 1) & 1]);
    int pending = -1, row = 0; /* the column pair whose gate math is running, and its next row */
    for (int ct = 0; ct < NT; ct += 2) {
      const int steps = 6 * KC * ((Mp + 31) / 32);
      int done = 0;
      for (int rt = 0; rt < Mp; rt += 32) {
        float *o = carry + (size_t)rt * H + ct * 16;
        const int two = Mp - rt >= 32;
        _tile_loadd(0, o, ldc);
        _tile_loadd(1, o + 16, ldc);
        if (two) {
          _tile_loadd(2, o + (size_t)16 * H, ldc);
          _tile_loadd(3, o + (size_t)16 * H + 16, ldc);
        }
        for (int s = 0; s < 6; s++)
          for (int k = 0; k < KC; k++) {
            const uint16_t *a = A[SEG_A[s]] + (size_t)rt * H3 + k * 32;
            const uint16_t *b = bp + ((size_t)(SEG_B[s] * KC + k) * NT + ct) * 512;
            amx_kstep(a, lda, b, two);
            if (pending >= 0)
              for (const int upto = B * ++done / steps; row < upto; row++) amx_bptt_row(&prev, row, pending * 16, one);
          }
        _tile_stored(0, o, ldc);
        _tile_stored(1, o + 16, ldc);
        if (two) {
          _tile_stored(2, o + (size_t)16 * H, ldc);
          _tile_stored(3, o + (size_t)16 * H + 16, ldc);
        }
      }
      if (pending >= 0)
        for (; row < B; row++) amx_bptt_row(&prev, row, pending * 16, one);
      pending = ct, row = 0;
    }
    for (; row < B; row++) amx_bptt_row(&prev, row, pending * 16, one);
    PROF(PH_BPTT_RECURRENT);
  }
  amx_end();
  return 1;
}

/* ---- the recurrent weights' gradients: dW_hh,g = Σ_t h_{t−1}ᵀ dG_h,g[t] on tiles ---- */

/* r[i] ← column i of the 16×16 matrix of 32-bit elements whose rows were r[0..15]. */
AMX_TARGET static inline __attribute__((always_inline)) void transpose16(__m512i r[16]) {
  __m512i t[16], u[16], v[16];
  for (int j = 0; j < 8; j++) {
    t[2 * j] = _mm512_unpacklo_epi32(r[2 * j], r[2 * j + 1]);
    t[2 * j + 1] = _mm512_unpackhi_epi32(r[2 * j], r[2 * j + 1]);
  }
  for (int j = 0; j < 4; j++) {
    u[4 * j] = _mm512_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
    u[4 * j + 1] = _mm512_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
    u[4 * j + 2] = _mm512_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
    u[4 * j + 3] = _mm512_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
  }
  for (int j = 0; j < 2; j++)
    for (int k = 0; k < 4; k++) {
      v[8 * j + k] = _mm512_shuffle_i32x4(u[8 * j + k], u[8 * j + 4 + k], 0x88);
      v[8 * j + 4 + k] = _mm512_shuffle_i32x4(u[8 * j + k], u[8 * j + 4 + k], 0xdd);
    }
  for (int k = 0; k < 8; k++) {
    r[k] = _mm512_shuffle_i32x4(v[k], v[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_i32x4(v[k], v[8 + k], 0xdd);
  }
}

/* Rows k, k+1 of X [K, N] (row stride N; rows ≥ K read as zero) at columns [j, j+16), split: per
 * part, the 16 bf16 pairs (row k, row k+1) as 32-bit elements. */
AMX_TARGET static inline __attribute__((always_inline)) void pair_parts(const float *X, int K, int N, int k, int j, __m512i out[3]) {
  __m512i lo[3], hi[3];
  v_split3(k < K ? _mm512_loadu_ps(X + (size_t)k * N + j) : _mm512_setzero_ps(), lo);
  v_split3(k + 1 < K ? _mm512_loadu_ps(X + (size_t)(k + 1) * N + j) : _mm512_setzero_ps(), hi);
  for (int q = 0; q < 3; q++) out[q] = _mm512_or_si512(hi[q], _mm512_srli_epi32(lo[q], 16));
}

static void *amx_wa_buf, *amx_wb_buf;
static size_t amx_wa_have, amx_wb_have;

/*
 * dW [H, 3H] (row stride 3H; gate g's columns [gH, gH+H)) = hᵀ · [dG_r dG_z dG_hn] over K rows:
 * h [K, H] (h_0 … h_{T−2}), dG_g [K, H] (their rows 1 … T−1). A = hᵀ split into three parts,
 * transposed 16×16 at a time into [H, Kp] (Kp = the chunk's rows rounded up to 32, zeros past
 * them); B = each dG split into the VNNI pair layout. K is taken AMX_WG_ROWS rows at a time, each
 * chunk's sums added onto the last's: the packed operands (~1 MB at H = 64) stay in L2 however long
 * the sequence (measured at T = 300: 1.33 ms in chunks of 640 rows, 2.60 in chunks of 4,096, 1.84
 * for the AVX-512 code). Returns 0 (nothing written) for shapes the tiles do not take.
 */
#define AMX_WG_ROWS 640
AMX_TARGET static int amx_wgrad(int K, int H, const float *h, const float *dg0, const float *dg1, const float *dg2, float *dW) {
  if (H % 32 != 0 || K < 64) return 0;
  const int HT = H / 16, H3 = 3 * H, KPmax = K < AMX_WG_ROWS ? (K + 31) & ~31 : AMX_WG_ROWS;
  uint16_t *A = amx_grow(&amx_wa_buf, &amx_wa_have, (size_t)3 * H * KPmax * 2);
  uint16_t *Bp = amx_grow(&amx_wb_buf, &amx_wb_have, (size_t)3 * 3 * KPmax * H * 2);
  if (!A || !Bp) return 0;
  for (int k_base = 0; k_base < K; k_base += AMX_WG_ROWS) {
    const int Kc = K - k_base < AMX_WG_ROWS ? K - k_base : AMX_WG_ROWS, Kp = (Kc + 31) & ~31, KC = Kp / 32;
    const float *hc = h + (size_t)k_base * H, *dg[3] = {dg0 + (size_t)k_base * H, dg1 + (size_t)k_base * H, dg2 + (size_t)k_base * H};
    /* A: part q is [H, Kp]; 16 row pairs (32 values of k) × 16 columns of h per transpose. */
    for (int k0 = 0; k0 < Kp; k0 += 32)
      for (int j = 0; j < H; j += 16) {
        __m512i blk[3][16];
        for (int p = 0; p < 16; p++) {
          __m512i parts[3];
          pair_parts(hc, Kc, H, k0 + 2 * p, j, parts);
          for (int q = 0; q < 3; q++) blk[q][p] = parts[q];
        }
        for (int q = 0; q < 3; q++) {
          transpose16(blk[q]);
          for (int i = 0; i < 16; i++) _mm512_storeu_si512(A + (size_t)q * H * Kp + (size_t)(j + i) * Kp + k0, blk[q][i]);
        }
      }
    /* B: gate g, part q, k-step c, column tile ct at tile ((g·3 + q)·KC + c)·HT + ct. */
    for (int g = 0; g < 3; g++)
      for (int k = 0; k < Kp; k += 2)
        for (int ct = 0; ct < HT; ct++) {
          __m512i parts[3];
          pair_parts(dg[g], Kc, H, k, ct * 16, parts);
          for (int q = 0; q < 3; q++)
            _mm512_storeu_si512(Bp + ((((size_t)(g * 3 + q) * KC + (k >> 5)) * HT + ct) * 16 + ((k & 31) >> 1)) * 32, parts[q]);
        }
    amx_begin();
    for (int g = 0; g < 3; g++)
      for (int ct = 0; ct < HT; ct += 2)
        for (int rt = 0; rt < H; rt += 32) {
          float *o = dW + (size_t)rt * H3 + g * H + ct * 16;
          if (k_base == 0) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
          } else {
            _tile_loadd(0, o, H3 * 4);
            _tile_loadd(1, o + 16, H3 * 4);
            _tile_loadd(2, o + (size_t)16 * H3, H3 * 4);
            _tile_loadd(3, o + (size_t)16 * H3 + 16, H3 * 4);
          }
          for (int s = 0; s < 6; s++)
            for (int c = 0; c < KC; c++) {
              const uint16_t *a = A + (size_t)SEG_A[s] * H * Kp + (size_t)rt * Kp + c * 32;
              const uint16_t *b = Bp + (((size_t)(g * 3 + SEG_B[s]) * KC + c) * HT + ct) * 512;
              amx_kstep(a, Kp * 2, b, 1);
            }
          _tile_stored(0, o, H3 * 4);
          _tile_stored(1, o + 16, H3 * 4);
          _tile_stored(2, o + (size_t)16 * H3, H3 * 4);
          _tile_stored(3, o + (size_t)16 * H3 + 16, H3 * 4);
        }
    amx_end();
  }
  return 1;
}

/* The tile unit's peak: n rounds of 4 independent TDPBF16PS (16·16·32 multiply-adds each) on
 * tiles that stay loaded; −1 where AMX is not available. */
AMX_TARGET static double amx_peak(int n) {
  if (!amx_probe()) return -1;
  static uint16_t a[16 * 32] __attribute__((aligned(64)));
  static float out[16 * 16] __attribute__((aligned(64)));
  for (int i = 0; i < 16 * 32; i++) a[i] = 0x3c00; /* 2⁻⁷ */
  amx_begin();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, a, 64);
  _tile_loadd(7, a, 64);
  for (int i = 0; i < n; i++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  amx_end();
  return out[0];
}

#else
#define AMX_BUILD 0
static int amx_cur;
static int amx_setting;
static double amx_layer_count;
static int amx_probe(void) { return 0; }
static int amx_layer(int T, int B, int I, int H, const float *x, LayerWeights w, float *hs, const LayerTape *tape) {
  (void)T, (void)B, (void)I, (void)H, (void)x, (void)w, (void)hs, (void)tape;
  return 0;
}
static int amx_bptt(int T, int B, int H, const LayerTape *tape, const float *dH, const float *wHhT, float *dar, float *daz, float *dgin,
                    float *dghn) {
  (void)T, (void)B, (void)H, (void)tape, (void)dH, (void)wHhT, (void)dar, (void)daz, (void)dgin, (void)dghn;
  return 0;
}
static int amx_wgrad(int K, int H, const float *h, const float *dg0, const float *dg1, const float *dg2, float *dW) {
  (void)K, (void)H, (void)h, (void)dg0, (void)dg1, (void)dg2, (void)dW;
  return 0;
}
static double amx_peak(int n) {
  (void)n;
  return -1;
}
#endif

/* Asks for the tile path (on ≠ 0) or the AVX-512/AVX2 one for what follows; returns what is used. */
static int amx_use(int on) {
  amx_setting = on && amx_probe();
  return amx_setting;
}

#endif
