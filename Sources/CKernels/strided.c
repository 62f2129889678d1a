// Stride-2 copies for im2col and its adjoint (see CKernels.h): eight elements at a time from two
// contiguous loads and a shuffle, compiled for AVX-512, AVX2 and the baseline and chosen through
// the shared fkp_current_isa() (isa.h). Swift compiles for SSE2, where its loops over src[2·i]
// stay scalar. Both are exact: a copy, and the same single addition per element as the scalar
// loop; the elements between (odd positions) are stored back with their own bits.
#include "CKernels.h"
#include "isa.h"

static inline AI void store8(float *p, f8 v) { *(f8 *)p = v; }

/// Eight at a time while the two loads (16 floats) stay inside src[0 … 2·count − 2].
static inline AI void gather_body(const float *src, float *dst, long count) {
    long i = 0;
    for (; i + 8 < count; i += 8) {
        f8 a = load8(src + 2 * i), b = load8(src + 2 * i + 8);
        store8(dst + i, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14));
    }
    for (; i < count; i++) dst[i] = src[2 * i];
}

/// Eight at a time while the 16 floats read and written stay inside dst[0 … 2·count − 2].
static inline AI void scatter_add_body(const float *src, float *dst, long count) {
    long i = 0;
    const f8 zero = {0};
    for (; i + 8 < count; i += 8) {
        f8 s = load8(src + i);
        f8 d0 = load8(dst + 2 * i), d1 = load8(dst + 2 * i + 8);
        f8 sum0 = d0 + __builtin_shufflevector(s, zero, 0, 8, 1, 9, 2, 10, 3, 11);
        f8 sum1 = d1 + __builtin_shufflevector(s, zero, 4, 12, 5, 13, 6, 14, 7, 15);
        store8(dst + 2 * i, __builtin_shufflevector(sum0, d0, 0, 9, 2, 11, 4, 13, 6, 15));
        store8(dst + 2 * i + 8, __builtin_shufflevector(sum1, d1, 0, 9, 2, 11, 4, 13, 6, 15));
    }
    for (; i < count; i++) dst[2 * i] += src[i];
}

/// dst[2·i] = even[i], dst[2·i + 1] = odd[i]: eight pairs from two loads and two shuffles.
static inline AI void interleave_body(const float *even, const float *odd, float *dst, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        f8 e = load8(even + i), o = load8(odd + i);
        store8(dst + 2 * i, __builtin_shufflevector(e, o, 0, 8, 1, 9, 2, 10, 3, 11));
        store8(dst + 2 * i + 8, __builtin_shufflevector(e, o, 4, 12, 5, 13, 6, 14, 7, 15));
    }
    for (; i < count; i++) { dst[2 * i] = even[i]; dst[2 * i + 1] = odd[i]; }
}

#define DEFINE_VERSIONS(SUFFIX, TARGET)                                                                         \
    TARGET static void interleave_##SUFFIX(const float *even, const float *odd, float *dst, long count) {        \
        interleave_body(even, odd, dst, count);                                                                  \
    }                                                                                                            \
    TARGET static void gather_##SUFFIX(const float *src, float *dst, long count) { gather_body(src, dst, count); } \
    TARGET static void scatter_add_##SUFFIX(const float *src, float *dst, long count) {                          \
        scatter_add_body(src, dst, count);                                                                       \
    }

#ifdef FKP_X86
DEFINE_VERSIONS(avx512, AVX512)
DEFINE_VERSIONS(avx2, AVX2)
#else
#define gather_avx512 gather_generic
#define interleave_avx512 interleave_generic
#define interleave_avx2 interleave_generic
#define gather_avx2 gather_generic
#define scatter_add_avx512 scatter_add_generic
#define scatter_add_avx2 scatter_add_generic
#endif
DEFINE_VERSIONS(generic, )

void fkp_gather_even(const float *src, float *dst, long count) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: gather_avx512(src, dst, count); break;
    case ISA_AVX2: gather_avx2(src, dst, count); break;
    default: gather_generic(src, dst, count); break;
    }
}

void fkp_scatter_add_even(const float *src, float *dst, long count) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: scatter_add_avx512(src, dst, count); break;
    case ISA_AVX2: scatter_add_avx2(src, dst, count); break;
    default: scatter_add_generic(src, dst, count); break;
    }
}

void fkp_interleave(const float *even, const float *odd, float *dst, long count) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: interleave_avx512(even, odd, dst, count); break;
    case ISA_AVX2: interleave_avx2(even, odd, dst, count); break;
    default: interleave_generic(even, odd, dst, count); break;
    }
}
