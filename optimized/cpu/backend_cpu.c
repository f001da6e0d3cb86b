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

/* divide and conquer (syevd): the same decomposition, several times faster than
 * the QR iteration of syev at the B·r sizes of the low-rank cores */
static int dsyev(int n, double *A, double *w) { return (int)LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, A, n, w); }
static int ssyev(int n, float *A, float *w) { return (int)LAPACKE_ssyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, A, n, w); }

static int dgesv(int n, int nrhs, double *A, int *ipiv, double *B)
{
    return (int)LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, nrhs, A, n, ipiv, B, nrhs);
}

static int sgesv(int n, int nrhs, float *A, int *ipiv, float *B)
{
    return (int)LAPACKE_sgesv(LAPACK_ROW_MAJOR, n, nrhs, A, n, ipiv, B, nrhs);
}

/* potrf + potri fill the upper triangle; mirror it */
static int dspdinv(int n, double *A)
{
    int st = (int)LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', n, A, n);
    if (!st) st = (int)LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', n, A, n);
    for (int i = 0; !st && i < n; i++)
        for (int j = 0; j < i; j++) A[(size_t)i * n + j] = A[(size_t)j * n + i];
    return st;
}

static int sspdinv(int n, float *A)
{
    int st = (int)LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'U', n, A, n);
    if (!st) st = (int)LAPACKE_spotri(LAPACK_ROW_MAJOR, 'U', n, A, n);
    for (int i = 0; !st && i < n; i++)
        for (int j = 0; j < i; j++) A[(size_t)i * n + j] = A[(size_t)j * n + i];
    return st;
}

static const ocn_backend CPU = {"cpu", dgemm, sgemm, dsyev, ssyev, dgesv, sgesv, dspdinv, sspdinv};

const ocn_backend *ocn_backend_cpu(void) { return &CPU; }
