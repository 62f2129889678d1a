// Depthwise 3×3 convolution kernels (see CKernels.h), one plane per call. The bodies are plain C
// loops over a zero-bordered copy of the plane (no edge cases inside them) with the stride a
// compile-time constant, so the compiler vectorises them; they are compiled three times, for
// AVX-512, AVX2 and the baseline, and chosen through the shared fkp_current_isa() (isa.h).
//
// Every output element is one sum in a fixed tap order, and every weight-gradient sum runs over
// fixed lanes in a fixed order: the bits depend on the instruction set (FMA or not), never on
// which thread runs a plane.
#include "CKernels.h"
#include "isa.h"

#define LANES 16   // weight-gradient accumulators per tap (one AVX-512 register, two AVX2 ones)

/// b[(i + 1)·S + j + 1] = x[i·W + j] for the H×W plane x, zero elsewhere in the (H + 2)×S plane b,
/// S = W + 2. With `dilate` = s > 1, x is an Ho×Wo gradient spread onto the H×W grid: x[i·Wo + j]
/// lands at image position (s·i, s·j) and the positions between stay 0 (see input_gradient).
static inline __attribute__((always_inline))
void border(const float *restrict x, long h, long w, long xh, long xw, long s, float *restrict b) {
    long S = w + 2;
    for (long k = 0; k < (h + 2) * S; k++) b[k] = 0;
    for (long i = 0; i < xh; i++) {
        float *row = b + (s * i + 1) * S + 1;
        const float *from = x + i * xw;
        if (s == 1) {
            for (long j = 0; j < xw; j++) row[j] = from[j];
        } else {
            for (long j = 0; j < xw; j++) row[s * j] = from[j];
        }
    }
}

/// y[i·Wo + j] = Σ_t b[(s·i + t/3)·S + s·j + t%3] · w[t] (t = 0…8 in order), + bias.
static inline __attribute__((always_inline))
void correlate(const float *restrict b, long S, long s, const float *restrict w, float bias,
               float *restrict y, long ho, long wo) {
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8];
    for (long i = 0; i < ho; i++) {
        const float *r0 = b + s * i * S, *r1 = r0 + S, *r2 = r1 + S;
        float *out = y + i * wo;
        for (long j = 0; j < wo; j++) {
            long q = s * j;
            float a = r0[q] * w0;
            a += r0[q + 1] * w1;
            a += r0[q + 2] * w2;
            a += r1[q] * w3;
            a += r1[q + 1] * w4;
            a += r1[q + 2] * w5;
            a += r2[q] * w6;
            a += r2[q + 1] * w7;
            a += r2[q + 2] * w8;
            out[j] = a + bias;
        }
    }
}

/// sums[t] = Σ_i Σ_j dy[i·Wo + j] · b[(s·i + t/3)·S + s·j + t%3]: LANES accumulators per tap
/// (position j goes to lane j % LANES), then the lanes are added pairwise.
static inline __attribute__((always_inline))
void weight_sums(const float *restrict dy, long ho, long wo, const float *restrict b, long S, long s, float *restrict sums) {
    float acc[9][LANES];
    for (int t = 0; t < 9; t++)
        for (int l = 0; l < LANES; l++) acc[t][l] = 0;
    long whole = wo - wo % LANES;
    for (long i = 0; i < ho; i++) {
        const float *d = dy + i * wo;
        for (int a = 0; a < 3; a++) {
            const float *r = b + (s * i + a) * S;
            for (long j0 = 0; j0 < whole; j0 += LANES)
                for (int c = 0; c < 3; c++)
                    for (int l = 0; l < LANES; l++) acc[3 * a + c][l] += d[j0 + l] * r[s * (j0 + l) + c];
            for (int c = 0; c < 3; c++)
                for (long j = whole; j < wo; j++) acc[3 * a + c][j - whole] += d[j] * r[s * j + c];
        }
    }
    for (int t = 0; t < 9; t++) {
        for (int width = LANES / 2; width > 0; width /= 2)
            for (int l = 0; l < width; l++) acc[t][l] += acc[t][l + width];
        sums[t] = acc[t][0];
    }
}

static inline __attribute__((always_inline))
void forward_body(const float *x, long h, long w, int stride, const float *w9, float bias, float *y, float *scratch) {
    long ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
    border(x, h, w, h, w, 1, scratch);
    if (stride == 1) correlate(scratch, w + 2, 1, w9, bias, y, ho, wo);
    else correlate(scratch, w + 2, 2, w9, bias, y, ho, wo);
}

// dx[i', j'] = Σ_t W[t] · dy at the output position that tap t of it reads, i.e. the gradient
// spread onto the input grid (zeros between at stride 2), bordered, and correlated with the
// weights turned 180°: the forward loop at stride 1. At stride 2 three quarters of the products
// are with zeros; the stride-2 layers are few, and this keeps one loop and one order.
static inline __attribute__((always_inline))
void input_gradient_body(const float *dy, long h, long w, int stride, const float *w9, float *dx, float *scratch) {
    long ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
    float flipped[9];
    for (int t = 0; t < 9; t++) flipped[t] = w9[8 - t];
    if (stride == 1) border(dy, h, w, ho, wo, 1, scratch);
    else border(dy, h, w, ho, wo, 2, scratch);
    correlate(scratch, w + 2, 1, flipped, 0, dx, h, w);
}

static inline __attribute__((always_inline))
void weight_gradient_body(const float *x, const float *dy, long h, long w, int stride, float *sums9, float *scratch) {
    long ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
    border(x, h, w, h, w, 1, scratch);
    if (stride == 1) weight_sums(dy, ho, wo, scratch, w + 2, 1, sums9);
    else weight_sums(dy, ho, wo, scratch, w + 2, 2, sums9);
}

#define DEFINE_VERSIONS(SUFFIX, TARGET)                                                                          \
    TARGET static void forward_##SUFFIX(const float *x, long h, long w, int stride, const float *w9, float bias, \
                                        float *y, float *scratch) {                                              \
        forward_body(x, h, w, stride, w9, bias, y, scratch);                                                     \
    }                                                                                                            \
    TARGET static void input_gradient_##SUFFIX(const float *dy, long h, long w, int stride, const float *w9,     \
                                               float *dx, float *scratch) {                                      \
        input_gradient_body(dy, h, w, stride, w9, dx, scratch);                                                  \
    }                                                                                                            \
    TARGET static void weight_gradient_##SUFFIX(const float *x, const float *dy, long h, long w, int stride,     \
                                                float *sums9, float *scratch) {                                  \
        weight_gradient_body(x, dy, h, w, stride, sums9, scratch);                                               \
    }

#ifdef FKP_X86
DEFINE_VERSIONS(avx512, AVX512)
DEFINE_VERSIONS(avx2, AVX2)
#else
#define forward_avx512 forward_generic
#define forward_avx2 forward_generic
#define input_gradient_avx512 input_gradient_generic
#define input_gradient_avx2 input_gradient_generic
#define weight_gradient_avx512 weight_gradient_generic
#define weight_gradient_avx2 weight_gradient_generic
#endif
DEFINE_VERSIONS(generic, )

void fkp_depthwise3x3_forward(const float *x, long height, long width, int stride, const float *w9, float bias,
                              float *y, float *scratch) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: forward_avx512(x, height, width, stride, w9, bias, y, scratch); break;
    case ISA_AVX2: forward_avx2(x, height, width, stride, w9, bias, y, scratch); break;
    default: forward_generic(x, height, width, stride, w9, bias, y, scratch); break;
    }
}

void fkp_depthwise3x3_input_gradient(const float *dy, long height, long width, int stride, const float *w9,
                                     float *dx, float *scratch) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: input_gradient_avx512(dy, height, width, stride, w9, dx, scratch); break;
    case ISA_AVX2: input_gradient_avx2(dy, height, width, stride, w9, dx, scratch); break;
    default: input_gradient_generic(dy, height, width, stride, w9, dx, scratch); break;
    }
}

void fkp_depthwise3x3_weight_gradient(const float *x, const float *dy, long height, long width, int stride,
                                      float *sums9, float *scratch) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: weight_gradient_avx512(x, dy, height, width, stride, sums9, scratch); break;
    case ISA_AVX2: weight_gradient_avx2(x, dy, height, width, stride, sums9, scratch); break;
    default: weight_gradient_generic(x, dy, height, width, stride, sums9, scratch); break;
    }
}
