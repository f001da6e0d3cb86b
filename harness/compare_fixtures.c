/* `ocn compare A B`: two fixtures of the same game, array by array (§10 rev.
 * 2).  A is the reference side: its arrays are X* and its measured c is used
 * (re-measured by the reference when A is v1 or stores none) — never B's,
 * never the larger of the two.  This is how a port proves itself: it writes
 * its outputs as a fixture and compares against ours. */
#include "ocn/harness.h"

#include <math.h>
#include <string.h>

static double unit_roundoff(const ocn_fixture *f) { return !strcmp(f->precision, "f32") ? OCN_U32 : OCN_U64; }

int ocn_compare_fixtures(const ocn_fixture *a, const ocn_fixture *b, ocn_require require, ocn_report *rep,
                         ocn_error *err)
{
    char diff[1100];
    if (!ocn_game_same(a->game, b->game, diff, sizeof diff)) /* §11 v2: normalised forms, by value */
        return ocn_fail(err, OCN_EINVAL, "%s and %s describe different games (first difference: game.%s)", a->dir,
                        b->dir, diff);
    ocn_arrayset *ref = NULL;
    int rc = ocn_reference_side(a, &ref, err);
    if (rc) return rc;
    ocn_compare_spec s = {"COMPARE", a->game->name, require, fmax(unit_roundoff(a), unit_roundoff(b)), "only in B"};
    ocn_compare_sets(rep, &s, ref, b->arrays);
    ocn_arrayset_free(ref);
    return OCN_OK;
}
