/* CUDA backend of the optimized path on the backend contract (backend.h):
 * cuBLAS GEMM, cuSOLVER syevd / getrf+getrs / potrf+potrs, built as a
 * separately loaded module (libocn-cuda.so, entry point ocn_cuda_backend_new)
 * so that `ocn` links no CUDA library.
 *
 * The context owns one stream, one cuBLAS and one cuSOLVER handle and a
 * device workspace of grow-only buffers with explicit byte sizes, reused by
 * every op (no per-op handle creation or cudaMalloc once warm).  Operands
 * still travel per op (the contract's views are host views): each upload and
 * download copies exactly a view's rows x cols elements with its leading
 * dimension (cudaMemcpy2DAsync), i.e. exactly its extent (rows − 1)·ld + cols —
 * the first version copied rows × ld and read and wrote past sub-blocks.  A
 * device-resident step (one upload and one download per step) needs device
 * views in the contract: not done yet (docs/performance.md).
 *
 * Every CUDA, cuBLAS and cuSOLVER status and cuSOLVER's `info` is checked;
 * a failure is recorded as a contract violation in the context's error (the
 * step fails with it) and the caller's output is left as it was. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <new>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "../backend.h"
}

namespace {

struct dbuf {
    void *p = nullptr;
    size_t cap = 0; /* bytes */
};

enum { SA, SB, SC, SW, SWORK, SINFO, SPIV, NSLOT };

struct ctx {
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    cusolverDnHandle_t solver = nullptr;
    dbuf slot[NSLOT];
};

int fail(ocn_backend *b, const char *fmt, ...)
{
    if (b->failed) return OCN_BK_ECONTRACT;
    char m[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    b->err.code = OCN_ENUMERIC;
    snprintf(b->err.msg, sizeof b->err.msg, "backend 'cuda': %s", m);
    b->failed = 1;
    return OCN_BK_ECONTRACT;
}

#define CU(call)                                                                                                       \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) return fail(b, "%s: %s", #call, cudaGetErrorString(e_));                                \
    } while (0)
#define CB(call)                                                                                                       \
    do {                                                                                                               \
        cublasStatus_t s_ = (call);                                                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS) return fail(b, "%s: cuBLAS status %d", #call, (int)s_);                      \
    } while (0)
#define CS(call)                                                                                                       \
    do {                                                                                                               \
        cusolverStatus_t s_ = (call);                                                                                  \
        if (s_ != CUSOLVER_STATUS_SUCCESS) return fail(b, "%s: cuSOLVER status %d", #call, (int)s_);                  \
    } while (0)

ctx *C_(ocn_backend *b) { return (ctx *)b->impl; }

/* Workspace slot k with at least `bytes` bytes. */
int reserve(ocn_backend *b, int k, size_t bytes, void **out)
{
    dbuf &d = C_(b)->slot[k];
    if (bytes == 0) bytes = 16;
    if (d.cap < bytes) {
        if (d.p) CU(cudaFree(d.p));
        d.p = nullptr, d.cap = 0;
        CU(cudaMalloc(&d.p, bytes));
        d.cap = bytes;
    }
    *out = d.p;
    return 0;
}

size_t esz(int prec) { return prec == 64 ? 8 : 4; }
char *host(ocn_view v, int prec) { return (char *)v.p + v.off * esz(prec); }

/* Device copy of a view with the same ld: exactly its rows x cols elements move. */
int upload(ocn_backend *b, int k, ocn_view v, int prec, void **dev)
{
    size_t e = esz(prec);
    if (reserve(b, k, ocn_view_extent(v) * e, dev)) return OCN_BK_ECONTRACT;
    if (ocn_view_extent(v))
        CU(cudaMemcpy2DAsync(*dev, (size_t)v.ld * e, host(v, prec), (size_t)v.ld * e, (size_t)v.cols * e, (size_t)v.rows,
                             cudaMemcpyHostToDevice, C_(b)->stream));
    return 0;
}

int download(ocn_backend *b, const void *dev, ocn_view v, int prec)
{
    size_t e = esz(prec);
    if (ocn_view_extent(v))
        CU(cudaMemcpy2DAsync(host(v, prec), (size_t)v.ld * e, dev, (size_t)v.ld * e, (size_t)v.cols * e, (size_t)v.rows,
                             cudaMemcpyDeviceToHost, C_(b)->stream));
    CU(cudaStreamSynchronize(C_(b)->stream));
    return 0;
}

int info_of(ocn_backend *b, const int *dinfo, int *out)
{
    CU(cudaMemcpyAsync(out, dinfo, sizeof(int), cudaMemcpyDeviceToHost, C_(b)->stream));
    CU(cudaStreamSynchronize(C_(b)->stream));
    return 0;
}

int cuda_supports(const ocn_backend *, ocn_op op, int prec)
{
    return op >= 0 && op < OCN_OP_COUNT && (prec == 32 || prec == 64);
}

/* Row-major C (m x n) = alpha op(A) op(B) + beta C  <=>  column-major
 * Cᵀ = alpha op(B)ᵀ op(A)ᵀ + beta Cᵀ: swap the operands, keep the flags. */
int cuda_gemm(ocn_backend *b, int prec, int ta, int tb, double alpha, ocn_view A, ocn_view B, double beta, ocn_view C)
{
    int m = C.rows, n = C.cols, k = ta ? A.rows : A.cols;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) { /* C = beta C on the host: nothing to multiply */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                size_t at = C.off + (size_t)i * C.ld + j;
                if (prec == 64) ((double *)C.p)[at] = beta == 0 ? 0 : beta * ((double *)C.p)[at];
                else ((float *)C.p)[at] = beta == 0 ? 0.f : (float)beta * ((float *)C.p)[at];
            }
        return 0;
    }
    void *dA, *dB, *dC;
    if (upload(b, SA, A, prec, &dA) || upload(b, SB, B, prec, &dB)) return OCN_BK_ECONTRACT;
    if (beta != 0) {
        if (upload(b, SC, C, prec, &dC)) return OCN_BK_ECONTRACT;
    } else if (reserve(b, SC, ocn_view_extent(C) * esz(prec), &dC))
        return OCN_BK_ECONTRACT;
    cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (prec == 64) {
        double al = alpha, be = beta;
        CB(cublasDgemm(C_(b)->blas, ob, oa, n, m, k, &al, (const double *)dB, B.ld, (const double *)dA, A.ld, &be,
                       (double *)dC, C.ld));
    } else {
        float al = (float)alpha, be = (float)beta;
        CB(cublasSgemm(C_(b)->blas, ob, oa, n, m, k, &al, (const float *)dB, B.ld, (const float *)dA, A.ld, &be,
                       (float *)dC, C.ld));
    }
    return download(b, dC, C, prec);
}

/* Symmetric eigendecomposition.  The row-major A read column-major is Aᵀ = A;
 * its upper triangle (LAPACKE's 'U' on the cpu backend) is the column-major
 * lower one.  Eigenvectors come back in column-major columns, i.e. rows of the
 * row-major view: transposed in place after the download. */
int cuda_syev(ocn_backend *b, int prec, ocn_view A, ocn_view w)
{
    int n = A.rows, lwork = 0, info = 0;
    if (n <= 0) return 0;
    void *dA, *dw, *dwork, *dinfo;
    if (upload(b, SA, A, prec, &dA) || reserve(b, SW, (size_t)n * esz(prec), &dw) ||
        reserve(b, SINFO, sizeof(int), &dinfo))
        return OCN_BK_ECONTRACT;
    cusolverDnHandle_t h = C_(b)->solver;
    const cusolverEigMode_t V = CUSOLVER_EIG_MODE_VECTOR;
    const cublasFillMode_t L = CUBLAS_FILL_MODE_LOWER;
    if (prec == 64) CS(cusolverDnDsyevd_bufferSize(h, V, L, n, (double *)dA, A.ld, (double *)dw, &lwork));
    else CS(cusolverDnSsyevd_bufferSize(h, V, L, n, (float *)dA, A.ld, (float *)dw, &lwork));
    if (reserve(b, SWORK, (size_t)lwork * esz(prec), &dwork)) return OCN_BK_ECONTRACT;
    if (prec == 64)
        CS(cusolverDnDsyevd(h, V, L, n, (double *)dA, A.ld, (double *)dw, (double *)dwork, lwork, (int *)dinfo));
    else
        CS(cusolverDnSsyevd(h, V, L, n, (float *)dA, A.ld, (float *)dw, (float *)dwork, lwork, (int *)dinfo));
    if (info_of(b, (int *)dinfo, &info)) return OCN_BK_ECONTRACT;
    if (info < 0) return fail(b, "syevd: argument %d illegal", -info);
    if (info > 0) return info; /* did not converge */
    if (download(b, dA, A, prec) || download(b, dw, w, prec)) return OCN_BK_ECONTRACT;
    size_t e = esz(prec);
    char *a = host(A, prec), t[8];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
            char *x = a + ((size_t)i * A.ld + j) * e, *y = a + ((size_t)j * A.ld + i) * e;
            memcpy(t, x, e), memcpy(x, y, e), memcpy(y, t, e);
        }
    return 0;
}

/* Row-major A X = B.  Read column-major, the buffer holds Aᵀ: LU of Aᵀ, then
 * getrs with trans = T solves A X = B; B is packed transposed (n x nrhs
 * column-major) on the host from exactly its rows x cols elements. */
int cuda_gesv(ocn_backend *b, int prec, ocn_view A, int *ipiv, ocn_view B)
{
    int n = A.rows, nrhs = B.cols, lwork = 0, info = 0;
    if (n <= 0 || nrhs <= 0) return 0;
    size_t e = esz(prec);
    void *dA, *dB, *dwork, *dinfo, *dpiv;
    if (upload(b, SA, A, prec, &dA) || reserve(b, SB, (size_t)n * nrhs * e, &dB) ||
        reserve(b, SINFO, sizeof(int), &dinfo) || reserve(b, SPIV, (size_t)n * sizeof(int), &dpiv))
        return OCN_BK_ECONTRACT;
    char *Bt = (char *)malloc((size_t)n * nrhs * e);
    if (!Bt) return fail(b, "gesv: out of host memory");
    const char *hb = host(B, prec);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++) memcpy(Bt + ((size_t)j * n + i) * e, hb + ((size_t)i * B.ld + j) * e, e);
    cudaError_t ce = cudaMemcpyAsync(dB, Bt, (size_t)n * nrhs * e, cudaMemcpyHostToDevice, C_(b)->stream);
    if (ce != cudaSuccess) {
        free(Bt);
        return fail(b, "gesv upload: %s", cudaGetErrorString(ce));
    }
    cusolverDnHandle_t h = C_(b)->solver;
    int rc = 0;
#define GS(call)                                                                                                       \
    do {                                                                                                               \
        cusolverStatus_t s_ = (call);                                                                                  \
        if (s_ != CUSOLVER_STATUS_SUCCESS) {                                                                           \
            rc = fail(b, "%s: cuSOLVER status %d", #call, (int)s_);                                                    \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)
    if (prec == 64) GS(cusolverDnDgetrf_bufferSize(h, n, n, (double *)dA, A.ld, &lwork));
    else GS(cusolverDnSgetrf_bufferSize(h, n, n, (float *)dA, A.ld, &lwork));
    if ((rc = reserve(b, SWORK, (size_t)lwork * e, &dwork))) goto done;
    if (prec == 64) GS(cusolverDnDgetrf(h, n, n, (double *)dA, A.ld, (double *)dwork, (int *)dpiv, (int *)dinfo));
    else GS(cusolverDnSgetrf(h, n, n, (float *)dA, A.ld, (float *)dwork, (int *)dpiv, (int *)dinfo));
    if ((rc = info_of(b, (int *)dinfo, &info))) goto done;
    if (info != 0) {
        rc = info > 0 ? info : fail(b, "getrf: argument %d illegal", -info); /* singular U(info, info) */
        goto done;
    }
    if (prec == 64)
        GS(cusolverDnDgetrs(h, CUBLAS_OP_T, n, nrhs, (double *)dA, A.ld, (int *)dpiv, (double *)dB, n, (int *)dinfo));
    else
        GS(cusolverDnSgetrs(h, CUBLAS_OP_T, n, nrhs, (float *)dA, A.ld, (int *)dpiv, (float *)dB, n, (int *)dinfo));
    if ((rc = info_of(b, (int *)dinfo, &info))) goto done;
    if (info != 0) {
        rc = fail(b, "getrs: argument %d illegal", -info);
        goto done;
    }
    ce = cudaMemcpyAsync(Bt, dB, (size_t)n * nrhs * e, cudaMemcpyDeviceToHost, C_(b)->stream);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(C_(b)->stream);
    if (ce != cudaSuccess) {
        rc = fail(b, "gesv download: %s", cudaGetErrorString(ce));
        goto done;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++) memcpy(host(B, prec) + ((size_t)i * B.ld + j) * e, Bt + ((size_t)j * n + i) * e, e);
    rc = download(b, dA, A, prec); /* the factors, as LAPACK leaves them (transposed layout) */
    for (int i = 0; ipiv && i < n; i++) ipiv[i] = 0; /* pivots of the transposed factorisation: not LAPACK's */
#undef GS
done:
    free(Bt);
    return rc;
}

/* SPD inverse: Cholesky (potrf) and potrs against the identity; the inverse
 * of a symmetric matrix is symmetric, so its layout needs no transpose. */
int cuda_spdinv(ocn_backend *b, int prec, ocn_view A)
{
    int n = A.rows, lwork = 0, info = 0;
    if (n <= 0) return 0;
    size_t e = esz(prec);
    void *dA, *dI, *dwork, *dinfo;
    if (upload(b, SA, A, prec, &dA) || reserve(b, SB, (size_t)n * n * e, &dI) || reserve(b, SINFO, sizeof(int), &dinfo))
        return OCN_BK_ECONTRACT;
    char *I = (char *)calloc((size_t)n * n, e);
    if (!I) return fail(b, "spdinv: out of host memory");
    for (int i = 0; i < n; i++) {
        if (prec == 64) ((double *)I)[(size_t)i * n + i] = 1;
        else ((float *)I)[(size_t)i * n + i] = 1;
    }
    cudaError_t ce = cudaMemcpyAsync(dI, I, (size_t)n * n * e, cudaMemcpyHostToDevice, C_(b)->stream);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(C_(b)->stream); /* I is freed next */
    free(I);
    if (ce != cudaSuccess) return fail(b, "spdinv upload: %s", cudaGetErrorString(ce));
    cusolverDnHandle_t h = C_(b)->solver;
    const cublasFillMode_t L = CUBLAS_FILL_MODE_LOWER; /* the row-major upper triangle, as the cpu backend */
    if (prec == 64) CS(cusolverDnDpotrf_bufferSize(h, L, n, (double *)dA, A.ld, &lwork));
    else CS(cusolverDnSpotrf_bufferSize(h, L, n, (float *)dA, A.ld, &lwork));
    if (reserve(b, SWORK, (size_t)lwork * e, &dwork)) return OCN_BK_ECONTRACT;
    if (prec == 64) CS(cusolverDnDpotrf(h, L, n, (double *)dA, A.ld, (double *)dwork, lwork, (int *)dinfo));
    else CS(cusolverDnSpotrf(h, L, n, (float *)dA, A.ld, (float *)dwork, lwork, (int *)dinfo));
    if (info_of(b, (int *)dinfo, &info)) return OCN_BK_ECONTRACT;
    if (info < 0) return fail(b, "potrf: argument %d illegal", -info);
    if (info > 0) return info; /* not positive definite: the caller's A is left as it was */
    if (prec == 64) CS(cusolverDnDpotrs(h, L, n, n, (double *)dA, A.ld, (double *)dI, n, (int *)dinfo));
    else CS(cusolverDnSpotrs(h, L, n, n, (float *)dA, A.ld, (float *)dI, n, (int *)dinfo));
    if (info_of(b, (int *)dinfo, &info)) return OCN_BK_ECONTRACT;
    if (info != 0) return fail(b, "potrs: argument %d illegal", -info);
    /* dI is packed n x n (ld n): download it into the view with the view's ld */
    CU(cudaMemcpy2DAsync(host(A, prec), (size_t)A.ld * e, dI, (size_t)n * e, (size_t)n * e, (size_t)n,
                         cudaMemcpyDeviceToHost, C_(b)->stream));
    CU(cudaStreamSynchronize(C_(b)->stream));
    return 0;
}

void cuda_destroy(ocn_backend *b)
{
    ctx *c = C_(b);
    if (c) {
        for (int k = 0; k < NSLOT; k++)
            if (c->slot[k].p) cudaFree(c->slot[k].p);
        if (c->solver) cusolverDnDestroy(c->solver);
        if (c->blas) cublasDestroy(c->blas);
        if (c->stream) cudaStreamDestroy(c->stream);
        delete c;
    }
    free(b);
}

} // namespace

/* The module's entry point (dlsym'd by optimized/backend.c). */
extern "C" __attribute__((visibility("default"))) int ocn_cuda_backend_new(ocn_backend **out, ocn_error *err)
{
    *out = nullptr;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        err->code = OCN_EUNSUPPORTED;
        snprintf(err->msg, sizeof err->msg, "backend 'cuda': no usable GPU (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
        return OCN_EUNSUPPORTED;
    }
    ocn_backend *b = (ocn_backend *)calloc(1, sizeof *b);
    ctx *c = new (std::nothrow) ctx;
    if (!b || !c) {
        free(b);
        delete c;
        err->code = OCN_ENOMEM;
        snprintf(err->msg, sizeof err->msg, "backend 'cuda': out of memory");
        return OCN_ENOMEM;
    }
    b->name = "cuda", b->impl = c;
    b->supports = cuda_supports, b->gemm = cuda_gemm, b->syev = cuda_syev, b->gesv = cuda_gesv;
    b->spdinv = cuda_spdinv, b->destroy = cuda_destroy;
    const char *what = nullptr;
    if (cudaStreamCreate(&c->stream) != cudaSuccess) what = "cudaStreamCreate";
    else if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) what = "cublasCreate";
    else if (cublasSetStream(c->blas, c->stream) != CUBLAS_STATUS_SUCCESS) what = "cublasSetStream";
    else if (cusolverDnCreate(&c->solver) != CUSOLVER_STATUS_SUCCESS) what = "cusolverDnCreate";
    else if (cusolverDnSetStream(c->solver, c->stream) != CUSOLVER_STATUS_SUCCESS) what = "cusolverDnSetStream";
    if (what) {
        cuda_destroy(b);
        err->code = OCN_EUNSUPPORTED;
        snprintf(err->msg, sizeof err->msg, "backend 'cuda': %s failed", what);
        return OCN_EUNSUPPORTED;
    }
    *out = b;
    return OCN_OK;
}
