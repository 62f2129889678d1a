// Direct 3×3 convolution kernels (see CKernels.h). One body, three instruction sets: the body is
// a macro expanded into functions with target attributes, dispatched once through cpuid.
#include "CKernels.h"
#include "isa.h"
#include <string.h>

typedef float v16 __attribute__((vector_size(64), aligned(4)));   // aligned(4): unaligned loads
typedef float v8 __attribute__((vector_size(32), aligned(4)));

#define LOAD(V, p) (*(const V *)(p))
#define STORE(V, p, v) (*(V *)(p) = (v))

// Forward: a register tile of OB output channels × NV vectors of LANES positions; per input channel
// and tap, NV loads and OB broadcasts feed OB·NV fused multiply-adds. `tap`: the taps' offsets
// (ntaps ≤ 9; the weights packed [cin][ntaps][BLOCK]). The loops are written twice, for nine taps
// (a constant trip count and the offsets in a local array, as the stride-1 kernel always had: a
// runtime count cost 1.4 % more instructions per ResNet-50 step) and for any other count.
#define FORWARD_LOOPS(V, LANES, OB, NV, NTAPS, TAP)                                                      \
    for (int half = 0; half < FKP_CONV3X3_BLOCK; half += OB) {                                           \
        for (long q = q0; q < q1; q += LANES * NV) {                                                     \
            V acc[OB][NV];                                                                               \
            for (int o = 0; o < OB; o++)                                                                 \
                for (int v = 0; v < NV; v++) acc[o][v] = (V){0};                                         \
            for (int c = 0; c < cin; c++) {                                                              \
                const float *x = in + c * inStride + q;                                                  \
                const float *w = packed + (long)c * (NTAPS) * FKP_CONV3X3_BLOCK + half;                  \
                for (int t = 0; t < (NTAPS); t++) {                                                      \
                    V xv[NV];                                                                            \
                    for (int v = 0; v < NV; v++) xv[v] = LOAD(V, x + TAP[t] + v * LANES);                \
                    for (int o = 0; o < OB; o++) {                                                       \
                        float s = w[t * FKP_CONV3X3_BLOCK + o];                                          \
                        for (int v = 0; v < NV; v++) acc[o][v] += xv[v] * s;                             \
                    }                                                                                    \
                }                                                                                        \
            }                                                                                            \
            for (int o = 0; o < OB; o++)                                                                 \
                for (int v = 0; v < NV; v++) STORE(V, out + (half + o) * outStride + q + v * LANES, acc[o][v]); \
        }                                                                                                \
    }

#define DEFINE_FORWARD(NAME, TARGET, V, LANES, OB, NV)                                                   \
    TARGET static void NAME(const float *in, long inStride, int cin, const float *packed, int ntaps,     \
                            const long *tap, float *out, long outStride, long q0, long q1) {            \
        if (ntaps == 9) {                                                                                \
            long nine[9];                                                                                \
            for (int t = 0; t < 9; t++) nine[t] = tap[t];                                                \
            FORWARD_LOOPS(V, LANES, OB, NV, 9, nine)                                                     \
        } else {                                                                                         \
            FORWARD_LOOPS(V, LANES, OB, NV, ntaps, tap)                                                  \
        }                                                                                                \
    }

// Weight gradient: OG output channels at a time, nine tap accumulators each; lanes are summed at
// the end in a fixed pairwise order.
#define DEFINE_WEIGHT_GRADIENT(NAME, TARGET, V, LANES, OG)                                               \
    TARGET static void NAME(const float *dy, long dyStride, int outCount, const float *x, long xStride,  \
                            int cin, int images, long xImageStride, long dyImageStride, float *dW,       \
                            long dWStride, const long *tap, long q0, long q1) {                          \
        for (int o0 = 0; o0 < outCount; o0 += OG) {                                                      \
            int og = outCount - o0 < OG ? outCount - o0 : OG;                                            \
            for (int c = 0; c < cin; c++) {                                                              \
                V acc[OG][9];                                                                            \
                for (int o = 0; o < OG; o++)                                                             \
                    for (int t = 0; t < 9; t++) acc[o][t] = (V){0};                                      \
                for (int image = 0; image < images; image++) {                                           \
                    const float *xc = x + c * xStride + image * xImageStride;                            \
                    const float *dyi = dy + image * dyImageStride;                                       \
                    for (long q = q0; q < q1; q += LANES) {                                              \
                        V d[OG];                                                                         \
                        for (int o = 0; o < OG; o++)                                                     \
                            d[o] = o < og ? LOAD(V, dyi + (o0 + o) * dyStride + q) : (V){0};             \
                        for (int t = 0; t < 9; t++) {                                                    \
                            V xv = LOAD(V, xc + q + tap[t]);                                             \
                            for (int o = 0; o < OG; o++) acc[o][t] += d[o] * xv;                         \
                        }                                                                                \
                    }                                                                                    \
                }                                                                                        \
                for (int o = 0; o < og; o++)                                                             \
                    for (int t = 0; t < 9; t++) {                                                        \
                        float lanes[LANES];                                                              \
                        STORE(V, lanes, acc[o][t]);                                                      \
                        for (int width = LANES / 2; width > 0; width /= 2)                               \
                            for (int i = 0; i < width; i++) lanes[i] += lanes[i + width];                \
                        dW[(o0 + o) * dWStride + c * 9 + t] += lanes[0];                                 \
                    }                                                                                    \
            }                                                                                            \
        }                                                                                                \
    }

static enum isa chosen_isa = ISA_UNKNOWN;

#ifdef FKP_X86
DEFINE_FORWARD(forward_avx512, AVX512, v16, 16, 8, 3)
DEFINE_FORWARD(forward_avx2, AVX2, v8, 8, 4, 3)
DEFINE_WEIGHT_GRADIENT(weight_gradient_avx512, AVX512, v16, 16, 3)
DEFINE_WEIGHT_GRADIENT(weight_gradient_avx2, AVX2, v8, 8, 1)

static enum isa detect_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
    return ISA_GENERIC;
}
#else
// Other architectures (aarch64: NEON is the baseline) run the plain version, which the compiler
// vectorises for the target.
#define forward_avx512 forward_generic
#define forward_avx2 forward_generic
#define weight_gradient_avx512 weight_gradient_generic
#define weight_gradient_avx2 weight_gradient_generic
static enum isa detect_isa(void) { return ISA_GENERIC; }
#endif
DEFINE_FORWARD(forward_generic, , v8, 8, 4, 3)
DEFINE_WEIGHT_GRADIENT(weight_gradient_generic, , v8, 8, 1)

enum isa fkp_current_isa(void) {
    enum isa isa = __atomic_load_n(&chosen_isa, __ATOMIC_RELAXED);
    if (isa == ISA_UNKNOWN) {   // every thread that gets here computes the same value
        isa = detect_isa();
        __atomic_store_n(&chosen_isa, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

int fkp_kernels_use(const char *name) {
    enum isa wanted = !strcmp(name, "avx512") ? ISA_AVX512 : !strcmp(name, "avx2") ? ISA_AVX2
                    : !strcmp(name, "generic") ? ISA_GENERIC : ISA_UNKNOWN;
    if (wanted == ISA_UNKNOWN || wanted > detect_isa()) return 0;
    __atomic_store_n(&chosen_isa, wanted, __ATOMIC_RELAXED);
    return 1;
}

const char *fkp_kernels_isa(void) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: return "avx512";
    case ISA_AVX2: return "avx2";
    default: return "generic";
    }
}

void fkp_conv_taps_forward(const float *in, long inStride, int cin, const float *packed, int ntaps, const long *tap,
                           float *out, long outStride, long q0, long q1) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: forward_avx512(in, inStride, cin, packed, ntaps, tap, out, outStride, q0, q1); break;
    case ISA_AVX2: forward_avx2(in, inStride, cin, packed, ntaps, tap, out, outStride, q0, q1); break;
    default: forward_generic(in, inStride, cin, packed, ntaps, tap, out, outStride, q0, q1); break;
    }
}

void fkp_conv_taps_weight_gradient(const float *dy, long dyStride, int outCount, const float *x, long xStride, int cin,
                                   int images, long xImageStride, long dyImageStride, float *dW, long dWStride,
                                   const long *tap, long q0, long q1) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: weight_gradient_avx512(dy, dyStride, outCount, x, xStride, cin, images, xImageStride, dyImageStride, dW, dWStride, tap, q0, q1); break;
    case ISA_AVX2: weight_gradient_avx2(dy, dyStride, outCount, x, xStride, cin, images, xImageStride, dyImageStride, dW, dWStride, tap, q0, q1); break;
    default: weight_gradient_generic(dy, dyStride, outCount, x, xStride, cin, images, xImageStride, dyImageStride, dW, dWStride, tap, q0, q1); break;
    }
}

/// The nine offsets of a 3×3 window in a flat plane of row stride S.
static void window_taps(long S, long tap[9]) {
    for (int t = 0; t < 9; t++) tap[t] = t / 3 * S + t % 3;
}

void fkp_conv3x3_forward(const float *in, long inStride, int cin, const float *packed,
                         float *out, long outStride, long rowStride, long q0, long q1) {
    long tap[9];
    window_taps(rowStride, tap);
    fkp_conv_taps_forward(in, inStride, cin, packed, 9, tap, out, outStride, q0, q1);
}

void fkp_conv3x3_weight_gradient(const float *dy, long dyStride, int outCount, const float *x, long xStride, int cin,
                                 int images, long imageStride, float *dW, long dWStride, long rowStride, long q0, long q1) {
    long tap[9];
    window_taps(rowStride, tap);
    fkp_conv_taps_weight_gradient(dy, dyStride, outCount, x, xStride, cin, images, imageStride, imageStride, dW, dWStride,
                                  tap, q0, q1);
}
