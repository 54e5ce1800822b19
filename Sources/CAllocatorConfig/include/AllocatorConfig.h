#ifndef ALLOCATOR_CONFIG_H
#define ALLOCATOR_CONFIG_H
#include <stddef.h>

/// The jemalloc options this process was built with (the `malloc_conf` symbol).
const char *dn_allocator_build_config(void);

/// A new private anonymous mapping of `bytes` (a whole number of pages), read-write; its pages
/// are faulted in (zero-filled) when first touched. NULL when the system refuses.
void *dn_map_pages(size_t bytes);

/// Moves the `bytes` of pages at `source` (a whole number of pages inside one mapping) to
/// `destination` with mremap(MREMAP_MAYMOVE | MREMAP_FIXED): the page table entries move, the
/// pages' contents come along and stay resident, nothing is copied or faulted, and `source` is
/// unmapped. Whatever was mapped at `destination` is replaced. Returns 0, or errno. Since Linux
/// 6.17 the range may span several mappings (each moves as it is); before, that fails with
/// EFAULT and nothing moves. A failure can leave part of the range moved and `destination`
/// partly unmapped: the caller maps it afresh (`dn_map_pages_at`). Swift cannot call the
/// variadic mremap itself.
int dn_move_pages(void *source, size_t bytes, void *destination);

/// Fresh zero-fill pages over `bytes` at `address` (MAP_FIXED: whatever was mapped there is
/// replaced). Returns 0, or errno.
int dn_map_pages_at(void *address, size_t bytes);
#endif
