#ifndef CKERNELS_H
#define CKERNELS_H
// Hot inner loops compiled once per x86-64 instruction-set level and chosen at run time by what
// the running CPU has (CPUDispatch.c), so that a binary built on any x86-64 machine runs on any
// other, and uses AVX2+FMA or AVX-512 where the CPU has them. The Swift versions in
// Sources/Kernels stay as the plain references; Tests/KernelTests/CPUDispatchTests.swift
// compares every level the running CPU supports with them.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set levels, each a superset of the one before.
enum {
    CK_LEVEL_BASELINE = 0,  ///< x86-64 (SSE2), or the compiler's default on other machines
    CK_LEVEL_AVX2 = 1,      ///< AVX2 + FMA
    CK_LEVEL_AVX512 = 2,    ///< AVX-512 F, DQ, BW, VL
    CK_LEVEL_COUNT = 3
};

/// gemm_small_m's flags.
#define CK_GEMM_STREAM 1
#define CK_GEMM_A_TRANSPOSED 2
#define CK_GEMM_ACCUMULATE 4

/// Positions of dy that pointwise_weight_gradient_rows transposes into its strip at a time.
#define CK_POINTWISE_WEIGHT_GRADIENT_STRIP 512

/// One level's kernels. Row kernels work on one channel's `count` contiguous floats.
typedef struct ck_kernels {
    const char *name;
    /// Σ p[0..<n], Float vector sums within blocks of 512, blocks added in double.
    double (*sum)(const float *p, size_t n);
    /// Σ (p[i] − center)², as `sum`.
    double (*sum_squared_deviations)(const float *p, size_t n, float center);
    /// y = (x − mean)·scale + beta, then max(·, 0) when relu (−0 and NaN kept as the Swift ReLU does).
    void (*normalize_row)(const float *x, size_t count, float mean, float scale, float beta, int relu, float *y);
    /// sums[0] = Σ g, sums[1] = Σ g·(x − mean) (not yet times invStd), g = dy masked by
    /// (x − mean)·scale + beta <= 0 when relu.
    void (*backward_sums_row)(const float *dy, const float *x, size_t count, float mean, float scale,
                              float beta, int relu, double *sums);
    /// dx += scale·(g − mean_dy − (x − mean)·centered_factor), g as in backward_sums_row; with
    /// accumulate 0, dx = that (dx not read: a buffer no gradient was written to needs no zeroing).
    void (*input_gradient_row)(const float *dy, const float *x, size_t count, float mean, float scale,
                               float beta, int relu, float mean_dy, float centered_factor, float *dx,
                               int accumulate);
    /// backward_sums_row and, in the same pass, dx += scale·g: the input gradient with the
    /// statistics held fixed (Sources/Kernels/Conv2d+NormalizedInputGradient.swift).
    void (*fixed_input_gradient_row)(const float *dy, const float *x, size_t count, float mean, float scale,
                                     float beta, int relu, double *sums, float *dx);
    /// Direct 3x3 convolution, pad 1, stride 1, for thin products (Conv2d+Microkernel.swift):
    /// y[co, q] (+)= Σ_ci,tap w·x[ci, q shifted by the tap] over the output positions q in
    /// [q0, q1) of x's (N, h, w) planes (row strides ldx and ldy, channel-major), with weights
    /// packed by ck_conv3x3_pack in blocks of `block` output channels (conv3x3_block_size).
    /// Registers hold `block` output channels × a few vectors of one output row; `pad` (at least
    /// ck_conv3x3_pad_floats(cin, w) floats) holds the three zero-padded input rows of every ci.
    void (*conv3x3_rows)(const float *x, size_t ldx, const float *packed, size_t block, size_t cin, size_t cout,
                         size_t h, size_t w, size_t q0, size_t q1, float *y, size_t ldy, int accumulate, float *pad);
    /// The register block (output channels) conv3x3_rows uses for `cout` output channels, 0 when
    /// it cannot (cout not a multiple of 4).
    size_t (*conv3x3_block_size)(size_t cout);
    /// Weight gradient of the same convolution (Conv3x3WeightGradientTemplate.h):
    /// dw[tap][co][ci] += Σ_q dy[co, q] · x[ci, q shifted by the tap] over the output positions q
    /// in [q0, q1) of the (N, h, w) planes, tap = ki·3 + kj, dw tap-major with row stride ldw
    /// (ci contiguous; ldw ≥ cin, so a thread may own a column range of a wider block). Rows of
    /// x and dy are copied into `pad` (`pad_floats` floats, at least
    /// ck_conv3x3_weight_gradient_floats(cin, cout, w)) in chunks of as many rows as fit.
    void (*conv3x3_weight_gradient_rows)(const float *x, size_t ldx, const float *dy, size_t ldy, size_t cin,
                                         size_t cout, size_t h, size_t w, size_t q0, size_t q1, float *dw,
                                         size_t ldw, float *pad, size_t pad_floats);
    /// C (m × n) = A (m × k) · B (k × n), row-major with row strides lda, ldb, ldc, overwriting C,
    /// without packing: for few output rows, B read a strip of vectors at a time
    /// (GemmSmallMTemplate.h). `flags`: CK_GEMM_STREAM stores C's whole vectors past the caches
    /// (non-temporal) where C and ldc are vector-aligned; CK_GEMM_A_TRANSPOSED reads A from its
    /// transpose (k × m, row stride lda), as a 1x1 convolution's input gradient reads its weights;
    /// CK_GEMM_ACCUMULATE adds the product to C instead (never streamed).
    void (*gemm_small_m)(const float *a, size_t lda, const float *b, size_t ldb, size_t m, size_t n, size_t k,
                         float *c, size_t ldc, int flags);
    /// The weight gradient of a 1x1 convolution with few outputs, transposed, over the positions
    /// [p0, p1): dwt (cin × cout, row stride cout) = Σ_p x[ci, p] · dy[co, p] (+= the old dwt
    /// with `accumulate`). Each strip of CK_POINTWISE_WEIGHT_GRADIENT_STRIP positions of dy is
    /// transposed into `strip` (that many × cout floats), and gemm_small_m multiplies x's rows,
    /// read in place, by it, adding into dwt (GemmSmallMTemplate.h).
    void (*pointwise_weight_gradient_rows)(const float *x, size_t ldx, const float *dy, size_t lddy, size_t cin,
                                           size_t cout, size_t p0, size_t p1, float *dwt, float *strip,
                                           int accumulate);
    /// Batch norm + ReLU of `channels` rows of x (row stride ldx) over `width` positions, into t
    /// transposed (t[p·ldt + c]), scaled by gamma·inv_std per channel: the same bits as
    /// normalize_row's with that scale, for a product that wants positions as rows
    /// (GemmSmallMTemplate.h).
    void (*normalize_transposed)(const float *x, size_t ldx, size_t channels, size_t width, const float *mean,
                                 const float *gamma, const float *inv_std, const float *beta, float *t,
                                 size_t ldt);
} ck_kernels;

/// Floats of conv3x3_rows's `pad` for `cin` input channels of rows `w` wide.
size_t ck_conv3x3_pad_floats(size_t cin, size_t w);

/// Floats of one channel's region in conv3x3_weight_gradient_rows's `pad` for a chunk of
/// `slots` slots of rows `w` wide (a zero and a row each, plus one vector of slack).
size_t ck_conv3x3_weight_gradient_stride(size_t slots, size_t w);

/// Slots (rows of a chunk, the zero slots between images and the two around it) that
/// conv3x3_weight_gradient_rows fits into `floats` floats of `pad`, 0 when fewer than the 3 that
/// one row needs.
size_t ck_conv3x3_weight_gradient_slots(size_t cin, size_t cout, size_t w, size_t floats);

/// The least `pad` conv3x3_weight_gradient_rows runs with: a chunk of one row.
size_t ck_conv3x3_weight_gradient_floats(size_t cin, size_t cout, size_t w);

/// Packs weights (cout, cin, 3, 3) for conv3x3_rows into `packed` (cout·cin·9 floats): blocks of
/// `block` output channels, each [ci][tap][channel of the block]. With transpose_flip, packs the
/// input gradient's weights instead: cin output channels over cout input channels, taps reversed
/// (dx = conv(dy, W rotated 180° and transposed), pad 1). The output channels must be a
/// multiple of `block`.
void ck_conv3x3_pack(const float *weight, size_t cout, size_t cin, int transpose_flip, size_t block, float *packed);

/// The highest level the running CPU supports (cpuid, via __builtin_cpu_supports).
int ck_supported_level(void);

/// The kernels of `level`, or NULL when the running CPU does not support it (or the level was not
/// compiled for this architecture).
const ck_kernels *ck_kernels_for_level(int level);

#ifdef __cplusplus
}
#endif
#endif
