/* SPEC §4 FNE backward pass for one lane at one stage, in the augmented
 * (whole-batch) form, per-sample quantities scaled as in §1:
 *   Q_x^(i)   = F_x^(i)ᵀ v_x'^(i)
 *   B·Q_XX    = [F_x^(i)ᵀ Ṽ'_ij F_x^(j)] (+ δ_ij v'·F_xx, "full")
 *   Q_θx^(j)  = Σ_i F_θ^(i)ᵀ Ṽ'_ij F_x^(j) (+ v'·F_θx)
 *   Q_θθ      = λI + (1/B) Σ_ij F_θ^(i)ᵀ Ṽ'_ij F_θ^(j) (+ mean v'·F_θθ)
 *   k = M^† Q_θ, K^(i) = M^† Q_θx^(i), v_x^(i) = Q_x^(i) − Q_xθ^(i) k,
 *   Ṽ_ij = B·Q_XX_ij − c Q_xθ^(i) K^(j)   (c = 1/B; persample: c = 1, i = j)
 * blockdiag/persample keep only the diagonal blocks of Ṽ (GT-DDP §4.2). */
#include "fne.h"

#include <gsl/gsl_blas.h>

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

void ref_fne_out_free(ref_fne_out *o, int B)
{
    gsl_matrix_free(o->Qx), gsl_matrix_free(o->QXX), gsl_matrix_free(o->Vx), gsl_matrix_free(o->VXX);
    if (o->Qth) gsl_vector_free(o->Qth);
    if (o->k) gsl_vector_free(o->k);
    if (o->Qthi) gsl_matrix_free(o->Qthi);
    if (o->Qthth) gsl_matrix_free(o->Qthth);
    free_batch(o->Qthx, B);
    free_batch(o->K, B);
}

static void kfac_factors(const ref_model *m, int t, int p, const gsl_matrix *X, const gsl_matrix *vnext,
                         gsl_matrix **A, gsl_matrix **G)
{
    const ocn_game *g = m->g;
    const ocn_player *pl = &g->stages[t].players[p];
    int B = m->B;
    size_t na = pl->kind == OCN_PLAYER_BIAS ? 1 : (size_t)pl->in_dim + 1, ng = (size_t)pl->out_dim;
    *A = gsl_matrix_calloc(na, na);
    *G = gsl_matrix_calloc(ng, ng);
    double *h = malloc(ng * sizeof *h), *a = malloc(na * sizeof *a), *gv = malloc(ng * sizeof *gv);
    for (int i = 0; i < B; i++) {
        const double *x = gsl_matrix_const_ptr(X, (size_t)i, 0);
        ref_player_pre(g, t, pl, m->th[t][p], m->wfix[t][p], x, h);
        const double *z = x + g->block_off[t][pl->in_block];
        for (size_t c = 0; c + 1 < na; c++) a[c] = z[c];
        a[na - 1] = 1.0;
        const double *v = gsl_matrix_const_ptr(vnext, (size_t)i, 0) + g->block_off[t + 1][pl->out_block];
        for (size_t r = 0; r < ng; r++) gv[r] = ref_dact(pl->act, h[r]) * v[r]; /* g = σ'(h) ⊙ v_x' */
        for (size_t r = 0; r < na; r++)
            for (size_t c = 0; c < na; c++) *gsl_matrix_ptr(*A, r, c) += a[r] * a[c] / B;
        for (size_t r = 0; r < ng; r++)
            for (size_t c = 0; c < ng; c++) *gsl_matrix_ptr(*G, r, c) += gv[r] * gv[c] / B;
    }
    free(h), free(a), free(gv);
}

int ref_fne_stage(const ref_model *m, const ocn_optimizer *opt, ocn_fault fault, int t, int lane,
                  const gsl_matrix *X, const gsl_matrix *vnext, const gsl_matrix *VXXnext,
                  ref_fne_out *o, ocn_error *err)
{
    const ocn_game *g = m->g;
    int B = m->B, rc = OCN_OK;
    size_t n = (size_t)g->n[t], n1 = (size_t)g->n[t + 1];
    const ocn_player *pl = ocn_game_lane_player(g, t, lane);
    int p = pl ? (int)(pl - g->stages[t].players) : -1;
    if (pl && !pl->m) p = -1; /* act player: a parameter-free lane, no gains */
    size_t mm = p >= 0 ? (size_t)pl->m : 0;
    int full = opt->dynamics == OCN_DYN_FULL;
    o->p = p;
    o->cond = 1.0;

    gsl_matrix **Fx = alloc_batch(B, n1, n), **Fth = p >= 0 ? alloc_batch(B, n1, mm) : NULL;
    gsl_matrix **Hxx = alloc_batch(B, n, n), **Hthx = p >= 0 ? alloc_batch(B, mm, n) : NULL;
    gsl_matrix *Hthth = p >= 0 ? gsl_matrix_calloc(mm, mm) : NULL;
    for (int i = 0; i < B; i++) {
        const double *x = gsl_matrix_const_ptr(X, (size_t)i, 0);
        ref_jac_x(m, t, x, Fx[i]);
        if (p >= 0) ref_jac_theta(m, t, p, x, Fth[i]);
        if (full)
            ref_second_order(m, t, p, x, gsl_matrix_const_ptr(vnext, (size_t)i, 0), Hxx[i],
                             p >= 0 ? Hthx[i] : NULL, Hthth);
    }

    /* Q_x and B·Q_XX */
    o->Qx = gsl_matrix_calloc((size_t)B, n);
    o->QXX = gsl_matrix_calloc((size_t)B * n, (size_t)B * n);
    gsl_matrix *T1 = gsl_matrix_alloc(n, n1); /* F_x^(i)ᵀ Ṽ'_ij */
    for (int i = 0; i < B; i++) {
        gsl_vector_const_view vi = gsl_matrix_const_row(vnext, (size_t)i);
        gsl_vector_view qi = gsl_matrix_row(o->Qx, (size_t)i);
        gsl_blas_dgemv(CblasTrans, 1.0, Fx[i], &vi.vector, 0.0, &qi.vector);
        for (int j = 0; j < B; j++) {
            gsl_matrix_const_view Vij = gsl_matrix_const_submatrix(VXXnext, (size_t)i * n1, (size_t)j * n1, n1, n1);
            gsl_matrix_view Qij = gsl_matrix_submatrix(o->QXX, (size_t)i * n, (size_t)j * n, n, n);
            ref_gemm(1, 0, 1.0, Fx[i], &Vij.matrix, 0.0, T1);
            ref_gemm(0, 0, 1.0, T1, Fx[j], 0.0, &Qij.matrix);
            if (i == j && full) gsl_matrix_add(&Qij.matrix, Hxx[i]);
        }
    }
    gsl_matrix_free(T1);

    if (p >= 0) {
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
            gsl_blas_dgemv(CblasTrans, 1.0, Fth[i], &vi.vector, 0.0, &gi.vector);
            gsl_vector_add(o->Qth, &gi.vector);
            for (int j = 0; j < B; j++) {
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
        gsl_vector_const_view th = gsl_vector_const_view_array(m->th[t][p], mm);
        gsl_blas_daxpy(lam, &th.vector, o->Qth);           /* ℓ_θ = λθ */
        if (full) {
            gsl_matrix_scale(Hthth, 1.0 / B);
            gsl_matrix_add(o->Qthth, Hthth);
        }
        for (size_t d = 0; d < mm; d++) *gsl_matrix_ptr(o->Qthth, d, d) += lam; /* ℓ_θθ = λI */
        if (opt->zero & OCN_ZERO_QTHX)
            for (int i = 0; i < B; i++) gsl_matrix_set_zero(o->Qthx[i]);

        /* §5 curvature and gains */
        gsl_matrix *Minv = gsl_matrix_calloc(mm, mm), *A = NULL, *G = NULL;
        if (opt->curvature == OCN_CURV_KFAC || opt->curvature == OCN_CURV_COOP_KFAC)
            kfac_factors(m, t, p, X, vnext, &A, &G);
        ref_curv_in ci = {o->Qthth, o->Qthi, A, G};
        rc = ref_curvature_pinv(opt, &ci, Minv, &o->cond, err);
        if (A) gsl_matrix_free(A), gsl_matrix_free(G);
        if (!rc) {
            gsl_blas_dgemv(CblasNoTrans, 1.0, Minv, o->Qth, 0.0, o->k);
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
    if (!rc && p >= 0) {
        for (int i = 0; i < B; i++) {
            gsl_vector_view vi = gsl_matrix_row(o->Vx, (size_t)i);
            gsl_blas_dgemv(CblasTrans, -1.0, o->Qthx[i], o->k, 1.0, &vi.vector);
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
    if (rc) ocn_error_prefix(err, "stage %d lane %d", t, lane);
    return rc;
}
