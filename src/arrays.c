#include "ocn/arrays.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Name index: open addressing with linear probing over positions + 1 (0 is an
 * empty slot), at most half full; `a` and `count` record what it describes,
 * so a set edited behind our back falls back to a scan instead of a wrong
 * answer.  Issue 10: a manifest with 40k arrays took 5.9 s because every add
 * scanned the whole set. */
struct ocn_arrayset_index {
    size_t mask;        /* capacity - 1 (a power of two) */
    int *slot;
    const ocn_array *a;
    int count;
};

static size_t name_hash(const char *n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *n; n++) h = (h ^ (unsigned char)*n) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

static int index_valid(const ocn_arrayset *s)
{
    return s->index && s->index->a == s->a && s->index->count == s->count;
}

static void index_drop(ocn_arrayset *s)
{
    if (!s->index) return;
    free(s->index->slot);
    free(s->index);
    s->index = NULL;
}

/* Slot holding `name`, or the empty slot where it would go. */
static size_t index_probe(const ocn_arrayset *s, const char *name)
{
    const struct ocn_arrayset_index *ix = s->index;
    size_t h = name_hash(name) & ix->mask;
    while (ix->slot[h] && strcmp(s->a[ix->slot[h] - 1].name, name)) h = (h + 1) & ix->mask;
    return h;
}

/* (Re)builds the index for the current a[0..count); on failure the set has
 * none and find scans. */
static void index_build(ocn_arrayset *s, size_t want)
{
    size_t cap = 64;
    while (cap < 2 * want) cap *= 2;
    struct ocn_arrayset_index *ix = s->index;
    if (!ix && !(ix = calloc(1, sizeof *ix))) return;
    int *slot = calloc(cap, sizeof *slot);
    if (!slot) {
        s->index = ix;
        index_drop(s);
        return;
    }
    free(ix->slot);
    ix->slot = slot, ix->mask = cap - 1;
    s->index = ix;
    for (int i = 0; i < s->count; i++) {
        size_t h = index_probe(s, s->a[i].name);
        if (!ix->slot[h]) ix->slot[h] = i + 1; /* a duplicate name (edited set): the first wins, as in a scan */
    }
    ix->a = s->a, ix->count = s->count;
}

/* Removes slot h (backward-shift deletion keeps every probe chain whole). */
static void index_delete(ocn_arrayset *s, size_t h)
{
    struct ocn_arrayset_index *ix = s->index;
    size_t j = h, k = h;
    ix->slot[j] = 0;
    for (;;) {
        k = (k + 1) & ix->mask;
        if (!ix->slot[k]) return;
        size_t home = name_hash(s->a[ix->slot[k] - 1].name) & ix->mask;
        int stays = j < k ? (j < home && home <= k) : (j < home || home <= k);
        if (stays) continue;
        ix->slot[j] = ix->slot[k];
        ix->slot[k] = 0;
        j = k;
    }
}

ocn_arrayset *ocn_arrayset_new(void) { return calloc(1, sizeof(ocn_arrayset)); }

void ocn_arrayset_free(ocn_arrayset *s)
{
    if (!s) return;
    for (int i = 0; i < s->count; i++) free(s->a[i].data);
    free(s->a);
    index_drop(s);
    free(s);
}

ocn_array *ocn_arrayset_find(const ocn_arrayset *s, const char *name)
{
    if (index_valid(s)) {
        int i = s->index->slot[index_probe(s, name)];
        return i ? &s->a[i - 1] : NULL;
    }
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
            if (s->cap > (1 << 29)) { free(data); return NULL; }
            int nc = s->cap ? 2 * s->cap : 32;
            ocn_array *na = realloc(s->a, (size_t)nc * sizeof *na);
            if (!na) { free(data); return NULL; }
            int was_valid = index_valid(s);
            s->a = na;
            s->cap = nc;
            if (was_valid) s->index->a = na;
        }
        int was_valid = index_valid(s);
        a = &s->a[s->count++];
        memset(a, 0, sizeof *a);
        snprintf(a->name, sizeof a->name, "%s", name);
        struct ocn_arrayset_index *ix = s->index;
        if (!was_valid || (size_t)s->count * 2 > ix->mask + 1) index_build(s, (size_t)s->count);
        else {
            ix->slot[index_probe(s, a->name)] = s->count;
            ix->count = s->count;
        }
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
    int i = (int)(a - s->a), last = s->count - 1;
    if (index_valid(s)) {
        struct ocn_arrayset_index *ix = s->index;
        index_delete(s, index_probe(s, name));
        if (i != last) ix->slot[index_probe(s, s->a[last].name)] = i + 1;
        ix->count = last;
    }
    free(a->data);
    *a = s->a[last];
    s->count = last;
}

static int by_name(const void *x, const void *y)
{
    return strcmp(((const ocn_array *)x)->name, ((const ocn_array *)y)->name);
}

void ocn_arrayset_sort(ocn_arrayset *s)
{
    if (s->count > 1) qsort(s->a, (size_t)s->count, sizeof *s->a, by_name);
    if (s->index) index_build(s, (size_t)s->count);
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
        a->zero_scale = s->a[i].zero_scale;
        a->cond_f32 = s->a[i].cond_f32;
    }
    return c;
}
