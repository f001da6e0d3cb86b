/* `ocn train` (issue 13): data-set validation, standardisation, the chain
 * network's own gradient, the optimized path's `zero: [Qthx]` rmsprop step
 * against an independently written adaptive-diagonal step (§5, §10 ratio),
 * and a short training run that must learn and be byte-reproducible. */
#include "util.h"
#include "ocn/npy.h"
#include "ocn/optimized.h"
#include "ocn/tolerance.h"
#include "ocn/train.h"

#include <float.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define DIGITS "data/digits"
#define NET "ci/digits/ffn.json"

static ocn_dataset *digits(double valid)
{
    ocn_dataset *d = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_dataset_load(DIGITS, &d, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(ocn_dataset_prepare(d, valid, 12345, &e), OCN_OK, "%s", e.msg);
    return d;
}

Test(train, digits_loads_and_standardises)
{
    ocn_dataset *d = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_dataset_load(DIGITS, &d, &e), OCN_OK, "%s", e.msg);
    cr_expect_eq(d->n, 1797u);
    cr_expect_eq(d->d, 64u);
    cr_expect_eq(d->classes, 10);
    cr_expect_eq(d->ntrain, 1438u);
    cr_expect_eq(d->ntest, 359u);
    /* raw pixels are integers 0..16 (|u1) */
    double mx = 0;
    for (size_t i = 0; i < d->n * d->d; i++) mx = fmax(mx, d->X[i]);
    cr_expect_eq(mx, 16.0);
    double *raw = malloc(d->n * d->d * sizeof *raw);
    memcpy(raw, d->X, d->n * d->d * sizeof *raw);
    cr_assert_eq(ocn_dataset_prepare(d, 0, 0, &e), OCN_OK, "%s", e.msg);
    cr_expect_eq(ocn_dataset_prepare(d, 0, 0, &e), OCN_EINVAL, "standardised twice");
    /* independent recomputation: long double two-pass statistics of the raw training rows */
    int constant = 0;
    for (size_t j = 0; j < d->d; j++) {
        long double s = 0, q = 0;
        for (size_t i = 0; i < d->ntrain; i++) s += raw[d->train[i] * d->d + j];
        long double m = s / d->ntrain;
        for (size_t i = 0; i < d->ntrain; i++) q += (raw[d->train[i] * d->d + j] - m) * (raw[d->train[i] * d->d + j] - m);
        double sd = (double)sqrtl(q / d->ntrain);
        for (size_t i = 0; i < d->n; i++) {
            double want = sd > 0 ? (raw[i * d->d + j] - (double)m) / sd : raw[i * d->d + j] - (double)m;
            /* §10's floor: a sum over ntrain rows in another order is off by ntrain·u relative
             * (the variance), plus a few roundings of the raw scale (0..16) */
            double tol = (double)d->ntrain * DBL_EPSILON * fabs(want) + 8 * DBL_EPSILON * (16 + fabs(want));
            cr_assert(fabs(d->X[i * d->d + j] - want) <= tol,
                      "feature %zu row %zu: %.17g vs %.17g", j, i, d->X[i * d->d + j], want);
        }
        constant += sd == 0;
    }
    cr_expect_gt(constant, 0, "DIGITS has constant pixels (std 0: only centred)");
    free(raw);
    ocn_dataset_free(d);
}

Test(train, validation_split_never_touches_test)
{
    ocn_dataset *d = digits(0.2);
    cr_expect_eq(d->ntest, 288u);
    cr_expect_eq(d->ntrain, 1150u);
    ocn_dataset *full = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_dataset_load(DIGITS, &full, &e), OCN_OK, "%s", e.msg);
    char *is_test = calloc(full->n, 1);
    for (size_t i = 0; i < full->ntest; i++) is_test[full->test[i]] = 1;
    for (size_t i = 0; i < d->ntest; i++) cr_assert(!is_test[d->test[i]], "validation row %zu is a test row", d->test[i]);
    for (size_t i = 0; i < d->ntrain; i++) cr_assert(!is_test[d->train[i]], "training row %zu is a test row", d->train[i]);
    free(is_test);
    ocn_dataset_free(full), ocn_dataset_free(d);
}

/* Writes a small data set; `mutate` breaks one thing. */
static void write_set(const char *dir, int mutate)
{
    ocn_error e = {0};
    char p[512];
    ocn_arrayset *s = ocn_arrayset_new();
    ocn_array *X = ocn_arrayset_add2(s, "X", 2, mutate == 1 ? 5 : 6, 2, 0);
    for (size_t i = 0; i < X->size; i++) X->data[i] = (double)(i % 5);
    snprintf(p, sizeof p, "%s/X.npy", dir);
    cr_assert_eq(ocn_npy_write(p, X, &e), OCN_OK, "%s", e.msg);
    ocn_array *y = ocn_arrayset_add2(s, "y", 1, mutate == 2 ? 5 : 6, 0, 0);
    for (size_t i = 0; i < y->size; i++) y->data[i] = (double)(i % 2);
    if (mutate == 3) y->data[4] = 1.5;
    if (mutate == 4) y->data[2] = -1;
    snprintf(p, sizeof p, "%s/y.npy", dir);
    cr_assert_eq(ocn_npy_write(p, y, &e), OCN_OK, "%s", e.msg);
    ocn_array *tr = ocn_arrayset_add2(s, "tr", 1, 4, 0, 0);
    for (size_t i = 0; i < 4; i++) tr->data[i] = (double)i;
    if (mutate == 5) tr->data[3] = 6;
    snprintf(p, sizeof p, "%s/train_idx.npy", dir);
    cr_assert_eq(ocn_npy_write(p, tr, &e), OCN_OK, "%s", e.msg);
    ocn_array *te = ocn_arrayset_add2(s, "te", 1, 2, 0, 0);
    te->data[0] = 4, te->data[1] = mutate == 6 ? 1 : 5;
    snprintf(p, sizeof p, "%s/test_idx.npy", dir);
    cr_assert_eq(ocn_npy_write(p, te, &e), OCN_OK, "%s", e.msg);
    ocn_arrayset_free(s);
}

Test(train, bad_data_named)
{
    static const char *want[] = {NULL, "y.npy: shape must be (5,)", "y.npy: shape must be (6,)",
                                 "y.npy: label 4 is 1.5, not an integer", "y.npy: label 2 is -1",
                                 "train_idx.npy: entry 3 is 6, not a row index in [0, 6)",
                                 "test_idx.npy: row 1 is also in train_idx.npy"};
    char dir[256];
    for (int m = 0; m <= 6; m++) {
        tu_tmpdir(dir, sizeof dir);
        write_set(dir, m);
        ocn_dataset *d = NULL;
        ocn_error e = {0};
        int rc = ocn_dataset_load(dir, &d, &e);
        if (!want[m]) {
            cr_expect_eq(rc, OCN_OK, "%s", e.msg);
            cr_expect_eq(d->classes, 2);
        } else {
            cr_expect_eq(rc, OCN_EINVAL, "mutation %d accepted", m);
            cr_expect(strstr(e.msg, want[m]) != NULL, "mutation %d: '%s' lacks '%s'", m, e.msg, want[m]);
            cr_expect(strstr(e.msg, dir) != NULL, "message names the path: %s", e.msg);
        }
        ocn_dataset_free(d);
        tu_rm_rf(dir);
    }
    /* the command line: one line naming the file, exit 2, nothing written */
    tu_tmpdir(dir, sizeof dir);
    write_set(dir, 3);
    char cmd[1024], csv[300];
    snprintf(csv, sizeof csv, "%s/out.csv", dir);
    snprintf(cmd, sizeof cmd, OCN_BIN " train " NET " %s --csv %s", dir, csv);
    tu_expect_exit2(cmd, "y.npy: label 4 is 1.5", csv);
    write_set(dir, 0); /* valid, but 2 features against the network's input_dim 64 */
    tu_expect_exit2(cmd, "input_dim is 64 but the data set's X.npy has 2 features", csv);
    snprintf(cmd, sizeof cmd, OCN_BIN " train " NET " %s/missing --csv %s", dir, csv);
    tu_expect_exit2(cmd, "missing/X.npy: cannot open", csv);
    /* the same network file on this 2-feature, 2-class set with --fit-data */
    char out[4096];
    int rc = tu_sh(out, sizeof out, OCN_BIN " train " NET " %s --fit-data --batch 2 --epochs 2 --optimizer sgd --lr 0.1 "
                   "--csv %s 2>&1", dir, csv);
    cr_expect_eq(rc, 0, "--fit-data: exit %d: %s", rc, out);
    struct stat st;
    cr_expect_eq(stat(csv, &st), 0, "--fit-data wrote no CSV");
    tu_rm_rf(dir);
}

static ocn_game *load_game_opt(const char *zero, const char *extra)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = fopen(NET, "r");
    cr_assert(f);
    FILE *m = open_memstream(&text, &n);
    int c;
    while ((c = fgetc(f)) != EOF) fputc(c, m);
    fclose(f), fclose(m);
    char *z = strstr(text, "\"zero\": []");
    cr_assert(z, "the network's optimizer lists zero: []");
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s\"zero\": [%s]%s%s", (int)(z - text), text, zero, extra, z + strlen("\"zero\": []"));
    ocn_game *g = tu_game(buf);
    free(text);
    return g;
}

static ocn_game *load_game(const char *zero)
{
    return load_game_opt(zero, "");
}

/* FD check of the chain network's gradient (the independent side below):
 * central differences, h = u^{1/3}·max(1, |θ|), error model h²·|f'''| + u·|f|/h. */
Test(train, net_gradient_matches_finite_differences)
{
    ocn_game *g = load_game("");
    ocn_dataset *d = digits(0);
    ocn_net *net;
    ocn_error e = {0};
    cr_assert_eq(ocn_net_new(g, &net, &e), OCN_OK, "%s", e.msg);
    size_t M = (size_t)ocn_net_nparams(net);
    cr_expect_eq(M, (size_t)ocn_game_nparams(g));
    double *th = malloc(M * sizeof *th), *gr = malloc(M * sizeof *gr), *sq = malloc(M * sizeof *sq);
    double *g2 = malloc(M * sizeof *g2);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 3);
    ocn_net_init(net, th, r);
    double lam = 1e-3;
    double L = ocn_net_grad(net, th, d, d->train, 8, lam, gr, sq);
    ocn_net_grad(net, th, d, d->train, 8, lam, g2, NULL);
    for (size_t j = 0; j < M; j++) /* the same sums in another grouping: a few ulps */
        cr_assert(fabs(gr[j] - g2[j]) <= 64 * DBL_EPSILON * (fabs(gr[j]) + sqrt(sq[j])), "theta[%zu]", j);
    const double u = DBL_EPSILON / 2;
    int checked = 0;
    for (size_t j = 0; j < M; j += 97) {
        double h = cbrt(u) * fmax(1, fabs(th[j])), t0 = th[j];
        th[j] = t0 + h;
        double lp = ocn_net_grad(net, th, d, d->train, 8, lam, g2, NULL);
        th[j] = t0 - h;
        double lm = ocn_net_grad(net, th, d, d->train, 8, lam, g2, NULL);
        th[j] = t0;
        double fd = (lp - lm) / (2 * h);
        double model = h * h * 10 + u * fabs(L) / h; /* |f'''| ≤ 10 for a tanh chain on standardised inputs */
        cr_expect(fabs(fd - gr[j]) <= 30 * model, "theta[%zu]: fd %.12g vs %.12g (model %.3g)", j, fd, gr[j], model);
        checked++;
    }
    cr_expect_gt(checked, 50);
    /* per-sample squares: mean_i g_i² ≥ (mean_i g_i)² (Jensen), equality only for equal samples */
    for (size_t j = 0; j < M; j++) cr_assert(sq[j] >= (gr[j] - lam * th[j]) * (gr[j] - lam * th[j]) * (1 - 1e-12) - 1e-300);
    gsl_rng_free(r);
    free(th), free(gr), free(sq), free(g2);
    ocn_net_free(net);
    ocn_dataset_free(d);
    ocn_game_free(g);
}

/* §10 ratio of mine against the optimized path's k (its measured c). */
static double ratio(const double *mine, const ocn_array *k)
{
    double num = 0, den = 0;
    for (size_t j = 0; j < k->size; j++) num += (mine[j] - k->data[j]) * (mine[j] - k->data[j]), den += k->data[j] * k->data[j];
    return sqrt(num) / fmax(sqrt(den), DBL_MIN) / (OCN_U64 * k->cond);
}

/* Issue 13 item 3: the optimized path's `zero: [Qthx]` rmsprop step is the
 * adaptive-diagonal step with the §13 statistic (ρ = 0: this batch's
 * per-sample mean square), k = η (g + λθ) / (√(mean_i g_i²) + ε), computed
 * here by the chain network's own backward pass.  The verdict is §10's
 * ratio with the optimized producer's measured c; a wrong statistic (the
 * RMSprop baseline's squared batch gradient), a relative error just above
 * the detection power, and the same game with the feedback on must fail. */
Test(train, zero_qthx_equals_adaptive_diagonal_step)
{
    ocn_dataset *d = digits(0);
    for (int zero = 1; zero >= 0; zero--) {
        ocn_game *g = load_game(zero ? "\"Qthx\"" : "");
        ocn_net *net;
        ocn_error e = {0};
        cr_assert_eq(ocn_net_new(g, &net, &e), OCN_OK, "%s", e.msg);
        size_t M = (size_t)ocn_net_nparams(net), B = (size_t)g->batch;
        double *th = malloc(M * sizeof *th), *gr = malloc(M * sizeof *gr), *sq = malloc(M * sizeof *sq);
        double *mine = malloc(M * sizeof *mine), *wrong = malloc(M * sizeof *wrong);
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(r, 5);
        ocn_net_init(net, th, r);
        gsl_rng_free(r);
        const size_t *idx = d->train + 100;
        double lam = g->weight_decay, eta = g->opt.lr, eps = g->opt.eps;
        ocn_net_grad(net, th, d, idx, B, lam, gr, sq);
        for (size_t j = 0; j < M; j++) {
            mine[j] = eta * gr[j] / (sqrt(sq[j]) + eps);
            double gb = gr[j] - lam * th[j];
            wrong[j] = eta * gr[j] / (sqrt(gb * gb) + eps);
        }
        ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
        cr_assert_eq(ocn_net_get(net, th, in, &e), OCN_OK);
        ocn_array *x0 = ocn_arrayset_add2(in, "x0", 2, B, d->d, 0);
        for (size_t i = 0; i < B; i++) memcpy(x0->data + i * d->d, d->X + idx[i] * d->d, d->d * sizeof(double));
        ocn_array *y = ocn_arrayset_add2(in, "y", 1, B, 0, 0);
        for (size_t i = 0; i < B; i++) y->data[i] = d->y[idx[i]];
        ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .form_limit = 0, .measure_runs = OCN_MEASURE_RUNS};
        cr_assert_eq(ocn_opt_run(g, &g->opt, in, &cfg, out, &e), OCN_OK, "%s", e.msg);
        size_t off = 0;
        for (int t = 0; t < g->T; t++) {
            char nm[64];
            snprintf(nm, sizeof nm, "k_t%d_n0", t);
            const ocn_array *k = ocn_arrayset_find(out, nm);
            cr_assert(k && k->size == (size_t)g->stages[t].players[0].m && k->cond > 0, "%s", nm);
            double rt = ratio(mine + off, k);
            if (zero) {
                cr_expect_lt(rt, 30, "%s: ratio %.3g (c = %.3g) against the adaptive-diagonal step", nm, rt, k->cond);
                cr_expect_geq(ratio(wrong + off, k), 300, "%s: the squared batch gradient must fail", nm);
                /* a relative error 10x the detection power 300·u·c must fail */
                double *pert = malloc(k->size * sizeof *pert);
                for (size_t j = 0; j < k->size; j++) pert[j] = mine[off + j] * (1 + 3000 * OCN_U64 * k->cond);
                cr_expect_geq(ratio(pert, k), 300, "%s: a relative error of %.2g must fail", nm, 3000 * OCN_U64 * k->cond);
                free(pert);
            } else if (t < g->T - 1) {
                /* with Q_θx the step carries the feedback's value recursion: not the plain step
                 * (the last stage's k has no feedback below it: equal there) */
                cr_expect_geq(rt, 300, "%s: with the feedback on the step must differ (ratio %.3g)", nm, rt);
            }
            off += k->size;
        }
        ocn_arrayset_free(in), ocn_arrayset_free(out);
        free(th), free(gr), free(sq), free(mine), free(wrong);
        ocn_net_free(net);
        ocn_game_free(g);
    }
    ocn_dataset_free(d);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = calloc(1, 1 << 20);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = 0;
    fclose(f);
    return s;
}

/* Issue 13 item 4: a short run of the command learns (loss falls, accuracy
 * floor) and is reproducible byte for byte (--no-timing); a different seed
 * gives different bytes (the check can fail). */
static void short_run(const char *opts, double acc_floor, int nruns)
{
    char dir[256];
    tu_tmpdir(dir, sizeof dir);
    char out[4096];
    for (int k = 0; k < nruns; k++) {
        int rc = tu_sh(out, sizeof out, OCN_BIN " train " NET " " DIGITS " %s --seed %d --no-timing --csv %s/%d.csv "
                       "--json %s/%d.json 2>&1", opts, k == 2 ? 8 : 7, dir, k, dir, k);
        cr_assert_eq(rc, 0, "ocn train %s: exit %d: %s", opts, rc, out);
    }
    char p[300];
    char *c[3] = {0}, *j[3] = {0};
    for (int k = 0; k < nruns; k++) {
        snprintf(p, sizeof p, "%s/%d.csv", dir, k), c[k] = slurp(p);
        snprintf(p, sizeof p, "%s/%d.json", dir, k), j[k] = slurp(p);
        cr_assert(c[k] && j[k]);
    }
    cr_expect_str_eq(c[0], c[1], "CSV not byte-identical");
    cr_expect_str_eq(j[0], j[1], "JSON not byte-identical");
    if (nruns > 2) cr_expect_str_neq(c[0], c[2], "another seed gave the same bytes");
    cr_expect(strstr(c[0], "seconds") == NULL && strstr(j[0], "seconds") == NULL, "--no-timing keeps timing out");
    /* rows: epoch,train_loss,test_loss,test_acc */
    int e0, eN = -1;
    double tl0, vl0, a0, tl = 0, vl, a = 0;
    char *line = strchr(c[0], '\n') + 1;
    cr_assert_eq(sscanf(line, "%d,%lf,%lf,%lf", &e0, &tl0, &vl0, &a0), 4);
    for (char *q = line; q && *q; q = strchr(q, '\n'), q = q ? q + 1 : NULL) sscanf(q, "%d,%lf,%lf,%lf", &eN, &tl, &vl, &a);
    cr_expect_eq(e0, 0);
    cr_expect_gt(eN, 0);
    cr_expect_lt(tl, 0.5 * tl0, "%s: training loss %g -> %g did not fall by half", opts, tl0, tl);
    cr_expect_geq(a, acc_floor, "%s: test accuracy %g below %g", opts, a, acc_floor);
    for (int k = 0; k < nruns; k++) free(c[k]), free(j[k]);
    tu_rm_rf(dir);
}

Test(train, short_run_adam_learns_and_reproduces, .timeout = 120)
{
    short_run("--optimizer adam --lr 0.003 --epochs 3", 0.85, 3);
}

/* the optimized path is the slow part (and ~10x slower under the sanitizers): one epoch, two runs */
Test(train, short_run_ddpnopt_learns_and_reproduces, .timeout = 120)
{
    short_run("--lr 0.01 --epochs 1", 0.80, 2);
}

/* The same over a §13 trajectory (ocn_opt_run_trajectory, data: fixed, 3
 * steps, ρ = 0.99 from the network file): with zero: [Qthx] each step is the adaptive-diagonal step
 * with the moving average v_s = ρ v_{s−1} + (1 − ρ) mean_i g_i² (v_0 = the
 * first batch statistic, no bias correction), θ_{s+1} = θ_s − η g/(√v_s + ε);
 * compared on the derived steps dtheta_s (their measured c, §13).  The
 * statistic without the average (ρ = 0) must fail from step 1 on. */
Test(train, zero_qthx_trajectory_equals_adaptive_diagonal_with_average)
{
    ocn_dataset *d = digits(0);
    ocn_game *g = load_game_opt("\"Qthx\"", ", \"steps\": 3");
    ocn_net *net;
    ocn_error e = {0};
    cr_assert_eq(ocn_net_new(g, &net, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(g->opt.stat_decay, 0.99, "the network file sets stat_decay 0.99");
    size_t M = (size_t)ocn_net_nparams(net), B = (size_t)g->batch;
    double *th = malloc(M * sizeof *th), *gr = malloc(M * sizeof *gr), *sq = malloc(M * sizeof *sq);
    double *v = malloc(M * sizeof *v), *step = malloc(M * sizeof *step);
    double *bad = malloc(M * sizeof *bad);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 9);
    ocn_net_init(net, th, r);
    gsl_rng_free(r);
    const size_t *idx = d->train + 200;
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    cr_assert_eq(ocn_net_get(net, th, in, &e), OCN_OK);
    ocn_array *x0 = ocn_arrayset_add2(in, "x0", 2, B, d->d, 0);
    for (size_t i = 0; i < B; i++) memcpy(x0->data + i * d->d, d->X + idx[i] * d->d, d->d * sizeof(double));
    ocn_array *y = ocn_arrayset_add2(in, "y", 1, B, 0, 0);
    for (size_t i = 0; i < B; i++) y->data[i] = d->y[idx[i]];
    ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .form_limit = 0, .measure_runs = OCN_MEASURE_RUNS};
    cr_assert_eq(ocn_opt_run_trajectory(g, &g->opt, in, &cfg, out, &e), OCN_OK, "%s", e.msg);
    double rho = g->opt.stat_decay, eta = g->opt.lr, eps = g->opt.eps;
    for (int s = 0; s < 3; s++) {
        ocn_net_grad(net, th, d, idx, B, g->weight_decay, gr, sq);
        for (size_t j = 0; j < M; j++) {
            v[j] = s == 0 ? sq[j] : rho * v[j] + (1 - rho) * sq[j];
            step[j] = -eta * gr[j] / (sqrt(v[j]) + eps);
            bad[j] = -eta * gr[j] / (sqrt(sq[j]) + eps);
        }
        size_t off = 0;
        for (int t = 0; t < g->T; t++) {
            char nm[64];
            snprintf(nm, sizeof nm, "dtheta_s%d_t%d_n0", s, t);
            const ocn_array *k = ocn_arrayset_find(out, nm);
            cr_assert(k && k->size == (size_t)g->stages[t].players[0].m && k->cond > 0, "%s missing", nm);
            double rt = ratio(step + off, k);
            cr_expect_lt(rt, 30, "%s: ratio %.3g (c = %.3g)", nm, rt, k->cond);
            if (s > 0) cr_expect_geq(ratio(bad + off, k), 300, "%s: the step without the average must fail", nm);
            off += k->size;
        }
        for (size_t j = 0; j < M; j++) th[j] += step[j];
    }
    ocn_arrayset_free(in), ocn_arrayset_free(out);
    free(th), free(gr), free(sq), free(v), free(step), free(bad);
    ocn_net_free(net);
    ocn_game_free(g);
    ocn_dataset_free(d);
}

/* PyTorch's rules on closed forms (torch.optim docs, defaults): SGD-m step 1
 * is η g and step 2 η(μ g1 + g2); RMSprop's first step is η g/(√(1−α)|g| + ε)
 * (v starts at 0, not g²); Adam's first step is η g/(|g| + ε) (both bias
 * corrections).  Each wrong variant named below moves a step by far more
 * than rounding, so these equalities (to a few ulps) catch it. */
Test(train, baselines_follow_pytorch_rules)
{
    ocn_train_opts o;
    ocn_train_opts_default(&o);
    const double g1[3] = {0.5, -2.0, 1e-3}, g2[3] = {-0.25, 1.0, 4.0}, lr = 0.1;
    double th[3], buf[3], sq[3];
#define RESET() (memset(th, 0, sizeof th), memset(buf, 0, sizeof buf), memset(sq, 0, sizeof sq))
#define NEAR(a, b) (fabs((a) - (b)) <= 4 * DBL_EPSILON * fabs(b))
    o.method = OCN_TRAIN_SGD; /* not: dampening (1−μ)g, Nesterov, or b = μ·0 + g missing at step 1 */
    RESET();
    ocn_train_baseline_step(&o, lr, 1, g1, buf, sq, th, 3);
    for (int j = 0; j < 3; j++) cr_expect(NEAR(th[j], -lr * g1[j]), "sgd step 1 [%d]", j);
    ocn_train_baseline_step(&o, lr, 2, g2, buf, sq, th, 3);
    for (int j = 0; j < 3; j++) cr_expect(NEAR(th[j], -lr * g1[j] - lr * (0.9 * g1[j] + g2[j])), "sgd step 2 [%d]", j);
    o.method = OCN_TRAIN_RMSPROP; /* not: v initialised with g² (that step would be η·sign(g)) */
    RESET();
    ocn_train_baseline_step(&o, lr, 1, g1, buf, sq, th, 3);
    for (int j = 0; j < 3; j++) cr_expect(NEAR(th[j], -lr * g1[j] / (sqrt(0.01) * fabs(g1[j]) + 1e-8)), "rmsprop [%d]", j);
    o.method = OCN_TRAIN_ADAM; /* not: without bias correction (a step 0.1/sqrt(0.001) ≈ 3.2 times larger) */
    RESET();
    ocn_train_baseline_step(&o, lr, 1, g1, buf, sq, th, 3);
    for (int j = 0; j < 3; j++) cr_expect(NEAR(th[j], -lr * g1[j] / (fabs(g1[j]) + 1e-8)), "adam step 1 [%d]: %.17g", j, th[j]);
    /* step 2 by the formula written out once more, with the moments by hand */
    double t2[3];
    memcpy(t2, th, sizeof th);
    ocn_train_baseline_step(&o, lr, 2, g2, buf, sq, th, 3);
    for (int j = 0; j < 3; j++) {
        double m = 0.9 * 0.1 * g1[j] + 0.1 * g2[j], v = 0.999 * 0.001 * g1[j] * g1[j] + 0.001 * g2[j] * g2[j];
        double want = t2[j] - lr * (m / (1 - 0.81)) / (sqrt(v) / sqrt(1 - 0.999 * 0.999) + 1e-8);
        cr_expect(fabs(th[j] - want) <= 16 * DBL_EPSILON * (fabs(want) + lr), "adam step 2 [%d]", j);
    }
#undef RESET
#undef NEAR
}
