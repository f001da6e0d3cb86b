/* CPU backend: CBLAS and LAPACKE (OpenBLAS on Debian) on views (backend.h).
 * Its context holds a grow-only LAPACK workspace: the symmetric ops call the
 * column-major LAPACK routines on the row-major storage directly (a
 * symmetric matrix is its own transpose; 'U' row-major is 'L' column-major)
 * with that workspace, instead of LAPACKE's row-major wrappers, which
 * allocate and transpose a copy of every operand on every call (fresh pages
 * each time: issue 11 item 4). */
#include "../backend.h"

#include <cblas.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    void *work;     /* grow-only: syevd's work and iwork */
    size_t cap;
} cpu_ctx;

/* The LAPACK workspace of at least `bytes`; NULL (and a contract failure) when out of memory. */
static void *work_of(ocn_backend *b, size_t bytes)
{
    cpu_ctx *c = b->impl;
    if (c->cap < bytes) {
        void *w = malloc(bytes);
        if (!w) {
            ocn_backend_fail(b, "cpu: out of memory for a LAPACK workspace of %zu bytes", bytes);
            return NULL;
        }
        free(c->work);
        c->work = w, c->cap = bytes;
    }
    return c->work;
}

/* In place: row-major (i, j) <-> (j, i) of an n x n view. */
#define TRANSPOSE(T, a, n, ld)                                                                                         \
    for (int i_ = 0; i_ < (n); i_++)                                                                                   \
        for (int j_ = i_ + 1; j_ < (n); j_++) {                                                                        \
            T t_ = (a)[(size_t)i_ * (ld) + j_];                                                                        \
            (a)[(size_t)i_ * (ld) + j_] = (a)[(size_t)j_ * (ld) + i_];                                                 \
            (a)[(size_t)j_ * (ld) + i_] = t_;                                                                          \
        }

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
 * the QR iteration of syev at the B·r sizes of the low-rank cores.  Column-major
 * on the row-major storage (the matrix is symmetric), so the eigenvectors come
 * out in rows and are transposed in place into columns.  Its upper triangle
 * ('U', the row-major lower one): the triangle LAPACKE's row-major call used
 * before the workspace commit.  With 'L' the tridiagonalisation mixed the
 * exact zero blocks of a block-structured Gram at the rounding level; the
 * low-rank feedback then put ~1e-7·‖K‖ into columns of K that are exactly
 * zero, and a large carried δx (25 here) made θ_new 5e-3 wrong in float64
 * (fuzz game 0x6a9d604df559a050, a 240 s campaign; docs/decisions.md). */
static int cpu_syev(ocn_backend *b, int prec, ocn_view A, ocn_view w)
{
    int n = A.rows, st;
    if (n <= 0) return 0;
    size_t lw = 1 + 6 * (size_t)n + 2 * (size_t)n * n, liw = 3 + 5 * (size_t)n;
    size_t es = prec == 64 ? sizeof(double) : sizeof(float);
    unsigned char *work = work_of(b, lw * es + liw * sizeof(lapack_int));
    if (!work) return OCN_BK_ECONTRACT;
    lapack_int *iw = (lapack_int *)(work + lw * es);
    if (prec == 64) {
        st = (int)LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'U', n, PD(A), LD(A), PD(w), (double *)work, (lapack_int)lw,
                                      iw, (lapack_int)liw);
        if (!st) TRANSPOSE(double, PD(A), n, (size_t)LD(A));
    } else {
        st = (int)LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, 'V', 'U', n, PS(A), LD(A), PS(w), (float *)work, (lapack_int)lw,
                                      iw, (lapack_int)liw);
        if (!st) TRANSPOSE(float, PS(A), n, (size_t)LD(A));
    }
    return st;
}

static int cpu_gesv(ocn_backend *b, int prec, ocn_view A, int *ipiv, ocn_view B)
{
    (void)b;
    int n = A.rows, nrhs = B.cols;
    if (n <= 0 || nrhs <= 0) return 0;
    return prec == 64 ? (int)LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, nrhs, PD(A), LD(A), ipiv, PD(B), LD(B))
                      : (int)LAPACKE_sgesv(LAPACK_ROW_MAJOR, n, nrhs, PS(A), LD(A), ipiv, PS(B), LD(B));
}

/* potrf + potri on the row-major LOWER triangle, i.e. the column-major 'U'
 * one on the same storage (the input is fully symmetric), without LAPACKE's
 * transposed copies; then mirrored.  Not column-major 'L': OpenBLAS 0.3.21's
 * spotri with 'L' overwrites its stack for every odd n >= 133 on one thread
 * with its Prescott kernels (what it detects on this project's machines; a
 * SIGSEGV in strsm_kernel_RT found by the game fuzzer, docs/decisions.md);
 * 'U' never did. */
static int cpu_spdinv(ocn_backend *b, int prec, ocn_view A)
{
    (void)b;
    int n = A.rows, st;
    size_t ld = (size_t)LD(A);
    if (n <= 0) return 0;
    if (prec == 64) {
        double *a = PD(A);
        st = (int)LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', n, a, (int)ld);
        if (!st) st = (int)LAPACKE_dpotri_work(LAPACK_COL_MAJOR, 'U', n, a, (int)ld);
        for (int i = 0; !st && i < n; i++)
            for (int j = i + 1; j < n; j++) a[i * ld + j] = a[j * ld + i];
    } else {
        float *a = PS(A);
        st = (int)LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', n, a, (int)ld);
        if (!st) st = (int)LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'U', n, a, (int)ld);
        for (int i = 0; !st && i < n; i++)
            for (int j = i + 1; j < n; j++) a[i * ld + j] = a[j * ld + i];
    }
    return st;
}

static void cpu_destroy(ocn_backend *b)
{
    cpu_ctx *c = b->impl;
    if (c) free(c->work);
    free(c);
    free(b);
}

int ocn_backend_cpu_new(ocn_backend **out, ocn_error *err)
{
    ocn_backend *b = calloc(1, sizeof *b);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!b || !c) {
        free(b), free(c);
        return ocn_fail(err, OCN_ENOMEM, "out of memory (cpu backend)");
    }
    b->impl = c;
    b->name = "cpu";
    b->supports = cpu_supports, b->gemm = cpu_gemm, b->syev = cpu_syev, b->gesv = cpu_gesv, b->spdinv = cpu_spdinv;
    b->destroy = cpu_destroy;
    *out = b;
    return OCN_OK;
}
