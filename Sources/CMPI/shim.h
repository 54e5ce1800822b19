// Open MPI's headers and flags (pkg-config `ompi-c`, from Debian's libopenmpi-dev), for the C
// wrapper in Sources/CMPIShim. Swift does not import this module: Open MPI's handles
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM) are macros over addresses of global structs, which Swift
// cannot import, so Sources/CMPIShim wraps what the Swift side needs in plain C functions.
// The link flags (-lmpi) come from pkg-config, not from a `link` line above, so that a machine
// without Open MPI still builds (Sources/CMPIShim then reports MPI as absent).
#if __has_include(<mpi.h>)
#include <mpi.h>
#endif
