/* SPEC §13 trajectories: the reference's carried state, the fixture format
 * (kind, derived Δ_s with their c), and check TRAJ — each verdict shown to
 * fail on a wrong trajectory (a perturbed step, a missing 1 − ρ, a refresh
 * off by one, a wrong exported state). */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static ocn_fixture *load(const char *name)
{
    char dir[256];
    snprintf(dir, sizeof dir, "fixtures/%s", name);
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(dir, &f, &e), OCN_OK, "%s", e.msg);
    return f;
}

static int rows(const ocn_report *r, const char *id, ocn_verdict v, const char *quantity_has)
{
    int n = 0;
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->rows[i].id, id) && r->rows[i].verdict == v &&
            (!quantity_has || strstr(r->rows[i].quantity, quantity_has)))
            n++;
    return n;
}

static ocn_report *theorems(const ocn_fixture *f, ocn_fault fault)
{
    ocn_report *r = ocn_report_new();
    ocn_error e = {0};
    ocn_ref_opts o = {.fault = fault};
    cr_assert_eq(ocn_theorems_fixture(f, &o, r, &e), OCN_OK, "%s", e.msg);
    return r;
}

/* the reference trajectory run with `fault`, compared with the stored one as `ocn compare` would */
static int failures_with_fault(const char *name, ocn_fault fault)
{
    ocn_fixture *f = load(name);
    ocn_arrayset *got = ocn_arrayset_new();
    ocn_error e = {0};
    ocn_ref_opts o = {.fault = fault};
    cr_assert_eq(ocn_recompute_fixture(f, &o, got, &e), OCN_OK, "%s", e.msg);
    ocn_report *r = ocn_report_new();
    ocn_compare_spec s = {"COMPARE", name, OCN_REQUIRE_ALL, OCN_U64, NULL};
    ocn_compare_sets(r, &s, f->arrays, got);
    int n = ocn_report_failures(r);
    cr_expect_gt(ocn_report_compared(r), 0);
    ocn_report_free(r);
    ocn_arrayset_free(got);
    ocn_fixture_free(f);
    return n;
}

static const char *const TRAJ_FIXTURES[] = {"traj-fne-kfac-stream", "traj-fne-rmsprop", "traj-gr-coopkfac", "traj-rho0-kfac"};

Test(trajectory, shipped_fixtures_reproduce_bit_for_bit)
{
    for (int i = 0; i < 4; i++) {
        ocn_fixture *f = load(TRAJ_FIXTURES[i]);
        cr_expect(f->trajectory, "%s: kind", TRAJ_FIXTURES[i]);
        ocn_report *r = ocn_report_new();
        ocn_error e = {0};
        cr_assert_eq(ocn_verify_fixture(f, NULL, r, &e), OCN_OK, "%s", e.msg);
        cr_expect_eq(ocn_report_failures(r), 0, "%s", TRAJ_FIXTURES[i]);
        for (int k = 0; k < r->count; k++) /* same code, same order: deterministic to the bit */
            cr_expect_eq(r->rows[k].err, 0.0, "%s %s: %g", TRAJ_FIXTURES[i], r->rows[k].quantity, r->rows[k].err);
        cr_expect_gt(rows(r, "REPRO", OCN_OK_V, "dtheta_s"), 0, "%s: the steps Δ_s are compared", TRAJ_FIXTURES[i]);
        ocn_report_free(r);
        ocn_fixture_free(f);
    }
}

Test(trajectory, manifest_has_derived_steps_with_c)
{
    ocn_fixture *f = load("traj-fne-kfac-stream");
    for (int s = 0; s < 7; s++) {
        char nm[64];
        snprintf(nm, sizeof nm, "dtheta_s%d_t1_n0", s);
        const ocn_array *d = ocn_arrayset_find(f->arrays, nm);
        cr_assert_not_null(d, "%s formed on reading", nm);
        cr_expect_gt(d->cond, 0, "%s: c from the manifest's derived table", nm);
    }
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "A_t0_n0"));
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "G_t2_n0"));
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "x0_s6"));
    cr_expect_null(ocn_arrayset_find(f->arrays, "x0_s7"));
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "theta_s7_t0_n0"));
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "loss_s6"));
    /* the last step's batch is the stream's last */
    cr_expect_eq(memcmp(ocn_arrayset_find(f->arrays, "x0")->data, ocn_arrayset_find(f->arrays, "x0_s6")->data,
                        ocn_arrayset_find(f->arrays, "x0")->size * sizeof(double)), 0);
    ocn_fixture_free(f);
    char out[4096];
    cr_expect_eq(tu_sh(out, sizeof out, "grep -c dtheta_s0_t0_n0.npy fixtures/traj-fne-kfac-stream/manifest.json"), 1,
                 "Δ_s are not files: %s", out);
    f = load("traj-gr-coopkfac"); /* coop-kfac: the joint state of the two-player stage, per player elsewhere */
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "A_t0"));
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "G_t0"));
    cr_expect_null(ocn_arrayset_find(f->arrays, "A_t0_n0"));
    cr_expect_not_null(ocn_arrayset_find(f->arrays, "A_t1_n0"));
    ocn_fixture_free(f);
}

Test(trajectory, stream_draws_after_the_step_batch)
{
    ocn_fixture *f = load("traj-fne-kfac-stream");
    ocn_arrayset *in = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_init_inputs(f->game, in, &e), OCN_OK, "%s", e.msg);
    /* s = 0 is the §12 batch; later steps differ from it and from each other */
    const ocn_array *x0 = ocn_arrayset_find(in, "x0"), *s0 = ocn_arrayset_find(in, "x0_s0"), *s1 = ocn_arrayset_find(in, "x0_s1");
    cr_assert(x0 && s0 && s1);
    cr_expect_eq(memcmp(x0->data, s0->data, x0->size * sizeof(double)), 0);
    cr_expect_neq(memcmp(s0->data, s1->data, x0->size * sizeof(double)), 0);
    /* and the stored batches are those draws */
    cr_expect_eq(memcmp(s1->data, ocn_arrayset_find(f->arrays, "x0_s1")->data, x0->size * sizeof(double)), 0);
    ocn_arrayset_free(in);
    ocn_fixture_free(f);
}

Test(trajectory, rho0_every_step_equals_its_one_step_computation)
{
    ocn_fixture *f = load("traj-rho0-kfac");
    ocn_report *r = theorems(f, OCN_FAULT_NONE);
    cr_expect_eq(rows(r, "TRAJ", OCN_FAILED, NULL), 0);
    cr_expect_eq(rows(r, "TRAJ", OCN_OK_V, "one step from theta_s"), 3 * 2, "every step's Δ of both players");
    cr_expect_gt(rows(r, "TRAJ", OCN_OK_V, "(last step = one step)"), 10);
    for (int i = 0; i < r->count; i++) /* same code: to the bit */
        if (!strcmp(r->rows[i].id, "TRAJ")) cr_expect_eq(r->rows[i].err, 0.0, "%s", r->rows[i].quantity);
    ocn_report_free(r);
    /* ... and fails when the one-step computation is wrong */
    r = theorems(f, OCN_FAULT_k_PERTURB);
    cr_expect_gt(rows(r, "TRAJ", OCN_FAILED, "one step from theta_s"), 0);
    ocn_report_free(r);
    ocn_fixture_free(f);
}

/* "a fixture with one Δ_s perturbed": θ_2 moved by a relative 1e-9 changes
 * Δ_1 and Δ_2; TRAJ (ρ = 0) recomputes step 2 from θ_2 and compares */
Test(trajectory, perturbed_step_caught)
{
    ocn_fixture *f = load("traj-rho0-kfac");
    ocn_array *th = ocn_arrayset_find(f->arrays, "theta_s2_t0_n0");
    cr_assert_not_null(th);
    for (size_t j = 0; j < th->size; j++) th->data[j] *= 1 + 1e-9;
    ocn_error e = {0};
    cr_assert_eq(ocn_traj_add_derived(f->game, f->arrays, &e), OCN_OK);
    ocn_report *r = theorems(f, OCN_FAULT_NONE);
    cr_expect_gt(rows(r, "TRAJ", OCN_FAILED, "dtheta_s2_t0_n0"), 0);
    ocn_report_free(r);
    r = ocn_report_new();
    cr_assert_eq(ocn_verify_fixture(f, NULL, r, &e), OCN_OK, "%s", e.msg);
    cr_expect_gt(rows(r, "REPRO", OCN_FAILED, "dtheta_s1_t0_n0"), 0);
    cr_expect_gt(rows(r, "REPRO", OCN_FAILED, "dtheta_s2_t0_n0"), 0);
    ocn_report_free(r);
    ocn_fixture_free(f);
}

Test(trajectory, missing_one_minus_rho_caught)
{
    cr_expect_gt(failures_with_fault("traj-fne-kfac-stream", OCN_FAULT_DECAY_DROP), 0);
    cr_expect_gt(failures_with_fault("traj-fne-rmsprop", OCN_FAULT_DECAY_DROP), 0);
    cr_expect_gt(failures_with_fault("traj-gr-coopkfac", OCN_FAULT_DECAY_DROP), 0);
    /* with ρ = 0 the fault changes nothing: the comparison is not just noisy */
    cr_expect_eq(failures_with_fault("traj-rho0-kfac", OCN_FAULT_DECAY_DROP), 0);
}

Test(trajectory, refresh_off_by_one_caught)
{
    cr_expect_gt(failures_with_fault("traj-fne-kfac-stream", OCN_FAULT_REFRESH_SHIFT), 0);
    cr_expect_gt(failures_with_fault("traj-gr-coopkfac", OCN_FAULT_REFRESH_SHIFT), 0);
    /* rmsprop is always current (§13), T_r = 1 refreshes every step */
    cr_expect_eq(failures_with_fault("traj-fne-rmsprop", OCN_FAULT_REFRESH_SHIFT), 0);
    cr_expect_eq(failures_with_fault("traj-rho0-kfac", OCN_FAULT_REFRESH_SHIFT), 0);
}

/* TRAJ's state rows: the last k from the exported averages, exact where the
 * last step refreshed (kfac s = 6 ≡ 0 mod 3) and for rmsprop; a wrong
 * exported state (or a gain that did not use it) fails */
Test(trajectory, exported_state_checked)
{
    const char *names[2] = {"traj-fne-kfac-stream", "traj-fne-rmsprop"};
    const char *state[2] = {"G_t1_n0", "v_t1_n0"};
    for (int i = 0; i < 2; i++) {
        ocn_fixture *f = load(names[i]);
        ocn_report *r = theorems(f, OCN_FAULT_NONE);
        cr_expect_eq(rows(r, "TRAJ", OCN_FAILED, NULL), 0, "%s", names[i]);
        cr_expect_gt(rows(r, "TRAJ", OCN_OK_V, "k_t1_n0"), 0, "%s", names[i]);
        cr_expect_gt(rows(r, "TRAJ", OCN_OK_V, "loss_s"), 0, "%s", names[i]);
        ocn_report_free(r);
        ocn_array *a = ocn_arrayset_find(f->arrays, state[i]);
        cr_assert_not_null(a);
        for (size_t j = 0; j < a->size; j++) a->data[j] *= 1 + 1e-7;
        r = theorems(f, OCN_FAULT_NONE);
        cr_expect_gt(rows(r, "TRAJ", OCN_FAILED, "k_t1_n0"), 0, "%s: wrong %s not caught", names[i], state[i]);
        ocn_report_free(r);
        ocn_fixture_free(f);
    }
    /* the coop fixture's last step used the inverse of s = 2: measured rows, never a pass */
    ocn_fixture *f = load("traj-gr-coopkfac");
    ocn_report *r = theorems(f, OCN_FAULT_NONE);
    cr_expect_eq(rows(r, "TRAJ", OCN_MEASURED, "stale inverse"), 3);
    cr_expect_eq(rows(r, "TRAJ", OCN_FAILED, NULL), 0);
    ocn_report_free(r);
    ocn_fixture_free(f);
}

Test(trajectory, loss_checked)
{
    ocn_fixture *f = load("traj-gr-coopkfac");
    ocn_array *l = ocn_arrayset_find(f->arrays, "loss_s2");
    cr_assert_not_null(l);
    l->data[0] *= 1 + 1e-9;
    ocn_report *r = theorems(f, OCN_FAULT_NONE);
    cr_expect_eq(rows(r, "TRAJ", OCN_FAILED, "loss_s2"), 1);
    ocn_report_free(r);
    ocn_fixture_free(f);
}

/* ocn check: the optimized trajectory against the stored one, every step's Δ_s
 * and the exported state among the compared arrays */
Test(trajectory, optimized_check_compares_every_step)
{
    for (int i = 0; i < 4; i++) {
        ocn_fixture *f = load(TRAJ_FIXTURES[i]);
        for (int prec = 32; prec <= 64; prec += 32) {
            ocn_report *r = ocn_report_new();
            ocn_error e = {0};
            char id[24];
            snprintf(id, sizeof id, "cpu/f%d", prec);
            cr_assert_eq(ocn_check_fixture(f, "cpu", prec, r, &e), OCN_OK, "%s", e.msg);
            cr_expect_eq(ocn_report_failures(r), 0, "%s %s", TRAJ_FIXTURES[i], id);
            cr_expect_eq(r->skipped, 0, "%s %s", TRAJ_FIXTURES[i], id);
            int steps = 0;
            for (int k = 0; k < r->count; k++) steps += !strncmp(r->rows[k].quantity, "dtheta_s", 8);
            cr_expect_gt(steps, 0, "%s %s: Δ_s compared", TRAJ_FIXTURES[i], id);
            cr_expect_gt(rows(r, id, OCN_OK_V, "loss_s"), 0, "%s %s", TRAJ_FIXTURES[i], id);
            ocn_report_free(r);
        }
        ocn_fixture_free(f);
    }
}

Test(trajectory, kind_must_match_the_game)
{
    char dir[256], out[4096];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(out, sizeof out, "cp -r fixtures/traj-fne-rmsprop %s/f && sed -i 's/\"kind\": \"trajectory\"/\"kind\": \"step\"/' "
                       "%s/f/manifest.json", dir, dir), 0, "%s", out);
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    char path[300];
    snprintf(path, sizeof path, "%s/f", dir);
    cr_expect_eq(ocn_fixture_read(path, &f, &e), OCN_EINVAL);
    cr_expect(strstr(e.msg, "trajectory") != NULL, "%s", e.msg);
    ocn_fixture_free(f);
    tu_rm_rf(dir);
}

Test(trajectory, gen_writes_and_refuses)
{
    char dir[256], out[8192];
    tu_tmpdir(dir, sizeof dir);
    cr_expect_eq(tu_sh(out, sizeof out, "%s gen games/traj-rho0-kfac.json -o %s/r && %s verify %s/r", OCN_BIN, dir, OCN_BIN, dir),
                 0, "%s", out);
    /* the optimized producer has no trajectories: refused, exit 2, nothing written */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s gen games/traj-rho0-kfac.json -o %s/o --backend cpu", OCN_BIN, dir);
    char o2[300];
    snprintf(o2, sizeof o2, "%s/o", dir);
    tu_expect_exit2(cmd, "trajectory", o2);
    tu_rm_rf(dir);
}
