/* `ocn theorems` over the shipped fixtures: every applicable check passes,
 * the right checks apply, and (mutation tests) every deliberately wrong
 * kernel is caught — SPEC §10: a harness that cannot fail is worthless. */
#include "util.h"

#include <string.h>

static ocn_report *tu_theorems_all(ocn_fault f)
{
    int n;
    const char *const *d = tu_fixtures(&n);
    return tu_theorems(d, n, f);
}

static int count_rows(const ocn_report *r, const char *id, const char *fixture, ocn_verdict v, int any_verdict)
{
    int n = 0;
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->rows[i].id, id) && (!fixture || !strcmp(r->rows[i].fixture, fixture)) &&
            (any_verdict || r->rows[i].verdict == v))
            n++;
    return n;
}

Test(theorems, shipped_fixtures_pass, .timeout = 120)
{
    ocn_report *r = tu_theorems_all( OCN_FAULT_NONE);
    for (int i = 0; i < r->count; i++)
        cr_expect_neq(r->rows[i].verdict, OCN_FAILED, "%s %s %s: err %g ratio %g", r->rows[i].id, r->rows[i].fixture,
                      r->rows[i].quantity, r->rows[i].err, r->rows[i].ratio);
    static const char *const ids[] = {"GRAD", "T6b", "T6-base", "P2", "P3", "LQR", "BATCH", "E1", "T6c",
                                      "T6a-local", "T6a-separable", "T6a-coupled", "E2", "SCHUR", "KFAC-T3",
                                      "E3", "C7", "E4", "GT-P2", "E5"};
    for (size_t k = 0; k < sizeof ids / sizeof *ids; k++)
        cr_expect_gt(count_rows(r, ids[k], NULL, 0, 1), 0, "check %s never ran", ids[k]);
    ocn_report_free(r);
}

Test(theorems, checks_apply_only_where_they_hold)
{
    ocn_report *r = tu_theorems_all( OCN_FAULT_NONE);
    cr_expect_eq(count_rows(r, "LQR", "mlp-tanh-ce", 0, 1), 0, "LQR needs bias-only players");
    cr_expect_eq(count_rows(r, "P3", "mlp-tanh-ce", 0, 1), 0, "P3 needs terminal outer");
    cr_expect_gt(count_rows(r, "P3", "outer-sgd-e1", OCN_OK_V, 0), 0);
    cr_expect_gt(count_rows(r, "LQR", "lqr-bias-mse", OCN_OK_V, 0), 0);
    ocn_report_free(r);
}

/* E1: on the sgd + outer fixture s/B > 1, so S = 1 − s/B < 0 (no square root). */
Test(theorems, e1_sign_flip_is_shown)
{
    const char *d[] = {"fixtures/outer-sgd-e1"};
    ocn_report *r = tu_theorems(d, 1, OCN_FAULT_NONE);
    int seen = 0;
    for (int i = 0; i < r->count; i++) {
        if (!strcmp(r->rows[i].quantity, "E1 max s/B lane 0")) {
            cr_expect_gt(r->rows[i].err, 1.0);
            seen++;
        }
        if (!strcmp(r->rows[i].quantity, "E1 min S lane 0")) {
            cr_expect_lt(r->rows[i].err, 0.0);
            seen++;
        }
    }
    cr_expect_eq(seen, 2);
    ocn_report_free(r);
}

static void expect_caught(ocn_fault f, const char *by)
{
    ocn_report *r = tu_theorems_all( f);
    cr_expect_gt(ocn_report_failures(r), 0, "fault %s not caught", ocn_fault_name(f));
    cr_expect_gt(count_rows(r, by, NULL, OCN_FAILED, 0), 0, "fault %s should be caught by %s", ocn_fault_name(f), by);
    ocn_report_free(r);
}

Test(mutation, K_sign_flip_caught) { expect_caught(OCN_FAULT_K_SIGN, "P3"); }
Test(mutation, feedback_dropped_caught) { expect_caught(OCN_FAULT_FEEDBACK_DROP, "LQR"); }
Test(mutation, K_perturbed_1e6_caught) { expect_caught(OCN_FAULT_K_PERTURB, "P3"); }
Test(mutation, k_perturbed_1e6_caught) { expect_caught(OCN_FAULT_k_PERTURB, "T6b"); }
Test(mutation, Puv_dropped_caught) { expect_caught(OCN_FAULT_PUV_DROP, "SCHUR"); }
Test(mutation, K_sign_flip_caught_by_gr_checks) { expect_caught(OCN_FAULT_K_SIGN, "T6a-local"); }

/* SCHUR is exact on invertible stages and measured (not passed) on a singular one. */
Test(theorems, schur_exact_and_singular_cases)
{
    ocn_report *r = tu_theorems_all(OCN_FAULT_NONE);
    cr_expect_gt(count_rows(r, "SCHUR", "coop-block-gr", OCN_OK_V, 0), 0);
    cr_expect_gt(count_rows(r, "SCHUR", "coop-block-singular-gr", OCN_MEASURED, 0), 0);
    cr_expect_eq(count_rows(r, "SCHUR", "coop-block-singular-gr", OCN_OK_V, 0), 0, "a singular case is not a pass");
    cr_expect_gt(count_rows(r, "C7", "coop-identity-gr", OCN_OK_V, 0), 0);
    cr_expect_eq(count_rows(r, "C7", "coop-identity-coopkfac-undamped-gr", 0, 1), 0, "Cor. 7 needs gamma > 0");
    cr_expect_gt(count_rows(r, "T6a-separable", "separable-2lane-gr", OCN_OK_V, 0), 0);
    ocn_report_free(r);
}

/* A Schur form with the wrong sign (DGNOpt eq. 15, E3) is far outside the
 * KFAC-T3 tolerance on every two-player stage: the check tells the signs apart. */
Test(mutation, wrong_sign_closed_form_is_detectable)
{
    ocn_report *r = tu_theorems_all(OCN_FAULT_NONE);
    int seen = 0;
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->rows[i].id, "E3")) {
            seen++;
            cr_expect_gt(r->rows[i].err / (OCN_U64 * 1e6), 10 * OCN_THRESHOLD, "%s %s: eq.15 variant only %g away",
                         r->rows[i].fixture, r->rows[i].quantity, r->rows[i].err);
        }
    cr_expect_gt(seen, 0);
    ocn_report_free(r);
}
