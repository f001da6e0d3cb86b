/* SPEC §5 curvature modes and §6 cooperative KFAC, formed densely:
 * M = (C + γI)/η unless the row says otherwise, M^† = η (C + γI)^†.
 * Kronecker products are formed explicitly (that is the point of a
 * reference), the pinv rule applied per factor: (A ⊗ G)^† = A^† ⊗ G^†.
 * For a joint (GR) parameter every mode is formed on θ_t = [θ_1; …]; kfac is
 * block-diagonal over players; coop-kfac keeps the cross-player factor
 * blocks (§6 embedding): its M^† has blocks A^†_uv ⊗ G^†_uv, because the
 * diagonal blocks of G_ww^† blockdiag(mat P_v) A_ww^† are Σ_v G^†_uv mat(P_v) A^†_vu. */
#include "ref.h"

#include <float.h>
#include <math.h>

/* (C + γI)^†·η; §10 rev. 2: C + γI is perturbed as handed to the pseudo-inverse,
 * at the normwise scale of a solver's backward error (docs/decisions.md
 * "Matrices handed to a factorisation: normwise") */
static int damped_pinv(const gsl_matrix *C, double gamma, double eta, ocn_perturb *pert, gsl_matrix *Minv,
                       double *cond, ocn_error *err)
{
    gsl_matrix *D = ref_matrix_alloc(C->size1, C->size2);
    if (!D) return ocn_fail(err, OCN_ENOMEM, "curvature: out of memory allocating the damped %zu x %zu matrix", C->size1, C->size2);
    gsl_matrix_memcpy(D, C);
    for (size_t i = 0; i < D->size1; i++) { /* symmetric by construction: made exactly so (ref_pinv_m's eigen path) */
        *gsl_matrix_ptr(D, i, i) += gamma;
        for (size_t j = 0; j < i; j++) {
            double x = 0.5 * (gsl_matrix_get(D, i, j) + gsl_matrix_get(D, j, i));
            gsl_matrix_set(D, i, j, x), gsl_matrix_set(D, j, i, x);
        }
    }
    ocn_perturb_handed(pert, D->data, D->size1, D->tda);
    int rc = ref_pinv_m(D, Minv, cond, err);
    gsl_matrix_scale(Minv, eta);
    gsl_matrix_free(D);
    return rc;
}

/* GR `zero: Puv` and the block-diagonal modes: drop cross-player blocks of C. */
static void zero_cross_blocks(const ref_curv_in *in, gsl_matrix *C)
{
    for (int u = 0; u < in->np; u++)
        for (int v = 0; v < in->np; v++)
            if (u != v) {
                gsl_matrix_view b = gsl_matrix_submatrix(C, (size_t)in->moff[u], (size_t)in->moff[v],
                                                         (size_t)in->mdim[u], (size_t)in->mdim[v]);
                gsl_matrix_set_zero(&b.matrix);
            }
}

/* M^† block (u, v) = η · Ai[u, v] ⊗ Gi[u, v] (factor blocks at aoff/goff). */
static void kron_blocks(const ref_curv_in *in, const gsl_matrix *Ai, const gsl_matrix *Gi, int diag_only, double eta,
                        gsl_matrix *Minv)
{
    gsl_matrix_set_zero(Minv);
    for (int u = 0; u < in->np; u++)
        for (int v = 0; v < in->np; v++) {
            if (diag_only && u != v) continue;
            size_t au = (size_t)(in->aoff[u + 1] - in->aoff[u]), av = (size_t)(in->aoff[v + 1] - in->aoff[v]);
            size_t gu = (size_t)(in->goff[u + 1] - in->goff[u]), gv = (size_t)(in->goff[v + 1] - in->goff[v]);
            gsl_matrix_const_view a = gsl_matrix_const_submatrix(Ai, (size_t)in->aoff[u], (size_t)in->aoff[v], au, av);
            gsl_matrix_const_view g = gsl_matrix_const_submatrix(Gi, (size_t)in->goff[u], (size_t)in->goff[v], gu, gv);
            gsl_matrix_view dst = gsl_matrix_submatrix(Minv, (size_t)in->moff[u], (size_t)in->moff[v], au * gu, av * gv);
            ref_kron(&a.matrix, &g.matrix, &dst.matrix);
        }
    gsl_matrix_scale(Minv, eta);
}

/* Pseudo-inverses of the damped factors A + √γI, G + √γI into Ai, Gi
 * (zero-filled, na x na and ng x ng): coop on the whole embedded factors
 * (§6), else each player's diagonal blocks (§5). */
static int kfac_inverses(const ocn_optimizer *opt, const ref_curv_in *in, const gsl_matrix *A, const gsl_matrix *G,
                         int coop, gsl_matrix *Ai, gsl_matrix *Gi, double *cond, ocn_error *err)
{
    double sg = sqrt(opt->damping);
    int rc = OCN_OK;
    *cond = 1.0;
    gsl_matrix_set_zero(Ai), gsl_matrix_set_zero(Gi);
    if (coop) { /* §6: √γ I added to A_ww and G_ww, factor-wise pinv */
        double ca, cg;
        rc = damped_pinv(A, sg, 1.0, in->pert, Ai, &ca, err);
        if (!rc) rc = damped_pinv(G, sg, 1.0, in->pert, Gi, &cg, err);
        *cond = ca * cg;
    } else { /* §5: each player's own factors (A_u + √γ I) ⊗ (G_u + √γ I) */
        for (int u = 0; u < in->np && !rc; u++) {
            size_t au = (size_t)(in->aoff[u + 1] - in->aoff[u]), gu = (size_t)(in->goff[u + 1] - in->goff[u]);
            gsl_matrix_const_view a = gsl_matrix_const_submatrix(A, (size_t)in->aoff[u], (size_t)in->aoff[u], au, au);
            gsl_matrix_const_view g = gsl_matrix_const_submatrix(G, (size_t)in->goff[u], (size_t)in->goff[u], gu, gu);
            gsl_matrix_view ai = gsl_matrix_submatrix(Ai, (size_t)in->aoff[u], (size_t)in->aoff[u], au, au);
            gsl_matrix_view gi = gsl_matrix_submatrix(Gi, (size_t)in->goff[u], (size_t)in->goff[u], gu, gu);
            double ca, cg;
            rc = damped_pinv(&a.matrix, sg, 1.0, in->pert, &ai.matrix, &ca, err);
            if (!rc) rc = damped_pinv(&g.matrix, sg, 1.0, in->pert, &gi.matrix, &cg, err);
            *cond = fmax(*cond, ca * cg);
        }
    }
    return rc;
}

/* §13 exponential moving average, before damping: S = ρ S_prev + (1 − ρ) Ŝ
 * (S = Ŝ at the state's first step: no bias correction).  The decay-drop
 * fault leaves out the (1 − ρ), a state bug the trajectory checks must catch. */
static void ema(const ref_curv_in *in, double rho, int init, double *S, const double *Shat, size_t n)
{
    double w = in->traj && in->traj->fault == OCN_FAULT_DECAY_DROP ? 1.0 : 1.0 - rho;
    for (size_t i = 0; i < n; i++) S[i] = init ? rho * S[i] + w * Shat[i] : Shat[i];
}

static int state_nomem(ocn_error *err)
{
    return ocn_fail(err, OCN_ENOMEM, "out of memory allocating the §13 optimizer state");
}

static int kfac_pinv(const ocn_optimizer *opt, const ref_curv_in *in, int coop, gsl_matrix *Minv, double *cond,
                     ocn_error *err)
{
    size_t na = in->A->size1, ng = in->G->size1;
    ref_curv_state *st = in->st;
    int rc = OCN_OK;
    *cond = 1.0;
    if (st) { /* §13: average the factors; refresh the pseudo-inverses at s ≡ 0 (mod T_r) */
        if (!st->A) {
            st->A = ref_matrix_calloc(na, na), st->G = ref_matrix_calloc(ng, ng);
            st->Ai = ref_matrix_calloc(na, na), st->Gi = ref_matrix_calloc(ng, ng);
            if (!st->A || !st->G || !st->Ai || !st->Gi) return state_nomem(err);
        }
        st->coop = coop;
        for (int u = 0; u <= in->np; u++) st->aoff[u] = in->aoff[u], st->goff[u] = in->goff[u];
        ema(in, opt->stat_decay, st->init, st->A->data, in->A->data, na * na); /* tda = size2: contiguous */
        ema(in, opt->stat_decay, st->init, st->G->data, in->G->data, ng * ng);
        int T = opt->refresh_every, s = in->traj->step;
        int phase = in->traj->fault == OCN_FAULT_REFRESH_SHIFT ? 1 % T : 0;
        if (!st->init || s % T == phase) rc = kfac_inverses(opt, in, st->A, st->G, coop, st->Ai, st->Gi, cond, err);
        st->init = 1;
        if (!rc) kron_blocks(in, st->Ai, st->Gi, !coop, opt->lr, Minv);
        return rc;
    }
    gsl_matrix *Ai = ref_matrix_calloc(na, na), *Gi = ref_matrix_calloc(ng, ng);
    if (!Ai || !Gi) {
        if (Ai) gsl_matrix_free(Ai);
        if (Gi) gsl_matrix_free(Gi);
        return ocn_fail(err, OCN_ENOMEM, "kfac: out of memory allocating the factor inverses (%zu x %zu and %zu x %zu)", na,
                        na, ng, ng);
    }
    rc = kfac_inverses(opt, in, in->A, in->G, coop, Ai, Gi, cond, err);
    if (!rc) kron_blocks(in, Ai, Gi, !coop, opt->lr, Minv);
    gsl_matrix_free(Ai), gsl_matrix_free(Gi);
    return rc;
}

void ref_curv_state_free(ref_curv_state *s)
{
    if (!s) return;
    gsl_matrix_free(s->A), gsl_matrix_free(s->G), gsl_matrix_free(s->Ai), gsl_matrix_free(s->Gi);
    gsl_vector_free(s->v);
    s->A = s->G = s->Ai = s->Gi = NULL;
    s->v = NULL;
    s->init = 0;
}

int ref_curvature_pinv(const ocn_optimizer *opt, const ref_curv_in *in, gsl_matrix *Minv, double *cond,
                       ocn_error *err)
{
    size_t m = Minv->size1, B = in->Qthi->size1;
    double eta = opt->lr, gamma = opt->damping;
    if ((opt->zero & OCN_ZERO_MID) || opt->curvature == OCN_CURV_SGD) { /* M = I/η */
        gsl_matrix_set_identity(Minv);
        gsl_matrix_scale(Minv, eta);
        *cond = 1.0;
        return OCN_OK;
    }
    if (opt->curvature == OCN_CURV_KFAC || opt->curvature == OCN_CURV_COOP_KFAC) {
        /* §6: under FNE, with zero Puv, or on a one-player stage coop-kfac is kfac */
        int coop = opt->curvature == OCN_CURV_COOP_KFAC && opt->game == OCN_GAME_GR && in->np > 1 &&
                   !(opt->zero & OCN_ZERO_PUV);
        return kfac_pinv(opt, in, coop, Minv, cond, err);
    }
    int rc = OCN_OK;
    gsl_matrix *C = ref_matrix_calloc(m, m);
    if (!C) return ocn_fail(err, OCN_ENOMEM, "curvature: out of memory allocating the %zu x %zu matrix C", m, m);
    switch (opt->curvature) {
    case OCN_CURV_EXACT: /* Q_θθ / P_θθ (already after `zero`) */
        gsl_matrix_memcpy(C, in->Qthth);
        if (opt->zero & OCN_ZERO_PUV_CURVATURE_ONLY) zero_cross_blocks(in, C);
        rc = damped_pinv(C, gamma, eta, in->pert, Minv, cond, err);
        break;
    case OCN_CURV_RMSPROP: /* diag(sqrt(mean_i Q_θ^(i) ⊙ Q_θ^(i)) + ε), no γ */
        if (in->st && !in->st->v && !(in->st->v = ref_vector_calloc(m))) {
            rc = state_nomem(err);
            break;
        }
        for (size_t j = 0; j < m; j++) {
            double s = 0;
            for (size_t i = 0; i < B; i++) s += gsl_matrix_get(in->Qthi, i, j) * gsl_matrix_get(in->Qthi, i, j);
            double vhat = s / (double)B;
            if (in->st) { /* §13: the square root and ε are applied to the average, as in RMSprop */
                ema(in, opt->stat_decay, in->st->init, gsl_vector_ptr(in->st->v, j), &vhat, 1);
                vhat = gsl_vector_get(in->st->v, j);
            }
            gsl_matrix_set(C, j, j, sqrt(vhat) + opt->eps);
        }
        if (in->st) in->st->init = 1;
        ocn_perturb_sym(in->pert, C->data, m, C->tda); /* §10: the diagonal before its inverse (zeros stay zero) */
        { /* a diagonal C: its pseudo-inverse is elementwise, same §5 rcond rule */
            double mx = 0, mn = INFINITY;
            for (size_t j = 0; j < m; j++) mx = fmax(mx, fabs(gsl_matrix_get(C, j, j)));
            gsl_matrix_set_zero(Minv);
            for (size_t j = 0; j < m; j++) {
                double d = gsl_matrix_get(C, j, j);
                if (fabs(d) > (double)m * DBL_EPSILON * mx) {
                    gsl_matrix_set(Minv, j, j, eta / d);
                    mn = fmin(mn, fabs(d));
                }
            }
            *cond = mx > 0 && isfinite(mn) ? mx / mn : 1.0;
        }
        break;
    case OCN_CURV_GN_OUTER: /* mean_i Q_θ^(i) Q_θ^(i)ᵀ on the joint per-sample gradient */
        if (ref_gemm(1, 0, 1.0 / (double)B, in->Qthi, in->Qthi, 0.0, C)) {
            rc = ocn_fail(err, OCN_ENOMEM, "gn-outer: out of memory allocating the workspace of mean_i Q_θ^(i) Q_θ^(i)ᵀ");
            break;
        }
        if (opt->zero & OCN_ZERO_PUV) zero_cross_blocks(in, C);
        rc = damped_pinv(C, gamma, eta, in->pert, Minv, cond, err);
        break;
    default:
        rc = ocn_fail(err, OCN_EUNSUPPORTED, "curvature mode not handled");
    }
    gsl_matrix_free(C);
    return rc;
}
