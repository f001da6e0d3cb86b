/* The backend contract of the optimized implementation (ggml/BLIS style).
 *
 * A backend is an object (a context): it owns its library handles, streams
 * and a workspace of buffers with explicit sizes, and offers a small set of
 * ops on *views* (pointer + element offset, rows, cols, leading dimension;
 * row-major, element (i, j) at p[off + i·ld + j]).  The algorithm
 * (step_impl.h) calls the ops through this object and never knows which
 * backend runs.  Backends are found by name in one registry (backend.c):
 * cpu (CBLAS/LAPACKE), checking (the cpu ops behind guard-zoned staging
 * buffers and bounds assertions) and cuda (a separately loaded module,
 * libocn-cuda.so, only when asked for).
 *
 * Status returns: 0 on success; a positive status is a factorisation failure
 * of the op (LAPACK's info); OCN_BK_ECONTRACT means the call broke the
 * contract (bad view, guard zone overwritten, device error) — the message is
 * in the context's `err` and the step fails with it, never with a silent
 * wrong number. */
#ifndef OCN_OPT_BACKEND_H
#define OCN_OPT_BACKEND_H

#include <stddef.h>
#include "ocn/error.h"

#define OCN_BK_ECONTRACT (-1000)

typedef enum { OCN_OP_GEMM, OCN_OP_SYEV, OCN_OP_GESV, OCN_OP_SPDINV, OCN_OP_COUNT } ocn_op;

/* A matrix view.  Its extent (the elements an op may touch) is
 * (rows − 1)·ld + cols from p + off, none when rows or cols is 0; ld ≥ cols. */
typedef struct {
    void *p;
    size_t off;
    int rows, cols, ld;
} ocn_view;

static inline ocn_view ocn_view_of(const void *p, int rows, int cols, int ld)
{
    ocn_view v = {(void *)p, 0, rows, cols, ld};
    return v;
}
static inline size_t ocn_view_extent(ocn_view v)
{
    return v.rows <= 0 || v.cols <= 0 ? 0 : (size_t)(v.rows - 1) * (size_t)v.ld + (size_t)v.cols;
}

typedef struct ocn_backend ocn_backend;
struct ocn_backend {
    const char *name;
    void *impl;                     /* the backend's own handles, streams, workspace */
    ocn_error err;                  /* first contract violation (OCN_BK_ECONTRACT) */
    int failed;
    double gemm_flops;              /* 2·m·n·k summed over the gemm calls made through this context */
    /* 1 if the op runs in this precision (32 or 64) here */
    int (*supports)(const ocn_backend *b, ocn_op op, int prec);
    /* C = alpha op(A) op(B) + beta C; op(A) is C.rows x k, op(B) k x C.cols
     * (A, B views are of the stored, untransposed matrices) */
    int (*gemm)(ocn_backend *b, int prec, int ta, int tb, double alpha, ocn_view A, ocn_view B, double beta, ocn_view C);
    /* symmetric eigendecomposition in place: A (n x n) -> eigenvectors in its
     * columns, w (1 x n) the eigenvalues in ascending order */
    int (*syev)(ocn_backend *b, int prec, ocn_view A, ocn_view w);
    /* LU solve of A X = B in place (A n x n, B n x nrhs), ipiv n pivots (host) */
    int (*gesv)(ocn_backend *b, int prec, ocn_view A, int *ipiv, ocn_view B);
    /* inverse of a symmetric positive definite A in place (Cholesky); > 0 if not PD */
    int (*spdinv)(ocn_backend *b, int prec, ocn_view A);
    /* the step enters a named phase (forward, curvature statistics, backward/value
     * recursion, gains, update); the checking backend labels its messages with it
     * and checks its workspace at each boundary (may be NULL) */
    void (*phase)(ocn_backend *b, const char *name);
    void (*destroy)(ocn_backend *b);
};

/* Registry (backend.c): opens the backend called `name` ("cpu", "checking",
 * "cuda"); OCN_EUNSUPPORTED with the reason when it is unknown or unusable here. */
int ocn_backend_open(const char *name, ocn_backend **out, ocn_error *err);
void ocn_backend_close(ocn_backend *b);
/* The registered names, NULL-terminated (whether usable or not). */
const char *const *ocn_backend_names(void);

/* Constructors (the registry calls these; tests use them directly). */
int ocn_backend_cpu_new(ocn_backend **out, ocn_error *err);
/* The checking backend: every op validated against the contract, operands
 * staged in guard-zoned buffers of exactly the views' extents (what a device
 * backend copies), `inner` run on them, the guards and the gaps of ld > cols
 * checked after each op.  `inner` is owned (closed with it). */
int ocn_backend_checking_new(ocn_backend *inner, ocn_backend **out, ocn_error *err);
/* The CUDA module (optimized/cuda/, built as libocn-cuda.so): loaded with
 * dlopen on first use; OCN_EUNSUPPORTED with the reason when missing or no GPU. */
int ocn_backend_cuda_new(ocn_backend **out, ocn_error *err);

/* Records a contract violation on b (first one kept) and returns OCN_BK_ECONTRACT. */
int ocn_backend_fail(ocn_backend *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
