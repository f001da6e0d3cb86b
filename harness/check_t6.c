/* T6b and T6-base (SPEC §9; DGNOpt Thm. 6 / Lemma 10): with Q_θx := 0 the
 * Bellman gains collapse to a baseline's preconditioned gradient.  The
 * independent side is plain back-propagation (reference/backprop.c) and the
 * harness's own eigendecomposition pseudo-inverse. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ocn_array *arr(const ocn_arrayset *r, const char *fmt, int t, int n)
{
    char nm[64];
    snprintf(nm, sizeof nm, fmt, t, n);
    return ocn_arrayset_find(r, nm);
}

static void row_against(check_ctx *c, const char *id, const ocn_array *a, const double *ref, double cnd)
{
    if (!a) {
        ocn_report_add(c->rep, id, c->name, "missing array", INFINITY, INFINITY);
        return;
    }
    check_row(c, id, a->name, a->data, ref, a->size, cnd);
}

int check_t6b(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_optimizer opt = g->opt;
    opt.zero = OCN_ZERO_QTHX | OCN_ZERO_MID;
    ocn_arrayset *r = NULL;
    int rc = check_ref_variant(c, &opt, &r);
    for (int lane = 0; lane < g->nlanes && !rc; lane++) {
        ocn_bp *bp = NULL;
        if ((rc = ocn_bp_run(g, c->in, lane, &bp, c->err))) break;
        for (int t = 0; t <= g->T; t++) {
            const ocn_array *Vx = arr(r, "Vx_t%d_n%d", t, lane);
            row_against(c, "T6b", Vx, ocn_bp_costate(bp, t), Vx ? Vx->cond : 1);
            const ocn_player *pl = t < g->T ? ocn_game_lane_player(g, t, lane) : NULL;
            if (!pl || !pl->m) continue;
            int p = (int)(pl - g->stages[t].players);
            const ocn_array *k = arr(r, "k_t%d_n%d", t, lane), *K = arr(r, "K_t%d_n%d", t, lane),
                            *tn = arr(r, "theta_new_t%d_n%d", t, lane), *th = arr(c->in, "theta_t%d_n%d", t, lane);
            double *want = malloc((size_t)pl->m * sizeof *want), *wth = malloc((size_t)pl->m * sizeof *wth);
            for (int j = 0; j < pl->m; j++) {
                want[j] = opt.lr * ocn_bp_grad(bp, t, p)[j]; /* k = η ∇_θ L */
                wth[j] = th->data[j] - want[j];
            }
            row_against(c, "T6b", k, want, k ? k->cond : 1);
            if (K) { /* K = 0 exactly: any nonzero entry is an infinite relative error */
                double *zero = calloc(K->size, sizeof *zero);
                row_against(c, "T6b", K, zero, K->cond);
                free(zero);
            }
            row_against(c, "T6b", tn, wth, tn ? tn->cond : 1);
            free(want), free(wth);
        }
        ocn_bp_free(bp);
    }
    ocn_arrayset_free(r);
    return rc;
}

/* k = η C^† ∇L for C built from back-propagated statistics (§5). */
static int baseline_gain(check_ctx *c, ocn_curvature mode, const ocn_bp *bp, int t, int p, double *k, double *cond)
{
    const ocn_game *g = c->g;
    const ocn_player *pl = &g->stages[t].players[p];
    int m = pl->m, B = g->batch, rc = OCN_OK;
    const double *gr = ocn_bp_grad(bp, t, p), *gs = ocn_bp_grad_sample(bp, t, p);
    double eta = g->opt.lr, gam = g->opt.damping;
    if (mode == OCN_CURV_RMSPROP) {
        double mx = 0, mn = INFINITY;
        for (int j = 0; j < m; j++) {
            double s = 0;
            for (int i = 0; i < B; i++) s += gs[(size_t)i * m + j] * gs[(size_t)i * m + j];
            double d = sqrt(s / B) + g->opt.eps;
            k[j] = d > 0 ? eta * gr[j] / d : 0.0;
            mx = fmax(mx, d), mn = fmin(mn, d);
        }
        *cond = mn > 0 ? mx / mn : 1;
        return OCN_OK;
    }
    if (mode == OCN_CURV_GN_OUTER) {
        double *C = calloc((size_t)m * m, sizeof *C), *Ci = malloc((size_t)m * m * sizeof *Ci);
        for (int i = 0; i < B; i++)
            for (int a = 0; a < m; a++)
                for (int b = 0; b < m; b++) C[(size_t)a * m + b] += gs[(size_t)i * m + a] * gs[(size_t)i * m + b] / B;
        for (int a = 0; a < m; a++) C[(size_t)a * m + a] += gam;
        rc = check_sym_pinv(C, m, Ci, cond, c->err);
        for (int a = 0; !rc && a < m; a++) {
            double s = 0;
            for (int b = 0; b < m; b++) s += Ci[(size_t)a * m + b] * gr[b];
            k[a] = eta * s;
        }
        free(C), free(Ci);
        return rc;
    }
    /* kfac: k = η vec(G̃^† mat(∇L) Ã^†), Ã = A + √γI, G̃ = G + √γI */
    int na, ng;
    const double *av = ocn_bp_kfac_a(bp, t, p, &na), *gv = ocn_bp_kfac_g(bp, t, p, &ng);
    double *Ai = malloc((size_t)na * na * sizeof *Ai), *Gi = malloc((size_t)ng * ng * sizeof *Gi);
    if (pl->kind == OCN_PLAYER_CONV) { /* §14 KFC: av holds z, gv all C_o·P entries of g */
        free(Ai), free(Gi);
        na = ocn_player_na(pl), ng = ocn_player_ng(pl);
        Ai = malloc((size_t)na * na * sizeof *Ai), Gi = malloc((size_t)ng * ng * sizeof *Gi);
        rc = check_conv_kfc_pinv(pl, av, gv, B, gam, Ai, Gi, cond, c->err);
    } else
    rc = check_kfac_pinv(av, na, gv, ng, B, gam, Ai, Gi, cond, c->err);
    if (!rc) check_kfac_apply(Ai, na, Gi, ng, eta, gr, k);
    free(Ai), free(Gi);
    return rc;
}

int check_t6base(check_ctx *c)
{
    static const ocn_curvature modes[] = {OCN_CURV_RMSPROP, OCN_CURV_GN_OUTER, OCN_CURV_KFAC};
    const ocn_game *g = c->g;
    double size = check_problem_size(g);
    int rc = OCN_OK;
    for (int mi = 0; mi < 3 && !rc; mi++) {
        ocn_optimizer opt = g->opt;
        opt.curvature = modes[mi];
        opt.zero = OCN_ZERO_QTHX;
        ocn_arrayset *r = NULL;
        if ((rc = check_ref_variant(c, &opt, &r))) break;
        for (int lane = 0; lane < g->nlanes && !rc; lane++) {
            ocn_bp *bp = NULL;
            if ((rc = ocn_bp_run(g, c->in, lane, &bp, c->err))) break;
            for (int t = 0; t < g->T && !rc; t++) {
                const ocn_player *pl = ocn_game_lane_player(g, t, lane);
                if (!pl || !pl->m) continue;
                double *k = malloc((size_t)pl->m * sizeof *k), cond = 1;
                rc = baseline_gain(c, modes[mi], bp, t, (int)(pl - g->stages[t].players), k, &cond);
                if (!rc) {
                    const ocn_array *ka = arr(r, "k_t%d_n%d", t, lane);
                    char q[64];
                    snprintf(q, sizeof q, "k_t%d_n%d %s", t, lane, ocn_curvature_name(modes[mi]));
                    if (ka) check_row(c, "T6-base", q, ka->data, k, ka->size, size * cond);
                    else ocn_report_add(c->rep, "T6-base", c->name, q, INFINITY, INFINITY);
                }
                free(k);
            }
            ocn_bp_free(bp);
        }
        ocn_arrayset_free(r);
    }
    return rc;
}
