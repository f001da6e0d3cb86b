/* Fragment of step_impl.h (instantiated once per precision: REAL, FN, PREC
 * are defined there; not a standalone header): backend ops on views, the workspace macros, activations, pseudo-inverses and factor inverses. */

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

/* y[0..n) = σ(h), σ'(h) over arrays: float32 tanh and sigmoid four lanes at a
 * time (vmath.h: evaluated in float64, within 1 ulp, the same forms as act and
 * dact), every other case elementwise */
static void FN(act_vec)(ocn_act a, const REAL *h, REAL *y, size_t n)
{
#if PREC == 32
    if (a == OCN_ACT_TANH) {
        ocn_vtanhf(h, y, n);
        return;
    }
    if (a == OCN_ACT_SIGMOID) {
        ocn_vsigmoidf(h, y, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) y[i] = FN(act)(a, h[i]);
}

static void FN(dact_vec)(ocn_act a, const REAL *h, REAL *y, size_t n)
{
#if PREC == 32
    if (a == OCN_ACT_TANH) {
        ocn_vsech2f(h, y, n);
        return;
    }
    if (a == OCN_ACT_SIGMOID) {
        ocn_vdsigmoidf(h, y, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) y[i] = FN(dact)(a, h[i]);
}
#define ACT_CHUNK 256 /* elements per call of act_vec/dact_vec from a stack buffer */

/* Pseudo-inverse of a symmetric matrix in place by eigendecomposition with
 * the §5 rcond rule (n·eps·|λ|max).  Returns the backend status, or
 * OPT_UNRESOLVED when `floor` > 0 (a lower bound on every eigenvalue, as √γ
 * is for a damped factor) clears the float64 cut-off — so the SPEC's float64
 * pseudo-inverse keeps every direction — and the rule would drop one at this
 * precision. */
#ifndef OPT_UNRESOLVED
#define OPT_UNRESOLVED 1000
#define OPT_NONFINITE 1001 /* the matrix holds NaN/Inf: the precision overflowed upstream */
#define OPT_AMBIGUOUS 1002 /* √γ too small: near the §5 cut-off (undetermined) or λmax/√γ > OPT_KAPPA_MAX */
#endif
/* The largest condition number of a matrix inverted explicitly (a damped
 * factor's Cholesky inverse, an exact-curvature Woodbury core): ε₆₄^{-1/2}
 * (docs/decisions.md "Damping at the cut-off"). */
#define OPT_CUT_BAND 8.0 /* a damping above cut-off/8 is not the undamped rule */
#ifndef OPT_KAPPA_MAX
#define OPT_KAPPA_MAX 67108864.0
#endif
static int FN(sym_pinv_keep)(ocn_backend *bk, ocn_ws *ws, REAL *A, int n, double floor, double damp)
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
        /* Issue 10 KI-4 (docs/decisions.md "Damping at the cut-off"): a damped
         * factor's null space sits at √γ.  Near the float64 cut-off n·ε·λmax
         * (γ = 1e-30: √γ/cut-off 0.16–4.9 in the fuzz games) whether the SPEC's
         * pseudo-inverse keeps it is decided by rounding (gains 1e3–1e25·u·c
         * apart between two correct float64 computations); above it, up to
         * λmax/√γ = OPT_KAPPA_MAX, neither an explicit nor an eigen-based
         * inverse held the measured c (2f25f6936767ca83 at γ = 1e-24: k 446x
         * off).  Refused from cut-off/OPT_CUT_BAND up; below it (γ = 1e-34)
         * the directions are dropped as for γ = 0. */
        double cut64 = (double)n * DBL_EPSILON * (double)mx;
        if (damp > 0 && damp > cut64 / OPT_CUT_BAND && (double)mx / damp > OPT_KAPPA_MAX) {
            ocn_ws_release(ws, mk);
            return OPT_AMBIGUOUS;
        }
        int keep_all = floor > cut64;
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
    /* the explicit (Cholesky) inverse only where κ = tr/√γ ≤ OPT_KAPPA_MAX
     * (it keeps half of float64's digits); beyond, sym_pinv_keep decides:
     * refused, or the undamped rule (docs/decisions.md "Damping at the cut-off") */
    int chol_ok = sg > 0 && tr / (double)sg <= OPT_KAPPA_MAX;
    if (chol_ok && (double)sg > OPT_CHOL_MARGIN * (double)n * EPS * tr) {
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
    if (chol_ok && (double)sg > OPT_CHOL_MARGIN * (double)n * DBL_EPSILON * tr && bk->supports(bk, OCN_OP_SPDINV, 64)) {
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
    return FN(sym_pinv_keep)(bk, ws, A, n, EPS > 1e-10 ? (double)sg : 0.0, (double)sg);
}

static int FN(unresolved)(ocn_error *err, const char *who, const char *mode, REAL sg, int st)
{
    if (st == OPT_NONFINITE)
        return ocn_fail(err, OCN_EUNSUPPORTED,
                        "%s: %s: a factor holds NaN/Inf — the value derivatives overflow float%d upstream: this step "
                        "cannot be computed at this precision; refused", who, mode, (int)(8 * sizeof(REAL)));
    if (st == OPT_AMBIGUOUS)
        return ocn_fail(err, OCN_EUNSUPPORTED,
                        "%s: %s: the damping (√γ = %.3g) is too small for a factor: λmax/√γ exceeds ε₆₄^{-1/2} = "
                        "%.3g, where the damped inverse keeps fewer than half of float64's digits and, near the §5 "
                        "cut-off n·ε·λmax, whether the damped null space is kept is decided by rounding; refused — "
                        "use damping 0 (the pseudo-inverse) or √γ ≥ λmax·ε₆₄^{1/2}", who, mode, (double)sg,
                        OPT_KAPPA_MAX);
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
