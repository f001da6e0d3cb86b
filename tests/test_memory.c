/* Issue 10, "Sizes and memory" (reference side):
 *   1. the reference estimates its peak memory from the description and
 *      refuses, before allocating, a game over the limit (the machine's
 *      physical memory, or ocn_ref_opts.max_memory): `ocn gen` exits 2 at
 *      once with the estimate in GB and the dominant array, even under a
 *      `ulimit -v` of a few GB (so nothing big was allocated);
 *   2. blockdiag/persample store B blocks of n x n, never the (B·n)² matrix;
 *   3. an allocation that fails mid-run returns OCN_ENOMEM naming the array
 *      (`ocn gen`: exit 3, one line), never a crash: swept over address-space
 *      limits in forked children (library) and under `ulimit -v` (CLI).
 * The limits on address space are left out of sanitizer builds: ASan reserves
 * terabytes of shadow address space and aborts when an allocation fails. */
#include "util.h"

#include "ocn/memory.h"
#include "ocn/optimized.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TM_ASAN 1
#endif
#endif
#ifndef TM_ASAN
#define TM_ASAN 0
#endif

/* one dense layer of width 50000 (Q_θθ of 450000² doubles: 1.6 TB) */
static const char *W50K =
    "{\"name\": \"w50k\", \"seed\": 1, \"batch\": 4, \"input_dim\": 8, \"loss\": {\"kind\": \"ce\", \"classes\": 3},"
    " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 50000, \"act\": \"tanh\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"identity\"}]}],"
    " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"value\": \"blockdiag\", \"lr\": 1.0, \"damping\": 0.1}}";

/* batch 2^20, augmented: B·V_XX of (6·2^20)² doubles */
static const char *B2P20_AUG =
    "{\"name\": \"b2p20\", \"seed\": 1, \"batch\": 1048576, \"input_dim\": 5, \"loss\": {\"kind\": \"ce\", \"classes\": 3},"
    " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 6, \"act\": \"tanh\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"identity\"}]}],"
    " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"value\": \"augmented\", \"lr\": 1.0, \"damping\": 0.1}}";

/* a small augmented game, a few MB at its peak */
static char *moderate(int batch, const char *value)
{
    static const char *fmt =
        "{\"name\": \"moderate\", \"seed\": 3, \"batch\": %d, \"input_dim\": 6, \"loss\": {\"kind\": \"mse\"},"
        " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 6, \"act\": \"tanh\"}]},"
        "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 6, \"act\": \"tanh\"}]},"
        "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 4, \"act\": \"identity\"}]}],"
        " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"value\": \"%s\", \"lr\": 0.5, \"damping\": 0.1}}";
    size_t n = strlen(fmt) + 64;
    char *s = malloc(n);
    cr_assert_not_null(s);
    snprintf(s, n, fmt, batch, value);
    return s;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* `ocn gen` of `json` under `ulimit -v` (KB; 0: none): exit status, output,
 * seconds.  One OpenBLAS thread: with its worker thread, a process near its
 * address-space limit hangs at exit (OpenBLAS 0.3.21: glibc's arena_get2
 * retrying mmap for that thread's arena), after the work is done; the
 * reference uses no BLAS threads anyway.  `timeout` guards against hangs. */
static int gen(const char *json, long vm_kb, char *out, size_t n, double *secs, const char *dir)
{
    char p[512], ulim[64] = "";
    snprintf(p, sizeof p, "%s/g.json", dir);
    put(p, json);
    if (vm_kb > 0) snprintf(ulim, sizeof ulim, "ulimit -v %ld && ", vm_kb);
    double t0 = now();
    /* (the inner shell's own notices, "Segmentation fault" of a start-up
     * under a tiny limit while bisecting, go to /dev/null) */
    int rc = tu_sh(out, n, "sh -c '(%sOPENBLAS_NUM_THREADS=1 exec timeout 120 %s gen %s -o %s/f --force) 2>&1' 2>/dev/null",
                   ulim, OCN_BIN, p, dir);
    if (secs) *secs = now() - t0;
    return rc;
}

/* ---- 1. refused before allocating ---- */

static void expect_refused(const char *json, const char *const *names, int nnames, double max_secs)
{
    char dir[256], out[4096], f[300];
    tu_tmpdir(dir, sizeof dir);
    double secs;
    /* 4 GB of address space: enough to load the program and its libraries,
     * far from the terabytes the game would need */
    int rc = gen(json, TM_ASAN ? 0 : 4000000, out, sizeof out, &secs, dir);
    cr_expect_eq(rc, 2, "exit %d: %s", rc, out);
    cr_expect(strstr(out, "the reference would need about") && strstr(out, " GB of memory"), "no estimate in GB: %s", out);
    cr_expect(strstr(out, "the machine's physical memory") != NULL, "the limit is not named: %s", out);
    for (int i = 0; i < nnames; i++) cr_expect(strstr(out, names[i]) != NULL, "'%s' not named: %s", names[i], out);
    cr_expect(strchr(out, '\n') == out + strlen(out) - 1, "exactly one line: '%s'", out);
    cr_expect_lt(secs, max_secs, "refusal took %.2f s", secs);
    struct stat st;
    snprintf(f, sizeof f, "%s/f", dir);
    cr_expect(stat(f, &st) != 0, "nothing may be written");
    tu_rm_rf(dir);
}

Test(memory, width_50000_is_refused_at_once)
{
    static const char *const names[] = {"w50k: ", "the curvature", "Q_θθ (450000 x 450000 doubles)", "1620.0 GB"};
    expect_refused(W50K, names, 4, 1.0); /* 0.13 s, mostly loading the program */
}

Test(memory, batch_2_20_augmented_is_refused_at_once)
{
    static const char *const names[] = {"b2p20: ", "the stored outputs", "VXX (6291456 x 6291456 doubles)"};
    /* 0.3 s: src/main.c draws the 6 M inputs (ocn_ref_init_inputs) before
     * ocn_ref_run refuses; the margin is for a loaded machine */
    expect_refused(B2P20_AUG, names, 3, 3.0);
}

/* ---- the library: max_memory, the estimate ---- */

Test(memory, max_memory_is_honoured)
{
    char *json = moderate(8, "augmented");
    ocn_game *g = tu_game(json);
    free(json);
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);

    size_t est = 0;
    char dom[400] = "";
    cr_assert_eq(ocn_ref_estimate_memory(g, &g->opt, &est, dom, sizeof dom), OCN_OK);
    cr_expect_gt(est, 10000, "estimate %zu", est);
    cr_expect_lt(est, 100000000, "estimate %zu", est);
    cr_expect(strstr(dom, "the largest: ") != NULL, "%s", dom);
    cr_expect_eq(ocn_ref_estimate_memory(g, &g->opt, NULL, dom, sizeof dom), OCN_EINVAL);

    ocn_ref_opts o = {.fault = OCN_FAULT_NONE, .measure_runs = OCN_CHECK_RUNS, .max_memory = 1000};
    cr_expect_eq(ocn_ref_run(g, &g->opt, in, &o, out, &e), OCN_EUNSUPPORTED);
    cr_expect(strstr(e.msg, "moderate: the reference would need about ") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, " KB of memory") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "over the limit of 1.0 KB (max_memory)") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "mostly ") && strstr(e.msg, "the largest: "), "%s", e.msg);
    cr_expect_eq(out->count, 0, "nothing computed");

    /* the estimate for the measured runs used here is at most the gen one */
    o.max_memory = est;
    cr_expect_eq(ocn_ref_run(g, &g->opt, in, &o, out, &e), OCN_OK, "%s", e.msg);
    ocn_arrayset_free(out);
    out = ocn_arrayset_new();
    o.max_memory = 0; /* the default: the machine's memory */
    cr_expect_eq(ocn_ref_run(g, &g->opt, in, &o, out, &e), OCN_OK, "%s", e.msg);
    cr_expect_gt(out->count, 10);
    ocn_arrayset_free(in), ocn_arrayset_free(out);
    ocn_game_free(g);
    cr_expect_gt(ocn_phys_memory(), (size_t)1 << 26);
    cr_expect_eq(ocn_memory_limit(12345), 12345);
}

static size_t estimate_of(int batch, const char *value)
{
    char *json = moderate(batch, value);
    ocn_game *g = tu_game(json);
    free(json);
    size_t b = 0;
    cr_assert_eq(ocn_ref_estimate_memory(g, &g->opt, &b, NULL, 0), OCN_OK);
    ocn_game_free(g);
    return b;
}

Test(memory, blockdiag_estimate_is_linear_in_the_batch)
{
    /* blockdiag/persample store B blocks of n x n: linear in B; augmented
     * stores (B·n)²: quadratic */
    double bd = (double)estimate_of(4000, "blockdiag") / (double)estimate_of(2000, "blockdiag");
    double ps = (double)estimate_of(4000, "persample") / (double)estimate_of(2000, "persample");
    double au = (double)estimate_of(4000, "augmented") / (double)estimate_of(2000, "augmented");
    cr_expect(bd > 1.8 && bd < 2.2, "blockdiag: x%.2f for twice the batch", bd);
    cr_expect(ps > 1.8 && ps < 2.2, "persample: x%.2f", ps);
    cr_expect(au > 3.8 && au < 4.2, "augmented: x%.2f", au);
}

/* ---- address-space limits: the library in a fresh process ---- */

/* A Criterion test body runs in a thread whose malloc arena already holds
 * mapped, free memory (and grows by mprotect, which RLIMIT_AS does not
 * limit), so a limit set there is not felt.  The test binary is re-executed
 * instead: with OCN_TM_CHILD="batch value runs extra_kb" set, this
 * constructor runs before Criterion in the new process's main thread, builds
 * the moderate game and its inputs, limits the address space to what it
 * uses plus extra_kb, runs the reference, prints its message and exits with
 * its status. */
static size_t vm_now(void) { return ocn_mapped_memory(); }

__attribute__((constructor)) static void tm_child(void)
{
    const char *spec = getenv("OCN_TM_CHILD");
    int batch, runs;
    char value[32];
    long extra_kb;
    if (!spec) return;
    if (sscanf(spec, "%d %31s %d %ld", &batch, value, &runs, &extra_kb) != 4) _exit(100);
    char *json = moderate(batch, value);
    ocn_game *g = NULL;
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    if (ocn_game_load_string(json, "child", &g, &e) || ocn_ref_init_inputs(g, in, &e)) _exit(101);
    struct rlimit rl = {vm_now() + (size_t)extra_kb * 1024, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &rl)) _exit(102);
    ocn_ref_opts o = {.fault = OCN_FAULT_NONE, .measure_runs = runs};
    int rc = ocn_ref_run(g, &g->opt, in, &o, out, &e);
    printf("%s\n", rc ? e.msg : "ok");
    fflush(stdout);
    _exit(rc);
}

/* the reference on moderate(batch, value) with `runs` in a fresh process
 * allowed extra_kb more address space: its status (-1: killed), message */
static int run_limited(int batch, const char *value, int runs, long extra_kb, char *msg, size_t n)
{
    char self[1024];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(k, 0);
    self[k] = 0;
    return tu_sh(msg, n, "OCN_TM_CHILD='%d %s %d %ld' OPENBLAS_NUM_THREADS=1 timeout 120 '%s' 2>&1", batch, value, runs,
                 extra_kb, self);
}

Test(memory, blockdiag_never_allocates_the_full_value_hessian)
{
    if (TM_ASAN) cr_skip_test("address-space limits are not usable under ASan");
    /* B·n = 3000 x 6 = 18000: the full B·V_XX would be 2.6 GB per matrix;
     * the B blocks are 0.9 MB.  Without perturbation runs (their draws for
     * the zero blocks take time, not memory).  256 MB more is plenty. */
    char msg[1024];
    int rc = run_limited(3000, "blockdiag", 0, 256L << 10, msg, sizeof msg);
    cr_expect_eq(rc, OCN_OK, "status %d: %s", rc, msg);
    /* the same game augmented is refused by its estimate (or runs out) */
    rc = run_limited(3000, "augmented", 0, 256L << 10, msg, sizeof msg);
    cr_expect(rc == OCN_EUNSUPPORTED || rc == OCN_ENOMEM, "status %d: %s", rc, msg);
}

Test(memory, allocation_failures_return_enomem_naming_the_array)
{
    if (TM_ASAN) cr_skip_test("address-space limits are not usable under ASan");
    /* the step's allocations fail one after another as the address space
     * allowed grows from nothing to enough: every run ends OK or OCN_ENOMEM
     * with a message naming what was being allocated, never a signal */
    int nomem = 0, ok = 0;
    char msg[1024];
    for (long extra = 0; extra <= 4096; extra += 256) {
        int rc = run_limited(24, "augmented", OCN_CHECK_RUNS, extra, msg, sizeof msg);
        cr_expect(rc == OCN_OK || rc == OCN_ENOMEM, "+%ld KB: status %d: %s", extra, rc, msg);
        if (rc == OCN_ENOMEM) {
            nomem++;
            cr_expect(strstr(msg, "out of memory allocating") || strstr(msg, "out of memory storing the result '"),
                      "+%ld KB: %s", extra, msg);
        }
        ok += rc == OCN_OK;
    }
    cr_expect_gt(nomem, 3, "allocations failed in %d runs", nomem);
    cr_expect_gt(ok, 0, "the game never ran");
}

/* ---- every allocation failing in turn (in process) ---- */

#if !TM_ASAN
/* The test binary's malloc/calloc/realloc pass through to glibc's; on the
 * test's own thread, when tm_fail_at > 0, the tm_fail_at-th call returns
 * NULL, and calls and frees are counted (a leak is a nonzero balance).
 * Left out of sanitizer builds (ASan owns malloc there). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static _Thread_local long tm_fail_at, tm_calls, tm_live;
static _Thread_local int tm_on;
static int tm_fail(void) { return tm_on && ++tm_calls == tm_fail_at; }
void *malloc(size_t n)
{
    if (tm_fail()) return NULL;
    void *p = __libc_malloc(n);
    tm_live += tm_on && p;
    return p;
}
void *calloc(size_t a, size_t b)
{
    if (tm_fail()) return NULL;
    void *p = __libc_calloc(a, b);
    tm_live += tm_on && p;
    return p;
}
void *realloc(void *q, size_t n)
{
    if (tm_fail()) return NULL;
    void *p = __libc_realloc(q, n);
    tm_live += tm_on && p && !q;
    tm_live -= tm_on && q && !n;
    return p;
}
void free(void *p)
{
    tm_live -= tm_on && p;
    __libc_free(p);
}

typedef int (*tm_fn)(const ocn_game *g, const ocn_arrayset *in, ocn_error *e);

static int tm_ref_run(const ocn_game *g, const ocn_arrayset *in, ocn_error *e)
{
    ocn_arrayset *out = ocn_arrayset_new();
    ocn_ref_opts o = {.fault = OCN_FAULT_NONE, .measure_runs = 1};
    int rc = out ? ocn_ref_run(g, &g->opt, in, &o, out, e) : ocn_fail(e, OCN_ENOMEM, "out of memory (the set)");
    ocn_arrayset_free(out);
    return rc;
}

static int tm_backprop(const ocn_game *g, const ocn_arrayset *in, ocn_error *e)
{
    ocn_bp *bp = NULL;
    int rc = ocn_bp_run(g, in, 0, &bp, e);
    ocn_bp_free(bp);
    double loss, J, x[64] = {0}, grad[64];
    if (!rc) rc = ocn_bp_loss_at(g, in, 0, 0, 0, NULL, &loss, e);
    if (!rc) rc = ocn_bp_costtogo(g, in, 0, 0, 0, x, &J, grad, e);
    return rc;
}

static int tm_inputs(const ocn_game *g, const ocn_arrayset *in, ocn_error *e)
{
    (void)in;
    ocn_arrayset *s = ocn_arrayset_new();
    int rc = s ? ocn_ref_init_inputs(g, s, e) : ocn_fail(e, OCN_ENOMEM, "out of memory (the set)");
    ocn_arrayset_free(s);
    return rc;
}

/* fn with its k-th allocation failing, for k = 1, 1 + stride, … (about 250
 * runs): OK or OCN_ENOMEM with a message, nothing left allocated */
static void fail_each(const char *json, tm_fn fn, const char *what)
{
    ocn_game *g = tu_game(json);
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(fn(g, in, &e), OCN_OK, "%s: %s", what, e.msg); /* warm-up: lazily made library state */
    tm_fail_at = 0, tm_calls = 0, tm_live = 0, tm_on = 1;
    int rc = fn(g, in, &e);
    tm_on = 0;
    long total = tm_calls;
    cr_assert_eq(rc, OCN_OK, "%s: %s", what, e.msg);
    cr_assert_eq(tm_live, 0, "%s: %ld allocations not freed", what, tm_live);
    int nomem = 0;
    for (long k = 1; k <= total; k += total / 250 + 1) {
        e = (ocn_error){0};
        tm_fail_at = k, tm_calls = 0, tm_live = 0, tm_on = 1;
        rc = fn(g, in, &e);
        tm_on = 0;
        cr_expect(rc == OCN_OK || rc == OCN_ENOMEM, "%s, allocation %ld of %ld failing: status %d: %s", what, k, total, rc,
                  e.msg);
        if (rc == OCN_ENOMEM) {
            nomem++;
            cr_expect(strstr(e.msg, "out of memory") != NULL, "%s, allocation %ld: %s", what, k, e.msg);
        }
        cr_expect_eq(tm_live, 0, "%s, allocation %ld of %ld failing: %ld allocations not freed (%s)", what, k, total,
                     tm_live, e.msg);
    }
    cr_expect_gt(nomem, total / (total / 250 + 1) / 2, "%s: only %d of the failures were reported", what, nomem);
    tm_fail_at = 0;
    ocn_arrayset_free(in);
    ocn_game_free(g);
}

static const char *GR_KFAC =
    "{\"name\": \"grk\", \"seed\": 5, \"batch\": 3, \"input_dim\": 3, \"outputs\": [\"a\", \"b\"],"
    " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"a\", \"out_dim\": 2, \"act\": \"tanh\"},"
    "   {\"lane\": 1, \"kind\": \"bias\", \"in\": \"z\", \"out\": \"b\", \"out_dim\": 2, \"act\": \"sigmoid\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"a\", \"out\": \"a\", \"out_dim\": 2, \"act\": \"identity\"},"
    "   {\"lane\": 1, \"kind\": \"dense\", \"in\": \"b\", \"out\": \"b\", \"out_dim\": 2, \"act\": \"identity\"}]}],"
    " \"loss\": {\"kind\": \"mse\", \"lane_outputs\": [[\"a\"], [\"b\"]]},"
    " \"optimizer\": {\"game\": \"gr\", \"curvature\": \"coop-kfac\", \"dynamics\": \"full\", \"value\": \"augmented\","
    "   \"lr\": 0.5, \"damping\": 0.1}}";
#endif

Test(memory, every_allocation_failing_in_turn_is_clean)
{
#if TM_ASAN
    cr_skip_test("the allocation counter replaces malloc: not under ASan");
#else
    fail_each(TU_RESBLOCK, tm_ref_run, "ocn_ref_run (FNE blockdiag)");
    fail_each(GR_KFAC, tm_ref_run, "ocn_ref_run (GR coop-kfac, full, augmented)");
    char *json = moderate(4, "persample");
    fail_each(json, tm_ref_run, "ocn_ref_run (persample)");
    free(json);
    fail_each(TU_RESBLOCK, tm_backprop, "backprop");
    fail_each(GR_KFAC, tm_backprop, "backprop (separable)");
    fail_each(TU_RESBLOCK, tm_inputs, "ocn_ref_init_inputs");
#endif
}

Test(memory, gen_out_of_memory_mid_run_exits_3)
{
    if (TM_ASAN) cr_skip_test("ulimit -v is not usable under ASan");
    char dir[256], out[4096];
    tu_tmpdir(dir, sizeof dir);
    /* the address space `ocn gen` needs for a trivial game (libraries loaded) */
    char *tiny = moderate(2, "blockdiag"), *mod = moderate(24, "augmented");
    long lo = 0, hi = 16L << 20; /* KB */
    cr_assert_eq(gen(tiny, hi, out, sizeof out, NULL, dir), 0, "%s", out);
    while (hi - lo > 1024) {
        long mid = lo + (hi - lo) / 2;
        if (gen(tiny, mid, out, sizeof out, NULL, dir) == 0) hi = mid;
        else lo = mid;
    }
    /* the moderate game (tens of MB) from there up: exit 3 naming what was
     * being allocated, or 0; never a signal */
    int three = 0, zero = 0;
    for (long kb = hi; kb <= hi + (48L << 10); kb += 4096) {
        int rc = gen(mod, kb, out, sizeof out, NULL, dir);
        cr_expect(rc == 0 || rc == 3, "ulimit -v %ld: exit %d: %s", kb, rc, out);
        if (rc == 3) {
            three++;
            cr_expect(strstr(out, "out of memory") != NULL, "ulimit -v %ld: %s", kb, out);
            cr_expect(strchr(out, '\n') == out + strlen(out) - 1, "exactly one line: '%s'", out);
        }
        zero += rc == 0;
    }
    cr_expect_gt(three, 0, "no run failed for memory");
    cr_expect_gt(zero, 0, "no run had enough memory");
    free(tiny), free(mod);
    tu_rm_rf(dir);
}

/* Under an address-space limit OpenBLAS retried the mmap of its work buffer
 * forever: every command hung (`ulimit -v 300000`: `ocn check` never
 * returned).  Now a run refuses (exit 3, naming the limit) or computes; never
 * a hang.  Below ~200 MB OpenBLAS hangs in its own start-up code even for
 * `ocn --version` (docs/decisions.md), so the limits here stay above it. */
Test(memory, address_space_limit_refused_not_hung)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer's shadow memory does not run under ulimit -v");
#else
    char out[8192];
    int rc = tu_sh(out, sizeof out,
                   "bash -c 'ulimit -v 300000; OPENBLAS_NUM_THREADS=2 timeout 30 %s check --precision f64 "
                   "fixtures/mlp-tanh-ce' 2>&1",
                   OCN_BIN);
    cr_expect(rc == 3 || rc == 0, "exit %d (124 = hung): %s", rc, out);
    if (rc == 3) cr_expect(strstr(out, "address-space limit") != NULL, "%s", out);
    rc = tu_sh(out, sizeof out,
               "bash -c 'ulimit -v 700000; OPENBLAS_NUM_THREADS=2 timeout 30 %s check --precision f64 fixtures/mlp-tanh-ce' 2>&1",
               OCN_BIN);
    cr_expect_eq(rc, 0, "a limit with room computes: exit %d: %s", rc, out);
#endif
}

/* ---- the optimized path's estimate (optimized/estimate.c) ---- */

/* Refused before anything is allocated or even read: a width-10000 kfac
 * layer (factors 10001² and 10000², 2.4 GB in float64; θ alone 0.8 GB)
 * under a 1 GB max_memory, with the estimate and the dominating part, here
 * given no inputs at all. */
Test(memory, optimized_path_refuses_what_cannot_fit)
{
    const char *json =
        "{\"name\": \"w10k-opt\", \"seed\": 1, \"batch\": 4, \"input_dim\": 10000, \"loss\": {\"kind\": \"mse\"},"
        " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 10000,"
        " \"act\": \"identity\"}]}],"
        " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"kfac\", \"lr\": 0.1, \"damping\": 0.1}}";
    ocn_game *g = tu_game(json);
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .max_memory = (size_t)1 << 30};
    ocn_error e = {0};
    int rc = ocn_opt_run(g, &g->opt, in, &cfg, out, &e);
    cr_expect_eq(rc, OCN_EUNSUPPORTED, "status %d: %s", rc, e.msg);
    cr_expect(strstr(e.msg, "the optimized path would need about") && strstr(e.msg, "(max_memory); mostly "), "%s", e.msg);
    cr_expect_eq(out->count, 0);
    ocn_arrayset_free(in), ocn_arrayset_free(out);
    ocn_game_free(g);
}

/* A small game computes under the default limit and is refused under a
 * max_memory below its estimate (docs/decisions.md gives the estimate's
 * accuracy against measured peaks). */
Test(memory, optimized_estimate_is_honoured)
{
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read("fixtures/mlp-w24-kfac", &f, &e), OCN_OK, "%s", e.msg);
    ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .form_limit = 1 << 20};
    double est = ocn_opt_estimate_memory(f->game, &f->game->opt, &cfg, NULL, 0);
    cr_expect(est > 1e5 && est < 1e8, "estimate %g bytes", est);
    ocn_arrayset *out = ocn_arrayset_new();
    cr_expect_eq(ocn_opt_run(f->game, &f->game->opt, f->arrays, &cfg, out, &e), OCN_OK, "%s", e.msg);
    ocn_arrayset_free(out);
    out = ocn_arrayset_new();
    cfg.max_memory = (size_t)(est / 2);
    cr_expect_eq(ocn_opt_run(f->game, &f->game->opt, f->arrays, &cfg, out, &e), OCN_EUNSUPPORTED, "%s", e.msg);
    cr_expect(strstr(e.msg, "(max_memory)") != NULL, "%s", e.msg);
    cr_expect_eq(out->count, 0);
    ocn_arrayset_free(out);
    ocn_fixture_free(f);
}
