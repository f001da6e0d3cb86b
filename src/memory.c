/* Memory sizes of the machine (issue 10): see include/ocn/memory.h. */
#include "ocn/memory.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

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
