/* Issue 9: verdicts that can fail.  SPEC §10 rev. 2 — c always from the
 * reference side, completeness (a missing required array is FAILED, a run
 * that compared nothing exits 1), and the plumbing: a stored array perturbed
 * just below the threshold is ok, just above is FAILED, on every fixture. */
#include "util.h"

#include <math.h>
#include <string.h>

static ocn_fixture *load(const char *dir)
{
    ocn_fixture *f = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_fixture_read(dir, &f, &e), OCN_OK, "%s", e.msg);
    return f;
}

static const ocn_row *row_of(const ocn_report *r, const char *quantity)
{
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->rows[i].quantity, quantity)) return &r->rows[i];
    return NULL;
}

/* Every fixture, every informative gain/value array: scaling it by
 * 1 + 0.5·30·u·c stays ok (ratio 15), by 1 + 2·300·u·c fails (ratio 600). */
Test(trust, perturbation_just_below_passes_just_above_fails)
{
    int n, arrays = 0;
    const char *const *dirs = tu_fixtures(&n);
    for (int d = 0; d < n; d++) {
        ocn_fixture *f = load(dirs[d]);
        for (int i = 0; i < f->arrays->count; i++) {
            const ocn_array *a = &f->arrays->a[i];
            if (!ocn_counts_for_detection(a->name) || !ocn_informative(a->cond, OCN_U64)) continue;
            double norm = 0;
            for (size_t j = 0; j < a->size; j++) norm += a->data[j] * a->data[j];
            if (norm == 0) continue;
            for (int above = 0; above < 2; above++) {
                double delta = (above ? 2 * OCN_FAIL_RATIO : 0.5 * OCN_THRESHOLD) * OCN_U64 * a->cond;
                ocn_arrayset *t = ocn_arrayset_copy(f->arrays);
                ocn_array *b = ocn_arrayset_find(t, a->name);
                for (size_t j = 0; j < b->size; j++) b->data[j] *= 1 + delta;
                ocn_report *r = ocn_report_new();
                ocn_compare_spec s = {"PLUMB", f->game->name, OCN_REQUIRE_ALL, OCN_U64, NULL};
                ocn_compare_sets(r, &s, f->arrays, t);
                const ocn_row *w = row_of(r, a->name);
                cr_assert_not_null(w);
                cr_expect_eq(w->verdict, above ? OCN_FAILED : OCN_OK_V, "%s %s %s: ratio %g", dirs[d], a->name,
                             above ? "above" : "below", w->ratio);
                cr_expect_eq(ocn_report_failures(r), above, "%s %s: only the perturbed array moves", dirs[d], a->name);
                ocn_report_free(r);
                ocn_arrayset_free(t);
            }
            arrays++;
        }
        ocn_fixture_free(f);
    }
    cr_assert(arrays > 300, "only %d arrays exercised", arrays);
}

/* A required array that the tested side lacks is FAILED, never skipped. */
Test(trust, missing_required_array_fails)
{
    ocn_fixture *f = load("fixtures/mlp-tanh-ce");
    ocn_arrayset *t = ocn_arrayset_copy(f->arrays);
    ocn_arrayset_remove(t, "theta_new_t0_n0");
    ocn_report *r = ocn_report_new();
    ocn_compare_spec s = {"CHECK", "x", OCN_REQUIRE_OPTIMIZED, OCN_U64, NULL};
    ocn_compare_sets(r, &s, f->arrays, t);
    const ocn_row *w = row_of(r, "theta_new_t0_n0 (missing)");
    cr_assert_not_null(w, "no row for the missing array");
    cr_expect_eq(w->verdict, OCN_FAILED);
    cr_expect_eq(ocn_report_failures(r), 1);
    ocn_report_free(r);
    ocn_arrayset_free(t);
    ocn_fixture_free(f);
}

/* §10: "never the side under test": a c of 1e300 written into B's manifest
 * does not make a garbage array pass. */
Test(trust, c_from_the_tested_side_is_ignored)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    cr_assert_eq(tu_sh(NULL, 0, "cp -r fixtures/mlp-tanh-ce %s/b", dir), 0);
    cr_assert_eq(tu_sh(out, sizeof out,
                       "%s -c \"import json,numpy as np;p='%s/b/manifest.json';m=json.load(open(p));"
                       "m['arrays']['K_t0_n0']['cond']=1e300;json.dump(m,open(p,'w'));"
                       "a=np.load('%s/b/K_t0_n0.npy');np.save('%s/b/K_t0_n0.npy',np.ones_like(a)*7.0)\" 2>&1",
                       OCN_PYTHON, dir, dir, dir), 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "%s compare fixtures/mlp-tanh-ce %s/b 2>&1", OCN_BIN, dir), 1, "%s", out);
    cr_expect(strstr(out, "K_t0_n0") && strstr(out, "FAILED"), "%s", out);
    tu_rm_rf(dir);
}

/* Completeness at the CLI: compared nothing or skipped everything exits 1. */
Test(trust, nothing_compared_exits_1)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    /* B holds only x0: every required output is missing */
    cr_assert_eq(tu_sh(out, sizeof out,
                       "mkdir %s/only && cp fixtures/mlp-tanh-ce/x0.npy %s/only/ && python3 -c \"import json;"
                       "m=json.load(open('fixtures/mlp-tanh-ce/manifest.json'));m['arrays']={'x0':m['arrays']['x0']};"
                       "json.dump(m,open('%s/only/manifest.json','w'))\" 2>&1", dir, dir, dir), 0, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s compare fixtures/mlp-tanh-ce %s/only 2>&1", OCN_BIN, dir), 1, "%s", out);
    cr_expect(strstr(out, "(missing)") != NULL, "%s", out);
    /* verify of a fixture whose outputs were all deleted compares nothing */
    cr_assert_eq(tu_sh(out, sizeof out,
                       "mkdir %s/inputs && cp fixtures/mlp-tanh-ce/x0.npy fixtures/mlp-tanh-ce/y.npy "
                       "fixtures/mlp-tanh-ce/theta_t*.npy %s/inputs/ && python3 -c \"import json;"
                       "m=json.load(open('fixtures/mlp-tanh-ce/manifest.json'));"
                       "m['arrays']={k:v for k,v in m['arrays'].items() if k in ('x0','y') or k.startswith('theta_t')};"
                       "json.dump(m,open('%s/inputs/manifest.json','w'))\" 2>&1", dir, dir, dir), 0, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify %s/inputs 2>&1", OCN_BIN, dir), 1, "%s", out);
    cr_expect(strstr(out, "nothing was compared") != NULL, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify --allow-skip %s/inputs 2>&1", OCN_BIN, dir), 0, "%s", out);
    /* no GPU here: everything skipped is not a pass */
    int st = tu_sh(out, sizeof out, "%s check --backend cuda fixtures/mlp-tanh-ce 2>&1", OCN_BIN);
    if (strstr(out, "SKIP")) {
        cr_expect_eq(st, 1, "%s", out);
        cr_expect_eq(tu_sh(out, sizeof out, "%s check --backend cuda --allow-skip fixtures/mlp-tanh-ce 2>&1", OCN_BIN),
                     0, "%s", out);
    }
    tu_rm_rf(dir);
}

/* §11 v2: games compare by their normalised forms; a mismatch names the field. */
Test(trust, normalised_games_compare_by_value)
{
    ocn_game *a = tu_game("{\"name\": \"a\", \"seed\": 1, \"batch\": 2, \"input_dim\": 3, \"loss\": {\"kind\": \"mse\"},"
                          "\"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\","
                          "\"out_dim\": 2, \"act\": \"tanh\"}]}],"
                          "\"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"zero\": [\"Mid\", \"Qthx\"]}}");
    ocn_game *b = tu_game("{\"name\": \"b\", \"seed\": 1, \"batch\": 2, \"input_dim\": 3, \"loss\": {\"kind\": \"mse\"},"
                          "\"weight_decay\": 0, \"outputs\": [\"z\"],"
                          "\"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\","
                          "\"out_dim\": 2, \"act\": \"tanh\"}], \"carries\": []}],"
                          "\"optimizer\": {\"game\": \"fne\", \"curvature\": \"exact\", \"lr\": 1, \"damping\": 0.0,"
                          "\"eps\": 1e-8, \"dynamics\": \"gn\", \"value\": \"blockdiag\", \"terminal\": \"exact\","
                          "\"zero\": [\"Qthx\", \"Mid\"], \"steps\": 1, \"data\": \"fixed\", \"stat_decay\": 0,"
                          "\"refresh_every\": 1}}");
    char diff[256];
    cr_expect(ocn_game_same(a, b, diff, sizeof diff), "defaults spelled out or omitted are the same game: %s", diff);
    b->opt.damping = 0.5;
    cr_expect(!ocn_game_same(a, b, diff, sizeof diff));
    cr_expect_str_eq(diff, "optimizer.damping");
    ocn_game_free(a), ocn_game_free(b);
}

/* Issue 9 item 6: an optimized-path fixture carries its own measured c, so
 * two made with 1 and 2 OpenBLAS threads (different summation orders)
 * compare clean both ways. */
Test(trust, optimized_fixtures_from_1_and_2_threads_compare_clean)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    for (int t = 1; t <= 2; t++)
        cr_assert_eq(tu_sh(out, sizeof out, "OPENBLAS_NUM_THREADS=%d %s gen games/mlp-w24-kfac.json -o %s/t%d --backend cpu 2>&1",
                           t, OCN_BIN, dir, t), 0, "%s", out);
    cr_assert_eq(tu_sh(out, sizeof out, "grep -c '\"rule\": \"measured\"' %s/t1/manifest.json", dir), 0, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s compare %s/t1 %s/t2 2>&1", OCN_BIN, dir, dir), 0, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s compare %s/t2 %s/t1 2>&1", OCN_BIN, dir, dir), 0, "%s", out);
    tu_rm_rf(dir);
}

/* --max-memory (issue 10): a reference run over the limit is refused before
 * allocating, with the estimate, exit 2, nothing written; a bad size is usage. */
Test(trust, max_memory_option_refuses_with_the_estimate)
{
    char dir[256], out[65536];
    tu_tmpdir(dir, sizeof dir);
    cr_expect_eq(tu_sh(out, sizeof out, "%s gen games/mlp-tanh-ce.json -o %s/f --max-memory 10K 2>&1", OCN_BIN, dir), 2,
                 "%s", out);
    cr_expect(strstr(out, "KB of memory") != NULL, "%s", out);
    cr_expect_neq(tu_sh(NULL, 0, "test -e %s/f", dir), 0, "nothing written");
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify fixtures/mlp-tanh-ce --max-memory 10K 2>&1", OCN_BIN), 2, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s verify fixtures/mlp-tanh-ce --max-memory 1G 2>&1", OCN_BIN), 0, "%s", out);
    cr_expect_eq(tu_sh(out, sizeof out, "%s gen games/mlp-tanh-ce.json -o %s/f --max-memory lots 2>&1", OCN_BIN, dir), 2,
                 "%s", out);
    tu_rm_rf(dir);
}
