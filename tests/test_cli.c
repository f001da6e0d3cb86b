/* The command-line tool as a user meets it: exit statuses, one-line errors
 * that name the file, nothing written on bad input, deterministic fixtures. */
#include "util.h"
#include "ocn/npy.h"
#include "ocn/version.h"

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
    cr_assert_eq(tu_sh(out, sizeof out, "%s frobnicate 2>&1", OCN_BIN), 2, "unknown command: one line, exit 2");
    cr_assert(strstr(out, "unknown command 'frobnicate' (ocn --help lists them)") != NULL, "%s", out);
    tu_rm_rf(dir);
}

/* ---- issue 15: CLI conventions ------------------------------------------ */

Test(cli, help_and_version_exit_0_to_stdout)
{
    char out[16384];
    cr_assert_eq(tu_sh(out, sizeof out, "%s --help 2>/dev/null", OCN_BIN), 0);
    cr_assert(strstr(out, "usage: ocn gen") && strstr(out, "exit status:"), "%s", out);
    static const char *const every[] = {"gen", "verify", "theorems", "check", "compare", "normalise", "detect", "train"};
    for (size_t i = 0; i < sizeof every / sizeof *every; i++) { /* every command in the overview */
        char want[32];
        snprintf(want, sizeof want, "ocn %s ", every[i]);
        cr_assert(strstr(out, want) != NULL, "ocn --help does not list '%s': %s", every[i], out);
    }
    cr_assert_eq(tu_sh(out, sizeof out, "%s --help 2>&1 >/dev/null", OCN_BIN), 0);
    cr_assert_eq(out[0], 0, "--help wrote to stderr: %s", out);
    static const char *const cmds[] = {"gen", "verify", "theorems", "check", "compare", "detect", "normalise"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        cr_assert_eq(tu_sh(out, sizeof out, "%s %s --help 2>/dev/null", OCN_BIN, cmds[i]), 0, "%s --help", cmds[i]);
        char want[64];
        snprintf(want, sizeof want, "usage: ocn %s ", cmds[i]);
        cr_assert(strncmp(out, want, strlen(want)) == 0, "ocn %s --help: %s", cmds[i], out);
        cr_assert(strstr(out, "exit status:") != NULL);
        for (size_t j = 0; j < sizeof cmds / sizeof *cmds; j++) { /* only its own synopsis */
            snprintf(want, sizeof want, "ocn %s ", cmds[j]);
            cr_assert(i == j || strstr(out, want) == NULL, "ocn %s --help shows %s: %s", cmds[i], cmds[j], out);
        }
    }
    cr_assert_eq(tu_sh(out, sizeof out, "%s verify --help", OCN_BIN), 0);
    cr_assert(strstr(out, "--filter PATTERN") && strstr(out, "Puv-drop"), "report options listed: %s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s --version 2>/dev/null", OCN_BIN), 0);
    char want[64];
    snprintf(want, sizeof want, "ocn %s (commit ", OCN_VERSION);
    cr_assert(strncmp(out, want, strlen(want)) == 0, "%s", out);
    cr_assert_str_eq(ocn_version(), OCN_VERSION);
    /* errors go to stderr, exit 2, stdout stays empty */
    cr_assert_eq(tu_sh(out, sizeof out, "%s frobnicate 2>/dev/null", OCN_BIN), 2);
    cr_assert_eq(out[0], 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s frobnicate 2>&1", OCN_BIN), 2);
    cr_assert(strstr(out, "unknown command 'frobnicate'") != NULL, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s verify --no-such-option 2>/dev/null", OCN_BIN), 2);
    cr_assert_eq(out[0], 0, "%s", out);
}

/* Each fault name once in --help, from the table the parser uses, and in the
 * README's list; a name the parser rejects is not listed. */
Test(cli, every_fault_listed_once_from_the_table)
{
    char out[16384], readme[65536];
    cr_assert_eq(tu_sh(out, sizeof out, "%s --help", OCN_BIN), 0);
    cr_assert_eq(tu_sh(readme, sizeof readme, "cat README.md"), 0);
    for (int f = 1; f < OCN_FAULT_COUNT; f++) {
        const char *name = ocn_fault_name((ocn_fault)f);
        ocn_fault back;
        cr_assert_eq(ocn_fault_parse(name, &back), 0);
        cr_assert_eq(back, f);
        char word[40];
        snprintf(word, sizeof word, " %s ", name);
        const char *hit = strstr(out, word);
        cr_assert_not_null(hit, "--help does not list fault %s", name);
        cr_assert_null(strstr(hit + 1, word), "--help lists fault %s twice", name);
        snprintf(word, sizeof word, "`%s`", name);
        cr_assert_not_null(strstr(readme, word), "README.md does not list fault %s", name);
    }
    ocn_fault none;
    cr_assert_neq(ocn_fault_parse("K-flip", &none), 0);
}

Test(cli, fault_that_does_not_apply_says_so)
{
    char out[16384];
    /* Puv-drop on an FNE fixture: a SKIP row with the reason, never a silent pass */
    int rc = tu_sh(out, sizeof out, "%s verify --fault Puv-drop fixtures/mlp-tanh-ce 2>&1", OCN_BIN);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "--fault Puv-drop does not apply: an FNE game") && strstr(out, "1 skipped"), "%s", out);
    /* ... and on a GR exact-curvature fixture with two players it applies and is caught */
    rc = tu_sh(out, sizeof out, "%s verify --fault Puv-drop fixtures/coop-block-gr 2>&1", OCN_BIN);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "FAILED") && !strstr(out, "does not apply"), "%s", out);
    /* feedback-drop on a one-stage game: dx_0 = 0 */
    ocn_game *g = tu_game("{\"name\": \"one\", \"seed\": 1, \"batch\": 2, \"input_dim\": 2, \"loss\": {\"kind\": \"mse\"},"
                          " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\","
                          " \"out_dim\": 2, \"act\": \"tanh\"}]}], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\"}}");
    char why[160];
    cr_assert_eq(ocn_fault_applies(g, OCN_FAULT_FEEDBACK_DROP, why, sizeof why), 0);
    cr_assert(strstr(why, "one stage") != NULL, "%s", why);
    cr_assert_eq(ocn_fault_applies(g, OCN_FAULT_K_SIGN, why, sizeof why), 1);
    cr_assert_eq(ocn_fault_applies(g, OCN_FAULT_PUV_DROP, why, sizeof why), 0);
    ocn_game_free(g);
}

Test(cli, filter_selects_fixtures_and_check_ids)
{
    char out[65536];
    int rc = tu_sh(out, sizeof out, "%s theorems --verbose --filter T6b fixtures/mlp-tanh-ce fixtures/inception-gr 2>&1",
                   OCN_BIN);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "T6b ") && !strstr(out, "GRAD") && !strstr(out, "inception-gr"), "%s", out);
    rc = tu_sh(out, sizeof out, "%s verify --filter 'mlp-*' fixtures/mlp-tanh-ce fixtures/inception-gr 2>&1", OCN_BIN);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "mlp-tanh-ce") && !strstr(out, "inception-gr"), "%s", out);
    rc = tu_sh(out, sizeof out, "%s theorems --filter '*-gr/SCHUR' fixtures/mlp-tanh-ce fixtures/inception-gr 2>&1",
               OCN_BIN);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "SCHUR") && strstr(out, "inception-gr") && !strstr(out, "mlp-tanh-ce"), "%s", out);
    rc = tu_sh(out, sizeof out, "%s verify --filter 'nothing-*' fixtures/mlp-tanh-ce 2>&1", OCN_BIN);
    cr_assert_eq(rc, 1, "a filter that selects nothing is no pass: %s", out);
    cr_assert(strstr(out, "--filter 'nothing-*' selected no fixture or check") != NULL, "%s", out);
}

Test(cli, shape_mismatch_prints_both_shapes)
{
    char dir[256], out[16384];
    tu_tmpdir(dir, sizeof dir);
    copy_fixture("fixtures/mlp-tanh-ce", dir, "b");
    char path[512];
    snprintf(path, sizeof path, "%s/b/k_t2_n0.npy", dir);
    ocn_arrayset *s = ocn_arrayset_new();
    size_t shape[1] = {22};
    ocn_array *a = ocn_arrayset_add(s, "k_t2_n0", 1, shape);
    cr_assert_not_null(a);
    ocn_error e = {0};
    cr_assert_eq(ocn_npy_write(path, a, &e), 0, "%s", ocn_error_message(&e));
    ocn_arrayset_free(s);
    snprintf(path, sizeof path, "%s/b/manifest.json", dir); /* the manifest says so too: a readable fixture */
    json_error_t je;
    json_t *m = json_load_file(path, 0, &je);
    cr_assert_not_null(m);
    json_array_set_new(json_object_get(json_object_get(json_object_get(m, "arrays"), "k_t2_n0"), "shape"), 0,
                       json_integer(22));
    cr_assert_eq(json_dump_file(m, path, JSON_INDENT(1)), 0);
    json_decref(m);
    int rc = tu_sh(out, sizeof out, "%s compare fixtures/mlp-tanh-ce %s/b 2>&1", OCN_BIN, dir);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "k_t2_n0 (shape differs)") && strstr(out, "shape (22,), reference (21,)"), "%s", out);
    tu_rm_rf(dir);
}

/* `make deps` as a user who is not root: prints the apt-get line, runs nothing. */
Test(cli, make_deps_never_escalates_on_its_own)
{
    char out[8192];
    if (tu_sh(NULL, 0, "command -v setpriv >/dev/null && [ \"$(id -u)\" = 0 ]")) cr_skip_test("needs root and setpriv");
    int rc = tu_sh(out, sizeof out,
                   "setpriv --reuid=65534 --regid=65534 --clear-groups make -s --no-print-directory deps "
                   "DEB_PKGS=ocn-no-such-package NVCC= 2>&1");
    cr_assert_neq(rc, 0, "%s", out);
    cr_assert(strstr(out, "apt-get install -y ocn-no-such-package") && strstr(out, "SUDO=sudo"), "%s", out);
    cr_assert(strstr(out, "installing") == NULL, "%s", out);
}

/* Issue 10: `ocn gen` reports progress (run, step, stage, elapsed, estimate; 17 runs:
 * the nominal one, 8 §10 runs and 8 at float32)
 * on a terminal only; OCN_PROGRESS_AFTER=0 shows it at once (the default
 * waits 2 s).  `script` gives the command a pseudo-terminal. */
Test(cli, gen_progress_on_a_terminal_only)
{
    char dir[256], out[16384];
    if (tu_sh(NULL, 0, "command -v script >/dev/null 2>&1")) cr_skip_test("script(1) not installed (bsdutils)");
    tu_tmpdir(dir, sizeof dir);
    int rc = tu_sh(out, sizeof out,
                   "OCN_PROGRESS_AFTER=0 script -qec '%s gen games/traj-fne-kfac-stream.json -o %s/a' /dev/null", OCN_BIN,
                   dir);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "ocn gen: run 1/17 (nominal), step 1/7, stage 0/3") && strstr(out, "s elapsed"), "%s", out);
    rc = tu_sh(out, sizeof out, "OCN_PROGRESS_AFTER=0 %s gen games/traj-fne-kfac-stream.json -o %s/b 2>&1", OCN_BIN, dir);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "elapsed") == NULL, "no progress without a terminal: %s", out);
    cr_expect_eq(tu_sh(NULL, 0, "cmp -s %s/a/manifest.json %s/b/manifest.json", dir, dir), 0, "same fixture either way");
    tu_rm_rf(dir);
}
