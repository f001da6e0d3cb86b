/* The optimized step (SPEC §5–§8), written once for REAL = double and float
 * (step_f64.c / step_f32.c include this file).  Nothing here forms an m x m
 * matrix, a Jacobian, or a feedback gain K (§7):
 *   - value Hessians are carried per sample as v_xx = Zᵀ... stored as Zt (r x n
 *     rows per sample) and a signed S (r x r);
 *   - a parameter vector of a dense player is kept in its vec([W b]) order,
 *     which is the row-major (in+1) x out matrix "Tm", so a per-sample gradient
 *     q = a ⊗ g is the rank-one Tm = a gᵀ and every contraction is a GEMM;
 *   - curvature: sgd and rmsprop elementwise (the §5 rcond rule applied per
 *     entry), kfac through its two factors, coop-kfac through the embedded
 *     factors (§6) — Cholesky where the damping keeps a factor safely above
 *     the §5 cut-off, the eigendecomposition pseudo-inverse otherwise —,
 *     exact (GN) and gn-outer through a low-rank core of size B·r (§7):
 *     the Gram UᵀU's eigendecomposition and the graded symmetric core
 *     μΛ⁻¹ + VᵀDV, applied in push-through forms to vectors kept in
 *     coefficient form (v = Z cf) — no explicit inverse of a Woodbury
 *     capacitance, whose cancellation squared the condition number (§10 rev. 2);
 *   - the feedback is applied as M^† mean_i q_θ^(i) S'^(i) (q_x^(i)ᵀ δx^(i));
 *   - §10 perturbation runs (`pert`) perturb the inputs, every matrix handed
 *     to a factorisation and every stage term as formed (PVEC/PMAT/PSYM). */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "workspace.h"

#define CAT2_(a, b) a##_##b
#define CAT2(a, b) CAT2_(a, b)
#define FN(name) CAT2(name, SFX)

/* ---- the backend contract (backend.h): ops on views ---- */

/* BLAS-style call sites, turned into views: op(A) is m x k, op(B) k x n.  A
 * contract violation is recorded in bk (checked after the step). */
static void FN(gemm_v)(ocn_backend *bk, int ta, int tb, int m, int n, int k, double alpha, const REAL *A, int lda,
                       const REAL *B, int ldb, double beta, REAL *C, int ldc)
{
    bk->gemm_flops += 2.0 * m * n * k; /* make bench: gemm% (issue 11) */
    bk->gemm(bk, PREC, ta, tb, alpha, ocn_view_of(A, ta ? k : m, ta ? m : k, lda),
             ocn_view_of(B, tb ? n : k, tb ? k : n, ldb), beta, ocn_view_of(C, m, n, ldc));
}
static int FN(syev_v)(ocn_backend *bk, int n, REAL *A, REAL *w)
{
    return bk->syev(bk, PREC, ocn_view_of(A, n, n, n), ocn_view_of(w, n ? 1 : 0, n, n));
}
static int FN(gesv_v)(ocn_backend *bk, int n, int nrhs, REAL *A, int *ipiv, REAL *B)
{
    return bk->gesv(bk, PREC, ocn_view_of(A, n, n, n), ipiv, ocn_view_of(B, n, nrhs, nrhs));
}
static int FN(spdinv_v)(ocn_backend *bk, int n, REAL *A) { return bk->spdinv(bk, PREC, ocn_view_of(A, n, n, n)); }
#define GEMM(bk, ...) FN(gemm_v)((bk), __VA_ARGS__)
#define SYEV(bk, ...) FN(syev_v)((bk), __VA_ARGS__)
#define GESV(bk, ...) FN(gesv_v)((bk), __VA_ARGS__)
#define SPDINV(bk, ...) FN(spdinv_v)((bk), __VA_ARGS__)
/* the step's named phases (backend.h): labels for the checking backend's messages */
#define PHASE(bk, ...)                                                                                                 \
    do {                                                                                                               \
        if ((bk)->phase) {                                                                                             \
            char ph_[96];                                                                                              \
            snprintf(ph_, sizeof ph_, __VA_ARGS__);                                                                    \
            (bk)->phase((bk), ph_);                                                                                    \
        }                                                                                                              \
    } while (0)

/* ---- small helpers ---- */

/* Every buffer of the step comes from its workspace (workspace.h): KEEP for
 * what lives until the step ends, TMP for a function's temporaries (released
 * with the mark taken at its entry).  A failure longjmps to the step's entry
 * (no allocation here returns NULL). */
#define KEEP(ws, n, what) ((REAL *)ocn_ws_keep((ws), (size_t)(n) * sizeof(REAL), (what)))
#define TMP(ws, n, what) ((REAL *)ocn_ws_tmp((ws), (size_t)(n) * sizeof(REAL), (what)))
#define TMPRAW(ws, n, what) ((REAL *)ocn_ws_tmp_raw((ws), (size_t)(n) * sizeof(REAL), (what)))

static REAL FN(dotv)(const REAL *a, const REAL *b, int n)
{
    REAL s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static REAL FN(act)(ocn_act a, REAL h)
{
    switch (a) {
    case OCN_ACT_TANH: return RTANH(h);
    case OCN_ACT_RELU: return h > 0 ? h : 0;
    case OCN_ACT_SIGMOID: return 1 / (1 + REXP(-h));
    default: return h;
    }
}

static REAL FN(dact)(ocn_act a, REAL h)
{
    switch (a) {
    /* forms with full relative accuracy where σ saturates (docs/decisions.md
     * "Activation derivatives"): 1 − s² loses it in f32 (σ' ≈ 3e-5 came out 2e-3 off);
     * this precision's math functions (issue 11) */
    case OCN_ACT_TANH: { REAL c = RCOSH(h); return 1 / (c * c); }
    case OCN_ACT_RELU: return h > 0 ? 1 : 0;
    case OCN_ACT_SIGMOID: { REAL e = REXP(h < 0 ? h : -h); return e / ((1 + e) * (1 + e)); }
    default: return 1;
    }
}

/* Pseudo-inverse of a symmetric matrix in place by eigendecomposition with
 * the §5 rcond rule (n·eps·|λ|max).  Returns the backend status, or
 * OPT_UNRESOLVED when `floor` > 0 (a lower bound on every eigenvalue, as √γ
 * is for a damped factor) clears the float64 cut-off — so the SPEC's float64
 * pseudo-inverse keeps every direction — and the rule would drop one at this
 * precision. */
#ifndef OPT_UNRESOLVED
#define OPT_UNRESOLVED 1000
#define OPT_NONFINITE 1001 /* the matrix holds NaN/Inf: the precision overflowed upstream */
#endif
static int FN(sym_pinv_keep)(ocn_backend *bk, ocn_ws *ws, REAL *A, int n, double floor)
{
    size_t mk = ocn_ws_mark(ws);
    REAL *V = TMPRAW(ws, (size_t)n * n, "the eigenvectors of a factor's pseudo-inverse"),
         *w = TMPRAW(ws, n, "the eigenvalues of a factor's pseudo-inverse");
    /* scaled by a power of two (exact) to entries of order 1 first: a factor
     * of entries ~1e-30 made float32's ssyev fail to converge (fuzzer game
     * ef9f9aaceedcf9a6); (2^-e F)^† = 2^-e F^†, and the §5 rule is relative */
    double amax = 0;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        if (!isfinite(A[i])) {
            ocn_ws_release(ws, mk);
            return OPT_NONFINITE;
        }
        amax = fmax(amax, fabs((double)A[i]));
    }
    int ex = 0;
    if (amax > 0 && isfinite(amax)) frexp(amax, &ex);
    for (size_t i = 0; i < (size_t)n * n; i++) V[i] = (REAL)ldexp((double)A[i], -ex);
    int st = SYEV(bk, n, V, w);
    if (!st) {
        for (int k = 0; k < n; k++) w[k] = (REAL)ldexp((double)w[k], ex);
        REAL mx = 0;
        for (int k = 0; k < n; k++) mx = fabs(w[k]) > mx ? (REAL)fabs(w[k]) : mx;
        REAL tol = (REAL)n * EPS * mx;
        int keep_all = floor > (double)n * DBL_EPSILON * (double)mx;
        for (int k = 0; k < n && keep_all; k++)
            if (!(fabs(w[k]) > tol)) {
                ocn_ws_release(ws, mk);
                return OPT_UNRESOLVED;
            }
        for (int k = 0; k < n; k++) w[k] = fabs(w[k]) > tol ? 1 / w[k] : 0; /* V diag(1/w) Vᵀ */
        REAL *T = TMPRAW(ws, (size_t)n * n, "a factor's pseudo-inverse");
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) T[(size_t)i * n + k] = V[(size_t)i * n + k] * w[k];
        GEMM(bk, 0, 1, n, n, n, 1, T, n, V, n, 0, A, n);
    }
    ocn_ws_release(ws, mk);
    return st;
}

/* Inverse of a KFAC factor F = A + √γI (A positive semidefinite).  Its
 * eigenvalues lie in [√γ, tr F], so when √γ exceeds the §5 cut-off n·ε·tr F
 * with a margin (OPT_CHOL_MARGIN, covering the rounding of the formed A) the
 * pseudo-inverse is the inverse and a Cholesky inverse computes it (several
 * times cheaper than an eigendecomposition).  Otherwise — γ = 0, or √γ too
 * small to lift A's null space above the cut-off (γ = 1e-34: √γ = 1e-17 is
 * below n·ε·‖A‖), or a factor Cholesky rejects — the eigendecomposition
 * pseudo-inverse with the rcond rule defines the result, as in the reference.
 * Float32 exception (issue 10, docs/decisions.md "Float32 and damped factors"):
 * a damped factor whose √γ clears the float64 cut-off has every direction
 * kept by the SPEC's float64 rule, so where the float32 rule would drop one
 * (k = 1e11 against 0 was written) the step is refused (OPT_UNRESOLVED).  At
 * √γ below the float64 cut-off (γ = 1e-34) both rules drop the same
 * near-null directions and float32 computes. */
#ifndef OPT_CHOL_MARGIN
#define OPT_CHOL_MARGIN 16
#endif
static int FN(factor_inv)(ocn_backend *bk, ocn_ws *ws, REAL *A, int n, REAL sg)
{
    double tr = 0;
    for (int i = 0; i < n; i++) tr += fabs((double)A[(size_t)i * n + i]);
    if (sg > 0 && (double)sg > OPT_CHOL_MARGIN * (double)n * EPS * tr) {
        size_t mk = ocn_ws_mark(ws);
        REAL *C = TMPRAW(ws, (size_t)n * n, "a KFAC factor's Cholesky copy");
        memcpy(C, A, (size_t)n * n * sizeof(REAL));
        int st = SPDINV(bk, n, C);
        if (!st) memcpy(A, C, (size_t)n * n * sizeof(REAL));
        ocn_ws_release(ws, mk);
        if (!st) return 0;
    }
#if PREC == 32
    /* Float32, √γ below the float32 margin but above the float64 one
     * (docs/decisions.md "Float32 damped factors in float64"): every eigenvalue
     * of F clears the SPEC's float64 cut-off, so F^† = F⁻¹; the float32 factor
     * (exact in float64) is inverted by a float64 Cholesky — its error
     * κ·ε₆₄ < 1/16 of the cut-off's margin — and rounded to float32.  The
     * eigendecomposition path below would cost several times more (width
     * 1024: most of an f32 KFAC step) and refuse where the float32 rule drops
     * a direction the SPEC keeps. */
    if (sg > 0 && (double)sg > OPT_CHOL_MARGIN * (double)n * DBL_EPSILON * tr && bk->supports(bk, OCN_OP_SPDINV, 64)) {
        size_t mk = ocn_ws_mark(ws);
        double *C = ocn_ws_tmp_raw(ws, (size_t)n * n * sizeof(double), "a KFAC factor's float64 Cholesky copy");
        for (size_t i = 0; i < (size_t)n * n; i++) C[i] = (double)A[i];
        int st = bk->spdinv(bk, 64, ocn_view_of(C, n, n, n));
        if (!st)
            for (size_t i = 0; i < (size_t)n * n; i++) A[i] = (REAL)C[i];
        ocn_ws_release(ws, mk);
        if (!st) return 0;
    }
#endif
    return FN(sym_pinv_keep)(bk, ws, A, n, EPS > 1e-10 ? (double)sg : 0.0);
}

static int FN(unresolved)(ocn_error *err, const char *who, const char *mode, REAL sg, int st)
{
    if (st == OPT_NONFINITE)
        return ocn_fail(err, OCN_EUNSUPPORTED,
                        "%s: %s: a factor holds NaN/Inf — the value derivatives overflow float%d upstream: this step "
                        "cannot be computed at this precision; refused", who, mode, (int)(8 * sizeof(REAL)));
    return ocn_fail(err, OCN_EUNSUPPORTED,
                    "%s: %s: a damped factor (√γ = %.3g) has an eigenvalue below the float32 cut-off n·ε·λmax, "
                    "which the SPEC's float64 pseudo-inverse keeps (§5): float32 cannot compute this step; "
                    "use float64 or a larger damping", who, mode, (double)sg);
}

/* OCN_EUNSUPPORTED when a pre-activation is not finite (issue 10:
 * game-1bf23194402e1e5c, float32 overflow turned into 0 by relu). */
static int FN(overflow)(const REAL *H, size_t n, int t, int p, const char *where, ocn_error *err)
{
    for (size_t i = 0; H && i < n; i++)
        if (!isfinite(H[i]))
            return ocn_fail(err, OCN_EUNSUPPORTED,
                            "stage %d player %d: a pre-activation overflows float%d in the %s (%g at element %zu): "
                            "this step cannot be computed at this precision; refused",
                            t, p, (int)(8 * sizeof(REAL)), where, (double)H[i], i);
    return OCN_OK;
}

/* ---- the model in REAL ---- */

typedef struct {
    const ocn_player *pl;
    int t, p, na, out, m;
    int L;       /* §14: output locations of a conv player (H_o·W_o; out = C_o); 1 otherwise.  The
                  * per-sample g's of a conv player are kept as L "virtual rows" (i·L + p) of C_o
                  * entries each, beside A's patch rows, so q_θ^(i) = Σ_p a_(i,p) g_(i,p)ᵀ */
    REAL *th;    /* θ in vec order = Tm (na x out) */
    REAL *wfix;  /* bias player's W (out x in) */
    REAL *H;     /* pre-activation of the nominal forward pass (B x out) */
    REAL *A;     /* a = [z; 1] per sample (B x na); [1] for bias; conv: im2col patches (B·L x na) */
} FN(opl);

/* §14 patch geometry: input index (within the block) of patch entry col =
 * (c·k + i)·k + j at output location p = y·W_o + x, or -1 on zero padding */
static int FN(conv_src)(const ocn_conv *q, int p, int col)
{
    int y = p / q->wo, x = p % q->wo, kk = q->k * q->k;
    int c = col / kk, i = (col % kk) / q->k, j = col % q->k;
    if (q->fault) { int tmp = i; i = j, j = tmp; } /* tests only (ocn/game.h): a transposed kernel */
#if OCN_MUTANT == MUT_CONV_TRANSPOSE
    { int tmp = i; i = j, j = tmp; } /* mutant: the kernel read transposed */
#endif
    int yi = y * q->s + i - q->pad, xi = x * q->s + j - q->pad;
    if (yi < 0 || yi >= q->h || xi < 0 || xi >= q->w) return -1;
    return (c * q->h + yi) * q->w + xi;
}

/* im2col (§14): row i·L + p of Pa (B·L x K + 1) = [sample i's patch at p in (c, i, j) order; 1],
 * the input block at column ci of X (B x n) */
static void FN(im2col)(const ocn_conv *q, const REAL *X, int n, int ci, int B, REAL *Pa)
{
    int K = q->c * q->k * q->k, L = q->ho * q->wo;
    for (int i = 0; i < B; i++)
        for (int p = 0; p < L; p++) {
            REAL *row = Pa + ((size_t)i * L + p) * (size_t)(K + 1);
            for (int col = 0; col < K; col++) {
                int s = FN(conv_src)(q, p, col);
                row[col] = s < 0 ? 0 : X[(size_t)i * n + ci + s];
            }
            row[K] = 1;
        }
}

/* q_θ of one per-sample row in Tm form (na x out): Σ_p a_(i,p) g_(row,p)ᵀ, Gz in virtual rows (L per row) */
static void FN(qexpl)(ocn_backend *bk, const FN(opl) *P, const REAL *Gz, int i, size_t row, REAL *X)
{
    GEMM(bk, 1, 0, P->na, P->out, P->L, 1, P->A + (size_t)i * P->L * P->na, P->na, Gz + row * P->L * P->out, P->out, 0, X,
         P->out);
}

typedef struct {
    const ocn_game *g;
    const ocn_optimizer *opt;
    const ocn_opt_config *cfg;
    ocn_backend *bk;
    int B, T;
    FN(opl) **pl;   /* [t][p] */
    REAL **X;       /* nominal states (B x n_t) */
    REAL *y;
    ocn_perturb *pert; /* §10 perturbation run (NULL: nominal) */
    ocn_opt_sstate *ss; /* §13 carried state (NULL: one step, no state) */
    ocn_ws *ws;         /* the step's workspace (every buffer) */
} FN(omodel);

static void FN(stage_forward)(FN(omodel) *M, int t, REAL *const *th, const REAL *X, REAL *Xn, REAL **Hout)
{
    const ocn_game *g = M->g;
    int B = M->B, n = g->n[t], n1 = g->n[t + 1];
    memset(Xn, 0, (size_t)B * n1 * sizeof(REAL));
    const ocn_stage *st = &g->stages[t];
    size_t mk = ocn_ws_mark(M->ws);
    for (int p = 0; p < st->nplayers; p++) {
        FN(opl) *P = &M->pl[t][p];
        const ocn_player *pl = P->pl;
        int in = pl->in_dim, out = pl->out_dim, ci = g->block_off[t][pl->in_block], co = g->block_off[t + 1][pl->out_block];
        REAL *H = Hout ? Hout[p] : TMP(M->ws, (size_t)B * out, "pre-activations");
        if (pl->kind == OCN_PLAYER_ACT) {
            for (int i = 0; i < B; i++) memcpy(H + (size_t)i * out, X + (size_t)i * n + ci, (size_t)out * sizeof(REAL));
        } else if (pl->kind == OCN_PLAYER_CONV) { /* §14: im2col, one GEMM with Tm = [W b]ᵀ (bias by the trailing 1) */
            int L = P->L, na = P->na, cq = P->out;
            REAL *Pa = TMP(M->ws, (size_t)B * L * na, "conv patches (im2col)"),
                 *Hv = TMP(M->ws, (size_t)B * L * cq, "conv pre-activations");
            FN(im2col)(&pl->conv, X, n, ci, B, Pa);
            GEMM(M->bk, 0, 0, B * L, cq, na, 1, Pa, na, th[p], cq, 0, Hv, cq);
            for (int i = 0; i < B; i++) /* virtual rows (i, p) -> the channel-major block h[o·L + p] */
                for (int q = 0; q < L; q++)
                    for (int o = 0; o < cq; o++) H[(size_t)i * out + (size_t)o * L + q] = Hv[((size_t)i * L + q) * cq + o];
        } else {
            const REAL *b = pl->kind == OCN_PLAYER_DENSE ? th[p] + (size_t)in * out : th[p];
            for (int i = 0; i < B; i++) memcpy(H + (size_t)i * out, b, (size_t)out * sizeof(REAL));
            if (pl->kind == OCN_PLAYER_DENSE) /* H += Z Wᵀ; Wᵀ = rows 0..in-1 of Tm */
                GEMM(M->bk, 0, 0, B, out, in, 1, X + ci, n, th[p], out, 1, H, out);
            else
                GEMM(M->bk, 0, 1, B, out, in, 1, X + ci, n, P->wfix, in, 1, H, out);
        }
        for (int i = 0; i < B; i++)
            for (int r = 0; r < out; r++) Xn[(size_t)i * n1 + co + r] += FN(act)(pl->act, H[(size_t)i * out + r]);
        ocn_ws_release(M->ws, mk);
    }
    for (int k = 0; k < st->ncarries; k++) {
        int f = g->block_off[t][st->carries[k].from], to = g->block_off[t + 1][st->carries[k].to];
        int d = g->block_dim[t][st->carries[k].from];
        for (int i = 0; i < B; i++)
            for (int j = 0; j < d; j++) Xn[(size_t)i * n1 + to + j] += X[(size_t)i * n + f + j];
    }
}

/* Vector-Jacobian product of stage t for R = B·c cotangent rows Y (R x n'):
 * Xc (R x n) = F_xᵀ rows, GH[p] (R x out) = σ'(h) ⊙ Y[out block] (sample = row / c). */
static void FN(stage_vjp)(FN(omodel) *M, int t, const REAL *Y, int c, REAL *Xc, REAL **GH)
{
    const ocn_game *g = M->g;
    int B = M->B, R = B * c, n = g->n[t], n1 = g->n[t + 1];
    if (Xc) memset(Xc, 0, (size_t)R * n * sizeof(REAL)); /* Xc NULL: only the g's are wanted (issue 11 item 4) */
    const ocn_stage *st = &g->stages[t];
    for (int p = 0; p < st->nplayers; p++) {
        FN(opl) *P = &M->pl[t][p];
        const ocn_player *pl = P->pl;
        int in = pl->in_dim, out = pl->out_dim, ci = g->block_off[t][pl->in_block], co = g->block_off[t + 1][pl->out_block];
        REAL *G = GH[p];
        for (int row = 0; row < R; row++) {
            const REAL *h = P->H + (size_t)(row / c) * out;
            for (int o = 0; o < out; o++) G[(size_t)row * out + o] = FN(dact)(pl->act, h[o]) * Y[(size_t)row * n1 + co + o];
        }
        if (!Xc && pl->kind != OCN_PLAYER_CONV) continue;
        if (pl->kind == OCN_PLAYER_ACT) {
            for (int row = 0; row < R; row++)
                for (int o = 0; o < out; o++) Xc[(size_t)row * n + ci + o] += G[(size_t)row * out + o];
        } else if (pl->kind == OCN_PLAYER_CONV) {
            /* §14 Jᵀ: G to virtual rows (row, p) of C_o entries (kept in GH[p] in that layout),
             * patch cotangents Gv Wᵀ (one GEMM), col2im scatter-add; no (C_o H_o W_o) x (C H W) matrix */
            int L = P->L, cq = P->out, K = P->na - 1;
            size_t mk = ocn_ws_mark(M->ws);
            REAL *Gv = TMP(M->ws, (size_t)R * out, "conv cotangents"), *Dp = TMP(M->ws, (size_t)R * L * K, "conv patch cotangents");
            for (int row = 0; row < R; row++)
                for (int q = 0; q < L; q++)
                    for (int o = 0; o < cq; o++) Gv[((size_t)row * L + q) * cq + o] = G[(size_t)row * out + (size_t)o * L + q];
            if (Xc) GEMM(M->bk, 0, 1, R * L, K, cq, 1, Gv, cq, P->th, cq, 0, Dp, K);
            for (int row = 0; row < R && Xc; row++)
                for (int q = 0; q < L; q++)
                    for (int col = 0; col < K; col++) {
                        int s = FN(conv_src)(&pl->conv, q, col);
                        if (s >= 0) Xc[(size_t)row * n + ci + s] += Dp[((size_t)row * L + q) * K + col];
                    }
            memcpy(G, Gv, (size_t)R * out * sizeof(REAL));
            ocn_ws_release(M->ws, mk);
        } else if (pl->kind == OCN_PLAYER_DENSE) { /* G W: W = (Tm rows 0..in-1)ᵀ */
            GEMM(M->bk, 0, 1, R, in, out, 1, G, out, P->th, out, 1, Xc + ci, n);
        } else {
            GEMM(M->bk, 0, 0, R, in, out, 1, G, out, P->wfix, in, 1, Xc + ci, n);
        }
    }
    for (int k = 0; k < st->ncarries && Xc; k++) {
        int f = g->block_off[t][st->carries[k].from], to = g->block_off[t + 1][st->carries[k].to];
        int d = g->block_dim[t][st->carries[k].from];
        for (int row = 0; row < R; row++)
            for (int j = 0; j < d; j++) Xc[(size_t)row * n + f + j] += Y[(size_t)row * n1 + to + j];
    }
}

/* ---- curvature M^† on Tm-form parameter vectors (§5, §6, §7) ---- */

enum { CV_SCALED, CV_RMS, CV_KFAC, CV_COOP, CV_WOOD };

typedef struct {
    int mode, np, r, B;
    FN(opl) *P[REF_MAXP];
    REAL eta;
    REAL *dinv[REF_MAXP];           /* rmsprop: (sqrt(mean q²) + ε)^† elementwise (§5 rule), Tm form */
    REAL *Ai[REF_MAXP], *Gi[REF_MAXP]; /* kfac: factor pseudo-inverses */
    REAL *GV[REF_MAXP];             /* kfac: the value-gradient g's (B x out), borrowed for the gain */
    REAL *AAi[REF_MAXP];            /* kfac: A A^† (B·L x na), formed once for the gain, the value
                                     * quadratic and the feedback (FN(kfac_aai)) */
    REAL *Aw, *Gw;                  /* coop: embedded factor pseudo-inverses */
    int ao[REF_MAXP + 1], go[REF_MAXP + 1];
    /* Low-rank exact / gn-outer (§7): (μI + U D Uᵀ)^†, U = [q_θ^(ij)]/√B over the
     * players of a group (G = UᵀU, size nc = B·upr), D = blockdiag(S') (exact) or
     * blockdiag(cf_i cf_iᵀ) (gn-outer).  With the Gram G = V Λ Vᵀ restricted to the
     * directions it resolves (Vr, Λ) and the graded symmetric core
     *   S = μ Λ⁻¹ + Vrᵀ D Vr      (congruent to μ + Λ^{1/2} VrᵀDVr Λ^{1/2}, no Λ^{±1/2}),
     * the push-through identities give, with Si = S⁻¹,
     *   (μI + UDUᵀ)⁻¹ U c = U z,       z = Vr Λ⁻¹ Si Vrᵀ c
     *   Uᵀ(μI + UDUᵀ)⁻¹ U c = Vr Si Vrᵀ c
     *   Uᵀ(μI + UDUᵀ)⁻¹ x = w,         w = Vr Si Λ⁻¹ Vrᵀ Uᵀx
     *   (μI + UDUᵀ)⁻¹ x = (x − U D w)/μ
     * — only the last (used for λθ alone) subtracts.  The explicit inverse of the
     * Woodbury capacitance μI + UᵀU D cancelled for vectors in range(U) and lost
     * κ² instead of κ; the Λ^{±1/2} similarity lost √cond(G) in float32.
     * Directions the Gram cannot resolve (Λ at its rounding level) are null
     * directions of U (dropped) or weak ones (kept, Λ from the formed U v). */
    int ngroups, grp[REF_MAXP];     /* group of each player (Puv: one per player) */
    REAL mu;
    int upr;                        /* columns of U per sample: r, or 1 (gn-outer without a value Hessian) */
    int qinU;                       /* the value-Hessian factors q^(ij) are U's columns ·√B (exact, and
                                     * gn-outer with D_i = cf_i cf_iᵀ: g_i = Σ_j cf_ij q^(ij)) */
    int gnouter;
    REAL *GU[REF_MAXP];             /* per player the g's that build U (B·upr x out) */
    REAL *D;                        /* B blocks upr x upr; NULL = I */
    int rk[REF_MAXP];                /* per group: directions of U kept */
    REAL *Vr[REF_MAXP], *lr[REF_MAXP], *Si[REF_MAXP]; /* nc x rk, rk, rk x rk */
    /* gn-outer's batch gradient lies in the span of the per-sample gradients
     * Ug = [g_i]/√B (C = Ug Ugᵀ): its gain k = Ug (μ + UgᵀUg)⁻¹ c_g uses that
     * B x B core (eigenvectors Vg, fg = 1/(μ + σ²)), free of D's rank deficit */
    REAL *GUg[REF_MAXP], *Vg[REF_MAXP], *fg[REF_MAXP];
    REAL *sg[REF_MAXP];              /* gradient core: σ² per direction, 0 for null ones */
    int rg[REF_MAXP];                /* its rank */
    long mg[REF_MAXP];               /* parameters of each group: rk == mg (or rg == mg) means range(U)
                                      * is the whole space and x/μ − correction can be avoided */
    double kap[REF_MAXP];            /* emax/μ of the group's μI + UDUᵀ */
    ocn_ws *ws;                      /* the step's workspace: its buffers (KEEP) and temporaries */
    int wd;                          /* weight decay present: Q_θ is not in the gradient's span */
} FN(minv);

/* A A^† of kfac player q (B·L x na, §14 virtual rows), formed on first use and
 * kept for the step: the gain, the value quadratic and the feedback all need
 * it (issue 11 item 4: it was formed three times) */
static const REAL *FN(kfac_aai)(FN(minv) *W, int q, ocn_backend *bk)
{
    if (!W->AAi[q]) {
        FN(opl) *P = W->P[q];
        int rows = W->B * P->L;
        W->AAi[q] = (REAL *)ocn_ws_keep_raw(W->ws, (size_t)rows * P->na * sizeof(REAL), "A A^+ of a kfac player");
        GEMM(bk, 0, 0, rows, P->na, P->na, 1, P->A, P->na, W->Ai[q], P->na, 0, W->AAi[q], P->na);
    }
    return W->AAi[q];
}

/* y = Σ_p a_pk^T X_p g_pk,l for all (k, l): U^T X·√B over one group (gu: c per sample). */
static void FN(wood_ut_with)(FN(minv) *W, int grp, REAL *const *GU, int c, REAL *const *X, REAL *ux,
                             ocn_backend *bk)
{
    int B = W->B;
    memset(ux, 0, (size_t)B * c * sizeof(REAL));
    for (int q = 0; q < W->np; q++) {
        if (W->grp[q] != grp) continue;
        FN(opl) *P = W->P[q];
        int L = P->L; /* conv (§14): virtual rows (k, p), summed over p */
        size_t mk = ocn_ws_mark(W->ws);
        REAL *Y = TMPRAW(W->ws, (size_t)B * L * P->out, "A X for U^T x"); /* A_p X_p */
        GEMM(bk, 0, 0, B * L, P->out, P->na, 1, P->A, P->na, X[q], P->out, 0, Y, P->out);
        for (int k = 0; k < B; k++)
            for (int l = 0; l < c; l++)
                for (int pp = 0; pp < L; pp++)
                    ux[k * c + l] += FN(dotv)(Y + ((size_t)k * L + pp) * P->out, GU[q] + (((size_t)k * c + l) * L + pp) * P->out, P->out);
        ocn_ws_release(W->ws, mk);
    }
}

static void FN(wood_ut)(FN(minv) *W, int grp, REAL *const *X, REAL *ux, ocn_backend *bk)
{
    FN(wood_ut_with)(W, grp, W->GU, W->upr, X, ux, bk);
}

/* X_p += s · Σ_k a_pk (Σ_l w_kl gu_pkl)ᵀ for the players of a group (gu: c per sample). */
static void FN(wood_u_with)(FN(minv) *W, int grp, REAL *const *GU, int c, const REAL *w, REAL s, REAL **X,
                            ocn_backend *bk)
{
    int B = W->B;
    for (int q = 0; q < W->np; q++) {
        if (W->grp[q] != grp) continue;
        FN(opl) *P = W->P[q];
        int L = P->L; /* conv (§14): virtual rows (k, p) */
        size_t mk = ocn_ws_mark(W->ws);
        REAL *Cg = TMP(W->ws, (size_t)B * L * P->out, "U w's gradient rows");
        for (int k = 0; k < B; k++)
            for (int l = 0; l < c; l++)
                for (int pp = 0; pp < L; pp++)
                    for (int o = 0; o < P->out; o++)
                        Cg[((size_t)k * L + pp) * P->out + o] += w[k * c + l] * GU[q][(((size_t)k * c + l) * L + pp) * P->out + o];
        GEMM(bk, 1, 0, P->na, P->out, B * L, s, P->A, P->na, Cg, P->out, 1, X[q], P->out);
        ocn_ws_release(W->ws, mk);
    }
}

static void FN(wood_u)(FN(minv) *W, int grp, const REAL *w, REAL s, REAL **X, ocn_backend *bk)
{
    FN(wood_u_with)(W, grp, W->GU, W->upr, w, s, X, bk);
}

static void FN(wood_ut_minv)(FN(minv) *W, int gr, REAL *const *X, const REAL *c, REAL *out, ocn_backend *bk);

/* Y = M^† X for the players' Tm blocks. */
static void FN(minv_apply)(FN(minv) *W, REAL *const *X, REAL **Y, ocn_backend *bk)
{
    int np = W->np;
    size_t mk = ocn_ws_mark(W->ws);
    if (W->mode == CV_SCALED || W->mode == CV_RMS) {
        for (int q = 0; q < np; q++)
            for (int j = 0; j < W->P[q]->m; j++) Y[q][j] = W->eta * X[q][j] * (W->mode == CV_RMS ? W->dinv[q][j] : 1);
    } else if (W->mode == CV_KFAC) { /* η Ai X Gi (Tm form of vec(G^† mat(x) A^†)) */
        for (int q = 0; q < np; q++) {
            FN(opl) *P = W->P[q];
            REAL *T = TMPRAW(W->ws, P->m, "A^+ X of a kfac application");
#if OCN_MUTANT == MUT_KFAC_TRANSPOSE
            /* mutant: θ read in the wrong vec order, i.e. G ⊗ A instead of A ⊗ G */
            GEMM(bk, 0, 0, P->out, P->na, P->out, 1, W->Gi[q], P->out, X[q], P->na, 0, T, P->na);
            GEMM(bk, 0, 0, P->out, P->na, P->na, W->eta, T, P->na, W->Ai[q], P->na, 0, Y[q], P->na);
#else
            GEMM(bk, 0, 0, P->na, P->out, P->na, 1, W->Ai[q], P->na, X[q], P->out, 0, T, P->out);
            GEMM(bk, 0, 0, P->na, P->out, P->out, W->eta, T, P->out, W->Gi[q], P->out, 0, Y[q], P->out);
#endif
            ocn_ws_release(W->ws, mk);
        }
    } else if (W->mode == CV_COOP) { /* Y_u = η Σ_v Aw[u,v] X_v Gw[v,u] (diagonal blocks of the embedding) */
        int naw = W->ao[np], ngw = W->go[np];
        for (int u = 0; u < np; u++) memset(Y[u], 0, (size_t)W->P[u]->m * sizeof(REAL));
        for (int u = 0; u < np; u++)
            for (int v = 0; v < np; v++) {
                FN(opl) *Pu = W->P[u], *Pv = W->P[v];
                REAL *T = TMPRAW(W->ws, (size_t)Pu->na * Pv->out, "Aw X of a coop-kfac application");
                GEMM(bk, 0, 0, Pu->na, Pv->out, Pv->na, 1, W->Aw + (size_t)W->ao[u] * naw + W->ao[v], naw, X[v], Pv->out, 0,
                     T, Pv->out);
                GEMM(bk, 0, 0, Pu->na, Pu->out, Pv->out, W->eta, T, Pv->out, W->Gw + (size_t)W->go[v] * ngw + W->go[u], ngw,
                     1, Y[u], Pu->out);
                ocn_ws_release(W->ws, mk);
            }
    } else if (W->GUg[0]) { /* gn-outer, gradient core: η (x − Ug Vg diag(fg) Vgᵀ Ugᵀ x)/μ */
        int B = W->B;
        for (int q = 0; q < np; q++)
            for (int j = 0; j < W->P[q]->m; j++) Y[q][j] = W->eta / W->mu * X[q][j];
        REAL *ux = TMP(W->ws, B, "gradient-core coefficients"), *t = TMP(W->ws, B, "gradient-core coefficients"),
             *z = TMP(W->ws, B, "gradient-core coefficients");
        REAL sb = (REAL)(1.0 / sqrt((double)B));
        for (int gr = 0; gr < W->ngroups; gr++) {
            FN(wood_ut_with)(W, gr, W->GUg, 1, X, ux, bk);
            /* x = Ug a exactly: M^† x = Ug (μ + G)⁻¹ G⁺ Ugᵀ x, no 1/μ — when G⁺ (σ²max/σ²min)
             * amplifies less than 1/μ does ((μ + σ²max)/μ) */
            double smx = 0, smn = INFINITY;
            for (int k = 0; k < B; k++)
                if (W->sg[gr][k] > 0) smx = fmax(smx, W->sg[gr][k]), smn = fmin(smn, W->sg[gr][k]);
            int full = W->rg[gr] >= W->mg[gr] && smx / smn < ((double)W->mu + smx) / W->mu;
            for (int k = 0; k < B; k++) {
                REAL a = 0;
                for (int i = 0; i < B; i++) a += W->Vg[gr][(size_t)i * B + k] * ux[i] * sb;
                t[k] = a * W->fg[gr][k] * (full ? (W->sg[gr][k] > 0 ? 1 / W->sg[gr][k] : 0) : 1);
            }
            for (int i = 0; i < B; i++) z[i] = FN(dotv)(W->Vg[gr] + (size_t)i * B, t, B);
            if (full)
                for (int q = 0; q < np; q++)
                    if (W->grp[q] == gr) memset(Y[q], 0, (size_t)W->P[q]->m * sizeof(REAL));
            FN(wood_u_with)(W, gr, W->GUg, 1, z, full ? W->eta * sb : -W->eta * sb / W->mu, Y, bk);
        }
    } else { /* low-rank per group: η (x − U D w)/μ, w = Uᵀ M^† x */
        int nc = W->B * W->upr, c = W->upr;
        for (int q = 0; q < np; q++)
            for (int j = 0; j < W->P[q]->m; j++) Y[q][j] = W->eta / W->mu * X[q][j];
        REAL *w = TMP(W->ws, nc, "low-rank coefficients"), *dw = TMP(W->ws, nc, "low-rank coefficients");
        for (int gr = 0; gr < W->ngroups; gr++) {
            int rk = W->rk[gr];
            double lmx = 0, lmn = INFINITY;
            for (int k = 0; k < rk; k++) lmx = fmax(lmx, W->lr[gr][k]), lmn = fmin(lmn, W->lr[gr][k]);
            /* range(U) is the whole space: x = U G⁺Uᵀx, M^† x = U Vr Λ⁻¹ Si Λ⁻¹ Vrᵀ Uᵀx, no 1/μ —
             * when G⁺ amplifies less than 1/μ does (the core's emax/μ) */
            if (rk && rk >= W->mg[gr] && lmx / lmn < W->kap[gr]) {
                size_t mk2 = ocn_ws_mark(W->ws);
                REAL *t = TMP(W->ws, rk, "low-rank coefficients"), *t2 = TMP(W->ws, rk, "low-rank coefficients");
                FN(wood_ut)(W, gr, X, w, bk);
                for (int k = 0; k < nc; k++) w[k] *= (REAL)(1.0 / sqrt((double)W->B));
                GEMM(bk, 1, 0, rk, 1, nc, 1, W->Vr[gr], rk, w, 1, 0, t, 1);
                for (int k = 0; k < rk; k++) t[k] /= W->lr[gr][k];
                GEMM(bk, 0, 0, rk, 1, rk, 1, W->Si[gr], rk, t, 1, 0, t2, 1);
                for (int k = 0; k < rk; k++) t2[k] /= W->lr[gr][k];
                GEMM(bk, 0, 0, nc, 1, rk, 1, W->Vr[gr], rk, t2, 1, 0, dw, 1);
                for (int q = 0; q < np; q++)
                    if (W->grp[q] == gr) memset(Y[q], 0, (size_t)W->P[q]->m * sizeof(REAL));
                FN(wood_u)(W, gr, dw, W->eta * (REAL)(1.0 / sqrt((double)W->B)), Y, bk);
                ocn_ws_release(W->ws, mk2);
                continue;
            }
            FN(wood_ut_minv)(W, gr, X, NULL, w, bk); /* η w */
            for (int k = 0; k < W->B; k++) /* D w */
                for (int a = 0; a < c; a++) {
                    REAL t = 0;
                    for (int b = 0; b < c; b++) t += (W->D ? W->D[((size_t)k * c + a) * c + b] : (REAL)(a == b)) * w[k * c + b];
                    dw[k * c + a] = t;
                }
            FN(wood_u)(W, gr, dw, -(REAL)(1.0 / sqrt((double)W->B)) / W->mu, Y, bk);
        }
    }
    ocn_ws_release(W->ws, mk);
}

/* Y += M^† U c for one low-rank group (coefficients c of U's columns, B·upr):
 * η U Vr Λ⁻¹ Si Vrᵀ c — no cancellation (§7 core above). */
static void FN(wood_apply_coef)(FN(minv) *W, int gr, const REAL *c, REAL **Y, ocn_backend *bk)
{
    int nc = W->B * W->upr, rk = W->rk[gr];
    if (!rk) return;
    size_t mk = ocn_ws_mark(W->ws);
    REAL *t = TMP(W->ws, rk, "low-rank coefficients"), *t2 = TMP(W->ws, rk, "low-rank coefficients"),
         *z = TMP(W->ws, nc, "low-rank coefficients");
    GEMM(bk, 1, 0, rk, 1, nc, 1, W->Vr[gr], rk, c, 1, 0, t, 1);
    GEMM(bk, 0, 0, rk, 1, rk, 1, W->Si[gr], rk, t, 1, 0, t2, 1);
    for (int k = 0; k < rk; k++) t2[k] /= W->lr[gr][k];
    GEMM(bk, 0, 0, nc, 1, rk, 1, W->Vr[gr], rk, t2, 1, 0, z, 1);
    FN(wood_u)(W, gr, z, W->eta * (REAL)(1.0 / sqrt((double)W->B)), Y, bk);
    ocn_ws_release(W->ws, mk);
}

/* out (B·upr) = Uᵀ M^† (x + U c) for one low-rank group (X or c may be NULL):
 * η Vr Si (Λ⁻¹ Vrᵀ Uᵀx + Vrᵀ c) — no cancellation. */
static void FN(wood_ut_minv)(FN(minv) *W, int gr, REAL *const *X, const REAL *c, REAL *out, ocn_backend *bk)
{
    int nc = W->B * W->upr, rk = W->rk[gr];
    memset(out, 0, (size_t)nc * sizeof(REAL));
    if (!rk) return;
    size_t mk = ocn_ws_mark(W->ws);
    REAL *ux = TMP(W->ws, nc, "low-rank coefficients"), *t = TMP(W->ws, rk, "low-rank coefficients"),
         *t2 = TMP(W->ws, rk, "low-rank coefficients");
    if (X) {
        FN(wood_ut)(W, gr, X, ux, bk);
        for (int k = 0; k < nc; k++) ux[k] *= (REAL)(1.0 / sqrt((double)W->B));
        GEMM(bk, 1, 0, rk, 1, nc, 1, W->Vr[gr], rk, ux, 1, 0, t, 1);
        for (int k = 0; k < rk; k++) t[k] /= W->lr[gr][k];
    }
    if (c) GEMM(bk, 1, 0, rk, 1, nc, 1, W->Vr[gr], rk, c, 1, 1, t, 1);
    GEMM(bk, 0, 0, rk, 1, rk, 1, W->Si[gr], rk, t, 1, 0, t2, 1);
    GEMM(bk, 0, 0, nc, 1, rk, W->eta, W->Vr[gr], rk, t2, 1, 0, out, 1);
    ocn_ws_release(W->ws, mk);
}

/* The open gain k = M^† Q_θ.  Low rank: Q_θ = λθ + U c with c the batch
 * gradient's coefficients (cf/√B, or 1/√B for U = [g_i]/√B), so only λθ goes
 * through x/μ + correction; other modes apply M^† to Q_θ as formed. */
static void FN(minv_gain)(FN(minv) *W, REAL *const *Qth, REAL *const *lth, const REAL *c, REAL **K, ocn_backend *bk)
{
    size_t mk = ocn_ws_mark(W->ws);
    if (W->mode == CV_KFAC && !W->wd) {
        /* rank-aware (issue 12 item 3): without weight decay Q_θ = (1/B) Aᵀ G is rank ≤ B,
         * so k = η A^† Q_θ G^† = (η/B) (A A^†)ᵀ (G G^†) in O(B·(na² + out² + na·out))
         * instead of the two O(na·out·(na + out)) products — where that is cheaper */
        for (int q = 0; q < W->np; q++) {
            FN(opl) *P = W->P[q];
            int B = W->B * P->L, na = P->na, out = P->out; /* rows: samples (conv: virtual rows, §14) */
            double full = (double)na * out * (na + out), rank = (double)B * ((double)na * na + (double)out * out + (double)na * out);
            REAL *GGi = W->GV[q] && rank < full ? TMPRAW(W->ws, (size_t)B * out, "G G^+ of the kfac gain") : NULL;
            if (!GGi) { /* the dense form for this player */
                FN(minv) W1 = *W; /* shallow: player q alone */
                W1.np = 1, W1.P[0] = P, W1.Ai[0] = W->Ai[q], W1.Gi[0] = W->Gi[q];
                REAL *X1[1] = {Qth[q]}, *Y1[1] = {K[q]};
                FN(minv_apply)(&W1, X1, Y1, bk);
                continue;
            }
            const REAL *AAi = FN(kfac_aai)(W, q, bk);
            GEMM(bk, 0, 0, B, out, out, 1, W->GV[q], out, W->Gi[q], out, 0, GGi, out);
            GEMM(bk, 1, 0, na, out, B, W->eta / (REAL)W->B, AAi, na, GGi, out, 0, K[q], out);
            ocn_ws_release(W->ws, mk);
        }
        return;
    }
    if (W->mode != CV_WOOD) {
        FN(minv_apply)(W, Qth, K, bk);
        return;
    }
    for (int q = 0; q < W->np; q++) memset(K[q], 0, (size_t)W->P[q]->m * sizeof(REAL));
    if (W->GUg[0]) { /* gn-outer: k = η Ug Vg diag(fg) Vgᵀ c_g, c_g = 1/√B */
        int B = W->B;
        REAL *t = TMP(W->ws, B, "gradient-core coefficients"), *z = TMP(W->ws, B, "gradient-core coefficients"),
             sb = (REAL)(1.0 / sqrt((double)B));
        for (int gr = 0; gr < W->ngroups; gr++) {
            for (int k = 0; k < B; k++) {
                REAL a = 0;
                for (int i = 0; i < B; i++) a += W->Vg[gr][(size_t)i * B + k] * sb;
                t[k] = a * W->fg[gr][k];
            }
            for (int i = 0; i < B; i++) z[i] = FN(dotv)(W->Vg[gr] + (size_t)i * B, t, B);
            FN(wood_u_with)(W, gr, W->GUg, 1, z, W->eta * sb, K, bk);
        }
        ocn_ws_release(W->ws, mk);
    } else {
        for (int gr = 0; gr < W->ngroups; gr++) FN(wood_apply_coef)(W, gr, c, K, bk);
    }
    if (!lth) return;
    REAL *Y[REF_MAXP];
    for (int q = 0; q < W->np; q++) Y[q] = TMP(W->ws, W->P[q]->m, "M^+ of the weight-decay part");
    FN(minv_apply)(W, lth, Y, bk);
    for (int q = 0; q < W->np; q++)
        for (int j = 0; j < W->P[q]->m; j++) K[q][j] += Y[q][j];
    ocn_ws_release(W->ws, mk);
}

/* Gram of per-sample gradients of a group: G[(k,l),(k',l')] = Σ_p (a_pk·a_pk')(g_pkl·g_pk'l'). */
static REAL *FN(gram)(FN(minv) *W, int grp, REAL *const *GL, int cl, REAL *const *GR, int cr, int keep, ocn_backend *bk)
{
    int B = W->B;
    REAL *G = keep ? KEEP(W->ws, (size_t)B * cl * B * cr, "the gradient Gram") : TMP(W->ws, (size_t)B * cl * B * cr, "the Gram U^T U");
    size_t mk = ocn_ws_mark(W->ws);
    for (int q = 0; q < W->np; q++) {
        if (W->grp[q] != grp) continue;
        FN(opl) *P = W->P[q];
        if (P->L > 1) { /* conv (§14): q = Σ_p a_p g_pᵀ, so (q·q') = Σ_{p,p'} (a_p·a'_p')(g_p·g'_p') */
            int L = P->L;
            size_t nl = (size_t)B * cl * L, nr = (size_t)B * cr * L, BL = (size_t)B * L;
            REAL *AA = TMPRAW(W->ws, BL * BL, "the conv Gram's location products A A^T"),
                 *GG = TMPRAW(W->ws, nl * nr, "the conv Gram's location products G G^T");
            GEMM(bk, 0, 1, (int)BL, (int)BL, P->na, 1, P->A, P->na, P->A, P->na, 0, AA, (int)BL);
            GEMM(bk, 0, 1, (int)nl, (int)nr, P->out, 1, GL[q], P->out, GR[q], P->out, 0, GG, (int)nr);
            for (int i = 0; i < B * cl; i++)
                for (int j = 0; j < B * cr; j++) {
                    REAL sum = 0;
                    for (int a = 0; a < L; a++)
                        for (int b = 0; b < L; b++)
                            sum += AA[((size_t)(i / cl) * L + a) * BL + (size_t)(j / cr) * L + b] *
                                   GG[((size_t)i * L + a) * nr + (size_t)j * L + b];
                    G[(size_t)i * B * cr + j] += sum;
                }
            ocn_ws_release(W->ws, mk);
            continue;
        }
        REAL *AA = TMPRAW(W->ws, (size_t)B * B, "the Gram's A A^T"), *GG = TMPRAW(W->ws, (size_t)B * cl * B * cr, "the Gram's G G^T");
        GEMM(bk, 0, 1, B, B, P->na, 1, P->A, P->na, P->A, P->na, 0, AA, B);
        GEMM(bk, 0, 1, B * cl, B * cr, P->out, 1, GL[q], P->out, GR[q], P->out, 0, GG, B * cr);
        for (int i = 0; i < B * cl; i++)
            for (int j = 0; j < B * cr; j++) G[(size_t)i * B * cr + j] += AA[(i / cl) * B + j / cr] * GG[(size_t)i * B * cr + j];
        ocn_ws_release(W->ws, mk);
    }
    return G;
}

/* The §7 low-rank core of one group (see FN(minv)): Gram eigendecomposition,
 * symmetric core, the §5 cut-off on the spectrum {μ + h} ∪ {μ} of μI + UDUᵀ.
 * Where μ itself is at or below the cut-off the pseudo-inverse drops the
 * whole complement of range(U) and no formulation around 1/μ holds §10: the
 * regime is refused, naming `who` and μ. */
static int FN(wood_core)(FN(omodel) *M, FN(minv) *W, int gr, const REAL *Sp, int psd, const char *who, ocn_error *err)
{
    ocn_backend *bk = M->bk;
    int B = W->B, c = W->upr, nc = B * c;
    long mg = 0;
    for (int q = 0; q < W->np; q++)
        if (W->grp[q] == gr) mg += W->P[q]->m;
    size_t mk = ocn_ws_mark(W->ws);
    REAL *G = FN(gram)(W, gr, W->GU, c, W->GU, c, 0, bk), *lam = TMP(W->ws, nc, "the Gram's eigenvalues");
    int *keep = ocn_ws_tmp(W->ws, (size_t)nc * sizeof *keep, "the Gram's kept directions");
    REAL *Wm = NULL, *DW = NULL, *H = NULL, *h = NULL, *T1 = NULL, *lk = NULL;
    int rc = OCN_OK, rk = 0;
    if (!G || !lam || !keep) {
        rc = ocn_fail(err, OCN_ENOMEM, "%s: out of memory (%d x %d Gram)", who, nc, nc);
        goto done;
    }
    for (int i = 0; i < nc; i++) /* UᵀU = Gram / B, exactly symmetric */
        for (int j = i; j < nc; j++) {
            REAL v = (G[(size_t)i * nc + j] + G[(size_t)j * nc + i]) / (REAL)(2 * B);
            G[(size_t)i * nc + j] = G[(size_t)j * nc + i] = v;
        }
    PSYM(M->pert, G, nc); /* §10: the Gram as handed to the eigendecomposition */
    double ucol = 0; /* largest column norm of U */
    for (int i = 0; i < nc; i++) ucol = fmax(ucol, sqrt(fabs((double)G[(size_t)i * nc + i])));
    if (SYEV(bk, nc, G, lam)) {
        rc = ocn_fail(err, OCN_ENUMERIC, "%s: eigendecomposition of the %d x %d Gram matrix failed", who, nc, nc);
        goto done;
    }
    REAL lmax = 0;
    for (int k = 0; k < nc; k++) lmax = lam[k] > lmax ? lam[k] : lmax;
    /* Directions the Gram cannot resolve (Λ at its rounding level nc·ε·Λmax) are
     * either null directions of U (U v = 0 exactly; dropped) or weak ones (U v
     * small but real, e.g. nearly collinear inputs in float32; kept, with Λ read
     * off the explicitly formed U v, accurate where the Gram's is not).  Noise is
     * at the rounding level of forming U v: √nc·ε·(largest column norm). */
    REAL *e = TMP(W->ws, nc, "a Gram eigenvector"), *Y[REF_MAXP] = {0};
    lk = TMP(W->ws, nc, "the kept eigenvalues");
    int ok = lk && e;
    for (int q = 0; ok && q < W->np; q++)
        if (W->grp[q] == gr) ok = (Y[q] = TMP(W->ws, W->P[q]->m, "U v of a weak direction")) != NULL;
    double tol = 8 * sqrt((double)nc) * EPS * ucol;
    for (int k = 0; ok && k < nc; k++) {
        REAL l = lam[k];
        if (!(lam[k] > (REAL)nc * EPS * lmax)) {
            for (int i = 0; i < nc; i++) e[i] = G[(size_t)i * nc + k];
            for (int q = 0; q < W->np; q++)
                if (Y[q]) memset(Y[q], 0, (size_t)W->P[q]->m * sizeof(REAL));
            FN(wood_u)(W, gr, e, (REAL)(1.0 / sqrt((double)B)), Y, bk); /* U v */
            double n2 = 0;
            for (int q = 0; q < W->np; q++)
                for (int j = 0; Y[q] && j < W->P[q]->m; j++) n2 += (double)Y[q][j] * Y[q][j];
            if (sqrt(n2) <= tol) continue; /* a null direction of U */
            l = (REAL)n2;
        }
        if (!(l > 0) || !isfinite((double)(W->mu / l))) continue;
        lk[rk] = l;
        keep[rk++] = k;
    }
    if (!ok) {
        rc = ocn_fail(err, OCN_ENOMEM, "%s: out of memory (low-rank core)", who);
        goto done;
    }
    W->rk[gr] = rk;
    W->mg[gr] = mg;
    double emax = W->mu, hmin = INFINITY;
    if (rk) {
        Wm = TMP(W->ws, (size_t)nc * rk, "the low-rank core"), DW = TMP(W->ws, (size_t)nc * rk, "the low-rank core D V");
        H = TMP(W->ws, (size_t)rk * rk, "the low-rank core H");
        h = TMP(W->ws, rk, "the low-rank core's eigenvalues"), T1 = TMP(W->ws, (size_t)rk * rk, "the low-rank core S");
        W->Vr[gr] = KEEP(W->ws, (size_t)nc * rk, "the Gram's kept eigenvectors Vr");
        W->lr[gr] = KEEP(W->ws, rk, "the Gram's kept eigenvalues");
        W->Si[gr] = KEEP(W->ws, (size_t)rk * rk, "the low-rank core's inverse");
        int *ipiv = ocn_ws_tmp(W->ws, (size_t)rk * sizeof *ipiv, "LU pivots");
        for (int k = 0; k < rk; k++) W->lr[gr][k] = lk[k];
        for (int i = 0; i < nc; i++)
            for (int k = 0; k < rk; k++) W->Vr[gr][(size_t)i * rk + k] = G[(size_t)i * nc + keep[k]];
        if (Sp) { /* D Vr, D = blockdiag(D^(b)) */
            for (int b = 0; b < B; b++)
                GEMM(bk, 0, 0, c, rk, c, 1, Sp + (size_t)b * c * c, c, W->Vr[gr] + (size_t)b * c * rk, rk, 0,
                     DW + (size_t)b * c * rk, rk);
        } else {
            memcpy(DW, W->Vr[gr], (size_t)nc * rk * sizeof(REAL));
        }
        GEMM(bk, 1, 0, rk, rk, nc, 1, W->Vr[gr], rk, DW, rk, 0, T1, rk); /* Dr = Vrᵀ D Vr */
        for (int i = 0; i < rk; i++)
            for (int j = i; j < rk; j++) {
                REAL v = (T1[(size_t)i * rk + j] + T1[(size_t)j * rk + i]) / 2;
                T1[(size_t)i * rk + j] = T1[(size_t)j * rk + i] = v;
            }
        /* spectrum of μI + UDUᵀ on range(U): μ + eig(H), H = Λ^{1/2} Dr Λ^{1/2} */
        for (int i = 0; i < rk; i++)
            for (int j = 0; j < rk; j++)
                H[(size_t)i * rk + j] = T1[(size_t)i * rk + j] * (REAL)sqrt((double)W->lr[gr][i] * (double)W->lr[gr][j]);
        if (psd) { /* D ⪰ 0: h ≥ 0, so μ + h ≥ μ; ‖H‖ by power iteration (with a 10% margin) */
            double *x = ocn_ws_tmp(W->ws, (size_t)rk * sizeof *x, "power iteration"),
                   *y = ocn_ws_tmp(W->ws, (size_t)rk * sizeof *y, "power iteration"), hn = 0;
            for (int k = 0; x && k < rk; k++) x[k] = 1 + 0.01 * k;
            for (int it = 0; x && y && it < 40; it++) {
                double nn = 0;
                for (int i = 0; i < rk; i++) {
                    double t = 0;
                    for (int j = 0; j < rk; j++) t += (double)H[(size_t)i * rk + j] * x[j];
                    y[i] = t, nn += t * t;
                }
                double nx = 0;
                for (int i = 0; i < rk; i++) nx += x[i] * x[i];
                hn = sqrt(nn / fmax(nx, DBL_MIN));
                if (!(nn > 0)) break;
                for (int i = 0; i < rk; i++) x[i] = y[i] / sqrt(nn);
            }
            emax = (double)W->mu + 1.1 * hn;
            hmin = W->mu;
        } else {
            if (SYEV(bk, rk, H, h)) {
                rc = ocn_fail(err, OCN_ENUMERIC, "%s: eigendecomposition of the %d x %d low-rank core failed", who, rk, rk);
                goto done;
            }
            for (int k = 0; k < rk; k++) {
                emax = fmax(emax, fabs((double)W->mu + (double)h[k]));
                hmin = fmin(hmin, fabs((double)W->mu + (double)h[k]));
            }
        }
        /* the graded core S = μΛ⁻¹ + Dr, handed to LU (partial pivoting keeps the graded
         * rows' accuracy better than a Cholesky inverse did) */
        for (int k = 0; k < rk; k++) T1[(size_t)k * rk + k] += W->mu / W->lr[gr][k];
        PSYM(M->pert, T1, rk); /* §10: the core as handed to the factorisation */
        for (int k = 0; k < rk; k++) W->Si[gr][(size_t)k * rk + k] = 1;
        int st = GESV(bk, rk, rk, T1, ipiv, W->Si[gr]);
        if (st) {
            rc = ocn_fail(err, OCN_EUNSUPPORTED, "%s: the %d x %d low-rank core is singular (mu = %g): refused", who, rk,
                          rk, (double)W->mu);
            goto done;
        }
        for (int i = 0; i < rk; i++)
            for (int j = i + 1; j < rk; j++) {
                REAL v = (W->Si[gr][(size_t)i * rk + j] + W->Si[gr][(size_t)j * rk + i]) / 2;
                W->Si[gr][(size_t)i * rk + j] = W->Si[gr][(size_t)j * rk + i] = v;
            }
    }
    W->kap[gr] = emax / (double)W->mu;
    /* §5: rcond = m·ε relative to the largest eigenvalue of μI + UDUᵀ (ε of
     * float64: the SPEC's cut-off; in float32 at least B·upr·ε₃₂, the rounding
     * level of the eigenproblems actually solved).  μ must clear it with the
     * margin OPT_CHOL_MARGIN (then every eigenvalue μ on the complement is kept
     * and the inverse is the pseudo-inverse); an eigenvalue μ + h of an
     * indefinite S' near zero would be dropped by the pseudo-inverse: refused too. */
    double cut = fmax((double)mg * DBL_EPSILON, (double)nc * EPS) * emax;
    if (!((double)W->mu > OPT_CHOL_MARGIN * cut)) {
        rc = ocn_fail(err, OCN_EUNSUPPORTED,
                      "%s: %s curvature with mu = %g (weight_decay + damping, or damping for gn-outer) is not safely "
                      "above the SPEC §5 pseudo-inverse cut-off %g (rcond*|C + mu I|, m = %ld, |C + mu I| = %g): "
                      "the low-rank (Woodbury) formulation cannot hold §10 here; the optimized path refuses this "
                      "regime (raise damping, or use the reference)",
                      who, W->qinU && !W->gnouter ? "exact" : "gn-outer", (double)W->mu, cut, mg, emax);
        goto done;
    }
    if (!(hmin > OPT_CHOL_MARGIN * cut)) {
        rc = ocn_fail(err, OCN_EUNSUPPORTED,
                      "%s: mu I + U D U^T has an eigenvalue %g at or near the SPEC §5 cut-off %g (an indefinite value "
                      "Hessian factor S'): the pseudo-inverse drops it, the low-rank formulation cannot; refused",
                      who, hmin, cut);
        goto done;
    }
done:
    (void)Wm;
    ocn_ws_release(W->ws, mk);
    return rc;
}

/* ---- §13 carried state ---- */

/* The buffer a step writes (`nx`) of a factor set, allocated on first use;
 * NULL when out of memory.  `dims` sets the factor dimensions. */
static ocn_opt_fstate *FN(fs_prepare)(ocn_ws *ws, ocn_opt_sstate *ss, ocn_opt_fstate *fs, int na, int out, int m)
{
    int nx = 1 - ss->cur;
    if (!fs->A[0] && !fs->v[0]) {
        fs->na = na, fs->out = out, fs->m = m;
        int ok = !ocn_ws_fault(ws); /* tests: the countdown of workspace.h covers the state's buffers too */
        for (int b = 0; b < 2; b++) {
            if (m) {
                ok = ok && (fs->v[b] = calloc((size_t)m, sizeof(double)));
            } else {
                fs->A[b] = calloc((size_t)na * na, sizeof(double)), fs->Ai[b] = calloc((size_t)na * na, sizeof(double));
                fs->G[b] = calloc((size_t)out * out, sizeof(double)), fs->Gi[b] = calloc((size_t)out * out, sizeof(double));
                ok = ok && fs->A[b] && fs->Ai[b] && fs->G[b] && fs->Gi[b];
            }
        }
        if (!ok) { /* nothing half-allocated stays behind */
            for (int b = 0; b < 2; b++) {
                free(fs->A[b]), free(fs->Ai[b]), free(fs->G[b]), free(fs->Gi[b]), free(fs->v[b]);
                fs->A[b] = fs->Ai[b] = fs->G[b] = fs->Gi[b] = fs->v[b] = NULL;
            }
            return NULL;
        }
    }
    fs->have[nx] = 0;
    return fs;
}

/* §13 moving average of a statistic (n values, in place in `x`, REAL arithmetic):
 * x ← ρ·old + (1 − ρ)·x, the batch statistic itself at the first step (no bias
 * correction) and when ρ = 0 (so the one-step semantics is bit-identical); the
 * result is stored in `save`. */
static void FN(ema)(REAL *x, size_t n, const double *old, int have_old, double rho, double *save)
{
    if (have_old && rho != 0) {
        REAL r = (REAL)rho, r1 = (REAL)(1 - rho);
#if OCN_MUTANT == MUT_EMA_NO_1MRHO
        r1 = 1; /* mutant: the (1 − ρ) weight of the new statistic missing */
#endif
        for (size_t i = 0; i < n; i++) x[i] = r * (REAL)old[i] + r1 * x[i];
    }
    for (size_t i = 0; i < n; i++) save[i] = (double)x[i];
}

/* A damped KFAC factor's pseudo-inverse in place: F holds the batch factor
 * (n x n, undamped) and becomes (avg + √γI)^†.  With a state `fs` (`which`: 0
 * = A, 1 = G) the average of §13 replaces the batch factor and the inverse is
 * recomputed only at a refresh step (s ≡ 0 mod T_r, or no earlier inverse);
 * in between the stored (stale) one is used.  §10: the damped matrix is
 * perturbed as handed to the factorisation, i.e. only when one happens. */
static int FN(kfac_factor)(FN(omodel) *M, ocn_opt_fstate *fs, int which, REAL *F, int n, REAL sg)
{
    ocn_opt_sstate *ss = M->ss;
    int refresh = 1;
    double *inv = NULL;
    if (fs) {
        int cur = ss->cur, nx = 1 - cur;
        FN(ema)(F, (size_t)n * n, which ? fs->G[cur] : fs->A[cur], fs->have[cur], ss->rho, which ? fs->G[nx] : fs->A[nx]);
#if OCN_MUTANT == MUT_REFRESH_OFF_BY_ONE
        refresh = !fs->have[cur] || ss->s % ss->refresh == 1 % ss->refresh; /* mutant: off by one */
#else
        refresh = !fs->have[cur] || ss->s % ss->refresh == 0; /* §13: s ≡ 0 (mod T_r) */
#endif
        inv = which ? fs->Gi[nx] : fs->Ai[nx];
        if (!refresh) { /* the operator of the last refresh, as stored */
            const double *old = which ? fs->Gi[cur] : fs->Ai[cur];
            for (size_t i = 0; i < (size_t)n * n; i++) F[i] = (REAL)old[i], inv[i] = old[i];
            return 0;
        }
    }
    for (int i = 0; i < n; i++) F[(size_t)i * n + i] += sg;
    PSYM(M->pert, F, n); /* §10: the damped factor as handed to the inverse */
    int st = FN(factor_inv)(M->bk, M->ws, F, n, sg);
    if (!st && inv)
        for (size_t i = 0; i < (size_t)n * n; i++) inv[i] = (double)F[i];
    return st;
}

/* Builds M^† for the players P of one expansion.  GHv: value-gradient g's (B x out),
 * GHz: value-Hessian factor g's (B·r x out), Sp: incoming S' (B x r x r), cf: the
 * incoming value's coefficients (v'^(i) = Σ_j cf_ij Z'^(ij), B x r).  `who` names
 * the stage and lane for messages. */
static int FN(minv_setup)(FN(omodel) *M, FN(minv) *W, int np, FN(opl) **P, REAL **GHv, REAL **GHz, const REAL *Sp,
                          const REAL *cf, int r, const char *who, ocn_error *err)
{
    const ocn_optimizer *o = M->opt;
    ocn_backend *bk = M->bk;
    int B = M->B;
    memset(W, 0, sizeof *W);
    W->ws = M->ws;
    W->wd = M->g->weight_decay != 0;
    W->np = np, W->r = r, W->B = B, W->eta = (REAL)o->lr;
    size_t mk = ocn_ws_mark(M->ws); /* the temporaries of the statistics (W's own buffers are KEEP) */
    for (int q = 0; q < np; q++) W->P[q] = P[q];
    REAL sg = (REAL)sqrt(o->damping);
#if OCN_MUTANT == MUT_DAMP_TWICE
    sg *= 2;
#endif
    if ((o->zero & OCN_ZERO_MID) || o->curvature == OCN_CURV_SGD) {
        W->mode = CV_SCALED;
        return OCN_OK;
    }
    if (o->curvature == OCN_CURV_RMSPROP) { /* mean_i q_i ⊙ q_i = (1/B) Σ_i (a_i ⊙ a_i)(g_i ⊙ g_i)ᵀ */
        W->mode = CV_RMS;
        long mt = 0;
        double mx = 0;
        for (int q = 0; q < np; q++) {
            REAL *A2 = TMPRAW(M->ws, (size_t)B * P[q]->na, "rmsprop's a ⊙ a"), *G2 = TMPRAW(M->ws, (size_t)B * P[q]->out, "rmsprop's g ⊙ g");
            W->dinv[q] = KEEP(M->ws, P[q]->m, "rmsprop's diagonal");
            if (P[q]->L > 1) { /* conv (§14): q_i = Σ_p a_(i,p) g_(i,p)ᵀ is not rank one: formed per sample */
                REAL *Qi = TMPRAW(M->ws, P[q]->m, "a conv per-sample gradient");
                for (int i = 0; i < B; i++) {
                    FN(qexpl)(bk, P[q], GHv[q], i, (size_t)i, Qi);
                    for (int j = 0; j < P[q]->m; j++) W->dinv[q][j] += Qi[j] * Qi[j] / (REAL)B;
                }
            } else {
                for (int i = 0; i < B * P[q]->na; i++) A2[i] = P[q]->A[i] * P[q]->A[i];
                for (int i = 0; i < B * P[q]->out; i++) G2[i] = GHv[q][i] * GHv[q][i];
                GEMM(bk, 1, 0, P[q]->na, P[q]->out, B, (REAL)(1.0 / B), A2, P[q]->na, G2, P[q]->out, 0, W->dinv[q], P[q]->out);
            }
            if (M->ss) { /* §13: v_s = ρ v_{s−1} + (1 − ρ) v̂_s, before the square root and ε */
                ocn_opt_fstate *fs = FN(fs_prepare)(M->ws, M->ss, &M->ss->pl[P[q]->t][P[q]->p], 0, 0, P[q]->m);
                if (!fs) return ocn_fail(err, OCN_ENOMEM, "%s: out of memory (rmsprop state)", who);
                int cur = M->ss->cur;
                FN(ema)(W->dinv[q], (size_t)P[q]->m, fs->v[cur], fs->have[cur], M->ss->rho, fs->v[1 - cur]);
                fs->have[1 - cur] = 1;
            }
            for (int j = 0; j < P[q]->m; j++) W->dinv[q][j] = (REAL)sqrt(W->dinv[q][j]) + (REAL)o->eps;
            PVEC(M->pert, W->dinv[q], P[q]->m); /* §10: the diagonal before its elementwise inverse */
            for (int j = 0; j < P[q]->m; j++) mx = fmax(mx, fabs((double)W->dinv[q][j]));
            mt += P[q]->m;
            ocn_ws_release(M->ws, mk);
        }
        /* §5 pseudo-inverse of the diagonal C (joint over the expansion's players):
         * entries at or below m·ε·max|C_jj| are treated as zero (ε of float64: the
         * SPEC's value, computed elementwise in either precision) */
        double cut = (double)mt * DBL_EPSILON * mx;
        for (int q = 0; q < np; q++)
            for (int j = 0; j < P[q]->m; j++) {
                double d = W->dinv[q][j];
                W->dinv[q][j] = fabs(d) > cut ? (REAL)(1.0 / d) : 0;
            }
        return OCN_OK;
    }
    int coop = o->curvature == OCN_CURV_COOP_KFAC && o->game == OCN_GAME_GR && np > 1 && !(o->zero & OCN_ZERO_PUV);
    if (o->curvature == OCN_CURV_KFAC || (o->curvature == OCN_CURV_COOP_KFAC && !coop)) {
        W->mode = CV_KFAC;
        for (int q = 0; q < np; q++) {
            int na = P[q]->na, out = P[q]->out;
            W->Ai[q] = KEEP(M->ws, (size_t)na * na, "a kfac factor A");
            W->Gi[q] = KEEP(M->ws, (size_t)out * out, "a kfac factor G");
            /* §14 KFC (conv, L locations): A = (1/B) Σ_i Σ_p a_p a_pᵀ, G = (1/B) Σ_i (1/L) Σ_p g_p g_pᵀ
             * over the virtual rows; L = 1 is §5's dense kfac */
            int L = P[q]->L;
            GEMM(bk, 1, 0, na, na, B * L, (REAL)(1.0 / B), P[q]->A, na, P[q]->A, na, 0, W->Ai[q], na);
            GEMM(bk, 1, 0, out, out, B * L, (REAL)(1.0 / ((double)B * L)), GHv[q], out, GHv[q], out, 0, W->Gi[q], out);
            ocn_opt_fstate *fs = NULL; /* §13: per-player averages A_s, G_s */
            if (M->ss && !(fs = FN(fs_prepare)(M->ws, M->ss, &M->ss->pl[P[q]->t][P[q]->p], na, out, 0)))
                return ocn_fail(err, OCN_ENOMEM, "%s: out of memory (kfac state)", who);
            W->GV[q] = GHv[q];
            int st = FN(kfac_factor)(M, fs, 0, W->Ai[q], na, sg);
            if (!st) st = FN(kfac_factor)(M, fs, 1, W->Gi[q], out, sg);
            if (st == OPT_UNRESOLVED || st == OPT_NONFINITE) return FN(unresolved)(err, who, "kfac", sg, st);
            if (st) return ocn_fail(err, OCN_ENUMERIC, "%s: kfac: eigendecomposition of a factor failed", who);
            if (fs) fs->have[1 - M->ss->cur] = 1;
        }
        return OCN_OK;
    }
    if (coop) { /* §6: √γ I added to A_ww, G_ww, embedded pseudo-inverses */
        W->mode = CV_COOP;
        W->ao[0] = W->go[0] = 0;
        for (int q = 0; q < np; q++) W->ao[q + 1] = W->ao[q] + P[q]->na, W->go[q + 1] = W->go[q] + P[q]->out;
        int naw = W->ao[np], ngw = W->go[np];
        REAL *Aall = TMP(M->ws, (size_t)B * naw, "coop-kfac's joint a"), *Gall = TMP(M->ws, (size_t)B * ngw, "coop-kfac's joint g");
        W->Aw = KEEP(M->ws, (size_t)naw * naw, "coop-kfac's joint factor A_ww");
        W->Gw = KEEP(M->ws, (size_t)ngw * ngw, "coop-kfac's joint factor G_ww");
        for (int i = 0; i < B; i++)
            for (int q = 0; q < np; q++) {
                memcpy(Aall + (size_t)i * naw + W->ao[q], P[q]->A + (size_t)i * P[q]->na, (size_t)P[q]->na * sizeof(REAL));
                memcpy(Gall + (size_t)i * ngw + W->go[q], GHv[q] + (size_t)i * P[q]->out, (size_t)P[q]->out * sizeof(REAL));
            }
        GEMM(bk, 1, 0, naw, naw, B, (REAL)(1.0 / B), Aall, naw, Aall, naw, 0, W->Aw, naw);
        GEMM(bk, 1, 0, ngw, ngw, B, (REAL)(1.0 / B), Gall, ngw, Gall, ngw, 0, W->Gw, ngw);
        ocn_ws_release(M->ws, mk);
        ocn_opt_fstate *fs = NULL; /* §13: the stage's embedded joint averages A_ww, G_ww */
        if (M->ss && !(fs = FN(fs_prepare)(M->ws, M->ss, &M->ss->joint[P[0]->t], naw, ngw, 0)))
            return ocn_fail(err, OCN_ENOMEM, "%s: out of memory (coop-kfac state)", who);
        /* §10: the damped embedded factors are perturbed as handed to the inverse */
        int st = FN(kfac_factor)(M, fs, 0, W->Aw, naw, sg);
        if (!st) st = FN(kfac_factor)(M, fs, 1, W->Gw, ngw, sg);
        if (st == OPT_UNRESOLVED || st == OPT_NONFINITE) return FN(unresolved)(err, who, "coop-kfac", sg, st);
        if (st) return ocn_fail(err, OCN_ENUMERIC, "%s: coop-kfac: eigendecomposition of an embedded factor failed", who);
        if (fs) fs->have[1 - M->ss->cur] = 1;
        return OCN_OK;
    }
    /* low rank (§7): exact, μ = λ + γ, U = [q_θ^(ij)]/√B (q_θ = F_θᵀ Z'), D = S'; gn-outer,
     * μ = γ, C = mean_i g_i g_iᵀ with g_i = Σ_j cf_ij q_θ^(ij): the same U with
     * D_i = cf_i cf_iᵀ, so every vector of the step is in coefficient form.  Without
     * the value Hessian (no_feedback, gn-outer only) U = [g_i]/√B, D = I. */
    W->mode = CV_WOOD;
    int exact = o->curvature == OCN_CURV_EXACT;
    W->mu = (REAL)(exact ? M->g->weight_decay + o->damping : o->damping);
    W->gnouter = !exact;
    W->qinU = GHz != NULL;
    W->upr = W->qinU ? r : 1;
    int puv = (o->zero & OCN_ZERO_PUV) != 0, c = W->upr;
    W->ngroups = puv ? np : 1;
    for (int q = 0; q < np; q++) { /* owned copies: the update pass applies M^† after the stage's buffers are gone */
        size_t len = (size_t)B * c * P[q]->L * P[q]->out; /* conv: virtual rows (§14) */
        W->grp[q] = puv ? q : 0;
        W->GU[q] = KEEP(M->ws, len, "the low-rank factors U");
        memcpy(W->GU[q], W->qinU ? GHz[q] : GHv[q], len * sizeof(REAL));
    }
    if (W->qinU) { /* owned: the update pass applies M^† after the stage's buffers are gone */
        W->D = KEEP(M->ws, (size_t)B * r * r, "the low-rank core D");
        for (int i = 0; i < B; i++)
            for (int j = 0; j < r; j++)
                for (int l = 0; l < r; l++)
                    W->D[((size_t)i * r + j) * r + l] =
                        exact ? Sp[((size_t)i * r + j) * r + l] : cf[(size_t)i * r + j] * cf[(size_t)i * r + l];
    }
    /* D ⪰ 0 (gn-outer by construction; exact when every S' block passes Cholesky) */
    int psd = !exact || !W->qinU;
    if (!psd) {
        REAL *blk = TMP(M->ws, (size_t)r * r, "a block of S'");
        psd = 1;
        for (int i = 0; psd && i < B; i++) {
            memcpy(blk, W->D + (size_t)i * r * r, (size_t)r * r * sizeof(REAL));
            psd = !SPDINV(bk, r, blk);
        }
        ocn_ws_release(M->ws, mk);
    }
    int rc = OCN_OK;
    for (int gr = 0; gr < W->ngroups && !rc; gr++) {
        char w2[256];
        if (puv) snprintf(w2, sizeof w2, "%s player lane %d", who, P[gr]->pl->lane);
        else snprintf(w2, sizeof w2, "%s", who);
        rc = FN(wood_core)(M, W, gr, W->D, psd, w2, err);
    }
    if (!rc && W->qinU && !exact) { /* gn-outer's gradient core (see FN(minv)) */
        for (int q = 0; q < np && !rc; q++) {
            /* g_i = a_i ⊗ Σ_j cf_ij gz_ij: the gradient in the span of the q's (its
             * rounding stays in range(U) instead of leaking where C + μI is μ) */
            int L = P[q]->L, ou = P[q]->out; /* conv (§14): virtual rows (i, p) */
            W->GUg[q] = KEEP(M->ws, (size_t)B * L * ou, "gn-outer's per-sample gradients");
            for (int i = 0; i < B; i++)
                for (int j = 0; j < r; j++)
                    for (int pp = 0; pp < L; pp++)
                        for (int y = 0; y < ou; y++)
                            W->GUg[q][((size_t)i * L + pp) * ou + y] += cf[(size_t)i * r + j] * GHz[q][(((size_t)i * r + j) * L + pp) * ou + y];
        }
        for (int gr = 0; gr < W->ngroups && !rc; gr++) {
            REAL *Gg = FN(gram)(W, gr, W->GUg, 1, W->GUg, 1, 1, bk);
            W->Vg[gr] = Gg, W->fg[gr] = KEEP(M->ws, B, "the gradient core"), W->sg[gr] = KEEP(M->ws, B, "the gradient core");
            W->rg[gr] = 0;
            for (int i = 0; i < B; i++)
                for (int j = i; j < B; j++) {
                    REAL v = (Gg[(size_t)i * B + j] + Gg[(size_t)j * B + i]) / (REAL)(2 * B);
                    Gg[(size_t)i * B + j] = Gg[(size_t)j * B + i] = v;
                }
            PSYM(M->pert, Gg, B); /* §10: the gradient Gram as handed to the eigendecomposition */
            double ucol = 0;
            for (int i = 0; i < B; i++) ucol = fmax(ucol, sqrt(fabs((double)Gg[(size_t)i * B + i])));
            if (SYEV(bk, B, Gg, W->fg[gr])) {
                rc = ocn_fail(err, OCN_ENUMERIC, "%s: eigendecomposition of the %d x %d gradient Gram failed", who, B, B);
                break;
            }
            REAL smax = 0, *e = TMP(M->ws, B, "a gradient-core eigenvector"), *Y[REF_MAXP] = {0};
            for (int k = 0; k < B; k++) smax = W->fg[gr][k] > smax ? W->fg[gr][k] : smax;
            for (int q = 0; q < np; q++)
                if (W->grp[q] == gr) Y[q] = TMP(M->ws, P[q]->m, "U v of a weak gradient direction");
            for (int k = 0; k < B; k++) {
                REAL sk = W->fg[gr][k];
                if (!(sk > (REAL)B * EPS * smax)) { /* unresolved: a null direction (dropped) or a weak one */
                    for (int i = 0; i < B; i++) e[i] = Gg[(size_t)i * B + k];
                    for (int q = 0; q < np; q++)
                        if (Y[q]) memset(Y[q], 0, (size_t)P[q]->m * sizeof(REAL));
                    FN(wood_u_with)(W, gr, W->GUg, 1, e, (REAL)(1.0 / sqrt((double)B)), Y, bk);
                    double n2 = 0;
                    for (int q = 0; q < np; q++)
                        for (int j = 0; Y[q] && j < P[q]->m; j++) n2 += (double)Y[q][j] * Y[q][j];
                    if (sqrt(n2) <= 8 * sqrt((double)B) * EPS * ucol) {
                        W->fg[gr][k] = 0;
                        W->sg[gr][k] = 0;
                        continue;
                    }
                    sk = (REAL)n2;
                }
                W->fg[gr][k] = 1 / (W->mu + sk);
                W->sg[gr][k] = sk;
                W->rg[gr]++;
            }
            ocn_ws_release(M->ws, mk);
        }
    }
    return rc;
}

/* T_i[j][l] = q^(ij)ᵀ M^† q^(il) for every sample, q^(ij) = a_i ⊗ gz_ij (per player). */
static void FN(minv_quad)(FN(minv) *W, REAL *const *GHz, REAL *T, ocn_backend *bk)
{
    int B = W->B, r = W->r, np = W->np;
    memset(T, 0, (size_t)B * r * r * sizeof(REAL));
    size_t mk = ocn_ws_mark(W->ws);
    int conv = 0;
    for (int u = 0; u < np; u++) conv |= W->P[u]->L > 1;
    if (conv && W->mode != CV_WOOD) { /* §14: q^(ij) = Σ_p a_(i,p) g_(ij,p)ᵀ has rank L: formed (Tm form), M^† applied */
        REAL *Q[REF_MAXP], *Y[REF_MAXP];
        for (int u = 0; u < np; u++)
            Q[u] = TMP(W->ws, (size_t)r * W->P[u]->m, "the per-sample q of a conv player"),
            Y[u] = TMP(W->ws, W->P[u]->m, "M^+ q of a conv player");
        for (int i = 0; i < B; i++) {
            for (int u = 0; u < np; u++)
                for (int l = 0; l < r; l++) {
                    FN(opl) *P = W->P[u];
                    if (P->L > 1) FN(qexpl)(bk, P, GHz[u], i, (size_t)i * r + l, Q[u] + (size_t)l * P->m);
                    else
                        for (int c = 0; c < P->na; c++)
                            for (int o = 0; o < P->out; o++)
                                Q[u][(size_t)l * P->m + (size_t)c * P->out + o] = P->A[(size_t)i * P->na + c] * GHz[u][(size_t)(i * r + l) * P->out + o];
                }
            for (int j = 0; j < r; j++) {
                REAL *X[REF_MAXP];
                for (int u = 0; u < np; u++) X[u] = Q[u] + (size_t)j * W->P[u]->m;
                FN(minv_apply)(W, X, Y, bk); /* includes η */
                for (int l = 0; l < r; l++)
                    for (int u = 0; u < np; u++)
                        T[((size_t)i * r + j) * r + l] += FN(dotv)(Y[u], Q[u] + (size_t)l * W->P[u]->m, W->P[u]->m);
            }
        }
        ocn_ws_release(W->ws, mk);
        return;
    }
    if (W->mode == CV_WOOD) { /* q^(ij) = √B U e_(ij): T = η B Vr Si Vrᵀ (diagonal blocks), no cancellation */
        for (int gr = 0; gr < W->ngroups; gr++) {
            int rk = W->rk[gr];
            REAL *VS = TMP(W->ws, (size_t)B * r * rk + 1, "Vr Si");
            if (rk) GEMM(bk, 0, 0, B * r, rk, rk, 1, W->Vr[gr], rk, W->Si[gr], rk, 0, VS, rk);
            for (int i = 0; i < B; i++)
                for (int j = 0; j < r; j++)
                    for (int l = 0; l < r; l++) {
                        int a = i * r + j, b = i * r + l;
                        REAL s = 0;
                        for (int k = 0; k < rk; k++) s += VS[(size_t)a * rk + k] * W->Vr[gr][(size_t)b * rk + k];
                        T[((size_t)i * r + j) * r + l] += W->eta * (REAL)B * s;
                    }
            ocn_ws_release(W->ws, mk);
        }
        return;
    }
    if (W->mode == CV_KFAC) { /* η (a_iᵀ A^† a_i)(g_ijᵀ G^† g_il) with the products done as GEMMs */
        for (int u = 0; u < np; u++) {
            FN(opl) *P = W->P[u];
            const REAL *AA = FN(kfac_aai)(W, u, bk); /* L = 1 here: conv players take the path above */
            REAL *GG = TMPRAW(W->ws, (size_t)B * r * P->out, "G G^+ of the value quadratic");
            GEMM(bk, 0, 0, B * r, P->out, P->out, 1, GHz[u], P->out, W->Gi[u], P->out, 0, GG, P->out);
            for (int i = 0; i < B; i++) {
                REAL sa = FN(dotv)(AA + (size_t)i * P->na, P->A + (size_t)i * P->na, P->na);
                for (int j = 0; j < r; j++)
                    for (int l = 0; l < r; l++)
                        T[((size_t)i * r + j) * r + l] +=
                            W->eta * sa * FN(dotv)(GG + (size_t)(i * r + j) * P->out, GHz[u] + (size_t)(i * r + l) * P->out, P->out);
            }
            ocn_ws_release(W->ws, mk);
        }
        return;
    }
    for (int i = 0; i < B; i++)
        for (int u = 0; u < np; u++)
            for (int v = 0; v < np; v++) {
                if (W->mode != CV_COOP && u != v) continue;
                FN(opl) *Pu = W->P[u], *Pv = W->P[v];
                const REAL *au = Pu->A + (size_t)i * Pu->na, *av = Pv->A + (size_t)i * Pv->na;
                for (int j = 0; j < r; j++)
                    for (int l = 0; l < r; l++) {
                        const REAL *gj = GHz[u] + (size_t)(i * r + j) * Pu->out, *gl = GHz[v] + (size_t)(i * r + l) * Pv->out;
                        REAL s = 0;
                        if (W->mode == CV_SCALED) {
                            s = FN(dotv)(au, au, Pu->na) * FN(dotv)(gj, gl, Pu->out);
                        } else if (W->mode == CV_RMS) {
                            for (int cc = 0; cc < Pu->na; cc++)
                                for (int o = 0; o < Pu->out; o++)
                                    s += au[cc] * au[cc] * gj[o] * gl[o] * W->dinv[u][(size_t)cc * Pu->out + o];
                        } else if (W->mode == CV_KFAC) {
                            REAL sa = 0, sgg = 0;
                            for (int x = 0; x < Pu->na; x++) sa += au[x] * FN(dotv)(W->Ai[u] + (size_t)x * Pu->na, au, Pu->na);
                            for (int x = 0; x < Pu->out; x++) sgg += gj[x] * FN(dotv)(W->Gi[u] + (size_t)x * Pu->out, gl, Pu->out);
                            s = sa * sgg;
                        } else { /* coop: (a_ui Aw[u,v] a_vi)(g_uij Gw[u,v] g_vil) */
                            int naw = W->ao[np], ngw = W->go[np];
                            REAL sa = 0, sgg = 0;
                            for (int x = 0; x < Pu->na; x++)
                                sa += au[x] * FN(dotv)(W->Aw + (size_t)(W->ao[u] + x) * naw + W->ao[v], av, Pv->na);
                            for (int x = 0; x < Pu->out; x++)
                                sgg += gj[x] * FN(dotv)(W->Gw + (size_t)(W->go[u] + x) * ngw + W->go[v], gl, Pv->out);
                            s = sa * sgg;
                        }
                        T[((size_t)i * r + j) * r + l] += W->eta * s;
                    }
            }
}

/* ---- one step ---- */

typedef struct {
    int np, r, fb;         /* players, rank of the incoming value, feedback present */
    FN(opl) *P[REF_MAXP];
    FN(minv) W;
    REAL *k[REF_MAXP];     /* gains, Tm form */
    REAL *GHz[REF_MAXP];   /* σ' ⊙ Z' on each player's outputs (B·r x out) */
    REAL *qxt;             /* q_x = F_xᵀ Z' (B·r x n) */
    REAL *fbk[REF_MAXP];   /* the update pass's feedback K δx per player (its temporaries) */
    REAL *Sp;              /* incoming S' (B x r x r) */
} FN(expn);

typedef struct {
    int r;
    REAL *v, *Zt, *S;      /* B x n, B·r x n, B x r x r */
    REAL *cf;              /* B x r: v^(i) = Σ_j cf_ij Z^(ij) (v lies in the span of Z, §7) */
} FN(lval);

/* estimate.c's model counts these records (a workspace plan, workspace.h) */
const size_t FN(ocn_opt_expn_bytes) = sizeof(FN(expn)) + sizeof(FN(lval));

/* §1/§7 terminal: v = ∇φ, and v_xx = Zᵀ S Z with Z = ∇φ, S = 1 (outer),
 * Z = [e_c − p], S = diag(p) (ce), Z = I, S = I (mse).  lane < 0: GR's φ.
 * Any output width (heap buffers sized by n_T). */
static int FN(terminal)(FN(omodel) *M, int lane, FN(lval) *L, ocn_error *err)
{
    const ocn_game *g = M->g;
    int B = M->B, T = g->T, n = g->n[T], outer = M->opt->terminal == OCN_TERMINAL_OUTER;
    int l0 = lane < 0 ? 0 : lane, l1 = lane < 0 ? (g->separable ? g->nlanes : 1) : lane + 1;
    int r = 0;
    for (int l = l0; l < l1; l++) {
        int d = 0;
        for (int q = 0; q < g->lane_nout[l]; q++) d += g->block_dim[T][g->lane_outputs[l][q]];
        r += outer ? 0 : d;
    }
    if (outer) r = 1;
    L->r = r;
    L->v = KEEP(M->ws, (size_t)B * n, "the terminal value gradient");
    L->Zt = KEEP(M->ws, (size_t)B * r * n, "the terminal value Hessian's factors Z");
    L->S = KEEP(M->ws, (size_t)B * r * r, "the terminal value Hessian's core S");
    L->cf = KEEP(M->ws, (size_t)B * r, "the terminal value's coefficients");
    size_t mk = ocn_ws_mark(M->ws);
    int *idx = ocn_ws_tmp(M->ws, ((size_t)n + 1) * sizeof *idx, "the terminal's output indices"),
        *yi = ocn_ws_tmp(M->ws, ((size_t)n + 1) * sizeof *yi, "the terminal's target indices");
    REAL *p = TMP(M->ws, 2 * (size_t)n, "softmax probabilities"), *q1 = p + n; /* q1 = 1 − p */
    for (int i = 0; i < B; i++) {
        const REAL *x = M->X[T] + (size_t)i * n;
        REAL *v = L->v + (size_t)i * n;
        int col = 0;
        for (int l = l0; l < l1; l++) {
            int d = 0;
            for (int q = 0; q < g->lane_nout[l]; q++) {
                int b = g->lane_outputs[l][q], ypos = 0;
                for (int j = 0; j < g->noutputs && g->outputs[j] != b; j++) ypos += g->block_dim[T][g->outputs[j]];
                for (int j = 0; j < g->block_dim[T][b] && d < n; j++, d++) idx[d] = g->block_off[T][b] + j, yi[d] = ypos + j;
            }
            if (!d) continue;
            if (g->loss == OCN_LOSS_CE) {
                int y = (int)M->y[i];
                if (y < 0 || y >= d) {
                    ocn_ws_release(M->ws, mk);
                    return ocn_fail(err, OCN_EINVAL, "sample %d: ce label %d outside lane %d's %d outputs", i, y, l, d);
                }
                REAL mx = x[idx[0]], s = 0;
                for (int k = 1; k < d; k++) mx = x[idx[k]] > mx ? x[idx[k]] : mx;
                for (int k = 0; k < d; k++) s += REXP(x[idx[k]] - mx);
                for (int k = 0; k < d; k++) p[k] = REXP(x[idx[k]] - mx) / s;
                /* 1 − p_k without cancellation where p_k ≈ 1 (docs/decisions.md
                 * "Softmax derivatives"): Σ_{j≠k} p_j for the one k with p_k ≥ ½ */
                for (int k = 0; k < d; k++) {
                    q1[k] = 1 - p[k];
                    if (p[k] >= (REAL)0.5) {
                        q1[k] = 0;
                        for (int j = 0; j < d; j++) q1[k] += j == k ? 0 : p[j];
                    }
                }
                for (int k = 0; k < d; k++) v[idx[k]] += k == y ? -q1[k] : p[k];
                if (!outer)
                    for (int c = 0; c < d; c++, col++) { /* v = p − e_y = −z_y: cf = −e_y */
                        REAL *z = L->Zt + ((size_t)i * r + col) * n;
                        for (int k = 0; k < d; k++) z[idx[k]] = k == c ? q1[k] : -p[k];
                        L->S[((size_t)i * r + col) * r + col] = p[c];
                        L->cf[(size_t)i * r + col] = c == y ? -1 : 0;
                    }
            } else {
                const REAL *yt = M->y + (size_t)i * g->out_dim;
                for (int k = 0; k < d; k++) v[idx[k]] += x[idx[k]] - yt[yi[k]];
                if (!outer)
                    for (int c = 0; c < d; c++, col++) { /* Z = I on the outputs: cf = x − y */
                        L->Zt[((size_t)i * r + col) * n + idx[c]] = 1;
                        L->S[((size_t)i * r + col) * r + col] = 1;
                        L->cf[(size_t)i * r + col] = x[idx[c]] - yt[yi[c]];
                    }
            }
        }
        if (outer) { /* Z = v: cf = 1 */
            memcpy(L->Zt + (size_t)i * n, v, (size_t)n * sizeof(REAL));
            L->S[i] = 1;
            L->cf[i] = 1;
        }
    }
    ocn_ws_release(M->ws, mk);
    return OCN_OK;
}

/* ---- output (converted to float64) ---- */

static void FN(put)(const ocn_opt_config *cfg, ocn_arrayset *out, int *fail, const REAL *x, int ndim, size_t d0, size_t d1,
                    size_t d2, const char *nm)
{
    if (cfg && cfg->lean && strncmp(nm, "theta_new_", 10)) return; /* a training step: the new parameters only */
    size_t shape[3] = {d0, d1, d2};
    ocn_array *a = ocn_opt_array_reuse(out, nm, ndim, shape); /* a state's step set: no fresh pages */
    if (!a) {
        *fail = 1;
        return;
    }
    for (size_t i = 0; i < a->size; i++) a->data[i] = (double)x[i];
}

/* v_xx^(i) = Ztᵀ S Zt per sample (B x n x n). */
static REAL *FN(form_vxx)(ocn_ws *ws, const FN(lval) *L, int B, int n)
{
    int r = L->r;
    REAL *V = TMP(ws, (size_t)B * n * n, "V_xx formed for output");
    for (int i = 0; i < B; i++)
        for (int j = 0; j < r; j++)
            for (int l = 0; l < r; l++) {
                REAL s = L->S[((size_t)i * r + j) * r + l];
                if (s == 0) continue;
                const REAL *zj = L->Zt + ((size_t)i * r + j) * n, *zl = L->Zt + ((size_t)i * r + l) * n;
                for (int a = 0; a < n; a++)
                    for (int b = 0; b < n; b++) V[((size_t)i * n + a) * n + b] += zj[a] * s * zl[b];
            }
    return V;
}

/* K^(i) = M^† q_θ^(i) S'^(i) q_x^(i)ᵀ, formed only for output (B x m_p x n per player). */
static void FN(form_K)(FN(omodel) *M, FN(expn) *E, int n, REAL **K)
{
    int B = M->B, r = E->r, np = E->np;
    REAL *X[REF_MAXP], *Y[REF_MAXP];
    size_t mk = ocn_ws_mark(M->ws);
    for (int q = 0; q < np; q++) {
        X[q] = TMP(M->ws, E->P[q]->m, "a q formed for K"), Y[q] = TMP(M->ws, E->P[q]->m, "M^+ q formed for K");
        memset(K[q], 0, (size_t)B * E->P[q]->m * n * sizeof(REAL));
    }
    int coef = E->W.mode == CV_WOOD && E->W.qinU;
    REAL *e1 = coef ? TMP(M->ws, (size_t)B * r, "unit coefficients") : NULL;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < r; j++) {
            if (coef) { /* q^(ij) = √B U e_(ij): M^† q without cancellation */
                for (int q = 0; q < np; q++) memset(Y[q], 0, (size_t)E->P[q]->m * sizeof(REAL));
                e1[i * r + j] = (REAL)sqrt((double)B);
                for (int gr = 0; gr < E->W.ngroups; gr++) FN(wood_apply_coef)(&E->W, gr, e1, Y, M->bk);
                e1[i * r + j] = 0;
            } else {
                for (int q = 0; q < np; q++) { /* q^(ij) = a_i g_ijᵀ (conv, §14: Σ_p a_(i,p) g_(ij,p)ᵀ) */
                    FN(opl) *P = E->P[q];
                    if (P->L > 1) {
                        FN(qexpl)(M->bk, P, E->GHz[q], i, (size_t)i * r + j, X[q]);
                        continue;
                    }
                    for (int c = 0; c < P->na; c++)
                        for (int o = 0; o < P->out; o++)
                            X[q][(size_t)c * P->out + o] = P->A[(size_t)i * P->na + c] * E->GHz[q][(size_t)(i * r + j) * P->out + o];
                }
                FN(minv_apply)(&E->W, X, Y, M->bk);
            }
            for (int l = 0; l < r; l++) {
                REAL s = E->Sp[((size_t)i * r + j) * r + l];
                if (s == 0) continue;
                const REAL *qx = E->qxt + (size_t)(i * r + l) * n;
                for (int q = 0; q < np; q++)
                    for (int a = 0; a < E->P[q]->m; a++)
                        for (int b = 0; b < n; b++) K[q][((size_t)i * E->P[q]->m + a) * n + b] += Y[q][a] * s * qx[b];
            }
        }
    ocn_ws_release(M->ws, mk);
}

static void FN(name)(char *b, size_t n, const char *base, int t, int lane)
{
    if (lane < 0) snprintf(b, n, "%s_t%d", base, t);
    else snprintf(b, n, "%s_t%d_n%d", base, t, lane);
}


int FN(ocn_opt_run)(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                    ocn_backend *bk, ocn_ws *ws, ocn_perturb *pert, ocn_arrayset *out, ocn_error *err)
{
    return FN(ocn_opt_step)(g, opt, in, cfg, bk, ws, pert, 1, NULL, 0, out, err);
}

/* §1 objective on this batch before the step: (1/B) Σ_i φ(x_T, y) + Σ (λ/2)‖θ‖²,
 * φ summed over the lanes' payoffs of a separable game (§4, §12). */
static double FN(loss)(FN(omodel) *M)
{
    const ocn_game *g = M->g;
    int B = M->B, T = g->T, n = g->n[T], nl = g->separable ? g->nlanes : 1;
    double L = 0;
    for (int i = 0; i < B; i++) {
        const REAL *x = M->X[T] + (size_t)i * n;
        for (int l = 0; l < nl; l++) {
            int d = 0;
            double mx = -INFINITY, s = 0, xy = 0;
            for (int q = 0; q < g->lane_nout[l]; q++) {
                int b = g->lane_outputs[l][q], ypos = 0;
                for (int j = 0; j < g->noutputs && g->outputs[j] != b; j++) ypos += g->block_dim[T][g->outputs[j]];
                for (int j = 0; j < g->block_dim[T][b]; j++, d++) {
                    double xv = x[g->block_off[T][b] + j];
                    if (g->loss == OCN_LOSS_CE) {
                        mx = fmax(mx, xv);
                        if (d == (int)M->y[i]) xy = xv;
                    } else {
                        double e = xv - (double)M->y[(size_t)i * g->out_dim + ypos + j];
                        L += 0.5 * e * e / B;
                    }
                }
            }
            if (g->loss != OCN_LOSS_CE || !d) continue;
            for (int q = 0; q < g->lane_nout[l]; q++) {
                int b = g->lane_outputs[l][q];
                for (int j = 0; j < g->block_dim[T][b]; j++) s += exp((double)x[g->block_off[T][b] + j] - mx);
            }
            L += (log(s) + mx - xy) / B; /* −log softmax_y */
        }
    }
    for (int t = 0; t < T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            const FN(opl) *P = &M->pl[t][p];
            for (int j = 0; j < P->m; j++) L += 0.5 * g->weight_decay * (double)P->th[j] * (double)P->th[j];
        }
    return L;
}

/* ---- the step in named phases (docs/design.md), over one workspace ----
 *
 *   load       inputs into REAL (θ, Wfix, x0, y), §10 input perturbation
 *   forward    §3 states, pre-activations, KFAC inputs a = [z; 1]
 *   terminal   §1/§7 terminal value v = ∇φ and v_xx = Zᵀ S Z
 *   backward   per stage t (T−1 … 0) and expansion (FNE lane / GR):
 *     vjp                 §4 Q_x = F_xᵀ v', the per-sample g's, q_x = F_xᵀ Z'
 *     curvature stats     §5/§6/§7/§13 M^† (minv_setup)
 *     gains               §4/§7 k = M^† Q_θ (minv_gain)
 *     value recursion     §4/§7 S = S' − c S' q_θᵀ M^† q_θ S', v = Q_x − q_x S' q_θᵀ k
 *   update     §8 θ ← θ − (k + K δx), x̂ forward with the new θ
 * Every buffer comes from ws (KEEP: lives to the end of the step; TMP:
 * released at the end of the phase that took it). */

typedef struct {
    FN(omodel) M;
    const ocn_arrayset *in;
    ocn_arrayset *out;
    int N, gr, nofb, fail;
    long limit;
    double cfac;
    FN(lval) *L;     /* [N] the incoming value of the stage being expanded */
    FN(expn) **E;    /* [t][N] what the update pass needs */
} FN(step);

static void FN(phase_load)(FN(step) *S, ocn_perturb *pert, int pin)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    ocn_ws *ws = M->ws;
    int B = M->B, T = M->T;
    char nm[64];
    M->pl = ocn_ws_keep(ws, (size_t)T * sizeof *M->pl, "the player table");
    M->X = ocn_ws_keep(ws, ((size_t)T + 1) * sizeof *M->X, "the state table");
    for (int t = 0; t <= T; t++) M->X[t] = KEEP(ws, (size_t)B * g->n[t], "the states x_t");
    const ocn_array *x0 = ocn_arrayset_find(S->in, "x0"), *ya = ocn_arrayset_find(S->in, "y");
    for (size_t i = 0; i < x0->size; i++) M->X[0][i] = (REAL)x0->data[i];
    M->y = KEEP(ws, ya->size, "the targets y");
    for (size_t i = 0; i < ya->size; i++) M->y[i] = (REAL)ya->data[i];
    for (int t = 0; t < T; t++) {
        const ocn_stage *st = &g->stages[t];
        M->pl[t] = ocn_ws_keep(ws, (size_t)st->nplayers * sizeof **M->pl, "the player table");
        for (int p = 0; p < st->nplayers; p++) {
            FN(opl) *P = &M->pl[t][p];
            const ocn_player *pl = &st->players[p];
            P->pl = pl, P->t = t, P->p = p, P->out = pl->out_dim, P->m = pl->m, P->L = 1;
            P->na = pl->kind == OCN_PLAYER_DENSE ? pl->in_dim + 1 : 1;
            if (pl->kind == OCN_PLAYER_CONV) /* §14: θ = vec([W b]), Tm = (c·k² + 1) x C_o */
                P->L = pl->conv.ho * pl->conv.wo, P->out = pl->conv.co, P->na = pl->conv.c * pl->conv.k * pl->conv.k + 1;
            P->th = KEEP(ws, pl->m, "the parameters θ");
            if (pl->m) {
                snprintf(nm, sizeof nm, "theta_t%d_n%d", t, pl->lane);
                const ocn_array *a = ocn_arrayset_find(S->in, nm);
                for (int j = 0; j < pl->m; j++) P->th[j] = (REAL)a->data[j];
            }
            if (pl->kind == OCN_PLAYER_BIAS) {
                snprintf(nm, sizeof nm, "Wfix_t%d_n%d", t, pl->lane);
                const ocn_array *a = ocn_arrayset_find(S->in, nm);
                P->wfix = KEEP(ws, a->size, "a bias player's W");
                for (size_t j = 0; j < a->size; j++) P->wfix[j] = (REAL)a->data[j];
            }
            P->H = KEEP(ws, (size_t)B * pl->out_dim, "the pre-activations");
            P->A = KEEP(ws, (size_t)B * P->L * P->na, "the KFAC inputs a = [z; 1]");
        }
    }
    /* §10: inputs perturbed once, before the step: theta_… in stage and player
     * order, then Wfix_…, x0 and the mse targets (as the reference does) */
    ocn_perturb *pi = pin ? pert : NULL; /* a trajectory perturbs its inputs once, itself (§13) */
    for (int t = 0; t < T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) PVEC(pi, M->pl[t][p].th, M->pl[t][p].m);
    for (int t = 0; t < T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (M->pl[t][p].wfix)
                PVEC(pi, M->pl[t][p].wfix, (size_t)M->pl[t][p].out * g->stages[t].players[p].in_dim);
    PVEC(pi, M->X[0], x0->size);
    if (g->loss == OCN_LOSS_MSE) PVEC(pi, M->y, ya->size);
}

/* forward (§3): states, pre-activations, KFAC inputs a = [z; 1] */
static int FN(phase_forward)(FN(step) *S, int want_loss, ocn_error *err)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    int B = M->B, T = M->T, rc = OCN_OK;
    char nm[64];
    PHASE(M->bk, "forward");
    for (int t = 0; t < T; t++) {
        const ocn_stage *st = &g->stages[t];
        REAL *th[REF_MAXP], *H[REF_MAXP];
        for (int p = 0; p < st->nplayers; p++) th[p] = M->pl[t][p].th, H[p] = M->pl[t][p].H;
        FN(stage_forward)(M, t, th, M->X[t], M->X[t + 1], H);
        for (int p = 0; p < st->nplayers; p++) {
            FN(opl) *P = &M->pl[t][p];
            int ci = g->block_off[t][P->pl->in_block];
            if (P->pl->kind == OCN_PLAYER_CONV) {
                FN(im2col)(&P->pl->conv, M->X[t], g->n[t], ci, B, P->A);
                continue;
            }
            for (int i = 0; i < B; i++) {
                for (int c = 0; c + 1 < P->na; c++) P->A[(size_t)i * P->na + c] = M->X[t][(size_t)i * g->n[t] + ci + c];
                P->A[(size_t)i * P->na + P->na - 1] = 1;
            }
        }
    }
    /* an overflowing pre-activation can come out finite through relu
     * (inf > 0 is false for −inf, NaN): refuse it here, where it happens */
    for (int t = 0; t < T && !rc; t++)
        for (int p = 0; p < g->stages[t].nplayers && !rc; p++)
            rc = FN(overflow)(M->pl[t][p].H, (size_t)B * g->stages[t].players[p].out_dim, t, p, "forward pass", err);
    for (int t = 0; t <= T; t++) {
        snprintf(nm, sizeof nm, "x_t%d", t);
        FN(put)(M->cfg, S->out, &S->fail, M->X[t], 2, (size_t)B, (size_t)g->n[t], 0, nm);
    }
    if (want_loss) {
        ocn_array *la = ocn_arrayset_add2(S->out, "loss", 1, 1, 0, 0);
        if (la) la->data[0] = FN(loss)(M);
        else S->fail = 1;
    }
    return rc;
}

/* V_xx = Zᵀ S Z formed for output only, up to form_limit entries (§11) */
static void FN(put_vxx)(FN(step) *S, const FN(lval) *V, int t, int lane, int n)
{
    FN(omodel) *M = &S->M;
    char nm[64];
    if (S->nofb || (long)M->B * n * n > S->limit) return;
    size_t mk = ocn_ws_mark(M->ws);
    REAL *Vf = FN(form_vxx)(M->ws, V, M->B, n);
    FN(name)(nm, sizeof nm, S->gr ? "Wxx" : "Vxx", t, lane);
    FN(put)(M->cfg, S->out, &S->fail, Vf, 3, (size_t)M->B, (size_t)n, (size_t)n, nm);
    ocn_ws_release(M->ws, mk);
}

/* terminal (§1, §7) */
static int FN(phase_terminal)(FN(step) *S, ocn_error *err)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    int T = M->T, rc = OCN_OK;
    char nm[64];
    PHASE(M->bk, "terminal");
    S->L = ocn_ws_keep(M->ws, (size_t)S->N * sizeof *S->L, "the value table");
    for (int l = 0; l < S->N && !rc; l++) {
        rc = FN(terminal)(M, S->gr ? -1 : l, &S->L[l], err);
        if (rc) break;
        FN(name)(nm, sizeof nm, S->gr ? "Wx" : "Vx", T, S->gr ? -1 : l);
        FN(put)(M->cfg, S->out, &S->fail, S->L[l].v, 2, (size_t)M->B, (size_t)g->n[T], 0, nm);
        FN(put_vxx)(S, &S->L[l], T, S->gr ? -1 : l, g->n[T]);
    }
    return rc;
}

/* The stage's VJPs (§4): Q_x = F_xᵀ v' (gx), the per-sample g's of every
 * player (GHv), and with a value Hessian q_x = F_xᵀ Z' (qxt) and its g's (GHz);
 * the players of the expansion (FNE: lane l's own; GR: all, lane order). */
static void FN(phase_vjp)(FN(step) *S, int t, int l, FN(expn) *X, int *pidx, REAL *gx, REAL *qxt, REAL **GHv, REAL **GHz,
                          int want_x)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    const ocn_stage *st = &g->stages[t];
    FN(lval) *V = &S->L[l];
    int B = M->B, n = g->n[t], r = V->r;
    PHASE(M->bk, "backward t=%d lane %d: stage VJPs", t, l);
    FN(stage_vjp)(M, t, V->v, 1, want_x ? gx : NULL, GHv);
    if (!S->nofb) FN(stage_vjp)(M, t, V->Zt, r, want_x ? qxt : NULL, GHz);
    X->r = r;
    for (int lane = 0; lane < g->nlanes; lane++) {
        if (!S->gr && lane != l) continue;
        const ocn_player *pl = ocn_game_lane_player(g, t, lane);
        if (!pl || !pl->m) continue;
        int p = (int)(pl - st->players);
        pidx[X->np] = p;
        X->P[X->np++] = &M->pl[t][p];
    }
    /* §10: the stage terms as formed — Q_x, the per-sample gradient factors
     * g (q_θ^(i) = a_i ⊗ g_i), q_x = F_xᵀ Z' and the q_θ factors of Z' */
    ocn_perturb *pert = M->pert;
    if (want_x) PMAT(pert, gx, B, n);
    for (int q = 0; q < X->np; q++) PMAT(pert, GHv[pidx[q]], (size_t)B * X->P[q]->L, X->P[q]->out);
    if (!S->nofb) {
        if (want_x) PMAT(pert, qxt, (size_t)B * r, n);
        for (int q = 0; q < X->np; q++) PMAT(pert, GHz[pidx[q]], (size_t)B * r * X->P[q]->L, X->P[q]->out);
    }
}

/* Q_θ = λθ + (1/B) Aᵀ G (the batch gradient, Tm form) and λθ alone (the part
 * outside the gradient's span, NULL without weight decay) */
static void FN(batch_gradient)(FN(step) *S, FN(expn) *X, REAL *const *gv, REAL **Qth, REAL **lth, int lth_wanted)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    int B = M->B;
    for (int q = 0; q < X->np; q++) {
        FN(opl) *P = X->P[q];
        Qth[q] = TMPRAW(M->ws, P->m, "the batch gradient Q_θ"); /* every entry written below */
#if OCN_MUTANT == MUT_F32_ACCUM
        for (int c = 0; c < P->na; c++)
            for (int o = 0; o < P->out; o++) {
                float s = 0;
                for (int i = 0; i < B * P->L; i++) s += (float)(P->A[(size_t)i * P->na + c] * gv[q][(size_t)i * P->out + o]);
                Qth[q][(size_t)c * P->out + o] = (REAL)s / (REAL)B;
            }
#else
        GEMM(M->bk, 1, 0, P->na, P->out, B * P->L, (REAL)(1.0 / B), P->A, P->na, gv[q], P->out, 0, Qth[q], P->out);
#endif
        for (int j = 0; j < P->m; j++) Qth[q][j] += (REAL)g->weight_decay * P->th[j];
        PVEC(M->pert, Qth[q], P->m); /* §10: Q_θ as formed, after λ */
        lth[q] = NULL;
        if (g->weight_decay != 0 && lth_wanted) { /* λθ, the part of Q_θ outside the gradient's span (§7 only) */
            lth[q] = TMPRAW(M->ws, P->m, "the weight-decay part λθ");
            for (int j = 0; j < P->m; j++) lth[q][j] = (REAL)g->weight_decay * P->th[j];
        }
        X->k[q] = (REAL *)ocn_ws_keep_raw(M->ws, (size_t)P->m * sizeof(REAL), "the gains k"); /* minv_gain writes all of k */
    }
}

/* λθ per player (the part of Q_θ outside the gradient's span, §7) */
static void FN(batch_lambda)(FN(step) *S, FN(expn) *X, REAL **unused, REAL **lth)
{
    (void)unused;
    FN(omodel) *M = &S->M;
    for (int q = 0; q < X->np; q++) {
        FN(opl) *P = X->P[q];
        lth[q] = TMPRAW(M->ws, P->m, "the weight-decay part λθ");
        for (int j = 0; j < P->m; j++) lth[q][j] = (REAL)M->g->weight_decay * P->th[j];
    }
}

/* value recursion (§4, §7): S = S' − c S' T S' with T = q_θᵀ M^† q_θ, and
 * v = Q_x − q_x S' (q_θᵀ k), cf = cf' − S' (q_θᵀ k) — into vnew, Snew, cfnew */
static void FN(phase_value)(FN(step) *S, int t, int l, FN(expn) *X, REAL *const *gz, REAL *const *lth, const REAL *cg,
                            const REAL *gx, const REAL *qxt, REAL *vnew, REAL *Snew, REAL *cfnew)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    ocn_backend *bk = M->bk;
    FN(lval) *V = &S->L[l];
    int B = M->B, n = g->n[t], r = V->r;
    size_t mk = ocn_ws_mark(M->ws);
    REAL *Tq = TMP(M->ws, (size_t)B * r * r, "q_θᵀ M^† q_θ"), *w = TMP(M->ws, (size_t)B * r, "q_θᵀ k");
    PHASE(bk, "backward t=%d lane %d: value recursion", t, l);
    FN(minv_quad)(&X->W, gz, Tq, bk);
    if (X->W.mode == CV_WOOD && X->W.qinU && !X->W.gnouter) { /* w = q_θᵀ k = √B Uᵀ M^† (λθ + U c), no cancellation */
        REAL *wg = TMP(M->ws, (size_t)B * r, "q_θᵀ k of a group");
        for (int gg = 0; gg < X->W.ngroups; gg++) {
            FN(wood_ut_minv)(&X->W, gg, g->weight_decay != 0 ? lth : NULL, cg, wg, bk);
            for (int k = 0; k < B * r; k++) w[k] += (REAL)sqrt((double)B) * wg[k];
        }
    } else {
        for (int q = 0; q < X->np; q++) { /* w_ij = q^(ij)ᵀ k = Σ_p a_pi^T K_p g_pij */
            FN(opl) *P = X->P[q];
            int Lc = P->L; /* conv (§14): Σ over the locations p */
            size_t mk2 = ocn_ws_mark(M->ws);
            REAL *Y = TMPRAW(M->ws, (size_t)B * Lc * P->out, "A k");
            GEMM(bk, 0, 0, B * Lc, P->out, P->na, 1, P->A, P->na, X->k[q], P->out, 0, Y, P->out);
            for (int i = 0; i < B; i++)
                for (int j = 0; j < r; j++)
                    for (int pp = 0; pp < Lc; pp++)
                        w[i * r + j] += FN(dotv)(Y + ((size_t)i * Lc + pp) * P->out, gz[q] + ((size_t)(i * r + j) * Lc + pp) * P->out, P->out);
            ocn_ws_release(M->ws, mk2);
        }
    }
    memcpy(vnew, gx, (size_t)B * n * sizeof(REAL));
    REAL *TS = TMP(M->ws, (size_t)r * r, "T S' of one sample");
    for (int i = 0; i < B; i++) {
        const REAL *Sp = V->S + (size_t)i * r * r, *Ti = Tq + (size_t)i * r * r;
        for (int j = 0; j < r; j++) { /* v_x = Q_x − q_x S' (q_θᵀ k); cf = cf' − S' w */
            REAL s = FN(dotv)(Sp + (size_t)j * r, w + (size_t)i * r, r);
            for (int a = 0; a < n; a++) vnew[(size_t)i * n + a] -= qxt[(size_t)(i * r + j) * n + a] * s;
            cfnew[(size_t)i * r + j] -= s;
        }
        /* S = S' − c S' T S' as two GEMMs, O(r³) (issue 10: the
         * quadruple loop was O(r⁴): 100 s for a 64-lane game, r = 256) */
        REAL *Si = Snew + (size_t)i * r * r;
        GEMM(bk, 0, 0, r, r, r, 1, Ti, r, Sp, r, 0, TS, r);
        memcpy(Si, Sp, (size_t)r * r * sizeof(REAL));
#if OCN_MUTANT == MUT_S_SIGN
        GEMM(bk, 0, 0, r, r, r, (REAL)S->cfac, Sp, r, TS, r, 1, Si, r);
#else
        GEMM(bk, 0, 0, r, r, r, -(REAL)S->cfac, Sp, r, TS, r, 1, Si, r);
#endif
    }
    for (int i = 0; i < B; i++) PSYM(M->pert, Snew + (size_t)i * r * r, r); /* §10: S as formed */
    PMAT(M->pert, cfnew, B, r); /* §10: v's coefficients as formed */
    ocn_ws_release(M->ws, mk);
}

/* The stage's §11 outputs: Q_x/P_x, Q_θ/P_θ, k, and K where small */
static void FN(stage_outputs)(FN(step) *S, int t, int l, FN(expn) *X, const int *pidx, const REAL *gx, REAL *const *Qth,
                              REAL *const *GHz, REAL *qxt, int ok)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    const ocn_optimizer *opt = M->opt;
    int B = M->B, n = g->n[t];
    char nm[64];
    FN(name)(nm, sizeof nm, S->gr ? "Px" : "Qx", t, S->gr ? -1 : l);
    FN(put)(M->cfg, S->out, &S->fail, gx, 2, (size_t)B, (size_t)n, 0, nm);
    if (!X->np || !ok || (M->cfg && M->cfg->lean)) return; /* lean: put writes nothing of these */
    size_t mk = ocn_ws_mark(M->ws);
    int mt = 0;
    for (int q = 0; q < X->np; q++) mt += X->P[q]->m;
    REAL *cat = TMP(M->ws, mt, "Q_θ of the expansion");
    for (int q = 0, o = 0; q < X->np; o += X->P[q]->m, q++) memcpy(cat + o, Qth[q], (size_t)X->P[q]->m * sizeof(REAL));
    FN(name)(nm, sizeof nm, S->gr ? "Pth" : "Qth", t, S->gr ? -1 : l);
    FN(put)(M->cfg, S->out, &S->fail, cat, 1, (size_t)mt, 0, 0, nm);
    REAL *K[REF_MAXP];
    int formK = X->fb;
    for (int q = 0; q < X->np; q++) formK = formK && (long)B * X->P[q]->m * n <= S->limit;
    for (int q = 0; q < X->np; q++) {
        FN(name)(nm, sizeof nm, "k", t, X->P[q]->pl->lane);
        FN(put)(M->cfg, S->out, &S->fail, X->k[q], 1, (size_t)X->P[q]->m, 0, 0, nm);
        K[q] = formK ? TMP(M->ws, (size_t)B * X->P[q]->m * n, "K formed for output") : NULL;
    }
    if (formK) {
        PHASE(M->bk, "backward t=%d lane %d: outputs K", t, l);
        for (int q = 0; q < X->np; q++) X->GHz[q] = GHz[pidx[q]];
        X->qxt = qxt, X->Sp = S->L[l].S;
        FN(form_K)(M, X, n, K);
        X->qxt = NULL, X->Sp = NULL;
        for (int q = 0; q < X->np; q++) {
            X->GHz[q] = NULL;
            FN(name)(nm, sizeof nm, "K", t, X->P[q]->pl->lane);
            FN(put)(M->cfg, S->out, &S->fail, K[q], 3, (size_t)B, (size_t)X->P[q]->m, (size_t)n, nm);
        }
    } else if (!S->nofb && (opt->zero & (OCN_ZERO_QTHX | OCN_ZERO_PUX))) {
        /* K = M^† Q_θx with Q_θx := 0 is exactly zero; it is still a defined output (§11) */
        for (int q = 0; q < X->np; q++) {
            if ((long)B * X->P[q]->m * n > S->limit) continue;
            size_t mk2 = ocn_ws_mark(M->ws);
            REAL *Z = TMP(M->ws, (size_t)B * X->P[q]->m * n, "K = 0 formed for output");
            FN(name)(nm, sizeof nm, "K", t, X->P[q]->pl->lane);
            FN(put)(M->cfg, S->out, &S->fail, Z, 3, (size_t)B, (size_t)X->P[q]->m, (size_t)n, nm);
            ocn_ws_release(M->ws, mk2);
        }
    }
    ocn_ws_release(M->ws, mk);
}

/* backward (§4 with §7's low-rank values): one stage t, one expansion l */
static int FN(phase_backward)(FN(step) *S, int t, int l, ocn_error *err)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    const ocn_optimizer *opt = M->opt;
    ocn_backend *bk = M->bk;
    const ocn_stage *st = &g->stages[t];
    int B = M->B, n = g->n[t], np_all = st->nplayers, nofb = S->nofb, rc = OCN_OK;
    FN(lval) *V = &S->L[l];
    int r = V->r;
    size_t mk = ocn_ws_mark(M->ws);
    /* gx becomes the next value when there is no feedback; qxt its Z and the update pass's q_x */
    REAL *gx = KEEP(M->ws, (size_t)B * n, "Q_x"), *qxt = nofb ? NULL : KEEP(M->ws, (size_t)B * r * n, "q_x = F_xᵀ Z'");
    REAL *GHv[REF_MAXP], *GHz[REF_MAXP];
    for (int p = 0; p < np_all; p++) {
        GHv[p] = TMP(M->ws, (size_t)B * st->players[p].out_dim, "the per-sample g's");
        GHz[p] = nofb ? NULL : KEEP(M->ws, (size_t)B * r * st->players[p].out_dim, "the value Hessian's g's");
    }
    FN(expn) *X = &S->E[t][l];
    int pidx[REF_MAXP];
    /* a training step (lean) hands back θ_new only: stage 0's Q_x, q_x, V_x and S
     * are outputs of nothing, and its feedback K δx_0 is 0 (δx_0 = x̂_0 − x_0 = 0, §8) */
    int first = M->cfg && M->cfg->lean && t == 0;
    FN(phase_vjp)(S, t, l, X, pidx, gx, qxt, GHv, GHz, !first);
    REAL *vnew = gx, *Snew = KEEP(M->ws, (size_t)B * r * r, "S"), *cfnew = KEEP(M->ws, (size_t)B * r, "v's coefficients");
    memcpy(Snew, V->S, (size_t)B * r * r * sizeof(REAL));
    memcpy(cfnew, V->cf, (size_t)B * r * sizeof(REAL));
    REAL *Qth[REF_MAXP] = {0}, *lth[REF_MAXP] = {0};
    if (X->np) {
        REAL *gv[REF_MAXP], *gz[REF_MAXP];
        for (int q = 0; q < X->np; q++) gv[q] = GHv[pidx[q]], gz[q] = nofb ? NULL : GHz[pidx[q]];
        /* λθ alone is needed by the low-rank (§7) forms only, and only those know it
         * after the statistics: Q_θ first, λθ once the mode is known */
        FN(batch_gradient)(S, X, gv, Qth, lth, 0);
        char who[192];
        if (S->gr) snprintf(who, sizeof who, "%s: stage %d (GR)", g->name, t);
        else snprintf(who, sizeof who, "%s: stage %d lane %d", g->name, t, l);
        PHASE(bk, "backward t=%d lane %d: curvature statistics", t, l);
        rc = FN(minv_setup)(M, &X->W, X->np, X->P, gv, gz, V->S, V->cf, r, who, err);
        if (!rc && X->W.mode == CV_WOOD && g->weight_decay != 0) {
            REAL *Qdummy[REF_MAXP];
            FN(batch_lambda)(S, X, Qdummy, lth);
        }
        /* the batch gradient mean_i F_θᵀ v'^(i) = U c in the low-rank modes */
        int nc = X->W.mode == CV_WOOD ? B * X->W.upr : 0;
        REAL *cg = nc ? TMP(M->ws, nc, "the batch gradient's coefficients") : NULL;
        for (int k = 0; k < nc; k++) cg[k] = (X->W.qinU ? V->cf[k] : 1) / (REAL)sqrt((double)B);
        PHASE(bk, "backward t=%d lane %d: gains", t, l);
        if (!rc) FN(minv_gain)(&X->W, Qth, g->weight_decay != 0 ? lth : NULL, cg, X->k, bk);
        X->fb = !rc && !nofb && !(opt->zero & (OCN_ZERO_QTHX | OCN_ZERO_PUX));
        if (X->fb && !first) {
            vnew = KEEP(M->ws, (size_t)B * n, "V_x");
            FN(phase_value)(S, t, l, X, gz, lth, cg, gx, qxt, vnew, Snew, cfnew);
        }
    }
    FN(stage_outputs)(S, t, l, X, pidx, gx, Qth, GHz, qxt, !rc);
    /* the stage's value becomes the incoming value of stage t − 1 */
    FN(lval) nv = {r, vnew, nofb ? NULL : qxt, Snew, cfnew};
    char nm[64];
    FN(name)(nm, sizeof nm, S->gr ? "Wx" : "Vx", t, S->gr ? -1 : l);
    FN(put)(M->cfg, S->out, &S->fail, nv.v, 2, (size_t)B, (size_t)n, 0, nm);
    FN(put_vxx)(S, &nv, t, S->gr ? -1 : l, n);
    /* keep what the update pass needs (§8): the g's, q_x and S' stay in the workspace */
    if (X->fb) {
        for (int q = 0; q < X->np; q++) X->GHz[q] = GHz[pidx[q]];
        X->qxt = qxt;
        X->Sp = V->S;
    }
    ocn_ws_release(M->ws, mk);
    *V = nv;
    return rc;
}

/* The feedback of one expansion (§7, §8): fbk = M^† mean_i q_θ^(i) S'^(i) (q_x^(i)ᵀ δx^(i)). */
static void FN(feedback)(FN(step) *S, FN(expn) *X, const REAL *dx, int n, REAL **fbk)
{
    FN(omodel) *M = &S->M;
    ocn_backend *bk = M->bk;
    int B = M->B, r = X->r;
    size_t mk = ocn_ws_mark(M->ws);
    REAL *y[REF_MAXP];
    for (int q = 0; q < X->np; q++) y[q] = TMP(M->ws, X->P[q]->m, "the feedback's mean q_θ S' q_xᵀ δx");
    REAL *cc = TMP(M->ws, (size_t)B * r, "the feedback's coefficients"); /* c_ij = Σ_l S'_i[j][l] (q_x^(il)·δx_i) */
    for (int i = 0; i < B; i++)
        for (int j = 0; j < r; j++)
            for (int l2 = 0; l2 < r; l2++)
                cc[i * r + j] += X->Sp[((size_t)i * r + j) * r + l2] * FN(dotv)(X->qxt + (size_t)(i * r + l2) * n, dx + (size_t)i * n, n);
    int lowrank = X->W.mode == CV_KFAC, coef = X->W.mode == CV_WOOD && X->W.qinU;
    if (coef) { /* exact: mean_i Σ_j c_ij q^(ij) = U (c/√B): M^† without cancellation */
        for (int k = 0; k < B * r; k++) cc[k] /= (REAL)sqrt((double)B);
        for (int gg = 0; gg < X->W.ngroups; gg++) FN(wood_apply_coef)(&X->W, gg, cc, fbk, bk);
    }
    for (int q = 0; q < X->np && !coef; q++) { /* y_p = (1/B) A_pᵀ (Σ_j c_ij g_pij) */
        FN(opl) *P = X->P[q];
        int Lc = P->L, BL = B * Lc; /* conv (§14): virtual rows (i, p) */
        size_t mk2 = ocn_ws_mark(M->ws);
        REAL *Cg = TMP(M->ws, (size_t)BL * P->out, "the feedback's gradient rows");
        for (int i = 0; i < B; i++)
            for (int j = 0; j < r; j++)
                for (int pp = 0; pp < Lc; pp++)
                    for (int o = 0; o < P->out; o++)
                        Cg[((size_t)i * Lc + pp) * P->out + o] += cc[i * r + j] * X->GHz[q][(((size_t)i * r + j) * Lc + pp) * P->out + o];
        if (lowrank) {
            /* kfac: M^† y = (η/B) (A A^†)ᵀ (Cg G^†), rank B — O(B·(na² + out² + na·out))
             * instead of the two n³ products of a general M^† application */
            const REAL *AAi = FN(kfac_aai)(&X->W, q, bk);
            REAL *CG = TMPRAW(M->ws, (size_t)BL * P->out, "Cg G^+ of the feedback");
            GEMM(bk, 0, 0, BL, P->out, P->out, 1, Cg, P->out, X->W.Gi[q], P->out, 0, CG, P->out);
            GEMM(bk, 1, 0, P->na, P->out, BL, X->W.eta / (REAL)B, AAi, P->na, CG, P->out, 0, fbk[q], P->out);
        } else {
            GEMM(bk, 1, 0, P->na, P->out, BL, (REAL)(1.0 / B), P->A, P->na, Cg, P->out, 0, y[q], P->out);
        }
        ocn_ws_release(M->ws, mk2);
    }
    if (!lowrank && !coef) FN(minv_apply)(&X->W, y, fbk, bk);
    ocn_ws_release(M->ws, mk);
}

/* update pass (§8): θ ← θ − (k + M^† mean_i q_θ^(i) S'^(i) (q_x^(i)ᵀ δx^(i))) */
static int FN(phase_update)(FN(step) *S, ocn_error *err)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    int B = M->B, T = M->T, rc = OCN_OK;
    char nm[64];
    /* A training step (lean) hands back θ_new only: δx_t is needed where a
     * feedback applies it, t > 0 (δx_0 = x̂_0 − x_0 = 0, so K δx_0 = 0), and
     * the forward pass of x̂ (§8) only up to the last such stage — without
     * feedback (sgd baseline, no_feedback) none of it (issue 11 item 4). */
    int lean = M->cfg && M->cfg->lean, last = -1;
    for (int t = 1; t < T; t++)
        for (int l = 0; l < S->N; l++)
            if (S->E[t][l].fb) last = t;
    REAL *Xh = KEEP(M->ws, (size_t)B * g->n[0], "the states x̂_t");
    memcpy(Xh, M->X[0], (size_t)B * g->n[0] * sizeof(REAL));
    for (int t = 0; t <= T && !rc; t++) {
        int n = g->n[t], need_dx = !lean || (t > 0 && t <= last), need_fwd = !lean || t < last;
        PHASE(M->bk, "update t=%d", t);
        size_t mk = ocn_ws_mark(M->ws);
        REAL *dx = NULL;
        if (need_dx) {
            dx = TMPRAW(M->ws, (size_t)B * n, "δx");
            for (size_t i = 0; i < (size_t)B * n; i++) dx[i] = Xh[i] - M->X[t][i];
            snprintf(nm, sizeof nm, "dx_t%d", t);
            FN(put)(M->cfg, S->out, &S->fail, dx, 2, (size_t)B, (size_t)n, 0, nm);
        }
        if (t == T) break;
        const ocn_stage *st = &g->stages[t];
        REAL *thn[REF_MAXP];
        int upd[REF_MAXP] = {0}; /* updated by an expansion below: θ_new written there in one pass */
        for (int l = 0; l < S->N; l++)
            for (int q = 0; q < S->E[t][l].np; q++) upd[S->E[t][l].P[q]->p] = 1;
        for (int p = 0; p < st->nplayers; p++) {
            thn[p] = TMPRAW(M->ws, st->players[p].m, "θ_new");
            if (!upd[p]) memcpy(thn[p], M->pl[t][p].th, (size_t)st->players[p].m * sizeof(REAL));
        }
        for (int l = 0; l < S->N; l++) {
            FN(expn) *X = &S->E[t][l];
            if (!X->np) continue;
            size_t mk2 = ocn_ws_mark(M->ws);
            int fb = 0;
#if OCN_MUTANT != MUT_NO_FEEDBACK
            fb = X->fb && dx;
#endif
            for (int q = 0; q < X->np; q++) { /* θ_new = θ − (k + K δx) */
                REAL *th = X->P[q]->th, *k = X->k[q], *tn = thn[X->P[q]->p], *fbk = NULL;
                if (fb && !q) {
                    REAL *f[REF_MAXP];
                    for (int u = 0; u < X->np; u++) f[u] = TMP(M->ws, X->P[u]->m, "the feedback K δx");
                    FN(feedback)(S, X, dx, n, f);
                    for (int u = 0; u < X->np; u++) X->fbk[u] = f[u];
                }
                if (fb) fbk = X->fbk[q];
                if (fbk)
                    for (int j = 0; j < X->P[q]->m; j++) tn[j] = th[j] - (k[j] + fbk[j]);
                else
                    for (int j = 0; j < X->P[q]->m; j++) tn[j] = th[j] - k[j];
            }
            for (int q = 0; q < X->np; q++) {
                int p = X->P[q]->p;
                snprintf(nm, sizeof nm, "theta_new_t%d_n%d", t, X->P[q]->pl->lane);
#if OCN_MUTANT == MUT_DROP_THETA0
                if (t != 0)
#endif
                FN(put)(M->cfg, S->out, &S->fail, thn[p], 1, (size_t)X->P[q]->m, 0, 0, nm);
            }
            ocn_ws_release(M->ws, mk2);
        }
        if (!need_fwd) {
            ocn_ws_release(M->ws, mk);
            continue;
        }
        REAL *Xn = KEEP(M->ws, (size_t)B * g->n[t + 1], "the states x̂_t"), *Hs[REF_MAXP];
        for (int p = 0; p < st->nplayers; p++) Hs[p] = TMP(M->ws, (size_t)B * st->players[p].out_dim, "pre-activations of x̂");
        FN(stage_forward)(M, t, thn, Xh, Xn, Hs);
        for (int p = 0; p < st->nplayers && !rc; p++)
            rc = FN(overflow)(Hs[p], (size_t)B * st->players[p].out_dim, t, p, "update pass (x̂)", err);
        ocn_ws_release(M->ws, mk);
        Xh = Xn;
    }
    return rc;
}

static int FN(step_phases)(FN(step) *S, ocn_perturb *pert, int pin, int want_loss, ocn_error *err)
{
    FN(omodel) *M = &S->M;
    int T = M->T, rc;
    FN(phase_load)(S, pert, pin);
    rc = FN(phase_forward)(S, want_loss, err);
    if (!rc) rc = FN(phase_terminal)(S, err);
    S->E = ocn_ws_keep(M->ws, (size_t)T * sizeof *S->E, "the expansion table");
    for (int t = T - 1; t >= 0 && !rc; t--) {
        S->E[t] = ocn_ws_keep(M->ws, (size_t)S->N * sizeof **S->E, "the expansion table");
        for (int l = 0; l < S->N && !rc; l++) rc = FN(phase_backward)(S, t, l, err);
    }
    if (!rc) rc = FN(phase_update)(S, err);
    if (!rc && S->fail) rc = ocn_fail(err, OCN_ENOMEM, "out of memory storing results");
    return rc;
}

int FN(ocn_opt_step)(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                     ocn_backend *bk, ocn_ws *ws, ocn_perturb *pert, int pin, ocn_opt_sstate *ss, int want_loss,
                     ocn_arrayset *out, ocn_error *err)
{
    FN(step) S;
    memset(&S, 0, sizeof S);
    S.M.g = g, S.M.opt = opt, S.M.cfg = cfg, S.M.bk = bk, S.M.B = g->batch, S.M.T = g->T;
    S.M.pert = pert, S.M.ss = ss, S.M.ws = ws;
    S.in = in, S.out = out;
    S.gr = opt->game == OCN_GAME_GR, S.N = S.gr ? 1 : g->nlanes, S.nofb = cfg && cfg->no_feedback;
    S.limit = cfg ? cfg->form_limit : 0;
    S.cfac = opt->value == OCN_VALUE_PERSAMPLE ? 1.0 : 1.0 / g->batch;
#if OCN_MUTANT == MUT_NO_INV_B
    S.cfac = 1.0;
#endif
    jmp_buf jb;
    int rc = ocn_ws_begin(ws, &jb, err);
    if (rc) return rc;
    if (setjmp(jb)) { /* an allocation failed (workspace.h): everything the step took is in ws */
        ocn_ws_end(ws);
        return ocn_ws_error(ws, err);
    }
    rc = FN(step_phases)(&S, pert, pin, want_loss, err);
    ocn_ws_end(ws);
    return rc;
}
