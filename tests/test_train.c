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
#include <gsl/gsl_randist.h>
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
static void short_run_net(const char *net, const char *opts, double acc_floor, int nruns)
{
    char dir[256];
    tu_tmpdir(dir, sizeof dir);
    char out[4096];
    for (int k = 0; k < nruns; k++) {
        int rc = tu_sh(out, sizeof out, OCN_BIN " train %s " DIGITS " %s --seed %d --no-timing --csv %s/%d.csv "
                       "--json %s/%d.json 2>&1", net, opts, k == 2 ? 8 : 7, dir, k, dir, k);
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

static void short_run(const char *opts, double acc_floor, int nruns)
{
    short_run_net(NET, opts, acc_floor, nruns);
}

/* The same through the command line on the DIGITS CNN (ci/digits/cnn.json,
 * §14 conv chain, batch 128): SGD-m with train_net.c's conv loops, and
 * DDPNOpt (kfac KFC, blockdiag) through the optimized im2col step. */
Test(train, short_run_cnn_learns_and_reproduces, .timeout = 240) /* 45 s under ASan at load 4 */
{
    short_run_net("ci/digits/cnn.json", "--optimizer sgd --lr 0.07 --epochs 4", 0.85, 3);
    short_run_net("ci/digits/cnn.json", "--lr 0.03 --epochs 3", 0.85, 2);
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

/* ---- conv networks (SPEC §14, issue 14 item 6) ----------------------- */

/* A chain small enough for the dense reference: 1x5x5 → conv 3x3 `same` (2
 * channels, relu) → conv 3x3 `same` stride 2 (3 channels, tanh, 3x3) → conv
 * 3x3 `valid` (4 channels, relu, 1x1) → dense 4 → 3; B = 4.  OPT is the
 * optimizer object. */
#define CONV_TINY(OPT)                                                                                              \
    "{\"name\": \"train-conv-tiny\", \"seed\": 3, \"batch\": 4, \"input_dim\": 25,"                                 \
    " \"loss\": {\"kind\": \"ce\", \"classes\": 3}, \"weight_decay\": 1e-3, \"stages\": ["                            \
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [1, 5, 5],"      \
    " \"out_channels\": 2, \"kernel\": 3, \"act\": \"relu\"}]},"                                                     \
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [2, 5, 5],"      \
    " \"out_channels\": 3, \"kernel\": 3, \"stride\": 2, \"padding\": \"same\", \"act\": \"tanh\"}]},"              \
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [3, 3, 3],"      \
    " \"out_channels\": 4, \"kernel\": 3, \"padding\": \"valid\", \"act\": \"relu\"}]},"                            \
    "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3,"              \
    " \"act\": \"identity\"}]}], \"optimizer\": " OPT "}"

/* A data set held in memory: n rows of d features drawn N(0, 1), labels i % k. */
static ocn_dataset *mem_set(size_t n, size_t d, int k, unsigned long seed)
{
    ocn_dataset *s = calloc(1, sizeof *s);
    s->n = n, s->d = d, s->classes = k, s->ntrain = n, s->prepared = 1;
    s->X = malloc(n * d * sizeof *s->X), s->y = malloc(n * sizeof *s->y), s->train = malloc(n * sizeof *s->train);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n * d; i++) s->X[i] = gsl_ran_gaussian(r, 1.0);
    for (size_t i = 0; i < n; i++) s->y[i] = (int)(i % (size_t)k), s->train[i] = i;
    gsl_rng_free(r);
    return s;
}

static void mem_set_free(ocn_dataset *s)
{
    free(s->X), free(s->y), free(s->train), free(s);
}

/* §11 inputs of one step: θ and the rows 0..B of d. */
static ocn_arrayset *step_inputs(const ocn_game *g, const ocn_net *net, const double *th, const ocn_dataset *d)
{
    ocn_error e = {0};
    size_t B = (size_t)g->batch;
    ocn_arrayset *in = ocn_arrayset_new();
    cr_assert_eq(ocn_net_get(net, th, in, &e), OCN_OK, "%s", e.msg);
    ocn_array *x0 = ocn_arrayset_add2(in, "x0", 2, B, d->d, 0);
    memcpy(x0->data, d->X, B * d->d * sizeof(double));
    ocn_array *y = ocn_arrayset_add2(in, "y", 1, B, 0, 0);
    for (size_t i = 0; i < B; i++) y->data[i] = d->y[i];
    return in;
}

/* The reference (`ocn gen`'s computation: explicit conv Jacobians, §10 c
 * measured with 2 runs) on the same game, θ and batch; `fault` reads every
 * conv tap (i, j) as (j, i) (reference/conv.c's test flag). */
static ocn_arrayset *ref_step(ocn_game *g, const ocn_arrayset *in, int fault)
{
    for (int t = 0; t < g->T; t++) g->stages[t].players[0].conv.fault = fault;
    ocn_error e = {0};
    ocn_ref_opts ro = {.measure_runs = 2};
    ocn_arrayset *out = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_run(g, &g->opt, in, &ro, out, &e), OCN_OK, "%s", e.msg);
    for (int t = 0; t < g->T; t++) g->stages[t].players[0].conv.fault = 0;
    return out;
}

/* `ocn train`'s SGD step on a conv net (its own tap loops, src/train_net.c:
 * step 1 of SGD-m is θ ← θ − η(∇ + λθ)) equals the reference's step with
 * `sgd` curvature and no feedback (`zero: [Qthx]`: k = η Q_θ, §5), per stage
 * on k with its measured c (§10 ratio < 30).  Caught: the reference reading
 * the kernel transposed, and a relative error 10x the detection power. */
Test(train, conv_sgd_step_equals_reference)
{
    ocn_game *g = tu_game(CONV_TINY("{\"game\": \"fne\", \"curvature\": \"sgd\", \"value\": \"persample\", "
                                    "\"lr\": 0.3, \"zero\": [\"Qthx\"]}"));
    ocn_net *net;
    ocn_error e = {0};
    cr_assert_eq(ocn_net_new(g, &net, &e), OCN_OK, "%s", e.msg);
    size_t M = (size_t)ocn_net_nparams(net);
    cr_assert_eq(M, (size_t)ocn_game_nparams(g));
    ocn_dataset *d = mem_set(4, 25, 3, 11);
    double *th = malloc(M * sizeof *th), *gr = malloc(M * sizeof *gr), *mine = calloc(M, sizeof *mine);
    double *buf = calloc(M, sizeof *buf), *sq = calloc(M, sizeof *sq);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 21);
    ocn_net_init(net, th, r);
    gsl_rng_free(r);
    ocn_net_grad(net, th, d, d->train, 4, g->weight_decay, gr, NULL);
    ocn_train_opts o;
    ocn_train_opts_default(&o);
    o.method = OCN_TRAIN_SGD;
    ocn_train_baseline_step(&o, g->opt.lr, 1, gr, buf, sq, mine, M); /* mine = −η·g from θ = 0 */
    for (size_t j = 0; j < M; j++) mine[j] = -mine[j];
    ocn_arrayset *in = step_inputs(g, net, th, d);
    ocn_arrayset *ref = ref_step(g, in, 0), *bad = ref_step(g, in, 1);
    size_t off = 0;
    for (int t = 0; t < g->T; t++) {
        char nm[64];
        snprintf(nm, sizeof nm, "k_t%d_n0", t);
        const ocn_array *k = ocn_arrayset_find(ref, nm), *kb = ocn_arrayset_find(bad, nm);
        cr_assert(k && kb && k->size == (size_t)g->stages[t].players[0].m && k->cond > 0, "%s", nm);
        double rt = ratio(mine + off, k);
        cr_expect_lt(rt, 30, "stage %d: ratio %.3g (c = %.3g) against the reference", t, rt, k->cond);
        /* the transposed kernel changes the gradient of every stage at or before the last conv */
        if (t < g->T - 1) cr_expect_geq(ratio(mine + off, kb), 300, "stage %d: a transposed kernel must fail", t);
        double *pert = malloc(k->size * sizeof *pert);
        for (size_t j = 0; j < k->size; j++) pert[j] = mine[off + j] * (1 + 3000 * OCN_U64 * k->cond);
        cr_expect_geq(ratio(pert, k), 300, "stage %d: a relative error of %.2g must fail", t, 3000 * OCN_U64 * k->cond);
        free(pert);
        off += k->size;
    }
    ocn_arrayset_free(in), ocn_arrayset_free(ref), ocn_arrayset_free(bad);
    free(th), free(gr), free(mine), free(buf), free(sq);
    mem_set_free(d);
    ocn_net_free(net);
    ocn_game_free(g);
}

/* `ocn train`'s DDP step (ocn_train_game_step: the optimized path's im2col
 * step with the §13 state, as every batch of `ocn train` runs it) on the
 * conv chain with DDPNOpt's CNN recipe — FNE, `persample` values, Prop. 3's
 * `terminal: outer`, KFC `kfac` curvature, feedback on — and with
 * `gn-outer` (§7 Woodbury): θ_new equals the reference's (measured c).
 * The reference with a transposed kernel must fail the same comparison. */
Test(train, conv_ddp_step_equals_reference)
{
    static const char *const opts[] = {
        "{\"game\": \"fne\", \"curvature\": \"kfac\", \"value\": \"persample\", \"terminal\": \"outer\","
        " \"lr\": 0.5, \"damping\": 0.01, \"zero\": [], \"stat_decay\": 0.95, \"refresh_every\": 10}",
        "{\"game\": \"fne\", \"curvature\": \"gn-outer\", \"value\": \"persample\", \"terminal\": \"outer\","
        " \"lr\": 0.5, \"damping\": 0.01, \"zero\": []}",
    };
    char json[4096];
    for (size_t oi = 0; oi < sizeof opts / sizeof *opts; oi++) {
        snprintf(json, sizeof json, CONV_TINY("%s"), opts[oi]);
        ocn_game *g = tu_game(json);
        ocn_net *net;
        ocn_error e = {0};
        cr_assert_eq(ocn_net_new(g, &net, &e), OCN_OK, "%s", e.msg);
        size_t M = (size_t)ocn_net_nparams(net);
        ocn_dataset *d = mem_set(4, 25, 3, 12);
        double *th = malloc(M * sizeof *th), *th0 = malloc(M * sizeof *th0);
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(r, 22);
        ocn_net_init(net, th, r);
        gsl_rng_free(r);
        memcpy(th0, th, M * sizeof *th);
        ocn_arrayset *in = step_inputs(g, net, th, d), *scratch = ocn_arrayset_new();
        ocn_opt_state *st = NULL;
        ocn_opt_config cfg = {.backend = "cpu", .precision = 64};
        cr_assert_eq(ocn_opt_state_new(g, &g->opt, &cfg, &st, &e), OCN_OK, "%s", e.msg);
        cr_assert_eq(ocn_train_game_step(g, net, st, d, d->train, th, scratch, &e), OCN_OK, "%s", e.msg);
        ocn_arrayset *ref = ref_step(g, in, 0), *bad = ref_step(g, in, 1);
        size_t off = 0;
        double moved = 0;
        for (int t = 0; t < g->T; t++) {
            char nm[64];
            snprintf(nm, sizeof nm, "theta_new_t%d_n0", t);
            const ocn_array *a = ocn_arrayset_find(ref, nm), *ab = ocn_arrayset_find(bad, nm);
            cr_assert(a && ab && a->size == (size_t)g->stages[t].players[0].m && a->cond > 0, "%s", nm);
            double rt = ratio(th + off, a);
            cr_expect_lt(rt, 30, "%s stage %d: ratio %.3g (c = %.3g)", opts[oi], t, rt, a->cond);
            if (t < g->T - 1) cr_expect_geq(ratio(th + off, ab), 300, "%s stage %d: a transposed kernel must fail", opts[oi], t);
            off += a->size;
        }
        for (size_t j = 0; j < M; j++) moved = fmax(moved, fabs(th[j] - th0[j]));
        cr_expect_gt(moved, 1e-3, "the step moved θ (max |Δθ| %.3g)", moved);
        ocn_opt_state_free(st);
        ocn_arrayset_free(in), ocn_arrayset_free(scratch), ocn_arrayset_free(ref), ocn_arrayset_free(bad);
        free(th), free(th0);
        mem_set_free(d);
        ocn_net_free(net);
        ocn_game_free(g);
    }
}

/* A separable image problem: 1x6x6, class 0 a vertical bar, class 1 a
 * horizontal bar (random row/column, amplitude 1, noise N(0, 0.3²)); rows
 * alternate classes; the first ntr rows train, the rest test. */
static ocn_dataset *bars(size_t ntr, size_t nte, unsigned long seed)
{
    size_t n = ntr + nte;
    ocn_dataset *s = mem_set(n, 36, 2, seed);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed + 1);
    for (size_t i = 0; i < n; i++) {
        double *x = s->X + i * 36;
        size_t at = gsl_rng_uniform_int(r, 6);
        for (size_t q = 0; q < 36; q++) x[q] = 0.3 * gsl_ran_gaussian(r, 1.0);
        for (size_t q = 0; q < 6; q++) x[s->y[i] == 0 ? q * 6 + at : at * 6 + q] += 1.0;
    }
    gsl_rng_free(r);
    s->ntrain = ntr, s->ntest = nte;
    s->test = malloc(nte * sizeof *s->test);
    for (size_t i = 0; i < nte; i++) s->test[i] = ntr + i;
    return s;
}

#define CONV_BARS(OPT)                                                                                             \
    "{\"name\": \"train-conv-bars\", \"seed\": 0, \"batch\": 16, \"input_dim\": 36,"                               \
    " \"loss\": {\"kind\": \"ce\", \"classes\": 2}, \"weight_decay\": 0, \"stages\": ["                             \
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [1, 6, 6],"     \
    " \"out_channels\": 4, \"kernel\": 3, \"act\": \"relu\"}]},"                                                    \
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [4, 6, 6],"     \
    " \"out_channels\": 4, \"kernel\": 3, \"stride\": 2, \"act\": \"relu\"}]},"                                     \
    "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2,"             \
    " \"act\": \"identity\"}]}], \"optimizer\": " OPT "}"

/* A conv net learns a separable problem with SGD-m, Adam and DDPNOpt's CNN
 * recipe (kfac KFC curvature, Prop. 3 terminal, §13 state): training loss at
 * most half the initial one, test accuracy ≥ 90% (chance: 50%).  The same
 * runs with the labels shuffled (nothing to learn on the test rows) must
 * stay near chance, so the floor is not met by accident. */
Test(train, conv_net_learns_separable_bars, .timeout = 120)
{
    static const struct { ocn_train_method m; double lr; } runs[] = {
        {OCN_TRAIN_SGD, 0.05}, {OCN_TRAIN_ADAM, 0.01}, {OCN_TRAIN_GAME, 0.1}};
    ocn_game *g = tu_game(CONV_BARS("{\"game\": \"fne\", \"curvature\": \"kfac\", \"value\": \"persample\","
                                    " \"terminal\": \"outer\", \"lr\": 0.1, \"damping\": 0.01, \"zero\": [],"
                                    " \"stat_decay\": 0.95, \"refresh_every\": 10}"));
    for (int shuffled = 0; shuffled <= 1; shuffled++) {
        ocn_dataset *d = bars(128, 64, 5);
        if (shuffled) /* labels of the training rows reassigned at random: a test row's class is unlearnable */
            for (size_t i = 0; i < d->ntrain; i++) d->y[i] = (int)((i * 7919 + i / 3) % 2);
        for (size_t k = 0; k < sizeof runs / sizeof *runs; k++) {
            ocn_train_opts o;
            ocn_train_opts_default(&o);
            o.method = runs[k].m, o.lr = runs[k].lr, o.epochs = 8, o.seed = 4;
            ocn_train_result res;
            ocn_error e = {0};
            cr_assert_eq(ocn_train_run(g, d, &o, &res, &e), OCN_OK, "%s", e.msg);
            cr_assert(!res.diverged, "method %d: %s", runs[k].m, res.why);
            double l0 = res.train_loss[0], l1 = res.train_loss[o.epochs], a = res.eval_acc[o.epochs];
            cr_log_info("bars shuffled=%d method %d: loss %.4f -> %.4f, test accuracy %.3f", shuffled, runs[k].m, l0, l1, a);
            if (!shuffled) {
                cr_expect_lt(l1, 0.5 * l0, "method %d: training loss %.4f -> %.4f did not halve", runs[k].m, l0, l1);
                cr_expect_geq(a, 0.9, "method %d: test accuracy %.3f", runs[k].m, a);
            } else {
                cr_expect_lt(a, 0.75, "method %d: shuffled labels yet test accuracy %.3f", runs[k].m, a);
            }
            ocn_train_result_free(&res);
        }
        free(d->test);
        mem_set_free(d);
    }
    ocn_game_free(g);
}

/* Combinations `ocn train` cannot run on a conv network are refused before
 * any training, the message naming the stage (and player or part):
 * coop-kfac on a conv stage (§14, the loader), a residual carry across a
 * conv (not a chain), and gn-outer on a bench-size CNN whose §7 Woodbury
 * Gram over locations does not fit (the optimized path's memory estimate;
 * exact ce terminal, r = 10: (B·r·P)² = 327680² doubles). */
Test(train, conv_unsupported_combinations_named)
{
    ocn_game *g = NULL;
    ocn_error e = {0};
    char json[4096];
    snprintf(json, sizeof json, CONV_BARS("%s"), "{\"game\": \"gr\", \"curvature\": \"coop-kfac\", \"damping\": 0.1}");
    cr_expect_neq(ocn_game_load_string(json, "coop.json", &g, &e), OCN_OK, "coop-kfac on conv accepted");
    cr_expect(strstr(e.msg, "coop-kfac") && strstr(e.msg, "stage 0"), "message: %s", e.msg);
    ocn_game_free(g), g = NULL;

    static const char res[] =
        "{\"name\": \"res\", \"seed\": 0, \"batch\": 4, \"input_dim\": 36, \"loss\": {\"kind\": \"ce\", \"classes\": 2},"
        " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [1, 6, 6],"
        " \"out_channels\": 1, \"kernel\": 3, \"act\": \"relu\"}], \"carries\": [{\"from\": \"z\", \"to\": \"r\"}]},"
        " {\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [1, 6, 6],"
        " \"out_channels\": 1, \"kernel\": 3, \"act\": \"identity\"}], \"carries\": [{\"from\": \"r\", \"to\": \"z\"}]},"
        " {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2, \"act\": \"identity\"}]}],"
        " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"sgd\"}}";
    g = tu_game(res);
    ocn_net *net = NULL;
    cr_expect_eq(ocn_net_new(g, &net, &e), OCN_EUNSUPPORTED, "a carry across a conv accepted");
    cr_expect(strstr(e.msg, "stage 0") && strstr(e.msg, "carries"), "message: %s", e.msg);
    ocn_game_free(g);

    static const char big[] =
        "{\"name\": \"bench-cnn\", \"seed\": 0, \"batch\": 128, \"input_dim\": 768, \"loss\": {\"kind\": \"ce\", \"classes\": 10},"
        " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [3, 16, 16],"
        " \"out_channels\": 16, \"kernel\": 3, \"act\": \"relu\"}]},"
        " {\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [16, 16, 16],"
        " \"out_channels\": 32, \"kernel\": 3, \"stride\": 2, \"act\": \"relu\"}]},"
        " {\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [32, 8, 8],"
        " \"out_channels\": 64, \"kernel\": 3, \"stride\": 2, \"act\": \"relu\"}]},"
        " {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 10, \"act\": \"identity\"}]}],"
        " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"gn-outer\", \"damping\": 0.01, \"value\": \"persample\"}}";
    g = tu_game(big);
    ocn_dataset *d = mem_set(128, 768, 10, 1);
    d->ntest = 1, d->test = malloc(sizeof *d->test), d->test[0] = 0;
    ocn_train_opts o;
    ocn_train_opts_default(&o);
    o.epochs = 1;
    ocn_train_result r;
    e = (ocn_error){0};
    int rc = ocn_train_run(g, d, &o, &r, &e);
    cr_expect_neq(rc, OCN_OK, "gn-outer on a bench-size CNN accepted");
    cr_expect(strstr(e.msg, "bench-cnn") && strstr(e.msg, "Gram") != NULL, "message: %s", e.msg);
    cr_log_info("refused: %s", e.msg);
    free(d->test);
    mem_set_free(d);
    ocn_game_free(g);
}
