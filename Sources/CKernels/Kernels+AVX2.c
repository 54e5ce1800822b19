// The kernels (KernelTemplate.h) compiled for the AVX2 level; CPUDispatch.c picks a level at run time.
#define CK_SUFFIX avx2
#define CK_LANES 8
#define CK_LEVEL_NAME "avx2"
#if defined(__x86_64__)
#pragma clang attribute push (__attribute__((target("avx2,fma"))), apply_to = function)
#include "KernelTemplate.h"
#pragma clang attribute pop
#endif
