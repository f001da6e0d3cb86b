/* Red team (session 6, helper red3): the §13 TRAJ check of `ocn theorems`
 * judges the fixture's exported optimizer state (harness/check_traj.c
 * state_rows).  `--fault decay-drop / refresh-shift` never reach it (they act
 * on the reference trajectory, which TRAJ does not recompute; `ocn verify`'s
 * REPRO catches them), so these tests show each state row can FAIL: the
 * exported average edited by a relative 1e-6 must be FAILED, the untouched
 * fixture must pass.  Before traj-gr-coopkfac-refreshed was added no shipped
 * fixture had an exact coop-kfac joint-state row (traj-gr-coopkfac's last step
 * uses a stale inverse: measured rows only), and a wrong G_t0 exited 0. */
#include "util.h"

#include <string.h>

/* Copies fixture NAME to DIR/NAME, scales ARRAY by (1 + 1e-6) unless ARRAY
 * is NULL, runs `ocn theorems` on the copy; returns its exit status. */
static int theorems_edited(const char *dir, const char *name, const char *array, char *out, size_t n)
{
    char sh[1024];
    if (array)
        snprintf(sh, sizeof sh,
                 "rm -rf %s/%s && cp -r fixtures/%s %s/ && %s -c \"import numpy as np;p='%s/%s/%s.npy';"
                 "np.save(p,np.load(p)*(1+1e-6))\" && ",
                 dir, name, name, dir, OCN_PYTHON, dir, name, array);
    else snprintf(sh, sizeof sh, "rm -rf %s/%s && cp -r fixtures/%s %s/ && ", dir, name, name, dir);
    return tu_sh(out, n, "%s%s theorems %s/%s 2>&1", sh, OCN_BIN, dir, name);
}

static void expect_traj_fails(const char *name, const char *array, const char *row)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    cr_expect_eq(theorems_edited(dir, name, NULL, out, sizeof out), 0, "%s untouched: %s", name, out);
    cr_expect_eq(theorems_edited(dir, name, array, out, sizeof out), 1, "%s with %s x (1+1e-6) passed: %s", name, array,
                 out);
    cr_expect(strstr(out, "TRAJ") && strstr(out, "FAILED") && strstr(out, row), "%s: no FAILED TRAJ row %s: %s", name,
              row, out);
    tu_rm_rf(dir);
}

Test(red3_traj, rmsprop_state_v_edited_fails, .timeout = 300)
{
    expect_traj_fails("traj-fne-rmsprop", "v_t0_n0", "k_t0_n0");
}

Test(red3_traj, kfac_state_A_edited_fails, .timeout = 300)
{
    expect_traj_fails("traj-fne-kfac-stream", "A_t1_n0", "k_t1_n0");
}

Test(red3_traj, coopkfac_joint_state_G_edited_fails, .timeout = 300)
{
    expect_traj_fails("traj-gr-coopkfac-refreshed", "G_t0", "A_t0, G_t0");
}

/* Exit-status honesty (§10): a selection whose rows are all `measured` (sizes,
 * never a verdict) judged nothing.  Before: `ocn theorems fixtures/mlp-tanh-ce
 * --filter BATCH` printed "0 passed, 0 failed" and exited 0. */
Test(red3_exit, only_measured_rows_is_no_pass, .timeout = 300)
{
    char out[65536];
    cr_expect_eq(tu_sh(out, sizeof out, "%s theorems fixtures/mlp-tanh-ce --filter BATCH 2>&1", OCN_BIN), 1, "%s", out);
    cr_expect(strstr(out, "nothing was compared") != NULL, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s theorems fixtures/mlp-tanh-ce --filter BATCH --allow-skip 2>&1", OCN_BIN), 0,
                 "%s", out);
    /* a check with verdict rows still passes */
    cr_expect_eq(tu_sh(out, sizeof out, "%s theorems fixtures/mlp-tanh-ce --filter GRAD 2>&1", OCN_BIN), 0, "%s", out);
}
