/* Issue 10 (docs/decisions.md "Softmax derivatives", "Activation
 * derivatives"): where the softmax saturates (p_y ≈ 1) its Hessian
 * diag(p) − ppᵀ and gradient p − e_y were formed as differences with 1 and
 * kept one or two digits (the reference, the numpy port), while the optimized
 * path's factor form kept all of them: K 0.22 off with c = 8
 * (game-3853ee88a23a85b1).  The reference must now give p₀p₁ to rounding —
 * checked against the closed form computed here from the stored logits. */
#include "util.h"

#include <float.h>
#include <math.h>

Test(saturation, ce_hessian_keeps_its_digits_at_p_near_1)
{
    char dir[256], out[4096];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(out, sizeof out,
                       "/usr/bin/python3 -c \"import json,sys;json.dump(json.load(open("
                       "'tests/fuzz/regress-games/game-3853ee88a23a85b1.json'))['game'],sys.stdout)\" > %s/g.json"
                       " && %s gen %s/g.json -o %s/f",
                       dir, OCN_BIN, dir, dir),
                 0, "%s", out);
    char fx[300];
    snprintf(fx, sizeof fx, "%s/f", dir);
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(fx, &f, &e), OCN_OK, "%s", e.msg);
    const ocn_array *x = ocn_arrayset_find(f->arrays, "x_t4"), *H = ocn_arrayset_find(f->arrays, "Vxx_t4_n0"),
                    *g = ocn_arrayset_find(f->arrays, "Vx_t4_n0");
    cr_assert(x && H && g && x->size == 2 && H->size == 4);
    /* two classes: p₁ = 1/(1 + e^{x₀−x₁}) (tiny, accurate), p₀ = 1 − p₁ */
    double p1 = 1.0 / (1.0 + exp(x->data[0] - x->data[1])), p0 = 1.0 / (1.0 + exp(x->data[1] - x->data[0]));
    cr_assert(p1 < 1e-12, "the game saturates the softmax (p1 = %g)", p1);
    double want = p0 * p1;
    for (int k = 0; k < 4; k++) {
        double w = (k == 0 || k == 3) ? want : -want;
        cr_expect(fabs(H->data[k] - w) <= 4 * DBL_EPSILON * fabs(w), "Vxx_t4[%d] = %.17g, p0 p1 = %.17g", k, H->data[k], w);
    }
    /* the label is class 1: ∇φ = p − e₁ = [p₀, −(1 − p₁)] */
    cr_expect(fabs(g->data[0] - p0) <= 4 * DBL_EPSILON && fabs(g->data[1] + (1 - p1)) <= 4 * DBL_EPSILON,
              "Vx_t4 = [%.17g, %.17g], p = [%.17g, %.17g]", g->data[0], g->data[1], p0, p1);
    ocn_fixture_free(f);
    tu_rm_rf(dir);
}
