// A small C wrapper over Open MPI (Debian's libopenmpi-dev, 4.1.x) for Sources/DataParallel.
// Swift cannot import Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT and MPI_SUM are macros over
// addresses of global structs), so every function here names them itself and takes only plain
// C types. All calls are on MPI_COMM_WORLD, whose error handler is set to MPI_ERRORS_RETURN at
// initialisation: failures come back as MPI error codes (0 is MPI_SUCCESS), never as an abort.
// Built without mpi.h (Open MPI not installed), every function returns CMPI_UNAVAILABLE.
#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Returned by every function when this library was built without Open MPI's headers.
#define CMPI_UNAVAILABLE (-1000)

/// 1 when this build has Open MPI, 0 when every call returns CMPI_UNAVAILABLE.
int cmpi_is_available(void);

/// MPI_Init_thread with MPI_THREAD_SERIALIZED requested; `provided` receives the level granted
/// (0 single, 1 funneled, 2 serialized, 3 multiple). Sets MPI_ERRORS_RETURN on MPI_COMM_WORLD.
int cmpi_init(int *provided);
/// 1 when MPI_Init has been called (and MPI_Finalize not yet), else 0.
int cmpi_is_initialized(void);
int cmpi_finalize(void);
int cmpi_rank(int *rank);
int cmpi_size(int *size);
int cmpi_barrier(void);
/// MPI_Abort on MPI_COMM_WORLD: ends every rank of the job with `code`.
int cmpi_abort(int code);

/// In-place MPI_Bcast of `count` floats from `root`.
int cmpi_broadcast_float(float *buffer, int count, int root);
/// In-place MPI_Allreduce (MPI_SUM) of `count` floats.
int cmpi_allreduce_sum_float(float *buffer, int count);
/// In-place MPI_Allreduce (MPI_SUM) of `count` doubles.
int cmpi_allreduce_sum_double(double *buffer, int count);

/// An MPI_Request of a non-blocking collective, owned by the caller until waited for.
typedef struct cmpi_request cmpi_request;
/// In-place MPI_Iallreduce (MPI_SUM) of `count` floats; `request` receives a new request that
/// must be finished by cmpi_wait (which frees it). `buffer` must not be touched until then.
int cmpi_iallreduce_sum_float(float *buffer, int count, cmpi_request **request);
/// MPI_Test: `done` becomes 1 when the operation has completed (the request is then spent and
/// must still be passed to cmpi_wait, which returns at once and frees it). Also drives progress.
int cmpi_test(cmpi_request *request, int *done);
/// MPI_Wait, then frees `request` (also when the wait fails).
int cmpi_wait(cmpi_request *request);

/// MPI_Error_string of `code` (or a fixed text for CMPI_UNAVAILABLE) into `buffer`.
void cmpi_error_string(int code, char *buffer, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
