/* The reference reproduces ../shared/golden (an independent autograd
 * implementation of the SPEC) within §10, array by array. */
#include "util.h"

#include <string.h>
#include <unistd.h>

static void verify_golden(const char *name)
{
    char dir[512];
    snprintf(dir, sizeof dir, "../shared/golden/%s", name);
    if (access(dir, F_OK)) cr_skip_test("%s not found (shared/ must sit beside the checkout)", dir);
    ocn_error e = {0};
    ocn_fixture *f = NULL;
    cr_assert_eq(ocn_fixture_read(dir, &f, &e), OCN_OK, "%s", e.msg);
    ocn_report *rep = ocn_report_new();
    cr_assert_eq(ocn_verify_fixture(f, NULL, rep, &e), OCN_OK, "%s", e.msg);
    cr_assert_gt(rep->count, 20, "every stored output array is compared");
    for (int i = 0; i < rep->count; i++)
        cr_expect_neq(rep->rows[i].verdict, OCN_FAILED, "%s %s: err %g ratio %g", name, rep->rows[i].quantity,
                      rep->rows[i].err, rep->rows[i].ratio);
    ocn_report_free(rep);
    ocn_fixture_free(f);
}

Test(golden, resblock_relu_ce) { verify_golden("resblock-relu-ce"); }
Test(golden, mlp_tanh_ce_kfac) { verify_golden("mlp-tanh-ce-kfac"); }
Test(golden, lqr_bias_mse) { verify_golden("lqr-bias-mse"); }
Test(golden, mlp_sigmoid_full_exact) { verify_golden("mlp-sigmoid-full-exact"); }
Test(golden, coop_block_gr_exact) { verify_golden("coop-block-gr-exact"); }

/* The golden arrays really constrain the reference: a wrong kernel fails REPRO. */
Test(golden, wrong_kernel_fails_repro)
{
    static const char *const gold[] = {"lqr-bias-mse", "coop-block-gr-exact", "mlp-sigmoid-full-exact",
                                       "resblock-relu-ce", "mlp-tanh-ce-kfac"};
    for (int fault = 1; fault < OCN_FAULT_COUNT; fault++) {
        /* the first golden fixture the fault changes (Puv-drop: GR only; second-order-drop:
         * full dynamics); bp-grad-perturb changes no fixture array (theorems only) */
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        char dir[128];
        for (size_t k = 0; !f && k < sizeof gold / sizeof *gold; k++) {
            snprintf(dir, sizeof dir, "../shared/golden/%s", gold[k]);
            if (access(dir, F_OK)) cr_skip_test("%s not found", dir);
            cr_assert_eq(ocn_fixture_read(dir, &f, &e), OCN_OK, "%s", e.msg);
            if (!ocn_fault_applies(f->game, (ocn_fault)fault, NULL, 0)) ocn_fixture_free(f), f = NULL;
        }
        if (!f) {
            cr_expect(fault == OCN_FAULT_BP_GRAD || fault == OCN_FAULT_PERSAMPLE_B,
                      "fault %s applies to no golden fixture", ocn_fault_name((ocn_fault)fault));
            continue;
        }
        ocn_report *rep = ocn_report_new();
        ocn_ref_opts o = {.fault = (ocn_fault)fault};
        cr_assert_eq(ocn_verify_fixture(f, &o, rep, &e), OCN_OK);
        cr_expect_gt(ocn_report_failures(rep), 0, "fault %s not caught by the golden arrays", ocn_fault_name((ocn_fault)fault));
        ocn_report_free(rep);
        ocn_fixture_free(f);
    }
}

/* Shipped fixtures are not stale: the reference reproduces them. */
Test(golden, shipped_fixtures_reproduce)
{
    int nf;
    const char *const *fx = tu_fixtures(&nf);
    for (int i = 0; i < nf; i++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        cr_assert_eq(ocn_fixture_read(fx[i], &f, &e), OCN_OK, "%s", e.msg);
        ocn_report *rep = ocn_report_new();
        cr_assert_eq(ocn_verify_fixture(f, NULL, rep, &e), OCN_OK, "%s", e.msg);
        cr_expect_eq(ocn_report_failures(rep), 0, "%s is stale: run make fixtures", fx[i]);
        ocn_report_free(rep);
        ocn_fixture_free(f);
    }
}

/* docs/SPEC.md is a copy of the binding ../shared/SPEC.md and must not drift. */
Test(docs, spec_copy_in_sync)
{
    if (access("../shared/SPEC.md", F_OK)) cr_skip_test("../shared/SPEC.md not found");
    char out[256];
    cr_expect_eq(tu_sh(out, sizeof out, "cmp -s ../shared/SPEC.md docs/SPEC.md"), 0,
                 "docs/SPEC.md differs from ../shared/SPEC.md: copy it again");
}
