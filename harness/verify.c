/* `ocn verify`: recompute a fixture with the reference from its stored inputs
 * and compare every stored output array (§10 rev. 2: X* = the stored array, c
 * its stored measured sensitivity).  This is the golden-fixture test and the
 * staleness check of the shipped fixtures: it passes on any machine, while
 * `cmp` of the bytes would not (OpenBLAS picks other kernels elsewhere). */
#include "ocn/harness.h"

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
    } else
        ocn_error_prefix(err, "%s", f->dir);
    ocn_arrayset_free(got), ocn_arrayset_free(ref);
    return rc;
}
