// The kernels of one instruction-set level. Included by Kernels+Baseline.c, Kernels+AVX2.c and
// Kernels+AVX512.c with CK_SUFFIX (the level's name) and CK_LANES (floats per vector) defined,
// inside a `#pragma clang attribute` that compiles every function here for that level. They
// mirror the Swift row kernels of Sources/Kernels/BatchNorm+Tiles.swift and
// Elementwise+Vector.swift (the references): the affine (x − mean)·scale + beta is evaluated
// without contraction into FMA (the target is built with -ffp-contract=off), so the ReLU masks
// of the forward and backward are the same bits in Swift and here.
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "CKernels.h"

#define CK_CAT2(a, b) a##_##b
#define CK_CAT(a, b) CK_CAT2(a, b)
#define CK_NAME(f) CK_CAT(f, CK_SUFFIX)

typedef float CK_NAME(vf) __attribute__((vector_size(CK_LANES * 4), aligned(4)));
typedef int CK_NAME(vi) __attribute__((vector_size(CK_LANES * 4), aligned(4)));
#define VF CK_NAME(vf)
#define VI CK_NAME(vi)
#define CK_INLINE static inline __attribute__((always_inline))
#define REDUCTION_BLOCK 512

CK_INLINE VF CK_NAME(load)(const float *p) { VF v; memcpy(&v, p, sizeof v); return v; }
CK_INLINE void CK_NAME(store)(float *p, VF v) { memcpy(p, &v, sizeof v); }
CK_INLINE VF CK_NAME(splat)(float s) { VF v; for (int i = 0; i < CK_LANES; i++) v[i] = s; return v; }
CK_INLINE float CK_NAME(hsum)(VF v) {
    // Pairwise, as SIMD.sum() (the exact order only moves the last bits).
    for (int width = CK_LANES / 2; width >= 1; width /= 2)
        for (int i = 0; i < width; i++) v[i] += v[i + width];
    return v[0];
}
/// v with the lanes where `mask` is set (all ones) zeroed.
CK_INLINE VF CK_NAME(zero_where)(VF v, VI mask) { return (VF)((VI)v & ~mask); }
/// Asks for the cache lines of `count` floats from p into L2 ahead of their use (`write`: they
/// will be stored to). A hint only: it never faults, whatever the address.
CK_INLINE void CK_NAME(prefetch_row)(const float *p, size_t count, int write) {
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)(p + count);
    for (; line < end; line += 64) {
        if (write) __builtin_prefetch((const void *)line, 1, 2);
        else __builtin_prefetch((const void *)line, 0, 2);
    }
}

#define LOAD CK_NAME(load)
#define STORE CK_NAME(store)
#define SPLAT CK_NAME(splat)
#define HSUM CK_NAME(hsum)
#define ZERO_WHERE CK_NAME(zero_where)

static double CK_NAME(sum)(const float *p, size_t n) {
    double total = 0;
    for (size_t start = 0; start < n; start += REDUCTION_BLOCK) {
        size_t end = start + REDUCTION_BLOCK < n ? start + REDUCTION_BLOCK : n, i = start;
        VF a = {0}, b = {0}, c = {0}, d = {0};
        for (; i + 4 * CK_LANES <= end; i += 4 * CK_LANES) {
            a += LOAD(p + i); b += LOAD(p + i + CK_LANES);
            c += LOAD(p + i + 2 * CK_LANES); d += LOAD(p + i + 3 * CK_LANES);
        }
        for (; i + CK_LANES <= end; i += CK_LANES) a += LOAD(p + i);
        float s = HSUM((a + b) + (c + d));
        for (; i < end; i++) s += p[i];
        total += s;
    }
    return total;
}

static double CK_NAME(sum_squared_deviations)(const float *p, size_t n, float center) {
    const VF cv = SPLAT(center);
    double total = 0;
    for (size_t start = 0; start < n; start += REDUCTION_BLOCK) {
        size_t end = start + REDUCTION_BLOCK < n ? start + REDUCTION_BLOCK : n, i = start;
        VF a = {0}, b = {0}, c = {0}, d = {0};
        for (; i + 4 * CK_LANES <= end; i += 4 * CK_LANES) {
            VF d0 = LOAD(p + i) - cv, d1 = LOAD(p + i + CK_LANES) - cv;
            VF d2 = LOAD(p + i + 2 * CK_LANES) - cv, d3 = LOAD(p + i + 3 * CK_LANES) - cv;
            a += d0 * d0; b += d1 * d1; c += d2 * d2; d += d3 * d3;
        }
        for (; i + CK_LANES <= end; i += CK_LANES) { VF d0 = LOAD(p + i) - cv; a += d0 * d0; }
        float s = HSUM((a + b) + (c + d));
        for (; i < end; i++) { float dd = p[i] - center; s += dd * dd; }
        total += s;
    }
    return total;
}

static void CK_NAME(normalize_row)(const float *x, size_t count, float mean, float scale, float beta, int relu,
                                   float *y) {
    const VF m = SPLAT(mean), s = SPLAT(scale), b = SPLAT(beta), zero = {0};
    size_t i = 0;
    if (relu) {
        for (; i + CK_LANES <= count; i += CK_LANES) {
            VF v = (LOAD(x + i) - m) * s + b;
            STORE(y + i, ZERO_WHERE(v, v < zero));
        }
        for (; i < count; i++) { float v = (x[i] - mean) * scale + beta; y[i] = v < 0 ? 0 : v; }
    } else {
        for (; i + CK_LANES <= count; i += CK_LANES) STORE(y + i, (LOAD(x + i) - m) * s + b);
        for (; i < count; i++) y[i] = (x[i] - mean) * scale + beta;
    }
}

/// Σ g and Σ g·(x − mean) of a row into sums, g = dy masked by the ReLU of the affine when relu;
/// with dx, also dx += scale·g in the same pass. Inlined with dx a constant NULL for
/// backward_sums_row, so that one drops the stores.
CK_INLINE void CK_NAME(sums_and_gradient)(const float *dy, const float *x, size_t count, float mean, float scale,
                                          float beta, int relu, double *sums, float *dx) {
    const VF m = SPLAT(mean), s = SPLAT(scale), b = SPLAT(beta), zero = {0};
    double total_dy = 0, total_centered = 0;
    for (size_t start = 0; start < count; start += REDUCTION_BLOCK) {
        size_t end = start + REDUCTION_BLOCK < count ? start + REDUCTION_BLOCK : count, i = start;
        VF acc_dy = {0}, acc_c = {0}, acc_dy2 = {0}, acc_c2 = {0};
        for (; i + 2 * CK_LANES <= end; i += 2 * CK_LANES) {
            VF x0 = LOAD(x + i), x1 = LOAD(x + i + CK_LANES);
            VF g0 = LOAD(dy + i), g1 = LOAD(dy + i + CK_LANES);
            if (relu) {
                g0 = ZERO_WHERE(g0, ((x0 - m) * s + b) <= zero);
                g1 = ZERO_WHERE(g1, ((x1 - m) * s + b) <= zero);
            }
            acc_dy += g0; acc_dy2 += g1;
            acc_c += g0 * (x0 - m); acc_c2 += g1 * (x1 - m);
            if (dx) {
                STORE(dx + i, LOAD(dx + i) + s * g0);
                STORE(dx + i + CK_LANES, LOAD(dx + i + CK_LANES) + s * g1);
            }
        }
        acc_dy += acc_dy2; acc_c += acc_c2;
        for (; i + CK_LANES <= end; i += CK_LANES) {
            VF xv = LOAD(x + i), g = LOAD(dy + i);
            if (relu) g = ZERO_WHERE(g, ((xv - m) * s + b) <= zero);
            acc_dy += g; acc_c += g * (xv - m);
            if (dx) STORE(dx + i, LOAD(dx + i) + s * g);
        }
        float sum_dy = HSUM(acc_dy), sum_c = HSUM(acc_c);
        for (; i < end; i++) {
            float g = relu && (x[i] - mean) * scale + beta <= 0 ? 0 : dy[i];
            sum_dy += g; sum_c += g * (x[i] - mean);
            if (dx) dx[i] += scale * g;
        }
        total_dy += sum_dy; total_centered += sum_c;
    }
    sums[0] = total_dy;
    sums[1] = total_centered;
}

static void CK_NAME(backward_sums_row)(const float *dy, const float *x, size_t count, float mean, float scale,
                                       float beta, int relu, double *sums) {
    CK_NAME(sums_and_gradient)(dy, x, count, mean, scale, beta, relu, sums, NULL);
}

/// The row of input_gradient_row, with `accumulate` a constant where it is inlined: dx += the
/// gradient, or dx = it (dx's contents before not read, so a fresh buffer needs no zeroing).
CK_INLINE void CK_NAME(input_gradient)(const float *dy, const float *x, size_t count, float mean, float scale,
                                       float beta, int relu, float mean_dy, float centered_factor, float *dx,
                                       int accumulate) {
    const VF m = SPLAT(mean), s = SPLAT(scale), b = SPLAT(beta), zero = {0};
    const VF a = SPLAT(mean_dy), k = SPLAT(centered_factor);
    size_t i = 0;
    for (; i + CK_LANES <= count; i += CK_LANES) {
        VF xv = LOAD(x + i), g = LOAD(dy + i);
        if (relu) g = ZERO_WHERE(g, ((xv - m) * s + b) <= zero);
        VF d = s * (g - a - (xv - m) * k);
        STORE(dx + i, accumulate ? LOAD(dx + i) + d : d);
    }
    for (; i < count; i++) {
        float g = relu && (x[i] - mean) * scale + beta <= 0 ? 0 : dy[i];
        float d = scale * (g - mean_dy - (x[i] - mean) * centered_factor);
        dx[i] = accumulate ? dx[i] + d : d;
    }
}

static void CK_NAME(input_gradient_row)(const float *dy, const float *x, size_t count, float mean, float scale,
                                        float beta, int relu, float mean_dy, float centered_factor, float *dx,
                                        int accumulate) {
    if (accumulate) CK_NAME(input_gradient)(dy, x, count, mean, scale, beta, relu, mean_dy, centered_factor, dx, 1);
    else CK_NAME(input_gradient)(dy, x, count, mean, scale, beta, relu, mean_dy, centered_factor, dx, 0);
}

static void CK_NAME(fixed_input_gradient_row)(const float *dy, const float *x, size_t count, float mean, float scale,
                                              float beta, int relu, double *sums, float *dx) {
    CK_NAME(sums_and_gradient)(dy, x, count, mean, scale, beta, relu, sums, dx);
}

#include "Conv3x3Template.h"
#include "Conv3x3WeightGradientTemplate.h"
#include "GemmSmallMTemplate.h"

const ck_kernels CK_NAME(ck_kernels) = {
    .name = CK_LEVEL_NAME,
    .sum = CK_NAME(sum),
    .sum_squared_deviations = CK_NAME(sum_squared_deviations),
    .normalize_row = CK_NAME(normalize_row),
    .backward_sums_row = CK_NAME(backward_sums_row),
    .input_gradient_row = CK_NAME(input_gradient_row),
    .fixed_input_gradient_row = CK_NAME(fixed_input_gradient_row),
    .conv3x3_rows = CK_NAME(conv3x3_rows),
    .conv3x3_block_size = CK_NAME(conv3x3_block_size),
    .conv3x3_weight_gradient_rows = CK_NAME(conv3x3_weight_gradient_rows),
    .gemm_small_m = CK_NAME(gemm_small_m),
    .pointwise_weight_gradient_rows = CK_NAME(pointwise_weight_gradient_rows),
    .normalize_transposed = CK_NAME(normalize_transposed),
};

#undef VF
#undef VI
#undef LOAD
#undef STORE
#undef SPLAT
#undef HSUM
#undef ZERO_WHERE
