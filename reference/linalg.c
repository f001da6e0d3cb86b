/* Dense linear algebra of the reference (GSL): SVD pseudo-inverse with the
 * SPEC §5 rcond rule, explicit Kronecker product, GEMM wrapper. */
#include "ref.h"

#include <float.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>

void ref_gsl_quiet(void)
{
    /* GSL's default handler calls abort(); errors are returned instead.  The
     * handler is process-wide in GSL; setting it is idempotent. */
    gsl_set_error_handler_off();
}

void ref_gemm(int ta, int tb, double alpha, const gsl_matrix *A, const gsl_matrix *B, double beta, gsl_matrix *C)
{
    gsl_blas_dgemm(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, alpha, A, B, beta, C);
}

void ref_kron(const gsl_matrix *A, const gsl_matrix *G, gsl_matrix *out)
{
    for (size_t i = 0; i < A->size1; i++)
        for (size_t j = 0; j < A->size2; j++)
            for (size_t k = 0; k < G->size1; k++)
                for (size_t l = 0; l < G->size2; l++)
                    gsl_matrix_set(out, i * G->size1 + k, j * G->size2 + l,
                                   gsl_matrix_get(A, i, j) * gsl_matrix_get(G, k, l));
}

/* §5: singular values below rcond·σ_max, rcond = max(rows, cols)·ε, are zero.
 * One-sided Jacobi SVD: accurate small singular values, deterministic. */
int ref_pinv_m(const gsl_matrix *A, gsl_matrix *Ainv, double *cond, ocn_error *err)
{
    size_t r = A->size1, c = A->size2;
    int tr = r < c; /* GSL's SVD needs rows >= cols: decompose Aᵀ */
    size_t R = tr ? c : r, C = tr ? r : c;
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++)
            if (!isfinite(gsl_matrix_get(A, i, j)))
                return ocn_fail(err, OCN_ENUMERIC, "pseudo-inverse: matrix has NaN/Inf entries");
    gsl_matrix *U = gsl_matrix_alloc(R, C), *V = gsl_matrix_alloc(C, C);
    gsl_vector *S = gsl_vector_alloc(C);
    if (tr) gsl_matrix_transpose_memcpy(U, A);
    else gsl_matrix_memcpy(U, A);
    /* One-sided Jacobi SVD (accurate small singular values) up to 128 columns.
     * Above, GSL's unblocked SVDs take minutes; a symmetric matrix (all our
     * curvatures are) is decomposed by its eigendecomposition instead, which is
     * an SVD with σ = |λ| and right vectors sign-flipped: V = U·sign(λ). */
    int st, sym = !tr && r == c && C > 128;
    for (size_t i = 0; sym && i < r; i++)
        for (size_t j = 0; sym && j < i; j++) sym = gsl_matrix_get(A, i, j) == gsl_matrix_get(A, j, i);
    if (sym) {
        gsl_matrix *W = gsl_matrix_alloc(r, r);
        gsl_matrix_memcpy(W, A);
        gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(r);
        st = gsl_eigen_symmv(W, S, U, ws);
        gsl_eigen_symmv_free(ws);
        gsl_matrix_free(W);
        gsl_matrix_memcpy(V, U);
        for (size_t k = 0; !st && k < C; k++)
            if (gsl_vector_get(S, k) < 0) {
                gsl_vector_set(S, k, -gsl_vector_get(S, k));
                gsl_vector_view col = gsl_matrix_column(V, k);
                gsl_vector_scale(&col.vector, -1.0);
            }
    } else if (C <= 128) {
        st = gsl_linalg_SV_decomp_jacobi(U, V, S);
    } else {
        gsl_vector *work = gsl_vector_alloc(C);
        st = gsl_linalg_SV_decomp(U, V, S, work);
        gsl_vector_free(work);
    }
    if (st) {
        gsl_matrix_free(U), gsl_matrix_free(V), gsl_vector_free(S);
        return ocn_fail(err, OCN_ENUMERIC, "pseudo-inverse: SVD failed (%s)", gsl_strerror(st));
    }
    double smax = 0;
    for (size_t k = 0; k < C; k++) smax = fmax(smax, gsl_vector_get(S, k));
    double tol = (double)(r > c ? r : c) * DBL_EPSILON * smax, smin = smax;
    /* M = U S Vᵀ  =>  M^† = V S^† Uᵀ;  for the transposed case A = V S Uᵀ, A^† = U S^† Vᵀ */
    /* A^† = L diag(1/σ) Rᵀ over the retained σ (L = V, R = U; transposed case swapped) */
    gsl_matrix *L = gsl_matrix_alloc(c, C), *Rm = gsl_matrix_alloc(r, C);
    gsl_matrix_memcpy(L, tr ? U : V);
    gsl_matrix_memcpy(Rm, tr ? V : U);
    for (size_t k = 0; k < C; k++) {
        double s = gsl_vector_get(S, k), f = (s > tol && s != 0.0) ? 1.0 / s : 0.0;
        if (f != 0.0) smin = fmin(smin, s);
        gsl_vector_view col = gsl_matrix_column(L, k);
        gsl_vector_scale(&col.vector, f);
    }
    gsl_blas_dgemm(CblasNoTrans, CblasTrans, 1.0, L, Rm, 0.0, Ainv);
    gsl_matrix_free(L), gsl_matrix_free(Rm);
    if (cond) *cond = smax > 0 ? smax / smin : 1.0;
    gsl_matrix_free(U), gsl_matrix_free(V), gsl_vector_free(S);
    return OCN_OK;
}

int ocn_ref_pinv(const double *A, int r, int c, double *out, double *cond, ocn_error *err)
{
    if (r <= 0 || c <= 0) return ocn_fail(err, OCN_EINVAL, "pseudo-inverse: empty matrix");
    ref_gsl_quiet();
    gsl_matrix_const_view Av = gsl_matrix_const_view_array(A, (size_t)r, (size_t)c);
    gsl_matrix_view Ov = gsl_matrix_view_array(out, (size_t)c, (size_t)r);
    return ref_pinv_m(&Av.matrix, &Ov.matrix, cond, err);
}
