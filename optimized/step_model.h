/* Fragment of step_impl.h (instantiated once per precision: REAL, FN, PREC
 * are defined there; not a standalone header): the model in the run's precision: players, §14 im2col, stage forward pass and vector-Jacobian products. */

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
        REAL sv[ACT_CHUNK];
        for (int i = 0; i < B; i++)
            for (int r0 = 0; r0 < out; r0 += ACT_CHUNK) {
                int len = out - r0 < ACT_CHUNK ? out - r0 : ACT_CHUNK;
                FN(act_vec)(pl->act, H + (size_t)i * out + r0, sv, (size_t)len);
                for (int r = 0; r < len; r++) Xn[(size_t)i * n1 + co + r0 + r] += sv[r];
            }
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
        REAL dv[ACT_CHUNK]; /* σ'(h) once per sample, for its c rows */
        for (int i = 0; i < B; i++)
            for (int o0 = 0; o0 < out; o0 += ACT_CHUNK) {
                int len = out - o0 < ACT_CHUNK ? out - o0 : ACT_CHUNK;
                FN(dact_vec)(pl->act, P->H + (size_t)i * out + o0, dv, (size_t)len);
                for (int row = i * c; row < (i + 1) * c; row++)
                    for (int o = 0; o < len; o++)
                        G[(size_t)row * out + o0 + o] = dv[o] * Y[(size_t)row * n1 + co + o0 + o];
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
