/* SPEC §4 backward pass of one stage in the augmented (whole-batch) form,
 * per-sample quantities scaled as in §1.  With F_θ the Jacobian of the
 * (joint) parameter of the players in the expansion:
 *   Q_x^(i)   = F_x^(i)ᵀ v_x'^(i)
 *   B·Q_XX    = [F_x^(i)ᵀ Ṽ'_ij F_x^(j)] (+ δ_ij v'·F_xx, "full")
 *   Q_θx^(j)  = Σ_i F_θ^(i)ᵀ Ṽ'_ij F_x^(j) (+ v'·F_θx)
 *   Q_θθ      = λI + (1/B) Σ_ij F_θ^(i)ᵀ Ṽ'_ij F_θ^(j) (+ mean v'·F_θθ)
 *   k = M^† Q_θ, K^(i) = M^† Q_θx^(i), v_x^(i) = Q_x^(i) − Q_xθ^(i) k,
 *   Ṽ_ij = B·Q_XX_ij − c Q_xθ^(i) K^(j)   (c = 1/B; persample: c = 1, i = j)
 * blockdiag/persample keep only the diagonal blocks of Ṽ (GT-DDP §4.2).
 * FNE: one player (Q^{t,n} of lane n); GR: all players jointly (P, W). */
#include "expand.h"

#include <math.h>
#include <stdlib.h>

static gsl_matrix **alloc_batch(int B, size_t r, size_t c)
{
    gsl_matrix **a = calloc((size_t)B, sizeof *a);
    for (int i = 0; a && i < B; i++) a[i] = gsl_matrix_calloc(r, c);
    return a;
}

static void free_batch(gsl_matrix **a, int B)
{
    if (!a) return;
    for (int i = 0; i < B; i++) gsl_matrix_free(a[i]);
    free(a);
}

void ref_stage_out_free(ref_stage_out *o, int B)
{
    gsl_matrix_free(o->Qx), gsl_matrix_free(o->QXX), gsl_matrix_free(o->Vx), gsl_matrix_free(o->VXX);
    if (o->Qth) gsl_vector_free(o->Qth);
    if (o->k) gsl_vector_free(o->k);
    if (o->Qthi) gsl_matrix_free(o->Qthi);
    if (o->Qthth) gsl_matrix_free(o->Qthth);
    free_batch(o->Qthx, B);
    free_batch(o->K, B);
}

/* §5/§6 KFAC statistics on the embedded parameter: A_ww = mean a aᵀ with
 * a = [a_1; …; a_np], a_u = [z_u; 1] ([1] for a bias player); G_ww likewise
 * with g_u = σ'(h_u) ⊙ v_x'[out_u].  Per-player KFAC uses the diagonal blocks. */
static void kfac_factors(const ref_model *m, int t, const int *players, int np, const gsl_matrix *X,
                         const gsl_matrix *vnext, int *aoff, int *goff, gsl_matrix **A, gsl_matrix **G)
{
    const ocn_game *g = m->g;
    int B = m->B, na = 0, ng = 0;
    for (int u = 0; u < np; u++) {
        const ocn_player *pl = &g->stages[t].players[players[u]];
        aoff[u] = na, goff[u] = ng;
        na += pl->kind == OCN_PLAYER_BIAS ? 1 : pl->in_dim + 1;
        ng += pl->out_dim;
    }
    aoff[np] = na, goff[np] = ng;
    *A = gsl_matrix_calloc((size_t)na, (size_t)na);
    *G = gsl_matrix_calloc((size_t)ng, (size_t)ng);
    double *a = malloc((size_t)na * sizeof *a), *gv = malloc((size_t)ng * sizeof *gv);
    double *h = malloc((size_t)ng * sizeof *h);
    for (int i = 0; i < B; i++) {
        const double *x = gsl_matrix_const_ptr(X, (size_t)i, 0);
        for (int u = 0; u < np; u++) {
            const ocn_player *pl = &g->stages[t].players[players[u]];
            ref_player_pre(g, t, pl, m->th[t][players[u]], m->wfix[t][players[u]], x, h);
            const double *z = x + g->block_off[t][pl->in_block];
            int nau = aoff[u + 1] - aoff[u];
            for (int c = 0; c + 1 < nau; c++) a[aoff[u] + c] = z[c];
            a[aoff[u] + nau - 1] = 1.0;
            const double *v = gsl_matrix_const_ptr(vnext, (size_t)i, 0) + g->block_off[t + 1][pl->out_block];
            for (int r = 0; r < pl->out_dim; r++) gv[goff[u] + r] = ref_dact(pl->act, h[r]) * v[r];
        }
        for (int r = 0; r < na; r++)
            for (int c = 0; c < na; c++) *gsl_matrix_ptr(*A, (size_t)r, (size_t)c) += a[r] * a[c] / B;
        for (int r = 0; r < ng; r++)
            for (int c = 0; c < ng; c++) *gsl_matrix_ptr(*G, (size_t)r, (size_t)c) += gv[r] * gv[c] / B;
    }
    free(a), free(gv), free(h);
}

/* F_θ of the joint parameter: the players' Jacobians side by side. */
static void joint_jac_theta(const ref_model *m, int t, const ref_stage_out *o, const double *x, gsl_matrix *F)
{
    for (int u = 0; u < o->np; u++) {
        int mu = m->g->stages[t].players[o->p[u]].m;
        gsl_matrix *Fu = gsl_matrix_alloc(F->size1, (size_t)mu);
        ref_jac_theta(m, t, o->p[u], x, Fu);
        gsl_matrix_view dst = gsl_matrix_submatrix(F, 0, (size_t)o->moff[u], F->size1, (size_t)mu);
        gsl_matrix_memcpy(&dst.matrix, Fu);
        gsl_matrix_free(Fu);
    }
}

/* "full": v'·F_xx summed over all players; v'·F_θx, v'·F_θθ per player of the
 * expansion (a player's f depends on its own θ only: no cross-player block). */
static void joint_second_order(const ref_model *m, int t, const ref_stage_out *o, const double *x, const double *v,
                               gsl_matrix *Hxx, gsl_matrix *Hthx, gsl_matrix *Hthth)
{
    ref_second_order_x(m, t, x, v, Hxx);
    for (int u = 0; u < o->np; u++) {
        size_t mu = (size_t)m->g->stages[t].players[o->p[u]].m;
        gsl_matrix_view hx = gsl_matrix_submatrix(Hthx, (size_t)o->moff[u], 0, mu, Hthx->size2);
        gsl_matrix_view hh = gsl_matrix_submatrix(Hthth, (size_t)o->moff[u], (size_t)o->moff[u], mu, mu);
        ref_second_order_player(m, t, o->p[u], x, v, &hx.matrix, &hh.matrix);
    }
}

int ref_stage_backward(const ref_model *m, const ocn_optimizer *opt, ocn_fault fault, int t, const int *players,
                       int np, const gsl_matrix *X, const gsl_matrix *vnext, const gsl_matrix *VXXnext,
                       ref_stage_out *o, ocn_error *err)
{
    const ocn_game *g = m->g;
    int B = m->B, rc = OCN_OK;
    size_t n = (size_t)g->n[t], n1 = (size_t)g->n[t + 1];
    int full = opt->dynamics == OCN_DYN_FULL, aug = opt->value == OCN_VALUE_AUGMENTED;
    o->np = np;
    o->m = 0;
    o->cond = 1.0;
    for (int u = 0; u < np; u++) {
        o->p[u] = players[u];
        o->moff[u] = o->m;
        o->m += g->stages[t].players[players[u]].m;
    }
    size_t mm = (size_t)o->m;

    gsl_matrix **Fx = alloc_batch(B, n1, n), **Fth = np ? alloc_batch(B, n1, mm) : NULL;
    gsl_matrix **Hxx = alloc_batch(B, n, n), **Hthx = np ? alloc_batch(B, mm, n) : NULL;
    gsl_matrix *Hthth = np ? gsl_matrix_calloc(mm, mm) : NULL;
    for (int i = 0; i < B; i++) {
        const double *x = gsl_matrix_const_ptr(X, (size_t)i, 0);
        ref_jac_x(m, t, x, Fx[i]);
        if (np) joint_jac_theta(m, t, o, x, Fth[i]);
        if (full) joint_second_order(m, t, o, x, gsl_matrix_const_ptr(vnext, (size_t)i, 0), Hxx[i], np ? Hthx[i] : NULL, Hthth);
    }

    /* Q_x and B·Q_XX */
    o->Qx = gsl_matrix_calloc((size_t)B, n);
    o->QXX = gsl_matrix_calloc((size_t)B * n, (size_t)B * n);
    gsl_matrix *T1 = gsl_matrix_alloc(n, n1); /* F_x^(i)ᵀ Ṽ'_ij */
    for (int i = 0; i < B; i++) {
        gsl_vector_const_view vi = gsl_matrix_const_row(vnext, (size_t)i);
        gsl_vector_view qi = gsl_matrix_row(o->Qx, (size_t)i);
        ref_gemv(1, 1.0, Fx[i], &vi.vector, 0.0, &qi.vector);
        for (int j = 0; j < B; j++) {
            if (i != j && !aug) continue; /* blockdiag/persample: Ṽ'_ij = 0 exactly off the diagonal */
            gsl_matrix_const_view Vij = gsl_matrix_const_submatrix(VXXnext, (size_t)i * n1, (size_t)j * n1, n1, n1);
            gsl_matrix_view Qij = gsl_matrix_submatrix(o->QXX, (size_t)i * n, (size_t)j * n, n, n);
            ref_gemm(1, 0, 1.0, Fx[i], &Vij.matrix, 0.0, T1);
            ref_gemm(0, 0, 1.0, T1, Fx[j], 0.0, &Qij.matrix);
            if (i == j && full) gsl_matrix_add(&Qij.matrix, Hxx[i]);
        }
    }
    gsl_matrix_free(T1);
    /* §10 rev. 2: the stage's expansion terms are perturbed as formed, so
     * cancellation later in the pass (V = Q − correction) is measured */
    ocn_perturb_mat(m->pert, o->Qx->data, o->Qx->size1, o->Qx->size2, o->Qx->tda);
    ocn_perturb_sym(m->pert, o->QXX->data, o->QXX->size1, o->QXX->tda);

    if (np) {
        o->Qth = gsl_vector_calloc(mm);
        o->Qthi = gsl_matrix_calloc((size_t)B, mm);
        o->Qthx = alloc_batch(B, mm, n);
        o->Qthth = gsl_matrix_calloc(mm, mm);
        o->k = gsl_vector_calloc(mm);
        o->K = alloc_batch(B, mm, n);
        gsl_matrix *T2 = gsl_matrix_alloc(mm, n1), *T3 = gsl_matrix_alloc(mm, mm);
        for (int i = 0; i < B; i++) {
            gsl_vector_const_view vi = gsl_matrix_const_row(vnext, (size_t)i);
            gsl_vector_view gi = gsl_matrix_row(o->Qthi, (size_t)i);
            ref_gemv(1, 1.0, Fth[i], &vi.vector, 0.0, &gi.vector);
            gsl_vector_add(o->Qth, &gi.vector);
            for (int j = 0; j < B; j++) {
                if (i != j && !aug) continue;
                gsl_matrix_const_view Vij = gsl_matrix_const_submatrix(VXXnext, (size_t)i * n1, (size_t)j * n1, n1, n1);
                ref_gemm(1, 0, 1.0, Fth[i], &Vij.matrix, 0.0, T2);
                ref_gemm(0, 0, 1.0, T2, Fx[j], 1.0, o->Qthx[j]);
                ref_gemm(0, 0, 1.0, T2, Fth[j], 0.0, T3);
                gsl_matrix_scale(T3, 1.0 / B);
                gsl_matrix_add(o->Qthth, T3);
            }
            if (full) gsl_matrix_add(o->Qthx[i], Hthx[i]);
        }
        gsl_matrix_free(T2), gsl_matrix_free(T3);
        gsl_vector_scale(o->Qth, 1.0 / B);
        double lam = g->weight_decay;
        for (int u = 0; u < np; u++) { /* ℓ_θ = λθ per player */
            int mu = g->stages[t].players[o->p[u]].m;
            gsl_vector_const_view th = gsl_vector_const_view_array(m->th[t][o->p[u]], (size_t)mu);
            gsl_vector_view dst = gsl_vector_subvector(o->Qth, (size_t)o->moff[u], (size_t)mu);
            ref_axpy(lam, &th.vector, &dst.vector);
        }
        if (full) {
            gsl_matrix_scale(Hthth, 1.0 / B);
            gsl_matrix_add(o->Qthth, Hthth);
        }
        for (size_t d = 0; d < mm; d++) *gsl_matrix_ptr(o->Qthth, d, d) += lam; /* ℓ_θθ = λI */
        /* `zero` (§12): FNE Qthx / GR Pux zero Q_θx; GR Puv zeroes cross-player blocks */
        if (opt->zero & (OCN_ZERO_QTHX | OCN_ZERO_PUX))
            for (int i = 0; i < B; i++) gsl_matrix_set_zero(o->Qthx[i]);
        if (opt->zero & OCN_ZERO_PUV)
            for (int u = 0; u < np; u++)
                for (int v = 0; v < np; v++)
                    if (u != v) {
                        gsl_matrix_view blk = gsl_matrix_submatrix(o->Qthth, (size_t)o->moff[u], (size_t)o->moff[v],
                                                                   (size_t)g->stages[t].players[o->p[u]].m,
                                                                   (size_t)g->stages[t].players[o->p[v]].m);
                        gsl_matrix_set_zero(&blk.matrix);
                    }

        /* §10 rev. 2: θ terms after λ and `zero`, in the order formed */
        ocn_perturb_vec(m->pert, o->Qth->data, mm);
        ocn_perturb_mat(m->pert, o->Qthi->data, o->Qthi->size1, o->Qthi->size2, o->Qthi->tda);
        for (int i = 0; i < B; i++) ocn_perturb_mat(m->pert, o->Qthx[i]->data, mm, n, o->Qthx[i]->tda);
        ocn_perturb_sym(m->pert, o->Qthth->data, mm, o->Qthth->tda);

        /* §5/§6 curvature and gains */
        gsl_matrix *Minv = gsl_matrix_calloc(mm, mm), *A = NULL, *G = NULL;
        int aoff[REF_MAX_PLAYERS + 1], goff[REF_MAX_PLAYERS + 1], mdim[REF_MAX_PLAYERS];
        for (int u = 0; u < np; u++) mdim[u] = g->stages[t].players[o->p[u]].m;
        if (opt->curvature == OCN_CURV_KFAC || opt->curvature == OCN_CURV_COOP_KFAC)
            kfac_factors(m, t, o->p, np, X, vnext, aoff, goff, &A, &G);
        ref_curv_in ci = {o->Qthth, o->Qthi, np, o->moff, mdim, A, G, aoff, goff, m->pert};
        ocn_optimizer fo = *opt;
        if (fault == OCN_FAULT_PUV_DROP && opt->game == OCN_GAME_GR) fo.zero |= OCN_ZERO_PUV_CURVATURE_ONLY;
        rc = ref_curvature_pinv(&fo, &ci, Minv, &o->cond, err);
        if (A) gsl_matrix_free(A), gsl_matrix_free(G);
        if (!rc) {
            ref_gemv(0, 1.0, Minv, o->Qth, 0.0, o->k);
            for (int i = 0; i < B; i++) ref_gemm(0, 0, 1.0, Minv, o->Qthx[i], 0.0, o->K[i]);
            if (fault == OCN_FAULT_k_PERTURB) gsl_vector_scale(o->k, 1.0 + 1e-6);
            for (int i = 0; i < B; i++) {
                if (fault == OCN_FAULT_K_SIGN) gsl_matrix_scale(o->K[i], -1.0);
                if (fault == OCN_FAULT_K_PERTURB) gsl_matrix_scale(o->K[i], 1.0 + 1e-6);
            }
        }
        gsl_matrix_free(Minv);
    }

    /* value: v_x^(i) = Q_x^(i) − Q_xθ^(i) k;  Ṽ_ij = Q̃_ij − c Q_xθ^(i) K^(j) */
    o->Vx = gsl_matrix_alloc((size_t)B, n);
    o->VXX = gsl_matrix_alloc((size_t)B * n, (size_t)B * n);
    gsl_matrix_memcpy(o->Vx, o->Qx);
    gsl_matrix_memcpy(o->VXX, o->QXX);
    if (!rc && np) {
        for (int i = 0; i < B; i++) {
            gsl_vector_view vi = gsl_matrix_row(o->Vx, (size_t)i);
            ref_gemv(1, -1.0, o->Qthx[i], o->k, 1.0, &vi.vector);
            for (int j = 0; j < B; j++) {
                if (i != j && opt->value != OCN_VALUE_AUGMENTED) continue;
                double c = opt->value == OCN_VALUE_PERSAMPLE ? 1.0 : 1.0 / B;
                gsl_matrix_view Vij = gsl_matrix_submatrix(o->VXX, (size_t)i * n, (size_t)j * n, n, n);
                ref_gemm(1, 0, -c, o->Qthx[i], o->K[j], 1.0, &Vij.matrix);
            }
        }
    }
    if (opt->value != OCN_VALUE_AUGMENTED) /* keep only the diagonal blocks */
        for (int i = 0; i < B; i++)
            for (int j = 0; j < B; j++)
                if (i != j) {
                    gsl_matrix_view Vij = gsl_matrix_submatrix(o->VXX, (size_t)i * n, (size_t)j * n, n, n);
                    gsl_matrix_set_zero(&Vij.matrix);
                }
    free_batch(Fx, B), free_batch(Fth, B), free_batch(Hxx, B), free_batch(Hthx, B);
    if (Hthth) gsl_matrix_free(Hthth);
    return rc;
}
