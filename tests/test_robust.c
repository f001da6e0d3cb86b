/* Hardening (issue 5): atomic fixture writes under a crash, bitwise
 * determinism, and bad input at the command line — one clear error,
 * exit 2, nothing written. */
#include "util.h"
#include "ocn/npy.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

Test(robust, gen_killed_part_way_leaves_no_fixture)
{
    char dir[256], out[4096], dst[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(dst, sizeof dst, "%s/fx", dir);
    int rc = tu_sh(out, sizeof out, "OCN_FAULT_GEN_AFTER=3 %s gen games/mlp-tanh-ce.json -o %s 2>&1; echo status=$?", OCN_BIN, dst);
    (void)rc;
    cr_assert(strstr(out, "status=137") != NULL, "gen should die by SIGKILL: %s", out);
    cr_assert(!exists(dst), "a killed gen must leave nothing at the destination");
    /* replacing an existing fixture: killed part-way, the old one stays whole */
    cr_assert_eq(tu_sh(out, sizeof out, "%s gen games/mlp-tanh-ce.json -o %s 2>&1", OCN_BIN, dst), 0, "%s", out);
    tu_sh(out, sizeof out, "OCN_FAULT_GEN_AFTER=5 %s gen games/mlp-relu-mse-kfac.json -o %s --force 2>&1; echo status=$?",
          OCN_BIN, dst);
    cr_assert(strstr(out, "status=137") != NULL, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s verify %s 2>&1", OCN_BIN, dst), 0, "old fixture damaged: %s", out);
    cr_assert(strstr(out, "mlp-tanh-ce") != NULL, "the old fixture must still be there");
    tu_rm_rf(dir);
}

Test(robust, reference_is_bitwise_deterministic)
{
    ocn_error e = {0};
    ocn_fixture *f = NULL;
    cr_assert_eq(ocn_fixture_read("fixtures/resproj-align1-gr", &f, &e), OCN_OK, "%s", e.msg);
    ocn_arrayset *a = ocn_arrayset_new(), *b = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_run(f->game, &f->game->opt, f->arrays, NULL, a, &e), OCN_OK);
    cr_assert_eq(ocn_ref_run(f->game, &f->game->opt, f->arrays, NULL, b, &e), OCN_OK);
    cr_assert_eq(a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        const ocn_array *y = ocn_arrayset_find(b, a->a[i].name);
        cr_assert_not_null(y);
        cr_assert(memcmp(a->a[i].data, y->data, a->a[i].size * sizeof(double)) == 0, "%s differs run to run", y->name);
    }
    ocn_arrayset_free(a), ocn_arrayset_free(b);
    ocn_fixture_free(f);
}

/* Writes bytes to path. */
static void put(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Each bad .npy replaces k_t0_n0.npy of a copied fixture. */
Test(robust, bad_npy_files)
{
    static const struct { const char *bytes; size_t n; const char *want; } cases[] = {
        {"", 0, "bad magic"},
        {"\x93NUMPY\x01\x00\x40\x00{'descr'", 17, "truncated .npy header"},
        {"\x93NUMPY\x01\x00\x46\x00{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999,), }\n", 80, "too large"},
        {"\x93NUMPY\x01\x00\x3b\x00{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }\n", 69, "not a non-negative integer"},
        {"\x93NUMPY\x01\x00\x3c\x00{'descr': '>f8', 'fortran_order': False, 'shape': (36,), }\n", 70, "big-endian"},
        {"\x93NUMPY\x01\x00\x3c\x00{'descr': '<i8', 'fortran_order': False, 'shape': (36,), }\n", 70, "not supported"},
    };
    char dir[256], cmd[2048], p[1024], js[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(js, sizeof js, "%s/report.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(tu_sh(NULL, 0, "rm -rf %s/f && cp -r fixtures/mlp-tanh-ce %s/f", dir, dir), 0);
        snprintf(p, sizeof p, "%s/f/k_t0_n0.npy", dir);
        put(p, cases[i].bytes, cases[i].n);
        snprintf(cmd, sizeof cmd, "%s theorems %s/f --json %s", OCN_BIN, dir, js);
        tu_expect_exit2(cmd, cases[i].want, js);
    }
    tu_rm_rf(dir);
}

/* Bad game descriptions for `ocn gen`: nothing is written. */
Test(robust, bad_game_files)
{
    char dir[256], cmd[4096], p[1024], q[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/g.json", dir);
    snprintf(q, sizeof q, "%s/out", dir);
    char deep[5000];
    size_t k = 0;
    for (int i = 0; i < 2100; i++) deep[k++] = '[';
    deep[k] = 0;
    static const struct { const char *text; const char *want; } cases[] = {
        {"", "malformed JSON"},
        {"{\"name\": \"a\", \"name\": \"b\"}", "duplicate object key"},
        {"{\"name\": \"a\", \"seed\": 1, \"batch\": 2, \"input_dim\": 2, \"bogus\": 1}", "unknown field 'bogus'"},
        {"{\"name\": \"a\", \"seed\": 1, \"batch\": 99999999999, \"input_dim\": 2}", "batch = 99999999999 out of range"},
        {NULL, "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *t = cases[i].text ? cases[i].text : deep;
        put(p, t, strlen(t));
        snprintf(cmd, sizeof cmd, "%s gen %s -o %s", OCN_BIN, p, q);
        tu_expect_exit2(cmd, cases[i].want, q);
    }
    tu_rm_rf(dir);
}

/* The numpy port is a real check: a 1e-6 relative change of one stored gain
 * makes it exit 1 (and an intact fixture exit 0). */
Test(robust, port_numpy_catches_a_wrong_array)
{
    char dir[256], out[16384], p[1024];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(NULL, 0, "cp -r fixtures/inception-gr %s/f", dir), 0);
    int rc = tu_sh(out, sizeof out, "%s examples/port_numpy.py %s/f 2>&1", OCN_PYTHON, dir);
    if (rc == 2 && strstr(out, "No module named")) cr_skip_test("numpy is not available to %s", OCN_PYTHON);
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(p, sizeof p, "%s/f", dir);
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(p, &f, &e), OCN_OK, "%s", e.msg);
    ocn_array *k = ocn_arrayset_find(f->arrays, "k_t1_n2");
    cr_assert_not_null(k);
    for (size_t i = 0; i < k->size; i++) k->data[i] *= 1 + 1e-6;
    snprintf(p, sizeof p, "%s/f/k_t1_n2.npy", dir);
    cr_assert_eq(ocn_npy_write(p, k, &e), OCN_OK);
    ocn_fixture_free(f);
    rc = tu_sh(out, sizeof out, "%s examples/port_numpy.py %s/f 2>&1", OCN_PYTHON, dir);
    cr_assert_eq(rc, 1, "a perturbed gain must fail the port: %s", out);
    cr_assert(strstr(out, "k_t1_n2") != NULL && strstr(out, "FAILED") != NULL, "%s", out);
    tu_rm_rf(dir);
}
