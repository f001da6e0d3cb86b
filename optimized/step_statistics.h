/* Fragment of step_impl.h (instantiated once per precision: REAL, FN, PREC
 * are defined there; not a standalone header): the curvature statistics (§5, §6, §7) with the §13 carried state, and the value quadratic. */

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
    PHANDED(M->pert, F, n); /* §10: the damped factor as handed to the inverse (normwise: docs/decisions.md) */
    int st = FN(factor_inv)(M->bk, M->ws, F, n, sg);
    if (!st && inv)
        for (size_t i = 0; i < (size_t)n * n; i++) inv[i] = (double)F[i];
    return st;
}

/* The form M^† takes for an expansion of np players (minv_setup's choice,
 * known before the statistics: a lean step skips what that form never reads). */
static int FN(curv_mode)(const ocn_optimizer *o, int np)
{
    if ((o->zero & OCN_ZERO_MID) || o->curvature == OCN_CURV_SGD) return CV_SCALED;
    if (o->curvature == OCN_CURV_RMSPROP) return CV_RMS;
    int coop = o->curvature == OCN_CURV_COOP_KFAC && o->game == OCN_GAME_GR && np > 1 && !(o->zero & OCN_ZERO_PUV);
    if (o->curvature == OCN_CURV_KFAC || (o->curvature == OCN_CURV_COOP_KFAC && !coop)) return CV_KFAC;
    return coop ? CV_COOP : CV_WOOD;
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
    int mode = FN(curv_mode)(o, np);
    if (mode == CV_SCALED) {
        W->mode = CV_SCALED;
        return OCN_OK;
    }
    if (mode == CV_RMS) { /* mean_i q_i ⊙ q_i = (1/B) Σ_i (a_i ⊙ a_i)(g_i ⊙ g_i)ᵀ */
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
    int coop = mode == CV_COOP;
    if (mode == CV_KFAC) {
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
            if (st == OPT_UNRESOLVED || st == OPT_NONFINITE || st == OPT_AMBIGUOUS) return FN(unresolved)(err, who, "kfac", sg, st);
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
        if (st == OPT_UNRESOLVED || st == OPT_NONFINITE || st == OPT_AMBIGUOUS) return FN(unresolved)(err, who, "coop-kfac", sg, st);
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
            PHANDED(M->pert, Gg, B); /* §10: the gradient Gram as handed to the eigendecomposition (normwise) */
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
            /* kept: the feedback's Cg G^† is a combination of these rows (phase_update) */
            REAL *GG = (REAL *)ocn_ws_keep_raw(W->ws, (size_t)B * r * P->out * sizeof(REAL), "G G^+ of the value quadratic");
            GEMM(bk, 0, 0, B * r, P->out, P->out, 1, GHz[u], P->out, W->Gi[u], P->out, 0, GG, P->out);
            W->GGz[u] = GG;
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
