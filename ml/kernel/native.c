/*
 * gru.c as a Node addon (N-API), for machines with a C compiler: the same kernel compiled for
 * the host CPU, ~1.4× the WebAssembly build's speed (FMA, no JIT overheads). Optional: the
 * committed gru.wasm is what always works; ml/kernel/load.ts prefers this build when
 * `npm run build:kernel-native` has made it on this machine.
 *
 * It presents the exact interface of the WebAssembly instance, so the TypeScript side does not
 * know which one it drives: `memory.buffer` is an ArrayBuffer over a reserved arena, pointers
 * are byte offsets into it (0 = none), and every export takes and returns plain numbers.
 */
#include <node_api.h>
#include <sys/mman.h>

unsigned char *kernel_arena;
size_t kernel_arena_bytes;

#include "gru.c"

/* Address space only: pages are committed as the bump allocator reaches them. */
#define ARENA_BYTES ((size_t)1 << 30)

#define MAX_ARGS 17

static int get_args(napi_env env, napi_callback_info info, size_t n, double *out) {
  napi_value argv[MAX_ARGS];
  size_t argc = MAX_ARGS;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    napi_throw_type_error(env, NULL, "fused kernel: too few arguments");
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (napi_get_value_double(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "fused kernel: arguments must be numbers");
      return 0;
    }
  }
  return 1;
}

static napi_value number(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static napi_value undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

static double offset_of(const void *p) { return p ? (double)((const unsigned char *)p - kernel_arena) : 0; }

#define I(k) ((int)a[k])
#define F(k) ((float)a[k])
#define P(k) ((void *)(a[k] == 0 ? 0 : kernel_arena + (size_t)a[k]))

/* One wrapper per export: read n numbers, call, convert the result. */
#define WRAP(name, n, expr)                                                                                        \
  static napi_value w_##name(napi_env env, napi_callback_info info) {                                              \
    double a[(n) > 0 ? (n) : 1];                                                                                   \
    if (!get_args(env, info, (n), a)) return NULL;                                                                 \
    return (expr);                                                                                                 \
  }
#define VOID(call) ((call), undefined(env))

WRAP(kalloc, 1, number(env, offset_of(kalloc((uint32_t)a[0]))))
WRAP(kmark, 0, number(env, offset_of((void *)kmark())))
WRAP(krelease, 1, VOID(krelease((uintptr_t)P(0))))
WRAP(test_exp, 1, number(env, test_exp(F(0))))
WRAP(test_sigmoid, 1, number(env, test_sigmoid(F(0))))
WRAP(test_tanh, 1, number(env, test_tanh(F(0))))
WRAP(test_log, 1, number(env, test_log(F(0))))
WRAP(gru_scratch_floats, 4, number(env, gru_scratch_floats(I(0), I(1), I(2), I(3))))
WRAP(gru_forward, 11, VOID(gru_forward(I(0), I(1), I(2), I(3), P(4), P(5), P(6), P(7), P(8), P(9), P(10))))
WRAP(gru_backward, 17,
     VOID(gru_backward(I(0), I(1), I(2), I(3), P(4), P(5), P(6), P(7), P(8), P(9), P(10), P(11), P(12), P(13), P(14), P(15),
                       P(16))))
WRAP(pool_forward, 7, VOID(pool_forward_export(I(0), I(1), I(2), I(3), P(4), P(5), P(6))))
WRAP(pool_backward, 9, VOID(pool_backward_export(I(0), I(1), I(2), I(3), P(4), P(5), P(6), P(7), P(8))))
WRAP(pool_count, 0, number(env, pool_count()))
WRAP(pool_name, 3, number(env, pool_name(I(0), P(1), I(2))))
WRAP(model_param_count, 4, number(env, model_param_count(I(0), I(1), I(2), I(3))))
WRAP(model_create, 6, number(env, offset_of(model_create(I(0), I(1), I(2), I(3), I(4), I(5)))))
WRAP(model_buffer, 2, number(env, offset_of(model_buffer(P(0), I(1)))))
WRAP(model_forward_backward, 5, number(env, model_forward_backward(P(0), I(1), I(2), I(3), I(4))))
WRAP(model_evaluate, 4, number(env, model_evaluate(P(0), I(1), I(2), I(3))))
WRAP(simd_lanes, 0, number(env, simd_lanes()))
WRAP(peak_madd, 2, number(env, peak_madd(I(0), F(1))))
WRAP(amx_use, 1, number(env, amx_use(I(0))))
WRAP(amx_available, 0, number(env, amx_probe()))
WRAP(amx_layers, 0, number(env, amx_layer_count))
WRAP(amx_peak, 1, number(env, amx_peak(I(0))))
WRAP(model_adam, 8, VOID(model_adam(P(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7))))
#ifdef KERNEL_PROFILE
WRAP(prof_read, 1, number(env, prof_read(I(0))))
WRAP(prof_reset, 0, VOID(prof_reset()))
#endif

static napi_value init(napi_env env, napi_value exports) {
  /* gru.c keeps its allocator in globals, which every worker thread loading this addon would
   * share; the loader falls back to WebAssembly (one instance per thread) when this throws. */
  static int loaded;
  if (loaded++) {
    napi_throw_error(env, NULL, "fused kernel (native): already loaded in another thread of this process");
    return NULL;
  }
  if (kernel_arena == NULL) {
    void *p = mmap(NULL, ARENA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      napi_throw_error(env, NULL, "fused kernel (native): cannot reserve its memory arena");
      return NULL;
    }
    kernel_arena = p;
    kernel_arena_bytes = ARENA_BYTES;
  }
  napi_value buffer, memory;
  if (napi_create_external_arraybuffer(env, kernel_arena, kernel_arena_bytes, NULL, NULL, &buffer) != napi_ok) return NULL;
  napi_create_object(env, &memory);
  napi_set_named_property(env, memory, "buffer", buffer);
  napi_set_named_property(env, exports, "memory", memory);
#define EXPORT_FN(name)                                                                                            \
  do {                                                                                                             \
    napi_value fn;                                                                                                 \
    napi_create_function(env, #name, NAPI_AUTO_LENGTH, w_##name, NULL, &fn);                                       \
    napi_set_named_property(env, exports, #name, fn);                                                              \
  } while (0)
  EXPORT_FN(kalloc);
  EXPORT_FN(kmark);
  EXPORT_FN(krelease);
  EXPORT_FN(test_exp);
  EXPORT_FN(test_sigmoid);
  EXPORT_FN(test_tanh);
  EXPORT_FN(test_log);
  EXPORT_FN(gru_scratch_floats);
  EXPORT_FN(gru_forward);
  EXPORT_FN(gru_backward);
  EXPORT_FN(pool_forward);
  EXPORT_FN(pool_backward);
  EXPORT_FN(pool_count);
  EXPORT_FN(pool_name);
  EXPORT_FN(model_param_count);
  EXPORT_FN(model_create);
  EXPORT_FN(model_buffer);
  EXPORT_FN(model_forward_backward);
  EXPORT_FN(model_evaluate);
  EXPORT_FN(model_adam);
  EXPORT_FN(simd_lanes);
  EXPORT_FN(peak_madd);
  EXPORT_FN(amx_use);
  EXPORT_FN(amx_available);
  EXPORT_FN(amx_layers);
  EXPORT_FN(amx_peak);
#ifdef KERNEL_PROFILE
  EXPORT_FN(prof_read);
  EXPORT_FN(prof_reset);
#endif
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
