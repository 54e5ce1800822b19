#define _GNU_SOURCE  // mremap and MREMAP_FIXED
#include <errno.h>
#include <sys/mman.h>
#include "AllocatorConfig.h"

// jemalloc reads this global at start-up (before main). With both decay times at 0, pages of
// freed blocks go back to the system at once, so RSS follows live bytes and a peak-RSS reading
// measures what a configuration really needed, not what an earlier phase left dirty. The page
// faults this would cost every training step are mostly avoided by the runtime's bounded buffer cache
// (Sources/Runtime/BufferCache.swift; measured in Papers/). MALLOC_CONF in the environment
// is applied after this string, so it can override it for experiments.
const char *malloc_conf = "dirty_decay_ms:0,muzzy_decay_ms:0";

const char *dn_allocator_build_config(void) { return malloc_conf; }


void *dn_map_pages(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int dn_move_pages(void *source, size_t bytes, void *destination) {
    void *moved = mremap(source, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED, destination);
    return moved == MAP_FAILED ? errno : 0;
}

int dn_map_pages_at(void *address, size_t bytes) {
    void *p = mmap(address, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? errno : 0;
}
