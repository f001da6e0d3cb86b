/* Game loader (SPEC §12): layout of a valid game and one clear error per malformed input. */
#include "util.h"

#include <string.h>

Test(game, resblock_layout)
{
    ocn_game *g = tu_game(TU_RESBLOCK);
    cr_assert_eq(g->T, 4);
    cr_assert_eq(g->nblocks, 2);
    cr_assert_eq(g->n[0], 4);
    cr_assert_eq(g->n[1], 8, "z and the carried r are alive after stage 0");
    cr_assert_eq(g->n[2], 4, "r ends when it is carried into z");
    cr_assert_eq(g->block_off[1][1], 4);
    cr_assert_eq(g->stages[0].players[0].m, 4 * 5);
    cr_assert_eq(g->stages[3].players[0].m, 3, "bias player: m = out");
    cr_assert_eq(g->stages[2].players[0].m, 0);
    cr_assert_eq(g->out_dim, 3);
    cr_assert_eq(g->opt.value, OCN_VALUE_BLOCKDIAG);
    ocn_game_free(g);
}

/* Replaces the first occurrence of `from` in TU_RESBLOCK by `to`, loads, expects
 * OCN_EINVAL and a message containing `want`. */
static void expect_bad(const char *from, const char *to, const char *want)
{
    char buf[8192];
    const char *p = strstr(TU_RESBLOCK, from);
    cr_assert(p != NULL, "test bug: '%s' not in the game", from);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - TU_RESBLOCK), TU_RESBLOCK, to, p + strlen(from));
    ocn_error e = {0};
    ocn_game *g = NULL;
    int rc = ocn_game_load_string(buf, "bad.json", &g, &e);
    cr_assert_eq(rc, OCN_EINVAL, "expected an error for '%s'", want);
    cr_assert_null(g);
    cr_assert(strstr(e.msg, want) != NULL, "message '%s' does not contain '%s'", e.msg, want);
    cr_assert(strncmp(e.msg, "bad.json: ", 10) == 0, "message must name the file: %s", e.msg);
}

Test(game, malformed_inputs)
{
    expect_bad("\"out_dim\": 3, ", "", "stage 3 player 0: out_dim missing");
    expect_bad("\"kind\": \"dense\"", "\"kind\": \"pool\"", "stage 0 player 0: kind: unknown value 'pool'");
    expect_bad("\"act\": \"sigmoid\"", "\"act\": \"gelu\"", "stage 1 player 0: act: unknown value 'gelu'");
    expect_bad("\"from\": \"r\"", "\"from\": \"q\"", "stage 1 carry 0: block 'q' is not alive at stage 1");
    expect_bad("\"out_dim\": 4, \"act\": \"sigmoid\"", "\"out_dim\": 5, \"act\": \"sigmoid\"",
               "stage 1 carry 0: dimension mismatch");
    expect_bad("\"classes\": 3", "\"classes\": 4", "classes 4 must equal the output dim 3");
    expect_bad("\"batch\": 3", "\"batch\": 0", "batch = 0 out of range");
    expect_bad("\"batch\": 3", "\"batch\": 3, \"batch\": 3", "duplicate object key");
    expect_bad("\"seed\": 7", "\"seed\": 7, \"colour\": 1", "unknown field 'colour'");
    expect_bad("\"lr\": 1.0", "\"lr\": -1.0", "optimizer lr = -1 must be > 0");
    expect_bad("\"curvature\": \"exact\"", "\"curvature\": \"newton\"", "optimizer curvature: unknown value 'newton'");
    expect_bad("\"zero\": []", "\"zero\": [\"Qxx\"]", "optimizer zero: unknown term 'Qxx'");
    expect_bad("\"weight_decay\": 1e-3,", "\"weight_decay\": 1e-3, \"outputs\": [\"w\"],", "outputs: block 'w' does not exist");
    expect_bad("\"weight_decay\": 1e-3,", "\"weight_decay\": 1e-3, \"outputs\": [\"r\"],",
               "outputs: block 'r' is not alive after the last stage");
    expect_bad("\"in\": \"z\", \"out\": \"z\", \"out_dim\": 4, \"act\": \"sigmoid\"",
               "\"in\": \"r\", \"out\": \"z\", \"out_dim\": 4, \"act\": \"sigmoid\"}, {\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"relu\"",
               "lane 0 already taken by player 0");
    expect_bad("{\"name\"", "[{\"name\"", "malformed JSON");
}

Test(game, separable_lane_outputs)
{
    const char *sep =
        "{\"name\": \"s\", \"seed\": 1, \"batch\": 2, \"input_dim\": 3, \"outputs\": [\"a\", \"b\"],"
        " \"loss\": {\"kind\": \"mse\", \"lane_outputs\": [[\"a\"], [\"b\"]]},"
        " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"a\", \"out_dim\": 2, \"act\": \"tanh\"},"
        "  {\"lane\": 1, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"b\", \"out_dim\": 1, \"act\": \"tanh\"}]}],"
        " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\"}}";
    ocn_game *g = tu_game(sep);
    cr_assert_eq(g->nlanes, 2);
    cr_assert(g->separable);
    cr_assert_eq(g->out_dim, 3);
    cr_assert_eq(g->lane_outputs[1][0], 2, "block b");
    ocn_game_free(g);
    char bad[2048];
    snprintf(bad, sizeof bad, "%s", sep);
    char *p = strstr(bad, "[[\"a\"], [\"b\"]]");
    memcpy(p, "[[\"a\"]]       ", 14);
    ocn_error e = {0};
    cr_assert_eq(ocn_game_load_string(bad, "sep.json", &g, &e), OCN_EINVAL);
    cr_assert(strstr(e.msg, "one entry per lane (2 lanes)") != NULL, "%s", e.msg);
}

Test(game, missing_file_names_it)
{
    ocn_error e = {0};
    ocn_game *g = NULL;
    cr_assert_eq(ocn_game_load_file("/nonexistent/game.json", &g, &e), OCN_EINVAL);
    cr_assert(strstr(e.msg, "/nonexistent/game.json") != NULL, "%s", e.msg);
}
