/* Fragment of step_impl.h (instantiated once per precision: REAL, FN, PREC
 * are defined there; not a standalone header): values and outputs: expansion records, the §1/§7 terminal, outputs in float64, the §1 loss. */

/* ---- one step ---- */

typedef struct {
    int np, r, fb;         /* players, rank of the incoming value, feedback present */
    int qth;               /* how Q_θ and k are formed (QTH_…, step_phases.h) */
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
        /* §10 amendment (docs/decisions.md "terminal terms perturbed as formed",
         * as the reference): the value's gradient, and below its factors, as formed */
        PVEC(M->pert, v, n);
        if (outer) { /* Z = v: cf = 1 */
            memcpy(L->Zt + (size_t)i * n, v, (size_t)n * sizeof(REAL));
            L->S[i] = 1;
            L->cf[i] = 1;
        }
    }
    if (!outer) { /* the exact terminal's factors Z and core S (diagonal: zeros stay zero) */
        PMAT(M->pert, L->Zt, (size_t)B * r, n);
        PVEC(M->pert, L->S, (size_t)B * r * r);
    }
    ocn_ws_release(M->ws, mk);
    return OCN_OK;
}

/* ---- output (converted to float64) ---- */

/* What a step wrote into its output set: allocation failure, and how many
 * arrays it wrote with the final NaN/Inf check (run.c) done as they were
 * converted — a training step's θ_new is then not read a second time. */
typedef struct {
    int fail;      /* an output array could not be had */
    int nchecked;  /* arrays written and checked as converted */
    int nonfinite; /* one of them holds NaN/Inf */
} FN(outs);

static void FN(put)(const ocn_opt_config *cfg, ocn_arrayset *out, FN(outs) *o, const REAL *x, int ndim, size_t d0, size_t d1,
                    size_t d2, const char *nm)
{
    if (cfg && cfg->lean && strncmp(nm, "theta_new_", 10)) return; /* a training step: the new parameters only */
    size_t shape[3] = {d0, d1, d2};
    ocn_array *a = ocn_opt_array_reuse(out, nm, ndim, shape); /* a state's step set: no fresh pages */
    if (!a) {
        o->fail = 1;
        return;
    }
    int bad = 0;
    for (size_t i = 0; i < a->size; i++) {
        double v = (double)x[i];
        a->data[i] = v;
        bad |= !isfinite(v);
    }
    o->nchecked++, o->nonfinite |= bad;
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
