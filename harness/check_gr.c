/* The cooperative (GR) checks of SPEC §9: T6c, T6a-local, T6a-separable,
 * T6a-coupled (E2), SCHUR, E4.  The independent side is plain
 * back-propagation, the per-player FNE formula and the Schur-complement form,
 * each evaluated by the harness with its own eigendecomposition pinv. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXP OCN_MAX_PLAYERS /* the loader's one player limit (ocn/game.h) */

/* GR joint parameter of stage t: parameterised players in lane order (§5). */
static int gr_players(const ocn_game *g, int t, int *p, int *moff, int *m)
{
    int np = 0, off = 0;
    for (int l = 0; l < g->nlanes; l++) {
        const ocn_player *pl = ocn_game_lane_player(g, t, l);
        if (!pl || !pl->m) continue;
        p[np] = (int)(pl - g->stages[t].players);
        moff[np++] = off;
        off += pl->m;
    }
    *m = off;
    return np;
}

static const ocn_array *get(const ocn_arrayset *r, const char *fmt, int t, int n)
{
    char nm[64];
    snprintf(nm, sizeof nm, fmt, t, n);
    return ocn_arrayset_find(r, nm);
}

static void row(check_ctx *c, const char *id, const char *q, const ocn_array *a, const double *want, double cnd)
{
    if (!a) ocn_report_add(c->rep, id, c->name, q, INFINITY, INFINITY);
    else check_row(c, id, q, a->data, want, a->size, cnd);
}

/* T6c: GR with (P_uv, P_ux, M) := (0, 0, I/η) is gradient descent (DGNOpt Thm. 6c). */
int check_t6c(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_optimizer opt = g->opt;
    opt.zero = OCN_ZERO_PUV | OCN_ZERO_PUX | OCN_ZERO_MID;
    ocn_arrayset *r = NULL;
    ocn_bp *bp = NULL;
    int rc = check_ref_variant(c, &opt, &r);
    if (!rc) rc = ocn_bp_run(g, c->in, -1, &bp, c->err); /* L with the network loss φ (W_T = φ) */
    for (int t = 0; !rc && t <= g->T; t++) {
        const ocn_array *W = get(r, "Wx_t%d", t, 0);
        row(c, "T6c", W ? W->name : "Wx", W, ocn_bp_costate(bp, t), W ? W->cond : 1);
        for (int p = 0; t < g->T && p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            if (!pl->m) continue;
            const ocn_array *k = get(r, "k_t%d_n%d", t, pl->lane), *K = get(r, "K_t%d_n%d", t, pl->lane);
            double *want = malloc((size_t)pl->m * sizeof *want);
            for (int j = 0; j < pl->m; j++) want[j] = opt.lr * ocn_bp_grad(bp, t, p)[j];
            row(c, "T6c", k ? k->name : "k", k, want, k ? k->cond : 1);
            if (K) {
                double *zero = calloc(K->size, sizeof *zero);
                row(c, "T6c", K->name, K, zero, K->cond);
                free(zero);
            }
            free(want);
        }
    }
    ocn_bp_free(bp);
    ocn_arrayset_free(r);
    return rc;
}

/* Right-hand sides of the gain solves, one row per parameter of the stage:
 * column 0 is P_θ, then P_θx^(i) for every sample (m x (1 + B·n)). */
static double *gain_rhs(const ocn_array *Pth, const ocn_array *Pthx, int m, int B, int n)
{
    int nc = 1 + B * n;
    double *R = malloc((size_t)m * nc * sizeof *R);
    for (int a = 0; a < m; a++) {
        R[(size_t)a * nc] = Pth->data[a];
        for (int i = 0; i < B; i++)
            for (int x = 0; x < n; x++) R[(size_t)a * nc + 1 + (size_t)i * n + x] = Pthx->data[((size_t)i * m + a) * n + x];
    }
    return R;
}

/* Splits solved columns (mu x (1 + B·n)) into k (mu) and K (B x mu x n), scaled. */
static void split_gains(const double *sol, int mu, int B, int n, double scale, double *kw, double *Kw)
{
    int nc = 1 + B * n;
    for (int a = 0; a < mu; a++) {
        kw[a] = scale * sol[(size_t)a * nc];
        for (int i = 0; i < B; i++)
            for (int x = 0; x < n; x++) Kw[((size_t)i * mu + a) * n + x] = scale * sol[(size_t)a * nc + 1 + (size_t)i * n + x];
    }
}

/* η (P_uu + γI)^† rhs for each player block u, columns of rhs (m_u x ncol). */
static int block_solve(check_ctx *c, const double *Pthth, int m, int off, int mu, const double *rhs, int ncol, double *out,
                       double *cond, int *rank)
{
    double *D = check_block(Pthth, m, off, mu, off, mu), *Di = malloc((size_t)mu * mu * sizeof *Di);
    for (int a = 0; a < mu; a++) D[a * mu + a] += c->g->opt.damping;
    int rc = check_sym_pinv_rank(D, mu, 0.0, Di, cond, rank, c->err);
    if (!rc) check_matmul(Di, rhs, out, mu, mu, ncol);
    for (int i = 0; !rc && i < mu * ncol; i++) out[i] *= c->g->opt.lr;
    free(D), free(Di);
    return rc;
}

/* T6a-local: GR with P_uv := 0 gives each player its own FNE formula at a
 * stage, k̃ = P_uu^† P_u, K̃ = P_uu^† P_ux (exact curvature, same γ, η). */
int check_t6a_local(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_optimizer opt = g->opt;
    opt.curvature = OCN_CURV_EXACT;
    opt.zero = OCN_ZERO_PUV;
    ocn_arrayset *r = NULL;
    int rc = check_ref_variant(c, &opt, &r), B = g->batch;
    double size = check_problem_size(g);
    for (int t = 0; !rc && t < g->T; t++) {
        int p[MAXP], moff[MAXP], m, np = gr_players(g, t, p, moff, &m), n = g->n[t];
        if (np < 2) continue; /* a one-player stage is FNE by definition */
        const ocn_array *Pthth = get(r, "Pthth_t%d", t, 0), *Pth = get(r, "Pth_t%d", t, 0), *Pthx = get(r, "Pthx_t%d", t, 0);
        if (!Pthth || !Pthx) continue; /* omitted for large shapes (§11) */
        double *R = gain_rhs(Pth, Pthx, m, B, n);
        for (int u = 0; u < np && !rc; u++) {
            const ocn_player *pl = &g->stages[t].players[p[u]];
            int mu = pl->m;
            double *sol = malloc((size_t)mu * (1 + (size_t)B * n) * sizeof *sol), cond;
            int rank;
            rc = block_solve(c, Pthth->data, m, moff[u], mu, R + (size_t)moff[u] * (1 + B * n), 1 + B * n, sol, &cond, &rank);
            if (!rc) {
                double *kw = malloc((size_t)mu * sizeof *kw), *Kw = malloc((size_t)B * mu * n * sizeof *Kw);
                split_gains(sol, mu, B, n, 1.0, kw, Kw); /* block_solve applied η */
                const ocn_array *k = get(r, "k_t%d_n%d", t, pl->lane), *K = get(r, "K_t%d_n%d", t, pl->lane);
                if (rank == mu) { /* exact; the error bound is the sum of both sides' amplifications */
                    row(c, "T6a-local", k->name, k, kw, k->cond + size * cond);
                    if (K) row(c, "T6a-local", K->name, K, Kw, K->cond + size * cond);
                } else { /* a singular P_uu + γI: the pinv's rank decision is not stable under rounding */
                    char q[80];
                    snprintf(q, sizeof q, "%s (singular)", k->name);
                    ocn_report_measured(c->rep, "T6a-local", c->name, q, ocn_rel_err(kw, k->data, k->size));
                }
                free(kw), free(Kw);
            }
            free(sol);
        }
        free(R);
    }
    ocn_arrayset_free(r);
    return rc;
}

/* Sum over lanes of an FNE per-lane array (Vx/Vxx at t). */
static double *lane_sum(const ocn_game *g, const ocn_arrayset *r, const char *fmt, int t, size_t size)
{
    double *s = calloc(size, sizeof *s);
    for (int n = 0; n < g->nlanes; n++) {
        const ocn_array *a = get(r, fmt, t, n);
        for (size_t i = 0; a && i < size; i++) s[i] += a->data[i];
    }
    return s;
}

static int fne_and_gr(check_ctx *c, ocn_arrayset **rf, ocn_arrayset **rg)
{
    ocn_optimizer of = c->g->opt, og = c->g->opt;
    of.game = OCN_GAME_FNE;
    of.zero = c->g->opt.zero & (OCN_ZERO_MID);
    og.game = OCN_GAME_GR;
    og.zero = OCN_ZERO_PUV | (c->g->opt.zero & OCN_ZERO_MID);
    int rc = check_ref_variant(c, &of, rf);
    if (!rc) rc = check_ref_variant(c, &og, rg);
    return rc;
}

/* T6a-separable: on a separable game GR(P_uv := 0) equals FNE at every stage
 * and W = Σ_n V^n (DGNOpt Lemma 9). */
int check_t6a_separable(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_arrayset *rf = NULL, *rg = NULL;
    int rc = fne_and_gr(c, &rf, &rg);
    for (int t = 0; !rc && t <= g->T; t++) {
        const ocn_array *W = get(rg, "Wx_t%d", t, 0), *WW = get(rg, "Wxx_t%d", t, 0);
        double *s = lane_sum(g, rf, "Vx_t%d_n%d", t, W->size), *ss = lane_sum(g, rf, "Vxx_t%d_n%d", t, WW->size);
        row(c, "T6a-separable", W->name, W, s, W->cond);
        row(c, "T6a-separable", WW->name, WW, ss, WW->cond);
        free(s), free(ss);
        for (int p = 0; t < g->T && p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            if (!pl->m) continue;
            const ocn_array *kg = get(rg, "k_t%d_n%d", t, pl->lane), *kf = get(rf, "k_t%d_n%d", t, pl->lane);
            row(c, "T6a-separable", kg->name, kg, kf->data, fmax(kg->cond, kf->cond));
        }
    }
    ocn_arrayset_free(rf);
    ocn_arrayset_free(rg);
    return rc;
}

/* T6a-coupled (measured) and E2: with a shared loss every lane's V^n starts
 * from φ, so Σ_n V^n counts P_x N times.  At the last stage (same incoming
 * value) Σ_n V^n_x − W_x = (N − 1) P_x exactly. */
int check_t6a_coupled(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_arrayset *rf = NULL, *rg = NULL;
    int rc = fne_and_gr(c, &rf, &rg), T = g->T, N = g->nlanes;
    if (rc) goto out;
    const ocn_array *W = get(rg, "Wx_t%d", T - 1, 0), *Px = get(rg, "Px_t%d", T - 1, 0);
    double *s = lane_sum(g, rf, "Vx_t%d_n%d", T - 1, W->size), *want = malloc(W->size * sizeof *want);
    for (size_t i = 0; i < W->size; i++) {
        want[i] = W->data[i] + (N - 1) * Px->data[i];
    }
    char q[64];
    snprintf(q, sizeof q, "sum V^n_x = W_x+(N-1)P_x t%d", T - 1);
    check_row(c, "E2", q, s, want, W->size, fmax(W->cond, 1.0));
    free(s), free(want);
    for (int t = 0; t < T; t++) {
        int p[MAXP], moff[MAXP], m, np = gr_players(g, t, p, moff, &m);
        if (!np) continue;
        double *kf = malloc((size_t)m * sizeof *kf), *kg = malloc((size_t)m * sizeof *kg);
        for (int u = 0; u < np; u++) {
            int lane = g->stages[t].players[p[u]].lane, mu = g->stages[t].players[p[u]].m;
            memcpy(kf + moff[u], get(rf, "k_t%d_n%d", t, lane)->data, (size_t)mu * sizeof *kf);
            memcpy(kg + moff[u], get(rg, "k_t%d_n%d", t, lane)->data, (size_t)mu * sizeof *kg);
        }
        snprintf(q, sizeof q, "k_t%d FNE vs GR(Puv=0)", t);
        ocn_report_measured(c->rep, "T6a-coupled", c->name, q, ocn_rel_err(kf, kg, (size_t)m));
        free(kf), free(kg);
    }
    const ocn_array *W0 = get(rg, "Wx_t%d", 0, 0);
    double *s0 = lane_sum(g, rf, "Vx_t%d_n%d", 0, W0->size);
    ocn_report_measured(c->rep, "T6a-coupled", c->name, "sum_n Vx_t0_n vs Wx_t0", ocn_rel_err(s0, W0->data, W0->size));
    free(s0);
out:
    ocn_arrayset_free(rf);
    ocn_arrayset_free(rg);
    return rc;
}

/* SCHUR: joint pseudo-inverse gains vs the Schur-complement form (DGNOpt
 * eq. 22, GT-DDP eq. 14–15), player u against the rest v, damping inside
 * (P_vv + γI) and outside (P̃_uu + γI).  Exact when every inverted matrix
 * has full rank; measured otherwise. */
int check_schur(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_optimizer opt = g->opt;
    opt.curvature = OCN_CURV_EXACT;
    ocn_arrayset *r = NULL;
    int rc = check_ref_variant(c, &opt, &r), B = g->batch;
    double gam = opt.damping, eta = opt.lr, size = check_problem_size(g);
    for (int t = 0; !rc && t < g->T; t++) {
        int p[MAXP], moff[MAXP], m, np = gr_players(g, t, p, moff, &m), n = g->n[t];
        const ocn_array *Pthth = get(r, "Pthth_t%d", t, 0), *Pth = get(r, "Pth_t%d", t, 0), *Pthx = get(r, "Pthx_t%d", t, 0);
        if (np < 2 || !Pthth || !Pthx) continue;
        int nc = 1 + B * n;
        double *R = gain_rhs(Pth, Pthx, m, B, n);
        for (int u = 0; u < np && !rc; u++) {
            int mu = g->stages[t].players[p[u]].m, mv = m - mu, lane = g->stages[t].players[p[u]].lane;
            int *vi = malloc((size_t)mv * sizeof *vi), k = 0; /* indices of the rest */
            for (int a = 0; a < m; a++)
                if (a < moff[u] || a >= moff[u] + mu) vi[k++] = a;
            double *Puu = check_block(Pthth->data, m, moff[u], mu, moff[u], mu), *Dvv = malloc((size_t)mv * mv * sizeof *Dvv);
            double *Puv = malloc((size_t)mu * mv * sizeof *Puv), *Dvi = malloc((size_t)mv * mv * sizeof *Dvi);
            for (int a = 0; a < mv; a++)
                for (int b = 0; b < mv; b++) Dvv[a * mv + b] = Pthth->data[(size_t)vi[a] * m + vi[b]] + (a == b ? gam : 0);
            for (int a = 0; a < mu; a++)
                for (int b = 0; b < mv; b++) Puv[a * mv + b] = Pthth->data[(size_t)(moff[u] + a) * m + vi[b]];
            double cv, cu;
            int rv, ru;
            rc = check_sym_pinv_rank(Dvv, mv, 0.0, Dvi, &cv, &rv, c->err);
            /* P̃_uu + γI = P_uu + γI − P_uv (P_vv + γI)^† P_vu */
            double *T1 = malloc((size_t)mu * mv * sizeof *T1), *St = malloc((size_t)mu * mu * sizeof *St);
            double *Sti = malloc((size_t)mu * mu * sizeof *Sti);
            check_matmul(Puv, Dvi, T1, mu, mv, mv);
            double nuu = 0, nsub = 0; /* scales of the two terms of the difference */
            for (int a = 0; a < mu; a++)
                for (int b = 0; b < mu; b++) {
                    double s = 0, d = Puu[a * mu + b] + (a == b ? gam : 0);
                    for (int l = 0; l < mv; l++) s += T1[a * mv + l] * Puv[b * mv + l];
                    St[a * mu + b] = d - s;
                    nuu += d * d, nsub += s * s;
                }
            /* P̃_uu is zero in exact arithmetic when P_uu = P_uv P_vv^† P_vu (an
             * undamped identity cooperative block): its rank is judged against the
             * terms it came from, never against its own rounding noise (issue 10) */
            if (!rc) rc = check_sym_pinv_rank(St, mu, fmax(sqrt(nuu), sqrt(nsub)), Sti, &cu, &ru, c->err);
            /* gains: η (P̃_uu + γI)^† (R_u − P_uv (P_vv + γI)^† R_v) */
            double *rhs = malloc((size_t)mu * nc * sizeof *rhs), *sol = malloc((size_t)mu * nc * sizeof *sol);
            for (int a = 0; a < mu; a++)
                for (int col = 0; col < nc; col++) {
                    double s = 0;
                    for (int l = 0; l < mv; l++) s += T1[a * mv + l] * R[(size_t)vi[l] * nc + col];
                    rhs[(size_t)a * nc + col] = R[(size_t)(moff[u] + a) * nc + col] - s;
                }
            check_matmul(Sti, rhs, sol, mu, mu, nc);
            double *kw = malloc((size_t)mu * sizeof *kw), *Kw = malloc((size_t)B * mu * n * sizeof *Kw);
            split_gains(sol, mu, B, n, eta, kw, Kw);
            const ocn_array *ka = get(r, "k_t%d_n%d", t, lane), *Ka = get(r, "K_t%d_n%d", t, lane);
            char q[80];
            if (!rc && rv == mv && ru == mu) {
                row(c, "SCHUR", ka->name, ka, kw, ka->cond + size * cv * cu);
                if (Ka) row(c, "SCHUR", Ka->name, Ka, Kw, Ka->cond + size * cv * cu);
            } else if (!rc) {
                snprintf(q, sizeof q, "%s (singular)", ka->name);
                ocn_report_measured(c->rep, "SCHUR", c->name, q, ocn_rel_err(kw, ka->data, ka->size));
            }
            free(vi), free(Puu), free(Dvv), free(Puv), free(Dvi), free(T1), free(St), free(Sti), free(rhs), free(sol);
            free(kw), free(Kw);
        }
        free(R);
    }
    ocn_arrayset_free(r);
    return rc;
}

/* E4: `persample` (DDPNOpt Alg. 3 as printed) drops the 1/B of the exact
 * batch objective: at the last stage, with the same incoming value,
 * (Q_xx − V_xx)_persample = B (Q_xx − V_xx)_blockdiag exactly. */
int check_e4(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_arrayset *rp = NULL, *rb = NULL;
    int rc = check_ref_value_modes(c, OCN_VALUE_PERSAMPLE, &rp, OCN_VALUE_BLOCKDIAG, &rb), gr = g->opt.game == OCN_GAME_GR,
        T = g->T;
    for (int lane = 0; !rc && lane < (gr ? 1 : g->nlanes); lane++) {
        const char *fq = gr ? "Pxx_t%d" : "Qxx_t%d_n%d", *fv = gr ? "Wxx_t%d" : "Vxx_t%d_n%d";
        const ocn_array *Qp = get(rp, fq, T - 1, lane), *Vp = get(rp, fv, T - 1, lane), *Vb = get(rb, fv, T - 1, lane);
        double *dp = malloc(Qp->size * sizeof *dp), *db = malloc(Qp->size * sizeof *db);
        for (size_t i = 0; i < Qp->size; i++) {
            dp[i] = Qp->data[i] - Vp->data[i];
            db[i] = g->batch * (Qp->data[i] - Vb->data[i]);
        }
        char q[64];
        snprintf(q, sizeof q, "(Qxx-Vxx) ps = B*bd t%d l%d", T - 1, lane);
        check_row(c, "E4", q, dp, db, Qp->size, Vp->cond);
        const ocn_array *V0p = get(rp, fv, 0, lane), *V0b = get(rb, fv, 0, lane);
        snprintf(q, sizeof q, "Vxx_t0 persample vs blockdiag l%d", lane);
        ocn_report_measured(c->rep, "E4", c->name, q, ocn_rel_err(V0p->data, V0b->data, V0b->size));
        free(dp), free(db);
    }
    ocn_arrayset_free(rp);
    ocn_arrayset_free(rb);
    return rc;
}
