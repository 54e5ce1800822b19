// Run-time choice of the kernel level (CKernels.h): cpuid through the compiler's
// __builtin_cpu_supports, never the building machine's flags.
#include "CKernels.h"

extern const ck_kernels ck_kernels_baseline;
#if defined(__x86_64__)
extern const ck_kernels ck_kernels_avx2;
extern const ck_kernels ck_kernels_avx512;
#endif

int ck_supported_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return CK_LEVEL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CK_LEVEL_AVX2;
#endif
    return CK_LEVEL_BASELINE;
}

const ck_kernels *ck_kernels_for_level(int level) {
    if (level < 0 || level > ck_supported_level()) return NULL;
    switch (level) {
    case CK_LEVEL_BASELINE: return &ck_kernels_baseline;
#if defined(__x86_64__)
    case CK_LEVEL_AVX2: return &ck_kernels_avx2;
    case CK_LEVEL_AVX512: return &ck_kernels_avx512;
#endif
    default: return NULL;
    }
}
