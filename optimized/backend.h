/* The op table of the optimized implementation (BLIS/ggml style): the
 * algorithm (optimized/step_impl.h) calls these and never knows which
 * backend runs.  cpu/ fills it with CBLAS/LAPACKE (OpenBLAS); cuda/ will fill
 * it with cuBLAS/cuSOLVER.  All matrices are row-major.  Status returns are
 * 0 on success; a nonzero status is a factorisation failure. */
#ifndef OCN_OPT_BACKEND_H
#define OCN_OPT_BACKEND_H

typedef struct ocn_backend {
    const char *name;
    /* C = alpha op(A) op(B) + beta C; op(A) is m x k, op(B) k x n */
    void (*dgemm)(int ta, int tb, int m, int n, int k, double alpha, const double *A, int lda, const double *B,
                  int ldb, double beta, double *C, int ldc);
    void (*sgemm)(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc);
    /* symmetric eigendecomposition in place: A (n x n) -> eigenvectors in columns, w eigenvalues */
    int (*dsyev)(int n, double *A, double *w);
    int (*ssyev)(int n, float *A, float *w);
    /* LU factorisation and solve of a general n x n system with nrhs right-hand sides (B is n x nrhs) */
    int (*dgesv)(int n, int nrhs, double *A, int *ipiv, double *B);
    int (*sgesv)(int n, int nrhs, float *A, int *ipiv, float *B);
    /* inverse of a symmetric positive definite matrix in place (Cholesky);
     * nonzero if A is not numerically positive definite */
    int (*dspdinv)(int n, double *A);
    int (*sspdinv)(int n, float *A);
} ocn_backend;

const ocn_backend *ocn_backend_cpu(void);
#ifdef OCN_HAVE_CUDA
/* NULL when no usable GPU is present, with the reason in *why. */
const ocn_backend *ocn_backend_cuda(const char **why);
#endif

#endif
