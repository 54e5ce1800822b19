// OpenBLAS's CBLAS interface (Debian: libopenblas-dev, pthread flavour).
#include <cblas.h>
// Declared by OpenBLAS's cblas.h too; repeated here so the shim does not depend on that detail.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
