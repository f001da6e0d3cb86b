/* SPEC §14 conv players: loader (fields, dimensions, one clear error per bad
 * field), and the reference's conv arithmetic against the harness's own. */
#include "util.h"
#include "ocn/optimized.h"
#include "ocn/train.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

/* 2 conv (stride 2, same) + dense; input [1, 4, 4]. */
static const char *CONV_GAME =
    "{\"name\": \"t-conv\", \"seed\": 3, \"batch\": 2, \"input_dim\": 16,"
    " \"loss\": {\"kind\": \"ce\", \"classes\": 3}, \"weight_decay\": 1e-3,"
    " \"stages\": ["
    "  {\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [1, 4, 4],"
    "    \"out_channels\": 2, \"kernel\": 3, \"stride\": 2, \"padding\": \"same\", \"act\": \"tanh\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [2, 2, 2],"
    "    \"out_channels\": 2, \"kernel\": 3, \"act\": \"tanh\"}]},"
    "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"identity\"}]}"
    " ],"
    " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"kfac\", \"lr\": 1.0, \"damping\": 0.1}}";

Test(conv, layout)
{
    ocn_game *g = tu_game(CONV_GAME);
    const ocn_player *a = &g->stages[0].players[0], *b = &g->stages[1].players[0];
    cr_assert_eq(a->kind, OCN_PLAYER_CONV);
    cr_assert_eq(a->conv.pad, 1, "same, k = 3: pad 1");
    cr_assert_eq(a->conv.ho, 2, "floor((4 + 2 - 3)/2) + 1 = 2");
    cr_assert_eq(a->out_dim, 8);
    cr_assert_eq(a->m, 2 * (1 * 9 + 1), "m = C_o (C k^2 + 1)");
    cr_assert_eq(b->conv.s, 1, "stride defaults to 1");
    cr_assert_eq(b->conv.same, 1, "padding defaults to same");
    cr_assert_eq(b->out_dim, 8);
    cr_assert_eq(b->m, 2 * (2 * 9 + 1));
    cr_assert_eq(ocn_player_na(b), 19);
    cr_assert_eq(ocn_player_ng(b), 2);
    cr_assert_eq(g->n[2], 8);
    cr_assert(ocn_game_has_conv(g));
    ocn_game_free(g);
}

static void expect_bad(const char *from, const char *to, const char *want)
{
    char buf[8192];
    const char *p = strstr(CONV_GAME, from);
    cr_assert(p != NULL, "test bug: '%s' not in the game", from);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - CONV_GAME), CONV_GAME, to, p + strlen(from));
    ocn_error e = {0};
    ocn_game *g = NULL;
    int rc = ocn_game_load_string(buf, "bad.json", &g, &e);
    cr_assert_eq(rc, OCN_EINVAL, "expected an error for '%s'", want);
    cr_assert_null(g);
    cr_assert(strstr(e.msg, want) != NULL, "message '%s' does not contain '%s'", e.msg, want);
}

Test(conv, bad_fields)
{
    expect_bad("\"in_shape\": [1, 4, 4],", "", "stage 0 player 0: in_shape missing");
    expect_bad("[1, 4, 4]", "[1, 4]", "stage 0 player 0: in_shape must be an array [C, H, W]");
    expect_bad("[1, 4, 4]", "[1, 0, 4]", "stage 0 player 0: in_shape[1] must be an integer");
    expect_bad("[1, 4, 4]", "[2, 4, 4]", "stage 0 player 0: in_shape [2, 4, 4] has C*H*W = 32, but its input block 'z' has dim 16");
    expect_bad("\"out_channels\": 2, \"kernel\": 3, \"stride\": 2", "\"kernel\": 3, \"stride\": 2",
               "stage 0 player 0: out_channels missing");
    expect_bad("\"out_channels\": 2, \"kernel\": 3, \"stride\": 2", "\"out_channels\": 0, \"kernel\": 3, \"stride\": 2",
               "stage 0 player 0: out_channels = 0 out of range");
    expect_bad("\"kernel\": 3, \"stride\": 2", "\"kernel\": 2, \"stride\": 2",
               "stage 0 player 0: kernel 2 must be odd with padding 'same'");
    expect_bad("\"kernel\": 3, \"stride\": 2, \"padding\": \"same\"", "\"kernel\": 5, \"stride\": 2, \"padding\": \"valid\"",
               "stage 0 player 0: kernel 5 larger than the unpadded input 4 x 4");
    expect_bad("\"stride\": 2", "\"stride\": 0", "stage 0 player 0: stride = 0 out of range");
    expect_bad("\"padding\": \"same\"", "\"padding\": \"full\"", "stage 0 player 0: padding: unknown value 'full'");
    expect_bad("\"stride\": 2,", "\"stride\": 2, \"out_dim\": 9,",
               "stage 0 player 0: out_dim 9 does not match the conv output out_channels*H_o*W_o = 2*2*2 = 8");
    expect_bad("\"out_dim\": 3, \"act\": \"identity\"", "\"out_dim\": 3, \"kernel\": 3, \"act\": \"identity\"",
               "stage 2 player 0: kernel is only for kind 'conv'");
    expect_bad("\"curvature\": \"kfac\"", "\"curvature\": \"coop-kfac\"",
               "stage 0 player 0: optimizer curvature 'coop-kfac' is not defined on a stage with a conv player");
    /* a valid conv whose output no longer fits the next stage's in_shape */
    expect_bad("\"stride\": 2, \"padding\": \"same\"", "\"stride\": 1, \"padding\": \"same\"",
               "stage 1 player 0: in_shape [2, 2, 2] has C*H*W = 8, but its input block 'z' has dim 32");
}

/* §11 v2: the normalised form fills the §14 defaults and keeps the game the same. */
Test(conv, normalised)
{
    ocn_game *g = tu_game(CONV_GAME);
    void *n = ocn_game_normalised(g);
    char *s = json_dumps(n, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert(strstr(s, "\"in_shape\":[2,2,2],\"kernel\":3,\"kind\":\"conv\",\"lane\":0,\"out\":\"z\",\"out_channels\":2,"
                        "\"out_dim\":8,\"padding\":\"same\",\"stride\":1") != NULL, "%s", s);
    ocn_game *h = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_game_load_string(s, "norm", &h, &e), 0, "%s", e.msg);
    char diff[128];
    cr_assert(ocn_game_same(g, h, diff, sizeof diff), "differs at %s", diff);
    free(s);
    json_decref(n);
    ocn_game_free(h);
    ocn_game_free(g);
}

/* Runs the checks matching `filter` on a shipped conv fixture, with the
 * reference's kernel index transposed in player p of stage t when fault. */
static void run_checks(const char *dir, const char *filter, int t, int p, int fault, int *fail, int *pass)
{
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(dir, &f, &e), 0, "%s", e.msg);
    f->game->stages[t].players[p].conv.fault = fault;
    ocn_report *r = ocn_report_new();
    ocn_ref_opts o = {0};
    cr_assert_eq(ocn_theorems_select(f, &o, filter, r, &e), 0, "%s", e.msg);
    *fail = ocn_report_failures(r), *pass = ocn_report_passes(r);
    ocn_report_free(r);
    ocn_fixture_free(f);
}

/* CONV-DENSE (§14): the covering conv equals the dense layer to rounding, and
 * a transposed kernel index (W[o, (c·k + j)·k + i]) in the reference's conv is caught. */
Test(conv, conv_dense_catches_transposed_kernel)
{
    int fail, pass;
    run_checks("fixtures/conv-inception-exact-gr", "CONV-DENSE", 0, 0, 0, &fail, &pass);
    cr_assert_eq(fail, 0);
    cr_assert_gt(pass, 10, "every output array compared (%d rows)", pass);
    run_checks("fixtures/conv-inception-exact-gr", "CONV-DENSE", 0, 0, 1, &fail, &pass);
    cr_assert_gt(fail, 5, "a transposed kernel must fail CONV-DENSE (%d failed)", fail);
}

/* T6-base kfac on conv: the harness's own KFC factors (harness/check_conv.c)
 * agree with the reference's, and catch the transposed kernel in the
 * reference's patches.  GRAD and P2 (finite differences) run on conv too. */
Test(conv, t6base_kfc_and_fd_checks)
{
    int fail, pass;
    run_checks("fixtures/conv-2c-kfac-fne", "T6-base", 0, 0, 0, &fail, &pass);
    cr_assert_eq(fail, 0);
    cr_assert_gt(pass, 0);
    run_checks("fixtures/conv-2c-kfac-fne", "T6-base", 0, 0, 1, &fail, &pass);
    cr_assert_gt(fail, 0, "the reference's transposed patches must fail T6-base");
    run_checks("fixtures/conv-2c-kfac-fne", "GRAD", 0, 0, 0, &fail, &pass);
    cr_assert(fail == 0 && pass > 0);
    run_checks("fixtures/conv-2c-kfac-fne", "P2", 0, 0, 0, &fail, &pass);
    cr_assert(fail == 0 && pass > 0, "P2 (full dynamics, conv second-order terms) vs FD: %d failed", fail);
}

/* the optimized path refuses conv (reference-only in this slice, §14) */
Test(conv, optimized_refuses)
{
    ocn_game *g = tu_game(CONV_GAME);
    /* conv runs on the optimized path (tests/test_opt_conv.c); coop-kfac on a conv stage is refused */
    cr_assert_null(ocn_opt_unsupported(g, &g->opt));
    g->opt.curvature = OCN_CURV_COOP_KFAC;
    const char *why = ocn_opt_unsupported(g, &g->opt);
    cr_assert(why && strstr(why, "coop-kfac on a stage with a conv player"), "%s", why ? why : "(null)");
    ocn_game_free(g);
}

/* §14's formula written out here (h[o,y,x] = b[o] + Σ_{c,i,j} W[o,(c·k+i)·k+j]
 * z_pad[c, y·s+i, x·s+j], channel-major, θ column-major) against the
 * reference's states of the 2-conv fixture: stride 2 and same padding
 * (stage 0), stride 1 on a 2 x 2 image with 3 x 3 kernels (stage 1).  Bound:
 * the summation error (K + 1)·u·(|b| + Σ|W z|) (σ is 1-Lipschitz).  Returns
 * the number of outputs outside it. */
static int formula_misses(int fault)
{
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read("fixtures/conv-2c-kfac-fne", &f, &e), 0, "%s", e.msg);
    f->game->stages[0].players[0].conv.fault = fault;
    ocn_arrayset *r = ocn_arrayset_new();
    ocn_ref_opts ro = {0};
    cr_assert_eq(ocn_ref_run(f->game, &f->game->opt, f->arrays, &ro, r, &e), 0, "%s", e.msg);
    int B = f->game->batch, miss = 0;
    for (int t = 0; t < 2; t++) {
        const ocn_player *pl = &f->game->stages[t].players[0];
        const ocn_conv *q = &pl->conv;
        char nm[64];
        snprintf(nm, sizeof nm, "x_t%d", t);
        const double *X = ocn_arrayset_find(r, nm)->data;
        snprintf(nm, sizeof nm, "x_t%d", t + 1);
        const double *X1 = ocn_arrayset_find(r, nm)->data;
        snprintf(nm, sizeof nm, "theta_t%d_n0", t);
        const double *th = ocn_arrayset_find(f->arrays, nm)->data;
        int K = q->c * q->k * q->k, pad = (q->k - 1) / 2, n = q->c * q->h * q->w, n1 = pl->out_dim;
        for (int i = 0; i < B; i++)
            for (int o = 0; o < q->co; o++)
                for (int y = 0; y < q->ho; y++)
                    for (int x = 0; x < q->wo; x++) {
                        double h = th[(size_t)K * q->co + o], sa = fabs(h);
                        for (int c = 0; c < q->c; c++)
                            for (int a = 0; a < q->k; a++)
                                for (int b = 0; b < q->k; b++) {
                                    int yy = y * q->s + a - pad, xx = x * q->s + b - pad;
                                    if (yy < 0 || yy >= q->h || xx < 0 || xx >= q->w) continue;
                                    double w = th[(size_t)((c * q->k + a) * q->k + b) * q->co + o] *
                                               X[(size_t)i * n + (size_t)(c * q->h + yy) * q->w + xx];
                                    h += w, sa += fabs(w);
                                }
                        double want = t == 1 ? (h > 0 ? h : 0) : tanh(h);
                        double got = X1[(size_t)i * n1 + (size_t)(o * q->ho + y) * q->wo + x];
                        miss += !(fabs(got - want) <= (K + 1) * 0x1p-53 * sa + 0x1p-53 * fabs(want));
                    }
    }
    ocn_arrayset_free(r);
    ocn_fixture_free(f);
    return miss;
}

Test(conv, forward_matches_spec_formula)
{
    cr_assert_eq(formula_misses(0), 0, "the reference's conv is §14's cross-correlation");
    cr_assert_gt(formula_misses(1), 4, "a transposed kernel index is caught");
}

/* ocn train on a conv network: refused by name in session 3 (before that,
 * --optimizer sgd dereferenced a missing fixed W and crashed); accepted since
 * issue 14 item 6: the net builds with the game's parameter count (conv
 * training itself is tested in tests/test_train.c). */
Test(conv, train_accepts)
{
    ocn_game *g = tu_game(CONV_GAME);
    ocn_net *net = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_net_new(g, &net, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(ocn_net_nparams(net), ocn_game_nparams(g));
    ocn_net_free(net);
    ocn_game_free(g);
}

/* P3 / E1 on a conv network with terminal outer (DDPNOpt Prop. 3, the
 * factorisation of its CNN rows): the harness's own conv θ-VJP and KFC
 * factors (harness/check_conv.c) reproduce the dense V_xx, and catch the
 * reference's transposed kernel. */
Test(conv, p3_on_conv)
{
    int fail, pass;
    run_checks("fixtures/conv-outer-kfac-fne", "P3*", 0, 0, 0, &fail, &pass);
    cr_assert(fail == 0 && pass >= 6, "P3 on conv: %d failed, %d passed", fail, pass);
    run_checks("fixtures/conv-outer-kfac-fne", "P3*", 0, 0, 1, &fail, &pass);
    cr_assert_gt(fail, 0, "P3 must catch the transposed kernel");
}
