/* Issue 10, SPEC §10 amendments (docs/decisions.md "c measured at the
 * precision compared" and "x̂ and θ_new perturbed as formed"):
 *  - float32 comparisons use cond_f32, measured with u₃₂-sized perturbation
 *    runs, because the first-order c of u₆₄ runs does not extrapolate where a
 *    decision flips within float32's resolution;
 *  - the §10 runs perturb the update pass's x̂ and θ_new as formed, so c of
 *    δx = x̂ − x sees the cancellation of a small update against its state.
 * Every rule here must be able to fail. */
#include "util.h"
#include "ocn/optimized.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

/* `k_t0_n0` = sign(a − b)·[1, 2, 3] with a − b = 1e-10: no u₆₄ run can flip
 * it, u₃₂ runs do.  `Vx_t0_n0` = a + b: smooth, the same c at both scales. */
static int producer(void *ctx, ocn_perturb *p, ocn_arrayset *out, ocn_error *err)
{
    (void)ctx;
    double a = 1.0 + 1e-10, b = 1.0;
    ocn_perturb_vec(p, &a, 1);
    ocn_perturb_vec(p, &b, 1);
    ocn_array *k = ocn_arrayset_add2(out, "k_t0_n0", 1, 3, 0, 0);
    if (!k) return ocn_fail(err, OCN_ENOMEM, "oom");
    for (int i = 0; i < 3; i++) k->data[i] = (a > b ? 1.0 : -1.0) * (i + 1);
    ocn_array *v = ocn_arrayset_add2(out, "Vx_t0_n0", 1, 3, 0, 0);
    if (!v) return ocn_fail(err, OCN_ENOMEM, "oom");
    for (int i = 0; i < 3; i++) v->data[i] = (a + b) * (i + 1);
    return OCN_OK;
}

static const char *GAME =
    "{\"name\": \"c32\", \"seed\": 11, \"batch\": 1, \"input_dim\": 3, \"loss\": {\"kind\": \"mse\"},"
    " \"outputs\": [\"z\"], \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"bias\", \"in\": \"z\","
    " \"out\": \"z\", \"out_dim\": 3, \"act\": \"identity\"}]}],"
    " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\", \"dynamics\": \"gn\", \"lr\": 1.0}}";

static ocn_arrayset *measured(const ocn_game *g)
{
    ocn_arrayset *nom = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(producer(NULL, NULL, nom, &e), OCN_OK);
    cr_assert_eq(ocn_measure_sensitivity(g, &g->opt, 8, OCN_U64, producer, NULL, nom, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(ocn_measure_sensitivity_f32(g, 8, producer, NULL, nom, &e), OCN_OK, "%s", e.msg);
    return nom;
}

Test(cond_f32, measured_at_float32_sees_a_flip_u64_runs_miss)
{
    ocn_game *g = tu_game(GAME);
    ocn_arrayset *nom = measured(g);
    const ocn_array *k = ocn_arrayset_find(nom, "k_t0_n0"), *v = ocn_arrayset_find(nom, "Vx_t0_n0");
    double d = ocn_tolerance_floor(g, &g->opt);
    cr_expect_eq(k->cond, d, "u64 runs cannot flip the sign: c is the floor (got %g)", k->cond);
    cr_expect_gt(k->cond_f32, 1e6, "u32 runs flip it: cond_f32 %g", k->cond_f32);
    cr_expect_eq(v->cond_f32, v->cond, "a smooth array: the same c (%g vs %g)", v->cond_f32, v->cond);
    cr_expect_geq(ocn_cond_at(k, OCN_U32), ocn_cond_at(k, OCN_U64));
    ocn_arrayset_free(nom);
    ocn_game_free(g);
}

static ocn_verdict verdict(const ocn_arrayset *ref, double u, double flip)
{
    ocn_arrayset *t = ocn_arrayset_copy(ref);
    ocn_array *a = ocn_arrayset_find(t, "k_t0_n0");
    for (size_t i = 0; i < a->size; i++) a->data[i] *= flip;
    ocn_report *r = ocn_report_new();
    ocn_compare_spec sp = {"C32", "c32", OCN_REQUIRE_ALL, u, NULL};
    ocn_compare_sets(r, &sp, ref, t);
    ocn_verdict v = OCN_SKIP;
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->rows[i].quantity, "k_t0_n0")) v = r->rows[i].verdict;
    ocn_report_free(r);
    ocn_arrayset_free(t);
    return v;
}

Test(cond_f32, float32_comparison_uses_it_float64_does_not)
{
    ocn_game *g = tu_game(GAME);
    ocn_arrayset *nom = measured(g);
    /* a float32 port on the other side of the decision: not evidence either way
     * (weak), never a pass; float64 still holds the sign */
    cr_expect_eq(verdict(nom, OCN_U32, -1.0), OCN_WEAK);
    cr_expect_eq(verdict(nom, OCN_U64, -1.0), OCN_FAILED);
    cr_expect_eq(verdict(nom, OCN_U32, 1.0), OCN_WEAK, "weak is never ok");
    /* a fixture without cond_f32 (older writers, ../shared/golden): cond */
    ocn_arrayset_find(nom, "k_t0_n0")->cond_f32 = 0;
    cr_expect_eq(verdict(nom, OCN_U32, -1.0), OCN_FAILED);
    ocn_arrayset_free(nom);
    ocn_game_free(g);
}

/* δx_t = x̂_t − x_t can be a cancellation of two states of size |x| (here a
 * tanh saturated near 1 and a relu after it: ‖x̂_3‖/‖δx_3‖ ≈ 8e4; the game is
 * the differential fuzzer's 0x2d7aa49b964ef0cc, formerly known issue KI-3).
 * Perturbing the inputs moves x and x̂ together and hides it (c was 6); with
 * x̂ perturbed as formed, c must show at least a tenth of ‖x̂‖/‖δx‖. */
Test(cond_f32, dx_c_sees_the_cancellation_of_a_small_update)
{
    ocn_game *g = tu_game(
        "{\"name\": \"fuzz-2d7aa49b964ef0cc\", \"seed\": 80516, \"batch\": 3, \"input_dim\": 1,"
        " \"loss\": {\"kind\": \"ce\", \"classes\": 3}, \"weight_decay\": 0.5, \"outputs\": [\"z\"], \"stages\": ["
        "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 1, \"act\": \"identity\"},"
        " {\"lane\": 1, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 1, \"act\": \"identity\"},"
        " {\"lane\": 2, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 1, \"act\": \"identity\"}]},"
        "{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}]},"
        "{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 1, \"act\": \"relu\"}]},"
        "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"tanh\"}]}],"
        " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\", \"dynamics\": \"gn\", \"value\": \"blockdiag\","
        " \"terminal\": \"exact\", \"lr\": 0.1, \"damping\": 1.0, \"eps\": 0.0}}");
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    ocn_ref_opts o = {.fault = OCN_FAULT_NONE, .measure_runs = 8, .measure_f32 = 1};
    cr_assert_eq(ocn_ref_run(g, &g->opt, in, &o, out, &e), OCN_OK, "%s", e.msg);
    double worst = 0;
    for (int t = 1; t <= g->T; t++) {
        char dn[16], xn[16];
        snprintf(dn, sizeof dn, "dx_t%d", t), snprintf(xn, sizeof xn, "x_t%d", t);
        const ocn_array *dx = ocn_arrayset_find(out, dn), *x = ocn_arrayset_find(out, xn);
        cr_assert(dx && x);
        double nd = 0, nxh = 0;
        for (size_t i = 0; i < dx->size; i++) {
            double xh = x->data[i] + dx->data[i];
            nd += dx->data[i] * dx->data[i], nxh += xh * xh;
        }
        cr_assert_gt(nd, 0, "%s is not zero", dn);
        double amp = sqrt(nxh / nd);
        worst = fmax(worst, amp);
        cr_expect_geq(dx->cond, 0.1 * amp, "%s: c %g does not show the cancellation ‖x̂‖/‖δx‖ = %g", dn, dx->cond, amp);
        cr_expect_geq(dx->cond_f32, dx->cond);
    }
    cr_expect_gt(worst, 1e4, "the test's premise: a cancellation (%g)", worst);
    ocn_arrayset_free(in), ocn_arrayset_free(out);
    ocn_game_free(g);
}

/* The shipped fixtures record cond_f32 ≥ cond for every measured array, and
 * float32 comparisons are plumbed to it: an informative array scaled by
 * 1 + 0.5·30·u₃₂·c₃₂ is ok, by 1 + 2·300·u₃₂·c₃₂ FAILED (as test_trust at f64). */
Test(cond_f32, shipped_fixtures_record_it_and_f32_plumbing_can_fail)
{
    int n, arrays = 0, recorded = 0;
    const char *const *dirs = tu_fixtures(&n);
    for (int d = 0; d < n; d++) {
        ocn_fixture *f = NULL;
        ocn_error e = {0};
        cr_assert_eq(ocn_fixture_read(dirs[d], &f, &e), OCN_OK, "%s", e.msg);
        for (int i = 0; i < f->arrays->count; i++) {
            const ocn_array *a = &f->arrays->a[i];
            if (a->cond <= 0) continue;
            recorded += a->cond_f32 > 0;
            cr_expect(a->cond_f32 >= a->cond, "%s %s: cond_f32 %g < cond %g", dirs[d], a->name, a->cond_f32, a->cond);
            double c = ocn_cond_at(a, OCN_U32), norm = 0;
            if (!ocn_counts_for_detection(a->name) || !ocn_informative(c, OCN_U32)) continue;
            for (size_t j = 0; j < a->size; j++) norm += a->data[j] * a->data[j];
            if (norm == 0) continue;
            for (int above = 0; above < 2; above++) {
                double delta = (above ? 2 * OCN_FAIL_RATIO : 0.5 * OCN_THRESHOLD) * OCN_U32 * c;
                ocn_arrayset *t = ocn_arrayset_copy(f->arrays);
                ocn_array *b = ocn_arrayset_find(t, a->name);
                for (size_t j = 0; j < b->size; j++) b->data[j] *= 1 + delta;
                ocn_report *r = ocn_report_new();
                ocn_compare_spec s = {"PLUMB32", f->game->name, OCN_REQUIRE_ALL, OCN_U32, NULL};
                ocn_compare_sets(r, &s, f->arrays, t);
                ocn_verdict v = OCN_SKIP;
                for (int k = 0; k < r->count; k++)
                    if (!strcmp(r->rows[k].quantity, a->name)) v = r->rows[k].verdict;
                cr_expect_eq(v, above ? OCN_FAILED : OCN_OK_V, "%s %s %s", dirs[d], a->name, above ? "above" : "below");
                ocn_report_free(r);
                ocn_arrayset_free(t);
            }
            arrays++;
        }
        ocn_fixture_free(f);
    }
    cr_expect_gt(recorded, 1000, "only %d arrays carry cond_f32", recorded);
    cr_expect_gt(arrays, 200, "only %d arrays exercised at f32", arrays);
}

/* §10 "never the side under test", at float32 too: a cond_f32 of 1e300 in the
 * tested (float32) fixture's manifest does not make a garbage array pass —
 * the reference side's cond_f32 is the one used. */
Test(cond_f32, cond_f32_from_the_tested_side_is_ignored)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(NULL, 0, "cp -r fixtures/mlp-tanh-ce %s/b", dir), 0);
    cr_assert_eq(tu_sh(out, sizeof out,
                       "%s -c \"import json,numpy as np;p='%s/b/manifest.json';m=json.load(open(p));"
                       "m['producer']['precision']='f32';m['arrays']['K_t0_n0']['cond_f32']=1e300;"
                       "m['arrays']['K_t0_n0']['cond']=1e300;json.dump(m,open(p,'w'));"
                       "a=np.load('%s/b/K_t0_n0.npy');np.save('%s/b/K_t0_n0.npy',np.ones_like(a)*7.0)\" 2>&1",
                       OCN_PYTHON, dir, dir, dir), 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s compare fixtures/mlp-tanh-ce %s/b 2>&1", OCN_BIN, dir), 1, "%s", out);
    cr_expect(strstr(out, "K_t0_n0") && strstr(out, "FAILED"), "%s", out);
    /* and the unmodified copy passes at float32: the comparison ran at u = 2^-24 */
    cr_assert_eq(tu_sh(NULL, 0, "rm -rf %s/b && cp -r fixtures/mlp-tanh-ce %s/b && %s -c \"import json;"
                       "p='%s/b/manifest.json';m=json.load(open(p));m['producer']['precision']='f32';"
                       "json.dump(m,open(p,'w'))\"", dir, dir, OCN_PYTHON, dir), 0);
    cr_expect_eq(tu_sh(out, sizeof out, "%s compare fixtures/mlp-tanh-ce %s/b 2>&1", OCN_BIN, dir), 0, "%s", out);
    tu_rm_rf(dir);
}

/* §10 amendment "terminal terms perturbed as formed": a softmax gradient
 * p − e_y sums to zero exactly; a conv bias gradient Σ_p (p − y)_p σ'_p then
 * cancels 2e4-fold (σ' ≈ 0.25 at every location).  The fuzzer's game
 * 0x7126222dab20ec0e (GR rmsprop, two sigmoid convs): with the terminal
 * unperturbed c(k_t1_n0) was 16 and a correct float32 path failed (ratio 801);
 * now c shows the cancellation and float32 agrees. */
Test(cond_f32, terminal_gradient_cancellation_shows_in_c)
{
    json_error_t je;
    json_t *w = json_load_file("tests/fuzz/regress-games/game-7126222dab20ec0e.json", 0, &je);
    cr_assert_not_null(w, "%s", je.text);
    char *text = json_dumps(json_object_get(w, "game"), JSON_COMPACT);
    ocn_game *g = tu_game(text);
    free(text);
    json_decref(w);
    ocn_arrayset *in = ocn_arrayset_new(), *ref = ocn_arrayset_new(), *out = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    ocn_ref_opts o = {.fault = OCN_FAULT_NONE, .measure_runs = 8, .measure_f32 = 1};
    cr_assert_eq(ocn_ref_run(g, &g->opt, in, &o, ref, &e), OCN_OK, "%s", e.msg);
    const ocn_array *k = ocn_arrayset_find(ref, "k_t1_n0");
    cr_assert_not_null(k);
    cr_expect_gt(k->cond, 1e3, "c(k_t1_n0) = %g does not show the 2e4-fold cancellation", k->cond);
    ocn_opt_config cfg = {.backend = "cpu", .precision = 32, .form_limit = 1 << 20};
    cr_assert_eq(ocn_opt_run(g, &g->opt, in, &cfg, out, &e), OCN_OK, "%s", e.msg);
    ocn_report *r = ocn_report_new();
    ocn_compare_spec sp = {"C32", g->name, OCN_REQUIRE_OPTIMIZED, OCN_U32, NULL};
    cr_expect_gt(ocn_compare_sets(r, &sp, ref, out), 0);
    cr_expect_eq(ocn_report_failures(r), 0, "the float32 path fails against the measured c");
    ocn_report_free(r);
    ocn_arrayset_free(in), ocn_arrayset_free(ref), ocn_arrayset_free(out);
    ocn_game_free(g);
}

/* A producer whose run fails numerically (NaN/Inf) once a perturbation is
 * float32-sized: the float64 runs succeed, the float32 c is ∞ (weak at float32)
 * and the measurement still succeeds — before, the whole reference run failed
 * ("reference refused" while the optimized path computed: fuzz game
 * 0x6248e58f168d4f80). */
static int overflow_producer(void *ctx, ocn_perturb *p, ocn_arrayset *out, ocn_error *err)
{
    (void)ctx;
    double x = 1.0;
    ocn_perturb_vec(p, &x, 1);
    if (fabs(x - 1.0) > 1e-12) return ocn_fail(err, OCN_ENUMERIC, "reference produced NaN/Inf in 'k_t0_n0'");
    ocn_array *k = ocn_arrayset_add2(out, "k_t0_n0", 1, 2, 0, 0);
    if (!k) return ocn_fail(err, OCN_ENOMEM, "oom");
    k->data[0] = x, k->data[1] = 2 * x;
    return OCN_OK;
}

Test(cond_f32, float32_overflow_makes_c32_infinite_not_a_failure)
{
    ocn_game *g = tu_game(GAME);
    ocn_arrayset *nom = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(overflow_producer(NULL, NULL, nom, &e), OCN_OK);
    cr_assert_eq(ocn_measure_sensitivity(g, &g->opt, 8, OCN_U64, overflow_producer, NULL, nom, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(ocn_measure_sensitivity_f32(g, 8, overflow_producer, NULL, nom, &e), OCN_OK, "%s", e.msg);
    const ocn_array *k = ocn_arrayset_find(nom, "k_t0_n0");
    cr_expect(isinf(k->cond_f32), "cond_f32 %g", k->cond_f32);
    cr_expect(isfinite(k->cond), "cond %g", k->cond);
    cr_expect_eq(e.msg[0], 0, "no error left behind: %s", e.msg);
    ocn_arrayset_free(nom);
    ocn_game_free(g);
}
