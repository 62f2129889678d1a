// The loader's bilinear affine warp (see CKernels.h): eight output pixels at a time with AVX2
// gathers (the AVX-512 build runs the same eight-lane code), the baseline one pixel at a time,
// chosen through the shared fkp_current_isa() (isa.h).
//
// Every output pixel is the same arithmetic as the scalar path, in the same order and without
// fused multiply-adds, so all versions give the same bits, and the same bits as GreyImage.sample
// at the pixel's source position. A face cached as bytes warps to the same crop as its Float
// copy: each sampled byte b becomes b · (1/255) before any arithmetic, as the copy holds it.
#include <math.h>
#include <stdint.h>
#include "CKernels.h"
#include "isa.h"
#ifdef FKP_X86
#include <immintrin.h>
#endif

#pragma clang fp contract(off)

/// Pixel i of the source as a grey value.
static inline AI float value(const void *src, int bytes, long i) {
    return bytes ? (float)((const uint8_t *)src)[i] * (1.0f / 255.0f) : ((const float *)src)[i];
}

/// The output pixel whose source position is (cx, cy). Inside (both neighbours in the image)
/// truncation is floor; outside, pixels beyond the image count as `fill`, and positions more than
/// a pixel outside (or not finite) are `fill` outright.
static inline AI float pixel1(const void *src, int bytes, long w, long h, float cx, float cy, float fill) {
    float maxX = (float)(w - 1), maxY = (float)(h - 1);
    if (cx >= 0 && cy >= 0 && cx < maxX && cy < maxY) {
        long x0 = (long)cx, y0 = (long)cy;
        float fx = cx - (float)x0, fy = cy - (float)y0;
        long i = y0 * w + x0;
        float p00 = value(src, bytes, i), p01 = value(src, bytes, i + 1);
        float p10 = value(src, bytes, i + w), p11 = value(src, bytes, i + w + 1);
        float top = p00 + (p01 - p00) * fx;
        float bottom = p10 + (p11 - p10) * fx;
        return top + (bottom - top) * fy;
    }
    float xf = floorf(cx), yf = floorf(cy);
    if (!(xf >= -1 && yf >= -1 && xf < (float)w && yf < (float)h)) return fill;
    float fx = cx - xf, fy = cy - yf;
    long x0 = (long)xf, y0 = (long)yf;
#define AT(x, y) (((x) >= 0 && (x) < w && (y) >= 0 && (y) < h) ? value(src, bytes, (y) * w + (x)) : fill)
    float top = AT(x0, y0) + (AT(x0 + 1, y0) - AT(x0, y0)) * fx;
    float bottom = AT(x0, y0 + 1) + (AT(x0 + 1, y0 + 1) - AT(x0, y0 + 1)) * fx;
#undef AT
    return top + (bottom - top) * fy;
}

/// The source position of output pixel (i, j): computed afresh per pixel (not accumulated along
/// the row), so rounding does not drift; clamped to the image with `clamp` (resizing).
static inline AI void position(const float *inv, long w, long h, int clamp, long i, float rowX, float rowY,
                               float *cx, float *cy) {
    float sx = rowX + inv[0] * (float)i, sy = rowY + inv[3] * (float)i;
    if (clamp) {
        float maxX = (float)(w - 1), maxY = (float)(h - 1);
        // Swift's min(max(s, 0), max): max(x, y) is y >= x ? y : x, min(x, y) is y < x ? y : x.
        sx = 0 >= sx ? 0 : sx;
        sx = maxX < sx ? maxX : sx;
        sy = 0 >= sy ? 0 : sy;
        sy = maxY < sy ? maxY : sy;
    }
    *cx = sx;
    *cy = sy;
}

static void warp_generic(const void *src, int bytes, long w, long h, const float *inv, float *dst, long outW,
                         long outH, float fill, int clamp) {
    for (long j = 0; j < outH; j++) {
        float rowX = inv[1] * (float)j + inv[2], rowY = inv[4] * (float)j + inv[5];
        for (long i = 0; i < outW; i++) {
            float cx, cy;
            position(inv, w, h, clamp, i, rowX, rowY, &cx, &cy);
            dst[j * outW + i] = pixel1(src, bytes, w, h, cx, cy, fill);
        }
    }
}

#ifdef FKP_X86
/// Eight pixels of a row whose source positions all lie inside: gathered, then the scalar
/// arithmetic lane by lane. Bytes are gathered as the 32-bit word that ends with the pixel and its
/// right neighbour (the caller keeps pixels 0 and 1 of the image, which have no two bytes before
/// them, off this path), so no read leaves the image.
AVX2 static inline AI __m256 inside8(const void *src, int bytes, long w, __m256 cx, __m256 cy) {
    __m256i x0 = _mm256_cvttps_epi32(cx), y0 = _mm256_cvttps_epi32(cy);
    __m256 fx = _mm256_sub_ps(cx, _mm256_cvtepi32_ps(x0)), fy = _mm256_sub_ps(cy, _mm256_cvtepi32_ps(y0));
    __m256i index = _mm256_add_epi32(_mm256_mullo_epi32(y0, _mm256_set1_epi32((int)w)), x0);
    __m256 p00, p01, p10, p11;
    if (bytes) {
        const uint8_t *b = (const uint8_t *)src - 2;
        __m256i upper = _mm256_i32gather_epi32((const int *)b, index, 1);
        __m256i lower = _mm256_i32gather_epi32((const int *)(b + w), index, 1);
        __m256i mask = _mm256_set1_epi32(0xff);
        __m256 scale = _mm256_set1_ps(1.0f / 255.0f);
        p00 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(upper, 16), mask)), scale);
        p01 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(upper, 24)), scale);
        p10 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(lower, 16), mask)), scale);
        p11 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(lower, 24)), scale);
    } else {
        const float *f = (const float *)src;
        p00 = _mm256_i32gather_ps(f, index, 4);
        p01 = _mm256_i32gather_ps(f + 1, index, 4);
        p10 = _mm256_i32gather_ps(f + w, index, 4);
        p11 = _mm256_i32gather_ps(f + w + 1, index, 4);
    }
    __m256 top = _mm256_add_ps(p00, _mm256_mul_ps(_mm256_sub_ps(p01, p00), fx));
    __m256 bottom = _mm256_add_ps(p10, _mm256_mul_ps(_mm256_sub_ps(p11, p10), fx));
    return _mm256_add_ps(top, _mm256_mul_ps(_mm256_sub_ps(bottom, top), fy));
}

/// Rows eight pixels at a time; a group with any position outside (or, for bytes, in the first
/// two pixels of the image) and the row's last few pixels take the scalar path. Clamped warps
/// (resizing, not the loader's) stay scalar.
AVX2 static void warp_avx2(const void *src, int bytes, long w, long h, const float *inv, float *dst, long outW,
                           long outH, float fill, int clamp) {
    if (clamp || w * h > INT32_MAX) {
        warp_generic(src, bytes, w, h, inv, dst, outW, outH, fill, clamp);
        return;
    }
    const __m256 lanes = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 zero = _mm256_setzero_ps();
    const __m256 maxX = _mm256_set1_ps((float)(w - 1)), maxY = _mm256_set1_ps((float)(h - 1));
    const __m256 a = _mm256_set1_ps(inv[0]), d = _mm256_set1_ps(inv[3]);
    const __m256 firstRow = _mm256_set1_ps(bytes ? 1.0f : 0.0f);
    for (long j = 0; j < outH; j++) {
        float rowX = inv[1] * (float)j + inv[2], rowY = inv[4] * (float)j + inv[5];
        __m256 vx = _mm256_set1_ps(rowX), vy = _mm256_set1_ps(rowY);
        float *row = dst + j * outW;
        long i = 0;
        for (; i + 8 <= outW; i += 8) {
            __m256 column = _mm256_add_ps(_mm256_set1_ps((float)i), lanes);   // exact: small integers
            __m256 cx = _mm256_add_ps(vx, _mm256_mul_ps(a, column)), cy = _mm256_add_ps(vy, _mm256_mul_ps(d, column));
            __m256 inside = _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(cx, zero, _CMP_GE_OQ), _mm256_cmp_ps(cy, zero, _CMP_GE_OQ)),
                                          _mm256_and_ps(_mm256_cmp_ps(cx, maxX, _CMP_LT_OQ), _mm256_cmp_ps(cy, maxY, _CMP_LT_OQ)));
            // Bytes: the first row's first two pixels have no two bytes before them.
            __m256 safe = _mm256_or_ps(_mm256_cmp_ps(cy, firstRow, _CMP_GE_OQ), _mm256_cmp_ps(cx, _mm256_set1_ps(2), _CMP_GE_OQ));
            if (_mm256_movemask_ps(_mm256_and_ps(inside, safe)) == 0xff) {
                _mm256_storeu_ps(row + i, inside8(src, bytes, w, cx, cy));
            } else {
                for (long k = i; k < i + 8; k++) {
                    float px, py;
                    position(inv, w, h, 0, k, rowX, rowY, &px, &py);
                    row[k] = pixel1(src, bytes, w, h, px, py, fill);
                }
            }
        }
        for (; i < outW; i++) {
            float px, py;
            position(inv, w, h, 0, i, rowX, rowY, &px, &py);
            row[i] = pixel1(src, bytes, w, h, px, py, fill);
        }
    }
}
#else
#define warp_avx2 warp_generic
#endif

void fkp_warp_bilinear(const void *src, int bytes, long width, long height, const float *inverse, float *dst,
                       long outWidth, long outHeight, float fill, int clampToEdge) {
    switch (fkp_current_isa()) {
    case ISA_AVX512:
    case ISA_AVX2: warp_avx2(src, bytes, width, height, inverse, dst, outWidth, outHeight, fill, clampToEdge); break;
    default: warp_generic(src, bytes, width, height, inverse, dst, outWidth, outHeight, fill, clampToEdge); break;
    }
}
