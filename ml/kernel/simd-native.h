/*
 * The wasm_simd128.h operations gru.c uses, on GCC/Clang vector types, for the native build of
 * the same source (see native.c). Four float lanes, as in WebAssembly; the compiler maps them
 * onto SSE/AVX (x86-64) or NEON (arm64), and with -ffp-contract=fast fuses a·b + c into FMA.
 * Semantics follow the WebAssembly SIMD specification for every operation listed here.
 */
#ifndef SIMD_NATIVE_H
#define SIMD_NATIVE_H
#include <stdint.h>

typedef float v128_t __attribute__((vector_size(16)));
typedef int32_t i32x4_bits __attribute__((vector_size(16)));
#define AS_I(v) ((i32x4_bits)(v))
#define AS_F(v) ((v128_t)(v))

static inline v128_t wasm_v128_load(const void *p) {
  v128_t v;
  __builtin_memcpy(&v, p, 16);
  return v;
}
static inline void wasm_v128_store(void *p, v128_t v) { __builtin_memcpy(p, &v, 16); }
static inline v128_t wasm_f32x4_splat(float x) { return (v128_t){x, x, x, x}; }
static inline v128_t wasm_v128_load32_splat(const void *p) {
  float x;
  __builtin_memcpy(&x, p, 4);
  return wasm_f32x4_splat(x);
}
static inline v128_t wasm_i32x4_splat(int32_t x) { return AS_F(((i32x4_bits){x, x, x, x})); }
static inline v128_t wasm_f32x4_add(v128_t a, v128_t b) { return a + b; }
static inline v128_t wasm_f32x4_sub(v128_t a, v128_t b) { return a - b; }
static inline v128_t wasm_f32x4_mul(v128_t a, v128_t b) { return a * b; }
static inline v128_t wasm_f32x4_div(v128_t a, v128_t b) { return a / b; }
static inline v128_t wasm_f32x4_sqrt(v128_t a) {
  return (v128_t){__builtin_sqrtf(a[0]), __builtin_sqrtf(a[1]), __builtin_sqrtf(a[2]), __builtin_sqrtf(a[3])};
}
/* pmin(a, b) = b < a ? b : a; pmax(a, b) = a < b ? b : a (lane-wise, as minps/maxps). */
static inline v128_t wasm_f32x4_pmin(v128_t a, v128_t b) {
  i32x4_bits m = b < a;
  return AS_F((m & AS_I(b)) | (~m & AS_I(a)));
}
static inline v128_t wasm_f32x4_pmax(v128_t a, v128_t b) {
  i32x4_bits m = a < b;
  return AS_F((m & AS_I(b)) | (~m & AS_I(a)));
}
static inline v128_t wasm_i32x4_add(v128_t a, v128_t b) { return AS_F(AS_I(a) + AS_I(b)); }
static inline v128_t wasm_i32x4_shl(v128_t a, int n) { return AS_F(AS_I(a) << n); }
static inline v128_t wasm_v128_and(v128_t a, v128_t b) { return AS_F(AS_I(a) & AS_I(b)); }
static inline v128_t wasm_v128_or(v128_t a, v128_t b) { return AS_F(AS_I(a) | AS_I(b)); }
static inline v128_t wasm_v128_xor(v128_t a, v128_t b) { return AS_F(AS_I(a) ^ AS_I(b)); }
static inline v128_t wasm_v128_andnot(v128_t a, v128_t b) { return AS_F(AS_I(a) & ~AS_I(b)); }
#define wasm_f32x4_extract_lane(v, i) ((v)[i])

#endif
