// See include/CMPIShim.h.
#include "CMPIShim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __has_include(<mpi.h>)
#include <mpi.h>

struct cmpi_request { MPI_Request request; int done; };

int cmpi_is_available(void) { return 1; }

int cmpi_init(int *provided) {
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
    if (rc != MPI_SUCCESS) return rc;
    switch (*provided) {
    case MPI_THREAD_SINGLE: *provided = 0; break;
    case MPI_THREAD_FUNNELED: *provided = 1; break;
    case MPI_THREAD_SERIALIZED: *provided = 2; break;
    default: *provided = 3; break;
    }
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int cmpi_is_initialized(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

int cmpi_finalize(void) { return MPI_Finalize(); }
int cmpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int cmpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }
int cmpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
int cmpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }

int cmpi_broadcast_float(float *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_FLOAT, root, MPI_COMM_WORLD);
}

int cmpi_allreduce_sum_float(float *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int cmpi_allreduce_sum_double(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int cmpi_iallreduce_sum_float(float *buffer, int count, cmpi_request **request) {
    *request = NULL;
    cmpi_request *r = malloc(sizeof *r);
    if (r == NULL) return MPI_ERR_NO_MEM;
    r->done = 0;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r->request);
    if (rc != MPI_SUCCESS) { free(r); return rc; }
    *request = r;
    return MPI_SUCCESS;
}

int cmpi_test(cmpi_request *request, int *done) {
    if (request->done) { *done = 1; return MPI_SUCCESS; }
    int flag = 0;
    int rc = MPI_Test(&request->request, &flag, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && flag) request->done = 1;
    *done = request->done;
    return rc;
}

int cmpi_wait(cmpi_request *request) {
    int rc = request->done ? MPI_SUCCESS : MPI_Wait(&request->request, MPI_STATUS_IGNORE);
    free(request);
    return rc;
}

void cmpi_error_string(int code, char *buffer, size_t capacity) {
    if (capacity == 0) return;
    if (code == CMPI_UNAVAILABLE) {
        snprintf(buffer, capacity, "built without Open MPI");
        return;
    }
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
        snprintf(buffer, capacity, "MPI error %d", code);
        return;
    }
    snprintf(buffer, capacity, "%.*s", length, text);
}

#else
// Open MPI's headers were not found at build time: every call reports CMPI_UNAVAILABLE.

int cmpi_is_available(void) { return 0; }
int cmpi_init(int *provided) { *provided = 0; return CMPI_UNAVAILABLE; }
int cmpi_is_initialized(void) { return 0; }
int cmpi_finalize(void) { return CMPI_UNAVAILABLE; }
int cmpi_rank(int *rank) { *rank = 0; return CMPI_UNAVAILABLE; }
int cmpi_size(int *size) { *size = 1; return CMPI_UNAVAILABLE; }
int cmpi_barrier(void) { return CMPI_UNAVAILABLE; }
int cmpi_abort(int code) { (void)code; return CMPI_UNAVAILABLE; }
int cmpi_broadcast_float(float *b, int c, int r) { (void)b; (void)c; (void)r; return CMPI_UNAVAILABLE; }
int cmpi_allreduce_sum_float(float *b, int c) { (void)b; (void)c; return CMPI_UNAVAILABLE; }
int cmpi_allreduce_sum_double(double *b, int c) { (void)b; (void)c; return CMPI_UNAVAILABLE; }
int cmpi_iallreduce_sum_float(float *b, int c, cmpi_request **r) { (void)b; (void)c; *r = NULL; return CMPI_UNAVAILABLE; }
int cmpi_test(cmpi_request *r, int *done) { (void)r; *done = 0; return CMPI_UNAVAILABLE; }
int cmpi_wait(cmpi_request *r) { (void)r; return CMPI_UNAVAILABLE; }
void cmpi_error_string(int code, char *buffer, size_t capacity) {
    (void)code;
    if (capacity > 0) snprintf(buffer, capacity, "built without Open MPI");
}
#endif
