/* Dense linear algebra of the reference: SVD pseudo-inverse with the SPEC §5
 * rcond rule, explicit Kronecker product, and the reference's own dense
 * kernels (GEMM, GEMV, AXPY, DOT).
 *
 * Reproducible bytes (issue 9 item 6): every sum here is a plain loop in a
 * fixed order, element (i, j) of op(A) op(B) being ((a_i0 b_0j + a_i1 b_1j)
 * + …) whatever the transposition, the thread count, the core affinity or the
 * BLAS library.  No level-2/3 BLAS is called, directly or through GSL: GSL
 * sends its gsl_blas_* calls to whatever CBLAS the process links (OpenBLAS,
 * whose threaded kernels split sums by thread count).  GSL still computes the
 * decompositions (docs/decisions.md, "Reproducible bytes"): the matrix is
 *     reduced here to tridiagonal (symmetric) or bidiagonal form by Householder reflections, and GSL's implicit-shift
 *     QR (gsl_eigen_symmv / gsl_linalg_SV_decomp) diagonalises the condensed
 *     matrix: its own Householder stage then finds nothing to annihilate
 *     (dnrm2 of exact zeros, τ = 0, no dsymv/dsyr2/dgemv/dger), and its
 *     rotations are loops (eigen) or drot, which OpenBLAS threads above
 *     100000 entries only. */
#include "ref.h"

#include <assert.h>
#include <float.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Products are never fused into FMAs (a build-time choice, not a thread one,
 * but fixed here too): GCC does not contract in ISO C mode (-std=c11). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif


void ref_gsl_quiet(void)
{
    /* GSL's default handler calls abort(); errors are returned instead.  The
     * handler is process-wide in GSL; setting it is idempotent. */
    gsl_set_error_handler_off();
}

/* ---- allocation (issue 10) ----------------------------------------------- */

gsl_matrix *ref_matrix_alloc(size_t r, size_t c)
{
    if (c && r > SIZE_MAX / sizeof(double) / c) return NULL;
    gsl_matrix *m = malloc(sizeof *m);
    gsl_block *b = malloc(sizeof *b);
    double *d = malloc((r && c ? r * c : 1) * sizeof *d);
    if (!m || !b || !d) {
        free(m), free(b), free(d);
        return NULL;
    }
    b->size = r * c, b->data = d;
    m->size1 = r, m->size2 = c, m->tda = c, m->data = d, m->block = b, m->owner = 1;
    return m;
}

gsl_matrix *ref_matrix_calloc(size_t r, size_t c)
{
    gsl_matrix *m = ref_matrix_alloc(r, c);
    if (m) memset(m->data, 0, r * c * sizeof *m->data);
    return m;
}

gsl_vector *ref_vector_alloc(size_t n)
{
    if (n > SIZE_MAX / sizeof(double)) return NULL;
    gsl_vector *v = malloc(sizeof *v);
    gsl_block *b = malloc(sizeof *b);
    double *d = malloc((n ? n : 1) * sizeof *d);
    if (!v || !b || !d) {
        free(v), free(b), free(d);
        return NULL;
    }
    b->size = n, b->data = d;
    v->size = n, v->stride = 1, v->data = d, v->block = b, v->owner = 1;
    return v;
}

gsl_vector *ref_vector_calloc(size_t n)
{
    gsl_vector *v = ref_vector_alloc(n);
    if (v) memset(v->data, 0, n * sizeof *v->data);
    return v;
}

/* gsl_eigen_symmv's workspace (its four n-vectors), freed by
 * gsl_eigen_symmv_free; NULL with nothing allocated on failure */
static gsl_eigen_symmv_workspace *symmv_alloc(size_t n)
{
    gsl_eigen_symmv_workspace *w = malloc(sizeof *w);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c), *d = malloc(n * sizeof *d);
    if (!w || !a || !b || !c || !d) {
        free(w), free(a), free(b), free(c), free(d);
        return NULL;
    }
    w->size = n, w->d = a, w->sd = b, w->gc = c, w->gs = d;
    return w;
}

/* ---- deterministic dense kernels ---------------------------------------- */

typedef double ref_v2d __attribute__((vector_size(16))); /* two IEEE lanes, no fused ops */

/* c = alpha·s (+ beta·c) for one entry: beta = 0 does not read C, as in BLAS */
static inline void gemm_store(double *c, double alpha, double s, double beta)
{
    *c = beta == 0.0 ? alpha * s : alpha * s + beta * *c;
}

/* C = alpha op(A) op(B) + beta C.  Every entry is s = 0; s += a_ip·b_pj for
 * p = 0, 1, …, K-1 in increasing order; c = alpha·s (+ beta·c): the same
 * operations in the same order whatever the shapes, transpositions, blocking
 * or thread count.  Register blocks of 4 x 4 (two-lane vectors: each lane is
 * the scalar operation).  When no operand entry is NaN/Inf, terms with a zero
 * factor are skipped where that saves work (Jacobians are sparse): they are
 * ±0, and adding ±0 leaves s unchanged since s, starting from +0, is never −0
 * — the bits are those of the dense loop.  C must not overlap A or B.
 * Issue 10: the packing workspace is allocated per call (about M·K + K·N
 * doubles, and as much again for the sparse path's index); when that fails
 * nothing is written and OCN_ENOMEM is returned (was: assert, an abort). */
int ref_gemm(int ta, int tb, double alpha, const gsl_matrix *A, const gsl_matrix *B, double beta, gsl_matrix *C)
{
    size_t M = C->size1, N = C->size2, K = ta ? A->size1 : A->size2;
    assert((ta ? A->size2 : A->size1) == M && (tb ? B->size2 : B->size1) == K && (tb ? B->size1 : B->size2) == N);
    if (!M || !N) return OCN_OK;
    size_t N4 = (N + 3) / 4 * 4, M4 = M - M % 4;
    /* a = op(A) row-major (M x K), b = op(B) row-major (K x N4, zero columns
     * padded), colnz[p] = nonzeros of a's column p, rownz[p] = of b's row p */
    double *a = malloc((M * K + K * N4 + 1) * sizeof *a), *b = a + M * K;
    size_t *colnz = calloc(2 * K + 1, sizeof *colnz), *rownz;
    if (!a || !colnz) {
        free(a), free(colnz);
        return OCN_ENOMEM;
    }
    rownz = colnz + K;
    int finite = 1;
    for (size_t i = 0; i < M; i++)
        for (size_t p = 0; p < K; p++) {
            double x = ta ? A->data[p * A->tda + i] : A->data[i * A->tda + p];
            a[i * K + p] = x, colnz[p] += x != 0.0, finite &= isfinite(x) != 0;
        }
    for (size_t p = 0; p < K; p++)
        for (size_t j = 0; j < N4; j++) {
            double x = j >= N ? 0.0 : tb ? B->data[j * B->tda + p] : B->data[p * B->tda + j];
            b[p * N4 + j] = x, rownz[p] += x != 0.0, finite &= isfinite(x) != 0;
        }
    double dense = (double)M * (double)N * (double)K, sparse = 0.0;
    for (size_t p = 0; p < K; p++) sparse += (double)colnz[p] * (double)rownz[p];
    if (finite && 4.0 * sparse < dense) { /* row i: s_j += a_ip b_pj over a_ip ≠ 0, b_pj ≠ 0, p ascending */
        size_t nnz = 0;
        for (size_t p = 0; p < K; p++) nnz += rownz[p];
        size_t *jx = malloc((nnz + K + 2) * sizeof *jx), *start;
        double *bv = malloc((nnz + N + 1) * sizeof *bv), *s;
        if (!jx || !bv) {
            free(jx), free(bv), free(a), free(colnz);
            return OCN_ENOMEM;
        }
        start = jx + nnz, s = bv + nnz;
        start[0] = 0;
        for (size_t p = 0, q = 0; p < K; p++) {
            for (size_t j = 0; j < N; j++)
                if (b[p * N4 + j] != 0.0) jx[q] = j, bv[q++] = b[p * N4 + j];
            start[p + 1] = q;
        }
        for (size_t i = 0; i < M; i++) {
            memset(s, 0, N * sizeof *s);
            for (size_t p = 0; p < K; p++) {
                double x = a[i * K + p];
                if (x == 0.0) continue;
                for (size_t q = start[p]; q < start[p + 1]; q++) s[jx[q]] += x * bv[q];
            }
            for (size_t j = 0; j < N; j++) gemm_store(C->data + i * C->tda + j, alpha, s[j], beta);
        }
        free(jx), free(bv);
    } else {
        for (size_t j = 0; j < N; j += 4) {
            size_t cols = N - j < 4 ? N - j : 4;
            for (size_t i = 0; i < M; i += i < M4 ? 4 : 1) {
                size_t rows = i < M4 ? 4 : 1;
                const double *ai = a + i * K, *bj = b + j;
                ref_v2d c[4][2] = {{{0, 0}, {0, 0}}, {{0, 0}, {0, 0}}, {{0, 0}, {0, 0}}, {{0, 0}, {0, 0}}};
                double sv[4][4];
                if (rows == 4)
                    for (size_t p = 0; p < K; p++) {
                        ref_v2d b0, b1;
                        memcpy(&b0, bj + p * N4, sizeof b0), memcpy(&b1, bj + p * N4 + 2, sizeof b1);
                        for (size_t r = 0; r < 4; r++) {
                            ref_v2d x = {ai[r * K + p], ai[r * K + p]};
                            c[r][0] += x * b0, c[r][1] += x * b1;
                        }
                    }
                else
                    for (size_t p = 0; p < K; p++) {
                        ref_v2d b0, b1, x = {ai[p], ai[p]};
                        memcpy(&b0, bj + p * N4, sizeof b0), memcpy(&b1, bj + p * N4 + 2, sizeof b1);
                        c[0][0] += x * b0, c[0][1] += x * b1;
                    }
                memcpy(sv, c, sizeof sv);
                for (size_t r = 0; r < rows; r++)
                    for (size_t q = 0; q < cols; q++) gemm_store(C->data + (i + r) * C->tda + j + q, alpha, sv[r][q], beta);
            }
        }
    }
    free(a), free(colnz);
    return OCN_OK;
}

/* y = alpha op(A) x + beta y, each entry summed in increasing order of the
 * inner index; beta = 0 does not read y.  y must not overlap A or x.
 * Issue 10: no heap accumulator (was calloc + assert): op(A) = Aᵀ is summed
 * over column chunks of 256 in a stack array, row by row; every y_i is
 * s = 0, s += a_pi x_p for p ascending, as before. */
void ref_gemv(int ta, double alpha, const gsl_matrix *A, const gsl_vector *x, double beta, gsl_vector *y)
{
    enum { CH = 256 };
    size_t M = ta ? A->size2 : A->size1, K = ta ? A->size1 : A->size2, lda = A->tda;
    assert(x->size == K && y->size == M);
    double acc[CH];
    for (size_t i0 = 0; i0 < M; i0 += CH) {
        size_t nc = M - i0 < CH ? M - i0 : CH;
        if (ta) { /* acc[i] += A_pi x_p, p ascending; rows of A contiguous */
            for (size_t i = 0; i < nc; i++) acc[i] = 0.0;
            for (size_t p = 0; p < K; p++) {
                double xp = x->data[p * x->stride];
                const double *a = A->data + p * lda + i0;
                for (size_t i = 0; i < nc; i++) acc[i] += a[i] * xp;
            }
        } else {
            for (size_t i = 0; i < nc; i++) {
                const double *a = A->data + (i0 + i) * lda;
                double s = 0.0;
                for (size_t p = 0; p < K; p++) s += a[p] * x->data[p * x->stride];
                acc[i] = s;
            }
        }
        for (size_t i = 0; i < nc; i++) {
            double *yi = y->data + (i0 + i) * y->stride;
            *yi = beta == 0.0 ? alpha * acc[i] : alpha * acc[i] + beta * *yi;
        }
    }
}

/* y += alpha x */
void ref_axpy(double alpha, const gsl_vector *x, gsl_vector *y)
{
    assert(x->size == y->size);
    for (size_t i = 0; i < x->size; i++) y->data[i * y->stride] += alpha * x->data[i * x->stride];
}

/* xᵀy, summed in increasing index order */
double ref_dot(const gsl_vector *x, const gsl_vector *y)
{
    assert(x->size == y->size);
    double s = 0.0;
    for (size_t i = 0; i < x->size; i++) s += x->data[i * x->stride] * y->data[i * y->stride];
    return s;
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

/* ---- Householder reduction to condensed form (large matrices) ----------- */

/* Householder reflection H = I − τ v vᵀ with H x = (β, 0, …, 0) for the n
 * entries x[0], x[inc], …: on return x[0] = β and x[k·inc] = v_k (k ≥ 1;
 * v_0 = 1 implicitly).  τ = 0 (H = I, x untouched) when x[1..] is zero. */
static double house(size_t n, double *x, size_t inc)
{
    if (n < 2) return 0.0;
    double mx = 0.0, s = 0.0;
    for (size_t k = 1; k < n; k++) mx = fmax(mx, fabs(x[k * inc]));
    if (mx == 0.0) return 0.0;
    for (size_t k = 1; k < n; k++) s += (x[k * inc] / mx) * (x[k * inc] / mx);
    double alpha = x[0], beta = -copysign(hypot(alpha, mx * sqrt(s)), alpha);
    double tau = (beta - alpha) / beta, f = 1.0 / (alpha - beta);
    for (size_t k = 1; k < n; k++) x[k * inc] *= f;
    x[0] = beta;
    return tau;
}

/* Rows r0.. of X (the vector's n entries) ← H X, H from house() with v_k at
 * v[k·inc] (k ≥ 1); t: X->size2 doubles of scratch. */
static void house_left(double tau, size_t n, const double *v, size_t inc, gsl_matrix *X, size_t r0, double *t)
{
    size_t N = X->size2;
    if (tau == 0.0) return;
    memset(t, 0, N * sizeof *t);
    for (size_t k = 0; k < n; k++) { /* t = vᵀ X, k ascending */
        double vk = k ? v[k * inc] : 1.0;
        const double *row = gsl_matrix_const_ptr(X, r0 + k, 0);
        for (size_t j = 0; j < N; j++) t[j] += vk * row[j];
    }
    for (size_t k = 0; k < n; k++) {
        double f = tau * (k ? v[k * inc] : 1.0);
        double *row = gsl_matrix_ptr(X, r0 + k, 0);
        for (size_t j = 0; j < N; j++) row[j] -= f * t[j];
    }
}

/* Symmetric W = U diag(S) Uᵀ: W is reduced to T = Qᵀ W Q here, GSL's
 * gsl_eigen_symmv diagonalises T = Z Λ Zᵀ, U = Q Z.  W is destroyed. */
static int eig_sym(gsl_matrix *W, gsl_vector *S, gsl_matrix *U)
{
    size_t n = W->size1;
    double *tau = calloc(n, sizeof *tau), *p = malloc(n * sizeof *p), *w = malloc(n * sizeof *w);
    double *v = malloc(n * sizeof *v);
    gsl_matrix *T = ref_matrix_calloc(n, n);
    gsl_eigen_symmv_workspace *ws = symmv_alloc(n);
    if (!tau || !p || !w || !v || !T || !ws) {
        free(tau), free(p), free(w), free(v);
        if (T) gsl_matrix_free(T);
        if (ws) gsl_eigen_symmv_free(ws);
        return GSL_ENOMEM;
    }
    for (size_t k = 0; k + 2 < n; k++) {
        size_t L = n - k - 1; /* S = W[k+1.., k+1..] ← H S H (W kept full) */
        tau[k] = house(L, gsl_matrix_ptr(W, k + 1, k), W->tda);
        if (tau[k] == 0.0) continue;
        v[0] = 1.0;
        for (size_t i = 1; i < L; i++) v[i] = gsl_matrix_get(W, k + 1 + i, k);
        double pv = 0.0;
        for (size_t i = 0; i < L; i++) { /* p = τ S v */
            const double *row = gsl_matrix_const_ptr(W, k + 1 + i, k + 1);
            double s = 0.0;
            for (size_t j = 0; j < L; j++) s += row[j] * v[j];
            p[i] = tau[k] * s;
        }
        for (size_t i = 0; i < L; i++) pv += p[i] * v[i];
        for (size_t i = 0; i < L; i++) w[i] = p[i] - 0.5 * tau[k] * pv * v[i]; /* w = p − (τ/2)(pᵀv) v */
        for (size_t i = 0; i < L; i++) { /* S −= v wᵀ + w vᵀ (stays exactly symmetric) */
            double *row = gsl_matrix_ptr(W, k + 1 + i, k + 1);
            for (size_t j = 0; j < L; j++) row[j] -= v[i] * w[j] + w[i] * v[j];
        }
    }
    for (size_t i = 0; i < n; i++) {
        gsl_matrix_set(T, i, i, gsl_matrix_get(W, i, i));
        if (i + 1 < n) {
            double e = gsl_matrix_get(W, i + 1, i);
            gsl_matrix_set(T, i + 1, i, e), gsl_matrix_set(T, i, i + 1, e);
        }
    }
    int st = gsl_eigen_symmv(T, S, U, ws);
    for (size_t k = n > 2 ? n - 2 : 0; !st && k-- > 0;) /* U = H_0 H_1 … H_{n-3} Z */
        house_left(tau[k], n - k - 1, gsl_matrix_const_ptr(W, k + 1, k), W->tda, U, k + 1, p);
    gsl_eigen_symmv_free(ws);
    gsl_matrix_free(T);
    free(tau), free(p), free(w), free(v);
    return st;
}

/* U (R x C, R ≥ C ≥ 1) = U diag(S) Vᵀ, U overwritten by its left vectors:
 * U = Uℓ B Vrᵀ with B upper bidiagonal (reduced here), GSL's
 * gsl_linalg_SV_decomp diagonalises B = Ub Σ Vbᵀ, U ← Uℓ [Ub; 0], V = Vr Vb. */
static int svd_bidiag(gsl_matrix *U, gsl_matrix *V, gsl_vector *S)
{
    size_t R = U->size1, C = U->size2;
    double *tl = calloc(C, sizeof *tl), *tr = calloc(C, sizeof *tr), *t = malloc(R * sizeof *t);
    gsl_matrix *H = ref_matrix_alloc(R, C), *Bm = ref_matrix_calloc(C, C);
    gsl_vector *work = ref_vector_alloc(C);
    if (!tl || !tr || !t || !H || !Bm || !work) {
        free(tl), free(tr), free(t);
        if (H) gsl_matrix_free(H);
        if (Bm) gsl_matrix_free(Bm);
        if (work) gsl_vector_free(work);
        return GSL_ENOMEM;
    }
    for (size_t j = 0; j < C; j++) {
        /* left: zero U[j+1.., j], applied to columns j+1.. (t = vᵀ U, rows ascending) */
        tl[j] = house(R - j, gsl_matrix_ptr(U, j, j), U->tda);
        if (tl[j] != 0.0 && j + 1 < C) {
            gsl_matrix_view sub = gsl_matrix_submatrix(U, 0, j + 1, R, C - j - 1);
            house_left(tl[j], R - j, gsl_matrix_const_ptr(U, j, j), U->tda, &sub.matrix, j, t);
        }
        /* right: zero U[j, j+2..], applied to rows j+1.. (one dot per row) */
        if (j + 1 < C) tr[j] = house(C - j - 1, gsl_matrix_ptr(U, j, j + 1), 1);
        if (tr[j] != 0.0) {
            const double *v = gsl_matrix_const_ptr(U, j, j + 1);
            for (size_t r = j + 1; r < R; r++) {
                double *row = gsl_matrix_ptr(U, r, j + 1), s = row[0];
                for (size_t k = 1; k < C - j - 1; k++) s += row[k] * v[k];
                row[0] -= tr[j] * s;
                for (size_t k = 1; k < C - j - 1; k++) row[k] -= tr[j] * s * v[k];
            }
        }
    }
    for (size_t j = 0; j < C; j++) {
        gsl_matrix_set(Bm, j, j, gsl_matrix_get(U, j, j));
        if (j + 1 < C) gsl_matrix_set(Bm, j, j + 1, gsl_matrix_get(U, j, j + 1));
    }
    gsl_matrix_memcpy(H, U); /* the reflectors */
    int st = gsl_linalg_SV_decomp(Bm, V, S, work);
    if (!st) {
        gsl_matrix_set_zero(U);
        gsl_matrix_view top = gsl_matrix_submatrix(U, 0, 0, C, C);
        gsl_matrix_memcpy(&top.matrix, Bm);
        for (size_t j = C; j-- > 0;) /* U ← Hℓ_0 … Hℓ_{C-1} [Ub; 0] */
            house_left(tl[j], R - j, gsl_matrix_const_ptr(H, j, j), H->tda, U, j, t);
        for (size_t j = C; j-- > 0;) /* V ← Hr_0 … Hr_{C-2} Vb */
            if (j + 1 < C) house_left(tr[j], C - j - 1, gsl_matrix_const_ptr(H, j, j + 1), 1, V, j + 1, t);
    }
    gsl_matrix_free(H), gsl_matrix_free(Bm), gsl_vector_free(work);
    free(tl), free(tr), free(t);
    return st;
}

/* ---- pseudo-inverse ------------------------------------------------------ */

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
    /* issue 10: every workspace checked; on failure all are freed and the
     * message names the one that failed */
    gsl_matrix *U = ref_matrix_alloc(R, C), *V = ref_matrix_alloc(C, C), *W = NULL, *L = NULL, *Rm = NULL;
    gsl_vector *S = ref_vector_alloc(C);
    const char *what = NULL;
    int rc = OCN_OK;
    if (!U || !V || !S) {
        what = "U, V, S";
        goto out;
    }
    if (tr) gsl_matrix_transpose_memcpy(U, A);
    else gsl_matrix_memcpy(U, A);
    /* A symmetric matrix (every curvature the reference inverts is one, made
     * exactly symmetric by its caller) is decomposed by its eigendecomposition,
     * an SVD with σ = |λ| and right vectors sign-flipped: V = U·sign(λ); any
     * other by Golub–Kahan bidiagonalisation + implicit QR.  Both are backward
     * stable: null-space singular values come out at about ε·σ_max, below the
     * §5 cut-off.  GSL's one-sided Jacobi SVD, used here before for up to 128
     * columns, is not: its orthogonality tolerance (10·n·ε) leaves them at up
     * to 5e-14·σ_max, above the cut-off, and it then inverted noise (a
     * rank-8 21×21 Q_θθ gave ‖k‖ = 1.4e13 instead of 16; docs/decisions.md).
     * Both paths condense the matrix here first (eig_sym, svd_bidiag). */
    int st, sym = !tr && r == c;
    for (size_t i = 0; sym && i < r; i++)
        for (size_t j = 0; sym && j < i; j++) sym = gsl_matrix_get(A, i, j) == gsl_matrix_get(A, j, i);
    if (sym) {
        if (!(W = ref_matrix_alloc(r, r))) {
            what = "the eigendecomposition's copy W";
            goto out;
        }
        gsl_matrix_memcpy(W, A);
        st = eig_sym(W, S, U);
        gsl_matrix_free(W), W = NULL;
        gsl_matrix_memcpy(V, U);
        for (size_t k = 0; !st && k < C; k++)
            if (gsl_vector_get(S, k) < 0) {
                gsl_vector_set(S, k, -gsl_vector_get(S, k));
                for (size_t i = 0; i < C; i++) *gsl_matrix_ptr(V, i, k) = -gsl_matrix_get(V, i, k);
            }
    } else {
        st = svd_bidiag(U, V, S);
    }
    if (st == GSL_ENOMEM) {
        what = sym ? "the eigendecomposition's workspace" : "the SVD's workspace";
        goto out;
    }
    if (st) {
        rc = ocn_fail(err, OCN_ENUMERIC, "pseudo-inverse: SVD failed (%s)", gsl_strerror(st));
        goto out;
    }
    double smax = 0;
    for (size_t k = 0; k < C; k++) smax = fmax(smax, gsl_vector_get(S, k));
    double tol = (double)(r > c ? r : c) * DBL_EPSILON * smax, smin = smax;
    /* M = U S Vᵀ  =>  M^† = V S^† Uᵀ;  for the transposed case A = V S Uᵀ, A^† = U S^† Vᵀ */
    /* A^† = L diag(1/σ) Rᵀ over the retained σ (L = V, R = U; transposed case swapped) */
    L = ref_matrix_alloc(c, C), Rm = ref_matrix_alloc(r, C);
    if (!L || !Rm) {
        what = "the factors L, R of the product";
        goto out;
    }
    gsl_matrix_memcpy(L, tr ? U : V);
    gsl_matrix_memcpy(Rm, tr ? V : U);
    for (size_t k = 0; k < C; k++) {
        double s = gsl_vector_get(S, k), f = (s > tol && s != 0.0) ? 1.0 / s : 0.0;
        if (f != 0.0) smin = fmin(smin, s);
        for (size_t i = 0; i < c; i++) *gsl_matrix_ptr(L, i, k) *= f;
    }
    if (ref_gemm(0, 1, 1.0, L, Rm, 0.0, Ainv)) {
        what = "the product's workspace";
        goto out;
    }
    if (cond) *cond = smax > 0 ? smax / smin : 1.0;
out:
    if (what) rc = ocn_fail(err, OCN_ENOMEM, "pseudo-inverse of a %zu x %zu matrix: out of memory allocating %s", r, c, what);
    if (U) gsl_matrix_free(U);
    if (V) gsl_matrix_free(V);
    if (S) gsl_vector_free(S);
    if (W) gsl_matrix_free(W);
    if (L) gsl_matrix_free(L);
    if (Rm) gsl_matrix_free(Rm);
    return rc;
}

int ocn_ref_pinv(const double *A, int r, int c, double *out, double *cond, ocn_error *err)
{
    if (r <= 0 || c <= 0) return ocn_fail(err, OCN_EINVAL, "pseudo-inverse: empty matrix");
    ref_gsl_quiet();
    gsl_matrix_const_view Av = gsl_matrix_const_view_array(A, (size_t)r, (size_t)c);
    gsl_matrix_view Ov = gsl_matrix_view_array(out, (size_t)c, (size_t)r);
    return ref_pinv_m(&Av.matrix, &Ov.matrix, cond, err);
}
