// Depthwise 3×3 convolution kernels (see CKernels.h), a run of images of one channel per call.
// The bodies are plain C loops over zero-bordered copies of the planes (no edge cases inside
// them), which the compiler vectorises; they are compiled three times, for AVX-512, AVX2 and the
// baseline, and chosen through the shared fkp_current_isa() (isa.h).
//
// Every output element is one sum in a fixed tap order, and every weight-gradient sum runs over
// fixed lanes in a fixed order: the bits depend on the instruction set (FMA or not) and the run of
// images per call (which the caller takes from the shape alone), never on the thread count.
#include "CKernels.h"
#include "isa.h"

#define LANES 16   // weight-gradient accumulators per tap (one AVX-512 register, two AVX2 ones)
#define SLACK 16   // zeros after each bordered plane: the last grid row's junk columns read past it
#define RUN_FLOATS 12288   // images per call: as many as keep the scratch within this (48 KB, about L1)

// The (de)interleaving loops below shuffle isa.h's f8, because the compiler turns stride-2 loads
// and stores into gathers and scatters (they topped perf's profile of a 56×56 stride-2 forward;
// with shuffles it is 1.3× faster and waits on loading its input).

// The kernels run over a "grid": output position q = I·G + j with a row stride G a little wider
// than the output (junk columns j ≥ Wo are computed and dropped), and the images of the run
// stacked into one tall plane with zero rows between them (junk grid rows there). Each tap t then
// reads one source pointer at q, so a run is one long loop with nine loads per output, whatever the
// plane size (4×4 planes vectorise as well as 56×56 ones), and rows are copied out at the end.
//   stride 1: the source is the zero-bordered tall input, G = W + 2, tap (a, c) at offset a·G + c;
//   stride 2: the tall input is split into four zero-bordered parity planes (even/odd rows × even/odd
//             columns), G = Wo + 1, tap (a, c) reads plane (a mod 2, c mod 2) at (a/2)·G + c/2.
typedef struct {
    long h, w, ho, wo, images;
    int stride;
    long period;      // bordered rows per image: image n's row i is bordered row n·period + 1 + i
    long outPeriod;   // grid rows per image, period / stride (the last ones junk)
    long G;           // grid row stride
    long rows;        // grid rows, images · outPeriod
} Shape;

static inline AI Shape shape_of(long images, long h, long w, int stride) {
    Shape s;
    s.h = h; s.w = w; s.images = images; s.stride = stride;
    s.ho = (h - 1) / stride + 1; s.wo = (w - 1) / stride + 1;
    // Stride 2: an even period keeps the row parities of every image the same, and Ho + 1 grid
    // rows per image leave a zero gradient row below each one (the input gradient reads it).
    s.period = stride == 1 ? h + 1 : 2 * s.ho + 2;
    s.outPeriod = s.period / stride;
    s.G = stride == 1 ? w + 2 : s.wo + 1;
    s.rows = images * s.outPeriod;
    return s;
}

static inline AI void fill_zero(float *restrict p, long n) {
    for (long i = 0; i < n; i++) p[i] = 0;
}

/// Stride 1: the run's planes zero-bordered and stacked, row stride S = W + 2: bordered row
/// n·period + 1 + i holds image n's row i at columns 1…W; every other element is 0.
static inline AI long tall_size(Shape s) { return (s.images * s.period + 2) * (s.w + 2) + SLACK; }

static inline AI void tall_border(const float *restrict x, Shape s, float *restrict b) {
    long S = s.w + 2, rows = s.images * s.period + 2;
    for (long R = 0; R < rows; R++) {   // every element written once
        float *row = b + R * S;
        long n = (R - 1) / s.period, i = (R - 1) % s.period;
        if (R < 1 || n >= s.images || i >= s.h) {
            fill_zero(row, S);
            continue;
        }
        const float *from = x + (n * s.h + i) * s.w;
        row[0] = 0;
        for (long j = 0; j < s.w; j++) row[j + 1] = from[j];
        row[s.w + 1] = 0;
    }
    fill_zero(b + rows * S, SLACK);
}

/// Stride 2: the four parity planes of that tall bordered input: plane 2·pr + pc holds
/// P[r][c] = bordered[2r + pr][2c + pc] for r ≤ rows, row stride G = Wo + 1.
static inline AI long parity_size(Shape s) { return (s.rows + 1) * s.G + SLACK; }

static inline AI void parity_planes(const float *restrict x, Shape s, float *restrict planes) {
    long G = s.G, size = parity_size(s);
    for (long R = 0; R < 2 * (s.rows + 1); R++) {
        float *even = planes + 2 * (R % 2) * size + (R / 2) * G, *odd = even + size;
        long n = (R - 1) / s.period, i = (R - 1) % s.period;
        if (R < 1 || n >= s.images || i >= s.h) {
            fill_zero(even, G);
            fill_zero(odd, G);
            continue;
        }
        // even[c] = bordered column 2c = x[2c − 1], odd[c] = x[2c]; 0 outside the row.
        const float *from = x + (n * s.h + i) * s.w;
        long evens = s.w / 2 + 1, odds = (s.w + 1) / 2, c = 0;
        even[0] = 0;
        for (; 2 * c + 16 <= s.w; c += 8) {
            f8 a = *(const f8 *)(from + 2 * c), b = *(const f8 *)(from + 2 * c + 8);
            *(f8 *)(odd + c) = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
            *(f8 *)(even + c + 1) = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
        }
        for (long k = c + 1; k < evens; k++) even[k] = from[2 * k - 1];
        for (long k = evens; k < G; k++) even[k] = 0;
        for (long k = c; k < odds; k++) odd[k] = from[2 * k];
        for (long k = odds; k < G; k++) odd[k] = 0;
    }
    for (int p = 0; p < 4; p++) fill_zero(planes + p * size + (s.rows + 1) * G, SLACK);
}

/// The nine tap sources of the forward pass (and the weight gradient); returns the floats used.
static inline AI long tap_sources(const float *x, Shape s, float *scratch, const float *src[9]) {
    if (s.stride == 1) {
        tall_border(x, s, scratch);
        for (int t = 0; t < 9; t++) src[t] = scratch + (t / 3) * s.G + t % 3;
        return tall_size(s);
    }
    long size = parity_size(s);
    parity_planes(x, s, scratch);
    for (int t = 0; t < 9; t++) {
        int a = t / 3, c = t % 3;
        src[t] = scratch + (2 * (a % 2) + c % 2) * size + (a / 2) * s.G + c / 2;
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

/// The run's Ho×Wo planes (dy) laid out on `rows` rows of the grid, zero at the junk rows and
/// columns (every element written once).
static inline AI void grid_rows(const float *restrict dy, Shape s, float *restrict d, long rows) {
    for (long I = 0; I < rows; I++) {
        float *row = d + I * s.G;
        long n = I / s.outPeriod, i = I % s.outPeriod;
        if (n >= s.images || i >= s.ho) {
            fill_zero(row, s.G);
            continue;
        }
        const float *from = dy + (n * s.ho + i) * s.wo;
        for (long j = 0; j < s.wo; j++) row[j] = from[j];
        for (long j = s.wo; j < s.G; j++) row[j] = 0;
    }
}

/// The run's Ho×Wo output planes from a grid (dropping its junk rows and columns).
static inline AI void ungrid(const float *restrict grid, Shape s, long ho, long wo, float *restrict out) {
    for (long n = 0; n < s.images; n++)
        for (long i = 0; i < ho; i++)
            for (long j = 0; j < wo; j++) out[(n * ho + i) * wo + j] = grid[(n * s.outPeriod + i) * s.G + j];
}

static inline AI void forward_body(const float *x, long images, long h, long w, int stride, const float *w9,
                                   float bias, float *y, float *scratch) {
    Shape s = stride == 1 ? shape_of(images, h, w, 1) : shape_of(images, h, w, 2);
    const float *src[9];
    float *grid = scratch + tap_sources(x, s, scratch, src);
    taps(src, w9, 9, bias, grid, s.rows * s.G);
    ungrid(grid, s, s.ho, s.wo, y);
}

/// Σ_q d[q] · s[q] for q < n with LANES accumulators (position q goes to lane q mod LANES, in
/// order), the lanes then added pairwise: a loop the compiler vectorises fully.
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

// Backward, both gradients from one layout of dy.
//
// Weight gradient: dW[t] = Σ_q dy(q) · (the input tap t reads at q): dy on the forward's grid (zero
// at the junk rows and columns, so they add nothing) against the forward's nine sources, one tap at
// a time (the grid stays in cache across the nine passes).
//
// Input gradient, dx[i'][j'] = Σ_{a,c} W[a][c] · dy[(i' + 1 − a)/s][(j' + 1 − c)/s] over the terms
// whose indices are whole and inside dy.
//   stride 1: the forward loop on the tall bordered dy with the weights turned 180°. That bordered
//   dy, from its element (1, 1) on, is also dy on the forward's grid (its borders are the junk).
//   stride 2: per parity (pi, pj) of (i', j') = (2m + pi, 2n + pj) only the taps with a ≡ pi + 1 and
//   c ≡ pj + 1 (mod 2) contribute: 1, 2, 2 and 4 of them (9 products per 4 outputs, not 36). Each
//   parity is a loop over dy on the forward's grid (which has a zero row below each image and a zero
//   column) at offsets 0 or 1 in each direction; dx rows interleave two parities.
static inline AI void backward_body(const float *x, const float *dy, long images, long h, long w, int stride,
                                    const float *w9, float *dx, float *sums9, float *scratch) {
    Shape s = stride == 1 ? shape_of(images, h, w, 1) : shape_of(images, h, w, 2);
    long G = s.G, n = s.rows * G;
    const float *src[9];
    float *next = scratch + tap_sources(x, s, scratch, src);
    if (stride == 1) {
        float *bordered = next, *grid = next + tall_size(s);
        tall_border(dy, s, bordered);
        for (int t = 0; t < 9; t++) sums9[t] = dot_lanes(bordered + G + 1, src[t], n);
        if (!dx) return;
        const float *dySrc[9];
        float flipped[9];
        for (int t = 0; t < 9; t++) {
            dySrc[t] = bordered + (t / 3) * G + t % 3;
            flipped[t] = w9[8 - t];
        }
        taps(dySrc, flipped, 9, 0, grid, n);
        ungrid(grid, s, h, w, dx);
        return;
    }
    float *d = next, *grids = next + parity_size(s);   // then 4 grids of rows·G
    grid_rows(dy, s, d, s.rows + 1);
    fill_zero(d + (s.rows + 1) * G, SLACK);
    for (int t = 0; t < 9; t++) sums9[t] = dot_lanes(d, src[t], n);
    if (!dx) return;
    for (int pi = 0; pi < 2; pi++)
        for (int pj = 0; pj < 2; pj++) {
            const float *dySrc[4];
            float weights[4];
            int k = 0;
            for (int a = 1 - pi; a < 3; a += 2)
                for (int c = 1 - pj; c < 3; c += 2) {
                    dySrc[k] = d + (pi + 1 - a) / 2 * G + (pj + 1 - c) / 2;
                    weights[k++] = w9[3 * a + c];
                }
            float *grid = grids + (2 * pi + pj) * n;
            switch (k) {
            case 1: taps(dySrc, weights, 1, 0, grid, n); break;
            case 2: taps(dySrc, weights, 2, 0, grid, n); break;
            default: taps(dySrc, weights, 4, 0, grid, n); break;
            }
        }
    // Row i' = 2m + pi of an image interleaves the grids (pi, 0) and (pi, 1): even and odd columns.
    for (long image = 0; image < images; image++)
        for (long i = 0; i < h; i++) {
            const float *even = grids + 2 * (i % 2) * n + (image * s.outPeriod + i / 2) * G, *odd = even + n;
            float *out = dx + (image * h + i) * w;
            long c = 0;
            for (; c + 8 <= w / 2; c += 8) {
                f8 a = *(const f8 *)(even + c), b = *(const f8 *)(odd + c);
                *(f8 *)(out + 2 * c) = __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
                *(f8 *)(out + 2 * c + 8) = __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
            }
            for (; c < w / 2; c++) { out[2 * c] = even[c]; out[2 * c + 1] = odd[c]; }
            if (w % 2) out[w - 1] = even[w / 2];
        }
}

#define DEFINE_VERSIONS(SUFFIX, TARGET)                                                                          \
    TARGET static void forward_##SUFFIX(const float *x, long images, long h, long w, int stride, const float *w9, \
                                        float bias, float *y, float *scratch) {                                  \
        forward_body(x, images, h, w, stride, w9, bias, y, scratch);                                             \
    }                                                                                                            \
    TARGET static void backward_##SUFFIX(const float *x, const float *dy, long images, long h, long w,           \
                                         int stride, const float *w9, float *dx, float *sums9, float *scratch) { \
        backward_body(x, dy, images, h, w, stride, w9, dx, sums9, scratch);                                      \
    }

#ifdef FKP_X86
DEFINE_VERSIONS(avx512, AVX512)
DEFINE_VERSIONS(avx2, AVX2)
#else
#define forward_avx512 forward_generic
#define forward_avx2 forward_generic
#define backward_avx512 backward_generic
#define backward_avx2 backward_generic
#endif
DEFINE_VERSIONS(generic, )

long fkp_depthwise3x3_scratch(long images, long height, long width, int stride) {
    Shape s = shape_of(images, height, width, stride);
    long grid = s.rows * s.G;
    if (stride == 1) return 2 * tall_size(s) + grid;   // bordered x, bordered dy, a grid
    return 4 * parity_size(s) + parity_size(s) + 4 * grid;   // x's parity planes, dy's grid, 4 grids
}

long fkp_depthwise3x3_images_per_call(long height, long width, int stride) {
    long images = 1;
    while (images < 4096 && fkp_depthwise3x3_scratch(2 * images, height, width, stride) <= RUN_FLOATS) images *= 2;
    return images;
}

void fkp_depthwise3x3_forward(const float *x, long images, long height, long width, int stride, const float *w9,
                              float bias, float *y, float *scratch) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: forward_avx512(x, images, height, width, stride, w9, bias, y, scratch); break;
    case ISA_AVX2: forward_avx2(x, images, height, width, stride, w9, bias, y, scratch); break;
    default: forward_generic(x, images, height, width, stride, w9, bias, y, scratch); break;
    }
}

void fkp_depthwise3x3_backward(const float *x, const float *dy, long images, long height, long width, int stride,
                               const float *w9, float *dx, float *sums9, float *scratch) {
    switch (fkp_current_isa()) {
    case ISA_AVX512: backward_avx512(x, dy, images, height, width, stride, w9, dx, sums9, scratch); break;
    case ISA_AVX2: backward_avx2(x, dy, images, height, width, stride, w9, dx, sums9, scratch); break;
    default: backward_generic(x, dy, images, height, width, stride, w9, dx, sums9, scratch); break;
    }
}
