/* CPU backend: CBLAS and LAPACKE (OpenBLAS on Debian) on views (backend.h).
 * It holds no handles; its context exists for the contract's sake. */
#include "../backend.h"

#include <cblas.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

static int cpu_supports(const ocn_backend *b, ocn_op op, int prec)
{
    (void)b;
    return op >= 0 && op < OCN_OP_COUNT && (prec == 32 || prec == 64);
}

#define PD(v) ((double *)(v).p + (v).off)
#define PS(v) ((float *)(v).p + (v).off)
/* LAPACK wants a leading dimension >= 1 even for empty matrices */
#define LD(v) ((v).ld > 0 ? (v).ld : 1)

static int cpu_gemm(ocn_backend *b, int prec, int ta, int tb, double alpha, ocn_view A, ocn_view B, double beta,
                    ocn_view C)
{
    (void)b;
    int m = C.rows, n = C.cols, k = ta ? A.rows : A.cols;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) { /* C = beta C (BLAS semantics for an empty product) */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                size_t e = (size_t)i * C.ld + j;
                if (prec == 64) PD(C)[e] = beta == 0 ? 0 : beta * PD(C)[e];
                else PS(C)[e] = beta == 0 ? 0 : (float)beta * PS(C)[e];
            }
        return 0;
    }
    CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, bt = tb ? CblasTrans : CblasNoTrans;
    if (prec == 64)
        cblas_dgemm(CblasRowMajor, a, bt, m, n, k, alpha, PD(A), LD(A), PD(B), LD(B), beta, PD(C), LD(C));
    else
        cblas_sgemm(CblasRowMajor, a, bt, m, n, k, (float)alpha, PS(A), LD(A), PS(B), LD(B), (float)beta, PS(C), LD(C));
    return 0;
}

/* divide and conquer (syevd): the same decomposition, several times faster than
 * the QR iteration of syev at the B·r sizes of the low-rank cores */
static int cpu_syev(ocn_backend *b, int prec, ocn_view A, ocn_view w)
{
    (void)b;
    int n = A.rows;
    if (n <= 0) return 0;
    return prec == 64 ? (int)LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, PD(A), LD(A), PD(w))
                      : (int)LAPACKE_ssyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, PS(A), LD(A), PS(w));
}

static int cpu_gesv(ocn_backend *b, int prec, ocn_view A, int *ipiv, ocn_view B)
{
    (void)b;
    int n = A.rows, nrhs = B.cols;
    if (n <= 0 || nrhs <= 0) return 0;
    return prec == 64 ? (int)LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, nrhs, PD(A), LD(A), ipiv, PD(B), LD(B))
                      : (int)LAPACKE_sgesv(LAPACK_ROW_MAJOR, n, nrhs, PS(A), LD(A), ipiv, PS(B), LD(B));
}

/* potrf + potri fill the upper triangle; mirror it */
static int cpu_spdinv(ocn_backend *b, int prec, ocn_view A)
{
    (void)b;
    int n = A.rows, st;
    size_t ld = (size_t)LD(A);
    if (n <= 0) return 0;
    if (prec == 64) {
        double *a = PD(A);
        st = (int)LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', n, a, (int)ld);
        if (!st) st = (int)LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', n, a, (int)ld);
        for (int i = 0; !st && i < n; i++)
            for (int j = 0; j < i; j++) a[i * ld + j] = a[j * ld + i];
    } else {
        float *a = PS(A);
        st = (int)LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'U', n, a, (int)ld);
        if (!st) st = (int)LAPACKE_spotri(LAPACK_ROW_MAJOR, 'U', n, a, (int)ld);
        for (int i = 0; !st && i < n; i++)
            for (int j = 0; j < i; j++) a[i * ld + j] = a[j * ld + i];
    }
    return st;
}

static void cpu_destroy(ocn_backend *b) { free(b); }

int ocn_backend_cpu_new(ocn_backend **out, ocn_error *err)
{
    ocn_backend *b = calloc(1, sizeof *b);
    if (!b) return ocn_fail(err, OCN_ENOMEM, "out of memory (cpu backend)");
    b->name = "cpu";
    b->supports = cpu_supports, b->gemm = cpu_gemm, b->syev = cpu_syev, b->gesv = cpu_gesv, b->spdinv = cpu_spdinv;
    b->destroy = cpu_destroy;
    *out = b;
    return OCN_OK;
}
