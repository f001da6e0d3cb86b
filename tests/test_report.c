/* Reports people read (SPEC §10): the text summary (one line per fixture ×
 * check family, the rows that are not ok, detection power, one-side arrays,
 * the closing line), JSON (schema ocnopt-report v1) and JUnit XML — and the
 * safe writing of both (issue 10: never through a symlink, never over a
 * device, never a temporary file left behind). */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static char *printed(const ocn_report *r, int verbose)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    cr_assert_not_null(m);
    ocn_report_print(r, m, verbose);
    fclose(m);
    return text;
}

/* The last line of text (text ends with a newline). */
static const char *last_line(const char *text, char *buf, size_t n)
{
    size_t len = strlen(text);
    cr_assert(len > 0 && text[len - 1] == '\n', "output must end with a newline");
    size_t s = len - 1;
    while (s > 0 && text[s - 1] != '\n') s--;
    snprintf(buf, n, "%.*s", (int)(len - 1 - s), text + s);
    return buf;
}

/* The line of text that starts with `a` and contains `b` (NULL if none). */
static const char *line_with(const char *text, const char *a, const char *b, char *buf, size_t n)
{
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        snprintf(buf, n, "%.*s", (int)l, p);
        if (!strncmp(buf, a, strlen(a)) && (!b || strstr(buf, b))) return buf;
        if (!e) break;
        p = e + 1;
    }
    return NULL;
}

static int count_str(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Entries of dir other than . and ..; their names joined in `names`. */
static int entries(const char *dir, char *names, size_t n)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
    int k = 0;
    if (names && n) names[0] = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        k++;
        if (names) {
            size_t l = strlen(names);
            snprintf(names + l, n - l, "%s ", e->d_name);
        }
    }
    closedir(d);
    return k;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char b[4096];
    for (size_t k; (k = fread(b, 1, sizeof b, f)) > 0;) fwrite(b, 1, k, m);
    fclose(f), fclose(m);
    return text;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static ocn_fixture_info info(const char *fixture, double power, int weak, int total, int fit)
{
    ocn_fixture_info x;
    memset(&x, 0, sizeof x);
    snprintf(x.fixture, sizeof x.fixture, "%s", fixture);
    x.detection = power, x.weak = weak, x.total = total, x.fit_for_ports = fit;
    return x;
}

/* A report with one of everything: ok, marginal, FAILED (finite and Inf),
 * weak, measured, SKIP, detection power, one-side arrays. */
static ocn_report *sample(void)
{
    ocn_report *r = ocn_report_new();
    cr_assert_not_null(r);
    ocn_report_add(r, "REPRO", "mlp-tanh-ce", "k_t0", 1e-15, 2.5);
    ocn_report_add(r, "REPRO", "mlp-tanh-ce", "K_t0", 2e-15, 3.5);
    ocn_report_add(r, "REPRO", "mlp-tanh-ce", "Vx_t1", 1e-14, 45.0);              /* marginal */
    ocn_report_add(r, "CHECK-cpu-f64", "mlp-tanh-ce", "Wxx_t0", 1e-9, 4.5e5);     /* FAILED */
    ocn_report_add(r, "CHECK-cpu-f64", "mlp-tanh-ce", "theta_new", INFINITY, 0); /* FAILED: Inf */
    ocn_report_add(r, "CHECK-cpu-f64", "mlp-tanh-ce", "dx_t0", 1e-16, 1.0);
    ocn_report_add_c(r, "CHECK-cpu-f64", "coop-block-singular-gr", "K_t1", 1e-12, OCN_U64, 1e13); /* weak */
    ocn_report_add_c(r, "CHECK-cpu-f64", "coop-block-singular-gr", "k_t1", 1e-13, OCN_U64, 1e13); /* weak */
    ocn_report_measured(r, "E1", "outer-sgd-e1", "E1 max s/B lane 0", 1.75);
    ocn_report_skip(r, "CHECK-cpu-f32", "mlp-sigmoid-full-exact", "the optimized path refuses full dynamics");
    ocn_fixture_info a = info("mlp-tanh-ce", 3.2e-10, 0, 24, 1), b = info("coop-block-singular-gr", 0, 14, 24, 0);
    ocn_report_fixture_info(r, &a);
    ocn_report_fixture_info(r, &b);
    ocn_report_fixture_info(r, &a); /* the same fixture at another precision: shown once */
    ocn_report_one_side(r, "coop-block-gr", "Wx_t0", "reference only");
    ocn_report_one_side(r, "coop-block-gr", "Wxx_t0", "reference only");
    ocn_report_one_side(r, "coop-block-gr", "extra_t0", "tested only");
    return r;
}

/* ---- the text report ---------------------------------------------------- */

Test(report, closing_line_without_skipped)
{
    ocn_report *r = ocn_report_new();
    ocn_report_add(r, "REPRO", "fx", "k_t0", 1e-16, 1.0);
    ocn_report_add(r, "REPRO", "fx", "K_t0", 1e-14, 40.0); /* marginal: passed */
    ocn_report_add(r, "REPRO", "fx", "Vx_t0", 1e-10, 1e6); /* FAILED */
    char *t = printed(r, 0), line[256];
    cr_expect_str_eq(last_line(t, line, sizeof line), "2 passed, 1 failed");
    free(t);
    t = printed(r, 1);
    cr_expect_str_eq(last_line(t, line, sizeof line), "2 passed, 1 failed");
    free(t);
    ocn_report_free(r);
}

Test(report, closing_line_with_skipped)
{
    ocn_report *r = ocn_report_new();
    ocn_report_add(r, "REPRO", "fx", "k_t0", 1e-16, 1.0);
    ocn_report_skip(r, "CHECK-cpu-f32", "fy", "refused");
    ocn_report_skip(r, "CHECK-cpu-f64", "fy", "refused");
    char *t = printed(r, 0), line[256];
    cr_expect_str_eq(last_line(t, line, sizeof line), "1 passed, 0 failed, 2 skipped");
    free(t);
    ocn_report_free(r);
}

Test(report, empty_report_still_closes)
{
    ocn_report *r = ocn_report_new();
    char *t = printed(r, 0), line[256];
    cr_expect_str_eq(last_line(t, line, sizeof line), "0 passed, 0 failed");
    free(t);
    ocn_report_free(r);
}

Test(report, weak_rows_are_not_passed)
{
    ocn_report *r = ocn_report_new();
    ocn_report_add_c(r, "REPRO", "fx", "k_t0", 1e-16, OCN_U64, 4); /* ok, informative */
    ocn_report_add_c(r, "REPRO", "fx", "K_t0", 1e-16, OCN_U64, 1e13); /* small ratio, not informative */
    ocn_report_add_c(r, "REPRO", "fx", "K_t1", 1e-13, OCN_U64, 1e13);
    cr_assert_eq(r->rows[1].verdict, OCN_WEAK);
    cr_assert_eq(r->rows[2].verdict, OCN_WEAK);
    cr_expect_eq(ocn_report_passes(r), 1);
    cr_expect_eq(ocn_report_weak(r), 2);
    char *t = printed(r, 0), line[512];
    cr_expect_str_eq(last_line(t, line, sizeof line), "1 passed, 0 failed");
    cr_expect_not_null(strstr(t, "K_t0"), "weak rows are shown:\n%s", t);
    cr_expect_not_null(strstr(t, "K_t1"), "weak rows are shown:\n%s", t);
    cr_expect_null(strstr(t, "k_t0"), "ok rows are hidden:\n%s", t);
    free(t);
    ocn_report_free(r);
}

Test(report, default_output_hides_ok_rows_and_summarises_families)
{
    ocn_report *r = sample();
    char *t = printed(r, 0), line[512];
    /* ok rows and measured rows are folded into their family line */
    cr_expect_null(strstr(t, "k_t0"), "ok row printed:\n%s", t);
    cr_expect_null(strstr(t, "dx_t0"), "ok row printed:\n%s", t);
    cr_expect_null(strstr(t, "E1 max s/B"), "measured row printed by default:\n%s", t);
    /* every row that is not ok is printed, with its verdict */
    cr_expect_not_null(line_with(t, "REPRO", "Vx_t1", line, sizeof line), "marginal row missing:\n%s", t);
    cr_expect_not_null(strstr(line, "marginal"));
    cr_expect_not_null(line_with(t, "CHECK-cpu-f64", "Wxx_t0", line, sizeof line), "FAILED row missing:\n%s", t);
    cr_expect_not_null(strstr(line, "FAILED"));
    cr_expect_not_null(line_with(t, "CHECK-cpu-f64", "theta_new", line, sizeof line));
    cr_expect_not_null(strstr(line, "inf"), "%s", line);
    cr_expect_not_null(line_with(t, "CHECK-cpu-f64", "K_t1", line, sizeof line));
    cr_expect_not_null(strstr(line, "weak"));
    cr_expect_not_null(line_with(t, "CHECK-cpu-f32", "SKIP", line, sizeof line), "SKIP row missing:\n%s", t);
    cr_expect_not_null(strstr(t, "reason: the optimized path refuses full dynamics"), "%s", t);
    /* one line per fixture × family, in first-appearance order, with counts */
    char fam[64], fix[200], worst[32];
    int rows, ok, marg, weak, fail, skip, meas;
    cr_assert_not_null(line_with(t, "REPRO ", "mlp-tanh-ce", line, sizeof line), "family line missing:\n%s", t);
    cr_assert_eq(sscanf(line, "%63s %199s %d %31s %d %d %d %d %d %d", fam, fix, &rows, worst, &ok, &marg, &weak,
                        &fail, &skip, &meas),
                 10, "%s", line);
    cr_expect_eq(rows, 3);
    cr_expect_str_eq(worst, "45");
    cr_expect(ok == 2 && marg == 1 && weak == 0 && fail == 0 && skip == 0 && meas == 0, "%s", line);
    cr_assert_not_null(line_with(t, "CHECK-cpu-f64 ", "mlp-tanh-ce", line, sizeof line));
    cr_assert_eq(sscanf(line, "%63s %199s %d %31s %d %d %d %d %d %d", fam, fix, &rows, worst, &ok, &marg, &weak,
                        &fail, &skip, &meas),
                 10);
    cr_expect_str_eq(worst, "inf");
    cr_expect(rows == 3 && ok == 1 && fail == 2, "%s", line);
    cr_assert_not_null(line_with(t, "CHECK-cpu-f64 ", "coop-block-singular-gr", line, sizeof line));
    cr_assert_eq(sscanf(line, "%63s %199s %d %31s %d %d %d %d %d %d", fam, fix, &rows, worst, &ok, &marg, &weak,
                        &fail, &skip, &meas),
                 10);
    cr_expect(rows == 2 && weak == 2 && ok == 0, "%s", line);
    cr_assert_not_null(line_with(t, "E1 ", "outer-sgd-e1", line, sizeof line));
    cr_assert_eq(sscanf(line, "%63s %199s %d %31s %d %d %d %d %d %d", fam, fix, &rows, worst, &ok, &marg, &weak,
                        &fail, &skip, &meas),
                 10);
    cr_expect(rows == 1 && meas == 1 && !strcmp(worst, "-"), "%s", line);
    cr_assert_not_null(line_with(t, "CHECK-cpu-f32 ", "mlp-sigmoid-full-exact", line, sizeof line));
    cr_assert_eq(sscanf(line, "%63s %199s %d %31s %d %d %d %d %d %d", fam, fix, &rows, worst, &ok, &marg, &weak,
                        &fail, &skip, &meas),
                 10);
    cr_expect(rows == 1 && skip == 1, "%s", line);
    const char *a = strstr(t, "REPRO "), *b = strstr(t, "CHECK-cpu-f64 "), *c = strstr(t, "E1 ");
    cr_expect(a && b && c && a < b && b < c, "families not in first-appearance order:\n%s", t);
    /* detection power, one-side arrays, legend, closing line */
    cr_expect_eq(count_str(t, "detection  mlp-tanh-ce"), 1, "a repeated fixture info is printed once:\n%s", t);
    cr_assert_not_null(line_with(t, "detection  mlp-tanh-ce", NULL, line, sizeof line), "%s", t);
    cr_expect_not_null(strstr(line, "power=3.2e-10"), "%s", line);
    cr_expect_not_null(strstr(line, "weak=0/24"), "%s", line);
    cr_assert_not_null(line_with(t, "detection  coop-block-singular-gr", NULL, line, sizeof line), "%s", t);
    cr_expect_not_null(strstr(line, "weak=14/24"), "%s", line);
    cr_expect_not_null(strstr(line, "not fit for ports"), "%s", line);
    cr_expect_not_null(strstr(t, "only in reference  coop-block-gr: Wx_t0, Wxx_t0\n"), "%s", t);
    cr_expect_not_null(strstr(t, "only in tested  coop-block-gr: extra_t0\n"), "%s", t);
    cr_expect_not_null(line_with(t, "legend:", NULL, line, sizeof line), "%s", t);
    cr_expect_str_eq(last_line(t, line, sizeof line), "4 passed, 2 failed, 1 skipped");
    free(t);
    ocn_report_free(r);
}

Test(report, verbose_prints_every_row)
{
    ocn_report *r = sample();
    char *t = printed(r, 1), line[512];
    for (int i = 0; i < r->count; i++)
        cr_expect_not_null(strstr(t, r->rows[i].quantity), "row %s missing in verbose output:\n%s",
                           r->rows[i].quantity, t);
    cr_assert_not_null(line_with(t, "ID ", "quantity", line, sizeof line), "table header missing:\n%s", t);
    cr_expect(strstr(line, "err") && strstr(line, "ratio") && strstr(line, " c ") && strstr(line, "verdict"), "%s",
              line);
    cr_assert_not_null(line_with(t, "E1 ", "E1 max s/B lane 0", line, sizeof line));
    cr_expect_not_null(strstr(line, "1.75e+00"), "measured value shown: %s", line);
    cr_expect_not_null(strstr(line, "measured"), "%s", line);
    cr_assert_not_null(line_with(t, "CHECK-cpu-f64", "K_t1", line, sizeof line));
    cr_expect_not_null(strstr(line, "1e+13"), "c shown: %s", line);
    cr_expect_str_eq(last_line(t, line, sizeof line), "4 passed, 2 failed, 1 skipped");
    free(t);
    ocn_report_free(r);
}

Test(report, fits_in_100_columns)
{
    ocn_report *r = ocn_report_new();
    char fx[160], q[96], reason[256];
    memset(fx, 0, sizeof fx), memset(q, 0, sizeof q);
    snprintf(fx, sizeof fx, "HEADX-");
    for (int i = 6; i < 150; i++) fx[i] = (char)('a' + i % 26);
    memcpy(fx + 150, "-TAILZ", 6);
    for (int i = 0; i < 90; i++) q[i] = (char)('A' + i % 26);
    snprintf(reason, sizeof reason, "%s",
             "a long reason, which must wrap onto lines of its own so that nothing is wider than a hundred columns "
             "and every word is still printed somewhere below the row");
    ocn_report_add(r, "CHECK-cuda-f32-long-id", fx, q, 1e-3, 1e9);
    ocn_report_add(r, "REPRO", "short", "k\nbogus line", 1e-3, 1e9);
    ocn_report_skip(r, "CHECK-cuda-f32", fx, reason);
    ocn_fixture_info x = info(fx, 1e-12, 3, 24, 0);
    ocn_report_fixture_info(r, &x);
    for (int i = 0; i < 30; i++) ocn_report_one_side(r, fx, "Wxx_t12_n3", "reference only");
    for (int v = 0; v < 2; v++) {
        char *t = printed(r, v);
        int lineno = 0;
        for (const char *p = t; *p; lineno++) {
            const char *e = strchr(p, '\n');
            cr_assert_not_null(e);
            cr_expect_leq(e - p, 100, "line %d is %d columns:\n%.*s", lineno, (int)(e - p), (int)(e - p), p);
            p = e + 1;
        }
        cr_expect_not_null(strstr(t, "HEADX-"), "the head of a long name is kept:\n%s", t);
        cr_expect_not_null(strstr(t, "-TAILZ"), "the tail of a long name is kept:\n%s", t);
        cr_expect_not_null(strstr(t, ".."), "%s", t);
        cr_expect_not_null(strstr(t, "somewhere below"), "the reason is printed in full:\n%s", t);
        cr_expect_null(strstr(t, "\nbogus line"), "a control character in a name must not start a line:\n%s", t);
        char line[256];
        cr_expect_str_eq(last_line(t, line, sizeof line), "0 passed, 2 failed, 1 skipped");
        free(t);
    }
    ocn_report_free(r);
}

/* ---- JSON ------------------------------------------------------------------ */

static const char *jstr_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_string(v), "\"%s\" is not a string", k);
    return json_string_value(v);
}

Test(report, json_schema_and_round_trip)
{
    char dir[256], path[512], names[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/report.json", dir);
    ocn_report *r = sample();
    ocn_error e = {0};
    cr_assert_eq(ocn_report_write_json(r, path, &e), OCN_OK, "%s", e.msg);
    cr_expect_eq(entries(dir, names, sizeof names), 1, "temporary file left: %s", names);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "invalid JSON: %s (line %d)", je.text, je.line);
    cr_expect_str_eq(jstr_of(j, "schema"), "ocnopt-report");
    cr_expect_eq(json_integer_value(json_object_get(j, "schema_version")), 1);
    cr_expect(json_is_integer(json_object_get(j, "schema_version")));
    json_t *rows = json_object_get(j, "rows");
    cr_assert_eq(json_array_size(rows), (size_t)r->count);
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        json_t *o = json_array_get(rows, (size_t)i);
        cr_expect_str_eq(jstr_of(o, "id"), w->id);
        cr_expect_str_eq(jstr_of(o, "fixture"), w->fixture);
        cr_expect_str_eq(jstr_of(o, "quantity"), w->quantity);
        cr_expect_str_eq(jstr_of(o, "verdict"), ocn_verdict_name(w->verdict));
        json_t *err = json_object_get(o, "err"), *ratio = json_object_get(o, "ratio"), *c = json_object_get(o, "c"),
               *why = json_object_get(o, "skip_reason");
        cr_assert(err && ratio && c && why, "row %d lacks a key", i);
        if (w->verdict == OCN_SKIP || !isfinite(w->err)) cr_expect(json_is_null(err), "row %d err", i);
        else cr_expect_eq(json_real_value(err), w->err, "row %d: err does not round-trip", i);
        if (w->verdict == OCN_MEASURED || w->verdict == OCN_SKIP || !isfinite(w->ratio) || !isfinite(w->err))
            cr_expect(json_is_null(ratio), "row %d ratio", i);
        else cr_expect_eq(json_number_value(ratio), w->ratio, "row %d: ratio does not round-trip", i);
        if (w->c > 0) cr_expect_eq(json_real_value(c), w->c);
        else cr_expect(json_is_null(c));
        if (w->verdict == OCN_SKIP) cr_expect_str_eq(json_string_value(why), w->reason);
        else cr_expect(json_is_null(why));
    }
    json_t *fix = json_object_get(j, "fixtures");
    cr_assert_eq(json_array_size(fix), 2);
    json_t *f1 = json_array_get(fix, 1);
    cr_expect_str_eq(jstr_of(json_array_get(fix, 0), "fixture"), "mlp-tanh-ce");
    cr_expect_eq(json_real_value(json_object_get(json_array_get(fix, 0), "detection_power")), 3.2e-10);
    cr_expect_str_eq(jstr_of(f1, "fixture"), "coop-block-singular-gr");
    cr_expect_eq(json_integer_value(json_object_get(f1, "weak")), 14);
    cr_expect_eq(json_integer_value(json_object_get(f1, "total")), 24);
    cr_expect(json_is_false(json_object_get(f1, "fit_for_ports")));
    cr_expect(json_is_true(json_object_get(json_array_get(fix, 0), "fit_for_ports")));
    json_t *one = json_object_get(j, "one_side");
    cr_assert_eq(json_array_size(one), 3);
    cr_expect_str_eq(jstr_of(json_array_get(one, 2), "fixture"), "coop-block-gr");
    cr_expect_str_eq(jstr_of(json_array_get(one, 2), "array"), "extra_t0");
    cr_expect_str_eq(jstr_of(json_array_get(one, 2), "side"), "tested only");
    cr_expect_eq(json_integer_value(json_object_get(j, "passed")), 4);
    cr_expect_eq(json_integer_value(json_object_get(j, "failed")), 2);
    cr_expect_eq(json_integer_value(json_object_get(j, "weak")), 2);
    cr_expect_eq(json_integer_value(json_object_get(j, "skipped")), 1);
    cr_expect_eq(json_number_value(json_object_get(j, "threshold")), 30);
    cr_expect_eq(json_number_value(json_object_get(j, "fail_at")), 300);
    json_decref(j);
    /* a second write replaces the first (and leaves nothing else) */
    ocn_report_add(r, "REPRO", "fz", "k_t9", 1e-16, 1.0);
    cr_assert_eq(ocn_report_write_json(r, path, &e), OCN_OK, "%s", e.msg);
    j = json_load_file(path, 0, &je);
    cr_assert_not_null(j);
    cr_expect_eq(json_array_size(json_object_get(j, "rows")), (size_t)r->count);
    json_decref(j);
    cr_expect_eq(entries(dir, names, sizeof names), 1, "temporary file left: %s", names);
    ocn_report_free(r);
    tu_rm_rf(dir);
}

/* ---- JUnit ----------------------------------------------------------------- */

static int entity_ok(const char *p)
{
    static const char *const ent[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < sizeof ent / sizeof *ent; i++)
        if (!strncmp(p, ent[i], strlen(ent[i]))) return 1;
    if (p[1] != '#') return 0;
    const char *q = p + 2;
    while (*q >= '0' && *q <= '9') q++;
    return q > p + 2 && *q == ';';
}

/* A tiny well-formedness check: an XML declaration, one root, tags properly
 * nested, attribute values quoted without a raw '<', every '&' an entity. */
static void expect_well_formed(const char *s)
{
    char stack[32][32];
    int depth = 0, roots = 0;
    cr_assert(!strncmp(s, "<?xml ", 6), "no XML declaration");
    const char *p = strstr(s, "?>");
    cr_assert_not_null(p);
    for (p += 2; *p;) {
        if (*p == '&') {
            cr_assert(entity_ok(p), "bare '&' at: %.40s", p);
            p++;
            continue;
        }
        if (*p != '<') {
            cr_assert(depth > 0 || *p == '\n' || *p == ' ', "text outside the root element: %.40s", p);
            p++;
            continue;
        }
        if (p[1] == '/') {
            const char *e = strchr(p, '>');
            cr_assert_not_null(e);
            cr_assert_gt(depth, 0, "closing tag without an opening one: %.40s", p);
            depth--;
            cr_assert(strlen(stack[depth]) == (size_t)(e - p - 2) && !strncmp(p + 2, stack[depth], (size_t)(e - p - 2)),
                      "</%.*s> closes <%s>", (int)(e - p - 2), p + 2, stack[depth]);
            p = e + 1;
            continue;
        }
        const char *n = ++p;
        while (*p && !strchr(" \t\n/>", *p)) p++;
        cr_assert(p > n, "empty tag name");
        cr_assert_lt(depth, 32);
        if (depth == 0) roots++;
        snprintf(stack[depth], sizeof stack[depth], "%.*s", (int)(p - n), n);
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\t') p++;
            if (!strncmp(p, "/>", 2)) {
                p += 2;
                break;
            }
            if (*p == '>') {
                depth++, p++;
                break;
            }
            const char *a = p;
            while (*p && *p != '=' && *p != '>' && *p != ' ') p++;
            cr_assert(*p == '=' && p > a && p[1] == '"', "malformed attribute in <%s>: %.40s", stack[depth], a);
            for (p += 2; *p != '"'; p++) {
                cr_assert(*p && *p != '<', "raw '<' or end of text in an attribute of <%s>", stack[depth]);
                if (*p == '&') cr_assert(entity_ok(p), "bare '&' in an attribute: %.40s", p);
            }
            p++;
        }
    }
    cr_expect_eq(depth, 0, "%d elements left open", depth);
    cr_expect_eq(roots, 1);
}

/* The text of the testcase whose opening tag contains `attrs` (NULL if none). */
static char *testcase(const char *xmltext, const char *attrs)
{
    const char *p = strstr(xmltext, attrs);
    if (!p) return NULL;
    const char *s = p;
    while (s > xmltext && strncmp(s, "<testcase ", 10)) s--;
    const char *e = strstr(p, "</testcase>");
    cr_assert_not_null(e);
    return strndup(s, (size_t)(e - s));
}

Test(report, junit_well_formed_and_escaped)
{
    char dir[256], path[512], names[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/junit.xml", dir);
    ocn_report *r = sample();
    ocn_report_add(r, "T6b", "a<b&\"c'>", "q<&\"", 1e-10, 1e6);          /* FAILED, odd characters */
    ocn_report_skip(r, "CHECK-cuda-f32", "fx", "no \"GPU\" & <none>"); /* every row SKIP */
    ocn_error e = {0};
    cr_assert_eq(ocn_report_write_junit(r, path, &e), OCN_OK, "%s", e.msg);
    cr_expect_eq(entries(dir, names, sizeof names), 1, "temporary file left: %s", names);
    char *x = slurp(path);
    expect_well_formed(x);
    char out[4096];
    if (tu_sh(NULL, 0, "command -v xmllint > /dev/null") == 0) /* a real parser where there is one */
        cr_expect_eq(tu_sh(out, sizeof out, "xmllint --noout '%s' 2>&1", path), 0, "xmllint: %s", out);
    /* one testcase per fixture × family: 7 in all */
    cr_expect_eq(count_str(x, "<testcase "), 7, "%s", x);
    cr_expect_eq(count_str(x, "</testcase>"), 7);
    cr_expect_not_null(strstr(x, "<testsuite name=\"ocnopt\" tests=\"7\" failures=\"2\" errors=\"0\" skipped=\"2\">"),
                       "%s", x);
    cr_expect_eq(count_str(x, "<property name=\"detection mlp-tanh-ce\""), 1, "%s", x);
    /* escaping */
    cr_expect_not_null(strstr(x, "classname=\"a&lt;b&amp;&quot;c&apos;&gt;\" name=\"T6b\""), "%s", x);
    cr_expect_not_null(strstr(x, "q&lt;&amp;&quot;"), "%s", x);
    cr_expect_null(strstr(x, "a<b"));
    cr_expect_not_null(strstr(x, "<skipped message=\"no &quot;GPU&quot; &amp; &lt;none&gt;\"/>"), "%s", x);
    /* FAILED rows listed in the failure */
    char *tc = testcase(x, "classname=\"mlp-tanh-ce\" name=\"CHECK-cpu-f64\"");
    cr_assert_not_null(tc, "%s", x);
    cr_expect_not_null(strstr(tc, "<failure "), "%s", tc);
    cr_expect_not_null(strstr(tc, "message=\"2 of 3 rows FAILED: Wxx_t0, theta_new\""), "%s", tc);
    cr_expect_null(strstr(tc, "dx_t0"), "ok rows are not failures: %s", tc);
    free(tc);
    /* weak-only: visible, not a failure, not skipped */
    tc = testcase(x, "classname=\"coop-block-singular-gr\" name=\"CHECK-cpu-f64\"");
    cr_assert_not_null(tc, "%s", x);
    cr_expect_null(strstr(tc, "<failure"), "%s", tc);
    cr_expect_null(strstr(tc, "<skipped"), "%s", tc);
    cr_expect_not_null(strstr(tc, "weak: 2 arrays not informative"), "%s", tc);
    free(tc);
    /* all rows SKIP: skipped with the reason */
    tc = testcase(x, "classname=\"mlp-sigmoid-full-exact\" name=\"CHECK-cpu-f32\"");
    cr_assert_not_null(tc, "%s", x);
    cr_expect_not_null(strstr(tc, "<skipped message=\"the optimized path refuses full dynamics\"/>"), "%s", tc);
    free(tc);
    /* a passing family: neither failure nor skipped */
    tc = testcase(x, "classname=\"mlp-tanh-ce\" name=\"REPRO\"");
    cr_assert_not_null(tc, "%s", x);
    cr_expect_null(strstr(tc, "<failure"));
    cr_expect_null(strstr(tc, "<skipped"));
    free(tc);
    free(x);
    ocn_report_free(r);
    tu_rm_rf(dir);
}

/* ---- safe writing (issue 10) ------------------------------------------------ */

typedef int (*writer)(const ocn_report *, const char *, ocn_error *);
static const writer writers[] = {ocn_report_write_json, ocn_report_write_junit};

Test(report, symlink_target_refused_and_victim_untouched)
{
    char dir[256], victim[512], link[512], dangling[512], gone[512], names[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(link, sizeof link, "%s/report.out", dir);
    snprintf(dangling, sizeof dangling, "%s/dangling.out", dir);
    snprintf(gone, sizeof gone, "%s/not-there", dir);
    put(victim, "precious\n");
    cr_assert_eq(symlink(victim, link), 0);
    cr_assert_eq(symlink(gone, dangling), 0);
    ocn_report *r = sample();
    for (int w = 0; w < 2; w++) {
        ocn_error e = {0};
        cr_expect_eq(writers[w](r, link, &e), OCN_EINVAL, "writer %d wrote through a symlink", w);
        cr_expect_not_null(strstr(e.msg, link), "the message names the path: %s", e.msg);
        cr_expect_not_null(strstr(e.msg, "symbolic link"), "%s", e.msg);
        char *v = slurp(victim);
        cr_expect_str_eq(v, "precious\n", "the symlink's victim was changed");
        free(v);
        struct stat st;
        cr_assert_eq(lstat(link, &st), 0);
        cr_expect(S_ISLNK(st.st_mode), "the symlink was replaced");
        memset(&e, 0, sizeof e);
        cr_expect_eq(writers[w](r, dangling, &e), OCN_EINVAL, "writer %d wrote through a dangling symlink", w);
        cr_expect_neq(access(gone, F_OK), 0, "a dangling symlink's target was created");
        cr_expect_eq(entries(dir, names, sizeof names), 3, "left behind: %s", names);
    }
    ocn_report_free(r);
    tu_rm_rf(dir);
}

Test(report, fifo_and_directory_targets_refused, .timeout = 20)
{
    char dir[256], fifo[512], sub[512], names[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(mkdir(sub, 0700), 0);
    ocn_report *r = sample();
    for (int w = 0; w < 2; w++) {
        ocn_error e = {0};
        cr_expect_eq(writers[w](r, fifo, &e), OCN_EINVAL, "writer %d accepted a FIFO", w); /* and did not block */
        cr_expect_not_null(strstr(e.msg, fifo), "%s", e.msg);
        cr_expect_not_null(strstr(e.msg, "FIFO"), "%s", e.msg);
        memset(&e, 0, sizeof e);
        cr_expect_eq(writers[w](r, sub, &e), OCN_EINVAL, "writer %d accepted a directory", w);
        cr_expect_not_null(strstr(e.msg, sub), "%s", e.msg);
        char slash[600];
        snprintf(slash, sizeof slash, "%s/", sub);
        memset(&e, 0, sizeof e);
        cr_expect_eq(writers[w](r, slash, &e), OCN_EINVAL, "writer %d accepted a directory/", w);
        memset(&e, 0, sizeof e);
        cr_expect_eq(writers[w](r, "", &e), OCN_EINVAL);
        struct stat st;
        cr_assert_eq(lstat(fifo, &st), 0);
        cr_expect(S_ISFIFO(st.st_mode), "the FIFO was replaced");
        cr_assert_eq(lstat(sub, &st), 0);
        cr_expect(S_ISDIR(st.st_mode));
        cr_expect_eq(entries(dir, names, sizeof names), 2, "left behind: %s", names);
        cr_expect_eq(entries(sub, names, sizeof names), 0, "left behind in sub/: %s", names);
    }
    ocn_report_free(r);
    tu_rm_rf(dir);
}

Test(report, dev_full_refused_not_replaced)
{
    struct stat before, after;
    if (lstat("/dev/full", &before) || !S_ISCHR(before.st_mode)) {
        cr_log_warn("/dev/full is not a character device here; test not run");
        return;
    }
    ocn_report *r = sample();
    for (int w = 0; w < 2; w++) {
        ocn_error e = {0};
        int rc = writers[w](r, "/dev/full", &e);
        cr_expect_neq(rc, OCN_OK, "writer %d claims to have written /dev/full", w);
        cr_expect_not_null(strstr(e.msg, "/dev/full"), "%s", e.msg);
        cr_assert_eq(lstat("/dev/full", &after), 0);
        cr_expect(S_ISCHR(after.st_mode) && after.st_rdev == before.st_rdev && after.st_ino == before.st_ino,
                  "/dev/full was replaced");
        glob_t g;
        int gr = glob("/dev/.full.*", 0, NULL, &g);
        cr_expect_neq(gr, 0, "temporary file left in /dev: %s", gr == 0 ? g.gl_pathv[0] : "");
        if (gr == 0) globfree(&g);
    }
    ocn_report_free(r);
}

Test(report, write_error_removes_the_temporary_file)
{
    char dir[256], path[512], names[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/report.out", dir);
    put(path, "old report\n");
    ocn_report *r = sample();
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    for (int w = 0; w < 2; w++) {
        struct rlimit small = {64, old.rlim_max}; /* a write past 64 bytes fails with EFBIG */
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
        ocn_error e = {0};
        int rc = writers[w](r, path, &e);
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
        cr_expect_eq(rc, OCN_EIO, "writer %d: %s", w, e.msg);
        cr_expect_not_null(strstr(e.msg, path), "%s", e.msg);
        cr_expect_not_null(strstr(e.msg, strerror(EFBIG)), "%s", e.msg);
        char *v = slurp(path);
        cr_expect_str_eq(v, "old report\n", "a failed write changed the target");
        free(v);
        cr_expect_eq(entries(dir, names, sizeof names), 1, "left behind: %s", names);
    }
    signal(SIGXFSZ, prev);
    ocn_report_free(r);
    tu_rm_rf(dir);
}

Test(report, missing_directory_is_an_io_error)
{
    char dir[256], path[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/no/such/dir/report.json", dir);
    ocn_report *r = sample();
    for (int w = 0; w < 2; w++) {
        ocn_error e = {0};
        cr_expect_eq(writers[w](r, path, &e), OCN_EIO);
        cr_expect_not_null(strstr(e.msg, path), "%s", e.msg);
        cr_expect_not_null(strstr(e.msg, strerror(ENOENT)), "%s", e.msg);
    }
    cr_expect_eq(entries(dir, NULL, 0), 0);
    ocn_report_free(r);
    tu_rm_rf(dir);
}

Test(report, relative_path_and_existing_file_replaced)
{
    char dir[256], cwd[4096], names[1024];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(dir), 0);
    put("r.xml", "stale\n");
    cr_assert_eq(chmod("r.xml", 0640), 0);
    ocn_report *r = sample();
    ocn_error e = {0};
    int rc = ocn_report_write_junit(r, "r.xml", &e);
    int rc2 = ocn_report_write_json(r, "r.json", &e);
    struct stat st;
    int st_rc = stat("r.xml", &st);
    char *x = slurp("r.xml");
    int n = entries(".", names, sizeof names);
    cr_assert_eq(chdir(cwd), 0);
    cr_expect_eq(rc, OCN_OK, "%s", e.msg);
    cr_expect_eq(rc2, OCN_OK, "%s", e.msg);
    cr_expect_eq(st_rc, 0);
    cr_expect_eq(st.st_mode & 0777, 0640, "the replaced file keeps its mode (%o)", st.st_mode & 0777);
    cr_expect(!strncmp(x, "<?xml", 5), "not replaced: %.40s", x);
    cr_expect_eq(n, 2, "left behind: %s", names);
    free(x);
    ocn_report_free(r);
    tu_rm_rf(dir);
}
