/* Files and paths (issue 10): symlinks, long paths, FIFOs and devices, a
 * quadratic manifest reader, stale temporaries of a killed `ocn gen`, and the
 * destination checks and messages of `ocn gen`.  Each test failed before the
 * fix of its class (see docs/decisions.md, "Files and paths (issue 10)"). */
#include "util.h"
#include "ocn/npy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

__attribute__((unused)) static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

__attribute__((unused)) static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Number of entries of dir whose name starts with prefix (-1: unreadable). */
__attribute__((unused)) static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

__attribute__((unused)) static int count_files(const char *dir) { return count_prefixed(dir, "") - 2; }

/* The game name stored in dir/manifest.json ("" when unreadable). */
__attribute__((unused)) static const char *game_name(const char *dir, char *buf, size_t n)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    json_t *m = json_load_file(p, 0, NULL);
    snprintf(buf, n, "%s", m ? json_string_value(json_object_get(json_object_get(m, "game"), "name")) : "");
    json_decref(m);
    return buf;
}

__attribute__((unused)) static void gen(const char *game, const char *dst, const char *extra)
{
    char out[4096];
    int rc = tu_sh(out, sizeof out, "%s gen %s -o '%s' %s 2>&1", OCN_BIN, game, dst, extra);
    cr_assert_eq(rc, 0, "gen %s -o %s %s: %s", game, dst, extra, out);
}

/* ---- FIFOs, devices and huge files inside a fixture ---- */

Test(files, fifo_device_and_huge_manifest_or_npy_are_refused_quickly)
{
    static const struct { const char *file, *how, *want; } cases[] = {
        {"manifest.json", "mkfifo", "not a regular file"},
        {"k_t0_n0.npy", "mkfifo", "not a regular file"},
        {"manifest.json", "ln -s /dev/zero", "not a regular file"},
        {"x0.npy", "ln -s /dev/zero", "not a regular file"},
        {"manifest.json", "truncate -s 300M", "too large"},
        {"manifest.json", "mkdir", "not a regular file"},
    };
    char dir[256], out[8192];
    tu_tmpdir(dir, sizeof dir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(tu_sh(NULL, 0, "rm -rf %s/f && cp -r fixtures/mlp-tanh-ce %s/f && rm %s/f/%s && %s %s/f/%s", dir, dir,
                           dir, cases[i].file, cases[i].how, dir, cases[i].file), 0);
        double t0 = now();
        int rc = tu_sh(out, sizeof out, "timeout 20 %s verify %s/f 2>&1", OCN_BIN, dir);
        cr_expect_eq(rc, 2, "%s as %s: exit %d (124: hung): %s", cases[i].how, cases[i].file, rc, out);
        cr_expect(strstr(out, cases[i].want) && strstr(out, cases[i].file), "%s as %s: %s", cases[i].how, cases[i].file,
                  out);
        cr_expect_lt(now() - t0, 5.0, "%s as %s took %.1f s", cases[i].how, cases[i].file, now() - t0);
    }
    tu_rm_rf(dir);
}

/* ---- the manifest reader is linear ---- */

Test(files, arrayset_with_100k_names_is_linear_and_correct, .timeout = 60)
{
    enum { N = 100000 };
    ocn_arrayset *s = ocn_arrayset_new();
    size_t sh[1] = {1};
    char nm[64];
    double t0 = now();
    for (int i = 0; i < N; i++) {
        snprintf(nm, sizeof nm, "a%d", (i * 7919) % N);
        ocn_array *a = ocn_arrayset_add(s, nm, 1, sh);
        cr_assert_not_null(a);
        a->data[0] = (i * 7919) % N;
    }
    for (int i = 0; i < N; i++) {
        snprintf(nm, sizeof nm, "a%d", i);
        ocn_array *a = ocn_arrayset_find(s, nm);
        cr_assert(a && a->data[0] == i, "%s", nm);
    }
    double t = now() - t0;
    cr_expect_lt(t, 2.0, "100k adds and finds took %.1f s", t);
    /* replace, remove every third, sort, copy: the index follows */
    ocn_array *r = ocn_arrayset_add(s, "a5", 1, sh);
    r->data[0] = -5;
    for (int i = 0; i < N; i += 3) {
        snprintf(nm, sizeof nm, "a%d", i);
        ocn_arrayset_remove(s, nm);
    }
    ocn_arrayset_sort(s);
    ocn_arrayset *c = ocn_arrayset_copy(s);
    for (int k = 0; k < 2; k++) {
        ocn_arrayset *x = k ? c : s;
        cr_assert_eq(x->count, N - (N + 2) / 3);
        for (int i = 0; i < N; i++) {
            snprintf(nm, sizeof nm, "a%d", i);
            ocn_array *a = ocn_arrayset_find(x, nm);
            if (i % 3 == 0) cr_assert_null(a, "%s was removed", nm);
            else cr_assert(a && a->data[0] == (i == 5 ? -5 : i), "%s", nm);
        }
        for (int i = 1; i < x->count; i++) cr_assert_lt(strcmp(x->a[i - 1].name, x->a[i].name), 0);
    }
    cr_assert_null(ocn_arrayset_find(s, "nope"));
    ocn_arrayset_free(s);
    ocn_arrayset_free(c);
}

Test(files, manifest_with_40k_arrays_reads_in_seconds, .timeout = 120)
{
    char dir[256], p[512];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(NULL, 0, "cp -r fixtures/mlp-tanh-ce %s/f", dir), 0);
    snprintf(p, sizeof p, "%s/f/manifest.json", dir);
    json_t *m = json_load_file(p, 0, NULL);
    cr_assert_not_null(m);
    json_t *arrays = json_object_get(m, "arrays"), *x0 = json_object_get(arrays, "x0");
    char nm[32];
    for (int i = 0; i < 40000; i++) {
        snprintf(nm, sizeof nm, "extra%05d", i);
        json_object_set(arrays, nm, x0); /* every entry reads the same small file */
    }
    cr_assert_eq(json_dump_file(m, p, 0), 0);
    json_decref(m);
    snprintf(p, sizeof p, "%s/f", dir);
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    double t0 = now();
    cr_assert_eq(ocn_fixture_read(p, &f, &e), OCN_OK, "%s", e.msg);
    double t = now() - t0;
    cr_assert_geq(f->arrays->count, 40000);
    cr_assert_not_null(ocn_arrayset_find(f->arrays, "extra39999"));
    cr_expect_lt(t, 3.0, "reading 40k arrays took %.1f s", t);
    ocn_fixture_free(f);
    tu_rm_rf(dir);
}

/* ---- failure messages: the user's path and the system's reason ---- */

Test(files, npy_write_reports_the_errno)
{
    ocn_arrayset *s = ocn_arrayset_new();
    ocn_array *a = ocn_arrayset_add2(s, "a", 1, 100000, 0, 0);
    ocn_error e = {0};
    cr_assert_eq(ocn_npy_write("/dev/full", a, &e), OCN_EIO);
    cr_expect(strstr(e.msg, "/dev/full") && strstr(e.msg, strerror(ENOSPC)), "%s", e.msg);
    ocn_arrayset_free(s);
}
