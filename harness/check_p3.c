/* P3 and E1 (SPEC §9, §7; DDPNOpt Prop. 3): with terminal `outer` and gn
 * dynamics the per-sample value Hessian stays rank one, v_xx = S z zᵀ, with
 * S = S' − c S'² s, s = q_θᵀ M^† q_θ (c = 1/B blockdiag, 1 persample).  The
 * harness runs that recursion itself — vector-Jacobian products from plain
 * back-propagation, its own M^† by eigendecomposition — and compares the
 * reference's dense V_xx = Q_xx − c Q_xθ K.  E1: S < 0 happens (GT-DDP eq. 21/23's
 * square root cannot exist); the most negative S is reported. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int m, B, na, ng;
    double *Minv;          /* m x m (dense modes) */
    double *Ai, *Gi;       /* kfac factors' pinvs */
    int kind;              /* 0 dense Minv, 1 kfac factors */
    double eta, cond;
} minv_t;

static void minv_apply(const minv_t *M, const double *q, double *out)
{
    if (M->kind == 0) {
        for (int a = 0; a < M->m; a++) {
            double s = 0;
            for (int b = 0; b < M->m; b++) s += M->Minv[(size_t)a * M->m + b] * q[b];
            out[a] = s;
        }
        return;
    }
    check_kfac_apply(M->Ai, M->na, M->Gi, M->ng, M->eta, q, out);
}

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* θ-gradient of a cotangent: vec(gh aᵀ) (dense) or gh (bias). */
static void theta_vjp(const ocn_player *pl, const double *z, const double *gh, double *out)
{
    if (pl->kind == OCN_PLAYER_CONV) { /* §14: the harness's own (harness/check_conv.c) */
        check_conv_theta_vjp(pl, z, gh, out);
        return;
    }
    if (pl->kind == OCN_PLAYER_BIAS) {
        memcpy(out, gh, (size_t)pl->out_dim * sizeof *out);
        return;
    }
    for (int c = 0; c <= pl->in_dim; c++)
        for (int r = 0; r < pl->out_dim; r++) out[(size_t)c * pl->out_dim + r] = gh[r] * (c < pl->in_dim ? z[c] : 1.0);
}

/* §5 M^† for the fixture's mode from the recursion's own statistics. */
static int build_minv(check_ctx *c, const ocn_optimizer *o, const ocn_player *pl, const double *qth, const double *Sp,
                      const double *gi, const double *av, const double *ghv, minv_t *M)
{
    int m = pl->m, B = c->g->batch, rc = OCN_OK;
    double gam = o->damping;
    memset(M, 0, sizeof *M);
    M->m = m, M->B = B, M->eta = o->lr, M->cond = 1;
    if (o->curvature == OCN_CURV_KFAC || o->curvature == OCN_CURV_COOP_KFAC) {
        if (!(o->zero & OCN_ZERO_MID)) {
            M->kind = 1;
            M->na = ocn_player_na(pl), M->ng = ocn_player_ng(pl); /* §14: conv patch / channels */
            M->Ai = malloc((size_t)M->na * M->na * sizeof *M->Ai), M->Gi = malloc((size_t)M->ng * M->ng * sizeof *M->Gi);
            if (pl->kind == OCN_PLAYER_CONV) /* av holds z, ghv all C_o·P entries of g */
                rc = check_conv_kfc_pinv(pl, av, ghv, B, gam, M->Ai, M->Gi, &M->cond, c->err);
            else
                rc = check_kfac_pinv(av, M->na, ghv, M->ng, B, gam, M->Ai, M->Gi, &M->cond, c->err);
            return rc;
        }
    }
    M->Minv = calloc((size_t)m * m, sizeof *M->Minv);
    if ((o->zero & OCN_ZERO_MID) || o->curvature == OCN_CURV_SGD) {
        for (int a = 0; a < m; a++) M->Minv[(size_t)a * m + a] = o->lr;
        return OCN_OK;
    }
    double *C = calloc((size_t)m * m, sizeof *C), lam = c->g->weight_decay;
    if (o->curvature == OCN_CURV_RMSPROP) {
        for (int j = 0; j < m; j++) {
            double s = 0;
            for (int i = 0; i < B; i++) s += gi[(size_t)i * m + j] * gi[(size_t)i * m + j];
            C[(size_t)j * m + j] = sqrt(s / B) + o->eps;
        }
        gam = 0;
    } else if (o->curvature == OCN_CURV_GN_OUTER) {
        for (int i = 0; i < B; i++)
            for (int a = 0; a < m; a++)
                for (int b = 0; b < m; b++) C[(size_t)a * m + b] += gi[(size_t)i * m + a] * gi[(size_t)i * m + b] / B;
    } else { /* exact: Q_θθ = λI + mean_i S'_i q_θ q_θᵀ (rank-one v_xx', gn) */
        for (int i = 0; i < B; i++)
            for (int a = 0; a < m; a++)
                for (int b = 0; b < m; b++)
                    C[(size_t)a * m + b] += Sp[i] * qth[(size_t)i * m + a] * qth[(size_t)i * m + b] / B;
        for (int a = 0; a < m; a++) C[(size_t)a * m + a] += lam;
    }
    for (int a = 0; a < m; a++) C[(size_t)a * m + a] += gam;
    rc = check_sym_pinv(C, m, M->Minv, &M->cond, c->err);
    for (size_t i = 0; i < (size_t)m * m; i++) M->Minv[i] *= o->lr;
    free(C);
    return rc;
}

static int p3_lane(check_ctx *c, const ocn_arrayset *r, int lane, double size)
{
    const ocn_game *g = c->g;
    const ocn_optimizer *o = &g->opt;
    int B = g->batch, T = g->T, rc = OCN_OK;
    double cfac = o->value == OCN_VALUE_PERSAMPLE ? 1.0 : 1.0 / B, cum = 1, minS = INFINITY, maxsB = 0;
    char nm[64];
    /* terminal: z = v = ∇φ_n, S = 1 */
    int nT = g->n[T];
    double *z = malloc((size_t)B * nT * sizeof *z), *v = malloc((size_t)B * nT * sizeof *v), *S = malloc((size_t)B * sizeof *S);
    ocn_bp *bp = NULL;
    if ((rc = ocn_bp_run(g, c->in, lane, &bp, c->err))) goto out;
    memcpy(z, ocn_bp_costate(bp, T), (size_t)B * nT * sizeof *z);
    memcpy(v, z, (size_t)B * nT * sizeof *v);
    for (int i = 0; i < B; i++) S[i] = 1.0;
    for (int t = T - 1; t >= 0 && !rc; t--) {
        int n = g->n[t], n1 = g->n[t + 1], np = g->stages[t].nplayers;
        const ocn_player *pl = ocn_game_lane_player(g, t, lane);
        int p = pl ? (int)(pl - g->stages[t].players) : -1, m = pl ? pl->m : 0;
        snprintf(nm, sizeof nm, "x_t%d", t);
        const double *X = ocn_arrayset_find(r, nm)->data;
        double *qx = malloc((size_t)B * n * sizeof *qx), *gx = malloc((size_t)B * n * sizeof *gx);
        double *qth = calloc((size_t)B * m + 1, sizeof *qth), *gi = calloc((size_t)B * m + 1, sizeof *gi);
        int conv = pl && pl->kind == OCN_PLAYER_CONV; /* §14: av holds the input image z */
        int na = conv ? pl->in_dim : pl && pl->kind == OCN_PLAYER_DENSE ? pl->in_dim + 1 : 1, ng = pl ? pl->out_dim : 1;
        double *av = calloc((size_t)B * na, sizeof *av), *ghv = calloc((size_t)B * ng, sizeof *ghv);
        double **gh = calloc((size_t)np, sizeof *gh);
        for (int q = 0; q < np; q++) gh[q] = malloc((size_t)g->stages[t].players[q].out_dim * sizeof **gh);
        for (int i = 0; i < B && !rc; i++) {
            const double *x = X + (size_t)i * n;
            rc = ocn_bp_stage_vjp(g, c->in, t, x, z + (size_t)i * n1, qx + (size_t)i * n, gh, c->err);
            if (!rc && m) theta_vjp(pl, ocn_bp_player_input(g, t, p, x), gh[p], qth + (size_t)i * m);
            if (!rc) rc = ocn_bp_stage_vjp(g, c->in, t, x, v + (size_t)i * n1, gx + (size_t)i * n, gh, c->err);
            if (!rc && m) {
                theta_vjp(pl, ocn_bp_player_input(g, t, p, x), gh[p], gi + (size_t)i * m);
                memcpy(ghv + (size_t)i * ng, gh[p], (size_t)ng * sizeof *ghv);
                const double *zz = ocn_bp_player_input(g, t, p, x);
                for (int a = 0; a + 1 < na; a++) av[(size_t)i * na + a] = zz[a];
                av[(size_t)i * na + na - 1] = conv ? zz[na - 1] : 1.0;
            }
        }
        double *Snew = malloc((size_t)B * sizeof *Snew), *k = calloc((size_t)m + 1, sizeof *k);
        if (!rc && m) {
            minv_t M;
            rc = build_minv(c, o, pl, qth, S, gi, av, ghv, &M);
            double *Qth = calloc((size_t)m, sizeof *Qth), *tmp = malloc((size_t)m * sizeof *tmp);
            snprintf(nm, sizeof nm, "theta_t%d_n%d", t, lane);
            const double *th = ocn_arrayset_find(c->in, nm)->data;
            for (int j = 0; j < m; j++) {
                for (int i = 0; i < B; i++) Qth[j] += gi[(size_t)i * m + j] / B;
                Qth[j] += g->weight_decay * th[j];
            }
            if (!rc) minv_apply(&M, Qth, k);
            int zq = (o->zero & OCN_ZERO_QTHX) != 0;
            for (int i = 0; i < B && !rc; i++) {
                minv_apply(&M, qth + (size_t)i * m, tmp);
                double s = zq ? 0.0 : dot(qth + (size_t)i * m, tmp, m), qk = zq ? 0.0 : dot(qth + (size_t)i * m, k, m);
                for (int a = 0; a < n; a++) gx[(size_t)i * n + a] -= qx[(size_t)i * n + a] * S[i] * qk;
                Snew[i] = S[i] - cfac * S[i] * S[i] * s;
                maxsB = fmax(maxsB, cfac * s);
            }
            cum *= M.cond;
            free(M.Minv), free(M.Ai), free(M.Gi), free(Qth), free(tmp);
        } else {
            memcpy(Snew, S, (size_t)B * sizeof *Snew);
        }
        if (!rc) {
            double *Vd = malloc((size_t)B * n * n * sizeof *Vd);
            for (int i = 0; i < B; i++) {
                minS = fmin(minS, Snew[i]);
                for (int a = 0; a < n; a++)
                    for (int b = 0; b < n; b++)
                        Vd[((size_t)i * n + a) * n + b] = Snew[i] * qx[(size_t)i * n + a] * qx[(size_t)i * n + b];
            }
            const ocn_array *Vxx, *Vx, *ka;
            snprintf(nm, sizeof nm, "Vxx_t%d_n%d", t, lane);
            if ((Vxx = ocn_arrayset_find(r, nm))) check_row(c, "P3", nm, Vxx->data, Vd, Vxx->size, size * cum);
            snprintf(nm, sizeof nm, "Vx_t%d_n%d", t, lane);
            if ((Vx = ocn_arrayset_find(r, nm))) check_row(c, "P3", nm, Vx->data, gx, Vx->size, size * cum);
            snprintf(nm, sizeof nm, "k_t%d_n%d", t, lane);
            if (m && (ka = ocn_arrayset_find(r, nm))) check_row(c, "P3", nm, ka->data, k, ka->size, size * cum);
            free(Vd);
        }
        free(z), free(v), free(S);
        z = qx, v = gx, S = Snew;
        free(qth), free(gi), free(av), free(ghv), free(k);
        for (int q = 0; q < np; q++) free(gh[q]);
        free(gh);
    }
    if (!rc) {
        snprintf(nm, sizeof nm, "E1 max s/B lane %d", lane);
        ocn_report_measured(c->rep, "E1", c->name, nm, maxsB);
        snprintf(nm, sizeof nm, "E1 min S lane %d", lane);
        ocn_report_measured(c->rep, "E1", c->name, nm, minS);
    }
out:
    ocn_bp_free(bp);
    free(z), free(v), free(S);
    return rc;
}

int check_p3(check_ctx *c)
{
    ocn_arrayset *r = NULL;
    int rc = check_ref_variant(c, &c->g->opt, &r);
    double size = check_problem_size(c->g);
    for (int lane = 0; lane < c->g->nlanes && !rc; lane++) rc = p3_lane(c, r, lane, size);
    ocn_arrayset_free(r);
    return rc;
}
