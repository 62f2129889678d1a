// Depthwise 3×3 convolution kernels (see CKernels.h), one plane per call. The bodies are plain C
// loops over zero-bordered copies of the plane (no edge cases inside them), which the compiler
// vectorises; they are compiled three times, for AVX-512, AVX2 and the baseline, and chosen through
// the shared fkp_current_isa() (isa.h).
//
// Every output element is one sum in a fixed tap order, and every weight-gradient sum runs over
// fixed lanes in a fixed order: the bits depend on the instruction set (FMA or not), never on
// which thread runs a plane.
#include "CKernels.h"
#include "isa.h"

#define LANES 16   // weight-gradient accumulators per tap (one AVX-512 register, two AVX2 ones)
#define SLACK 16   // zeros after each bordered plane: the last grid row's junk columns read past it
#define AI __attribute__((always_inline))

// The kernels run over a "grid": output position q = i·G + j of a plane with row stride G a little
// wider than the output (junk columns j ≥ Wo are computed and dropped). Each tap t then reads one
// source pointer at q, so a plane is one long loop with nine loads per output, whatever its width
// (7×7 planes vectorise as well as 56×56 ones), and rows are copied out at the end.
//   stride 1: the source is the zero-bordered input, G = W + 2, tap (a, c) at offset a·G + c;
//   stride 2: the input is split into four zero-bordered parity planes (even/odd rows × even/odd
//             columns), G = Wo + 1, tap (a, c) reads plane (a mod 2, c mod 2) at (a/2)·G + c/2.

static inline AI void fill_zero(float *restrict p, long n) {
    for (long i = 0; i < n; i++) p[i] = 0;
}

/// b[(i + 1)·S + j + 1] = x[i·W + j] in an (H + 2)×S plane, S = W + 2, zero border, + SLACK zeros.
static inline AI void border(const float *restrict x, long h, long w, float *restrict b) {
    long S = w + 2;
    fill_zero(b, S + 1);
    for (long i = 0; i < h; i++) {
        float *row = b + (i + 1) * S + 1;
        for (long j = 0; j < w; j++) row[j] = x[i * w + j];
        row[w] = 0; row[w + 1] = 0;   // this row's right border, the next row's left one
    }
    fill_zero(b + (h + 1) * S + 1, S - 1 + SLACK);
}

/// The four parity planes of the zero-bordered input for stride 2: plane 2·pr + pc holds
/// P[r][c] = x[2r + pr − 1][2c + pc − 1] (0 outside the image) for r ≤ Ho, c ≤ Wo, row stride Wo + 1.
static inline AI long parity_plane_size(long ho, long wo) { return (ho + 1) * (wo + 1) + SLACK; }

/// `row`: 2·(Wo + 1) ≥ W + 2 floats of scratch for one bordered row, split into even and odd columns.
static inline AI void parity_planes(const float *restrict x, long h, long w, long ho, long wo, float *restrict planes,
                                    float *restrict row) {
    long G = wo + 1, size = parity_plane_size(ho, wo);
    fill_zero(row, 2 * G);
    for (long R = 0; R < 2 * (ho + 1); R++) {   // bordered row R = image row + 1
        float *even = planes + (2 * (R % 2)) * size + (R / 2) * G, *odd = even + size;
        if (R < 1 || R > h) {
            fill_zero(even, G);
            fill_zero(odd, G);
            continue;
        }
        for (long j = 0; j < w; j++) row[j + 1] = x[(R - 1) * w + j];
        for (long c = 0; c < G; c++) { even[c] = row[2 * c]; odd[c] = row[2 * c + 1]; }
    }
    for (int p = 0; p < 4; p++) fill_zero(planes + p * size + (ho + 1) * G, SLACK);
}

/// The nine tap sources of the forward pass (and the weight gradient): see the top of the file.
static inline AI long tap_sources(const float *x, long h, long w, int stride, float *scratch, const float *src[9]) {
    if (stride == 1) {
        long S = w + 2;
        border(x, h, w, scratch);
        for (int t = 0; t < 9; t++) src[t] = scratch + (t / 3) * S + t % 3;
        return (h + 2) * S + SLACK;
    }
    long ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1, G = wo + 1, size = parity_plane_size(ho, wo);
    parity_planes(x, h, w, ho, wo, scratch, scratch + 4 * size);
    for (int t = 0; t < 9; t++) {
        int a = t / 3, c = t % 3;
        src[t] = scratch + (2 * (a % 2) + c % 2) * size + (a / 2) * G + c / 2;
    }
    return 4 * size;
}

/// out[q] = Σ_t src[t][q] · w[t] (t = 0…K−1 in order) + bias for q < n; K is a constant after
/// inlining, so this is one vectorised loop.
static inline AI void taps(const float *const *src, const float *w, int K, float bias, float *restrict out, long n) {
    for (long q = 0; q < n; q++) {
        float a = src[0][q] * w[0];
        for (int t = 1; t < K; t++) a += src[t][q] * w[t];
        out[q] = a + bias;
    }
}

/// Output rows from a grid of row stride G (dropping its junk columns).
static inline AI void ungrid(const float *restrict grid, long G, long rows, long cols, float *restrict out) {
    for (long i = 0; i < rows; i++)
        for (long j = 0; j < cols; j++) out[i * cols + j] = grid[i * G + j];
}

static inline AI void forward_body(const float *x, long h, long w, int stride, const float *w9, float bias,
                                   float *y, float *scratch) {
    long ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1, G = stride == 1 ? w + 2 : wo + 1;
    const float *src[9];
    float *grid = scratch + (stride == 1 ? tap_sources(x, h, w, 1, scratch, src) : tap_sources(x, h, w, 2, scratch, src));
    taps(src, w9, 9, bias, grid, ho * G);
    ungrid(grid, G, ho, wo, y);
}

// Input gradient, dx[i'][j'] = Σ_{a,c} W[a][c] · dy[(i' + 1 − a)/s][(j' + 1 − c)/s] over the terms
// whose indices are whole and inside dy.
//   stride 1: the forward loop on the bordered dy with the weights turned 180°.
//   stride 2: per parity (pi, pj) of (i', j') = (2m + pi, 2n + pj) only the taps with a ≡ pi + 1 and
//   c ≡ pj + 1 (mod 2) contribute: 1, 2, 2 and 4 of them (9 products per 4 outputs, not 36). Each
//   parity is a loop over a grid of dy (zero row and column appended, row stride Wo + 1) at offsets
//   0 or 1 in each direction, written back to every other row and column of dx.
static inline AI void input_gradient_body(const float *dy, long h, long w, int stride, const float *w9, float *dx,
                                          float *scratch) {
    if (stride == 1) {
        long G = w + 2;
        const float *src[9];
        float flipped[9];
        for (int t = 0; t < 9; t++) flipped[t] = w9[8 - t];
        float *grid = scratch + tap_sources(dy, h, w, 1, scratch, src);
        taps(src, flipped, 9, 0, grid, h * G);
        ungrid(grid, G, h, w, dx);
        return;
    }
    long ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1, G = wo + 1;
    float *padded = scratch, *grids = scratch + parity_plane_size(ho, wo);   // 4 grids of ho·G
    for (long m = 0; m < ho; m++) {
        for (long n = 0; n < wo; n++) padded[m * G + n] = dy[m * wo + n];
        padded[m * G + wo] = 0;
    }
    fill_zero(padded + ho * G, G + SLACK);
    for (int pi = 0; pi < 2; pi++)
        for (int pj = 0; pj < 2; pj++) {
            const float *src[4];
            float weights[4];
            int k = 0;
            for (int a = 1 - pi; a < 3; a += 2)
                for (int c = 1 - pj; c < 3; c += 2) {
                    src[k] = padded + (pi + 1 - a) / 2 * G + (pj + 1 - c) / 2;
                    weights[k++] = w9[3 * a + c];
                }
            float *grid = grids + (2 * pi + pj) * ho * G;
            long rows = (h - pi + 1) / 2;
            switch (k) {
            case 1: taps(src, weights, 1, 0, grid, rows * G); break;
            case 2: taps(src, weights, 2, 0, grid, rows * G); break;
            default: taps(src, weights, 4, 0, grid, rows * G); break;
            }
        }
    // Row i' = 2m + pi of dx interleaves the grids (pi, 0) and (pi, 1): even and odd columns.
    for (long i = 0; i < h; i++) {
        const float *even = grids + (2 * (i % 2)) * ho * G + (i / 2) * G, *odd = even + ho * G;
        float *out = dx + i * w;
        for (long n = 0; n < w / 2; n++) { out[2 * n] = even[n]; out[2 * n + 1] = odd[n]; }
        if (w % 2) out[w - 1] = even[w / 2];
    }
}

/// sums[t] = Σ_q d[q] · src[t][q] for q < n: LANES accumulators per tap (position q goes to lane
/// q mod LANES, in order), then the lanes are added pairwise.
/// One tap at a time: a plane's grid stays in L1 across the nine passes, and a dot product with
/// lane accumulators is a loop the compiler vectorises fully.
static inline AI float dot_lanes(const float *restrict d, const float *restrict s, long n) {
    float acc[LANES];
    for (int l = 0; l < LANES; l++) acc[l] = 0;
    long whole = n - n % LANES;
    for (long q0 = 0; q0 < whole; q0 += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += d[q0 + l] * s[q0 + l];
    for (long q = whole; q < n; q++) acc[q - whole] += d[q] * s[q];
    for (int width = LANES / 2; width > 0; width /= 2)
        for (int l = 0; l < width; l++) acc[l] += acc[l + width];
    return acc[0];
}

static inline AI void tap_sums(const float *restrict d, const float *const *src, long n, float *restrict sums) {
    for (int t = 0; t < 9; t++) sums[t] = dot_lanes(d, src[t], n);
}

// Weight gradient: dW[t] = Σ_q dy(q) · (the input tap t reads at q): dy laid out on the forward's
// grid (zero at the junk columns, so they add nothing) against the same nine sources.
static inline AI void weight_gradient_body(const float *x, const float *dy, long h, long w, int stride, float *sums9,
                                           float *scratch) {
    long ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1, G = stride == 1 ? w + 2 : wo + 1;
    const float *src[9];
    float *d = scratch + (stride == 1 ? tap_sources(x, h, w, 1, scratch, src) : tap_sources(x, h, w, 2, scratch, src));
    for (long i = 0; i < ho; i++) {
        for (long j = 0; j < wo; j++) d[i * G + j] = dy[i * wo + j];
        for (long j = wo; j < G; j++) d[i * G + j] = 0;
    }
    tap_sums(d, src, ho * G, sums9);
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

long fkp_depthwise3x3_scratch(long height, long width) {
    return 2 * (height + 3) * (width + 3) + 4 * SLACK;
}

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
