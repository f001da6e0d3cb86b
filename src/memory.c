/* Memory sizes of the machine (issue 10): see include/ocn/memory.h. */
#include "ocn/memory.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

int openblas_get_num_threads(void); /* OpenBLAS (linked by the library) */

size_t ocn_phys_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    if ((unsigned long)pages > SIZE_MAX / (unsigned long)page) return SIZE_MAX;
    return (size_t)pages * (size_t)page;
}

size_t ocn_memory_limit(size_t max_memory)
{
    if (max_memory) return max_memory;
    size_t phys = ocn_phys_memory();
    return phys ? phys : SIZE_MAX;
}

const char *ocn_format_bytes(double bytes, char *buf, size_t n)
{
    static const char *const unit[] = {"KB", "MB", "GB"};
    if (!(bytes >= 1000.0)) {
        snprintf(buf, n, "%.0f B", bytes > 0 ? bytes : 0.0);
        return buf;
    }
    int u = -1;
    while (bytes >= 1000.0 && u < 2) bytes /= 1000.0, u++;
    snprintf(buf, n, "%.1f %s", bytes, unit[u]);
    return buf;
}

size_t ocn_mapped_memory(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)pages * (size_t)page : 0;
}

int ocn_blas_headroom(const char *who, ocn_error *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur == RLIM_INFINITY) return OCN_OK;
    int threads = openblas_get_num_threads();
    /* one buffer per thread, whether or not OpenBLAS already holds some (it
     * maps them at load time or at the first call, depending on the limit and
     * the thread count): counting held ones again refuses some limits that
     * would have worked (2 threads: up to ~480 MB), a clear message instead
     * of the hang that a tighter model let through at 300 MB */
    size_t need = (size_t)(threads > 0 ? threads : 1) * OCN_BLAS_RESERVE_PER_THREAD;
    void *p = mmap(NULL, need, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
        munmap(p, need);
        return OCN_OK;
    }
    char lim[32], used[32], want[32];
    return ocn_fail(err, OCN_ENOMEM,
                    "%s: the address-space limit (ulimit -v: %s, %s mapped already) leaves no room for OpenBLAS's "
                    "work buffers (%s for %d thread%s), and OpenBLAS would wait for them forever instead of "
                    "failing: refused; raise the limit or set OPENBLAS_NUM_THREADS=1",
                    who, ocn_format_bytes((double)rl.rlim_cur, lim, sizeof lim),
                    ocn_format_bytes((double)ocn_mapped_memory(), used, sizeof used), ocn_format_bytes((double)need, want, sizeof want),
                    threads, threads == 1 ? "" : "s");
}
