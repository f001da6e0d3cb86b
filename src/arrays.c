#include "ocn/arrays.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ocn_arrayset *ocn_arrayset_new(void) { return calloc(1, sizeof(ocn_arrayset)); }

void ocn_arrayset_free(ocn_arrayset *s)
{
    if (!s) return;
    for (int i = 0; i < s->count; i++) free(s->a[i].data);
    free(s->a);
    free(s);
}

ocn_array *ocn_arrayset_find(const ocn_arrayset *s, const char *name)
{
    for (int i = 0; i < s->count; i++)
        if (!strcmp(s->a[i].name, name)) return &s->a[i];
    return NULL;
}

ocn_array *ocn_arrayset_add(ocn_arrayset *s, const char *name, int ndim, const size_t *shape)
{
    if (ndim < 0 || ndim > OCN_MAX_NDIM || strlen(name) >= sizeof s->a[0].name) return NULL;
    size_t size = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] && size > ((size_t)1 << 40) / shape[d]) return NULL;
        size *= shape[d];
    }
    double *data = calloc(size ? size : 1, sizeof(double));
    if (!data) return NULL;
    ocn_array *a = ocn_arrayset_find(s, name);
    if (a) {
        free(a->data);
    } else {
        if (s->count == s->cap) {
            int nc = s->cap ? 2 * s->cap : 32;
            ocn_array *na = realloc(s->a, (size_t)nc * sizeof *na);
            if (!na) { free(data); return NULL; }
            s->a = na;
            s->cap = nc;
        }
        a = &s->a[s->count++];
    }
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->ndim = ndim;
    for (int d = 0; d < ndim; d++) a->shape[d] = shape[d];
    a->size = size;
    a->data = data;
    return a;
}

ocn_array *ocn_arrayset_add2(ocn_arrayset *s, const char *name, int ndim, size_t d0, size_t d1, size_t d2)
{
    size_t sh[3] = {d0, d1, d2};
    return ocn_arrayset_add(s, name, ndim, sh);
}

int ocn_arrayset_expect(const ocn_arrayset *s, const char *where, const char *name, int ndim,
                        const size_t *shape, const ocn_array **out, ocn_error *err)
{
    const ocn_array *a = ocn_arrayset_find(s, name);
    if (!a) return ocn_fail(err, OCN_EINVAL, "%s: array '%s' missing", where, name);
    int ok = a->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = a->shape[d] == shape[d];
    if (!ok) {
        char want[96] = "(", got[96] = "(";
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%zu%s", shape[d], d + 1 < ndim ? ", " : "");
        for (int d = 0; d < a->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%zu%s", a->shape[d], d + 1 < a->ndim ? ", " : "");
        return ocn_fail(err, OCN_EINVAL, "%s: array '%s' has shape %s), expected %s)", where, name, got, want);
    }
    *out = a;
    return OCN_OK;
}

void ocn_arrayset_remove(ocn_arrayset *s, const char *name)
{
    ocn_array *a = ocn_arrayset_find(s, name);
    if (!a) return;
    free(a->data);
    *a = s->a[--s->count];
}

static int by_name(const void *x, const void *y)
{
    return strcmp(((const ocn_array *)x)->name, ((const ocn_array *)y)->name);
}

void ocn_arrayset_sort(ocn_arrayset *s)
{
    if (s->count > 1) qsort(s->a, (size_t)s->count, sizeof *s->a, by_name);
}

ocn_arrayset *ocn_arrayset_copy(const ocn_arrayset *s)
{
    ocn_arrayset *c = ocn_arrayset_new();
    for (int i = 0; c && i < s->count; i++) {
        ocn_array *a = ocn_arrayset_add(c, s->a[i].name, s->a[i].ndim, s->a[i].shape);
        if (!a) {
            ocn_arrayset_free(c);
            return NULL;
        }
        memcpy(a->data, s->a[i].data, a->size * sizeof *a->data);
        a->cond = s->a[i].cond;
    }
    return c;
}
