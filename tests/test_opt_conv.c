/* SPEC §14 conv players in the optimized path (optimized/step_impl.h: im2col
 * forward, col2im Jᵀ, patch-matrix q_θ, KFC factors), against the dense
 * reference's stored arrays with the measured §10 c (ocn_check_fixture):
 *  - every shipped conv fixture the optimized path supports passes in f64 and
 *    f32 on the cpu and checking backends; the ones it refuses are exactly
 *    the listed combinations (exact / gn-outer Woodbury, coop-kfac);
 *  - modes the fixtures do not cover (sgd, rmsprop, kfac in GR, gn-outer
 *    with Mid zeroed, a residual carry across a conv) on games generated here
 *    by the reference (`ocn gen`), then checked the same way;
 *  - a transposed kernel in the optimized im2col/col2im (conv.fault, the
 *    runtime twin of MUT_CONV_TRANSPOSE in `make mutants`) is caught. */
#include "util.h"
#include "ocn/optimized.h"

#include <stdio.h>
#include <string.h>

/* FAILED rows of ocn check on fixture f (backend, precision); passes in *pass */
static int check_rows(ocn_fixture *f, const char *backend, int prec, int *pass)
{
    ocn_error e = {0};
    ocn_report *rep = ocn_report_new();
    cr_assert_eq(ocn_check_fixture(f, backend, prec, rep, &e), OCN_OK, "%s (%s f%d): %s", f->dir, backend, prec, e.msg);
    int fails = ocn_report_failures(rep);
    *pass = ocn_report_passes(rep);
    if (fails) ocn_report_print(rep, stderr, 0);
    ocn_report_free(rep);
    return fails;
}

static int refused_as_listed(const char *why)
{
    return strstr(why, "Woodbury form") || strstr(why, "coop-kfac on a stage with a conv player");
}

static void check_dir(const char *dir, int *checked)
{
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(dir, &f, &e), OCN_OK, "%s", e.msg);
    const char *why = ocn_opt_unsupported(f->game, &f->game->opt);
    if (why) {
        cr_expect(refused_as_listed(why), "%s: unexpected refusal: %s", dir, why);
    } else {
        static const char *const bks[] = {"cpu", "checking"};
        for (int b = 0; b < 2; b++)
            for (int prec = 64; prec >= 32; prec -= 32) {
                int pass = 0;
                cr_expect_eq(check_rows(f, bks[b], prec, &pass), 0, "%s %s f%d: FAILED rows", dir, bks[b], prec);
                cr_expect_gt(pass, 10, "%s %s f%d: rows compared", dir, bks[b], prec);
            }
        ++*checked;
        cr_log_info("%s: checked", dir);
    }
    ocn_fixture_free(f);
}

Test(opt_conv, shipped_conv_fixtures)
{
    int n = 0, checked = 0;
    const char *const *fx = tu_fixtures(&n);
    for (int i = 0; i < n; i++)
        if (strstr(fx[i], "/conv-")) check_dir(fx[i], &checked);
    cr_assert_geq(checked, 1, "at least one conv fixture runs on the optimized path");
}

/* The shipped conv games (2-conv FNE, residual GR, inception GR) with the
 * optimizer rewritten: curvature, zero, value, game (sed on the JSON). */
Test(opt_conv, modes_on_generated_games)
{
    static const char *const games[] = {"conv-2c-kfac-fne", "conv-res-gnouter-gr", "conv-inception-exact-gr"};
    static const char *const modes[][4] = {
        /* curvature, zero, value, game (NULL: as shipped) */
        {"sgd", "", "blockdiag", NULL},           {"rmsprop", "", "persample", NULL},
        {"kfac", "", "blockdiag", NULL},          {"kfac", "", "persample", "gr"},
        {"gn-outer", "\\\"Mid\\\"", "blockdiag", NULL}, {"exact", "\\\"Mid\\\"", "blockdiag", "fne"},
    };
    char dir[256], out[4096];
    tu_tmpdir(dir, sizeof dir);
    int k = 0;
    for (size_t gi = 0; gi < sizeof games / sizeof *games; gi++)
        for (size_t mi = 0; mi < sizeof modes / sizeof *modes; mi++, k++) {
            char gsub[64] = "";
            if (modes[mi][3]) snprintf(gsub, sizeof gsub, "-e 's/\"game\": \"[a-z]*\"/\"game\": \"%s\"/'", modes[mi][3]);
            cr_assert_eq(tu_sh(out, sizeof out,
                               "sed -e 's/\"curvature\": \"[a-z-]*\"/\"curvature\": \"%s\"/' -e 's/\"zero\": \\[\\]/\"zero\": [%s]/' "
                               "-e 's/\"value\": \"[a-z]*\"/\"value\": \"%s\"/' %s games/%s.json > %s/g%d.json && "
                               "%s gen %s/g%d.json -o %s/f%d 2>&1",
                               modes[mi][0], modes[mi][1], modes[mi][2], gsub, games[gi], dir, k, OCN_BIN, dir, k, dir, k),
                         0, "%s %s: %s", games[gi], modes[mi][0], out);
            char fdir[512];
            snprintf(fdir, sizeof fdir, "%s/f%d", dir, k);
            int checked = 0;
            check_dir(fdir, &checked);
            cr_expect_eq(checked, 1, "%s with %s runs on the optimized path", games[gi], modes[mi][0]);
        }
    tu_rm_rf(dir);
}

/* The check has teeth: a kernel read transposed by the optimized path only
 * (the stored reference arrays stay right) fails rows; the same fixture
 * without the fault passes. */
Test(opt_conv, transposed_kernel_caught)
{
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read("fixtures/conv-2c-kfac-fne", &f, &e), OCN_OK, "%s", e.msg);
    int pass = 0;
    cr_assert_eq(check_rows(f, "cpu", 64, &pass), 0);
    f->game->stages[0].players[0].conv.fault = 1;
    ocn_report *rep = ocn_report_new();
    cr_assert_eq(ocn_check_fixture(f, "cpu", 64, rep, &e), OCN_OK, "%s", e.msg);
    cr_expect_gt(ocn_report_failures(rep), 5, "a transposed kernel fails rows (%d)", ocn_report_failures(rep));
    ocn_report_free(rep);
    ocn_fixture_free(f);
}

static ocn_game *shipped_with(const char *game, const char *curv)
{
    char out[8192];
    cr_assert_eq(tu_sh(out, sizeof out, "sed -e 's/\"curvature\": \"[a-z-]*\"/\"curvature\": \"%s\"/' games/%s.json", curv,
                       game), 0);
    return tu_game(out);
}

Test(opt_conv, refusals_name_the_combination)
{
    /* (coop-kfac with a conv stage never loads: the loader refuses it, SPEC §14;
     * ocn_opt_unsupported refuses it again for games built in memory) */
    static const char *const curv[] = {"exact", "gn-outer"};
    for (int k = 0; k < 2; k++) {
        ocn_game *g = shipped_with("conv-res-gnouter-gr", curv[k]);
        const char *why = ocn_opt_unsupported(g, &g->opt);
        cr_expect(why && refused_as_listed(why) && strstr(why, "§14"), "%s: %s", curv[k], why ? why : "(null)");
        ocn_game_free(g);
    }
}
