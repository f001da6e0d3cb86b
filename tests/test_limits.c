/* Issue 10: the loader's limits and the data model's sizes.
 *   1. one player limit (OCN_MAX_PLAYERS): more players, or a lane beyond it,
 *      are refused naming the stage; exactly OCN_MAX_PLAYERS runs clean;
 *   2. sizes that do not fit `int`/`size_t` are refused, no signed overflow;
 *   3. an arrayset pointer is not held across an add (1 dense + 16 bias);
 *   4. loader/CLI messages say what is actually wrong.
 * Limits and ranges: docs/decisions.md, "Limits (issue 10)". */
#include "util.h"

#include <sys/stat.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing string. */
typedef struct {
    char *s;
    size_t n, cap;
} sb;

static void sb_add(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)k + 1 > b->cap) {
        b->cap = (b->n + (size_t)k + 1) * 2;
        b->s = realloc(b->s, b->cap);
        cr_assert_not_null(b->s);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static const char *PLAYER = "{\"lane\": %d, \"kind\": \"bias\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 1, \"act\": \"identity\"}";

/* GR game: one stage of `np` bias players on lanes first_lane, first_lane+1, … */
static char *gr_players(int np, int first_lane)
{
    sb b = {0};
    sb_add(&b, "{\"name\": \"p%d\", \"seed\": 1, \"batch\": 2, \"input_dim\": 1, \"loss\": {\"kind\": \"mse\"},"
               " \"stages\": [{\"players\": [", np);
    for (int i = 0; i < np; i++) {
        if (i) sb_add(&b, ", ");
        sb_add(&b, PLAYER, first_lane + i);
    }
    sb_add(&b, "]}], \"optimizer\": {\"game\": \"gr\", \"curvature\": \"sgd\", \"lr\": 0.1}}");
    return b.s;
}

/* Writes `text` to DIR/g.json and expects `ocn SUB DIR/g.json [-o DIR/out]`
 * to exit 2 with one line naming the file and `want`, writing nothing. */
static void expect_cli_refusal(const char *sub, const char *text, const char *want)
{
    char dir[256], p[512], q[512], cmd[2048], w[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/g.json", dir);
    snprintf(q, sizeof q, "%s/out", dir);
    put(p, text);
    if (!strcmp(sub, "gen")) snprintf(cmd, sizeof cmd, "%s gen %s -o %s", OCN_BIN, p, q);
    else snprintf(cmd, sizeof cmd, "%s %s %s", OCN_BIN, sub, p);
    snprintf(w, sizeof w, "%s: %s", p, want);
    tu_expect_exit2(cmd, w, q);
    tu_rm_rf(dir);
}

static void expect_load_refusal(const char *text, const char *want)
{
    ocn_error e = {0};
    ocn_game *g = NULL;
    int rc = ocn_game_load_string(text, "big.json", &g, &e);
    cr_expect_eq(rc, OCN_EINVAL, "loaded (rc %d) instead of refusing: want '%s'", rc, want);
    cr_expect_null(g);
    cr_expect(strstr(e.msg, want) != NULL, "message '%s' does not name '%s'", e.msg, want);
    ocn_game_free(g);
}

/* ---- 1. one player limit ---- */

Test(limits, players_beyond_the_limit_are_refused_naming_the_stage)
{
    char want[128];
    char *g = gr_players(OCN_MAX_PLAYERS + 1, 0); /* was: exit 0 with a fixture failing its own verify */
    snprintf(want, sizeof want, "stage 0: %d players, at most %d", OCN_MAX_PLAYERS + 1, OCN_MAX_PLAYERS);
    expect_cli_refusal("gen", g, want);
    free(g);
    g = gr_players(70, 0); /* was: SIGSEGV (int players[64] overflowed) */
    snprintf(want, sizeof want, "stage 0: 70 players, at most %d", OCN_MAX_PLAYERS);
    expect_cli_refusal("gen", g, want);
    free(g);
    /* lanes are 0 .. OCN_MAX_PLAYERS-1: a lane beyond it is refused even with few players */
    g = gr_players(2, OCN_MAX_PLAYERS - 1);
    snprintf(want, sizeof want, "stage 0 player 1: lane %d out of range [0, %d]", OCN_MAX_PLAYERS, OCN_MAX_PLAYERS - 1);
    expect_cli_refusal("normalise", g, want);
    free(g);
    g = gr_players(1, 1023); /* the old limit */
    expect_cli_refusal("gen", g, "stage 0 player 0: lane 1023 out of range");
    free(g);
}

Test(limits, exactly_the_player_limit_generates_and_verifies)
{
    char dir[256], p[512], out[8192];
    tu_tmpdir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/g.json", dir);
    char *g = gr_players(OCN_MAX_PLAYERS, 0);
    put(p, g);
    free(g);
    int rc = tu_sh(out, sizeof out, "%s gen %s -o %s/f 2>&1", OCN_BIN, p, dir);
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_sh(out, sizeof out, "%s verify %s/f 2>&1", OCN_BIN, dir);
    cr_expect_eq(rc, 0, "a %d-player GR fixture fails its own verify: %s", OCN_MAX_PLAYERS, out);
    rc = tu_sh(out, sizeof out, "%s theorems %s/f 2>&1", OCN_BIN, dir);
    cr_expect_eq(rc, 0, "theorems on %d players: %s", OCN_MAX_PLAYERS, out);
    tu_rm_rf(dir);
}

/* ---- 2. sizes that do not fit the types used later ---- */

static char *sized_game(int batch, int input_dim, const char *stages)
{
    sb b = {0};
    sb_add(&b, "{\"name\": \"big\", \"seed\": 1, \"batch\": %d, \"input_dim\": %d, \"loss\": {\"kind\": \"mse\"},"
               " \"outputs\": [\"z\"], \"stages\": [%s], \"optimizer\": {\"game\": \"gr\", \"curvature\": \"sgd\"}}",
               batch, input_dim, stages);
    return b.s;
}

#define DENSE(in, out, dim) "{\"lane\": 0, \"kind\": \"dense\", \"in\": \"" in "\", \"out\": \"" out "\", \"out_dim\": " #dim ", \"act\": \"tanh\"}"

Test(limits, parameter_count_overflowing_int_is_refused)
{
    /* out_dim·(in+1) = 2^20·(2^20+1): was a signed int overflow in the loader (UBSan) */
    char *g = sized_game(1, 1048576, "{\"players\": [" DENSE("z", "z", 1048576) "]}");
    expect_load_refusal(g, "stage 0 player 0: 1099512676352 parameters (out_dim 1048576 x (input dim 1048576 + 1)), "
                           "at most 2147483647");
    free(g);
    /* three stages of 2^20·1023 parameters each: each fits, the total (int ocn_game_nparams) does not */
    g = sized_game(1, 1022,
                   "{\"players\": [" DENSE("z", "a", 1048576) "], \"carries\": [{\"from\": \"z\", \"to\": \"z\"}]},"
                   "{\"players\": [" DENSE("z", "b", 1048576) "], \"carries\": [{\"from\": \"z\", \"to\": \"z\"}]},"
                   "{\"players\": [" DENSE("z", "c", 1048576) "], \"carries\": [{\"from\": \"z\", \"to\": \"z\"}]}");
    expect_load_refusal(g, "3218079744 parameters in all, at most 2147483647");
    free(g);
    /* one player of 2^30 parameters: its 2^30 x 2^30 curvature does not fit an allocation */
    g = sized_game(1, 1023, "{\"players\": [" DENSE("z", "z", 1048576) "]}");
    expect_load_refusal(g, "stage 0: the 1073741824 x 1073741824 curvature does not fit in memory");
    free(g);
}

Test(limits, batch_times_state_dimension_overflowing_is_refused)
{
    /* B·n = 2^32 > INT_MAX */
    char *g = sized_game(4096, 1048576, "{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}]}");
    expect_load_refusal(g, "stage 0: batch 4096 x state dimension 1048576 = 4294967296, at most 2147483647");
    free(g);
    /* B·n = 2^31 − 2048 fits int; its square of doubles does not fit an allocation */
    g = sized_game(2048, 1048575, "{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}]}");
    expect_load_refusal(g, "stage 0: the (batch x state dimension)^2 = 2147481600^2 value Hessian does not fit in memory");
    free(g);
    /* through the CLI: exit 2, the file named */
    g = sized_game(4096, 1048576, "{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}]}");
    expect_cli_refusal("gen", g, "stage 0: batch 4096 x state dimension 1048576");
    free(g);
}

/* ---- 3. no arrayset pointer held across an add ---- */

Test(limits, dense_plus_sixteen_bias_stages_generate_clean)
{
    /* ocn_ref_init_inputs held theta_… across the add of Wfix_…: a use after
     * free once the set grew (ASan under `make test SANITIZE=1`; in the plain
     * build MALLOC_PERTURB_ makes the freed header garbage: SIGSEGV) */
    char dir[256], p[512], out[8192];
    tu_tmpdir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/g.json", dir);
    sb b = {0};
    sb_add(&b, "{\"name\": \"b16\", \"seed\": 1, \"batch\": 2, \"input_dim\": 2, \"loss\": {\"kind\": \"mse\"}, \"stages\": ["
               "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2, \"act\": \"tanh\"}]}");
    for (int i = 0; i < 16; i++)
        sb_add(&b, ", {\"players\": [{\"lane\": 0, \"kind\": \"bias\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2, \"act\": \"tanh\"}]}");
    sb_add(&b, "], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"lr\": 0.5, \"damping\": 0.1}}");
    put(p, b.s);
    free(b.s);
    int rc = tu_sh(out, sizeof out, "MALLOC_PERTURB_=165 %s gen %s -o %s/f 2>&1", OCN_BIN, p, dir);
    cr_assert_eq(rc, 0, "%s", out);
    rc = tu_sh(out, sizeof out, "%s verify %s/f 2>&1", OCN_BIN, dir);
    cr_expect_eq(rc, 0, "%s", out);
    /* the inputs are the §12 draws: every Wfix and theta present */
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    snprintf(p, sizeof p, "%s/f", dir);
    cr_assert_eq(ocn_fixture_read(p, &f, &e), OCN_OK, "%s", e.msg);
    for (int t = 1; t <= 16; t++) {
        char nm[64];
        snprintf(nm, sizeof nm, "Wfix_t%d_n0", t);
        cr_expect_not_null(ocn_arrayset_find(f->arrays, nm), "%s", nm);
        snprintf(nm, sizeof nm, "theta_t%d_n0", t);
        cr_expect_not_null(ocn_arrayset_find(f->arrays, nm), "%s", nm);
    }
    ocn_fixture_free(f);
    tu_rm_rf(dir);
}

/* ---- 4. messages that say what is wrong ---- */

Test(limits, a_directory_or_a_missing_file_as_the_game)
{
    char dir[256], cmd[1024], want[600], q[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(q, sizeof q, "%s/out", dir);
    snprintf(cmd, sizeof cmd, "%s gen %s -o %s", OCN_BIN, dir, q); /* was: malformed JSON … near end of file */
    snprintf(want, sizeof want, "%s: is a directory", dir);
    tu_expect_exit2(cmd, want, q);
    snprintf(cmd, sizeof cmd, "%s normalise %s", OCN_BIN, dir);
    tu_expect_exit2(cmd, want, NULL);
    snprintf(cmd, sizeof cmd, "%s gen %s/none.json -o %s", OCN_BIN, dir, q); /* was: malformed JSON at line -1 */
    snprintf(want, sizeof want, "%s/none.json: cannot open: No such file or directory", dir);
    tu_expect_exit2(cmd, want, q);
    snprintf(cmd, sizeof cmd, "%s normalise %s/none.json", OCN_BIN, dir);
    tu_expect_exit2(cmd, want, NULL);
    tu_rm_rf(dir);
}

/* A FIFO as the game hung every command; /dev/zero was read until memory ran
 * out: a game description must be a regular file (opened without blocking). */
Test(limits, a_fifo_or_a_device_as_the_game)
{
    char dir[256], cmd[1024], q[300], fifo[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(q, sizeof q, "%s/out", dir);
    snprintf(fifo, sizeof fifo, "%s/game.json", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    snprintf(cmd, sizeof cmd, "timeout 20 %s gen %s -o %s", OCN_BIN, fifo, q);
    tu_expect_exit2(cmd, "not a regular file (a FIFO)", q);
    snprintf(cmd, sizeof cmd, "timeout 20 %s normalise %s", OCN_BIN, fifo);
    tu_expect_exit2(cmd, "not a regular file (a FIFO)", NULL);
    snprintf(cmd, sizeof cmd, "timeout 20 %s gen /dev/zero -o %s", OCN_BIN, q);
    tu_expect_exit2(cmd, "/dev/zero: not a regular file (a device)", q);
    tu_rm_rf(dir);
}

Test(limits, too_many_stages_names_the_count_and_the_limit)
{
    sb b = {0};
    sb_add(&b, "{\"name\": \"s\", \"seed\": 1, \"batch\": 1, \"input_dim\": 1, \"loss\": {\"kind\": \"mse\"}, \"stages\": [");
    for (int t = 0; t < 5000; t++)
        sb_add(&b, "%s{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}]}",
               t ? ", " : "");
    sb_add(&b, "], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\"}}");
    char want[80];
    snprintf(want, sizeof want, "stages: 5000 stages, at most %d", OCN_MAX_STAGES); /* was: must be a non-empty array */
    expect_cli_refusal("gen", b.s, want);
    free(b.s);
    expect_cli_refusal("normalise",
                       "{\"name\": \"s\", \"seed\": 1, \"batch\": 1, \"input_dim\": 1, \"loss\": {\"kind\": \"mse\"},"
                       " \"stages\": [], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\"}}",
                       "stages: none given, at least 1");
}

Test(limits, a_long_name_names_its_length_and_the_limit)
{
    char name[201], text[1024], want[80];
    memset(name, 'n', 200);
    name[200] = 0;
    snprintf(text, sizeof text,
             "{\"name\": \"%s\", \"seed\": 1, \"batch\": 1, \"input_dim\": 1, \"loss\": {\"kind\": \"mse\"}, \"stages\": "
             "[{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}]}],"
             " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\"}}", name);
    snprintf(want, sizeof want, "name: 200 characters (bytes), at most %d", OCN_MAX_NAME - 1); /* was: must be a non-empty string */
    expect_cli_refusal("gen", text, want);
    /* a block name likewise */
    snprintf(text, sizeof text,
             "{\"name\": \"b\", \"seed\": 1, \"batch\": 1, \"input_dim\": 1, \"loss\": {\"kind\": \"mse\"}, \"outputs\": [\"z\"], \"stages\": "
             "[{\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"}],"
             " \"carries\": [{\"from\": \"z\", \"to\": \"%s\"}]}], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\"}}", name);
    snprintf(want, sizeof want, "stage 0 carry 0: to: block name of 200 characters (bytes), at most %d", OCN_MAX_NAME - 1);
    expect_cli_refusal("normalise", text, want);
}

Test(limits, absurd_hyperparameters_are_refused_with_the_range)
{
    /* lr 1e308 exited 3 ("reference produced NaN/Inf", naming no file) */
    static const struct { const char *field, *want; } cases[] = {
        {"\"lr\": 1e308", "optimizer lr = 1e+308 out of range: at most 1e+10"},
        {"\"lr\": 1e11", "optimizer lr = 1e+11 out of range: at most 1e+10"},
        {"\"damping\": 1e200", "optimizer damping = 1e+200 out of range: at most 1e+10"},
        {"\"eps\": 1e300", "optimizer eps = 1e+300 out of range: at most 1e+10"},
    };
    char text[1024];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(text, sizeof text,
                 "{\"name\": \"h\", \"seed\": 1, \"batch\": 2, \"input_dim\": 2, \"loss\": {\"kind\": \"mse\"}, \"stages\": "
                 "[{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2, \"act\": \"tanh\"}]}],"
                 " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", %s}}", cases[i].field);
        expect_cli_refusal("gen", text, cases[i].want);
    }
    snprintf(text, sizeof text,
             "{\"name\": \"h\", \"seed\": 1, \"batch\": 2, \"input_dim\": 2, \"loss\": {\"kind\": \"mse\"}, \"weight_decay\": 1e300,"
             " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"bias\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2, \"act\": \"tanh\"}]}],"
             " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\"}}");
    expect_cli_refusal("gen", text, "weight_decay = 1e+300 out of range: at most 1e+10");
    /* the top of the range itself is accepted */
    snprintf(text, sizeof text,
             "{\"name\": \"h\", \"seed\": 1, \"batch\": 2, \"input_dim\": 2, \"loss\": {\"kind\": \"mse\"}, \"weight_decay\": 1e10,"
             " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"bias\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2, \"act\": \"tanh\"}]}],"
             " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"lr\": 1e10, \"damping\": 1e10, \"eps\": 1e10}}");
    ocn_game *g = tu_game(text);
    cr_expect_eq(g->opt.lr, 1e10);
    ocn_game_free(g);
}
