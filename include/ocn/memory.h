/* Memory sizes of the machine (issue 10, "Sizes and memory"): the default
 * limit a producer checks its estimated peak against before allocating, and
 * how a size is written in a message.  Shared by reference/ and optimized/. */
#ifndef OCN_MEMORY_H
#define OCN_MEMORY_H

#include <stddef.h>

/* Physical memory of the machine in bytes: sysconf(_SC_PHYS_PAGES) times the
 * page size; 0 when the system does not say. */
size_t ocn_phys_memory(void);

/* The limit a run honours: `max_memory` when nonzero, else the physical
 * memory (SIZE_MAX when that is unknown). */
size_t ocn_memory_limit(size_t max_memory);

/* `bytes` for a message: "512 B", "12.3 KB", "4.0 MB", "320.0 GB",
 * "20481.6 GB" (decimal units, 1 GB = 10^9 bytes; GB is the largest, so
 * sizes beyond any machine still read in GB).  Returns buf. */
const char *ocn_format_bytes(double bytes, char *buf, size_t n);

#endif
