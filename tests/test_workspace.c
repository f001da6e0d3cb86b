/* The optimized step's workspace (issue 11 item 1, issue 10 "every
 * allocation is checked"): one buffer planned from the game by estimate.c's
 * model, allocated and checked once, reused across the steps of a state.
 *   1. The plan holds: every shipped fixture, f64 and f32, one-step and
 *      trajectory, runs in strict mode (an allocation beyond the plan fails)
 *      with the same arrays as without it.
 *   2. Every allocation failure is a clean OCN_ENOMEM naming what failed,
 *      nothing handed back, no crash, no leak (`make test SANITIZE=1`: ASan's
 *      leak check at exit): the test-only countdown fails the 1st, 2nd, …
 *      allocation of a run (workspace, step buffers, §13 state) until the run
 *      succeeds.
 *   3. A state's steps reuse their buffers: steps after the first take
 *      (almost) no fresh pages from the kernel (getrusage minor faults). */
#include "util.h"
#include "ocn/fixture.h"
#include "ocn/optimized.h"
#include "ocn/reference.h"
#include "../optimized/opt.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int run_fixture(ocn_fixture *f, const ocn_opt_config *cfg, ocn_arrayset *out, ocn_error *e)
{
    return f->trajectory ? ocn_opt_run_trajectory(f->game, &f->game->opt, f->arrays, cfg, out, e)
                         : ocn_opt_run(f->game, &f->game->opt, f->arrays, cfg, out, e);
}

static int same_sets(const ocn_arrayset *a, const ocn_arrayset *b)
{
    if (a->count != b->count) return 0;
    for (int i = 0; i < a->count; i++) {
        const ocn_array *y = ocn_arrayset_find(b, a->a[i].name);
        if (!y || y->size != a->a[i].size || memcmp(y->data, a->a[i].data, y->size * sizeof(double))) return 0;
    }
    return 1;
}

Test(workspace, the_plan_holds_for_every_fixture)
{
    DIR *d = opendir("fixtures");
    cr_assert(d != NULL);
    struct dirent *de;
    int ran = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char dir[512];
        snprintf(dir, sizeof dir, "fixtures/%s", de->d_name);
        ocn_fixture *f = NULL;
        ocn_error e = {0};
        if (ocn_fixture_read(dir, &f, &e)) continue;
        for (int prec = 32; prec <= 64; prec += 32) {
            ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .form_limit = 1 << 20};
            ocn_arrayset *a = ocn_arrayset_new(), *b = ocn_arrayset_new();
            int rc = run_fixture(f, &cfg, a, &e);
            cfg.fail_alloc_at = -1; /* strict: nothing beyond the plan */
            ocn_error e2 = {0};
            int rc2 = run_fixture(f, &cfg, b, &e2);
            if (!rc) {
                cr_expect_eq(rc2, OCN_OK, "%s f%d: beyond its planned workspace: %s", dir, prec, e2.msg);
                cr_expect(same_sets(a, b), "%s f%d: strict run differs", dir, prec);
                ran++;
            } else {
                cr_expect_eq(rc2, rc, "%s f%d: %s / %s", dir, prec, e.msg, e2.msg);
            }
            ocn_arrayset_free(a), ocn_arrayset_free(b);
        }
        ocn_fixture_free(f);
    }
    closedir(d);
    cr_expect_gt(ran, 40, "ran %d fixture runs", ran);
}

/* The strict mode can fail: a plan of a few bytes is exceeded at once. */
Test(workspace, a_plan_too_small_is_caught_in_strict_mode)
{
    ocn_ws *ws = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_ws_new(64, -1, &ws, &e), OCN_OK);
    jmp_buf jb;
    cr_assert_eq(ocn_ws_begin(ws, &jb, &e), OCN_OK);
    volatile int jumped = 0;
    if (setjmp(jb)) {
        jumped = 1;
    } else {
        ocn_ws_keep(ws, 32, "a small buffer");
        ocn_ws_tmp(ws, 4096, "the big buffer");
    }
    ocn_ws_end(ws);
    cr_expect(jumped);
    ocn_ws_error(ws, &e);
    cr_expect(strstr(e.msg, "plan") && strstr(e.msg, "the big buffer"), "%s", e.msg);
    ocn_ws_free(ws);
}

/* Fails the k-th allocation for k = 1, 2, … until the run succeeds; every
 * failure must be OCN_ENOMEM with "out of memory" and a name, nothing added. */
static int countdown(const char *fixture, int prec, int stateful)
{
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(fixture, &f, &e), OCN_OK, "%s", e.msg);
    int k;
    for (k = 1; k < 100000; k++) {
        ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .form_limit = 1 << 20, .fail_alloc_at = k};
        ocn_arrayset *out = ocn_arrayset_new();
        int rc;
        if (stateful) { /* two steps of a §13 state: the state's buffers are counted too */
            ocn_opt_state *st = NULL;
            rc = ocn_opt_state_new(f->game, &f->game->opt, &cfg, &st, &e);
            for (int s = 0; !rc && s < 2; s++) rc = ocn_opt_step(st, f->arrays, out, &e);
            ocn_opt_state_free(st);
        } else {
            rc = run_fixture(f, &cfg, out, &e);
        }
        int outs = out->count;
        ocn_arrayset_free(out);
        if (rc == OCN_OK) break;
        cr_expect_eq(rc, OCN_ENOMEM, "%s f%d: allocation %d: status %d: %s", fixture, prec, k, rc, e.msg);
        cr_expect(strstr(e.msg, "out of memory") != NULL, "%s: allocation %d: %s", fixture, prec, k, e.msg);
        cr_expect(strstr(e.msg, "out of memory: ") || strstr(e.msg, "out of memory ("), "names nothing: %s", e.msg);
        if (!stateful) cr_expect_eq(outs, 0, "%s: allocation %d failed but %d arrays were handed back", fixture, k, outs);
    }
    ocn_fixture_free(f);
    return k;
}

Test(workspace, every_allocation_failure_is_a_clean_error)
{
    static const char *const fx[] = {"fixtures/mlp-tanh-ce",          "fixtures/mlp-relu-mse-kfac",
                                     "fixtures/coop-w12-coopkfac-gr", "fixtures/mlp-tanh-ce-gnouter-outer",
                                     "fixtures/conv-2c-kfac-fne",     "fixtures/traj-fne-rmsprop"};
    int total = 0;
    for (size_t i = 0; i < sizeof fx / sizeof *fx; i++) {
        int k = countdown(fx[i], 64, 0);
        cr_expect_gt(k, 20, "%s: only %d allocations counted", fx[i], k);
        total += k;
    }
    total += countdown("fixtures/mlp-relu-mse-kfac", 32, 0);
    total += countdown("fixtures/mlp-relu-mse-kfac", 64, 1); /* §13 state: kfac averages */
    cr_log_info("%d allocation failures injected", total);
}

static long minflt(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

/* A state's steps after the first reuse its workspace and its output arrays:
 * 4 MB of buffers per step, against (almost) no fresh pages. */
Test(workspace, a_states_steps_take_no_fresh_pages)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer's allocator hands out fresh pages by design (quarantine)");
#endif
    const char *json =
        "{\"name\": \"ws-pages\", \"seed\": 1, \"batch\": 64, \"input_dim\": 256, \"loss\": {\"kind\": \"ce\", \"classes\": 10},"
        " \"weight_decay\": 1e-4, \"stages\": ["
        "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 256, \"act\": \"tanh\"}]},"
        "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 10, \"act\": \"identity\"}]}],"
        " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"kfac\", \"lr\": 0.1, \"damping\": 0.01}}";
    ocn_game *g = tu_game(json);
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    ocn_opt_config cfg = {.backend = "cpu", .precision = 32, .lean = 1};
    ocn_opt_state *st = NULL;
    cr_assert_eq(ocn_opt_state_new(g, &g->opt, &cfg, &st, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(ocn_opt_step(st, in, out, &e), OCN_OK, "%s", e.msg);
    long f0 = minflt();
    for (int s = 0; s < 5; s++) cr_assert_eq(ocn_opt_step(st, in, out, &e), OCN_OK, "%s", e.msg);
    long per = (minflt() - f0) / 5;
    /* 4 MB of fresh buffers would be ~1000 faults per step */
    cr_expect_lt(per, 100, "%ld minor page faults per step", per);
    ocn_opt_state_free(st);
    ocn_arrayset_free(in), ocn_arrayset_free(out);
    ocn_game_free(g);
}

/* A lean step (a training step: θ_new only) skips what only other outputs
 * need — stage 0's Q_x/q_x/value recursion and feedback (δx_0 = 0), the x̂
 * forward pass past the last feedback (issue 11 item 4) — and must hand back
 * bit for bit the θ_new of the full step, on every one-step fixture. */
Test(workspace, lean_steps_hand_back_the_same_theta_new)
{
    DIR *d = opendir("fixtures");
    cr_assert(d != NULL);
    struct dirent *de;
    int compared = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char dir[512];
        snprintf(dir, sizeof dir, "fixtures/%s", de->d_name);
        ocn_fixture *f = NULL;
        ocn_error e = {0};
        if (ocn_fixture_read(dir, &f, &e)) continue;
        for (int prec = 32; prec <= 64 && !f->trajectory; prec += 32) {
            ocn_opt_config full = {.backend = "cpu", .precision = prec}, lean = full;
            lean.lean = 1;
            ocn_arrayset *a = ocn_arrayset_new(), *b = ocn_arrayset_new();
            int rc = ocn_opt_run(f->game, &f->game->opt, f->arrays, &full, a, &e);
            int rc2 = ocn_opt_run(f->game, &f->game->opt, f->arrays, &lean, b, &e);
            cr_expect_eq(rc2 != 0, rc != 0, "%s f%d: %d vs %d", dir, prec, rc, rc2);
            for (int i = 0; !rc && !rc2 && i < a->count; i++) {
                if (strncmp(a->a[i].name, "theta_new_", 10)) continue;
                const ocn_array *y = ocn_arrayset_find(b, a->a[i].name);
                cr_expect(y && !memcmp(y->data, a->a[i].data, y->size * sizeof(double)), "%s f%d: %s differs", dir, prec,
                          a->a[i].name);
                compared++;
            }
            if (!rc && !rc2)
                for (int i = 0; i < b->count; i++)
                    cr_expect(!strncmp(b->a[i].name, "theta_new_", 10), "%s: lean handed back %s", dir, b->a[i].name);
            ocn_arrayset_free(a), ocn_arrayset_free(b);
        }
        ocn_fixture_free(f);
    }
    closedir(d);
    cr_expect_gt(compared, 100, "%d θ_new arrays compared", compared);
}
