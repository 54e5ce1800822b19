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
    /// dx += scale·(g − mean_dy − (x − mean)·centered_factor), g as in backward_sums_row.
    void (*input_gradient_row)(const float *dy, const float *x, size_t count, float mean, float scale,
                               float beta, int relu, float mean_dy, float centered_factor, float *dx);
} ck_kernels;

/// The highest level the running CPU supports (cpuid, via __builtin_cpu_supports).
int ck_supported_level(void);

/// The kernels of `level`, or NULL when the running CPU does not support it (or the level was not
/// compiled for this architecture).
const ck_kernels *ck_kernels_for_level(int level);

#ifdef __cplusplus
}
#endif
#endif
