/* Named float64 arrays (the §11 fixture contents), shared data model. */
#ifndef OCN_ARRAYS_H
#define OCN_ARRAYS_H

#include <stddef.h>
#include "ocn/error.h"

#define OCN_MAX_NDIM 4

typedef struct {
    char name[64];
    int ndim;
    size_t shape[OCN_MAX_NDIM];
    size_t size;     /* product of shape */
    double *data;    /* C order */
    double cond;     /* §10 amplification c for this array; 0 = not recorded */
    /* §10 zero by cancellation (docs/decisions.md): exactly zero in the
     * producer's nominal run but not in its perturbation runs — the terms
     * cancelled exactly here and need not elsewhere.  The size of those terms,
     * max_r ‖X^(r)‖_F / u; 0 = a structural zero (or not recorded). */
    double zero_scale;
    /* §10 c at float32 (docs/decisions.md "c measured at the precision compared"):
     * max(cond, the sensitivity measured with u₃₂-sized perturbations).  Float32
     * comparisons use it where recorded (> 0), else cond. */
    double cond_f32;
} ocn_array;

struct ocn_arrayset_index;

typedef struct ocn_arrayset {
    int count, cap;
    ocn_array *a;
    /* Private to arrays.c: a hash index name -> position, kept by the functions
     * below (so add and find are O(1), not a scan).  Code that edits `a` or
     * `count` itself only loses the speed: find checks the index still
     * describes `a` and `count` and scans otherwise. */
    struct ocn_arrayset_index *index;
} ocn_arrayset;

/* Sets are created here (zero-initialised); find is read-only and safe to
 * call from several threads at once on the same set. */
ocn_arrayset *ocn_arrayset_new(void);
void ocn_arrayset_free(ocn_arrayset *s);
/* Adds (or replaces) an array of the given shape, zero-filled; returns it or NULL. */
/* Issue 10: that pointer, like any earlier one from add/add2/find, is valid only until the set's next add, add2, remove, sort or free (an add may move every array: realloc). */
ocn_array *ocn_arrayset_add(ocn_arrayset *s, const char *name, int ndim, const size_t *shape);
ocn_array *ocn_arrayset_add2(ocn_arrayset *s, const char *name, int ndim, size_t d0, size_t d1, size_t d2);
ocn_array *ocn_arrayset_find(const ocn_arrayset *s, const char *name);
/* Finds name and checks its shape; message names `where` and the array. */
int ocn_arrayset_expect(const ocn_arrayset *s, const char *where, const char *name, int ndim,
                        const size_t *shape, const ocn_array **out, ocn_error *err);
void ocn_arrayset_remove(ocn_arrayset *s, const char *name);
/* Deep copy (data and cond); NULL when out of memory. */
ocn_arrayset *ocn_arrayset_copy(const ocn_arrayset *s);
/* Sorts by name (deterministic manifests). */
void ocn_arrayset_sort(ocn_arrayset *s);

#endif
