/* Recompute a fixture with the reference and compare every stored output
 * array (§10 ratio, c from the reference's own conditioning). This is the
 * golden-fixture test and the staleness check of the shipped fixtures. */
#include "ocn/harness.h"

#include <math.h>
#include <string.h>

/* §10: a structural failure is reported as twice the failing ratio. */
#define STRUCTURAL_RATIO (2 * 10 * OCN_THRESHOLD)

int ocn_verify_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_report *rep, ocn_error *err)
{
    ocn_arrayset *got = ocn_arrayset_new();
    int rc = ocn_ref_run(f->game, &f->game->opt, f->arrays, o, got, err);
    if (rc) {
        ocn_arrayset_free(got);
        return ocn_error_prefix(err, "%s", f->dir);
    }
    double u = !strcmp(f->precision, "f32") ? 5.9604644775390625e-08 : OCN_U64;
    const char *name = f->game->name;
    for (int i = 0; i < f->arrays->count; i++) {
        const ocn_array *want = &f->arrays->a[i];
        if (ocn_array_is_input(want->name)) continue;
        const ocn_array *have = ocn_arrayset_find(got, want->name);
        int same = have && have->ndim == want->ndim;
        for (int d = 0; same && d < want->ndim; d++) same = have->shape[d] == want->shape[d];
        if (!same) {
            ocn_report_add(rep, "REPRO", name, want->name, INFINITY, STRUCTURAL_RATIO);
            continue;
        }
        double e = ocn_rel_err(want->data, have->data, want->size);
        ocn_report_add(rep, "REPRO", name, want->name, e, ocn_ratio(e, u, have->cond));
    }
    ocn_arrayset_free(got);
    return OCN_OK;
}
