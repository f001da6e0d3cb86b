/* `ocn verify`: recompute a fixture with the reference from its stored inputs
 * and compare every stored output array (§10 rev. 2: X* = the stored array, c
 * its stored measured sensitivity).  This is the golden-fixture test and the
 * staleness check of the shipped fixtures: it passes on any machine, while
 * `cmp` of the bytes would not (OpenBLAS picks other kernels elsewhere). */
#include "ocn/harness.h"

#include <math.h>
#include <string.h>

int ocn_recompute_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_arrayset *out, ocn_error *err)
{
    if (!f->trajectory) return ocn_ref_run(f->game, &f->game->opt, f->arrays, o, out, err);
    ocn_arrayset *in = NULL; /* §13: recomputed as a trajectory, from its initial θ and stored batches */
    int rc = ocn_traj_inputs(f->game, f->arrays, f->dir, &in, err);
    if (!rc) rc = ocn_ref_run_trajectory(f->game, &f->game->opt, in, o, out, err);
    ocn_arrayset_free(in);
    return rc;
}

/* A fixture that stores outputs but lacks one of the gain set the reference
 * recomputes (k, K, Vx, Vxx, Wx, Wxx, dx, theta_new; a trajectory's theta_s,
 * dtheta_s, theta_t) is FAILED: `ocn compare` and `ocn check` judge only what
 * the reference side stores, so an array deleted from a fixture would drop
 * out of every later verdict with exit 0 (red team, session 5).  The §11
 * size rule is applied by the recomputation too, so K above 1 MiB is absent
 * on both sides.  A fixture with no output at all is "nothing compared". */
static void missing_gains(ocn_report *rep, const ocn_fixture *f, const ocn_arrayset *ref, const ocn_arrayset *got,
                          double u)
{
    int outputs = 0;
    for (int i = 0; i < ref->count && !outputs; i++) outputs = !ocn_array_is_input_of(ref->a[i].name, f->trajectory);
    if (!outputs) return;
    char q[96];
    for (int i = 0; i < got->count; i++) {
        const ocn_array *g = &got->a[i];
        if (ocn_arrayset_find(ref, g->name) || !ocn_requires_of(OCN_REQUIRE_GAINS, g->name, f->trajectory)) continue;
        snprintf(q, sizeof q, "%s (missing)", g->name);
        ocn_report_add_c(rep, "REPRO", f->game->name, q, INFINITY, u, ocn_cond_at(g, u));
    }
}

int ocn_verify_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_report *rep, ocn_error *err)
{
    ocn_arrayset *got = ocn_arrayset_new(), *ref = NULL;
    if (!got) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    ocn_ref_opts ro = {.fault = o ? o->fault : OCN_FAULT_NONE, .max_memory = o ? o->max_memory : 0};
    int rc = ocn_reference_side(f, &ref, err);
    if (!rc) rc = ocn_recompute_fixture(f, &ro, got, err);
    if (!rc) {
        double u = !strcmp(f->precision, "f32") ? OCN_U32 : OCN_U64;
        ocn_compare_spec s = {"REPRO", f->game->name, OCN_REQUIRE_ALL, u, "reference recomputes, fixture lacks"};
        ocn_compare_sets(rep, &s, ref, got);
        missing_gains(rep, f, ref, got, u);
    } else
        ocn_error_prefix(err, "%s", f->dir);
    ocn_arrayset_free(got), ocn_arrayset_free(ref);
    return rc;
}
