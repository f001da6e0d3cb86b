/* The backend registry (one table of names, no strcmp chains elsewhere), the
 * contract-violation record, and the loader of the separately built CUDA
 * module (libocn-cuda.so: `ocn` links no CUDA library and starts without
 * touching one unless the cuda backend is asked for). */
#include "backend.h"
#include "ocn/optimized.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ocn_backend_fail(ocn_backend *b, const char *fmt, ...)
{
    if (b->failed) return OCN_BK_ECONTRACT; /* the first violation is the informative one */
    char msg[sizeof b->err.msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ocn_fail(&b->err, OCN_ENUMERIC, "backend '%s': %s", b->name, msg);
    b->failed = 1;
    return OCN_BK_ECONTRACT;
}

static int open_checking(ocn_backend **out, ocn_error *err)
{
    ocn_backend *inner = NULL;
    int rc = ocn_backend_cpu_new(&inner, err);
    return rc ? rc : ocn_backend_checking_new(inner, out, err);
}

typedef struct {
    const char *name;
    int (*open)(ocn_backend **out, ocn_error *err);
} entry;

static const entry REGISTRY[] = {
    {"cpu", ocn_backend_cpu_new},
    {"checking", open_checking},
    {"cuda", ocn_backend_cuda_new},
};
#define NREG ((int)(sizeof REGISTRY / sizeof *REGISTRY))

const char *const *ocn_backend_names(void)
{
    static const char *const names[NREG + 1] = {"cpu", "checking", "cuda", NULL};
    return names;
}

int ocn_backend_open(const char *name, ocn_backend **out, ocn_error *err)
{
    *out = NULL;
    for (int i = 0; i < NREG; i++)
        if (!strcmp(REGISTRY[i].name, name)) return REGISTRY[i].open(out, err);
    return ocn_fail(err, OCN_EUNSUPPORTED, "backend '%s' is not available in this build (known: cpu, checking, cuda)",
                    name);
}

int ocn_opt_backend_known(const char *name)
{
    for (int i = 0; name && i < NREG; i++)
        if (!strcmp(REGISTRY[i].name, name)) return 1;
    return 0;
}

void ocn_backend_close(ocn_backend *b)
{
    if (b && b->destroy) b->destroy(b);
}

/* ---- the CUDA module ---- */

typedef int (*cuda_new_fn)(ocn_backend **out, ocn_error *err);

/* Candidates: $OCN_CUDA_MODULE, then libocn-cuda.so beside the running program,
 * one directory up (build/ocn and build/tests/ocn_tests both find
 * build/libocn-cuda.so) and in ../lib (an installed PREFIX/bin/ocn finds
 * PREFIX/lib/libocn-cuda.so, where `make install` puts it). */
int ocn_backend_cuda_new(ocn_backend **out, ocn_error *err)
{
    char exe[PATH_MAX], cand[4][PATH_MAX + 32];
    int nc = 0;
    const char *env = getenv("OCN_CUDA_MODULE");
    if (env && *env) snprintf(cand[nc++], sizeof cand[0], "%s", env);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(cand[nc++], sizeof cand[0], "%s/libocn-cuda.so", exe);
        snprintf(cand[nc++], sizeof cand[0], "%s/../libocn-cuda.so", exe);
        snprintf(cand[nc++], sizeof cand[0], "%s/../lib/libocn-cuda.so", exe);
    }
    void *h = NULL;
    char why[PATH_MAX + 600] = "no candidate path";
    for (int i = 0; i < nc && !h; i++) {
        if (access(cand[i], R_OK)) {
            snprintf(why, sizeof why, "%.1000s not found", cand[i]);
            continue;
        }
        h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) snprintf(why, sizeof why, "%.1000s", dlerror());
    }
    if (!h)
        return ocn_fail(err, OCN_EUNSUPPORTED,
                        "backend 'cuda': the CUDA module is not available (%s; it is built as libocn-cuda.so where "
                        "nvcc and a host C++ compiler exist)",
                        why);
    cuda_new_fn fn = (cuda_new_fn)(size_t)dlsym(h, "ocn_cuda_backend_new");
    if (!fn) {
        dlclose(h);
        return ocn_fail(err, OCN_EUNSUPPORTED, "backend 'cuda': the module has no ocn_cuda_backend_new");
    }
    /* the module stays loaded for the process (its contexts may outlive this
     * call; CUDA runtimes do not like being unloaded) */
    return fn(out, err);
}
