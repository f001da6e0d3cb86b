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

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Number of entries of dir whose name starts with prefix (-1: unreadable). */
static int count_prefixed(const char *dir, const char *prefix)
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

static int count_files(const char *dir) { return count_prefixed(dir, "") - 2; }

/* The game name stored in dir/manifest.json ("" when unreadable). */
static const char *game_name(const char *dir, char *buf, size_t n)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    json_t *m = json_load_file(p, 0, NULL);
    snprintf(buf, n, "%s", m ? json_string_value(json_object_get(json_object_get(m, "game"), "name")) : "");
    json_decref(m);
    return buf;
}

static void gen(const char *game, const char *dst, const char *extra)
{
    char out[4096];
    int rc = tu_sh(out, sizeof out, "%s gen %s -o '%s' %s 2>&1", OCN_BIN, game, dst, extra);
    cr_assert_eq(rc, 0, "gen %s -o %s %s: %s", game, dst, extra, out);
}

/* ---- symlinks: never followed when replacing or removing ---- */

Test(files, gen_force_through_a_symlink_is_refused_and_the_target_kept)
{
    char dir[256], real[512], link[512], cmd[2048], nm[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(real, sizeof real, "%s/real", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    gen("games/mlp-tanh-ce.json", real, "");
    int nfiles = count_files(real);
    cr_assert_eq(symlink("real", link), 0);
    for (int slash = 0; slash < 2; slash++) {
        snprintf(cmd, sizeof cmd, "%s gen games/mlp-relu-mse-kfac.json -o %s%s --force", OCN_BIN, link, slash ? "/" : "");
        tu_expect_exit2(cmd, "symbolic link", NULL);
    }
    snprintf(cmd, sizeof cmd, "%s gen games/mlp-relu-mse-kfac.json -o %s", OCN_BIN, link);
    tu_expect_exit2(cmd, "link", NULL);
    struct stat st;
    cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link stays a link");
    cr_assert_eq(count_files(real), nfiles, "the link's target keeps all its files");
    cr_assert_str_eq(game_name(real, nm, sizeof nm), "mlp-tanh-ce", "the target is not replaced");
    cr_assert_eq(count_prefixed(dir, "link."), 0, "no link.tmp.* left behind");
    tu_rm_rf(dir);
}

/* A fixture whose listed file is a symlink is not ours to replace: --force
 * refuses it, naming the file, and the link's target survives. */
Test(files, force_refuses_a_fixture_holding_links)
{
    char dir[256], fx[512], victim[512], p[1024], nm[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(fx, sizeof fx, "%s/fx", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    gen("games/mlp-tanh-ce.json", fx, "");
    cr_assert_eq(mkdir(victim, 0755), 0);
    snprintf(p, sizeof p, "%s/x0.npy", victim);
    cr_assert_eq(tu_sh(NULL, 0, "cp %s/x0.npy %s", fx, p), 0);
    /* fx/x0.npy -> ../victim/x0.npy: listed by the manifest, but not a plain file */
    snprintf(p, sizeof p, "%s/x0.npy", fx);
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(symlink("../victim/x0.npy", p), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s gen games/mlp-relu-mse-kfac.json -o %s --force", OCN_BIN, fx);
    tu_expect_exit2(cmd, "x0.npy", NULL);
    snprintf(p, sizeof p, "%s/x0.npy", victim);
    cr_assert(exists(p), "the link's target survives");
    cr_assert_str_eq(game_name(fx, nm, sizeof nm), "mlp-tanh-ce");
    tu_rm_rf(dir);
}

/* ---- long paths: never cut ---- */

/* dir/aaa.../aaa... of exactly `len` characters (components of at most 200). */
static void long_dir(char *out, size_t n, const char *base, size_t len)
{
    snprintf(out, n, "%s", base);
    while (strlen(out) < len) {
        size_t k = strlen(out), room = len - k - 1; /* the '/' */
        size_t c = room > 200 ? 200 : room;
        if (room > 200 && room - 200 < 2) c = 150; /* keep the last component non-trivial */
        out[k] = '/';
        memset(out + k + 1, 'a' + (char)(k % 26), c);
        out[k + 1 + c] = 0;
        if (strlen(out) < len) cr_assert(mkdir(out, 0755) == 0 || errno == EEXIST, "mkdir %s", out);
    }
}

Test(files, paths_longer_than_2047_are_not_cut)
{
    char dir[256], nm[128], out[8192];
    tu_tmpdir(dir, sizeof dir);
    static char p[PATH_MAX], sub[PATH_MAX], miss[PATH_MAX];
    long_dir(p, sizeof p, dir, 2047); /* p itself is created by gen */
    cr_assert_eq(strlen(p), 2047u);
    gen("games/mlp-tanh-ce.json", p, "");
    /* p/sub and p/missing used to be cut to p: --force replaced p */
    snprintf(sub, sizeof sub, "%s/sub", p);
    gen("games/mlp-relu-mse-kfac.json", sub, "--force");
    cr_assert_str_eq(game_name(p, nm, sizeof nm), "mlp-tanh-ce", "a different fixture was replaced");
    cr_assert_str_eq(game_name(sub, nm, sizeof nm), "mlp-relu-mse-kfac");
    snprintf(miss, sizeof miss, "%s/missing", p);
    int rc = tu_sh(out, sizeof out, "%s verify '%s' 2>&1", OCN_BIN, miss);
    cr_assert_eq(rc, 2, "verify of a missing directory read a different fixture: %s", out);
    cr_assert(strstr(out, "/missing") != NULL, "the message names the path: %s", out);
    tu_rm_rf(dir);
}

Test(files, paths_over_path_max_are_refused_with_a_message)
{
    char dir[256];
    tu_tmpdir(dir, sizeof dir);
    /* dir/././.../fx: an existing parent, but longer than PATH_MAX */
    static char p[6000], cmd[7000];
    snprintf(p, sizeof p, "%s", dir);
    while (strlen(p) < PATH_MAX + 100) strcat(p, "/.");
    strcat(p, "/fx");
    snprintf(cmd, sizeof cmd, "%s gen games/mlp-tanh-ce.json -o %s", OCN_BIN, p);
    tu_expect_exit2(cmd, "too long", NULL);
    cr_assert_eq(count_files(dir), 0, "nothing written: %d entries", count_files(dir));
    snprintf(cmd, sizeof cmd, "%s verify %s", OCN_BIN, p);
    tu_expect_exit2(cmd, "too long", NULL);
    tu_rm_rf(dir);
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

/* ---- temporaries of a killed `ocn gen` ---- */

Test(files, stale_temporaries_of_a_killed_gen_are_removed_by_the_next_gen)
{
    char dir[256], dst[512], out[4096], nm[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(dst, sizeof dst, "%s/fx", dir);
    /* a fresh destination: killed part-way, nothing at fx, a fx.tmp.* left */
    tu_sh(out, sizeof out, "OCN_FAULT_GEN_AFTER=3 %s gen games/mlp-tanh-ce.json -o %s 2>&1; echo status=$?", OCN_BIN, dst);
    cr_assert(strstr(out, "status=137"), "%s", out);
    cr_assert(!exists(dst));
    cr_assert_eq(count_prefixed(dir, "fx.tmp."), 1, "the killed gen leaves its temporary");
    gen("games/mlp-tanh-ce.json", dst, "");
    cr_assert_eq(count_prefixed(dir, "fx."), 0, "the next gen removes it");
    /* replacing: killed part-way, the old fixture stays whole; the next gen cleans up */
    for (int k = 0; k < 2; k++) {
        tu_sh(out, sizeof out, "OCN_FAULT_GEN_AFTER=%d %s gen games/mlp-relu-mse-kfac.json -o %s --force 2>&1; echo status=$?",
              5 + k, OCN_BIN, dst);
        cr_assert(strstr(out, "status=137"), "%s", out);
    }
    cr_assert_eq(count_prefixed(dir, "fx.tmp."), 1, "the second killed gen removed the first one's temporary");
    cr_assert_str_eq(game_name(dst, nm, sizeof nm), "mlp-tanh-ce", "the old fixture is intact");
    cr_assert_eq(tu_sh(out, sizeof out, "%s verify %s 2>&1", OCN_BIN, dst), 0, "%s", out);
    gen("games/mlp-relu-mse-kfac.json", dst, "--force");
    cr_assert_eq(count_prefixed(dir, "fx."), 0, "stale temporaries removed");
    cr_assert_str_eq(game_name(dst, nm, sizeof nm), "mlp-relu-mse-kfac");
    tu_rm_rf(dir);
}

Test(files, temporaries_in_use_or_holding_other_files_are_kept)
{
    char dir[256], dst[512], p[1024], nm[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(dst, sizeof dst, "%s/fx", dir);
    /* in use: a live process holds its lock (as a running gen does) */
    snprintf(p, sizeof p, "%s/fx.tmp.Live01", dir);
    cr_assert_eq(mkdir(p, 0700), 0);
    int lfd = open(p, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(flock(lfd, LOCK_EX | LOCK_NB), 0);
    /* a user's file among fixture files */
    cr_assert_eq(tu_sh(NULL, 0, "mkdir %s/fx.tmp.User01 && cp fixtures/mlp-tanh-ce/x0.npy %s/fx.tmp.User01/ && "
                                "echo keep > %s/fx.tmp.User01/notes.txt", dir, dir, dir), 0);
    /* a name we never make (not 6 letters/digits) */
    cr_assert_eq(tu_sh(NULL, 0, "mkdir %s/fx.tmp.my-backup && cp fixtures/mlp-tanh-ce/x0.npy %s/fx.tmp.my-backup/", dir, dir), 0);
    /* fx.old.*: the only copy of a fixture while fx is absent (a crash between
     * the two renames of the fallback swap) is kept until fx exists again */
    cr_assert_eq(tu_sh(NULL, 0, "cp -r fixtures/mlp-tanh-ce %s/fx.old.Old001", dir), 0);
    gen("games/mlp-relu-mse-kfac.json", dst, "");
    snprintf(p, sizeof p, "%s/fx.tmp.Live01", dir);
    cr_assert(exists(p), "a locked temporary is in use");
    snprintf(p, sizeof p, "%s/fx.tmp.User01/notes.txt", dir);
    cr_assert(exists(p), "a temporary holding other files is kept");
    snprintf(p, sizeof p, "%s/fx.tmp.my-backup/x0.npy", dir);
    cr_assert(exists(p), "names we never make are not ours");
    snprintf(p, sizeof p, "%s/fx.old.Old001", dir);
    cr_assert(exists(p), "fx.old.* is kept while fx does not exist");
    cr_assert_str_eq(game_name(p, nm, sizeof nm), "mlp-tanh-ce");
    gen("games/mlp-relu-mse-kfac.json", dst, "--force");
    cr_assert(!exists(p), "fx.old.* is removed once fx exists");
    snprintf(p, sizeof p, "%s/fx.tmp.Live01", dir);
    cr_assert(exists(p), "still locked");
    close(lfd);
    gen("games/mlp-relu-mse-kfac.json", dst, "--force");
    cr_assert(!exists(p), "unlocked now: removed");
    tu_rm_rf(dir);
}

/* ---- the destination of ocn gen: checked before computing ---- */

Test(files, destination_is_checked_before_anything_is_computed)
{
    char dir[256], cmd[2048], p[1024];
    tu_tmpdir(dir, sizeof dir);
    /* a game that does not exist: the destination's message comes first */
    static const struct { const char *dst, *extra, *want; } cases[] = {
        {"", "", "empty"},
        {"%s/no/such/parent/fx", "", "does not exist"},
        {"%s/afile/fx", "", "not a directory"},
        {"%s/fx/.", "--force", "not a usable"},
        {"%s/fx/..", "--force", "not a usable"},
        {"%s/fx", "", "already exists"},
        {"%s/notfix", "--force", "not a fixture directory"},
    };
    snprintf(p, sizeof p, "%s/afile", dir);
    cr_assert_eq(tu_sh(NULL, 0, "touch %s && mkdir %s/notfix && cp -r fixtures/mlp-tanh-ce %s/fx", p, dir, dir), 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dst[1024];
        snprintf(dst, sizeof dst, cases[i].dst, dir);
        snprintf(cmd, sizeof cmd, "%s gen %s/no-such-game.json -o '%s' %s", OCN_BIN, dir, dst, cases[i].extra);
        tu_expect_exit2(cmd, cases[i].want, NULL);
    }
    cr_assert_eq(count_files(dir), 3, "nothing written");
    tu_rm_rf(dir);
}

Test(files, fixture_directories_follow_the_umask)
{
    char dir[256], dst[512], out[4096];
    tu_tmpdir(dir, sizeof dir);
    static const unsigned masks[] = {022, 077, 002};
    for (int i = 0; i < 3; i++) {
        snprintf(dst, sizeof dst, "%s/fx%d", dir, i);
        int rc = tu_sh(out, sizeof out, "umask %03o && %s gen games/mlp-tanh-ce.json -o %s 2>&1", masks[i], OCN_BIN, dst);
        cr_assert_eq(rc, 0, "%s", out);
        struct stat st;
        cr_assert_eq(stat(dst, &st), 0);
        cr_expect_eq(st.st_mode & 07777, 0777 & ~masks[i], "umask %03o: directory mode %04o", masks[i],
                     (unsigned)(st.st_mode & 07777));
        snprintf(dst, sizeof dst, "%s/fx%d/manifest.json", dir, i);
        cr_assert_eq(stat(dst, &st), 0);
        cr_expect_eq(st.st_mode & 07777, 0666 & ~masks[i], "umask %03o: file mode %04o", masks[i],
                     (unsigned)(st.st_mode & 07777));
    }
    tu_rm_rf(dir);
}

Test(files, force_never_deletes_files_that_are_not_the_fixtures)
{
    char dir[256], dst[512], cmd[2048], p[1024], nm[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(dst, sizeof dst, "%s/fx", dir);
    gen("games/mlp-tanh-ce.json", dst, "");
    static const struct { const char *make, *name; } cases[] = {
        {"echo mine > %s/notes.txt", "notes.txt"},
        {"cp %s/x0.npy %s/extra.npy", "extra.npy"},
        {"mkdir %s/sub", "sub"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char mk[1024];
        snprintf(mk, sizeof mk, cases[i].make, dst, dst);
        cr_assert_eq(tu_sh(NULL, 0, "%s", mk), 0);
        snprintf(cmd, sizeof cmd, "%s gen games/mlp-relu-mse-kfac.json -o %s --force", OCN_BIN, dst);
        tu_expect_exit2(cmd, cases[i].name, NULL);
        snprintf(p, sizeof p, "%s/%s", dst, cases[i].name);
        cr_assert(exists(p), "%s must survive", p);
        cr_assert_str_eq(game_name(dst, nm, sizeof nm), "mlp-tanh-ce");
        cr_assert_eq(tu_sh(NULL, 0, "rm -r %s", p), 0);
    }
    gen("games/mlp-relu-mse-kfac.json", dst, "--force"); /* only fixture files: replaced */
    cr_assert_str_eq(game_name(dst, nm, sizeof nm), "mlp-relu-mse-kfac");
    tu_rm_rf(dir);
}

/* ---- failure messages: the user's path and the system's reason ---- */

Test(files, a_write_failure_names_the_destination_and_the_reason)
{
    char dir[256], dst[512], out[8192];
    tu_tmpdir(dir, sizeof dir);
    snprintf(dst, sizeof dst, "%s/fx", dir);
    /* a 1 KiB file size limit: the first large array fails with EFBIG */
    int rc = tu_sh(out, sizeof out, "trap '' XFSZ; ulimit -f 1; %s gen games/mlp-tanh-ce.json -o %s 2>&1", OCN_BIN, dst);
    cr_assert_eq(rc, 3, "an I/O failure exits 3: %s", out);
    cr_expect(strstr(out, dst) != NULL, "the message names %s: %s", dst, out);
    cr_expect(strstr(out, ".tmp.") == NULL, "the message names no temporary: %s", out);
    cr_expect(strstr(out, strerror(EFBIG)) != NULL, "the message gives the reason: %s", out);
    cr_expect(!exists(dst));
    cr_expect_eq(count_files(dir), 0, "nothing left behind");
    tu_rm_rf(dir);
}

Test(files, npy_write_reports_the_errno)
{
    ocn_arrayset *s = ocn_arrayset_new();
    ocn_array *a = ocn_arrayset_add2(s, "a", 1, 100000, 0, 0);
    ocn_error e = {0};
    cr_assert_eq(ocn_npy_write("/dev/full", a, &e), OCN_EIO);
    cr_expect(strstr(e.msg, "/dev/full") && strstr(e.msg, strerror(ENOSPC)), "%s", e.msg);
    ocn_arrayset_free(s);
}

/* Where renameat2(RENAME_EXCHANGE) is missing, the old fixture is moved
 * aside and the new one renamed in: the same checks, nothing left over. */
Test(files, replacing_without_rename_exchange_keeps_the_same_guarantees)
{
    char dir[256], fx[512], nm[128], p[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(fx, sizeof fx, "%s/fx", dir);
    gen("games/mlp-tanh-ce.json", fx, "");
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read("fixtures/mlp-relu-mse-kfac", &f, &e), OCN_OK, "%s", e.msg);
    ocn_producer prod = {"test", "reference", "f64", NULL, NULL, 1, 0};
    ocn_write_opts wo = {1, NULL, NULL, 1};
    snprintf(p, sizeof p, "%s/notes.txt", fx);
    cr_assert_eq(tu_sh(NULL, 0, "echo mine > %s", p), 0);
    cr_assert_eq(ocn_fixture_write(fx, f->game, f->arrays, &prod, &wo, &e), OCN_EINVAL);
    cr_expect(strstr(e.msg, "notes.txt") != NULL, "%s", e.msg);
    cr_assert(exists(p));
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(ocn_fixture_write(fx, f->game, f->arrays, &prod, &wo, &e), OCN_OK, "%s", e.msg);
    cr_assert_str_eq(game_name(fx, nm, sizeof nm), "mlp-relu-mse-kfac");
    cr_assert_eq(count_prefixed(dir, "fx."), 0, "nothing left beside fx");
    cr_assert_eq(count_files(fx), f->arrays->count + 1);
    ocn_fixture_free(f);
    tu_rm_rf(dir);
}
