// The inference epilogue of a convolution that carries the BatchNorm2d after it (see
// Sources/Engine/ConvEpilogue.swift): per output channel r, over one tile of columns,
//   t = y·scale[r] + shift[r];  t = t + residual (when given);  t = min(max(t, 0), cap) (with relu)
// in exactly the operations and order of BatchNorm2d's evaluation forward and Add's (a product,
// then a sum, no FMA contraction), so a fused step gives the bits of the separate passes, NaN
// included: max is `0 >= t ? 0 : t` and min `cap < t ? cap : t`, Swift's max and min.
#include "CKernels.h"
#include "isa.h"

#pragma STDC FP_CONTRACT OFF

static inline AI void epilogue_body(float *y, long ldy, long rows, long cols, const float *scale, const float *shift,
                                    const float *residual, long ldr, int relu, float cap) {
    for (long r = 0; r < rows; r++) {
        float *row = y + r * ldy;
        const float s = scale[r], b = shift[r];
        const float *res = residual ? residual + r * ldr : 0;
        if (res && relu) {
            for (long j = 0; j < cols; j++) {
                float t = row[j] * s + b;
                t = t + res[j];
                t = 0 >= t ? 0 : t;
                row[j] = cap < t ? cap : t;
            }
        } else if (res) {
            for (long j = 0; j < cols; j++) { float t = row[j] * s + b; row[j] = t + res[j]; }
        } else if (relu) {
            for (long j = 0; j < cols; j++) {
                float t = row[j] * s + b;
                t = 0 >= t ? 0 : t;
                row[j] = cap < t ? cap : t;
            }
        } else {
            for (long j = 0; j < cols; j++) row[j] = row[j] * s + b;
        }
    }
}

#define DEFINE_VERSIONS(SUFFIX, TARGET)                                                                          \
    TARGET static void epilogue_##SUFFIX(float *y, long ldy, long rows, long cols, const float *scale,           \
                                         const float *shift, const float *residual, long ldr, int relu, float cap) { \
        epilogue_body(y, ldy, rows, cols, scale, shift, residual, ldr, relu, cap);                               \
    }

#ifdef FKP_X86
DEFINE_VERSIONS(avx512, AVX512)
DEFINE_VERSIONS(avx2, AVX2)
#else
#define epilogue_avx512 epilogue_generic
#define epilogue_avx2 epilogue_generic
#endif
DEFINE_VERSIONS(generic, )

void fkp_affine_epilogue(float *y, long ldy, long rows, long cols, const float *scale, const float *shift,
                         const float *residual, long ldr, int relu, float cap) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: epilogue_avx512(y, ldy, rows, cols, scale, shift, residual, ldr, relu, cap); break;
    case ISA_AVX2: epilogue_avx2(y, ldy, rows, cols, scale, shift, residual, ldr, relu, cap); break;
    default: epilogue_generic(y, ldy, rows, cols, scale, shift, residual, ldr, relu, cap); break;
    }
}
