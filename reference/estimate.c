/* Issue 10: the reference's peak memory, estimated from the description
 * before anything is allocated (ocn_ref_estimate_memory, include/ocn/reference.h).
 *
 * The model follows ref_step (run.c) and ref_stage_backward (expand.c)
 * allocation by allocation, as a timeline: what a step holds throughout (the
 * model's θ copy, the states x_t and δx_t), what accumulates (the stored
 * outputs, the gains kept for the update pass), the incoming value of every
 * lane, and at each stage the lanes' stage outputs (held until the stage is
 * stored) plus the one transient set of the lane being expanded: per-sample
 * Jacobians, "full" second-order terms, the products' temporaries, the
 * curvature M^† with its pseudo-inverse workspaces (ref_pinv_m: U, V, the
 * eigen-reduction's copy and tridiagonal, the factors L, R and the product's
 * packed operands: 6 m² at the worst moment, beside C and C + γI), or the
 * KFAC factors and their inverses (M^† itself is their explicit Kronecker
 * product), and ref_gemm's packed operands.  The peak is the largest moment.
 * With §10 perturbation runs, a run holds the nominal outputs, a perturbed
 * copy of the inputs and its own step at once (tolerance.c).  Every gsl
 * matrix costs OVH bytes of headers beyond its data (it matters for
 * B = 2^20 per-sample matrices).  Value Hessians are counted as stored
 * (expand.h): (B·n)² in augmented mode, B·n² otherwise. */
#include "expand.h"

#include "ocn/memory.h"
#include "ocn/tolerance.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DB 8.0     /* bytes per double */
#define OVH 128.0  /* gsl_matrix + gsl_block headers and malloc chunk headers */

enum {
    C_INPUTS, C_OUTPUTS, C_VALUES, C_JAC, C_SECOND, C_QTHX, C_CURV, C_GAINS, C_OTHER, NCAT
};
static const char *const CAT[NCAT] = {
    "the inputs",
    "the stored outputs",
    "the value and expansion Hessians",
    "the per-sample Jacobians",
    "the \"full\" second-order terms",
    "the per-sample Q_θx and gains K",
    "the curvature and its pseudo-inverse workspaces",
    "the gains kept for the update pass",
    "the states and temporaries",
};

typedef struct {
    double b[NCAT];        /* bytes per part */
    double big[NCAT];      /* bytes of the part's largest single array */
    char what[NCAT][112];  /* and its description */
} tally;

/* count arrays of `doubles` each, in part c; fmt describes one of them */
static void add(tally *t, int c, double doubles, double count, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(tally *t, int c, double doubles, double count, const char *fmt, ...)
{
    if (count <= 0 || doubles < 0) return;
    t->b[c] += count * (doubles * DB + OVH);
    if (doubles * DB > t->big[c]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->what[c], sizeof t->what[c], fmt, ap);
        va_end(ap);
        t->big[c] = doubles * DB;
    }
}

static void merge(tally *dst, const tally *src)
{
    for (int c = 0; c < NCAT; c++) {
        dst->b[c] += src->b[c];
        if (src->big[c] > dst->big[c]) {
            dst->big[c] = src->big[c];
            memcpy(dst->what[c], src->what[c], sizeof dst->what[c]);
        }
    }
}

static double total(const tally *t)
{
    double s = 0;
    for (int c = 0; c < NCAT; c++) s += t->b[c];
    return s;
}

typedef struct {
    tally peak;
    double peak_bytes;
} timeline;

/* a moment: the sum of the tallies a, b, … (NULL-terminated); the merged
 * tally is only formed when it is a new peak */
static void moment(timeline *tl, const tally *a, ...)
{
    const tally *part[8];
    int np = 0;
    va_list ap;
    va_start(ap, a);
    for (const tally *p = a; p && np < 8; p = va_arg(ap, const tally *)) part[np++] = p;
    va_end(ap);
    double s = 0;
    for (int i = 0; i < np; i++) s += total(part[i]);
    if (s <= tl->peak_bytes) return;
    tl->peak = *part[0];
    for (int i = 1; i < np; i++) merge(&tl->peak, part[i]);
    tl->peak_bytes = s;
}

static void inputs(const ocn_game *g, tally *t, const char *copy)
{
    double B = g->batch;
    add(t, C_INPUTS, B * g->n[0], 1, "%sx0 (%d x %d doubles)", copy, g->batch, g->n[0]);
    if (g->loss == OCN_LOSS_CE) add(t, C_INPUTS, B, 1, "%sy (%d labels)", copy, g->batch);
    else add(t, C_INPUTS, B * g->out_dim, 1, "%sy (%d x %d doubles)", copy, g->batch, g->out_dim);
    for (int s = 0; s < g->T; s++)
        for (int p = 0; p < g->stages[s].nplayers; p++) {
            const ocn_player *pl = &g->stages[s].players[p];
            if (pl->m) add(t, C_INPUTS, pl->m, 1, "%stheta_t%d_n%d (%d doubles)", copy, s, pl->lane, pl->m);
            if (pl->kind == OCN_PLAYER_BIAS)
                add(t, C_INPUTS, (double)pl->out_dim * pl->in_dim, 1, "%sWfix_t%d_n%d (%d x %d doubles)", copy, s,
                    pl->lane, pl->out_dim, pl->in_dim);
        }
}

/* the inputs of g in bytes (ocn_ref_init_inputs checks them) */
double ref_inputs_bytes(const ocn_game *g)
{
    tally t = {0};
    inputs(g, &t, "");
    return total(&t);
}

/* an expansion of stage s: FNE lane e's player, GR the joint parameter */
typedef struct {
    double m;
    double na, ng, fa, fg; /* KFAC: joint factor dims and the largest per-player ones */
    int lane;              /* -1: GR */
} expn;

static int expansions(const ocn_game *g, const ocn_optimizer *opt, int s, expn *e)
{
    int gr = opt->game == OCN_GAME_GR, N = gr ? 1 : g->nlanes;
    for (int k = 0; k < N; k++) {
        memset(&e[k], 0, sizeof e[k]);
        e[k].lane = gr ? -1 : k;
        for (int l = 0; l < g->nlanes; l++) {
            if (!gr && l != k) continue;
            const ocn_player *pl = ocn_game_lane_player(g, s, l);
            if (!pl || !pl->m) continue;
            double a = ocn_player_na(pl), gd = ocn_player_ng(pl); /* §14: conv patch / channels */
            e[k].m += pl->m;
            e[k].na += a, e[k].ng += gd;
            if (a > e[k].fa) e[k].fa = a;
            if (gd > e[k].fg) e[k].fg = gd;
        }
    }
    return N;
}

static void where(char *buf, size_t n, int s, int lane)
{
    if (lane < 0) snprintf(buf, n, "stage %d", s);
    else snprintf(buf, n, "stage %d lane %d", s, lane);
}

/* the held value of one lane at time s: v_x (B x n) and B·V_XX as stored */
static void value(const ocn_game *g, int aug, int s, int lane, double count, tally *t)
{
    double B = g->batch, n = g->n[s], Bn = B * n;
    char w[48];
    where(w, sizeof w, s, lane);
    add(t, C_OTHER, Bn, count, "%s: v_x (%d x %d doubles)", w, g->batch, g->n[s]);
    if (aug) add(t, C_VALUES, Bn * Bn, count, "%s: B·V_XX (%.0f x %.0f doubles)", w, Bn, Bn);
    else add(t, C_VALUES, Bn * n, count, "%s: the B blocks of V_XX (%d x %d x %d doubles)", w, g->batch, g->n[s], g->n[s]);
}

/* the outputs a stage's expansion stores (run.c put_stage) */
static void stage_outputs(const ocn_game *g, int aug, int s, const expn *e, tally *t)
{
    double B = g->batch, n = g->n[s], m = e->m, Bn = B * n;
    char w[48];
    where(w, sizeof w, s, e->lane);
    add(t, C_OUTPUTS, Bn, 1, "%s: Qx (%.0f x %.0f doubles)", w, B, n);
    add(t, C_OUTPUTS, Bn * n, 2, "%s: Qxx, Vxx (%.0f x %.0f x %.0f doubles)", w, B, n, n);
    add(t, C_OUTPUTS, Bn, 1, "%s: Vx (%.0f x %.0f doubles)", w, B, n);
    if (aug) add(t, C_OUTPUTS, Bn * Bn, 1, "%s: VXX (%.0f x %.0f doubles)", w, Bn, Bn);
    if (m > 0) {
        add(t, C_OUTPUTS, m, 2, "%s: Qth, k (%.0f doubles)", w, m);
        add(t, C_OUTPUTS, B * m, 1, "%s: Qthi (%.0f x %.0f doubles)", w, B, m);
        add(t, C_OUTPUTS, B * m * n, 2, "%s: Qthx, K (%.0f x %.0f x %.0f doubles)", w, B, m, n);
        add(t, C_OUTPUTS, m * m, 1, "%s: Qthth (%.0f x %.0f doubles)", w, m, m);
    }
}

static void terminal_outputs(const ocn_game *g, int aug, int N, tally *t)
{
    double B = g->batch, n = g->n[g->T], Bn = B * n;
    add(t, C_OUTPUTS, Bn, N, "stage %d: Vx (%.0f x %.0f doubles)", g->T, B, n);
    add(t, C_OUTPUTS, Bn * n, N, "stage %d: Vxx (%.0f x %.0f x %.0f doubles)", g->T, B, n, n);
    if (aug) add(t, C_OUTPUTS, Bn * Bn, N, "stage %d: VXX (%.0f x %.0f doubles)", g->T, Bn, Bn);
}

static void final_outputs(const ocn_game *g, tally *t)
{
    for (int s = 0; s <= g->T; s++)
        add(t, C_OUTPUTS, (double)g->batch * g->n[s], 2, "x_t%d, dx_t%d (%d x %d doubles)", s, s, g->batch, g->n[s]);
    for (int s = 0; s < g->T; s++)
        for (int p = 0; p < g->stages[s].nplayers; p++)
            if (g->stages[s].players[p].m)
                add(t, C_OUTPUTS, g->stages[s].players[p].m, 1, "theta_new_t%d_n%d", s, g->stages[s].players[p].lane);
}

/* the stage output ref_stage_backward hands back (expand.h ref_stage_out) */
static void stage_out(const ocn_game *g, int aug, int s, const expn *e, tally *t)
{
    double B = g->batch, n = g->n[s], m = e->m, Bn = B * n;
    char w[48];
    where(w, sizeof w, s, e->lane);
    add(t, C_OTHER, Bn, 2, "%s: Q_x, V_x (%.0f x %.0f doubles)", w, B, n);
    add(t, C_VALUES, Bn * n, 1, "%s: the blocks Q_xx^(i) (%.0f x %.0f x %.0f doubles)", w, B, n, n);
    if (aug) add(t, C_VALUES, Bn * Bn, 1, "%s: B·V_XX (%.0f x %.0f doubles)", w, Bn, Bn);
    else add(t, C_VALUES, Bn * n, 1, "%s: the B blocks of V_XX (%.0f x %.0f x %.0f doubles)", w, B, n, n);
    if (m > 0) {
        add(t, C_OTHER, m, 2, "%s: Q_θ, k (%.0f doubles)", w, m);
        add(t, C_OTHER, B * m, 1, "%s: Q_θ^(i) (%.0f x %.0f doubles)", w, B, m);
        add(t, C_QTHX, m * n, 2 * B, "%s: Q_θx^(i), K^(i) (%.0f x %.0f doubles each, %.0f of each)", w, m, n, B);
        add(t, C_CURV, m * m, 1, "%s: Q_θθ (%.0f x %.0f doubles)", w, m, m);
    }
}

/* ref_pinv_m of an r x r symmetric matrix: its worst moment (U, V, L, R and
 * the product's packed operands) */
static void pinv_ws(tally *t, double r, const char *w, const char *of)
{
    add(t, C_CURV, r * r, 6, "%s: the pseudo-inverse workspaces of %s (%.0f x %.0f doubles each)", w, of, r, r);
}

/* ref_gemm's packed operands for an M x K by K x N product (dense path) */
static void gemm_ws(tally *t, double M, double K, double N, const char *w, const char *of)
{
    double N4 = (double)(((size_t)N + 3) / 4 * 4);
    add(t, C_OTHER, M * K + K * N4, 1, "%s: the packed operands of %s (%.0f doubles)", w, of, M * K + K * N4);
}

/* the transient moments of one expansion (ref_stage_backward), each beside `held` */
static void stage_transients(timeline *tl, const ocn_game *g, const ocn_optimizer *opt, int s, const expn *e,
                             const tally *held, const tally *sos, const tally *so)
{
    double B = g->batch, n = g->n[s], n1 = g->n[s + 1], m = e->m;
    int full = opt->dynamics == OCN_DYN_FULL;
    char w[48];
    where(w, sizeof w, s, e->lane);
    tally jac = {0}, tq = {0}, tth = {0}, tc = {0}, tk = {0};
    add(&jac, C_JAC, n1 * n, B, "%s: F_x^(i) (%.0f x %.0f doubles each, %.0f of them)", w, n1, n, B);
    if (m > 0) add(&jac, C_JAC, n1 * m, B, "%s: F_θ^(i) (%.0f x %.0f doubles each, %.0f of them)", w, n1, m, B);
    if (full) {
        add(&jac, C_SECOND, n * n, B, "%s: V_x'·F_xx^(i) (%.0f x %.0f doubles each)", w, n, n);
        if (m > 0) {
            add(&jac, C_SECOND, m * n, B, "%s: V_x'·F_θx^(i) (%.0f x %.0f doubles each)", w, m, n);
            add(&jac, C_SECOND, m * m, 1, "%s: V_x'·F_θθ (%.0f x %.0f doubles)", w, m, m);
        }
    }
    /* Q_XX: T1 and the products' operands */
    add(&tq, C_OTHER, n * n1, 1, "%s: F_xᵀ V' (%.0f x %.0f doubles)", w, n, n1);
    gemm_ws(&tq, n, n1, n1 > n ? n1 : n, w, "F_xᵀ V'");
    moment(tl, held, sos, so, &jac, &tq, (tally *)NULL);
    if (m <= 0) return;
    /* Q_θx, Q_θθ: T2, T3 */
    add(&tth, C_OTHER, m * n1, 1, "%s: F_θᵀ V' (%.0f x %.0f doubles)", w, m, n1);
    add(&tth, C_CURV, m * m, 1, "%s: F_θᵀ V' F_θ (%.0f x %.0f doubles)", w, m, m);
    gemm_ws(&tth, m, n1, m > n ? m : n, w, "Q_θθ");
    moment(tl, held, sos, so, &jac, &tth, (tally *)NULL);
    /* curvature (curvature.c) beside M^† */
    add(&tc, C_CURV, m * m, 1, "%s: M^† (%.0f x %.0f doubles)", w, m, m);
    int kfac = opt->curvature == OCN_CURV_KFAC || opt->curvature == OCN_CURV_COOP_KFAC;
    if (opt->zero & OCN_ZERO_MID || opt->curvature == OCN_CURV_SGD) {
    } else if (kfac) {
        int coop = opt->curvature == OCN_CURV_COOP_KFAC && opt->game == OCN_GAME_GR && !(opt->zero & OCN_ZERO_PUV);
        double fa = coop ? e->na : e->fa, fg = coop ? e->ng : e->fg, f = fa > fg ? fa : fg;
        add(&tc, C_CURV, e->na * e->na + e->ng * e->ng, 2, "%s: the KFAC factors and inverses (%.0f² + %.0f² doubles)",
            w, e->na, e->ng);
        add(&tc, C_CURV, f * f, 1, "%s: a damped KFAC factor (%.0f x %.0f doubles)", w, f, f);
        pinv_ws(&tc, f, w, "a KFAC factor");
    } else {
        add(&tc, C_CURV, m * m, 1, "%s: the curvature C (%.0f x %.0f doubles)", w, m, m);
        if (opt->curvature != OCN_CURV_RMSPROP) {
            add(&tc, C_CURV, m * m, 1, "%s: C + γI (%.0f x %.0f doubles)", w, m, m);
            pinv_ws(&tc, m, w, "the curvature");
        }
        if (opt->curvature == OCN_CURV_GN_OUTER) gemm_ws(&tc, m, B, m, w, "mean Q_θ^(i) Q_θ^(i)ᵀ");
    }
    moment(tl, held, sos, so, &jac, &tc, (tally *)NULL);
    /* K = M^† Q_θx */
    add(&tk, C_CURV, m * m, 1, "%s: M^† (%.0f x %.0f doubles)", w, m, m);
    gemm_ws(&tk, m, m, n, w, "K = M^† Q_θx");
    moment(tl, held, sos, so, &jac, &tk, (tally *)NULL);
}

/* one ref_step beside `base` (what the caller holds), into tl */
static void step(timeline *tl, const ocn_game *g, const ocn_optimizer *opt, const tally *base)
{
    int aug = opt->value == OCN_VALUE_AUGMENTED, T = g->T;
    expn e[OCN_MAX_PLAYERS];
    int N = opt->game == OCN_GAME_GR ? 1 : g->nlanes;
    double B = g->batch;
    tally acc = *base;
    /* the model's θ copy and scratch, the states */
    for (int s = 0; s < T; s++)
        for (int p = 0; p < g->stages[s].nplayers; p++)
            if (g->stages[s].players[p].m) add(&acc, C_OTHER, g->stages[s].players[p].m, 1, "the model's θ copy");
    for (int s = 0; s <= T; s++) add(&acc, C_OTHER, B * g->n[s], 2, "x_%d, δx_%d (%d x %d doubles)", s, s, g->batch, g->n[s]);

    /* terminal */
    tally vals = {0}, h = {0};
    for (int k = 0; k < N; k++) value(g, aug, T, opt->game == OCN_GAME_GR ? -1 : k, 1, &vals);
    add(&h, C_OTHER, (double)g->n[T] * g->n[T], 1, "the terminal Hessian");
    terminal_outputs(g, aug, N, &acc);
    moment(tl, &acc, &vals, &h, (tally *)NULL);

    /* backward */
    for (int s = T - 1; s >= 0; s--) {
        int ne = expansions(g, opt, s, e);
        tally held = acc, sos = {0};
        merge(&held, &vals);
        for (int k = 0; k < ne; k++) {
            tally so = {0};
            stage_out(g, aug, s, &e[k], &so);
            stage_transients(tl, g, opt, s, &e[k], &held, &sos, &so); /* sos: the lanes expanded before */
            merge(&sos, &so);
        }
        /* storing: every stage output held, the outputs and kept gains growing */
        tally st = {0};
        for (int k = 0; k < ne; k++) stage_outputs(g, aug, s, &e[k], &st);
        for (int k = 0; k < ne; k++)
            if (e[k].m > 0)
                add(&st, C_GAINS, e[k].m * g->n[s], B, "stage %d: K^(i) kept (%.0f x %d doubles each, %d of them)", s,
                    e[k].m, g->n[s], g->batch);
        moment(tl, &held, &sos, &st, (tally *)NULL);
        merge(&acc, &st);
        memset(&vals, 0, sizeof vals);
        for (int k = 0; k < ne; k++) value(g, aug, s, e[k].lane, 1, &vals);
    }

    /* update pass, then x, dx, theta_new stored */
    tally up = {0};
    int nmax = 0;
    for (int s = 0; s <= T; s++) nmax = g->n[s] > nmax ? g->n[s] : nmax;
    add(&up, C_OTHER, B * nmax, 2, "x̂_t (%d x %d doubles)", g->batch, nmax);
    final_outputs(g, &up);
    moment(tl, &acc, &vals, &up, (tally *)NULL);
}

/* peak bytes with `runs` perturbation runs */
double ref_estimate(const ocn_game *g, const ocn_optimizer *opt, int runs, char *dominant, size_t n)
{
    timeline tl = {0};
    tally base = {0};
    inputs(g, &base, "");
    if (runs > 0) {
        /* a perturbation run: the nominal outputs (the whole set), a
         * perturbed copy of the inputs, and its own step */
        tally outs = {0};
        int N = opt->game == OCN_GAME_GR ? 1 : g->nlanes, aug = opt->value == OCN_VALUE_AUGMENTED;
        expn e[OCN_MAX_PLAYERS];
        terminal_outputs(g, aug, N, &outs);
        for (int s = g->T - 1; s >= 0; s--) {
            int ne = expansions(g, opt, s, e);
            for (int k = 0; k < ne; k++) stage_outputs(g, aug, s, &e[k], &outs);
        }
        final_outputs(g, &outs);
        merge(&base, &outs); /* the nominal set: the largest array is the same in both sets */
        inputs(g, &base, "a perturbed copy of ");
    }
    step(&tl, g, opt, &base);
    if (dominant && n) {
        int c = 0;
        for (int k = 1; k < NCAT; k++)
            if (tl.peak.b[k] > tl.peak.b[c]) c = k;
        char sz[32], big[32];
        snprintf(dominant, n, "%s (%s; the largest: %s, %s)", CAT[c], ocn_format_bytes(tl.peak.b[c], sz, sizeof sz),
                 tl.peak.what[c], ocn_format_bytes(tl.peak.big[c], big, sizeof big));
    }
    return tl.peak_bytes;
}

int ocn_ref_estimate_memory(const ocn_game *g, const ocn_optimizer *opt, size_t *bytes, char *dominant, size_t n)
{
    if (!g || !opt || !bytes) return OCN_EINVAL;
    double b = ref_estimate(g, opt, OCN_MEASURE_RUNS, dominant, n);
    *bytes = b >= (double)SIZE_MAX ? SIZE_MAX : (size_t)b;
    return OCN_OK;
}
