// jemalloc 5.3 (Debian: libjemalloc-dev), built without a symbol prefix: linking it replaces
// malloc/free for the whole process, and mallctl exposes its statistics.
#include <jemalloc/jemalloc.h>
