// The kernels (KernelTemplate.h) compiled for the Baseline level; CPUDispatch.c picks a level at run time.
#define CK_SUFFIX baseline
#define CK_LANES 4
#define CK_LEVEL_NAME "baseline"
#include "KernelTemplate.h"
