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

/* Bytes of address space this process has mapped now (/proc/self/statm's
 * first field times the page size); 0 when the system does not say. */
size_t ocn_mapped_memory(void);

/* Issue 10: under an address-space limit (RLIMIT_AS, `ulimit -v`) OpenBLAS
 * retries the mmap of its work buffer (about 128 MB per thread) forever
 * instead of failing: every command hung.  This checks, before a run, that
 * the limit leaves room for those buffers (OCN_BLAS_RESERVE_PER_THREAD per
 * OpenBLAS thread is mapped and released: see memory.c);
 * OCN_ENOMEM with a message naming the limit otherwise.  OCN_OK when there is
 * no limit.  Below about 200 MB OpenBLAS hangs in its own start-up/exit code
 * (`ocn --version` too): nothing in the library can help there. */
#define OCN_BLAS_RESERVE_PER_THREAD ((size_t)136 << 20)
#include "ocn/error.h"
int ocn_blas_headroom(const char *who, ocn_error *err);

/* `bytes` for a message: "512 B", "12.3 KB", "4.0 MB", "320.0 GB",
 * "20481.6 GB" (decimal units, 1 GB = 10^9 bytes; GB is the largest, so
 * sizes beyond any machine still read in GB).  Returns buf. */
const char *ocn_format_bytes(double bytes, char *buf, size_t n);

#endif
