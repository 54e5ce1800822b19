// The kernels (KernelTemplate.h) compiled for the AVX512 level; CPUDispatch.c picks a level at run time.
#define CK_SUFFIX avx512
#define CK_LANES 16
#define CK_LEVEL_NAME "avx512"
#if defined(__x86_64__)
#pragma clang attribute push (__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#include "KernelTemplate.h"
#pragma clang attribute pop
#endif
