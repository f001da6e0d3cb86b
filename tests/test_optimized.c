/* The optimized CPU backend against the dense reference (`ocn check`), its
 * refusals, and fixtures written by it (`ocn gen --backend cpu`). */
#include "util.h"
#include "ocn/optimized.h"

#include <string.h>

Test(optimized, matches_reference_on_every_fixture_f64_and_f32, .timeout = 600)
{
    cr_expect_gt(tu_check_all("cpu"), 500, "the comparison covers many arrays");
}

Test(optimized, refuses_what_it_cannot_compute)
{
    static const struct { const char *fixture, *want; } cases[] = {
        {"fixtures/lqr-bias-mse", "'augmented' is reference-only"},
        {"fixtures/mlp-sigmoid-full-exact", "'augmented' is reference-only"},
        {"fixtures/coop-block-singular-gr", "needs weight_decay + damping > 0"},
        {"fixtures/coop-identity-coopkfac-undamped-gr", "coop-kfac needs damping > 0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        cr_assert_eq(ocn_fixture_read(cases[k].fixture, &f, &e), OCN_OK);
        ocn_arrayset *out = ocn_arrayset_new();
        ocn_opt_config cfg = {.backend = "cpu", .precision = 64};
        cr_expect_eq(ocn_opt_run(f->game, &f->game->opt, f->arrays, &cfg, out, &e), OCN_EUNSUPPORTED);
        cr_expect(strstr(e.msg, cases[k].want) != NULL, "%s: %s", cases[k].fixture, e.msg);
        cr_expect_eq(out->count, 0, "nothing computed on refusal");
        ocn_arrayset_free(out);
        /* full dynamics is refused too, with its own message */
        ocn_optimizer o = f->game->opt;
        o.value = OCN_VALUE_BLOCKDIAG, o.dynamics = OCN_DYN_FULL;
        cr_expect(strstr(ocn_opt_unsupported(f->game, &o), "'full'") != NULL);
        ocn_fixture_free(f);
    }
    ocn_error e = {0};
    ocn_fixture *f = NULL;
    cr_assert_eq(ocn_fixture_read("fixtures/mlp-tanh-ce", &f, &e), OCN_OK);
    ocn_arrayset *out = ocn_arrayset_new();
    ocn_opt_config cfg = {.backend = "tpu", .precision = 64};
    cr_expect_eq(ocn_opt_run(f->game, &f->game->opt, f->arrays, &cfg, out, &e), OCN_EUNSUPPORTED);
    cr_expect(strstr(e.msg, "backend 'tpu'") != NULL, "%s", e.msg);
    ocn_arrayset_free(out);
    ocn_fixture_free(f);
}

Test(optimized, gen_backend_cpu_and_compare)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(out, sizeof out, "%s gen games/coop-block-gr.json -o %s/opt --backend cpu 2>&1", OCN_BIN, dir), 0, "%s", out);
    /* the optimized path writes the gains, not every expansion: all outputs are required by default */
    cr_assert_eq(tu_sh(out, sizeof out, "%s compare fixtures/coop-block-gr %s/opt 2>&1", OCN_BIN, dir), 1, "%s", out);
    cr_assert(strstr(out, "Pthth_t0 (missing)") != NULL, "a missing required array is FAILED: %s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s compare --require gains fixtures/coop-block-gr %s/opt 2>&1", OCN_BIN, dir),
                 0, "%s", out);
    cr_assert(strstr(out, " 0 failed") != NULL, "%s", out);
    cr_assert(strstr(out, "reference only, not required") != NULL, "arrays one side lacks are named: %s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "grep -c '\"backend\": \"cpu\"' %s/opt/manifest.json", dir), 0);
    /* a wrong array on one side fails the comparison */
    cr_assert_eq(tu_sh(NULL, 0, "cp fixtures/coop-block-fne/k_t0_n0.npy %s/opt/k_t0_n0.npy", dir), 0);
    cr_assert_eq(tu_sh(out, sizeof out, "%s compare --require gains fixtures/coop-block-gr %s/opt 2>&1", OCN_BIN, dir),
                 1, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s compare fixtures/coop-block-gr fixtures/mlp-tanh-ce 2>&1", OCN_BIN), 2,
                 "different games are not compared: %s", out);
    tu_rm_rf(dir);
}

/* cfg.lean (a training step): exactly the theta_new_* arrays of the full run, bit for bit, and nothing else */
Test(optimized, lean_step_hands_back_only_theta_new)
{
    const char *fx[] = {"fixtures/mlp-relu-mse-kfac", "fixtures/coop-w12-coopkfac-gr", "fixtures/resblock-relu-ce"};
    for (size_t k = 0; k < sizeof fx / sizeof *fx; k++)
        for (int prec = 32; prec <= 64; prec += 32) {
            ocn_error e = {0};
            ocn_fixture *f = NULL;
            cr_assert_eq(ocn_fixture_read(fx[k], &f, &e), OCN_OK, "%s", e.msg);
            ocn_opt_config full = {.backend = "cpu", .precision = prec}, lean = full;
            lean.lean = 1;
            ocn_arrayset *a = ocn_arrayset_new(), *b = ocn_arrayset_new();
            int ra = ocn_opt_run(f->game, &f->game->opt, f->arrays, &full, a, &e);
            if (ra == OCN_EUNSUPPORTED) goto next;
            cr_assert_eq(ra, OCN_OK, "%s", e.msg);
            cr_assert_eq(ocn_opt_run(f->game, &f->game->opt, f->arrays, &lean, b, &e), OCN_OK, "%s", e.msg);
            int nt = 0;
            for (int i = 0; i < a->count; i++) {
                if (strncmp(a->a[i].name, "theta_new_", 10)) continue;
                const ocn_array *y = ocn_arrayset_find(b, a->a[i].name);
                cr_assert(y && !memcmp(y->data, a->a[i].data, y->size * sizeof(double)), "%s: '%s'", fx[k], a->a[i].name);
                nt++;
            }
            cr_expect_gt(nt, 0);
            cr_expect_eq(b->count, nt, "%s: only theta_new_* in a lean step", fx[k]);
        next:
            ocn_arrayset_free(a), ocn_arrayset_free(b);
            ocn_fixture_free(f);
        }
}
