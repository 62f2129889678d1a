// Max-pooling kernels (see CKernels.h): eight output columns at a time, compiled for AVX-512, AVX2
// and the baseline and chosen through the shared fkp_current_isa() (isa.h).
//
// Every output is the same left-to-right scan over its window in row-major order that PyTorch (and
// fkp's scalar loop before these kernels) does: an element replaces the running maximum when it is
// greater or NaN, so the first maximum wins and the last NaN, if any, is the result. The vector
// code runs that scan lane by lane with compares and selects, so the results (values, argmax, and
// the signs of zeros) are the same bits as the scalar scan's on every instruction set. Windows
// that padding clips (the border outputs) keep the scalar scan.
#include <math.h>
#include "CKernels.h"
#include "isa.h"

// Eight int32s beside isa.h's eight floats, unaligned.
typedef int i8 __attribute__((vector_size(32), aligned(4)));

/// p[0], p[2], …, p[14], reading p[0…14] only (the second load overlaps the first by one float, so
/// a vector whose last lane reads the last column of the last row stays inside the buffer).
static inline AI f8 evens8(const float *p) {
    f8 a = load8(p), b = load8(p + 7);
    return __builtin_shufflevector(a, b, 0, 2, 4, 6, 9, 11, 13, 15);
}

/// p[s·j] for j = 0…7, s = 1 or 2 (a constant after inlining).
static inline AI f8 columns8(const float *p, int s) { return s == 1 ? load8(p) : evens8(p); }

/// m ? a : b, lane by lane (m: all ones or all zeros), on the bits.
static inline AI f8 select_f(i8 m, f8 a, f8 b) { return (f8)((m & (i8)a) | (~m & (i8)b)); }
static inline AI i8 select_i(i8 m, i8 a, i8 b) { return (m & a) | (~m & b); }

/// The scan's step: does v replace the running maximum? (greater, or NaN)
static inline AI i8 takes(f8 v, f8 best) { return (v > best) | (v != v); }

// MARK: - Any window

/// Output (oh, ow) by the scalar scan over its window clipped to the image (padding never wins:
/// p ≤ k/2 leaves a real pixel in every window).
static inline AI void window1(const float *x, long h, long w, long wo, int k, int s, int p, long oh, long ow,
                              float *y, int *indices) {
    long h0 = oh * s - p, w0 = ow * s - p, h1 = h0 + k, w1 = w0 + k;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    if (h1 > h) h1 = h;
    if (w1 > w) w1 = w;
    float best = -INFINITY;
    long bestIndex = h0 * w + w0;
    for (long ih = h0; ih < h1; ih++)
        for (long iw = w0; iw < w1; iw++) {
            float v = x[ih * w + iw];
            int take = v > best || v != v;
            best = take ? v : best;
            bestIndex = take ? ih * w + iw : bestIndex;
        }
    y[oh * wo + ow] = best;
    if (indices) indices[oh * wo + ow] = (int)bestIndex;
}

/// Outputs (oh, ow…ow + 7), whose windows lie inside the image, by the vector scan; stride s = 1
/// or 2, k and whether indices are kept are constants after inlining. The scan starts at the
/// window's first element rather than at −∞: the same result, since −∞ never replaces −∞.
static inline AI void window8(const float *x, long w, long wo, int k, int s, int p, long oh, long ow,
                              float *y, int *indices, int keepIndices) {
    long first = (oh * s - p) * w + ow * s - p;   // the input index of lane 0's window's first element
    const float *base = x + first;
    f8 best = columns8(base, s);
    i8 offset = {0};   // the maximum's offset from the window's first element
    for (int a = 0; a < k; a++)
        for (int c = 0; c < k; c++) {
            if (a == 0 && c == 0) continue;
            f8 v = columns8(base + a * w + c, s);
            i8 take = takes(v, best);
            best = select_f(take, v, best);
            if (keepIndices) offset = select_i(take, (i8){0} + (int)(a * w + c), offset);
        }
    *(f8 *)(y + oh * wo + ow) = best;
    if (keepIndices) {
        i8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
        *(i8 *)(indices + oh * wo + ow) = offset + lane * s + (int)first;
    }
}

/// One plane, any window: the scalar scan on the border outputs (and at strides other than 1 and
/// 2), the vector scan on runs of eight interior outputs; a row's last run overlaps the one before
/// it when the interior is not a multiple of eight (recomputing an output gives the same bits).
static inline AI void pool_plane(const float *x, long h, long w, long ho, long wo, int k, int s, int p,
                                 float *y, int *indices, int keepIndices) {
    // Interior outputs: oh·s − p ≥ 0 and oh·s − p + k ≤ h (likewise for columns).
    long rowLo = (p + s - 1) / s, rowHi = h - k + p >= 0 ? (h - k + p) / s : -1;
    long colLo = (p + s - 1) / s, colHi = w - k + p >= 0 ? (w - k + p) / s : -1;
    if (rowHi > ho - 1) rowHi = ho - 1;
    if (colHi > wo - 1) colHi = wo - 1;
    int vector = (s == 1 || s == 2) && colHi - colLo + 1 >= 8;
    for (long oh = 0; oh < ho; oh++) {
        if (!vector || oh < rowLo || oh > rowHi) {
            for (long ow = 0; ow < wo; ow++) window1(x, h, w, wo, k, s, p, oh, ow, y, indices);
            continue;
        }
        for (long ow = 0; ow < colLo; ow++) window1(x, h, w, wo, k, s, p, oh, ow, y, indices);
        long ow = colLo;
        for (; ow + 8 <= colHi + 1; ow += 8) window8(x, w, wo, k, s, p, oh, ow, y, indices, keepIndices);
        if (ow <= colHi) window8(x, w, wo, k, s, p, oh, colHi + 1 - 8, y, indices, keepIndices);
        for (long ow = colHi + 1; ow < wo; ow++) window1(x, h, w, wo, k, s, p, oh, ow, y, indices);
    }
}

/// The planes, with k and s made constants for the common windows (3×3 at stride 2 or 1).
static inline AI void pool_body(const float *x, long planes, long h, long w, int k, int s, int p, float *y, int *indices) {
    long ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
    for (long n = 0; n < planes; n++) {
        const float *xp = x + n * h * w;
        float *yp = y + n * ho * wo;
        int *ip = indices ? indices + n * ho * wo : 0;
        if (k == 3 && s == 2) {
            if (ip) pool_plane(xp, h, w, ho, wo, 3, 2, p, yp, ip, 1);
            else pool_plane(xp, h, w, ho, wo, 3, 2, p, yp, 0, 0);
        } else if (k == 3 && s == 1) {
            if (ip) pool_plane(xp, h, w, ho, wo, 3, 1, p, yp, ip, 1);
            else pool_plane(xp, h, w, ho, wo, 3, 1, p, yp, 0, 0);
        } else {
            if (ip) pool_plane(xp, h, w, ho, wo, k, s, p, yp, ip, 1);
            else pool_plane(xp, h, w, ho, wo, k, s, p, yp, 0, 0);
        }
    }
}

// MARK: - 2×2 windows, stride 2, no padding

/// Outputs (oh, ow…ow + 7): the four taps from two rows split into even and odd columns.
static inline AI void halve8(const float *r0, const float *r1, long ow, float *y, int *taps, int keepTaps) {
    f8 a0 = load8(r0 + 2 * ow), a1 = load8(r0 + 2 * ow + 8), b0 = load8(r1 + 2 * ow), b1 = load8(r1 + 2 * ow + 8);
    f8 v0 = __builtin_shufflevector(a0, a1, 0, 2, 4, 6, 8, 10, 12, 14);
    f8 v1 = __builtin_shufflevector(a0, a1, 1, 3, 5, 7, 9, 11, 13, 15);
    f8 v2 = __builtin_shufflevector(b0, b1, 0, 2, 4, 6, 8, 10, 12, 14);
    f8 v3 = __builtin_shufflevector(b0, b1, 1, 3, 5, 7, 9, 11, 13, 15);
    f8 best = v0;
    i8 tap = {0}, take;
    take = takes(v1, best); best = select_f(take, v1, best); if (keepTaps) tap = select_i(take, (i8){0} + 1, tap);
    take = takes(v2, best); best = select_f(take, v2, best); if (keepTaps) tap = select_i(take, (i8){0} + 2, tap);
    take = takes(v3, best); best = select_f(take, v3, best); if (keepTaps) tap = select_i(take, (i8){0} + 3, tap);
    *(f8 *)(y + ow) = best;
    if (keepTaps) *(i8 *)(taps + ow) = tap;
}

static inline AI void halve1(const float *r0, const float *r1, long ow, float *y, int *taps) {
    float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
    float best = a;
    int tap = 0, take;
    take = b > best || b != b; best = take ? b : best; tap = take ? 1 : tap;
    take = c > best || c != c; best = take ? c : best; tap = take ? 2 : tap;
    take = d > best || d != d; best = take ? d : best; tap = take ? 3 : tap;
    y[ow] = best;
    if (taps) taps[ow] = tap;
}

static inline AI void halve_rows(const float *x, long h, long w, long ho, long wo, float *y, int *taps, int keepTaps) {
    (void)h;
    for (long oh = 0; oh < ho; oh++) {
        const float *r0 = x + 2 * oh * w, *r1 = r0 + w;
        float *yr = y + oh * wo;
        int *tr = keepTaps ? taps + oh * wo : 0;
        long ow = 0;
        if (wo >= 8) {
            for (; ow + 8 <= wo; ow += 8) halve8(r0, r1, ow, yr, tr, keepTaps);
            if (ow < wo) { halve8(r0, r1, wo - 8, yr, tr, keepTaps); ow = wo; }   // overlaps: the same values again
        }
        for (; ow < wo; ow++) halve1(r0, r1, ow, yr, tr);
    }
}

static inline AI void halve_body(const float *x, long planes, long h, long w, float *y, int *taps) {
    long ho = h / 2, wo = w / 2;
    for (long n = 0; n < planes; n++) {
        if (taps) halve_rows(x + n * h * w, h, w, ho, wo, y + n * ho * wo, taps + n * ho * wo, 1);
        else halve_rows(x + n * h * w, h, w, ho, wo, y + n * ho * wo, 0, 0);
    }
}

/// Inputs of outputs (oh, ow…ow + 7): the gradient masked per tap, interleaved into two rows of sixteen.
static inline AI void unhalve8(const float *g, const int *taps, long ow, float *r0, float *r1) {
    i8 gv = (i8)load8(g + ow), tv = *(const i8 *)(taps + ow);
    i8 e0 = gv & (tv == 0), e1 = gv & (tv == 1), e2 = gv & (tv == 2), e3 = gv & (tv == 3);
    *(f8 *)(r0 + 2 * ow) = (f8)__builtin_shufflevector(e0, e1, 0, 8, 1, 9, 2, 10, 3, 11);
    *(f8 *)(r0 + 2 * ow + 8) = (f8)__builtin_shufflevector(e0, e1, 4, 12, 5, 13, 6, 14, 7, 15);
    *(f8 *)(r1 + 2 * ow) = (f8)__builtin_shufflevector(e2, e3, 0, 8, 1, 9, 2, 10, 3, 11);
    *(f8 *)(r1 + 2 * ow + 8) = (f8)__builtin_shufflevector(e2, e3, 4, 12, 5, 13, 6, 14, 7, 15);
}

/// The adjoint: windows are disjoint, so every input gets its window's gradient or 0, written once.
static inline AI void unhalve_body(const float *dy, const int *taps, long planes, long h, long w, float *dx) {
    long ho = h / 2, wo = w / 2;
    for (long n = 0; n < planes; n++) {
        const float *g = dy + n * ho * wo;
        const int *t = taps + n * ho * wo;
        float *d = dx + n * h * w;
        for (long oh = 0; oh < ho; oh++) {
            float *r0 = d + 2 * oh * w, *r1 = r0 + w;
            const float *gr = g + oh * wo;
            const int *tr = t + oh * wo;
            long ow = 0;
            if (wo >= 8) {
                for (; ow + 8 <= wo; ow += 8) unhalve8(gr, tr, ow, r0, r1);
                if (ow < wo) { unhalve8(gr, tr, wo - 8, r0, r1); ow = wo; }   // overlaps: the same values again
            }
            for (; ow < wo; ow++) {
                float gi = gr[ow];
                int ti = tr[ow];
                r0[2 * ow] = ti == 0 ? gi : 0;
                r0[2 * ow + 1] = ti == 1 ? gi : 0;
                r1[2 * ow] = ti == 2 ? gi : 0;
                r1[2 * ow + 1] = ti == 3 ? gi : 0;
            }
            // Odd width: the last column is in no window.
            if (2 * wo < w) { r0[w - 1] = 0; r1[w - 1] = 0; }
        }
        // Odd height: the last row is in no window.
        for (long i = 2 * ho * w; i < h * w; i++) d[i] = 0;
    }
}

#define DEFINE_VERSIONS(SUFFIX, TARGET)                                                                          \
    TARGET static void pool_##SUFFIX(const float *x, long planes, long h, long w, int k, int s, int p, float *y, \
                                     int *indices) {                                                             \
        pool_body(x, planes, h, w, k, s, p, y, indices);                                                         \
    }                                                                                                            \
    TARGET static void halve_##SUFFIX(const float *x, long planes, long h, long w, float *y, int *taps) {        \
        halve_body(x, planes, h, w, y, taps);                                                                    \
    }                                                                                                            \
    TARGET static void unhalve_##SUFFIX(const float *dy, const int *taps, long planes, long h, long w,           \
                                        float *dx) {                                                             \
        unhalve_body(dy, taps, planes, h, w, dx);                                                                \
    }

#ifdef FKP_X86
DEFINE_VERSIONS(avx512, AVX512)
DEFINE_VERSIONS(avx2, AVX2)
#else
#define pool_avx512 pool_generic
#define pool_avx2 pool_generic
#define halve_avx512 halve_generic
#define halve_avx2 halve_generic
#define unhalve_avx512 unhalve_generic
#define unhalve_avx2 unhalve_generic
#endif
DEFINE_VERSIONS(generic, )

void fkp_maxpool_forward(const float *x, long planes, long height, long width, int kernel, int stride, int padding,
                         float *y, int *indices) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: pool_avx512(x, planes, height, width, kernel, stride, padding, y, indices); break;
    case ISA_AVX2: pool_avx2(x, planes, height, width, kernel, stride, padding, y, indices); break;
    default: pool_generic(x, planes, height, width, kernel, stride, padding, y, indices); break;
    }
}

void fkp_maxpool2x2_forward(const float *x, long planes, long height, long width, float *y, int *taps) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: halve_avx512(x, planes, height, width, y, taps); break;
    case ISA_AVX2: halve_avx2(x, planes, height, width, y, taps); break;
    default: halve_generic(x, planes, height, width, y, taps); break;
    }
}

void fkp_maxpool2x2_backward(const float *dy, const int *taps, long planes, long height, long width, float *dx) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: unhalve_avx512(dy, taps, planes, height, width, dx); break;
    case ISA_AVX2: unhalve_avx2(dy, taps, planes, height, width, dx); break;
    default: unhalve_generic(dy, taps, planes, height, width, dx); break;
    }
}
