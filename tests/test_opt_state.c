/* SPEC §13 in the optimized path (optimized/state.c): the carried state
 * against independent computations.
 *  - one-step semantics: a state's first step is bit-identical to ocn_opt_run
 *    on every shipped fixture the optimized path supports, f64 and f32;
 *  - ρ = 0, T_r = 1: every step equals ocn_opt_run on that step's parameters
 *    and batch (kfac, rmsprop, coop-kfac), and ocn_opt_run_trajectory equals
 *    the chain of one-step runs;
 *  - ρ = 0.9: the exported kfac averages A, G and the rmsprop average v equal
 *    an EMA of batch statistics computed densely here from the step's own
 *    states x_t, value gradients Vx and parameters;
 *  - T_r = 3: the gain at every step equals η (A_r + √γI)⁻¹ mat(Q_θ) (G_r + √γI)⁻¹
 *    with r the last refresh step (inverted here by Gauss–Jordan), and fails
 *    against the fresh operator between refreshes (stale really is stale). */
#include "util.h"
#include "ocn/optimized.h"
#include "ocn/tolerance.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A two-layer MLP (4 -> 5 tanh -> 3 identity, ce, B = 6); `optim` is the
 * optimizer object's JSON. */
static ocn_game *mlp_wd(const char *optim, double wd, int batch)
{
    char js[2048];
    snprintf(js, sizeof js,
             "{\"name\": \"traj-mlp\", \"seed\": 11, \"batch\": %d, \"input_dim\": 4,"
             " \"loss\": {\"kind\": \"ce\", \"classes\": 3}, \"weight_decay\": %g,"
             " \"stages\": ["
             "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 5, \"act\": \"tanh\"}]},"
             "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"identity\"}]}"
             " ], \"optimizer\": %s}",
             batch, wd, optim);
    return tu_game(js);
}
static ocn_game *mlp(const char *optim) { return mlp_wd(optim, 1e-3, 6); }

/* Inputs of game g plus a stream of batches x0_s{s}, y_s{s} (s = 0..n-1), s = 0
 * being the §12 batch (deterministic values, labels in range). */
static ocn_arrayset *inputs_with_stream(const ocn_game *g, int n)
{
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    const ocn_array *x0 = ocn_arrayset_find(in, "x0"), *y = ocn_arrayset_find(in, "y");
    size_t xs[OCN_MAX_NDIM], ys[OCN_MAX_NDIM];
    int xd = x0->ndim, yd = y->ndim;
    memcpy(xs, x0->shape, sizeof xs), memcpy(ys, y->shape, sizeof ys);
    for (int s = 0; s < n; s++) {
        char nm[32];
        snprintf(nm, sizeof nm, "x0_s%d", s);
        ocn_array *a = ocn_arrayset_add(in, nm, xd, xs);
        x0 = ocn_arrayset_find(in, "x0");
        for (size_t i = 0; i < a->size; i++) a->data[i] = s ? sin(1.7 * (double)i + 0.9 * s) * 1.3 : x0->data[i];
        snprintf(nm, sizeof nm, "y_s%d", s);
        a = ocn_arrayset_add(in, nm, yd, ys);
        y = ocn_arrayset_find(in, "y");
        for (size_t i = 0; i < a->size; i++)
            a->data[i] = s ? (g->loss == OCN_LOSS_CE ? (double)((i * 7 + (size_t)s) % (size_t)g->classes) : cos(0.3 * (double)i + s))
                           : y->data[i];
    }
    return in;
}

/* The one-step inputs of step s: parameters from `theta` (theta_t… names, or
 * theta_new_t… when `from_new`), Wfix from `in`, batch x0_s{s}, y_s{s}. */
static ocn_arrayset *step_inputs(const ocn_arrayset *in, const ocn_arrayset *theta, int from_new, int s)
{
    ocn_arrayset *r = ocn_arrayset_new();
    for (int i = 0; i < in->count; i++)
        if (!strncmp(in->a[i].name, "Wfix_", 5) || (!from_new && !strncmp(in->a[i].name, "theta_t", 7))) {
            ocn_array *a = ocn_arrayset_add(r, in->a[i].name, in->a[i].ndim, in->a[i].shape);
            memcpy(a->data, in->a[i].data, a->size * sizeof(double));
        }
    for (int i = 0; from_new && i < theta->count; i++)
        if (!strncmp(theta->a[i].name, "theta_new_", 10)) {
            char nm[64];
            snprintf(nm, sizeof nm, "theta_%s", theta->a[i].name + 10);
            ocn_array *a = ocn_arrayset_add(r, nm, theta->a[i].ndim, theta->a[i].shape);
            memcpy(a->data, theta->a[i].data, a->size * sizeof(double));
        }
    char xn[32], yn[32];
    snprintf(xn, sizeof xn, "x0_s%d", s), snprintf(yn, sizeof yn, "y_s%d", s);
    const ocn_array *x = ocn_arrayset_find(in, xn), *y = ocn_arrayset_find(in, yn);
    ocn_array *a = ocn_arrayset_add(r, "x0", x->ndim, x->shape);
    memcpy(a->data, x->data, a->size * sizeof(double));
    y = ocn_arrayset_find(in, yn);
    a = ocn_arrayset_add(r, "y", y->ndim, y->shape);
    memcpy(a->data, y->data, a->size * sizeof(double));
    return r;
}

/* Same names, shapes and bits. */
static void expect_identical(const ocn_arrayset *a, const ocn_arrayset *b, const char *what)
{
    cr_assert_eq(a->count, b->count, "%s: %d vs %d arrays", what, a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        const ocn_array *x = &a->a[i], *y = ocn_arrayset_find(b, x->name);
        cr_assert(y != NULL && y->size == x->size, "%s: '%s' missing or of another size", what, x->name);
        cr_assert(!memcmp(x->data, y->data, x->size * sizeof(double)), "%s: '%s' differs", what, x->name);
    }
}

Test(opt_state, first_step_bit_identical_to_ocn_opt_run_on_every_fixture, .timeout = 300)
{
    int nf = 0, compared = 0;
    const char *const *dirs = tu_fixtures(&nf);
    for (int k = 0; k < nf; k++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        cr_assert_eq(ocn_fixture_read(dirs[k], &f, &e), OCN_OK, "%s", e.msg);
        const ocn_game *g = f->game;
        if (ocn_opt_unsupported(g, &g->opt) || ocn_game_is_trajectory(g)) {
            ocn_fixture_free(f);
            continue;
        }
        for (int prec = 32; prec <= 64; prec += 32)
            for (int variant = 0; variant < 2; variant++) {
                ocn_optimizer o = g->opt; /* §13: at s = 0 the average is the batch statistic, and a refresh */
                if (variant) o.stat_decay = 0.9, o.refresh_every = 3, o.steps = 4;
                ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .form_limit = 1 << 20};
                ocn_arrayset *a = ocn_arrayset_new(), *b = ocn_arrayset_new();
                int ra = ocn_opt_run(g, &o, f->arrays, &cfg, a, &e);
                ocn_opt_state *st = NULL;
                cr_assert_eq(ocn_opt_state_new(g, &o, &cfg, &st, &e), OCN_OK, "%s: %s", dirs[k], e.msg);
                int rb = ocn_opt_step(st, f->arrays, b, &e);
                cr_assert_eq(ra, rb, "%s f%d: same status", dirs[k], prec);
                if (!ra) expect_identical(a, b, dirs[k]), compared++;
                else cr_expect_eq(b->count, 0, "a refused step adds nothing");
                cr_expect_eq(ocn_opt_state_step_index(st), ra ? 0 : 1, "a refused step leaves the state as it was");
                ocn_opt_state_free(st);
                ocn_arrayset_free(a), ocn_arrayset_free(b);
            }
        ocn_fixture_free(f);
    }
    cr_expect_gt(compared, 80, "many fixtures compared (%d)", compared);
}

/* ρ = 0, T_r = 1: each step is the one-step computation from that step's
 * parameters and batch (same code, bit-identical); the trajectory driver
 * reproduces the chain. */
static void chain_equals_one_step_runs(ocn_game *g, int prec)
{
    const int ns = 4;
    ocn_error e = {0};
    ocn_arrayset *in = inputs_with_stream(g, ns);
    ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .form_limit = 1 << 20};
    ocn_opt_state *st = NULL;
    cr_assert_eq(ocn_opt_state_new(g, &g->opt, &cfg, &st, &e), OCN_OK, "%s", e.msg);
    ocn_arrayset *prev = NULL;
    for (int s = 0; s < ns; s++) {
        ocn_arrayset *si = step_inputs(in, prev, prev != NULL, s);
        ocn_arrayset *a = ocn_arrayset_new(), *b = ocn_arrayset_new();
        cr_assert_eq(ocn_opt_run(g, &g->opt, si, &cfg, a, &e), OCN_OK, "%s", e.msg);
        cr_assert_eq(ocn_opt_step(st, si, b, &e), OCN_OK, "%s", e.msg);
        char what[192];
        snprintf(what, sizeof what, "%s f%d step %d", g->name, prec, s);
        expect_identical(a, b, what);
        ocn_arrayset_free(b), ocn_arrayset_free(si), ocn_arrayset_free(prev);
        prev = a;
    }
    /* the driver: data stream, the same chain */
    ocn_optimizer o = g->opt;
    o.steps = ns, o.data_stream = 1;
    ocn_arrayset *tr = ocn_arrayset_new();
    cr_assert_eq(ocn_opt_run_trajectory(g, &o, in, &cfg, tr, &e), OCN_OK, "%s", e.msg);
    for (int i = 0; i < prev->count; i++) {
        const ocn_array *x = &prev->a[i];
        char nm[64];
        snprintf(nm, sizeof nm, "%s", x->name);
        if (!strncmp(x->name, "theta_new_", 10)) snprintf(nm, sizeof nm, "theta_s%d_%s", ns, x->name + 10);
        const ocn_array *y = ocn_arrayset_find(tr, x->name), *z = ocn_arrayset_find(tr, nm);
        cr_assert(y && z, "trajectory has '%s' and '%s'", x->name, nm);
        cr_assert(!memcmp(x->data, y->data, x->size * sizeof(double)), "last step's '%s' identical", x->name);
        cr_assert(!memcmp(x->data, z->data, x->size * sizeof(double)), "'%s' identical", nm);
    }
    ocn_arrayset_free(tr), ocn_arrayset_free(prev), ocn_arrayset_free(in);
    ocn_opt_state_free(st);
}

Test(opt_state, rho0_every_step_equals_the_one_step_run, .timeout = 120)
{
    const char *optims[] = {
        "{\"game\": \"fne\", \"curvature\": \"kfac\", \"lr\": 0.5, \"damping\": 0.1}",
        "{\"game\": \"fne\", \"curvature\": \"rmsprop\", \"lr\": 0.1, \"eps\": 1e-8}",
        "{\"game\": \"fne\", \"curvature\": \"exact\", \"lr\": 0.5, \"damping\": 0.1}",
    };
    for (size_t k = 0; k < sizeof optims / sizeof *optims; k++)
        for (int prec = 32; prec <= 64; prec += 32) {
            ocn_game *g = mlp(optims[k]);
            chain_equals_one_step_runs(g, prec);
            ocn_game_free(g);
        }
    /* coop-kfac's joint state on a two-player GR stage */
    ocn_error e = {0};
    ocn_fixture *f = NULL;
    cr_assert_eq(ocn_fixture_read("fixtures/coop-w12-coopkfac-gr", &f, &e), OCN_OK, "%s", e.msg);
    chain_equals_one_step_runs(f->game, 64);
    ocn_fixture_free(f);
}

/* ---- independent dense statistics of the MLP (stage t, its one dense player) ---- */

/* W[o][c] = θ[c·out + o], b[o] = θ[in·out + o] (§2 column-major vec([W b])). */
static void batch_stats(const ocn_game *g, const ocn_arrayset *si, const ocn_arrayset *so, int t, double *Ah,
                        double *Gh, double *vh)
{
    int B = g->batch, in = g->stages[t].players[0].in_dim, out = g->stages[t].players[0].out_dim, na = in + 1;
    char nm[32];
    snprintf(nm, sizeof nm, "theta_t%d_n0", t);
    const double *th = ocn_arrayset_find(si, nm)->data;
    snprintf(nm, sizeof nm, "x_t%d", t);
    const double *x = ocn_arrayset_find(so, nm)->data;
    snprintf(nm, sizeof nm, "Vx_t%d_n0", t + 1);
    const double *v = ocn_arrayset_find(so, nm)->data; /* per-sample v_x' (§1 scaling) */
    ocn_act act = g->stages[t].players[0].act;
    memset(Ah, 0, sizeof(double) * na * na), memset(Gh, 0, sizeof(double) * out * out);
    memset(vh, 0, sizeof(double) * na * out);
    for (int i = 0; i < B; i++) {
        double a[16], gg[16];
        for (int c = 0; c < in; c++) a[c] = x[i * in + c];
        a[in] = 1;
        for (int o = 0; o < out; o++) {
            double h = th[in * out + o];
            for (int c = 0; c < in; c++) h += th[c * out + o] * a[c];
            double d = act == OCN_ACT_TANH ? 1 - tanh(h) * tanh(h) : 1;
            gg[o] = d * v[i * out + o]; /* g = σ'(h) ⊙ v_x' (§5) */
        }
        for (int r = 0; r < na; r++)
            for (int c = 0; c < na; c++) Ah[r * na + c] += a[r] * a[c] / B;
        for (int r = 0; r < out; r++)
            for (int c = 0; c < out; c++) Gh[r * out + c] += gg[r] * gg[c] / B;
        for (int c = 0; c < na; c++) /* (Q_θ^(i))² = (a ⊗ g)², θ's vec order */
            for (int o = 0; o < out; o++) vh[c * out + o] += a[c] * a[c] * gg[o] * gg[o] / B;
    }
}

/* §10 ratio of x against the independent x* with the floor c = d (a sum in another order). */
static double ratio(const double *x, const double *ref, size_t n, double c)
{
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) e += (x[i] - ref[i]) * (x[i] - ref[i]), r += ref[i] * ref[i];
    return sqrt(e) / fmax(sqrt(r), 1e-300) / (OCN_U64 * c);
}

Test(opt_state, rho_averages_equal_an_independent_ema, .timeout = 120)
{
    const char *optims[] = {
        "{\"game\": \"fne\", \"curvature\": \"kfac\", \"lr\": 0.5, \"damping\": 0.1, \"stat_decay\": 0.9, "
        "\"refresh_every\": 3, \"steps\": 5, \"data\": \"stream\"}",
        "{\"game\": \"fne\", \"curvature\": \"rmsprop\", \"lr\": 0.1, \"eps\": 1e-8, \"stat_decay\": 0.9, "
        "\"steps\": 5, \"data\": \"stream\"}",
    };
    for (int k = 0; k < 2; k++) {
        const int ns = 5;
        ocn_game *g = mlp(optims[k]);
        double d = ocn_tolerance_floor(g, &g->opt), rho = 0.9;
        ocn_error e = {0};
        ocn_arrayset *in = inputs_with_stream(g, ns), *prev = NULL;
        ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .form_limit = 1 << 20};
        ocn_opt_state *st = NULL;
        cr_assert_eq(ocn_opt_state_new(g, &g->opt, &cfg, &st, &e), OCN_OK, "%s", e.msg);
        double A[2][36], G[2][36], V[2][36]; /* the EMA, per stage */
        for (int s = 0; s < ns; s++) {
            ocn_arrayset *si = step_inputs(in, prev, prev != NULL, s), *so = ocn_arrayset_new(), *ex = ocn_arrayset_new();
            cr_assert_eq(ocn_opt_step(st, si, so, &e), OCN_OK, "%s", e.msg);
            cr_assert_eq(ocn_opt_state_export(st, ex, &e), OCN_OK, "%s", e.msg);
            for (int t = 0; t < 2; t++) {
                int na = g->stages[t].players[0].in_dim + 1, out = g->stages[t].players[0].out_dim;
                double Ah[36], Gh[36], vh[36];
                batch_stats(g, si, so, t, Ah, Gh, vh);
                for (int i = 0; i < na * na; i++) A[t][i] = s ? rho * A[t][i] + (1 - rho) * Ah[i] : Ah[i];
                for (int i = 0; i < out * out; i++) G[t][i] = s ? rho * G[t][i] + (1 - rho) * Gh[i] : Gh[i];
                for (int i = 0; i < na * out; i++) V[t][i] = s ? rho * V[t][i] + (1 - rho) * vh[i] : vh[i];
                char an[32], gn[32], vn[32];
                snprintf(an, sizeof an, "A_t%d_n0", t), snprintf(gn, sizeof gn, "G_t%d_n0", t);
                snprintf(vn, sizeof vn, "v_t%d_n0", t);
                if (k == 0) {
                    const ocn_array *xa = ocn_arrayset_find(ex, an), *xg = ocn_arrayset_find(ex, gn);
                    cr_assert(xa && xg && xa->size == (size_t)na * na && xg->size == (size_t)out * out,
                              "step %d: exported %s, %s", s, an, gn);
                    cr_expect_lt(ratio(xa->data, A[t], xa->size, d), 30, "step %d %s", s, an);
                    cr_expect_lt(ratio(xg->data, G[t], xg->size, d), 30, "step %d %s", s, gn);
                    /* the mutant's missing (1 − ρ) is far outside: 1 + ρ times too large in steady state */
                    cr_expect_eq(ocn_arrayset_find(ex, vn), NULL, "kfac exports no rmsprop state");
                } else {
                    const ocn_array *xv = ocn_arrayset_find(ex, vn);
                    cr_assert(xv && xv->size == (size_t)na * out, "step %d: exported %s", s, vn);
                    cr_expect_lt(ratio(xv->data, V[t], xv->size, d), 30, "step %d %s", s, vn);
                }
            }
            ocn_arrayset_free(si), ocn_arrayset_free(ex), ocn_arrayset_free(prev);
            prev = so;
        }
        ocn_arrayset_free(prev), ocn_arrayset_free(in);
        ocn_opt_state_free(st);
        ocn_game_free(g);
    }
}

/* Gauss–Jordan inverse with partial pivoting (n ≤ 8), independent of the backends. */
static void gj_inverse(const double *M, int n, double *X)
{
    double a[8][16];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2 * n; j++) a[i][j] = j < n ? M[i * n + j] : (j - n == i);
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r][c]) > fabs(a[p][c])) p = r;
        for (int j = 0; j < 2 * n; j++) {
            double t = a[c][j];
            a[c][j] = a[p][j], a[p][j] = t;
        }
        double dv = a[c][c];
        for (int j = 0; j < 2 * n; j++) a[c][j] /= dv;
        for (int r = 0; r < n; r++)
            if (r != c) {
                double f = a[r][c];
                for (int j = 0; j < 2 * n; j++) a[r][j] -= f * a[c][j];
            }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) X[i * n + j] = a[i][j + n];
}

/* k = η (A + √γI)⁻¹ mat(Q_θ) (G + √γI)⁻¹ in θ's vec order (Tm = (in+1) x out rows). */
static void kfac_gain(const double *A, const double *G, const double *qth, int na, int out, double eta, double sg,
                      double *k)
{
    double Ad[64], Gd[64], Ai[64], Gi[64], T[64];
    for (int i = 0; i < na * na; i++) Ad[i] = A[i] + (i % (na + 1) == 0 ? sg : 0);
    for (int i = 0; i < out * out; i++) Gd[i] = G[i] + (i % (out + 1) == 0 ? sg : 0);
    gj_inverse(Ad, na, Ai), gj_inverse(Gd, out, Gi);
    for (int c = 0; c < na; c++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int c2 = 0; c2 < na; c2++) s += Ai[c * na + c2] * qth[c2 * out + o];
            T[c * out + o] = s;
        }
    for (int c = 0; c < na; c++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int o2 = 0; o2 < out; o2++) s += T[c * out + o2] * Gi[o2 * out + o];
            k[c * out + o] = eta * s;
        }
}

/* wd = 0 with B = 2 takes the rank-aware gain (η/B)(A A^†)ᵀ(G G^†) of step_impl.h (cheaper
 * there than the dense products), wd > 0 or B = 6 the dense one */
static void stale_operator(double wd, int batch)
{
    const int ns = 5, Tr = 3;
    char optim[512];
    snprintf(optim, sizeof optim,
             "{\"game\": \"fne\", \"curvature\": \"kfac\", \"lr\": 0.5, \"damping\": 0.1, \"stat_decay\": 0.9, "
             "\"refresh_every\": %d, \"steps\": %d, \"data\": \"stream\"}",
             Tr, ns);
    ocn_game *g = mlp_wd(optim, wd, batch);
    ocn_error e = {0};
    ocn_arrayset *in = inputs_with_stream(g, ns);
    /* trajectories of length 1..ns: the last step's gains with their measured c
     * (§10 over the whole trajectory), and the state after each step */
    ocn_arrayset *tr[8] = {0};
    for (int n = 1; n <= ns; n++) {
        ocn_optimizer o = g->opt;
        o.steps = n;
        ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .form_limit = 1 << 20, .measure_runs = 2};
        tr[n - 1] = ocn_arrayset_new();
        cr_assert_eq(ocn_opt_run_trajectory(g, &o, in, &cfg, tr[n - 1], &e), OCN_OK, "%s", e.msg);
    }
    double sg = sqrt(g->opt.damping), eta = g->opt.lr;
    int stale_caught = 0;
    for (int s = 0; s < ns; s++) {
        int r = s - s % Tr; /* the last refresh step */
        for (int t = 0; t < 2; t++) {
            int na = g->stages[t].players[0].in_dim + 1, out = g->stages[t].players[0].out_dim;
            char an[32], gn[32], qn[32], kn[32];
            snprintf(an, sizeof an, "A_t%d_n0", t), snprintf(gn, sizeof gn, "G_t%d_n0", t);
            snprintf(qn, sizeof qn, "Qth_t%d_n0", t), snprintf(kn, sizeof kn, "k_t%d_n0", t);
            const ocn_array *k = ocn_arrayset_find(tr[s], kn), *q = ocn_arrayset_find(tr[s], qn);
            const ocn_array *Ar = ocn_arrayset_find(tr[r], an), *Gr = ocn_arrayset_find(tr[r], gn);
            const ocn_array *As = ocn_arrayset_find(tr[s], an), *Gs = ocn_arrayset_find(tr[s], gn);
            cr_assert(k && q && Ar && Gr && As && Gs);
            cr_assert_gt(k->cond, 0, "c measured over the trajectory");
            double kst[64], kfr[64];
            kfac_gain(Ar->data, Gr->data, q->data, na, out, eta, sg, kst);
            kfac_gain(As->data, Gs->data, q->data, na, out, eta, sg, kfr);
            double rs = ratio(k->data, kst, k->size, k->cond), rf = ratio(k->data, kfr, k->size, k->cond);
            cr_expect_lt(rs, 30, "step %d stage %d: the gain uses the operator of refresh step %d (ratio %g)", s, t, r,
                         rs);
            if (s != r) {
                cr_expect_gt(rf, 300, "step %d stage %d: the fresh operator must not match (ratio %g)", s, t, rf);
                stale_caught += rf > 300;
            }
        }
    }
    cr_expect_eq(stale_caught, 2 * 3, "steps 1, 2, 4 at both stages are stale");
    /* the trajectory's bookkeeping: Δ_s = θ_{s+1} − θ_s, loss at step 0 */
    const ocn_arrayset *L = tr[ns - 1];
    for (int s = 0; s < ns; s++)
        for (int t = 0; t < 2; t++) {
            char a[48], b[48], c[48];
            snprintf(a, sizeof a, "theta_s%d_t%d_n0", s, t), snprintf(b, sizeof b, "theta_s%d_t%d_n0", s + 1, t);
            snprintf(c, sizeof c, "dtheta_s%d_t%d_n0", s, t);
            const ocn_array *x = ocn_arrayset_find(L, a), *y = ocn_arrayset_find(L, b), *z = ocn_arrayset_find(L, c);
            cr_assert(x && y && z && ocn_opt_is_derived(c) && !ocn_opt_is_derived(a));
            for (size_t i = 0; i < z->size; i++) cr_assert_eq(z->data[i], y->data[i] - x->data[i]);
            cr_expect_gt(z->cond, 0);
        }
    for (int n = 0; n < ns; n++) ocn_arrayset_free(tr[n]);
    ocn_arrayset_free(in);
    ocn_game_free(g);
}

Test(opt_state, stale_operator_between_refreshes, .timeout = 120)
{
    stale_operator(1e-3, 6);
    stale_operator(0, 6);
    stale_operator(0, 2);
}

Test(opt_state, loss_is_the_objective_before_the_step)
{
    ocn_game *g = mlp("{\"game\": \"fne\", \"curvature\": \"sgd\", \"lr\": 0.1, \"steps\": 2}");
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new(), *one = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .form_limit = 1 << 20};
    cr_assert_eq(ocn_opt_run_trajectory(g, &g->opt, in, &cfg, out, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(ocn_opt_run(g, &g->opt, in, &cfg, one, &e), OCN_OK, "%s", e.msg);
    /* (1/B) Σ −log softmax(x_T)_y + (λ/2)‖θ‖², from step 0's x_T */
    const ocn_array *xT = ocn_arrayset_find(one, "x_t2"), *y = ocn_arrayset_find(in, "y");
    double L = 0;
    for (int i = 0; i < g->batch; i++) {
        const double *x = xT->data + i * 3;
        double mx = fmax(x[0], fmax(x[1], x[2])), s = exp(x[0] - mx) + exp(x[1] - mx) + exp(x[2] - mx);
        L += (mx + log(s) - x[(int)y->data[i]]) / g->batch;
    }
    for (int t = 0; t < 2; t++) {
        char nm[32];
        snprintf(nm, sizeof nm, "theta_t%d_n0", t);
        const ocn_array *th = ocn_arrayset_find(in, nm);
        for (size_t j = 0; j < th->size; j++) L += 0.5 * g->weight_decay * th->data[j] * th->data[j];
    }
    const ocn_array *l0 = ocn_arrayset_find(out, "loss_s0"), *l1 = ocn_arrayset_find(out, "loss_s1");
    cr_assert(l0 && l1 && l0->size == 1);
    cr_expect_lt(ratio(l0->data, &L, 1, ocn_tolerance_floor(g, &g->opt)), 30, "%.17g vs %.17g", l0->data[0], L);
    cr_expect_lt(l1->data[0], l0->data[0], "an SGD step on a fixed batch lowers the loss");
    cr_expect_eq(ocn_arrayset_find(out, "x0"), NULL, "inputs are not outputs");
    const ocn_array *tl = ocn_arrayset_find(out, "theta_t1_n0"), *t1 = ocn_arrayset_find(out, "theta_s1_t1_n0");
    cr_assert(tl && t1 && !memcmp(tl->data, t1->data, tl->size * sizeof(double)), "theta_t… = the last step's parameters");
    ocn_arrayset_free(in), ocn_arrayset_free(out), ocn_arrayset_free(one);
    ocn_game_free(g);
}

Test(opt_state, refusals_and_missing_inputs)
{
    ocn_game *g = mlp("{\"game\": \"fne\", \"curvature\": \"kfac\", \"lr\": 0.5, \"damping\": 0.1, \"steps\": 3, "
                      "\"data\": \"stream\"}");
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    ocn_arrayset_remove(in, "x0_s0"); /* ocn_ref_init_inputs draws the stream's batches (§13): drop one */
    ocn_opt_config cfg = {.backend = "cpu", .precision = 64};
    cr_expect_eq(ocn_opt_run_trajectory(g, &g->opt, in, &cfg, out, &e), OCN_EINVAL);
    cr_expect(strstr(e.msg, "x0_s0") != NULL, "stream needs every step's batch: %s", e.msg);
    cr_expect_eq(out->count, 0, "nothing added on failure");
    ocn_optimizer o = g->opt;
    o.value = OCN_VALUE_AUGMENTED;
    ocn_opt_state *st = NULL;
    cr_expect_eq(ocn_opt_state_new(g, &o, &cfg, &st, &e), OCN_EUNSUPPORTED);
    cr_expect(st == NULL && strstr(e.msg, "augmented") != NULL, "%s", e.msg);
    ocn_arrayset_free(in), ocn_arrayset_free(out);
    ocn_game_free(g);
}

/* ocn_opt_state_gemm_flops (make bench's gemm%): the plain SGD step (no_feedback)
 * of the MLP does, per dense layer (in -> out, batch B), a forward GEMM, a
 * vector-Jacobian GEMM, the batch gradient (in+1) x out x B and the update
 * pass's forward again: 2B·out·(3·in + (in + 1)) FLOPs, counted here by hand.
 * A lean step (a training step: θ_new handed back only) skips what only other
 * outputs need (issue 11 item 4): stage 0's vector-Jacobian GEMM (Q_x at t = 0)
 * and, without feedback, the whole x̂ forward pass: 2B·out·(in + (in + 1)) +
 * 2B·out·in for t > 0. */
Test(opt_state, gemm_flop_count_of_a_plain_step)
{
    ocn_game *g = mlp("{\"game\": \"fne\", \"curvature\": \"sgd\", \"lr\": 0.1}");
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    for (int lean = 0; lean <= 1; lean++) {
        ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .no_feedback = 1, .lean = lean};
        ocn_opt_state *st = NULL;
        cr_assert_eq(ocn_opt_state_new(g, &g->opt, &cfg, &st, &e), OCN_OK, "%s", e.msg);
        cr_expect_eq(ocn_opt_state_gemm_flops(st), 0);
        cr_assert_eq(ocn_opt_step(st, in, out, &e), OCN_OK, "%s", e.msg);
        double want = 0, B = g->batch;
        for (int t = 0; t < g->T; t++) {
            double i = g->stages[t].players[0].in_dim, o = g->stages[t].players[0].out_dim;
            want += lean ? 2 * B * o * ((t > 0 ? 2 : 1) * i + (i + 1)) : 2 * B * o * (3 * i + (i + 1));
        }
        cr_expect_eq(ocn_opt_state_gemm_flops(st), want, "lean %d: %g vs %g", lean, ocn_opt_state_gemm_flops(st), want);
        ocn_opt_state_free(st);
    }
    ocn_arrayset_free(in), ocn_arrayset_free(out);
    ocn_game_free(g);
}
