/* KFAC-T3 / E3 and C7 (SPEC §6, §9).
 * KFAC-T3: the §6 closed form with Schur complements of the factors
 * (DGNOpt eq. 30, with the `+` sign) equals the reference's dense embedding
 * G_ww^† blockdiag(mat P_u, mat P_v) A_ww^†; the eq.-15 `−` variant and the
 * distance to the exact GN cooperative gain are measured.
 * C7: GT-DDP Cor. 7 on a cooperative block with identity σ. */
#include "check.h"

#include <gsl/gsl_eigen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ocn_array *get(const ocn_arrayset *r, const char *fmt, int t, int n)
{
    char nm[64];
    snprintf(nm, sizeof nm, fmt, t, n);
    return ocn_arrayset_find(r, nm);
}

/* Exactly two parameterised players at stage t: their indices (lane order). */
static int two_players(const ocn_game *g, int t, int *u, int *v)
{
    int k = 0;
    for (int l = 0; l < g->nlanes; l++) {
        const ocn_player *pl = ocn_game_lane_player(g, t, l);
        if (!pl || !pl->m) continue;
        if (k == 0) *u = (int)(pl - g->stages[t].players);
        else *v = (int)(pl - g->stages[t].players);
        k++;
    }
    return k == 2;
}

static double *tr(const double *A, int r, int c)
{
    double *T = malloc((size_t)r * c * sizeof *T);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) T[(size_t)j * r + i] = A[(size_t)i * c + j];
    return T;
}

/* Y = η vec(G̃^† (mat P_u ± G_uv G_vv^† mat P_v A_vv^† A_uvᵀ) Ã^†) for player u
 * (index 0 or 1 in the embedding); A, G are the damped joint factors. */
static int closed_form(check_ctx *c, const double *A, int na, const int *ao, const double *G, int ng, const int *go,
                       const double *Pu, const double *Pv, int u, double sign, double *k, double *cond)
{
    int v = 1 - u, au = ao[u + 1] - ao[u], av = ao[v + 1] - ao[v], gu = go[u + 1] - go[u], gv = go[v + 1] - go[v];
    double *Auu = check_block(A, na, ao[u], au, ao[u], au), *Auv = check_block(A, na, ao[u], au, ao[v], av);
    double *Avv = check_block(A, na, ao[v], av, ao[v], av), *Guu = check_block(G, ng, go[u], gu, go[u], gu);
    double *Guv = check_block(G, ng, go[u], gu, go[v], gv), *Gvv = check_block(G, ng, go[v], gv, go[v], gv);
    double *Avi = malloc((size_t)av * av * sizeof *Avi), *Gvi = malloc((size_t)gv * gv * sizeof *Gvi);
    double ca, cg, cta, ctg;
    int rc = check_sym_pinv(Avv, av, Avi, &ca, c->err);
    if (!rc) rc = check_sym_pinv(Gvv, gv, Gvi, &cg, c->err);
    /* Schur complements Ã_uu = A_uu − A_uv A_vv^† A_vu, G̃_uu likewise */
    double *T1 = malloc((size_t)au * av * sizeof *T1), *At = malloc((size_t)au * au * sizeof *At);
    double *T2 = malloc((size_t)gu * gv * sizeof *T2), *Gt = malloc((size_t)gu * gu * sizeof *Gt);
    double *Avu = tr(Auv, au, av), *Gvu = tr(Guv, gu, gv);
    check_matmul(Auv, Avi, T1, au, av, av);
    check_matmul(T1, Avu, At, au, av, au);
    for (int i = 0; i < au * au; i++) At[i] = Auu[i] - At[i];
    check_matmul(Guv, Gvi, T2, gu, gv, gv);
    check_matmul(T2, Gvu, Gt, gu, gv, gu);
    for (int i = 0; i < gu * gu; i++) Gt[i] = Guu[i] - Gt[i];
    double *Ati = malloc((size_t)au * au * sizeof *Ati), *Gti = malloc((size_t)gu * gu * sizeof *Gti);
    if (!rc) rc = check_sym_pinv(At, au, Ati, &cta, c->err);
    if (!rc) rc = check_sym_pinv(Gt, gu, Gti, &ctg, c->err);
    /* mat(P) is out x (in+1), θ column-major (§2) */
    double *Mu = malloc((size_t)gu * au * sizeof *Mu), *Mv = malloc((size_t)gv * av * sizeof *Mv);
    for (int r = 0; r < gu; r++)
        for (int cc = 0; cc < au; cc++) Mu[r * au + cc] = Pu[(size_t)cc * gu + r];
    for (int r = 0; r < gv; r++)
        for (int cc = 0; cc < av; cc++) Mv[r * av + cc] = Pv[(size_t)cc * gv + r];
    double *X1 = malloc((size_t)gu * av * sizeof *X1), *X2 = malloc((size_t)gu * av * sizeof *X2);
    double *X3 = malloc((size_t)gu * av * sizeof *X3), *Term = malloc((size_t)gu * au * sizeof *Term);
    double *Y1 = malloc((size_t)gu * au * sizeof *Y1), *Y = malloc((size_t)gu * au * sizeof *Y);
    check_matmul(T2, Mv, X1, gu, gv, av);    /* G_uv G_vv^† mat P_v */
    check_matmul(X1, Avi, X2, gu, av, av);   /* … A_vv^† */
    check_matmul(X2, Avu, Term, gu, av, au); /* … A_uvᵀ */
    for (int i = 0; i < gu * au; i++) Term[i] = Mu[i] + sign * Term[i];
    check_matmul(Gti, Term, Y1, gu, gu, au);
    check_matmul(Y1, Ati, Y, gu, au, au);
    for (int r = 0; r < gu; r++)
        for (int cc = 0; cc < au; cc++) k[(size_t)cc * gu + r] = c->g->opt.lr * Y[r * au + cc];
    *cond = ca * cg * cta * ctg;
    free(Auu), free(Auv), free(Avv), free(Guu), free(Guv), free(Gvv), free(Avi), free(Gvi), free(T1), free(At);
    free(T2), free(Gt), free(Avu), free(Gvu), free(Ati), free(Gti), free(Mu), free(Mv), free(X1), free(X2), free(X3);
    free(Term), free(Y1), free(Y);
    return rc;
}

int check_kfac_t3(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_optimizer ok = g->opt, oe = g->opt;
    ok.curvature = OCN_CURV_COOP_KFAC;
    ok.zero = 0;
    ok.damping = g->opt.damping > 0 ? g->opt.damping : 0.1; /* §6: the closed form needs γ > 0 */
    oe = ok;
    oe.curvature = OCN_CURV_EXACT;
    ocn_arrayset *rk = NULL, *re = NULL;
    int rc = check_ref_variant(c, &ok, &rk), B = g->batch;
    if (!rc) rc = check_ref_variant(c, &oe, &re);
    double size = check_problem_size(g), sg = sqrt(ok.damping);
    for (int t = 0; !rc && t < g->T; t++) {
        int pu, pv;
        if (!two_players(g, t, &pu, &pv)) continue;
        const ocn_player *pl[2] = {&g->stages[t].players[pu], &g->stages[t].players[pv]};
        int p2[2] = {pu, pv}, ao[3] = {0}, go[3] = {0};
        for (int w = 0; w < 2; w++) {
            ao[w + 1] = ao[w] + (pl[w]->kind == OCN_PLAYER_BIAS ? 1 : pl[w]->in_dim + 1);
            go[w + 1] = go[w] + pl[w]->out_dim;
        }
        int na = ao[2], ng = go[2], n = g->n[t], n1 = g->n[t + 1], np = g->stages[t].nplayers;
        double *A = calloc((size_t)na * na, sizeof *A), *G = calloc((size_t)ng * ng, sizeof *G);
        double *a = malloc((size_t)na * sizeof *a), *gv = malloc((size_t)ng * sizeof *gv), *ct0 = malloc((size_t)n * sizeof *ct0);
        double **gh = calloc((size_t)np, sizeof *gh);
        for (int q = 0; q < np; q++) gh[q] = malloc((size_t)g->stages[t].players[q].out_dim * sizeof **gh);
        const ocn_array *X = get(rk, "x_t%d", t, 0), *W1 = get(rk, "Wx_t%d", t + 1, 0);
        for (int i = 0; i < B && !rc; i++) { /* a_u = [z_u; 1], g_u = σ'(h_u) ⊙ W_x'[out_u] by back-propagation */
            const double *x = X->data + (size_t)i * n;
            rc = ocn_bp_stage_vjp(g, c->in, t, x, W1->data + (size_t)i * n1, ct0, gh, c->err);
            for (int w = 0; w < 2; w++) {
                const double *z = ocn_bp_player_input(g, t, p2[w], x);
                for (int q = ao[w]; q < ao[w + 1] - 1; q++) a[q] = z[q - ao[w]];
                a[ao[w + 1] - 1] = 1.0;
                memcpy(gv + go[w], gh[p2[w]], (size_t)pl[w]->out_dim * sizeof *gv);
            }
            for (int r = 0; r < na; r++)
                for (int q = 0; q < na; q++) A[r * na + q] += a[r] * a[q] / B;
            for (int r = 0; r < ng; r++)
                for (int q = 0; q < ng; q++) G[r * ng + q] += gv[r] * gv[q] / B;
        }
        for (int r = 0; r < na; r++) A[r * na + r] += sg; /* §6: √γ I added to A_ww and G_ww first */
        for (int r = 0; r < ng; r++) G[r * ng + r] += sg;
        const ocn_array *Pth = get(rk, "Pth_t%d", t, 0);
        for (int w = 0; w < 2 && !rc; w++) {
            const double *Pw = Pth->data + (w ? pl[0]->m : 0), *Po = Pth->data + (w ? 0 : pl[0]->m);
            double *kp = malloc((size_t)pl[w]->m * sizeof *kp), *km = malloc((size_t)pl[w]->m * sizeof *km), cond;
            rc = closed_form(c, A, na, ao, G, ng, go, Pw, Po, w, +1.0, kp, &cond);
            if (!rc) rc = closed_form(c, A, na, ao, G, ng, go, Pw, Po, w, -1.0, km, &cond);
            const ocn_array *kref = get(rk, "k_t%d_n%d", t, pl[w]->lane), *kex = get(re, "k_t%d_n%d", t, pl[w]->lane);
            char q[96];
            if (!rc) {
                snprintf(q, sizeof q, "%s closed(+) vs embed", kref->name);
                check_row(c, "KFAC-T3", q, kp, kref->data, kref->size, kref->cond + size * cond);
                snprintf(q, sizeof q, "%s eq15(-) vs embed", kref->name);
                ocn_report_measured(c->rep, "E3", c->name, q, ocn_rel_err(km, kref->data, kref->size));
                snprintf(q, sizeof q, "%s coop-kfac vs exact GN", kref->name);
                ocn_report_measured(c->rep, "KFAC-T3", c->name, q, ocn_rel_err(kref->data, kex->data, kex->size));
            }
            free(kp), free(km);
        }
        for (int q = 0; q < np; q++) free(gh[q]);
        free(gh), free(A), free(G), free(a), free(gv), free(ct0);
    }
    ocn_arrayset_free(rk);
    ocn_arrayset_free(re);
    return rc;
}

/* C7 applies at a stage with two dense players reading and writing the same
 * blocks with identity σ (then F_u = F_v, so P_uu − λI = P_vv − λI = P_uv). */
static int c7_stage(const ocn_game *g, int t, int *u, int *v)
{
    /* Cor. 7 is a statement about the damped complement: γ > 0 */
    if (g->opt.dynamics != OCN_DYN_GN || !(g->opt.damping > 0) || !two_players(g, t, u, v)) return 0;
    const ocn_player *a = &g->stages[t].players[*u], *b = &g->stages[t].players[*v];
    return a->kind == OCN_PLAYER_DENSE && b->kind == OCN_PLAYER_DENSE && a->act == OCN_ACT_IDENTITY &&
           b->act == OCN_ACT_IDENTITY && a->in_block == b->in_block && a->out_block == b->out_block &&
           a->out_dim == b->out_dim;
}

int ocn_check_c7_applies(const ocn_game *g)
{
    int u, v;
    for (int t = 0; t < g->T; t++)
        if (c7_stage(g, t, &u, &v)) return 1;
    return 0;
}

int check_c7(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_arrayset *r = NULL;
    int rc = check_ref_variant(c, &g->opt, &r);
    double lam = g->weight_decay, gam = g->opt.damping, size = check_problem_size(g);
    for (int t = 0; !rc && t < g->T; t++) {
        int u, v;
        if (!c7_stage(g, t, &u, &v)) continue;
        const ocn_array *P = get(r, "Pthth_t%d", t, 0);
        if (!P) continue;
        int m = (int)P->shape[0], mu = g->stages[t].players[u].m;
        double *Puu = check_block(P->data, m, 0, mu, 0, mu), *Pvv = check_block(P->data, m, mu, mu, mu, mu);
        double *Puv = check_block(P->data, m, 0, mu, mu, mu), *Pl = malloc((size_t)mu * mu * sizeof *Pl);
        for (int i = 0; i < mu * mu; i++) Pl[i] = Puv[i] + (i % (mu + 1) == 0 ? lam : 0.0);
        check_row(c, "C7", "premise P_vv = P_uu", Pvv, Puu, (size_t)mu * mu, size);
        check_row(c, "C7", "premise P_uv + lambda I = P_uu", Pl, Puu, (size_t)mu * mu, size);
        /* S1 = P_uu − P_uv (P_vv + γI)^† P_vu, by pseudo-inverse */
        double *D = malloc((size_t)mu * mu * sizeof *D), *Di = malloc((size_t)mu * mu * sizeof *Di), cd;
        double *T1 = malloc((size_t)mu * mu * sizeof *T1), *S1 = malloc((size_t)mu * mu * sizeof *S1);
        memcpy(D, Pvv, (size_t)mu * mu * sizeof *D);
        for (int i = 0; i < mu; i++) D[i * mu + i] += gam;
        rc = check_sym_pinv(D, mu, Di, &cd, c->err);
        check_matmul(Puv, Di, T1, mu, mu, mu);
        double *Pvu = tr(Puv, mu, mu);
        check_matmul(T1, Pvu, S1, mu, mu, mu);
        for (int i = 0; i < mu * mu; i++) S1[i] = Puu[i] - S1[i];
        /* S2 = U diag(q + λ − q²/(q + λ + γ)) Uᵀ, q the eigenvalues of P_uv (Cor. 7) */
        gsl_matrix *M = gsl_matrix_alloc((size_t)mu, (size_t)mu), *U = gsl_matrix_alloc((size_t)mu, (size_t)mu);
        gsl_vector *q = gsl_vector_alloc((size_t)mu);
        gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc((size_t)mu);
        for (int i = 0; i < mu; i++)
            for (int j = 0; j < mu; j++) gsl_matrix_set(M, (size_t)i, (size_t)j, 0.5 * (Puv[i * mu + j] + Puv[j * mu + i]));
        if (!rc && gsl_eigen_symmv(M, q, U, w)) rc = ocn_fail(c->err, OCN_ENUMERIC, "C7: eigendecomposition failed");
        double *S2 = calloc((size_t)mu * mu, sizeof *S2);
        for (int k = 0; !rc && k < mu; k++) {
            double qk = gsl_vector_get(q, (size_t)k), den = qk + lam + gam;
            double dk = qk + lam - (den != 0 ? qk * qk / den : 0.0);
            for (int i = 0; i < mu; i++)
                for (int j = 0; j < mu; j++)
                    S2[i * mu + j] += gsl_matrix_get(U, (size_t)i, (size_t)k) * dk * gsl_matrix_get(U, (size_t)j, (size_t)k);
        }
        char nm[64];
        snprintf(nm, sizeof nm, "damped Schur t%d vs Cor.7", t);
        if (!rc) check_row(c, "C7", nm, S1, S2, (size_t)mu * mu, size * cd);
        gsl_eigen_symmv_free(w), gsl_matrix_free(M), gsl_matrix_free(U), gsl_vector_free(q);
        free(Puu), free(Pvv), free(Puv), free(Pl), free(D), free(Di), free(T1), free(S1), free(S2), free(Pvu);
    }
    ocn_arrayset_free(r);
    return rc;
}
