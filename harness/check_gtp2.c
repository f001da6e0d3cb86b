/* GT-P2 (SPEC §9; GT-DDP Prop. 2 eq. 11–12, eq. 9–10, with erratum E5):
 * at the start ts of an identity shortcut that ends at the merge stage tf,
 *   Ṽ_x  = V_x^{ts} + V_r^{ts},  V_r^{ts} = V_x^{tf+1} − Σ_{t∈[ts,tf]} G_tᵀ M_t k_t
 *   Ṽ_xx = V_xx^{ts} + V_rr^{ts} + V_xxr^{ts} + V_xxr^{tsᵀ}
 * where V^t is the plain feedforward recursion on the residual path's own
 * block, G_t = M_t^† f_uᵀ V_xxr^{t+1} the residual feedback gain, and
 * V_xxr^t = f_xᵀ V_xxr^{t+1} − Q_xu G_t, V_rr^t = V_rr^{t+1} − (f_uᵀ V_xxr^{t+1})ᵀ G_t,
 * from V_xxr = V_rr = V_xx^{tf+1} (eq. 10 continued to ts).  The SPEC's sign
 * convention (θ ← θ − (k + K δx), M = (Q_uu + γI)/η) is used throughout.
 * The harness builds f_x, f_u row by row from plain back-propagation, runs
 * this recursion with its own pseudo-inverse, and compares the reference's
 * augmented-state value at ts.  B = 1, exact curvature, gn dynamics. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A shortcut: stage ts carries z -> r and its player maps z -> z; stages
 * ts+1..tf-1 carry r -> r; stage tf carries r -> z (the merge); every stage
 * on the path has one player, on z -> z; x_ts and x_{tf+1} are z alone. */
static int find_shortcut(const ocn_game *g, int *ts, int *tf)
{
    for (int s = 0; s < g->T; s++) {
        const ocn_stage *st = &g->stages[s];
        if (st->nplayers != 1 || st->ncarries != 1 || st->carries[0].from != st->players[0].in_block ||
            st->carries[0].to == st->carries[0].from || g->n[s] != g->block_dim[s][st->players[0].in_block])
            continue;
        int z = st->players[0].in_block, r = st->carries[0].to;
        if (st->players[0].out_block != z) continue;
        for (int f = s + 1; f < g->T; f++) {
            const ocn_stage *sf = &g->stages[f];
            if (sf->nplayers != 1 || sf->players[0].in_block != z || sf->players[0].out_block != z || sf->ncarries != 1 ||
                sf->carries[0].from != r)
                break;
            if (sf->carries[0].to == z) {
                if (g->n[f + 1] != g->block_dim[f + 1][z]) break;
                *ts = s, *tf = f;
                return 1;
            }
            if (sf->carries[0].to != r) break;
        }
    }
    return 0;
}

int ocn_check_gtp2_applies(const ocn_game *g)
{
    int ts, tf;
    return g->opt.game == OCN_GAME_FNE && g->batch == 1 && g->opt.curvature == OCN_CURV_EXACT &&
           g->opt.dynamics == OCN_DYN_GN && !g->opt.zero && g->nlanes == 1 && !ocn_game_has_conv(g) && find_shortcut(g, &ts, &tf);
}

/* Dense f_x (nz' x nz, z-block only) and f_u (nz' x m) of stage t's player by
 * one back-propagation per output coordinate. */
static int stage_jacobians(check_ctx *c, int t, const double *x, double *fx, double *fu, int *nz, int *nz1)
{
    const ocn_game *g = c->g;
    const ocn_player *pl = &g->stages[t].players[0];
    int zb = pl->in_block, n = g->n[t], n1 = g->n[t + 1], zo = g->block_off[t][zb], zo1 = g->block_off[t + 1][zb];
    *nz = g->block_dim[t][zb], *nz1 = g->block_dim[t + 1][zb];
    double *ct1 = calloc((size_t)n1, sizeof *ct1), *ct0 = malloc((size_t)n * sizeof *ct0);
    double *gh = malloc((size_t)pl->out_dim * sizeof *gh);
    double *ghs[1] = {gh};
    int rc = OCN_OK;
    const double *a = ocn_bp_player_input(g, t, 0, x);
    for (int j = 0; j < *nz1 && !rc; j++) {
        ct1[zo1 + j] = 1.0;
        rc = ocn_bp_stage_vjp(g, c->in, t, x, ct1, ct0, ghs, c->err);
        ct1[zo1 + j] = 0.0;
        for (int i = 0; i < *nz; i++) fx[(size_t)j * *nz + i] = ct0[zo + i];
        for (int q = 0; q < pl->m; q++) fu[(size_t)j * pl->m + q] = 0;
        if (pl->kind == OCN_PLAYER_DENSE)
            for (int cc = 0; cc <= pl->in_dim; cc++)
                for (int r = 0; r < pl->out_dim; r++)
                    fu[(size_t)j * pl->m + (size_t)cc * pl->out_dim + r] = gh[r] * (cc < pl->in_dim ? a[cc] : 1.0);
        else if (pl->kind == OCN_PLAYER_BIAS)
            for (int r = 0; r < pl->out_dim; r++) fu[(size_t)j * pl->m + r] = gh[r];
    }
    free(ct1), free(ct0), free(gh);
    return rc;
}

static double *mat_tn(const double *A, const double *Bm, int r, int k, int cdim) /* Aᵀ B, A: k x r, B: k x c */
{
    double *C = calloc((size_t)r * cdim, sizeof *C);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < cdim; j++) {
            double s = 0;
            for (int l = 0; l < k; l++) s += A[(size_t)l * r + i] * Bm[(size_t)l * cdim + j];
            C[(size_t)i * cdim + j] = s;
        }
    return C;
}

int check_gtp2(check_ctx *c)
{
    const ocn_game *g = c->g;
    int ts, tf;
    find_shortcut(g, &ts, &tf);
    ocn_arrayset *r = NULL;
    int rc = check_ref_variant(c, &g->opt, &r);
    if (rc) return rc;
    char nm[64];
    snprintf(nm, sizeof nm, "Vx_t%d_n0", tf + 1);
    const ocn_array *Vx1 = ocn_arrayset_find(r, nm);
    snprintf(nm, sizeof nm, "Vxx_t%d_n0", tf + 1);
    const ocn_array *Vxx1 = ocn_arrayset_find(r, nm);
    int n = (int)Vx1->size;
    /* feedforward value (V_x, V_xx), residual value (V_r, V_rr, V_xxr) */
    double *vx = malloc((size_t)n * sizeof *vx), *vxx = malloc((size_t)n * n * sizeof *vxx);
    double *vr5 = malloc((size_t)n * sizeof *vr5), *vr = malloc((size_t)n * sizeof *vr), *vrr = malloc((size_t)n * n * sizeof *vrr), *vxr = malloc((size_t)n * n * sizeof *vxr);
    memcpy(vx, Vx1->data, (size_t)n * sizeof *vx);
    memcpy(vr, Vx1->data, (size_t)n * sizeof *vr);
    memcpy(vr5, Vx1->data, (size_t)n * sizeof *vr5);
    memcpy(vxx, Vxx1->data, (size_t)n * n * sizeof *vxx);
    memcpy(vrr, Vxx1->data, (size_t)n * n * sizeof *vrr);
    memcpy(vxr, Vxx1->data, (size_t)n * n * sizeof *vxr);
    int nr = n; /* dim of the residual block r (= z at ts) */
    double cum = 1, lam = g->weight_decay, eta = g->opt.lr, gam = g->opt.damping;
    for (int t = tf; t >= ts && !rc; t--) {
        const ocn_player *pl = &g->stages[t].players[0];
        int m = pl->m, nz, nz1;
        snprintf(nm, sizeof nm, "x_t%d", t);
        const double *x = ocn_arrayset_find(r, nm)->data;
        double *fx = malloc((size_t)g->n[t + 1] * g->n[t] * sizeof *fx), *fu = malloc((size_t)g->n[t + 1] * (m + 1) * sizeof *fu);
        rc = stage_jacobians(c, t, x, fx, fu, &nz, &nz1);
        /* Q terms on the residual path's own block (nz1 = current n) */
        double *Qx = mat_tn(fx, vx, nz, nz1, 1), *T1 = mat_tn(fx, vxx, nz, nz1, nz1);
        double *Qxx = malloc((size_t)nz * nz * sizeof *Qxx);
        check_matmul(T1, fx, Qxx, nz, nz1, nz);
        double *Quu = NULL, *Qux = NULL, *Qu = NULL, *Minv = NULL, *k = NULL, *Kx = NULL, *Gr = NULL, *Qur = NULL;
        if (m) {
            Qu = mat_tn(fu, vx, m, nz1, 1);
            snprintf(nm, sizeof nm, "theta_t%d_n0", t);
            const double *th = ocn_arrayset_find(c->in, nm)->data;
            for (int q = 0; q < m; q++) Qu[q] += lam * th[q];
            double *T2 = mat_tn(fu, vxx, m, nz1, nz1);
            Quu = malloc((size_t)m * m * sizeof *Quu);
            Qux = malloc((size_t)m * nz * sizeof *Qux);
            check_matmul(T2, fu, Quu, m, nz1, m);
            check_matmul(T2, fx, Qux, m, nz1, nz);
            double *Mm = malloc((size_t)m * m * sizeof *Mm), cond;
            for (int q = 0; q < m * m; q++) Mm[q] = Quu[q];
            for (int q = 0; q < m; q++) Mm[q * m + q] += lam + gam; /* ℓ_uu = λI, damping γ */
            Minv = malloc((size_t)m * m * sizeof *Minv);
            if (!rc) rc = check_sym_pinv(Mm, m, Minv, &cond, c->err);
            for (int q = 0; q < m * m; q++) Minv[q] *= eta; /* M^† = η (Q_uu + γI)^† */
            cum *= cond;
            k = malloc((size_t)m * sizeof *k);
            Kx = malloc((size_t)m * nz * sizeof *Kx);
            check_matmul(Minv, Qu, k, m, m, 1);
            check_matmul(Minv, Qux, Kx, m, m, nz);
            Qur = mat_tn(fu, vxr, m, nz1, nr); /* f_uᵀ V_xxr' (m x nr) */
            Gr = malloc((size_t)m * nr * sizeof *Gr);
            check_matmul(Minv, Qur, Gr, m, m, nr);
            free(T2), free(Mm);
        }
        /* residual recursion first (it uses the incoming V_xxr) */
        double *nvxr = mat_tn(fx, vxr, nz, nz1, nr); /* f_xᵀ V_xxr' */
        if (m) {
            double *QxuG = mat_tn(Qux, Gr, nz, m, nr); /* Q_xu G */
            for (int q = 0; q < nz * nr; q++) nvxr[q] -= QxuG[q];
            double *QruG = mat_tn(Qur, Gr, nr, m, nr);
            for (int q = 0; q < nr * nr; q++) vrr[q] -= QruG[q];
            double *Qrk = mat_tn(Qur, k, nr, m, 1);
            for (int q = 0; q < nr; q++) vr[q] -= Qrk[q], vr5[q] += Qrk[q]; /* E5: the sign printed in eq. 32 */
            free(QxuG), free(QruG), free(Qrk);
        }
        free(vxr);
        vxr = nvxr;
        /* feedforward recursion on the block */
        double *nvx = malloc((size_t)nz * sizeof *nvx), *nvxx = malloc((size_t)nz * nz * sizeof *nvxx);
        memcpy(nvx, Qx, (size_t)nz * sizeof *nvx);
        memcpy(nvxx, Qxx, (size_t)nz * nz * sizeof *nvxx);
        if (m) {
            double *Qxk = mat_tn(Qux, k, nz, m, 1), *QxK = mat_tn(Qux, Kx, nz, m, nz);
            for (int q = 0; q < nz; q++) nvx[q] -= Qxk[q];
            for (int q = 0; q < nz * nz; q++) nvxx[q] -= QxK[q];
            free(Qxk), free(QxK);
        }
        free(vx), free(vxx);
        vx = nvx, vxx = nvxx, n = nz;
        free(fx), free(fu), free(Qx), free(T1), free(Qxx), free(Quu), free(Qux), free(Qu), free(Minv);
        free(k), free(Kx), free(Gr), free(Qur);
    }
    if (!rc) {
        double *vt = malloc((size_t)n * sizeof *vt), *vtt = malloc((size_t)n * n * sizeof *vtt);
        for (int i = 0; i < n; i++) vt[i] = vx[i] + vr[i];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) vtt[i * n + j] = vxx[i * n + j] + vrr[i * n + j] + vxr[i * n + j] + vxr[j * n + i];
        double size = check_problem_size(g);
        snprintf(nm, sizeof nm, "Vx_t%d_n0", ts);
        const ocn_array *Vr = ocn_arrayset_find(r, nm);
        check_row(c, "GT-P2", "eq.11 V~x at ts", vt, Vr->data, (size_t)n, size * cum);
        for (int i = 0; i < n; i++) vt[i] = vx[i] + vr5[i];
        ocn_report_measured(c->rep, "E5", c->name, "eq.11 with eq.32's printed sign", ocn_rel_err(vt, Vr->data, (size_t)n));
        snprintf(nm, sizeof nm, "Vxx_t%d_n0", ts);
        const ocn_array *Vrr = ocn_arrayset_find(r, nm);
        check_row(c, "GT-P2", "eq.12 V~xx at ts", vtt, Vrr->data, (size_t)n * n, size * cum);
        free(vt), free(vtt);
    }
    free(vx), free(vxx), free(vr), free(vr5), free(vrr), free(vxr);
    ocn_arrayset_free(r);
    return rc;
}
