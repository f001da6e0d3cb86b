/* Red team (session 5): edited fixtures must not turn a wrong array into a
 * pass.  SPEC §10 rev. 2: c and zero_scale come from the reference side, so
 * the reference side's manifest is what an edit would target. */
#include "util.h"

#include <string.h>

/* Copies fixture NAME to DIR/SUB and runs a python snippet with `d` = that copy. */
static void tamper(const char *dir, const char *sub, const char *name, const char *py)
{
    char out[8192];
    cr_assert_eq(tu_sh(out, sizeof out,
                       "cp -r fixtures/%s %s/%s && %s -c \"import json,numpy as np;d='%s/%s';"
                       "mp=d+'/manifest.json';m=json.load(open(mp));%s;json.dump(m,open(mp,'w'))\" 2>&1",
                       name, dir, sub, OCN_PYTHON, dir, sub, py),
                 0, "%s", out);
}

/* A zero_scale is only ever written for an all-zero X* (a zero by
 * cancellation, docs/decisions.md); beside a non-zero X* it made err =
 * ‖x‖/zero_scale, so 1e300 passed any array.  Before the fix both commands
 * exited 0 with k_t1_n0 off by 1e-3. */
Test(tamper, zero_scale_beside_a_non_zero_array_is_ignored)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    tamper(dir, "a", "mlp-tanh-ce", "m['arrays']['k_t1_n0']['zero_scale']=1e300");
    tamper(dir, "b", "mlp-tanh-ce", "x=np.load(d+'/k_t1_n0.npy');np.save(d+'/k_t1_n0.npy',x*(1+1e-3))");
    cr_expect_eq(tu_sh(out, sizeof out, "%s compare %s/a %s/b 2>&1", OCN_BIN, dir, dir), 1, "%s", out);
    cr_expect(strstr(out, "k_t1_n0") && strstr(out, "FAILED"), "%s", out);
    /* the same edit beside a wrong stored array: REPRO fails */
    tamper(dir, "c", "mlp-tanh-ce",
           "m['arrays']['k_t1_n0']['zero_scale']=1e300;x=np.load(d+'/k_t1_n0.npy');np.save(d+'/k_t1_n0.npy',x*(1+1e-3))");
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify %s/c 2>&1", OCN_BIN, dir), 1, "%s", out);
    tu_rm_rf(dir);
}

/* An output deleted from a fixture (array and manifest entry) dropped out of
 * every later verdict: `ocn verify` listed it as "fixture lacks" and exited 0,
 * and `ocn compare`/`ocn check` judge only what the reference side stores.
 * A gain-set array the reference recomputes and a fixture with outputs lacks
 * is now FAILED in REPRO (before: exit 0). */
Test(tamper, verify_fails_a_fixture_missing_a_gain_array)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    tamper(dir, "a", "mlp-tanh-ce", "del m['arrays']['K_t1_n0']");
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify %s/a 2>&1", OCN_BIN, dir), 1, "%s", out);
    cr_expect(strstr(out, "K_t1_n0 (missing)") != NULL, "%s", out);
    tamper(dir, "t", "traj-rho0-kfac", "del m['arrays']['theta_s2_t0_n0']");
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify %s/t 2>&1", OCN_BIN, dir), 1, "%s", out);
    cr_expect(strstr(out, "theta_s2_t0_n0 (missing)") != NULL, "%s", out);
    /* a non-gain output (Qthth) may be left out, as before: noted, not FAILED */
    tamper(dir, "q", "mlp-tanh-ce", "del m['arrays']['Qthth_t1_n0']");
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify %s/q 2>&1", OCN_BIN, dir), 0, "%s", out);
    tu_rm_rf(dir);
}
