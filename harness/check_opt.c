/* `ocn check`: the optimized implementation against the reference side of a
 * fixture (its stored arrays and measured c, §10 rev. 2), every array the
 * optimized path defines for the mode (OCN_REQUIRE_OPTIMIZED): one it fails
 * to write is FAILED.  Ratios use the precision of the optimized run. */
#include "ocn/harness.h"
#include "ocn/optimized.h"

#include <stdio.h>
#include <string.h>

int ocn_check_fixture(const ocn_fixture *f, const char *backend, int precision, ocn_report *rep, ocn_error *err)
{
    const ocn_game *g = f->game;
    char id[24];
    snprintf(id, sizeof id, "%s/f%d", backend, precision);
    const char *why = ocn_opt_unsupported(g, &g->opt);
    if (why) { /* reported, never a pass */
        ocn_report_skip(rep, id, g->name, why);
        return OCN_OK;
    }
    ocn_arrayset *ref = NULL, *opt = ocn_arrayset_new();
    ocn_opt_config cfg = {.backend = backend, .precision = precision, .form_limit = 1 << 20}; /* c comes from the reference side (§10) */
    int rc = opt ? ocn_reference_side(f, &ref, err) : ocn_fail(err, OCN_ENOMEM, "out of memory");
    /* §13: a trajectory fixture is recomputed as a trajectory (its last step depends on the state) */
    if (!rc)
        rc = ocn_game_is_trajectory(g) ? ocn_opt_run_trajectory(g, &g->opt, f->arrays, &cfg, opt, err)
                                       : ocn_opt_run(g, &g->opt, f->arrays, &cfg, opt, err);
    if (!rc) {
        ocn_compare_spec s = {id, g->name, OCN_REQUIRE_OPTIMIZED, precision == 32 ? OCN_U32 : OCN_U64,
                              "optimized only"};
        ocn_compare_sets(rep, &s, ref, opt);
    } else
        ocn_error_prefix(err, "%s", f->dir);
    ocn_arrayset_free(ref), ocn_arrayset_free(opt);
    return rc;
}
