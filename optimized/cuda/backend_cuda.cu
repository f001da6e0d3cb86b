/* CUDA backend of the optimized path: the op table of optimized/backend.h
 * on cuBLAS (GEMM) and cuSOLVER (syevd, getrf/getrs).
 *
 * This first version is host-pointer in, host-pointer out: every op copies
 * its operands to the device, runs, and copies back, creating its library
 * handles per call (the op table has no context, and the library keeps no
 * global mutable state).  It is correct and checkable against the CPU
 * backend and the reference (`ocn check --backend cuda`), not fast; a
 * device-resident step is the next step (see docs/status.md).
 *
 * Every CUDA, cuBLAS and cuSOLVER status and cuSOLVER's `info` is checked:
 * a failure returns nonzero (the algorithm turns it into an ocn_ error),
 * GEMM failures are reported through the status of the next factorisation
 * and by NaN-poisoning C so that no silent wrong number escapes. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <math.h>
#include <string.h>

extern "C" {
#include "../backend.h"
}

namespace {

template <typename T> struct dev {
    T *p = nullptr;
    bool ok = true;
    explicit dev(size_t n) { ok = cudaMalloc((void **)&p, (n ? n : 1) * sizeof(T)) == cudaSuccess; }
    ~dev() { if (p) cudaFree(p); }
    bool up(const T *h, size_t n) { return ok && cudaMemcpy(p, h, n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess; }
    bool down(T *h, size_t n) { return ok && cudaMemcpy(h, p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess; }
};

template <typename T> void poison(T *C, int m, int n, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) C[(size_t)i * ldc + j] = (T)NAN;
}

cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k, const double *al,
                         const double *A, int lda, const double *B, int ldb, const double *be, double *C, int ldc)
{
    return cublasDgemm(h, a, b, m, n, k, al, A, lda, B, ldb, be, C, ldc);
}
cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k, const float *al,
                         const float *A, int lda, const float *B, int ldb, const float *be, float *C, int ldc)
{
    return cublasSgemm(h, a, b, m, n, k, al, A, lda, B, ldb, be, C, ldc);
}

/* Row-major C (m x n) = alpha op(A) op(B) + beta C  <=>  column-major
 * Cᵀ = alpha op(B)ᵀ op(A)ᵀ + beta Cᵀ: swap the operands, keep the flags. */
template <typename T>
void gemm(int ta, int tb, int m, int n, int k, T alpha, const T *A, int lda, const T *B, int ldb, T beta, T *C, int ldc)
{
    if (m <= 0 || n <= 0) return;
    size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
    dev<T> dA(na), dB(nb), dC(nc);
    cublasHandle_t h = nullptr;
    bool ok = dA.up(A, na) && dB.up(B, nb) && dC.up(C, nc) && cublasCreate(&h) == CUBLAS_STATUS_SUCCESS;
    ok = ok && gemm_call(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, dB.p, ldb, dA.p,
                         lda, &beta, dC.p, ldc) == CUBLAS_STATUS_SUCCESS;
    ok = ok && dC.down(C, nc);
    if (h) cublasDestroy(h);
    if (!ok) poison(C, m, n, ldc);
}

/* Symmetric eigendecomposition; the algorithm expects eigenvectors in the
 * columns of the row-major A, i.e. the transpose of cuSOLVER's column-major
 * result. */
template <typename T> int syevd(int n, T *A, T *w)
{
    dev<T> dA((size_t)n * n), dw((size_t)n);
    dev<int> info(1);
    cusolverDnHandle_t h = nullptr;
    if (!dA.up(A, (size_t)n * n) || cusolverDnCreate(&h) != CUSOLVER_STATUS_SUCCESS) return -1;
    int lwork = 0, st = -1, hinfo = 1;
    cusolverStatus_t s;
    if constexpr (sizeof(T) == 8)
        s = cusolverDnDsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, (double *)dA.p, n, (double *)dw.p, &lwork);
    else
        s = cusolverDnSsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, (float *)dA.p, n, (float *)dw.p, &lwork);
    if (s == CUSOLVER_STATUS_SUCCESS) {
        dev<T> work((size_t)lwork);
        if constexpr (sizeof(T) == 8)
            s = cusolverDnDsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, (double *)dA.p, n, (double *)dw.p,
                                 (double *)work.p, lwork, info.p);
        else
            s = cusolverDnSsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, (float *)dA.p, n, (float *)dw.p,
                                 (float *)work.p, lwork, info.p);
        if (s == CUSOLVER_STATUS_SUCCESS && work.ok && info.down(&hinfo, 1) && hinfo == 0 && dA.down(A, (size_t)n * n) &&
            dw.down(w, (size_t)n))
            st = 0;
        else if (hinfo != 0)
            st = hinfo;
    }
    cusolverDnDestroy(h);
    if (st == 0) /* column-major vectors -> row-major columns */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) {
                T t = A[(size_t)i * n + j];
                A[(size_t)i * n + j] = A[(size_t)j * n + i];
                A[(size_t)j * n + i] = t;
            }
    return st;
}

/* Row-major A X = B with B (n x nrhs).  In column-major terms the arrays hold
 * Aᵀ and Bᵀ: solve Aᵀ-stored systems with trans = T on the transposed RHS. */
template <typename T> int gesv(int n, int nrhs, T *A, int *ipiv_host, T *B)
{
    (void)ipiv_host;
    T *Bt = new T[(size_t)n * nrhs];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++) Bt[(size_t)j * n + i] = B[(size_t)i * nrhs + j];
    dev<T> dA((size_t)n * n), dB((size_t)n * nrhs);
    dev<int> piv((size_t)n), info(1);
    cusolverDnHandle_t h = nullptr;
    int st = -1, hinfo = 1, lwork = 0;
    if (dA.up(A, (size_t)n * n) && dB.up(Bt, (size_t)n * nrhs) && cusolverDnCreate(&h) == CUSOLVER_STATUS_SUCCESS) {
        cusolverStatus_t s;
        if constexpr (sizeof(T) == 8) s = cusolverDnDgetrf_bufferSize(h, n, n, (double *)dA.p, n, &lwork);
        else s = cusolverDnSgetrf_bufferSize(h, n, n, (float *)dA.p, n, &lwork);
        dev<T> work((size_t)lwork);
        if (s == CUSOLVER_STATUS_SUCCESS && work.ok) {
            if constexpr (sizeof(T) == 8) s = cusolverDnDgetrf(h, n, n, (double *)dA.p, n, (double *)work.p, piv.p, info.p);
            else s = cusolverDnSgetrf(h, n, n, (float *)dA.p, n, (float *)work.p, piv.p, info.p);
            if (s == CUSOLVER_STATUS_SUCCESS && info.down(&hinfo, 1) && hinfo == 0) {
                if constexpr (sizeof(T) == 8)
                    s = cusolverDnDgetrs(h, CUBLAS_OP_T, n, nrhs, (double *)dA.p, n, piv.p, (double *)dB.p, n, info.p);
                else
                    s = cusolverDnSgetrs(h, CUBLAS_OP_T, n, nrhs, (float *)dA.p, n, piv.p, (float *)dB.p, n, info.p);
                if (s == CUSOLVER_STATUS_SUCCESS && info.down(&hinfo, 1) && hinfo == 0 && dB.down(Bt, (size_t)n * nrhs)) st = 0;
            }
            if (st && hinfo > 0) st = hinfo; /* singular U(hinfo, hinfo) */
        }
        cusolverDnDestroy(h);
    }
    if (st == 0)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < nrhs; j++) B[(size_t)i * nrhs + j] = Bt[(size_t)j * n + i];
    delete[] Bt;
    return st;
}

/* SPD inverse: Cholesky (potrf) and potrs against the identity. */
template <typename T> int spdinv(int n, T *A)
{
    T *I = new T[(size_t)n * n];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) I[(size_t)i * n + j] = i == j;
    dev<T> dA((size_t)n * n), dI((size_t)n * n);
    dev<int> info(1);
    cusolverDnHandle_t h = nullptr;
    int st = -1, hinfo = 1, lwork = 0;
    if (dA.up(A, (size_t)n * n) && dI.up(I, (size_t)n * n) && cusolverDnCreate(&h) == CUSOLVER_STATUS_SUCCESS) {
        cusolverStatus_t s;
        if constexpr (sizeof(T) == 8) s = cusolverDnDpotrf_bufferSize(h, CUBLAS_FILL_MODE_UPPER, n, (double *)dA.p, n, &lwork);
        else s = cusolverDnSpotrf_bufferSize(h, CUBLAS_FILL_MODE_UPPER, n, (float *)dA.p, n, &lwork);
        dev<T> work((size_t)lwork);
        if (s == CUSOLVER_STATUS_SUCCESS && work.ok) {
            if constexpr (sizeof(T) == 8)
                s = cusolverDnDpotrf(h, CUBLAS_FILL_MODE_UPPER, n, (double *)dA.p, n, (double *)work.p, lwork, info.p);
            else
                s = cusolverDnSpotrf(h, CUBLAS_FILL_MODE_UPPER, n, (float *)dA.p, n, (float *)work.p, lwork, info.p);
            if (s == CUSOLVER_STATUS_SUCCESS && info.down(&hinfo, 1) && hinfo == 0) {
                if constexpr (sizeof(T) == 8)
                    s = cusolverDnDpotrs(h, CUBLAS_FILL_MODE_UPPER, n, n, (double *)dA.p, n, (double *)dI.p, n, info.p);
                else
                    s = cusolverDnSpotrs(h, CUBLAS_FILL_MODE_UPPER, n, n, (float *)dA.p, n, (float *)dI.p, n, info.p);
                if (s == CUSOLVER_STATUS_SUCCESS && info.down(&hinfo, 1) && hinfo == 0 && dI.down(A, (size_t)n * n)) st = 0;
            }
            if (st && hinfo > 0) st = hinfo; /* not positive definite */
        }
        cusolverDnDestroy(h);
    }
    delete[] I;
    return st; /* the inverse of a symmetric matrix is symmetric: layout needs no transpose */
}

void dgemm_op(int ta, int tb, int m, int n, int k, double al, const double *A, int lda, const double *B, int ldb, double be,
              double *C, int ldc) { gemm<double>(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc); }
void sgemm_op(int ta, int tb, int m, int n, int k, float al, const float *A, int lda, const float *B, int ldb, float be,
              float *C, int ldc) { gemm<float>(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc); }
int dsyev_op(int n, double *A, double *w) { return syevd<double>(n, A, w); }
int ssyev_op(int n, float *A, float *w) { return syevd<float>(n, A, w); }
int dgesv_op(int n, int nrhs, double *A, int *ipiv, double *B) { return gesv<double>(n, nrhs, A, ipiv, B); }
int sgesv_op(int n, int nrhs, float *A, int *ipiv, float *B) { return gesv<float>(n, nrhs, A, ipiv, B); }
int dspdinv_op(int n, double *A) { return spdinv<double>(n, A); }
int sspdinv_op(int n, float *A) { return spdinv<float>(n, A); }

const ocn_backend CUDA = {"cuda", dgemm_op, sgemm_op, dsyev_op, ssyev_op, dgesv_op, sgesv_op, dspdinv_op, sspdinv_op};

} // namespace

/* NULL, with the reason in why (if given), when no usable GPU is present. */
extern "C" const ocn_backend *ocn_backend_cuda(const char **why)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        if (why) *why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
        return nullptr;
    }
    return &CUDA;
}
