#pragma once
#include <stddef.h>
// Vectorised kernels the engine cannot express in portable Swift: Swift compiles for the baseline
// x86-64 (SSE2) and has no per-function target attributes, so these C functions carry AVX-512 and
// AVX2 versions and pick one on first use (cpuid), like OpenBLAS's DYNAMIC_ARCH.

/// Direct 3×3 convolution, stride 1, padding 1, on "flat" planes. A zero-bordered plane of an
/// H×W image has row stride S = W + 2: element (i, j) of the image is at (i + 1)·S + (j + 1), and
/// the plane ends with FKP_CONV3X3_SLACK more zeros. Output position q = i·S + j (j < W; the two
/// columns j = W, W + 1 of each row are junk) reads the nine inputs at q + {0, 1, 2, S, …, 2S + 2},
/// so the convolution is one 1-D loop per plane with nine fixed offsets. q runs over whole chunks
/// of FKP_CONV3X3_CHUNK positions.
#define FKP_CONV3X3_CHUNK 48
#define FKP_CONV3X3_SLACK 64
/// Output channels per weight block (see fkp_conv3x3_pack).
#define FKP_CONV3X3_BLOCK 8

/// out[o][q] = Σ_c Σ_t in[c][q + tap_t] · w[o][c][t] for the FKP_CONV3X3_BLOCK channels o of one
/// block and q in [q0, q1) (multiples of FKP_CONV3X3_CHUNK). `in`: channel c's plane at
/// in + c·inStride; `packed`: the block's weights as [cin][9][BLOCK]; out: channel o at out + o·outStride.
void fkp_conv3x3_forward(const float *in, long inStride, int cin, const float *packed,
                         float *out, long outStride, long rowStride, long q0, long q1);

/// dW[o][c·9 + t] += Σ_image Σ_q dy[o][q] · x[c][q + tap_t] for o in [0, outCount) and c in [0, cin),
/// q in [q0, q1) (multiples of FKP_CONV3X3_CHUNK). dy: output-grid planes (q = i·S + j, zero at
/// the junk columns), channel o at dy + o·dyStride; x: zero-bordered planes, channel c at x + c·xStride;
/// image i's planes `i·imageStride` further on in both. Each (o, c, t) adds one sum, formed in a fixed order.
void fkp_conv3x3_weight_gradient(const float *dy, long dyStride, int outCount, const float *x, long xStride, int cin,
                                 int images, long imageStride, float *dW, long dWStride, long rowStride, long q0, long q1);

/// The same two kernels with the taps' offsets given (`tap`, in floats from the output position):
/// fkp_conv3x3_forward is fkp_conv_taps_forward with ntaps = 9 and tap = {0, 1, 2, S, …, 2S + 2}.
/// Other tables run other convolutions on flat planes, e.g. stride 2 on parity planes
/// (DirectConvStride2.swift). Forward: ntaps ≤ 9, weights packed [cin][ntaps][BLOCK]. Weight
/// gradient: nine taps, dW[o][c·9 + t]; x's and dy's planes of image i lie i·xImageStride and
/// i·dyImageStride further on.
void fkp_conv_taps_forward(const float *in, long inStride, int cin, const float *packed, int ntaps, const long *tap,
                           float *out, long outStride, long q0, long q1);
void fkp_conv_taps_weight_gradient(const float *dy, long dyStride, int outCount, const float *x, long xStride, int cin,
                                   int images, long xImageStride, long dyImageStride, float *dW, long dWStride,
                                   const long *tap, long q0, long q1);

/// Which version runs: "avx512", "avx2" or "generic".
const char *fkp_kernels_isa(void);

/// Runs the named version from now on ("avx512", "avx2", "generic"); 0 when this CPU cannot run it.
/// For tests, which check every version this CPU supports against the reference.
int fkp_kernels_use(const char *name);

/// Max pooling (PyTorch's nn.MaxPool2d: square window `kernel`, `stride`, `padding` ≤ kernel/2
/// counting as −∞, dilation 1, floor mode) of `planes` H×W planes stored one after the other, into
/// Ho×Wo planes, Ho = (H + 2p − k)/s + 1, Wo likewise. Each output scans its window in row-major
/// order, and an element replaces the running maximum when it is greater or NaN: the first maximum
/// wins, a NaN propagates (the last NaN of the window), as in PyTorch. `indices` (NULL: not kept):
/// per output, the input-plane index ih·W + iw of its maximum.
void fkp_maxpool_forward(const float *x, long planes, long height, long width, int kernel, int stride, int padding,
                         float *y, int *indices);

/// The same for 2×2 windows at stride 2 without padding (Ho = H/2, Wo = W/2); `taps` (NULL: not
/// kept) gets the maximum's place in its window, 0…3 = row·2 + column.
void fkp_maxpool2x2_forward(const float *x, long planes, long height, long width, float *y, int *taps);

/// Its input gradient: dx (planes × H×W, overwritten) gets each output's gradient dy at the input
/// its tap names and 0 everywhere else (windows are disjoint; a last odd row or column is 0).
void fkp_maxpool2x2_backward(const float *dy, const int *taps, long planes, long height, long width, float *dx);

/// The inference epilogue of a convolution with its BatchNorm folded in, on rows × cols of y (row
/// stride ldy): y = y·scale[r] + shift[r], then + residual[r·ldr + j] when residual is not NULL,
/// then min(max(·, 0), cap) when relu is set (cap = +inf for ReLU, 6 for ReLU6). The same
/// operations in the same order as BatchNorm2d's and Add's evaluation passes: the same bits.
void fkp_affine_epilogue(float *y, long ldy, long rows, long cols, const float *scale, const float *shift,
                         const float *residual, long ldr, int relu, float cap);

/// dst[i] = src[2·i] for i < count (im2col's stride-2 rows); reads src[0 … 2·count − 2] only.
void fkp_gather_even(const float *src, float *dst, long count);

/// dst[2·i] += src[i] for i < count (its adjoint, col2im); reads and writes dst[0 … 2·count − 2]
/// only, and the elements between keep their bits.
void fkp_scatter_add_even(const float *src, float *dst, long count);

/// dst[2·i] = even[i], dst[2·i + 1] = odd[i] for i < count (the stride-2 input gradient's rows).
void fkp_interleave(const float *even, const float *odd, float *dst, long count);

/// The loader's bilinear warp of a width×height grey image into outWidth×outHeight: output pixel
/// (i, j) samples the source at (a·i + b·j + c, d·i + e·j + f), `inverse` = {a, b, c, d, e, f}
/// (the output → source map), each coordinate a product and a sum in that order. Source pixels are
/// Floats, or with `bytes` 8-bit values read as b · (1/255). Pixels beyond the image count as
/// `fill`; with `clampToEdge` positions are clamped to the image instead (resizing).
void fkp_warp_bilinear(const void *src, int bytes, long width, long height, const float *inverse, float *dst,
                       long outWidth, long outHeight, float fill, int clampToEdge);

/// Callgrind's START_INSTRUMENTATION and STOP_INSTRUMENTATION client requests (no-ops outside
/// valgrind); fkp_callgrind_hooks is 0 when fkp was built without valgrind's headers, and then
/// they are no-ops everywhere.
int fkp_callgrind_hooks(void);
void fkp_callgrind_start(void);
void fkp_callgrind_stop(void);

/// Depthwise 3×3 convolution (PyTorch Conv2d(C, C, 3, stride, padding=1, groups=C)) of a run of
/// `images` H×W planes of one channel, stored one after the other (CNHW: a channel's planes are
/// contiguous); stride 1 or 2, output planes Ho×Wo with Ho = (H − 1)/stride + 1, Wo = (W − 1)/stride + 1,
/// likewise contiguous. `w9`: the channel's 3×3 weights, row-major. `scratch`: at least
/// fkp_depthwise3x3_scratch(images, H, W, stride) floats. Runs of at most
/// fkp_depthwise3x3_images_per_call(H, W, stride) images keep the scratch in cache.
long fkp_depthwise3x3_images_per_call(long height, long width, int stride);
long fkp_depthwise3x3_scratch(long images, long height, long width, int stride);

/// y[n][i][j] = bias + Σ_{a,b} w9[3a + b] · x[n][s·i + a − 1][s·j + b − 1] (x is 0 outside the plane).
void fkp_depthwise3x3_forward(const float *x, long images, long height, long width, int stride, const float *w9,
                              float bias, float *y, float *scratch);

/// Both gradients for the output gradient dy: sums9[t] = Σ_{n,i,j} dy[n][i][j] · x[n][s·i + t/3 − 1][s·j + t%3 − 1],
/// the run's part of the channel's weight gradient (overwritten, not added; summed in a fixed order
/// for a given run), and, unless dx is NULL, dx (images × H×W, overwritten), the input gradient.
void fkp_depthwise3x3_backward(const float *x, const float *dy, long images, long height, long width, int stride,
                               const float *w9, float *dx, float *sums9, float *scratch);

/* Buffers of activation recomputation, which frees and allocates every block's buffers each step:
   `count` floats in a mapping of their own, zero-filled by the kernel, with transparent huge pages
   advised (a page fault per 2 MiB rather than per 4 KiB), returned to the system by
   fkp_unmap_floats. NULL when the mapping fails. */
float *fkp_map_floats(long count);
void fkp_unmap_floats(float *p, long count);

/* The block arena: buffers allocated while a recomputed block runs. Its pages stay mapped when a
   buffer is freed, so the next block (and the next step) reuses them without faults or the
   kernel's zero fill; the resident set is the arena's high-water mark. fkp_arena_floats gives
   `count` floats of unspecified contents (NaN while poisoned, for tests), or NULL when the arena
   cannot hold them; fkp_arena_free takes back what it gave, with the same count. fkp_arena_trim
   gives the pages of every free range back to the system (they are faulted in again when next
   used). The depth, per thread, says whether this thread runs a block (> 0): the engine takes
   large buffers from the arena only then. */
float *fkp_arena_floats(long count);
void fkp_arena_free(float *p, long count);
void fkp_arena_trim(void);
int fkp_arena_depth(void);
void fkp_arena_set_depth(int depth);
void fkp_arena_poison(int on);

/// Winograd F(4×4, 3×3) for 3×3, stride-1, padding-1 convolutions (Sources/Engine/Winograd3x3.swift).
/// An H×W plane has th = ⌈H/4⌉ × tw = ⌈W/4⌉ tiles, row-major; tile (ty, tx) reads the 6×6 window
/// of the zero-padded plane at rows 4ty − 1 … 4ty + 4, columns 4tx − 1 … 4tx + 4, and gives the 4×4
/// outputs at rows 4ty …, columns 4tx …. The transform functions work on the tile rows
/// [ty0, ty1) of one plane; position p (0 … 35, row-major in the 6×6 tile) of tile (ty, tx) is at
/// base[p·positionStride + (ty − ty0)·tw + tx]. `scratch`: fkp_winograd_scratch_floats(width) floats.
long fkp_winograd_scratch_floats(long width);
/// v = Bᵀ d B for every tile d of the rows.
void fkp_winograd_input(const float *x, long height, long width, long ty0, long ty1, float *v, long positionStride,
                        float *scratch);
/// y = Aᵀ m A + bias for every tile m of the rows: output rows 4·ty0 … 4·ty1 − 1 (those below H).
void fkp_winograd_output(const float *m, long positionStride, long height, long width, long ty0, long ty1, float bias,
                         float *y, float *scratch);
/// dm = A dy Aᵀ for every tile of dy (zero beyond H×W): the adjoint of fkp_winograd_output.
void fkp_winograd_output_adjoint(const float *dy, long height, long width, long ty0, long ty1, float *dm,
                                 long positionStride, float *scratch);
/// The adjoint of fkp_winograd_input: Σ over the rows' tiles of B dv Bᵀ, placed on the overlapping
/// windows, the padding dropped. dx's image rows 4·ty0 − 1 … 4·ty1 − 2 are overwritten with it. The
/// tiles also reach rows 4·ty1 − 1 and 4·ty1: when ty1 = th those are written to dx too (if inside the
/// image), otherwise to `carry` (2 × W floats) for the caller to add onto dx after the next run's pass.
void fkp_winograd_input_adjoint(const float *dv, long positionStride, long height, long width, long ty0, long ty1,
                                float *dx, float *carry, float *scratch);
/// u = G w Gᵀ for `count` 3×3 filters (row-major, one after the other); filter f's position p at
/// u[p·positionStride + f].
void fkp_winograd_weights(const float *w, long count, float *u, long positionStride);
/// dw[f] += Gᵀ du_f G: the adjoint of fkp_winograd_weights, added on.
void fkp_winograd_weights_adjoint(const float *du, long positionStride, long count, float *dw);
