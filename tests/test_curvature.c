/* SPEC §5 curvature modes of the reference against their definitions:
 * (C + γI)·M^† = ηI for invertible damped C, rmsprop's diagonal, and the
 * Kronecker product formed here independently of ref_kron. */
#include "util.h"
#include "../reference/ref.h"

#include <float.h>
#include <gsl/gsl_blas.h>
#include <math.h>

static const double U = DBL_EPSILON / 2;

static gsl_matrix *filled(size_t r, size_t c, double seed)
{
    gsl_matrix *M = gsl_matrix_alloc(r, c);
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++) gsl_matrix_set(M, i, j, sin(seed + 1.7 * (double)i + 0.3 * (double)(j * j)));
    return M;
}

/* ‖C·Minv − ηI‖/‖ηI‖ / (u · m · cond) < 30 */
static void expect_inverse(const gsl_matrix *C, const gsl_matrix *Minv, double eta, double cond, const char *what)
{
    size_t m = C->size1;
    gsl_matrix *P = gsl_matrix_alloc(m, m);
    gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, C, Minv, 0.0, P);
    double d = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) {
            double e = gsl_matrix_get(P, i, j) - (i == j ? eta : 0.0);
            d += e * e;
        }
    double ratio = sqrt(d) / (eta * sqrt((double)m)) / (U * (double)m * cond);
    cr_assert_lt(ratio, 30.0, "%s: ratio %g", what, ratio);
    gsl_matrix_free(P);
}

Test(curvature, modes_match_section5)
{
    ref_gsl_quiet();
    const size_t B = 4, na = 3, ng = 2, m = na * ng;
    gsl_matrix *Qthi = filled(B, m, 0.2), *Qthth = gsl_matrix_alloc(m, m), *Minv = gsl_matrix_alloc(m, m);
    gsl_blas_dgemm(CblasTrans, CblasNoTrans, 0.5, Qthi, Qthi, 0.0, Qthth); /* PSD, rank ≤ 4 < 6 */
    for (size_t i = 0; i < m; i++) *gsl_matrix_ptr(Qthth, i, i) += 0.1;
    gsl_matrix *A = filled(na, na, 1.0), *G = filled(ng, ng, 2.0), *A2 = gsl_matrix_alloc(na, na), *G2 = gsl_matrix_alloc(ng, ng);
    gsl_blas_dgemm(CblasNoTrans, CblasTrans, 1.0, A, A, 0.0, A2);
    gsl_blas_dgemm(CblasNoTrans, CblasTrans, 1.0, G, G, 0.0, G2);
    int moff[1] = {0}, mdim[1] = {(int)m}, aoff[2] = {0, (int)na}, goff[2] = {0, (int)ng};
    ref_curv_in in = {Qthth, Qthi, 1, moff, mdim, A2, G2, aoff, goff, NULL, NULL, NULL}; /* no §13 state */
    ocn_optimizer opt = {.game = OCN_GAME_FNE, .lr = 0.7, .damping = 0.05, .eps = 1e-8};
    ocn_error e = {0};
    double cond;

    opt.curvature = OCN_CURV_SGD; /* M = I/η, no γ */
    cr_assert_eq(ref_curvature_pinv(&opt, &in, Minv, &cond, &e), OCN_OK);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) cr_assert_eq(gsl_matrix_get(Minv, i, j), i == j ? 0.7 : 0.0);

    opt.curvature = OCN_CURV_EXACT; /* (Q_θθ + γI)/η */
    cr_assert_eq(ref_curvature_pinv(&opt, &in, Minv, &cond, &e), OCN_OK);
    gsl_matrix *C = gsl_matrix_alloc(m, m);
    gsl_matrix_memcpy(C, Qthth);
    for (size_t i = 0; i < m; i++) *gsl_matrix_ptr(C, i, i) += 0.05;
    expect_inverse(C, Minv, 0.7, cond, "exact");

    opt.zero = OCN_ZERO_MID; /* `zero: Mid` overrides the mode: M = I/η */
    cr_assert_eq(ref_curvature_pinv(&opt, &in, Minv, &cond, &e), OCN_OK);
    cr_assert_eq(gsl_matrix_get(Minv, 2, 2), 0.7);
    cr_assert_eq(gsl_matrix_get(Minv, 2, 3), 0.0);
    opt.zero = 0;

    opt.curvature = OCN_CURV_GN_OUTER; /* mean q qᵀ + γI */
    cr_assert_eq(ref_curvature_pinv(&opt, &in, Minv, &cond, &e), OCN_OK);
    gsl_blas_dgemm(CblasTrans, CblasNoTrans, 1.0 / B, Qthi, Qthi, 0.0, C);
    for (size_t i = 0; i < m; i++) *gsl_matrix_ptr(C, i, i) += 0.05;
    expect_inverse(C, Minv, 0.7, cond, "gn-outer");

    opt.curvature = OCN_CURV_RMSPROP; /* diag(sqrt(mean q²) + ε), no γ */
    cr_assert_eq(ref_curvature_pinv(&opt, &in, Minv, &cond, &e), OCN_OK);
    for (size_t j = 0; j < m; j++) {
        double s = 0;
        for (size_t i = 0; i < B; i++) s += gsl_matrix_get(Qthi, i, j) * gsl_matrix_get(Qthi, i, j);
        double want = 0.7 / (sqrt(s / B) + 1e-8);
        cr_assert_lt(fabs(gsl_matrix_get(Minv, j, j) - want) / want / (U * 4), 30.0);
    }

    opt.curvature = OCN_CURV_KFAC; /* (A + √γI) ⊗ (G + √γI), vec order a ⊗ g (§2) */
    cr_assert_eq(ref_curvature_pinv(&opt, &in, Minv, &cond, &e), OCN_OK);
    double sg = sqrt(0.05);
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < na; j++)
            for (size_t k = 0; k < ng; k++)
                for (size_t l = 0; l < ng; l++)
                    gsl_matrix_set(C, i * ng + k, j * ng + l,
                                   (gsl_matrix_get(A2, i, j) + (i == j) * sg) * (gsl_matrix_get(G2, k, l) + (k == l) * sg));
    expect_inverse(C, Minv, 0.7, cond, "kfac");

    gsl_matrix_free(Qthi), gsl_matrix_free(Qthth), gsl_matrix_free(Minv), gsl_matrix_free(A), gsl_matrix_free(G);
    gsl_matrix_free(A2), gsl_matrix_free(G2), gsl_matrix_free(C);
}
