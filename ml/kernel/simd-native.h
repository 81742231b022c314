/*
 * The vector operations gru.c uses (vf_*, vi_*, vb_*), on GCC/Clang vector types, for the native
 * build of the same source (see native.c). VL float lanes: 16 (one zmm register) where the build
 * targets AVX-512, else 8 (one ymm register with AVX2; the compiler splits it in halves for
 * SSE/NEON). Against the WebAssembly build's 4 lanes this is most of the native build's advantage
 * in the matrix products and the gate math (measured here, interleaved: 16 lanes 17–20% faster
 * per training step than 8 on an AVX-512 Xeon). With -ffp-contract=fast a·b + c becomes FMA.
 * Each operation has the semantics of its WebAssembly SIMD namesake (gru.c's wasm branch).
 */
#ifndef SIMD_NATIVE_H
#define SIMD_NATIVE_H
#include <stdint.h>

#ifdef __AVX512F__
#define VL 16
#else
#define VL 8
#endif
typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi_bits __attribute__((vector_size(VL * 4)));
#define AS_I(v) ((vi_bits)(v))
#define AS_F(v) ((vf)(v))

static inline vf vf_load(const void *p) {
  vf v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
static inline void vf_store(void *p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
static inline vf vf_splat(float x) { return (vf){0} + x; }
static inline vf vf_load_splat(const void *p) {
  float x;
  __builtin_memcpy(&x, p, 4);
  return vf_splat(x);
}
static inline vf vi_splat(int32_t x) { return AS_F((vi_bits){0} + x); }
static inline vf vf_add(vf a, vf b) { return a + b; }
static inline vf vf_sub(vf a, vf b) { return a - b; }
static inline vf vf_mul(vf a, vf b) { return a * b; }
static inline vf vf_madd(vf a, vf b, vf c) { return c + a * b; }
static inline vf vf_mul_add(vf a, vf b, vf c) { return a * b + c; }
static inline vf vf_nmadd(vf a, vf b, vf c) { return c - a * b; }
static inline vf vf_div(vf a, vf b) { return a / b; }
static inline vf vf_sqrt(vf a) {
  vf r;
  for (int i = 0; i < VL; i++) r[i] = __builtin_sqrtf(a[i]);
  return r;
}
/* pmin(a, b) = b < a ? b : a; pmax(a, b) = a < b ? b : a (lane-wise, as minps/maxps). */
static inline vf vf_pmin(vf a, vf b) {
  vi_bits m = b < a;
  return AS_F((m & AS_I(b)) | (~m & AS_I(a)));
}
static inline vf vf_pmax(vf a, vf b) {
  vi_bits m = a < b;
  return AS_F((m & AS_I(b)) | (~m & AS_I(a)));
}
static inline vf vi_add(vf a, vf b) { return AS_F(AS_I(a) + AS_I(b)); }
static inline vf vi_shl(vf a, int n) { return AS_F(AS_I(a) << n); }
static inline vf vb_and(vf a, vf b) { return AS_F(AS_I(a) & AS_I(b)); }
static inline vf vb_or(vf a, vf b) { return AS_F(AS_I(a) | AS_I(b)); }
static inline vf vb_xor(vf a, vf b) { return AS_F(AS_I(a) ^ AS_I(b)); }
static inline vf vb_andnot(vf a, vf b) { return AS_F(AS_I(a) & ~AS_I(b)); }
#define vf_lane(v, i) ((v)[i])

#endif
