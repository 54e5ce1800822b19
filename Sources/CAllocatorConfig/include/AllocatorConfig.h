#ifndef ALLOCATOR_CONFIG_H
#define ALLOCATOR_CONFIG_H
/// The jemalloc options this process was built with (the `malloc_conf` symbol).
const char *dn_allocator_build_config(void);
#endif
