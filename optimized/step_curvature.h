/* Fragment of step_impl.h (instantiated once per precision: REAL, FN, PREC
 * are defined there; not a standalone header): M^† (§5, §6, §7): its application, the gain, the low-rank (Woodbury) core. */

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
    REAL *GGi[REF_MAXP];            /* kfac, rank-aware gain: G_v G^† (B x out), k = (η/B) (A A^†)ᵀ GGi */
    REAL *GGz[REF_MAXP];            /* kfac: g_z G^† (B·r x out) of the value quadratic, reused by the feedback */
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
    REAL *ucn[REF_MAXP];            /* per group: U's column norms (nc), for wood_vt_coef's choice */
    REAL *Gm[REF_MAXP];             /* per group: the Gram UᵀU (nc x nc) as handed to the eigensolver, for
                                     * the refinement step of wood_apply_coef */
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


/* t = Vrᵀ c for a coefficient vector c (the vector U c), formed as
 * Λ⁻¹ (U Vr)ᵀ (U c) = Λ⁻¹ Vrᵀ Uᵀ(U c).  c may lie mostly in U's null space: a
 * value gradient carried on a tiny column collinear with a large one (a
 * saturated softmax's e_c − p rows: |q| 6e-7 beside 5, cf = 1 on the tiny one)
 * — then Vrᵀ c cancels, and the eigenvectors' entries, accurate only to
 * ε·‖Vr‖ absolutely, lose digits relative to U c (fuzz game b266e04126cddcbd:
 * exact persample at μ = 1, κ = 1.1, k 1.8e-12 off with c = 32).  U c is a
 * combination of columns (no cancellation in this case), and Uᵀ(U c) weighs
 * each eigenvector entry by its column's size. */
static void FN(wood_vt_coef)(FN(minv) *W, int gr, const REAL *c, REAL *t, ocn_backend *bk)
{
    int nc = W->B * W->upr, rk = W->rk[gr];
    GEMM(bk, 1, 0, rk, 1, nc, 1, W->Vr[gr], rk, c, 1, 0, t, 1); /* Vrᵀ c as formed: error ~ ε‖c‖ */
    /* Λ⁻¹ Vrᵀ Uᵀ(U c): error ~ ε s ‖U‖_F/λ_k with s = Σ_j |c_j| ‖u_j‖ ≥ ‖U c‖ (the
     * products u_i·(U c) as formed, summed with v_k's entries); taken per direction
     * where that is the smaller bound — not for the small λ_k of a tiny μ or of
     * nearly cancelling columns (games 5f52254ab7cf2901, c0297b093bbd9a27) */
    double cn = 0, s = 0, uf = 0, lmax = 0;
    for (int j = 0; j < nc; j++)
        cn += (double)c[j] * c[j], s += fabs((double)c[j]) * W->ucn[gr][j], uf += (double)W->ucn[gr][j] * W->ucn[gr][j];
    for (int k = 0; k < rk; k++) lmax = fmax(lmax, (double)W->lr[gr][k]);
    cn = sqrt(cn), s *= sqrt(uf);
    if (!(s < cn * lmax)) return;
    size_t mk = ocn_ws_mark(W->ws);
    REAL *Uc[REF_MAXP] = {0}, *ux = TMP(W->ws, nc, "low-rank coefficients"), *tn = TMP(W->ws, rk, "low-rank coefficients");
    for (int q = 0; q < W->np; q++)
        if (W->grp[q] == gr) Uc[q] = TMP(W->ws, W->P[q]->m, "U c of a coefficient vector");
    REAL sb = (REAL)(1.0 / sqrt((double)W->B));
    FN(wood_u)(W, gr, c, sb, Uc, bk); /* U c */
    FN(wood_ut)(W, gr, Uc, ux, bk);   /* √B Uᵀ (U c) */
    GEMM(bk, 1, 0, rk, 1, nc, sb, W->Vr[gr], rk, ux, 1, 0, tn, 1);
    for (int k = 0; k < rk; k++)
        if (s < cn * (double)W->lr[gr][k]) t[k] = tn[k] / W->lr[gr][k];
    ocn_ws_release(W->ws, mk);
}

/* z = Vr Λ⁻¹ Si Vrᵀ c: the coefficients of M^† U c = U z (§7 core above). */
static void FN(wood_solve_coef)(FN(minv) *W, int gr, const REAL *c, REAL *z, ocn_backend *bk)
{
    int nc = W->B * W->upr, rk = W->rk[gr];
    size_t mk = ocn_ws_mark(W->ws);
    REAL *t = TMP(W->ws, rk, "low-rank coefficients"), *t2 = TMP(W->ws, rk, "low-rank coefficients");
    FN(wood_vt_coef)(W, gr, c, t, bk);
    GEMM(bk, 0, 0, rk, 1, rk, 1, W->Si[gr], rk, t, 1, 0, t2, 1);
    for (int k = 0; k < rk; k++) t2[k] /= W->lr[gr][k];
    GEMM(bk, 0, 0, nc, 1, rk, 1, W->Vr[gr], rk, t2, 1, 0, z, 1);
    ocn_ws_release(W->ws, mk);
}

/* Y += M^† U c for one low-rank group (coefficients c of U's columns, B·upr):
 * η U z with (μ + D G) z = c on range(Uᵀ) (M U z = U (μ z + D G z), G = UᵀU) —
 * no cancellation.  One step of fixed-precision iterative refinement on that
 * coefficient system: the eigenvectors of G carry absolute errors ε·‖G‖/gap,
 * which a direction of a tiny column (a saturated sample) or a small μ turns
 * into errors beyond the measured c (issue 10 pending games, e.g.
 * f8425e569e1eca76: gn-outer γ = 1e-4, K of one sample 1e-9 off at c = 30);
 * the residual r = c − μz − D(Gz), formed with G itself, is solved again. */
static void FN(wood_apply_coef)(FN(minv) *W, int gr, const REAL *c, REAL **Y, ocn_backend *bk)
{
    int nc = W->B * W->upr, rk = W->rk[gr], u = W->upr;
    if (!rk) return;
    size_t mk = ocn_ws_mark(W->ws);
    REAL *z = TMP(W->ws, nc, "low-rank coefficients"), *gz = TMP(W->ws, nc, "low-rank coefficients"),
         *r = TMP(W->ws, nc, "low-rank coefficients"), *dz = TMP(W->ws, nc, "low-rank coefficients");
    FN(wood_solve_coef)(W, gr, c, z, bk);
    GEMM(bk, 0, 0, nc, 1, nc, 1, W->Gm[gr], nc, z, 1, 0, gz, 1);
    for (int b = 0; b < W->B; b++)
        for (int a = 0; a < u; a++) {
            double dgz = 0;
            for (int e = 0; e < u; e++)
                dgz += (double)(W->D ? W->D[((size_t)b * u + a) * u + e] : (REAL)(a == e)) * gz[b * u + e];
            r[b * u + a] = (REAL)((double)c[b * u + a] - (double)W->mu * z[b * u + a] - dgz);
        }
    FN(wood_solve_coef)(W, gr, r, dz, bk);
    for (int k = 0; k < nc; k++) z[k] += dz[k];
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
    if (c) { /* + Vrᵀ c, formed stably (wood_vt_coef) */
        REAL *tc = TMP(W->ws, rk, "low-rank coefficients");
        FN(wood_vt_coef)(W, gr, c, tc, bk);
        for (int k = 0; k < rk; k++) t[k] += tc[k];
    }
    GEMM(bk, 0, 0, rk, 1, rk, 1, W->Si[gr], rk, t, 1, 0, t2, 1);
    GEMM(bk, 0, 0, nc, 1, rk, W->eta, W->Vr[gr], rk, t2, 1, 0, out, 1);
    ocn_ws_release(W->ws, mk);
}

/* kfac without weight decay: the gain in rank-B form, (η/B) (A A^†)ᵀ (G G^†),
 * where it is cheaper than the dense η A^† Q_θ G^† (B: rows, samples or conv virtual rows) */
static int FN(kfac_rank_gain)(int B, int na, int out)
{
    double full = (double)na * out * (na + out), rank = (double)B * ((double)na * na + (double)out * out + (double)na * out);
    return rank < full;
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
            REAL *GGi = W->GV[q] && FN(kfac_rank_gain)(B, na, out) ? (REAL *)ocn_ws_keep_raw(W->ws, (size_t)B * out * sizeof(REAL), "G G^+ of the kfac gain") : NULL;
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
            W->GGi[q] = GGi; /* kept: q_θᵀ k in rank-B form (phase_value) */
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
    PHANDED(M->pert, G, nc); /* §10: the Gram as handed to the eigendecomposition (normwise) */
    double ucol = 0; /* largest column norm of U */
    for (int i = 0; i < nc; i++) ucol = fmax(ucol, sqrt(fabs((double)G[(size_t)i * nc + i])));
    W->ucn[gr] = KEEP(W->ws, nc, "U's column norms");
    for (int i = 0; i < nc; i++) W->ucn[gr][i] = (REAL)sqrt(fabs((double)G[(size_t)i * nc + i]));
    W->Gm[gr] = KEEP(W->ws, (size_t)nc * nc, "the Gram kept for refinement");
    memcpy(W->Gm[gr], G, (size_t)nc * nc * sizeof(REAL));
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
            for (int k = 0; k < rk; k++) /* an exactly zero column of U (its Gram row is zero) has an exactly
                                           * zero entry in every kept eigenvector: structural zeros stay zero
                                           * (docs/decisions.md "Pending games, session 6") */
                W->Vr[gr][(size_t)i * rk + k] = W->ucn[gr][i] == 0 ? 0 : G[(size_t)i * nc + keep[k]];
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
        PHANDED(M->pert, T1, rk); /* §10: the core as handed to the factorisation (normwise) */
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
    /* issue 10 KI-4 (docs/decisions.md "Damping at the cut-off"): a Woodbury
     * core beyond κ = |μI + UDUᵀ|/μ = ε₆₄^{-1/2} left the dense pseudo-inverse by
     * more than the measured c — exact at μ = 1e-10, κ = 1e10: 1e4·u·c; μ =
     * 1e-12, κ = 3e11: K 100% off; gn-outer in 16 of 137k campaign games, all at
     * κ ≥ 6e8 (γ = 1e-9..1e-15, and γ = 1e-3 beside gradients of 1e4: k up to
     * 1e11 relative off) — refused */
    if (W->kap[gr] > OPT_KAPPA_MAX) {
        rc = ocn_fail(err, OCN_EUNSUPPORTED,
                      "%s: %s curvature with mu = %g (%s) is too small for the low-rank (Woodbury) formulation: "
                      "|C + mu I|/mu = %.3g exceeds ε₆₄^{-1/2} = %.3g, beyond which it leaves the SPEC's "
                      "pseudo-inverse; refused (raise the damping, or use the reference)",
                      who, W->qinU && !W->gnouter ? "exact" : "gn-outer", (double)W->mu,
                      W->qinU && !W->gnouter ? "weight_decay + damping" : "damping", W->kap[gr], OPT_KAPPA_MAX);
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
