#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glob.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Every shipped fixture directory (those holding a manifest.json), sorted. */
const char *const *tu_fixtures(int *n)
{
    static glob_t gl; /* read-only after the first call in this test process */
    static char *dirs[256];
    static int count = -1;
    if (count < 0) {
        count = 0;
        if (glob("fixtures/*/manifest.json", 0, NULL, &gl) == 0)
            for (size_t i = 0; i < gl.gl_pathc && count < 256; i++) {
                dirs[count] = strdup(gl.gl_pathv[i]);
                *strrchr(dirs[count], '/') = 0;
                count++;
            }
        globfree(&gl);
    }
    cr_assert_gt(count, 0, "no fixtures found (run the tests from the repository root)");
    *n = count;
    return (const char *const *)dirs;
}

const char *TU_RESBLOCK =
    "{\"name\": \"rb\", \"seed\": 7, \"batch\": 3, \"input_dim\": 4,"
    " \"loss\": {\"kind\": \"ce\", \"classes\": 3}, \"weight_decay\": 1e-3,"
    " \"stages\": ["
    "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 4, \"act\": \"tanh\"}],"
    "   \"carries\": [{\"from\": \"z\", \"to\": \"r\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 4, \"act\": \"sigmoid\"}],"
    "   \"carries\": [{\"from\": \"r\", \"to\": \"z\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"relu\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"bias\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"tanh\"}]}"
    " ],"
    " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"dynamics\": \"gn\", \"value\": \"blockdiag\","
    "   \"lr\": 1.0, \"damping\": 0.0, \"eps\": 1e-8, \"zero\": []}}";

void tu_tmpdir(char *out, size_t n)
{
    snprintf(out, n, "/tmp/ocn-test-XXXXXX");
    cr_assert(mkdtemp(out) != NULL, "mkdtemp failed");
}

void tu_rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

int tu_sh(char *out, size_t n, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen failed: %s", cmd);
    size_t got = 0;
    if (out && n) {
        out[0] = 0;
        size_t k;
        while (got + 1 < n && (k = fread(out + got, 1, n - 1 - got, p)) > 0) got += k;
        out[got] = 0;
    }
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

ocn_game *tu_game(const char *json)
{
    ocn_error e = {0};
    ocn_game *g = NULL;
    int rc = ocn_game_load_string(json, "test", &g, &e);
    cr_assert_eq(rc, OCN_OK, "game failed to load: %s", e.msg);
    return g;
}

ocn_report *tu_theorems(const char *const *dirs, int n, ocn_fault fault)
{
    ocn_report *rep = ocn_report_new();
    ocn_ref_opts o = {.fault = fault};
    for (int i = 0; i < n; i++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        cr_assert_eq(ocn_fixture_read(dirs[i], &f, &e), OCN_OK, "%s", e.msg);
        cr_assert_eq(ocn_theorems_fixture(f, &o, rep, &e), OCN_OK, "%s", e.msg);
        ocn_fixture_free(f);
    }
    return rep;
}

void tu_expect_exit2(const char *cmd, const char *want, const char *not_written)
{
    char out[8192];
    struct stat st;
    int rc = tu_sh(out, sizeof out, "%s 2>&1", cmd);
    cr_expect_eq(rc, 2, "'%s' exited %d: %s", cmd, rc, out);
    cr_expect(strstr(out, want) != NULL, "'%s': message '%s' does not name '%s'", cmd, out, want);
    cr_expect(strchr(out, '\n') == out + strlen(out) - 1, "exactly one line: '%s'", out);
    if (not_written) cr_expect(stat(not_written, &st) != 0, "%s must not be written", not_written);
}

int tu_check_all(const char *backend)
{
    int n, skipped = 0, ran = 0;
    const char *const *d = tu_fixtures(&n);
    for (int prec = 32; prec <= 64; prec += 32) {
        ocn_report *r = ocn_report_new();
        for (int i = 0; i < n; i++) {
            ocn_error e = {0};
            ocn_fixture *f = NULL;
            cr_assert_eq(ocn_fixture_read(d[i], &f, &e), OCN_OK, "%s", e.msg);
            cr_assert_eq(ocn_check_fixture(f, backend, prec, r, &e), OCN_OK, "%s", e.msg);
            ocn_fixture_free(f);
        }
        for (int i = 0; i < r->count; i++)
            cr_expect_neq(r->rows[i].verdict, OCN_FAILED, "%s f%d %s %s: err %g ratio %g", backend, prec, r->rows[i].fixture,
                          r->rows[i].quantity, r->rows[i].err, r->rows[i].ratio);
        ran += ocn_report_compared(r);
        skipped += r->skipped;
        ocn_report_free(r);
    }
    cr_expect_lt(skipped, 2 * n / 3, "most fixtures are in the optimized path's modes");
    return ran;
}
