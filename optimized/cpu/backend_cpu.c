/* CPU backend: CBLAS and LAPACKE (OpenBLAS on Debian). */
#include "../backend.h"

#include <cblas.h>
#include <lapacke.h>

static void dgemm(int ta, int tb, int m, int n, int k, double alpha, const double *A, int lda, const double *B, int ldb,
                  double beta, double *C, int ldc)
{
    if (m <= 0 || n <= 0) return;
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B,
                ldb, beta, C, ldc);
}

static void sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc)
{
    if (m <= 0 || n <= 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B,
                ldb, beta, C, ldc);
}

static int dsyev(int n, double *A, double *w) { return (int)LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', n, A, n, w); }
static int ssyev(int n, float *A, float *w) { return (int)LAPACKE_ssyev(LAPACK_ROW_MAJOR, 'V', 'U', n, A, n, w); }

static int dgesv(int n, int nrhs, double *A, int *ipiv, double *B)
{
    return (int)LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, nrhs, A, n, ipiv, B, nrhs);
}

static int sgesv(int n, int nrhs, float *A, int *ipiv, float *B)
{
    return (int)LAPACKE_sgesv(LAPACK_ROW_MAJOR, n, nrhs, A, n, ipiv, B, nrhs);
}

static const ocn_backend CPU = {"cpu", dgemm, sgemm, dsyev, ssyev, dgesv, sgesv};

const ocn_backend *ocn_backend_cpu(void) { return &CPU; }
