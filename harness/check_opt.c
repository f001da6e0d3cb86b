/* `ocn check`: the optimized implementation against the reference on a
 * fixture, every quantity both produce, SPEC §10 ratio with the precision of
 * the optimized run and the reference's amplification c. */
#include "ocn/harness.h"
#include "ocn/optimized.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define STRUCTURAL_RATIO (2 * 10 * OCN_THRESHOLD)

int ocn_check_fixture(const ocn_fixture *f, const char *backend, int precision, ocn_report *rep, int *skipped,
                      FILE *notes, ocn_error *err)
{
    const ocn_game *g = f->game;
    char id[24];
    snprintf(id, sizeof id, "%s/f%d", backend, precision);
    const char *why = ocn_opt_unsupported(g, &g->opt);
    if (why) { /* reported, never a pass */
        if (skipped) ++*skipped;
        if (notes) fprintf(notes, "SKIP  %-14s %-28s %s\n", id, g->name, why);
        return OCN_OK;
    }
    ocn_arrayset *ref = ocn_arrayset_new(), *opt = ocn_arrayset_new();
    ocn_opt_config cfg = {backend, precision, 1 << 20, 0};
    int rc = ocn_ref_run(g, &g->opt, f->arrays, NULL, ref, err);
    if (!rc) rc = ocn_opt_run(g, &g->opt, f->arrays, &cfg, opt, err);
    if (rc) {
        ocn_arrayset_free(ref), ocn_arrayset_free(opt);
        return ocn_error_prefix(err, "%s", f->dir);
    }
    double u = precision == 32 ? 5.9604644775390625e-08 : OCN_U64;
    ocn_arrayset_sort(opt);
    for (int i = 0; i < opt->count; i++) {
        const ocn_array *a = &opt->a[i], *b = ocn_arrayset_find(ref, a->name);
        int same = b && b->ndim == a->ndim;
        for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
        if (!same) {
            ocn_report_add(rep, id, g->name, a->name, INFINITY, STRUCTURAL_RATIO);
            continue;
        }
        double e = ocn_rel_err(a->data, b->data, a->size);
        ocn_report_add(rep, id, g->name, a->name, e, ocn_ratio(e, u, b->cond));
    }
    ocn_arrayset_free(ref), ocn_arrayset_free(opt);
    return OCN_OK;
}
