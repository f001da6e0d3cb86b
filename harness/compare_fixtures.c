/* `ocn compare A B`: two fixtures of the same game, array by array, with the
 * SPEC §10 ratio (u of the lower precision, c from whichever fixture stores
 * it).  This is how a port proves itself: it writes its outputs as a fixture
 * and compares against ours. */
#include "ocn/harness.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static double unit_roundoff(const ocn_fixture *f)
{
    return !strcmp(f->precision, "f32") ? 5.9604644775390625e-08 : OCN_U64;
}

int ocn_compare_fixtures(const ocn_fixture *a, const ocn_fixture *b, ocn_report *rep, FILE *notes, ocn_error *err)
{
    if (!json_equal((json_t *)a->game->json, (json_t *)b->game->json))
        return ocn_fail(err, OCN_EINVAL, "%s and %s describe different games; compare needs the same game", a->dir, b->dir);
    double u = fmax(unit_roundoff(a), unit_roundoff(b));
    for (int i = 0; i < a->arrays->count; i++) {
        const ocn_array *x = &a->arrays->a[i], *y = ocn_arrayset_find(b->arrays, x->name);
        if (!y) {
            if (notes) fprintf(notes, "only in %s: %s\n", a->dir, x->name);
            continue;
        }
        int same = x->ndim == y->ndim;
        for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == y->shape[d];
        if (!same) {
            ocn_report_add(rep, "COMPARE", a->game->name, x->name, INFINITY, 2 * 10 * OCN_THRESHOLD);
            continue;
        }
        double e = ocn_rel_err(y->data, x->data, x->size);
        ocn_report_add(rep, "COMPARE", a->game->name, x->name, e, ocn_ratio(e, u, fmax(x->cond, y->cond)));
    }
    for (int i = 0; notes && i < b->arrays->count; i++)
        if (!ocn_arrayset_find(a->arrays, b->arrays->a[i].name)) fprintf(notes, "only in %s: %s\n", b->dir, b->arrays->a[i].name);
    return OCN_OK;
}
