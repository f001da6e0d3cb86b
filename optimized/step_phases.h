/* Fragment of step_impl.h (instantiated once per precision: REAL, FN, PREC
 * are defined there; not a standalone header): the step in named phases over one workspace (docs/design.md). */

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
    int N, gr, nofb;
    FN(outs) o;      /* what the step wrote into out (allocation failure, NaN/Inf checked as written) */
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
        FN(put)(M->cfg, S->out, &S->o, M->X[t], 2, (size_t)B, (size_t)g->n[t], 0, nm);
    }
    if (want_loss) {
        ocn_array *la = ocn_arrayset_add2(S->out, "loss", 1, 1, 0, 0);
        if (la) la->data[0] = FN(loss)(M);
        else S->o.fail = 1;
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
    FN(put)(M->cfg, S->out, &S->o, Vf, 3, (size_t)M->B, (size_t)n, (size_t)n, nm);
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
        FN(put)(M->cfg, S->out, &S->o, S->L[l].v, 2, (size_t)M->B, (size_t)g->n[T], 0, nm);
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
    /* r = 1: v' = cf'·Z' per sample (§7: v lies in the span of Z; cf carries
     * its coefficients), so F_xᵀ v' = cf'·F_xᵀ Z' and the g's of v' are cf'
     * times those of Z' — the second vector-Jacobian product is a scaling
     * (issue 11 item 4; docs/decisions.md).  r > 1 sums could cancel: VJP. */
    int derive = !S->nofb && r == 1;
    if (!derive) FN(stage_vjp)(M, t, V->v, 1, want_x ? gx : NULL, GHv);
    if (!S->nofb) FN(stage_vjp)(M, t, V->Zt, r, want_x ? qxt : NULL, GHz);
    for (int i = 0; derive && i < B; i++) {
        REAL c = V->cf[i];
        for (int a = 0; want_x && a < n; a++) gx[(size_t)i * n + a] = c * qxt[(size_t)i * n + a];
        for (int p = 0; p < st->nplayers; p++) {
            int out = st->players[p].out_dim; /* conv: the sample's L virtual rows, contiguous */
            for (int o = 0; o < out; o++) GHv[p][(size_t)i * out + o] = c * GHz[p][(size_t)i * out + o];
        }
    }
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

/* How a lean step forms Q_θ and k (issue 12 follow-up: fewer parameter-sized
 * passes; θ_new bit-identical to the full step's, tests/test_optimized.c) */
enum {
    QTH_FORMED, /* Q_θ = λθ + (1/B) Aᵀ G formed; k = M^† Q_θ by minv_gain */
    QTH_SGD,    /* sgd, k read only by the update pass: (1/B) Aᵀ G kept in k's buffer, and
                 * k = η ((1/B) Aᵀ G + λθ) formed there as θ_new is written (one pass, not three) */
    QTH_UNUSED  /* kfac, no weight decay, rank-B gain for every player: nothing reads Q_θ */
};

/* Q_θ = λθ + (1/B) Aᵀ G (the batch gradient, Tm form) and λθ alone (the part
 * outside the gradient's span, NULL without weight decay) */
static void FN(batch_gradient)(FN(step) *S, FN(expn) *X, REAL *const *gv, REAL **Qth, REAL **lth, int lth_wanted)
{
    FN(omodel) *M = &S->M;
    const ocn_game *g = M->g;
    int B = M->B;
    for (int q = 0; q < X->np && X->qth != QTH_FORMED; q++) {
        FN(opl) *P = X->P[q];
        Qth[q] = lth[q] = NULL;
        X->k[q] = (REAL *)ocn_ws_keep_raw(M->ws, (size_t)P->m * sizeof(REAL), "the gains k");
        if (X->qth == QTH_SGD)
            GEMM(M->bk, 1, 0, P->na, P->out, B * P->L, (REAL)(1.0 / B), P->A, P->na, gv[q], P->out, 0, X->k[q], P->out);
    }
    for (int q = 0; q < X->np && X->qth == QTH_FORMED; q++) {
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
            if (X->W.mode == CV_KFAC && X->W.GGi[q] && Lc == 1) {
                /* rank-aware kfac gain k = (η/B) (A A^†)ᵀ GGi: A k = (η/B) (A (A A^†)ᵀ) GGi,
                 * two B x B-inner products instead of one B·na·out (issue 12 item 3) */
                REAL *C = TMPRAW(M->ws, (size_t)B * B, "A (A A^+)ᵀ");
                GEMM(bk, 0, 1, B, B, P->na, 1, P->A, P->na, FN(kfac_aai)(&X->W, q, bk), P->na, 0, C, B);
                GEMM(bk, 0, 0, B, P->out, B, X->W.eta / (REAL)B, C, B, X->W.GGi[q], P->out, 0, Y, P->out);
            } else {
                GEMM(bk, 0, 0, B * Lc, P->out, P->na, 1, P->A, P->na, X->k[q], P->out, 0, Y, P->out);
            }
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
    FN(put)(M->cfg, S->out, &S->o, gx, 2, (size_t)B, (size_t)n, 0, nm);
    if (!X->np || !ok || (M->cfg && M->cfg->lean)) return; /* lean: put writes nothing of these */
    size_t mk = ocn_ws_mark(M->ws);
    int mt = 0;
    for (int q = 0; q < X->np; q++) mt += X->P[q]->m;
    REAL *cat = TMP(M->ws, mt, "Q_θ of the expansion");
    for (int q = 0, o = 0; q < X->np; o += X->P[q]->m, q++) memcpy(cat + o, Qth[q], (size_t)X->P[q]->m * sizeof(REAL));
    FN(name)(nm, sizeof nm, S->gr ? "Pth" : "Qth", t, S->gr ? -1 : l);
    FN(put)(M->cfg, S->out, &S->o, cat, 1, (size_t)mt, 0, 0, nm);
    REAL *K[REF_MAXP];
    int formK = X->fb;
    for (int q = 0; q < X->np; q++) formK = formK && (long)B * X->P[q]->m * n <= S->limit;
    for (int q = 0; q < X->np; q++) {
        FN(name)(nm, sizeof nm, "k", t, X->P[q]->pl->lane);
        FN(put)(M->cfg, S->out, &S->o, X->k[q], 1, (size_t)X->P[q]->m, 0, 0, nm);
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
            FN(put)(M->cfg, S->out, &S->o, K[q], 3, (size_t)B, (size_t)X->P[q]->m, (size_t)n, nm);
        }
    } else if (!S->nofb && (opt->zero & (OCN_ZERO_QTHX | OCN_ZERO_PUX))) {
        /* K = M^† Q_θx with Q_θx := 0 is exactly zero; it is still a defined output (§11) */
        for (int q = 0; q < X->np; q++) {
            if ((long)B * X->P[q]->m * n > S->limit) continue;
            size_t mk2 = ocn_ws_mark(M->ws);
            REAL *Z = TMP(M->ws, (size_t)B * X->P[q]->m * n, "K = 0 formed for output");
            FN(name)(nm, sizeof nm, "K", t, X->P[q]->pl->lane);
            FN(put)(M->cfg, S->out, &S->o, Z, 3, (size_t)B, (size_t)X->P[q]->m, (size_t)n, nm);
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
        /* a lean step (not a §10 run, whose perturbations follow Q_θ as formed)
         * skips the passes over Q_θ that only other outputs read */
        int cv = FN(curv_mode)(opt, X->np), lazy = M->cfg && M->cfg->lean && !M->pert;
        X->qth = QTH_FORMED;
        if (lazy && cv == CV_SCALED && (nofb || first)) X->qth = QTH_SGD; /* no value recursion reads k */
        if (lazy && cv == CV_KFAC && g->weight_decay == 0) {
            X->qth = QTH_UNUSED;
            for (int q = 0; q < X->np; q++)
                if (!FN(kfac_rank_gain)(B * X->P[q]->L, X->P[q]->na, X->P[q]->out)) X->qth = QTH_FORMED;
        }
        /* λθ alone is needed by the low-rank (§7) forms only, and only those know it
         * after the statistics: Q_θ first, λθ once the mode is known */
        FN(batch_gradient)(S, X, gv, Qth, lth, 0);
        char who[192];
        if (S->gr) snprintf(who, sizeof who, "%s: stage %d (GR)", g->name, t);
        else snprintf(who, sizeof who, "%s: stage %d lane %d", g->name, t, l);
        PHASE(bk, "backward t=%d lane %d: curvature statistics", t, l);
        /* no_feedback: no value Hessian, GHz NULL (gn-outer's U = [g_i]/√B; with the
         * array of NULLs it read them: SIGSEGV on every gn-outer no_feedback step) */
        rc = FN(minv_setup)(M, &X->W, X->np, X->P, gv, nofb ? NULL : gz, V->S, V->cf, r, who, err);
        if (!rc && X->W.mode == CV_WOOD && g->weight_decay != 0) {
            REAL *Qdummy[REF_MAXP];
            FN(batch_lambda)(S, X, Qdummy, lth);
        }
        /* the batch gradient mean_i F_θᵀ v'^(i) = U c in the low-rank modes */
        int nc = X->W.mode == CV_WOOD ? B * X->W.upr : 0;
        REAL *cg = nc ? TMP(M->ws, nc, "the batch gradient's coefficients") : NULL;
        for (int k = 0; k < nc; k++) cg[k] = (X->W.qinU ? V->cf[k] : 1) / (REAL)sqrt((double)B);
        PHASE(bk, "backward t=%d lane %d: gains", t, l);
        if (!rc && X->qth != QTH_SGD) FN(minv_gain)(&X->W, Qth, g->weight_decay != 0 ? lth : NULL, cg, X->k, bk);
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
    FN(put)(M->cfg, S->out, &S->o, nv.v, 2, (size_t)B, (size_t)n, 0, nm);
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
        if (lowrank && Lc == 1 && X->W.GGz[q]) {
            /* Cg G^† = Σ_j c_ij (g_ij G^†): a combination of the value quadratic's
             * g_z G^† rows, kept — no out² product (issue 11 item 4) */
            REAL *CG = TMP(M->ws, (size_t)B * P->out, "Cg G^+ of the feedback");
            for (int i = 0; i < B; i++)
                for (int j = 0; j < r; j++) {
                    REAL c = cc[i * r + j];
                    const REAL *gg = X->W.GGz[q] + ((size_t)i * r + j) * P->out;
                    for (int o = 0; o < P->out; o++) CG[(size_t)i * P->out + o] += c * gg[o];
                }
            GEMM(bk, 1, 0, P->na, P->out, B, X->W.eta / (REAL)B, FN(kfac_aai)(&X->W, q, bk), P->na, CG, P->out, 0, fbk[q], P->out);
            ocn_ws_release(M->ws, mk2);
            continue;
        }
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
            FN(put)(M->cfg, S->out, &S->o, dx, 2, (size_t)B, (size_t)n, 0, nm);
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
            /* a lean step whose x̂ pass is over: θ_new written straight into its
             * float64 output array, one pass (the same rounding: REAL, then double) */
            int direct = lean && !need_fwd && !M->pert;
            /* QTH_SGD: k's buffer holds (1/B) Aᵀ G; k = η ((1/B) Aᵀ G + λθ), rounded as the
             * full step forms Q_θ and then k, is formed as θ_new is written */
            int ks = X->qth == QTH_SGD;
            REAL lam = (REAL)g->weight_decay, eta = X->W.eta;
#define KJ(j) (ks ? eta * (k[j] + lam * th[j]) : k[j])
            for (int q = 0; q < X->np; q++) { /* θ_new = θ − (k + K δx) */
                REAL *th = X->P[q]->th, *k = X->k[q], *tn = thn[X->P[q]->p], *fbk = NULL;
                if (fb && !q) {
                    REAL *f[REF_MAXP];
                    for (int u = 0; u < X->np; u++) f[u] = TMP(M->ws, X->P[u]->m, "the feedback K δx");
                    FN(feedback)(S, X, dx, n, f);
                    for (int u = 0; u < X->np; u++) X->fbk[u] = f[u];
                }
                if (fb) fbk = X->fbk[q];
                int m = X->P[q]->m;
                if (direct) {
                    snprintf(nm, sizeof nm, "theta_new_t%d_n%d", t, X->P[q]->pl->lane);
                    size_t shape[1] = {(size_t)m};
                    ocn_array *a = NULL;
#if OCN_MUTANT == MUT_DROP_THETA0
                    if (t != 0)
#endif
                    if (!(a = ocn_opt_array_reuse(S->out, nm, 1, shape))) S->o.fail = 1;
                    double *d = a ? a->data : NULL;
                    int bad = 0; /* the final NaN/Inf check (run.c) as it is written: no second pass */
                    for (int j = 0; d && j < m; j++) {
                        REAL v = fbk ? th[j] - (KJ(j) + fbk[j]) : th[j] - KJ(j);
                        d[j] = (double)v;
                        bad |= !isfinite(v);
                    }
                    if (d) S->o.nchecked++, S->o.nonfinite |= bad;
                    continue;
                }
                if (fbk)
                    for (int j = 0; j < m; j++) tn[j] = th[j] - (KJ(j) + fbk[j]);
                else
                    for (int j = 0; j < m; j++) tn[j] = th[j] - KJ(j);
            }
#undef KJ
            for (int q = 0; q < X->np && !direct; q++) {
                int p = X->P[q]->p;
                snprintf(nm, sizeof nm, "theta_new_t%d_n%d", t, X->P[q]->pl->lane);
                /* §10 amendment (docs/decisions.md "§10 amendments from the game fuzzer"):
                 * θ_new perturbed as formed, before it drives the x̂ forward pass */
                PVEC(M->pert, thn[p], X->P[q]->m);
#if OCN_MUTANT == MUT_DROP_THETA0
                if (t != 0)
#endif
                FN(put)(M->cfg, S->out, &S->o, thn[p], 1, (size_t)X->P[q]->m, 0, 0, nm);
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
        PMAT(M->pert, Xn, B, g->n[t + 1]); /* §10 amendment: x̂ perturbed as formed (x̂_0 = x_0 is not formed) */
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
    if (!rc && S->o.fail) rc = ocn_fail(err, OCN_ENOMEM, "out of memory storing results");
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
    /* the final check of every optimized run (run.c): no NaN/Inf array handed
     * back — read again only where an array was not checked as it was written */
    if (!rc && (S.o.nonfinite || S.o.nchecked != out->count)) rc = ocn_opt_check_finite(g, PREC, out, err);
    return rc;
}
