// Winograd F(4×4, 3×3) transforms for 3×3, stride-1, padding-1 convolutions (see CKernels.h and
// Sources/Engine/Winograd3x3.swift). A 6×6 input tile d gives V = Bᵀ d B; a 3×3 filter g gives
// U = G g Gᵀ; the 36 products of U and V, summed over input channels (36 GEMMs), give the
// transformed output M, and Y = Aᵀ M A is the 4×4 output tile. The adjoints (A dY Aᵀ, B dV Bᵀ,
// Gᵀ dU G) give both gradients with the same GEMMs transposed.
//
// Eight tiles of a tile row are the eight vector lanes. A padded image row is split into four
// "phase" rows, P_m[t] = row[4t + m], with two loads and shuffles per eight tiles, so a tile's six
// columns are P_0..P_3 at t and P_0, P_1 at t + 1: contiguous loads, no gathers. One body,
// compiled for AVX-512, AVX2 and the baseline (isa.h); no FMA contraction, so the three agree
// bit for bit.
#include "CKernels.h"
#include "isa.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

static inline AI void store8(float *p, f8 v) { *(f8 *)p = v; }

/// Lanes [0, n) of p, the rest zero (reads stay inside p[0 … n − 1]).
static inline AI f8 load8_tail(const float *p, long n) {
    if (n >= 8) return load8(p);
    float t[8] = {0};
    for (long i = 0; i < n; i++) t[i] = p[i];
    return load8(t);
}

static inline AI void store8_tail(float *p, f8 v, long n) {
    if (n >= 8) { store8(p, v); return; }
    float t[8];
    store8(t, v);
    for (long i = 0; i < n; i++) p[i] = t[i];
}

/// Eight tiles' four phases from 32 consecutive floats.
static inline AI void split32(const float *r, float *ph, long pw) {
    f8 a = load8(r), b = load8(r + 8), c = load8(r + 16), d = load8(r + 24);
    f8 ab0 = __builtin_shufflevector(a, b, 0, 4, 8, 12, 1, 5, 9, 13);
    f8 ab1 = __builtin_shufflevector(a, b, 2, 6, 10, 14, 3, 7, 11, 15);
    f8 cd0 = __builtin_shufflevector(c, d, 0, 4, 8, 12, 1, 5, 9, 13);
    f8 cd1 = __builtin_shufflevector(c, d, 2, 6, 10, 14, 3, 7, 11, 15);
    store8(ph, __builtin_shufflevector(ab0, cd0, 0, 1, 2, 3, 8, 9, 10, 11));
    store8(ph + pw, __builtin_shufflevector(ab0, cd0, 4, 5, 6, 7, 12, 13, 14, 15));
    store8(ph + 2 * pw, __builtin_shufflevector(ab1, cd1, 0, 1, 2, 3, 8, 9, 10, 11));
    store8(ph + 3 * pw, __builtin_shufflevector(ab1, cd1, 4, 5, 6, 7, 12, 13, 14, 15));
}

/// Phase rows ph[m·pw + t] = src[4t + m + offset] for t < pw, 0 outside src[0 … n − 1] (src NULL:
/// all 0). Read straight from the plane where a whole vector lies inside, through a zero-padded
/// copy at the edges.
static inline AI void split_row(const float *src, long n, long offset, float *ph, long pw) {
    for (long t = 0; t < pw; t += 8) {
        long first = 4 * t + offset;
        if (src && first >= 0 && first + 32 <= n) { split32(src + first, ph + t, pw); continue; }
        float edge[32] = {0};
        long lo = first > 0 ? first : 0, hi = first + 32 < n ? first + 32 : n;
        if (src && lo < hi) memcpy(edge + (lo - first), src + lo, sizeof(float) * (hi - lo));
        split32(edge, ph + t, pw);
    }
}

/// 32 consecutive floats from eight tiles' four phases.
static inline AI void join32(const float *ph, long pw, float *r, float bias) {
    const f8 b = {bias, bias, bias, bias, bias, bias, bias, bias};
    f8 p0 = load8(ph), p1 = load8(ph + pw), p2 = load8(ph + 2 * pw), p3 = load8(ph + 3 * pw);
    f8 lo01 = __builtin_shufflevector(p0, p1, 0, 8, 1, 9, 2, 10, 3, 11);
    f8 hi01 = __builtin_shufflevector(p0, p1, 4, 12, 5, 13, 6, 14, 7, 15);
    f8 lo23 = __builtin_shufflevector(p2, p3, 0, 8, 1, 9, 2, 10, 3, 11);
    f8 hi23 = __builtin_shufflevector(p2, p3, 4, 12, 5, 13, 6, 14, 7, 15);
    store8(r, __builtin_shufflevector(lo01, lo23, 0, 1, 8, 9, 2, 3, 10, 11) + b);
    store8(r + 8, __builtin_shufflevector(lo01, lo23, 4, 5, 12, 13, 6, 7, 14, 15) + b);
    store8(r + 16, __builtin_shufflevector(hi01, hi23, 0, 1, 8, 9, 2, 3, 10, 11) + b);
    store8(r + 24, __builtin_shufflevector(hi01, hi23, 4, 5, 12, 13, 6, 7, 14, 15) + b);
}

/// The inverse: dst[4t + m + offset] = ph[m·pw + t] + bias for the positions inside dst[0 … n − 1].
static inline AI void join_row(const float *ph, long pw, float *dst, long n, long offset, float bias) {
    for (long t = 0; 4 * t + offset < n; t += 8) {
        long first = 4 * t + offset;
        if (first >= 0 && first + 32 <= n) { join32(ph + t, pw, dst + first, bias); continue; }
        float edge[32];
        join32(ph + t, pw, edge, bias);
        long lo = first > 0 ? first : 0, hi = first + 32 < n ? first + 32 : n;
        memcpy(dst + lo, edge + (lo - first), sizeof(float) * (hi - lo));
    }
}

// The transform matrices applied to six (or four) vectors. Bᵀ (6×6), Aᵀ (4×6), and the adjoints
// B (6×6) and A (6×4).
static inline AI void apply_bt(const f8 d[6], f8 o[6]) {
    const f8 four = {4, 4, 4, 4, 4, 4, 4, 4}, five = {5, 5, 5, 5, 5, 5, 5, 5}, two = {2, 2, 2, 2, 2, 2, 2, 2};
    f8 s12 = d[4] - four * d[2], s34 = d[3] - four * d[1];
    f8 t12 = d[4] - d[2], t34 = two * (d[3] - d[1]);
    o[0] = (four * d[0] - five * d[2]) + d[4];
    o[1] = s12 + s34;
    o[2] = s12 - s34;
    o[3] = t12 + t34;
    o[4] = t12 - t34;
    o[5] = (four * d[1] - five * d[3]) + d[5];
}

static inline AI void apply_b(const f8 v[6], f8 o[6]) {
    const f8 four = {4, 4, 4, 4, 4, 4, 4, 4}, five = {5, 5, 5, 5, 5, 5, 5, 5}, two = {2, 2, 2, 2, 2, 2, 2, 2};
    f8 p12 = v[1] + v[2], m12 = v[2] - v[1], p34 = v[3] + v[4], m34 = v[3] - v[4];
    o[0] = four * v[0];
    o[1] = (four * m12 - two * m34) + four * v[5];
    o[2] = (-five * v[0] - four * p12) - p34;
    o[3] = (two * m34 - m12) - five * v[5];
    o[4] = (v[0] + p12) + p34;
    o[5] = v[5];
}

static inline AI void apply_at(const f8 m[6], f8 o[4]) {
    const f8 two = {2, 2, 2, 2, 2, 2, 2, 2}, four = {4, 4, 4, 4, 4, 4, 4, 4}, eight = {8, 8, 8, 8, 8, 8, 8, 8};
    f8 p12 = m[1] + m[2], m12 = m[1] - m[2], p34 = m[3] + m[4], m34 = m[3] - m[4];
    o[0] = (m[0] + p12) + p34;
    o[1] = m12 + two * m34;
    o[2] = p12 + four * p34;
    o[3] = (m12 + eight * m34) + m[5];
}

static inline AI void apply_a(const f8 g[4], f8 o[6]) {
    const f8 two = {2, 2, 2, 2, 2, 2, 2, 2}, four = {4, 4, 4, 4, 4, 4, 4, 4}, eight = {8, 8, 8, 8, 8, 8, 8, 8};
    f8 e = g[0] + four * g[2], f = two * g[1] + eight * g[3];
    o[0] = g[0];
    o[1] = (g[0] + g[1]) + (g[2] + g[3]);
    o[2] = (g[0] - g[1]) + (g[2] - g[3]);
    o[3] = e + f;
    o[4] = e - f;
    o[5] = g[3];
}

/// Padded width of the phase rows: whole vectors, and one more for the reads at t + 1.
static long phase_width(long width) {
    long tw = (width + 3) / 4;
    return (tw + 7) / 8 * 8 + 8;
}

long fkp_winograd_scratch_floats(long width) { return 6 * 4 * phase_width(width); }

static inline AI void input_body(const float *x, long height, long width, long ty0, long ty1, float *v, long stride,
                                 float *scratch) {
    const long pw = phase_width(width), tw = (width + 3) / 4;
    float *ph = scratch;   // six padded rows × four phases
    for (long ty = ty0; ty < ty1; ty++) {
        for (int r = 0; r < 6; r++) {   // padded row 4ty + r is image row 4ty + r − 1
            long i = 4 * ty + r - 1;
            split_row(i >= 0 && i < height ? x + i * width : 0, width, -1, ph + r * 4 * pw, pw);
        }
        float *out = v + (ty - ty0) * tw;
        for (long t = 0; t < tw; t += 8) {
            f8 h[6][6];
            for (int r = 0; r < 6; r++) {
                const float *p = ph + r * 4 * pw + t;
                f8 d[6] = {load8(p), load8(p + pw), load8(p + 2 * pw), load8(p + 3 * pw), load8(p + 1), load8(p + pw + 1)};
                apply_bt(d, h[r]);
            }
            for (int k = 0; k < 6; k++) {
                f8 col[6] = {h[0][k], h[1][k], h[2][k], h[3][k], h[4][k], h[5][k]}, o[6];
                apply_bt(col, o);
                for (int i = 0; i < 6; i++) store8_tail(out + (i * 6 + k) * stride + t, o[i], tw - t);
            }
        }
    }
}

static inline AI void output_body(const float *m, long stride, long height, long width, long ty0, long ty1, float bias,
                                  float *y, float *scratch) {
    const long pw = phase_width(width), tw = (width + 3) / 4;
    float *ph = scratch;   // four output rows × four phases
    for (long ty = ty0; ty < ty1; ty++) {
        const float *in = m + (ty - ty0) * tw;
        for (long t = 0; t < tw; t += 8) {
            f8 u[4][6];
            for (int j = 0; j < 6; j++) {
                f8 col[6], o[4];
                for (int i = 0; i < 6; i++) col[i] = load8_tail(in + (i * 6 + j) * stride + t, tw - t);
                apply_at(col, o);
                for (int a = 0; a < 4; a++) u[a][j] = o[a];
            }
            for (int a = 0; a < 4; a++) {
                f8 o[4];
                apply_at(u[a], o);
                for (int l = 0; l < 4; l++) store8(ph + (a * 4 + l) * pw + t, o[l]);
            }
        }
        for (int a = 0; a < 4 && 4 * ty + a < height; a++)
            join_row(ph + a * 4 * pw, pw, y + (4 * ty + a) * width, width, 0, bias);
    }
}

static inline AI void output_adjoint_body(const float *dy, long height, long width, long ty0, long ty1, float *dm,
                                          long stride, float *scratch) {
    const long pw = phase_width(width), tw = (width + 3) / 4;
    float *ph = scratch;   // four rows of dy × four phases
    for (long ty = ty0; ty < ty1; ty++) {
        for (int a = 0; a < 4; a++) {
            long i = 4 * ty + a;
            split_row(i < height ? dy + i * width : 0, width, 0, ph + a * 4 * pw, pw);
        }
        float *out = dm + (ty - ty0) * tw;
        for (long t = 0; t < tw; t += 8) {
            f8 h[4][6];
            for (int a = 0; a < 4; a++) {
                const float *p = ph + a * 4 * pw + t;
                f8 g[4] = {load8(p), load8(p + pw), load8(p + 2 * pw), load8(p + 3 * pw)};
                apply_a(g, h[a]);
            }
            for (int j = 0; j < 6; j++) {
                f8 col[4] = {h[0][j], h[1][j], h[2][j], h[3][j]}, o[6];
                apply_a(col, o);
                for (int i = 0; i < 6; i++) store8_tail(out + (i * 6 + j) * stride + t, o[i], tw - t);
            }
        }
    }
}

/// Writes padded row r of the accumulated phases (image row r − 1) into dx when it is inside the image.
static inline AI void emit_row(const float *ph, long r, long height, long width, float *dx, long pw) {
    if (r >= 1 && r <= height) join_row(ph, pw, dx + (r - 1) * width, width, -1, 0);
}

static inline AI void input_adjoint_body(const float *dv, long stride, long height, long width, long ty0, long ty1,
                                         float *dx, float *carry, float *scratch) {
    const long pw = phase_width(width), th = (height + 3) / 4, tw = (width + 3) / 4;
    float *acc = scratch;   // six padded rows × four phases, rolling
    const long rowFloats = 4 * pw;
    memset(acc, 0, sizeof(float) * 6 * rowFloats);
    for (long ty = ty0; ty < ty1; ty++) {
        const float *in = dv + (ty - ty0) * tw;
        for (long t = 0; t < tw; t += 8) {
            f8 e[6][6];   // e[r][k]: row r's share of column k
            for (int k = 0; k < 6; k++) {
                f8 col[6], o[6];
                for (int i = 0; i < 6; i++) col[i] = load8_tail(in + (i * 6 + k) * stride + t, tw - t);
                apply_b(col, o);
                for (int r = 0; r < 6; r++) e[r][k] = o[r];
            }
            for (int r = 0; r < 6; r++) {
                f8 c[6];
                apply_b(e[r], c);
                float *p = acc + r * rowFloats + t;
                store8(p, load8(p) + c[0]);
                store8(p + pw, load8(p + pw) + c[1]);
                store8(p + 2 * pw, load8(p + 2 * pw) + c[2]);
                store8(p + 3 * pw, load8(p + 3 * pw) + c[3]);
                store8(p + 1, load8(p + 1) + c[4]);
                store8(p + pw + 1, load8(p + pw + 1) + c[5]);
            }
        }
        // Padded rows 4ty … 4ty + 3 are complete; rows 4ty + 4 and 4ty + 5 are the next tile row's first two.
        for (int r = 0; r < 4; r++) emit_row(acc + r * rowFloats, 4 * ty + r, height, width, dx, pw);
        memmove(acc, acc + 4 * rowFloats, sizeof(float) * 2 * rowFloats);
        memset(acc + 2 * rowFloats, 0, sizeof(float) * 4 * rowFloats);
    }
    // Padded rows 4ty1 and 4ty1 + 1: the plane's last rows, or the next run's first two (inside the image).
    for (int r = 0; r < 2; r++) {
        if (ty1 == th) emit_row(acc + r * rowFloats, 4 * ty1 + r, height, width, dx, pw);
        else join_row(acc + r * rowFloats, pw, carry + r * width, width, -1, 0);
    }
}

// G (6×3): the filter transform's rows.
static const float G[6][3] = {
    {1.0f / 4, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0, 0, 1},
};

// The filter transforms, eight filters a vector (a U-Net's 512 × 512 layer has 262,144 filters, and
// a scalar loop took a tenth of the step). The vector and the scalar tail do the same operations in
// the same order, so a filter's result does not depend on where it falls.
#define FILTER_TRANSFORMS(T, SPLAT, LOAD, STORE)                                                     \
    static inline AI void weights_##T(const T g[9], float *u, long stride) {                       \
        T t[6][3];   /* G g */                                                                      \
        for (int i = 0; i < 6; i++)                                                                 \
            for (int b = 0; b < 3; b++)                                                             \
                t[i][b] = (SPLAT(G[i][0]) * g[b] + SPLAT(G[i][1]) * g[3 + b]) + SPLAT(G[i][2]) * g[6 + b]; \
        for (int i = 0; i < 6; i++)                                                                 \
            for (int j = 0; j < 6; j++)                                                             \
                STORE(u + (i * 6 + j) * stride,                                                     \
                      (t[i][0] * SPLAT(G[j][0]) + t[i][1] * SPLAT(G[j][1])) + t[i][2] * SPLAT(G[j][2])); \
    }                                                                                               \
    static inline AI void weights_adjoint_##T(const float *du, long stride, T dg[9]) {              \
        T t[6][3];   /* dU G */                                                                     \
        for (int i = 0; i < 6; i++)                                                                 \
            for (int b = 0; b < 3; b++) t[i][b] = SPLAT(0);                                         \
        for (int i = 0; i < 6; i++)                                                                 \
            for (int j = 0; j < 6; j++) {                                                           \
                T d = LOAD(du + (i * 6 + j) * stride);                                              \
                for (int b = 0; b < 3; b++) t[i][b] += d * SPLAT(G[j][b]);                          \
            }                                                                                       \
        for (int a = 0; a < 3; a++)                                                                 \
            for (int b = 0; b < 3; b++) {                                                           \
                T s = SPLAT(0);                                                                     \
                for (int i = 0; i < 6; i++) s += SPLAT(G[i][a]) * t[i][b];                          \
                dg[3 * a + b] = s;                                                                  \
            }                                                                                       \
    }

static inline AI f8 splat8(float x) { return (f8){x, x, x, x, x, x, x, x}; }
static inline AI float splat1(float x) { return x; }
static inline AI float load1(const float *p) { return *p; }
static inline AI void store1(float *p, float x) { *p = x; }
FILTER_TRANSFORMS(f8, splat8, load8, store8)
FILTER_TRANSFORMS(float, splat1, load1, store1)

static inline AI void weights_body(const float *w, long count, float *u, long stride) {
    long f = 0;
    for (; f + 8 <= count; f += 8) {
        float taps[9][8];   // eight filters, tap-major
        for (int k = 0; k < 8; k++)
            for (int t = 0; t < 9; t++) taps[t][k] = w[9 * (f + k) + t];
        f8 g[9];
        for (int t = 0; t < 9; t++) g[t] = load8(taps[t]);
        weights_f8(g, u + f, stride);
    }
    for (; f < count; f++) weights_float(w + 9 * f, u + f, stride);
}

static inline AI void weights_adjoint_body(const float *du, long stride, long count, float *dw) {
    long f = 0;
    for (; f + 8 <= count; f += 8) {
        f8 dg[9];
        weights_adjoint_f8(du + f, stride, dg);
        float taps[9][8];
        for (int t = 0; t < 9; t++) store8(taps[t], dg[t]);
        for (int k = 0; k < 8; k++)
            for (int t = 0; t < 9; t++) dw[9 * (f + k) + t] += taps[t][k];
    }
    for (; f < count; f++) {
        float dg[9];
        weights_adjoint_float(du + f, stride, dg);
        for (int t = 0; t < 9; t++) dw[9 * f + t] += dg[t];
    }
}

#define DEFINE_VERSIONS(SUFFIX, TARGET)                                                                              \
    TARGET static void weights_##SUFFIX(const float *w, long count, float *u, long s) { weights_body(w, count, u, s); } \
    TARGET static void weights_adjoint_##SUFFIX(const float *du, long s, long count, float *dw) {                   \
        weights_adjoint_body(du, s, count, dw);                                                                      \
    }                                                                                                                \
    TARGET static void input_##SUFFIX(const float *x, long h, long w, long ty0, long ty1, float *v, long s,          \
                                      float *scratch) {                                                              \
        input_body(x, h, w, ty0, ty1, v, s, scratch);                                                                \
    }                                                                                                                \
    TARGET static void output_##SUFFIX(const float *m, long s, long h, long w, long ty0, long ty1, float bias,       \
                                       float *y, float *scratch) {                                                   \
        output_body(m, s, h, w, ty0, ty1, bias, y, scratch);                                                         \
    }                                                                                                                \
    TARGET static void output_adjoint_##SUFFIX(const float *dy, long h, long w, long ty0, long ty1, float *dm,      \
                                               long s, float *scratch) {                                             \
        output_adjoint_body(dy, h, w, ty0, ty1, dm, s, scratch);                                                     \
    }                                                                                                                \
    TARGET static void input_adjoint_##SUFFIX(const float *dv, long s, long h, long w, long ty0, long ty1,          \
                                              float *dx, float *carry, float *scratch) {                             \
        input_adjoint_body(dv, s, h, w, ty0, ty1, dx, carry, scratch);                                               \
    }

#ifdef FKP_X86
DEFINE_VERSIONS(avx512, AVX512)
DEFINE_VERSIONS(avx2, AVX2)
#define PICK(NAME, ...)                                                             \
    switch (fkp_current_isa()) {                                                    \
    case ISA_AVX512: NAME##_avx512(__VA_ARGS__); break;                              \
    case ISA_AVX2: NAME##_avx2(__VA_ARGS__); break;                                  \
    default: NAME##_generic(__VA_ARGS__); break;                                     \
    }
#else
#define PICK(NAME, ...) NAME##_generic(__VA_ARGS__);
#endif
DEFINE_VERSIONS(generic, )

void fkp_winograd_input(const float *x, long height, long width, long ty0, long ty1, float *v, long positionStride,
                        float *scratch) {
    PICK(input, x, height, width, ty0, ty1, v, positionStride, scratch)
}

void fkp_winograd_output(const float *m, long positionStride, long height, long width, long ty0, long ty1, float bias,
                         float *y, float *scratch) {
    PICK(output, m, positionStride, height, width, ty0, ty1, bias, y, scratch)
}

void fkp_winograd_output_adjoint(const float *dy, long height, long width, long ty0, long ty1, float *dm,
                                 long positionStride, float *scratch) {
    PICK(output_adjoint, dy, height, width, ty0, ty1, dm, positionStride, scratch)
}

void fkp_winograd_input_adjoint(const float *dv, long positionStride, long height, long width, long ty0, long ty1,
                                float *dx, float *carry, float *scratch) {
    PICK(input_adjoint, dv, positionStride, height, width, ty0, ty1, dx, carry, scratch)
}

void fkp_winograd_weights(const float *w, long count, float *u, long positionStride) {
    PICK(weights, w, count, u, positionStride)
}

void fkp_winograd_weights_adjoint(const float *du, long positionStride, long count, float *dw) {
    PICK(weights_adjoint, du, positionStride, count, dw)
}
