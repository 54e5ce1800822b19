// One pool of worker threads for the runtime's parallel loops (Sources/Runtime/Parallel.swift).
//
// Workers wait for the next loop by spinning for a while before they sleep on a futex, as
// OpenMP runtimes do (libgomp's GOMP_SPINCOUNT, Intel's KMP_BLOCKTIME): a training step runs
// about a thousand short parallel loops, and a sleeping thread takes tens of microseconds to
// wake, which on every loop leaves all but the calling thread idle at its start.
#ifndef DENSENET_THREAD_POOL_H
#define DENSENET_THREAD_POOL_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*tp_body)(void *context, long index);

/// Runs body(context, i) for every i in [0, count) on the calling thread and `workers` pool
/// threads (started, or stopped and restarted, when the number differs from the last call's),
/// each part exactly once, and returns 0 once all have returned. Returns 1 without running
/// anything when the pool cannot take the loop: called from inside a pool loop (nested), while
/// another thread's loop runs, or with workers < 1; the caller then runs it another way.
int tp_run(long count, tp_body body, void *context, int workers);

/// How long an idle worker spins before it sleeps, in nanoseconds: by default 200000, or 0 (sleep
/// at once) while the pool's threads with the caller outnumber the CPUs this process may use. The
/// environment variable DENSENET_SPIN_US (microseconds, read once) or tp_set_spin_ns sets it for
/// every case; tp_set_spin_ns(-1) restores the default.
void tp_set_spin_ns(long nanoseconds);
long tp_spin_ns(void);

/// The worker threads running now (0 before the first loop).
int tp_worker_count(void);

#ifdef __cplusplus
}
#endif
#endif
