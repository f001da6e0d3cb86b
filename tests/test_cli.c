/* The command-line tool as a user meets it: exit statuses, one-line errors
 * that name the file, nothing written on bad input, deterministic fixtures. */
#include "util.h"
#include "ocn/npy.h"

#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copies a shipped fixture into dir/name. */
static void copy_fixture(const char *src, const char *dir, const char *name)
{
    cr_assert_eq(tu_sh(NULL, 0, "cp -r %s %s/%s", src, dir, name), 0);
}

Test(cli, theorems_exit_status_and_json)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    int rc = tu_sh(out, sizeof out, "%s theorems fixtures/outer-sgd-e1 --json %s/r.json 2>&1", OCN_BIN, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, " passed, 0 failed\n") != NULL, "closing line missing: %s", out);
    char path[512];
    snprintf(path, sizeof path, "%s/r.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "--json wrote invalid JSON");
    cr_assert_gt(json_array_size(json_object_get(j, "rows")), 10);
    cr_assert_eq(json_integer_value(json_object_get(j, "failed")), 0);
    json_decref(j);
    rc = tu_sh(out, sizeof out, "%s theorems --fault K-sign fixtures/outer-sgd-e1 2>&1", OCN_BIN);
    cr_assert_eq(rc, 1, "a failing check must exit 1: %s", out);
    cr_assert(strstr(out, "FAILED") != NULL);
    tu_rm_rf(dir);
}

Test(cli, gen_is_atomic_deterministic_and_reproducible)
{
    char dir[256], out[8192];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(out, sizeof out, "%s gen games/mlp-tanh-ce.json -o %s/a 2>&1", OCN_BIN, dir), 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s gen games/mlp-tanh-ce.json -o %s/b 2>&1", OCN_BIN, dir), 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "cd %s && for f in a/*.npy; do cmp $f b/${f#a/} || exit 1; done", dir), 0,
                 "the same game must give byte-identical arrays");
    cr_assert_eq(tu_sh(out, sizeof out, "cmp %s/a/manifest.json %s/b/manifest.json", dir, dir), 0, "manifests identical");
    cr_assert_eq(tu_sh(out, sizeof out, "%s gen games/mlp-tanh-ce.json -o %s/a 2>&1", OCN_BIN, dir), 2,
                 "an existing fixture is not replaced without --force");
    cr_assert(strstr(out, "already exists") != NULL, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s gen games/mlp-tanh-ce.json -o %s/a --force 2>&1", OCN_BIN, dir), 0);
    cr_assert_eq(tu_sh(out, sizeof out, "mkdir %s/notfix && %s gen games/mlp-tanh-ce.json -o %s/notfix --force 2>&1", dir,
                       OCN_BIN, dir), 2, "a non-fixture directory is never replaced");
    cr_assert_eq(tu_sh(out, sizeof out, "%s verify %s/a 2>&1", OCN_BIN, dir), 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "ls %s | grep tmp", dir), 1, "no temporary directories left: %s", out);
    tu_rm_rf(dir);
}

Test(cli, bad_input_is_one_line_exit_2_nothing_written)
{
    char dir[256], cmd[4096], p[1024], q[2048];
    tu_tmpdir(dir, sizeof dir);
    /* malformed game */
    snprintf(p, sizeof p, "%s/bad.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"name\": \"x\", \"seed\": 1, \"batch\": 2, \"input_dim\": 3, \"loss\": {\"kind\": \"mse\"},"
          " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}]}],"
          " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\"}}",
          f);
    fclose(f);
    snprintf(q, sizeof q, "%s/out", dir);
    snprintf(cmd, sizeof cmd, "%s gen %s -o %s", OCN_BIN, p, q);
    tu_expect_exit2(cmd, "bad.json: stage 0 player 0: out_dim missing", q);
    /* NaN in an input array */
    copy_fixture("fixtures/mlp-tanh-ce", dir, "nan");
    snprintf(p, sizeof p, "%s/nan", dir);
    ocn_fixture *fx = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(p, &fx, &e), OCN_OK);
    ocn_array *x0 = ocn_arrayset_find(fx->arrays, "x0");
    x0->data[3] = NAN;
    snprintf(q, sizeof q, "%s/x0.npy", p);
    cr_assert_eq(ocn_npy_write(q, x0, &e), OCN_OK);
    ocn_fixture_free(fx);
    snprintf(q, sizeof q, "%s/r.json", dir);
    snprintf(cmd, sizeof cmd, "%s theorems %s --json %s", OCN_BIN, p, q);
    tu_expect_exit2(cmd, "nan/x0.npy: input array 'x0' contains NaN or Inf", q);
    /* truncated .npy */
    copy_fixture("fixtures/mlp-tanh-ce", dir, "trunc");
    cr_assert_eq(tu_sh(NULL, 0, "truncate -s 200 %s/trunc/k_t0_n0.npy", dir), 0);
    snprintf(cmd, sizeof cmd, "%s verify %s/trunc", OCN_BIN, dir);
    tu_expect_exit2(cmd, "trunc/k_t0_n0.npy: truncated .npy data", NULL);
    /* dtype disagreeing with the manifest */
    copy_fixture("fixtures/mlp-tanh-ce", dir, "dtype");
    cr_assert_eq(tu_sh(NULL, 0, "sed -i '0,/\"<f8\"/s//\"<f4\"/' %s/dtype/manifest.json", dir), 0);
    snprintf(cmd, sizeof cmd, "%s verify %s/dtype", OCN_BIN, dir);
    tu_expect_exit2(cmd, "but the manifest says <f4", NULL);
    /* wrong shape for the game */
    copy_fixture("fixtures/mlp-tanh-ce", dir, "shape");
    cr_assert_eq(tu_sh(NULL, 0, "cp %s/shape/theta_t1_n0.npy %s/shape/theta_t0_n0.npy && "
                                "sed -i 's/\"theta_t0_n0.npy\"/\"theta_t0_n0.npy\"/' %s/shape/manifest.json",
                       dir, dir, dir), 0);
    snprintf(cmd, sizeof cmd, "%s verify %s/shape", OCN_BIN, dir);
    tu_expect_exit2(cmd, "theta_t0_n0.npy: shape does not match", NULL);
    /* not a fixture at all */
    snprintf(cmd, sizeof cmd, "%s theorems %s/nothing", OCN_BIN, dir);
    tu_expect_exit2(cmd, "nothing: not a fixture directory", NULL);
    char out[4096];
    cr_assert_eq(tu_sh(out, sizeof out, "%s frobnicate 2>&1", OCN_BIN), 2, "unknown command: usage, exit 2");
    cr_assert(strstr(out, "usage:") != NULL);
    tu_rm_rf(dir);
}
