// The runtime's worker pool (include/ThreadPool.h).
//
// A loop is published in one of two job slots (generation & 1) and the generation counter is
// bumped; workers take part indices from the slot's `next` counter. A worker announces itself in
// the slot's `active` count before it reads the slot and checks that the generation is still
// the one it saw, and the caller reuses a slot (two loops later) only once no worker is active
// in it, so a worker never reads a slot while it is being rewritten. The caller returns when
// every part is done, not when every worker has noticed the loop.
#define _GNU_SOURCE
#include "ThreadPool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    tp_body body;
    void *context;
    long count;
    atomic_long next;
    atomic_long done;
    atomic_int active;
} tp_job;

static tp_job jobs[2];
static atomic_uint generation;     // the futex word sleeping workers wait on
static atomic_int sleepers;
static atomic_int stopping;
static atomic_int running_workers;
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t *threads;
static int thread_count;
static _Thread_local int inside_loop;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

// -2: not yet read from the environment; -1: the default; ≥ 0: set (DENSENET_SPIN_US or tp_set_spin_ns).
static atomic_long configured_spin_ns = -2;

// CPUs this process may run on (its affinity mask, so taskset and container limits count).
static int usable_cpus(void) {
    static atomic_int cached;
    int n = atomic_load_explicit(&cached, memory_order_relaxed);
    if (n > 0) return n;
    cpu_set_t set;
    n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    atomic_store_explicit(&cached, n, memory_order_relaxed);
    return n;
}

long tp_spin_ns(void) {
    long configured = atomic_load_explicit(&configured_spin_ns, memory_order_relaxed);
    if (configured == -2) {
        configured = -1;
        const char *env = getenv("DENSENET_SPIN_US");
        if (env && *env) {
            char *end = NULL;
            long us = strtol(env, &end, 10);
            if (end && *end == '\0' && us >= 0 && us <= 10000000) configured = us * 1000;
        }
        atomic_store_explicit(&configured_spin_ns, configured, memory_order_relaxed);
    }
    if (configured >= 0) return configured;
    // More threads than CPUs: a spinning worker would hold a CPU the caller needs (16 threads on
    // 2 cores ran a step 1.56x slower spinning than sleeping at once), so none spins.
    return atomic_load(&running_workers) + 1 > usable_cpus() ? 0 : 200000;
}

void tp_set_spin_ns(long nanoseconds) {
    atomic_store_explicit(&configured_spin_ns, nanoseconds < 0 ? -1 : nanoseconds, memory_order_relaxed);
}

int tp_worker_count(void) { return atomic_load(&running_workers); }

// Takes parts until none is left.
static void work(tp_job *job) {
    long i;
    while ((i = atomic_fetch_add(&job->next, 1)) < job->count) {
        job->body(job->context, i);
        atomic_fetch_add_explicit(&job->done, 1, memory_order_release);
    }
}

// Spins, then sleeps, until the generation differs from `seen`; returns it.
static unsigned wait_for_loop(unsigned seen) {
    long limit = tp_spin_ns();
    if (limit > 0) {
        long start = now_ns();
        for (unsigned spins = 1;; spins++) {
            unsigned g = atomic_load_explicit(&generation, memory_order_acquire);
            if (g != seen) return g;
            cpu_relax();
            if ((spins & 255) == 0) {
                if (now_ns() - start > limit) break;
                // Let a runnable thread of this core (another rank's, when ranks × threads exceed
                // the cores) have it rather than spin through its time slice.
                if ((spins & 4095) == 0) sched_yield();
            }
        }
    }
    atomic_fetch_add(&sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&generation)) == seen) {
        syscall(SYS_futex, (unsigned *)&generation, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    }
    atomic_fetch_sub(&sleepers, 1);
    return g;
}

static void *worker_main(void *argument) {
    unsigned seen = (unsigned)(unsigned long)argument;
    inside_loop = 1;
    for (;;) {
        unsigned g = wait_for_loop(seen);
        if (atomic_load(&stopping)) break;
        seen = g;
        tp_job *job = &jobs[g & 1];
        atomic_fetch_add(&job->active, 1);
        if (atomic_load(&generation) == g) work(job);
        atomic_fetch_sub(&job->active, 1);
    }
    return NULL;
}

static void publish(unsigned g) {
    atomic_store(&generation, g);
    if (atomic_load(&sleepers) > 0) {
        syscall(SYS_futex, (unsigned *)&generation, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    }
}

// With run_lock held: stops the workers there are and starts `workers` new ones.
static int resize(int workers) {
    if (thread_count > 0) {
        atomic_store(&stopping, 1);
        publish(atomic_load(&generation) + 1);
        for (int t = 0; t < thread_count; t++) pthread_join(threads[t], NULL);
        atomic_store(&stopping, 0);
        free(threads);
        threads = NULL;
        thread_count = 0;
        atomic_store(&running_workers, 0);
    }
    if (workers <= 0) return 0;
    threads = calloc((size_t)workers, sizeof(pthread_t));
    if (!threads) return -1;
    unsigned seen = atomic_load(&generation);
    for (int t = 0; t < workers; t++) {
        if (pthread_create(&threads[t], NULL, worker_main, (void *)(unsigned long)seen) != 0) break;
        thread_count++;
    }
    atomic_store(&running_workers, thread_count);
    return thread_count > 0 ? 0 : -1;
}

int tp_run(long count, tp_body body, void *context, int workers) {
    if (count <= 0) return 0;
    if (inside_loop || workers < 1) return 1;
    if (pthread_mutex_trylock(&run_lock) != 0) return 1;
    if (workers != thread_count && resize(workers) != 0) {
        pthread_mutex_unlock(&run_lock);
        return 1;
    }
    unsigned g = atomic_load(&generation) + 1;
    tp_job *job = &jobs[g & 1];
    // A worker of the loop two back may still be leaving this slot.
    while (atomic_load(&job->active) != 0) cpu_relax();
    job->body = body;
    job->context = context;
    job->count = count;
    atomic_store(&job->next, 0);
    atomic_store(&job->done, 0);
    publish(g);
    inside_loop = 1;
    work(job);
    inside_loop = 0;
    for (unsigned spins = 1; atomic_load_explicit(&job->done, memory_order_acquire) < count; spins++) {
        if (spins < 4096) cpu_relax(); else sched_yield();
    }
    pthread_mutex_unlock(&run_lock);
    return 0;
}
