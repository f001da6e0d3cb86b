/* One optimizer step of the dense reference: forward (§3), terminal (§1),
 * FNE backward (§4, §5), update pass (§8); every §11 array stored with its
 * §10 rev. 2 measured sensitivity c (perturbation runs of this same code,
 * src/tolerance.c; revision 1's product of condition numbers overstated c by
 * up to 10^20 and let wrong gains pass). */
#include "expand.h"
#include "update.h"
#include "ocn/memory.h"
#include "ocn/tolerance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FAULT_NAMES[] = {"none",        "K-sign",          "feedback-drop", "K-perturb",    "k-perturb",
                                          "Puv-drop",    "bp-grad-perturb", "second-order-drop", "W-perturb", "persample-1/B",
                                          "decay-twice"};
static const char *const TRAJ_FAULT_NAMES[] = {"decay-drop", "refresh-shift"}; /* §13, from OCN_FAULT_DECAY_DROP */

const char *ocn_fault_name(ocn_fault f)
{
    if ((unsigned)f < OCN_FAULT_COUNT) return FAULT_NAMES[f];
    if (f >= OCN_FAULT_DECAY_DROP && f < OCN_FAULT_TRAJ_END) return TRAJ_FAULT_NAMES[f - OCN_FAULT_DECAY_DROP];
    return "?";
}

/* What each fault breaks (`ocn --help` prints this table with the names). */
static const char *const FAULT_WHAT[] = {"no fault", "K := -K (every feedback gain)",
                                         "update pass applies k only, drops K dx",
                                         "K := K (1 + 1e-6)", "k := k (1 + 1e-6)",
                                         "GR, exact curvature: cross-player blocks P_uv left out of M",
                                         "plain back-propagation: every gradient (1 + 1e-6) (GRAD sees it)",
                                         "full dynamics without the V_x'.F_xx, F_thx, F_thth terms (P2 sees it)",
                                         "GR: the value gradient W_x (1 + 1e-6) at every stage (T6a, E2, T6c)",
                                         "persample values with the batch objective's 1/B (E4 sees it)",
                                         "the weight decay's curvature lambda I added twice to Q_thth / P_thth (C7)"};

static const char *const TRAJ_FAULT_WHAT[] = {"§13 trajectories: moving averages without the (1 - rho)",
                                              "§13 trajectories: kfac inverses refreshed at s = 1 (mod T_r), off by one"};

const char *ocn_fault_description(ocn_fault f)
{
    if ((unsigned)f < OCN_FAULT_COUNT) return FAULT_WHAT[f];
    if (f >= OCN_FAULT_DECAY_DROP && f < OCN_FAULT_TRAJ_END) return TRAJ_FAULT_WHAT[f - OCN_FAULT_DECAY_DROP];
    return "?";
}

/* A fault whose kernel never runs, or changes nothing, on this game would
 * pass silently and look like a harness that cannot fail (issue 15).  The
 * answer is for the fixture's own arrays (`ocn verify`); the faults aimed at
 * the §9 checks' variants (OCN_FAULT_BP_GRAD … OCN_FAULT_DECAY_TWICE) run in
 * `ocn theorems` whatever it says. */
int ocn_fault_applies(const ocn_game *g, ocn_fault f, char *why, size_t n)
{
    const ocn_optimizer *o = &g->opt;
    const char *no = NULL;
    int k_zero = (o->game == OCN_GAME_FNE && (o->zero & OCN_ZERO_QTHX)) ||
                 (o->game == OCN_GAME_GR && (o->zero & OCN_ZERO_PUX));
    int multi = 0; /* a stage with two parameterised players: P_uv exists */
    for (int t = 0; t < g->T; t++) {
        int k = 0;
        for (int p = 0; p < g->stages[t].nplayers; p++) k += g->stages[t].players[p].m > 0;
        multi |= k >= 2;
    }
    switch (f) {
    case OCN_FAULT_PUV_DROP:
        if (o->game != OCN_GAME_GR) no = "an FNE game has no cross-player blocks P_uv (GR only)";
        else if (o->curvature != OCN_CURV_EXACT) no = "it acts on the exact curvature only (this game's curvature is not exact)";
        else if (o->zero & (OCN_ZERO_MID | OCN_ZERO_PUV)) no = "the game's zero flags already drop M or P_uv";
        else if (!multi) no = "no stage has two parameterised players, so there is no P_uv";
        break;
    case OCN_FAULT_BP_GRAD:
        no = "it acts on the plain back-propagation the §9 checks use (GRAD), not on a fixture's arrays: run it "
             "with `ocn theorems`";
        break;
    case OCN_FAULT_SECOND_DROP:
        if (o->dynamics != OCN_DYN_FULL) no = "the game's dynamics are gn (no second-order terms; P2 in `ocn theorems` "
                                              "runs the full-dynamics variant)";
        break;
    case OCN_FAULT_W_PERTURB:
        if (o->game != OCN_GAME_GR) no = "W is the GR value (this game is FNE)";
        break;
    case OCN_FAULT_DECAY_TWICE:
        if (!(g->weight_decay > 0)) no = "the game has no weight decay (lambda = 0)";
        break;
    case OCN_FAULT_PERSAMPLE_B:
        if (o->value != OCN_VALUE_PERSAMPLE) no = "it acts on value: persample only";
        else if (g->batch < 2) no = "with one sample 1/B is 1";
        break;
    case OCN_FAULT_K_SIGN:
    case OCN_FAULT_K_PERTURB:
    case OCN_FAULT_FEEDBACK_DROP:
        if (k_zero) no = "K is zero in this game (zero: Qthx / Pux)";
        else if (f == OCN_FAULT_FEEDBACK_DROP && g->T < 2) no = "with one stage dx_0 = 0, so K dx contributes nothing";
        break;
    case OCN_FAULT_DECAY_DROP: /* §13: only a carried average with ρ > 0 over two or more steps sees it */
    case OCN_FAULT_REFRESH_SHIFT: {
        int kfac = o->curvature == OCN_CURV_KFAC || o->curvature == OCN_CURV_COOP_KFAC;
        int state = (kfac || o->curvature == OCN_CURV_RMSPROP) && !(o->zero & OCN_ZERO_MID);
        if (o->steps < 2) no = "a §13 fault needs a trajectory of two or more steps";
        else if (!state) no = "this curvature carries no §13 state (exact, gn-outer, sgd, zero: Mid)";
        else if (f == OCN_FAULT_DECAY_DROP && o->stat_decay == 0) no = "with stat_decay 0 the (1 - rho) is 1";
        else if (f == OCN_FAULT_REFRESH_SHIFT && (!kfac || o->refresh_every < 2))
            no = "only kfac/coop-kfac with refresh_every >= 2 refresh their inverses between steps";
        break;
    }
    default: break;
    }
    if (why && n) snprintf(why, n, "%s", no ? no : "");
    return no == NULL;
}

int ocn_fault_parse(const char *s, ocn_fault *out)
{
    for (int f = 0; f < OCN_FAULT_TRAJ_END; f++)
        if ((f < OCN_FAULT_COUNT || f >= OCN_FAULT_DECAY_DROP) && !strcmp(s, ocn_fault_name((ocn_fault)f))) {
            *out = (ocn_fault)f;
            return OCN_OK;
        }
    return OCN_EINVAL;
}

typedef struct {
    ocn_arrayset *out;
    int fail;
    char failed[64];   /* the first array that could not be stored */
    double failed_doubles;
} store;

/* §11 names: FNE "<Q>_t{t}_n{n}", GR "<P>_t{t}" (lane < 0). */
static void name_of(char *buf, size_t n, const char *base, int t, int lane)
{
    if (lane < 0) snprintf(buf, n, "%s_t%d", base, t);
    else snprintf(buf, n, "%s_t%d_n%d", base, t, lane);
}

static ocn_array *put(store *s, int ndim, size_t d0, size_t d1, size_t d2, const char *base, int t, int n)
{
    char name[64];
    name_of(name, sizeof name, base, t, n);
    ocn_array *a = ocn_arrayset_add2(s->out, name, ndim, d0, d1, d2);
    if (!a && !s->fail) {
        s->fail = 1;
        snprintf(s->failed, sizeof s->failed, "%s", name);
        s->failed_doubles = (double)d0 * (double)(ndim > 1 ? d1 : 1) * (double)(ndim > 2 ? d2 : 1);
    }
    return a;
}

static void put_matrix(store *s, const gsl_matrix *M, const char *base, int t, int n)
{
    ocn_array *a = put(s, 2, M->size1, M->size2, 0, base, t, n);
    for (size_t i = 0; a && i < M->size1; i++)
        for (size_t j = 0; j < M->size2; j++) a->data[i * M->size2 + j] = gsl_matrix_get(M, i, j);
}

/* Per-sample diagonal blocks (d x d) of a value Hessian stored as ref_vblock
 * says (aug: Bd x Bd; else Bd x d), as (B, d, d). */
static void put_diag_blocks(store *s, const gsl_matrix *M, int aug, int B, const char *base, int t, int n)
{
    size_t d = M->size1 / (size_t)B;
    ocn_array *a = put(s, 3, (size_t)B, d, d, base, t, n);
    for (int i = 0; a && i < B; i++) {
        gsl_matrix_const_view blk = ref_vblock_const(M, aug, d, i, i);
        for (size_t r = 0; r < d; r++)
            for (size_t c = 0; c < d; c++) a->data[((size_t)i * d + r) * d + c] = gsl_matrix_get(&blk.matrix, r, c);
    }
}

/* rows [r0, r0 + nr) of each per-sample matrix, as (B, nr, cols) */
static void put_batch_rows(store *s, gsl_matrix *const *M, int B, size_t r0, size_t nr, const char *base,
                           int t, int n)
{
    size_t c = M[0]->size2;
    ocn_array *a = put(s, 3, (size_t)B, nr, c, base, t, n);
    for (int i = 0; a && i < B; i++)
        for (size_t x = 0; x < nr; x++)
            for (size_t y = 0; y < c; y++) a->data[((size_t)i * nr + x) * c + y] = gsl_matrix_get(M[i], r0 + x, y);
}

static void put_vector(store *s, const gsl_vector *v, size_t r0, size_t nr, const char *base, int t, int n)
{
    ocn_array *a = put(s, 1, nr, 0, 0, base, t, n);
    for (size_t j = 0; a && j < nr; j++) a->data[j] = gsl_vector_get(v, r0 + j);
}

static void put_values(store *s, const gsl_matrix *Vx, const gsl_matrix *VXX, int B, int aug, int gr, int t, int n)
{
    put_matrix(s, Vx, gr ? "Wx" : "Vx", t, n);
    put_diag_blocks(s, VXX, aug, B, gr ? "Wxx" : "Vxx", t, n);
    if (aug) put_matrix(s, VXX, gr ? "WXX" : "VXX", t, n);
}

/* Expansions (FNE Q of lane n, GR P), per-player gains, values. */
static void put_stage(store *s, const ocn_game *g, const ref_stage_out *o, int aug, int gr, int t, int n)
{
    int B = g->batch, l = gr ? -1 : n;
    put_matrix(s, o->Qx, gr ? "Px" : "Qx", t, l);
    put_diag_blocks(s, o->Qxx, 0, B, gr ? "Pxx" : "Qxx", t, l);
    if (o->np) {
        size_t m = (size_t)o->m;
        put_vector(s, o->Qth, 0, m, gr ? "Pth" : "Qth", t, l);
        put_matrix(s, o->Qthi, gr ? "Pthi" : "Qthi", t, l);
        put_batch_rows(s, o->Qthx, B, 0, m, gr ? "Pthx" : "Qthx", t, l);
        put_matrix(s, o->Qthth, gr ? "Pthth" : "Qthth", t, l);
        for (int u = 0; u < o->np; u++) { /* GR gains are stored per player (§11) */
            const ocn_player *pl = &g->stages[t].players[o->p[u]];
            put_vector(s, o->k, (size_t)o->moff[u], (size_t)pl->m, "k", t, pl->lane);
            put_batch_rows(s, o->K, B, (size_t)o->moff[u], (size_t)pl->m, "K", t, pl->lane);
        }
    }
    put_values(s, o->Vx, o->VXX, B, aug, gr, t, l);
}

/* Players of an expansion: FNE lane n's own player, GR all parameterised
 * players in lane order (θ_t = [θ_{t,1}; …]). */
static int expansion_players(const ocn_game *g, int t, int gr, int lane, int *players)
{
    int np = 0;
    for (int l = 0; l < g->nlanes; l++) {
        if (!gr && l != lane) continue;
        const ocn_player *pl = ocn_game_lane_player(g, t, l);
        if (pl && pl->m) players[np++] = (int)(pl - g->stages[t].players);
    }
    return np;
}

static int step_nomem(ocn_error *err, const char *what, double doubles)
{
    char sz[32];
    return ocn_fail(err, OCN_ENOMEM, "out of memory allocating %s, %s", what,
                    ocn_format_bytes(doubles * (double)sizeof(double), sz, sizeof sz));
}

/* One step; `pert` (NULL on the nominal run) perturbs every matrix handed to
 * a pseudo-inverse and every stage's expansion terms (§10 rev. 2).  Issue 10:
 * every allocation is checked; on failure OCN_ENOMEM names the stage and the
 * array, everything allocated here is freed (what was stored stays in `out`). */
int ref_step_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs, ocn_fault fault,
                 ocn_perturb *pert, const ref_traj *traj, ref_progress *prog, ocn_arrayset *out, ocn_error *err)
{
    ref_model m;
    int rc = ref_model_init(g, inputs, &m, err);
    if (rc) {
        ref_model_free(&m);
        return rc;
    }
    m.pert = pert;
    m.traj = traj;
    int B = g->batch, T = g->T, aug = opt->value == OCN_VALUE_AUGMENTED, gr = opt->game == OCN_GAME_GR;
    int N = gr ? 1 : g->nlanes; /* value functions: one per lane (FNE) or the joint W (GR) */
    store s = {out, 0, "", 0};
    double dB = B;

    gsl_matrix **X = calloc((size_t)T + 1, sizeof *X), **dX = calloc((size_t)T + 1, sizeof *dX);
    gsl_matrix **v = calloc((size_t)N, sizeof *v), **V = calloc((size_t)N, sizeof *V), *H = NULL;
    gsl_vector ***k = calloc((size_t)T, sizeof *k);
    gsl_matrix ****K = calloc((size_t)T, sizeof *K);
    ref_stage_out *outs = calloc((size_t)N, sizeof *outs);
    double ***thn = calloc((size_t)T, sizeof *thn);
    if (!X || !dX || !v || !V || !k || !K || !outs || !thn) {
        rc = step_nomem(err, "the step's tables", 0);
        goto done;
    }

    /* forward (§3) */
    for (int t = 0; t <= T; t++) {
        X[t] = ref_matrix_alloc((size_t)B, (size_t)g->n[t]);
        dX[t] = ref_matrix_alloc((size_t)B, (size_t)g->n[t]);
        if (!X[t] || !dX[t]) {
            rc = step_nomem(err, "the states x_t, δx_t (B x n_t)", 2 * dB * g->n[t]);
            ocn_error_prefix(err, "forward pass: stage %d", t);
            goto done;
        }
    }
    memcpy(X[0]->data, m.x0, (size_t)B * (size_t)g->n[0] * sizeof(double));
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++)
            ref_stage_forward(&m, t, m.th[t], gsl_matrix_ptr(X[t], (size_t)i, 0), gsl_matrix_ptr(X[t + 1], (size_t)i, 0));

    /* terminal (§1, §4): FNE lane n: V_T = φ_n; GR: W_T = φ (one copy) */
    size_t nT = (size_t)g->n[T];
    if (!(H = ref_matrix_alloc(nT, nT))) {
        rc = step_nomem(err, "the terminal Hessian (n_T x n_T)", (double)nT * nT);
        goto terminal_fail;
    }
    for (int n = 0; n < N; n++) {
        v[n] = ref_matrix_calloc((size_t)B, nT);
        V[n] = ref_matrix_calloc((size_t)B * nT, aug ? (size_t)B * nT : nT);
        if (!v[n] || !V[n]) {
            rc = step_nomem(err, aug ? "the terminal value v_x, B·V_XX (B x n_T, Bn_T x Bn_T)"
                                     : "the terminal value v_x, v_xx (B x n_T, B x n_T x n_T)",
                            dB * nT + (double)B * nT * (aug ? (double)B * nT : (double)nT));
            goto terminal_fail;
        }
        for (int i = 0; i < B; i++) {
            ref_terminal(&m, gr ? -1 : n, i, gsl_matrix_ptr(X[T], (size_t)i, 0), opt->terminal,
                         gsl_matrix_ptr(v[n], (size_t)i, 0), H);
            /* §10 amendment (docs/decisions.md "terminal terms perturbed as
             * formed"): ∇φ and ∇²φ are the backward pass's first formed terms;
             * a port rounds them too, which breaks exact structure such as
             * Σ_k (p_k − y_k) = 0 of a softmax gradient (a conv bias gradient
             * Σ_p (p − y)_p σ'_p then cancels 2e4-fold: fuzz game 0x7126222dab20ec0e) */
            ocn_perturb_vec(pert, gsl_matrix_ptr(v[n], (size_t)i, 0), nT);
            ocn_perturb_sym(pert, H->data, nT, H->tda);
            gsl_matrix_view blk = ref_vblock(V[n], aug, nT, i, i);
            gsl_matrix_memcpy(&blk.matrix, H);
        }
        put_values(&s, v[n], V[n], B, aug, gr, T, gr ? -1 : n);
    }
    gsl_matrix_free(H);
    H = NULL;

    /* backward (§4) — keep gains per player for the update pass */
    if (prog) prog->p.stage = 0, prog->p.stages = T;
    for (int t = T - 1; t >= 0 && !rc; t--) {
        if (prog) prog->p.stage = T - 1 - t, ref_progress_report(prog); /* issue 10: stages done so far */
        k[t] = calloc((size_t)g->stages[t].nplayers, sizeof **k);
        K[t] = calloc((size_t)g->stages[t].nplayers, sizeof **K);
        if (!k[t] || !K[t]) {
            rc = step_nomem(err, "the gain tables", 0);
            ocn_error_prefix(err, "stage %d", t);
            break;
        }
        memset(outs, 0, (size_t)N * sizeof *outs);
        for (int n = 0; n < N && !rc; n++) {
            int players[REF_MAX_PLAYERS];
            int np = expansion_players(g, t, gr, n, players);
            rc = ref_stage_backward(&m, opt, fault, t, players, np, X[t], v[n], V[n], &outs[n], err);
            if (rc) ocn_error_prefix(err, gr ? "stage %d" : "stage %d lane %d", t, n);
        }
        for (int n = 0; n < N; n++) {
            ref_stage_out *o2 = &outs[n];
            if (!rc) put_stage(&s, g, o2, aug, gr, t, n);
            for (int u = 0; !rc && u < o2->np; u++) { /* per-player gains for the update pass */
                int p = o2->p[u], mu = g->stages[t].players[p].m;
                size_t nc = (size_t)g->n[t];
                if (!(k[t][p] = ref_vector_alloc((size_t)mu)) || !(K[t][p] = calloc((size_t)B, sizeof ***K))) {
                    rc = step_nomem(err, "the gains kept for the update pass", (double)mu);
                    ocn_error_prefix(err, "stage %d player %d", t, p);
                    break;
                }
                gsl_vector_view kv = gsl_vector_subvector(o2->k, (size_t)o2->moff[u], (size_t)mu);
                gsl_vector_memcpy(k[t][p], &kv.vector);
                for (int i = 0; i < B && !rc; i++) {
                    if (!(K[t][p][i] = ref_matrix_alloc((size_t)mu, nc))) {
                        rc = step_nomem(err, "the gains K^(i) kept for the update pass (B x m x n)", dB * mu * (double)nc);
                        ocn_error_prefix(err, "stage %d player %d", t, p);
                        break;
                    }
                    gsl_matrix_view Kv = gsl_matrix_submatrix(o2->K[i], (size_t)o2->moff[u], 0, (size_t)mu, nc);
                    gsl_matrix_memcpy(K[t][p][i], &Kv.matrix);
                }
            }
            if (o2->Vx && o2->VXX) {
                gsl_matrix_free(v[n]), gsl_matrix_free(V[n]);
                v[n] = o2->Vx, V[n] = o2->VXX;
                o2->Vx = o2->VXX = NULL;
            }
            ref_stage_out_free(o2, B);
        }
        if (!rc && s.fail) break;
    }
    if (rc) goto done;

    if (prog && !rc) prog->p.stage = T, ref_progress_report(prog);
    /* update pass (§8) */
    for (int t = 0; t < T && !s.fail; t++) {
        if (!(thn[t] = calloc((size_t)g->stages[t].nplayers, sizeof **thn))) {
            rc = step_nomem(err, "the new parameters' table", 0);
            goto done;
        }
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (g->stages[t].players[p].m &&
                !(thn[t][p] = calloc((size_t)g->stages[t].players[p].m, sizeof(double)))) {
                rc = step_nomem(err, "the new parameters θ (m)", g->stages[t].players[p].m);
                ocn_error_prefix(err, "update pass: stage %d player %d", t, p);
                goto done;
            }
    }
    if (!s.fail) rc = ref_update_pass(&m, fault, (gsl_vector *const *const *)k, (gsl_matrix **const *const *)K,
                                      (const gsl_matrix *const *)X, dX, thn, err);
    if (!rc && !s.fail) {
        for (int t = 0; t <= T; t++) {
            put_matrix(&s, X[t], "x", t, -1);
            put_matrix(&s, dX[t], "dx", t, -1);
        }
        for (int t = 0; t < T; t++)
            for (int p = 0; p < g->stages[t].nplayers; p++) {
                const ocn_player *pl = &g->stages[t].players[p];
                if (!pl->m) continue;
                ocn_array *a = put(&s, 1, (size_t)pl->m, 0, 0, "theta_new", t, pl->lane);
                if (a) memcpy(a->data, thn[t][p], (size_t)pl->m * sizeof(double));
            }
    }
    goto done;

terminal_fail:
    ocn_error_prefix(err, "terminal stage %d", T);
done:
    if (!rc && s.fail) {
        char sz[32];
        rc = ocn_fail(err, OCN_ENOMEM, "out of memory storing the result '%s' (%s)", s.failed,
                      ocn_format_bytes(s.failed_doubles * (double)sizeof(double), sz, sizeof sz));
    }
    /* NaN/Inf where inputs were finite is a numerical failure, never silent */
    for (int i = 0; !rc && i < out->count; i++)
        for (size_t j = 0; j < out->a[i].size; j++)
            if (!isfinite(out->a[i].data[j])) {
                rc = ocn_fail(err, OCN_ENUMERIC, "%s: reference produced NaN/Inf in '%s'", g->name, out->a[i].name);
                break;
            }

    for (int t = 0; t < T; t++) {
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            if (k && k[t]) gsl_vector_free(k[t][p]);
            if (K && K[t] && K[t][p]) {
                for (int i = 0; i < B; i++) gsl_matrix_free(K[t][p][i]);
                free(K[t][p]);
            }
            if (thn && thn[t]) free(thn[t][p]);
        }
        if (k) free(k[t]);
        if (K) free(K[t]);
        if (thn) free(thn[t]);
    }
    free(k), free(K), free(thn);
    for (int n = 0; outs && n < N; n++) ref_stage_out_free(&outs[n], B);
    free(outs);
    for (int n = 0; n < N; n++) {
        if (v) gsl_matrix_free(v[n]);
        if (V) gsl_matrix_free(V[n]);
    }
    free(v), free(V);
    gsl_matrix_free(H);
    for (int t = 0; t <= T; t++) {
        if (X) gsl_matrix_free(X[t]);
        if (dX) gsl_matrix_free(dX[t]);
    }
    free(X), free(dX);
    ref_model_free(&m);
    return rc;
}

/* §10: inputs are perturbed once, before the step: theta_… in stage and lane
 * order, then Wfix_…, x0 and the mse targets. */
void ref_perturb_inputs(const ocn_game *g, ocn_arrayset *in, ocn_perturb *p)
{
    static const char *const kinds[] = {"theta", "Wfix"};
    char nm[64];
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < g->T; t++)
            for (int q = 0; q < g->stages[t].nplayers; q++) {
                const ocn_player *pl = &g->stages[t].players[q];
                if (k == 0 ? !pl->m : pl->kind != OCN_PLAYER_BIAS) continue;
                snprintf(nm, sizeof nm, "%s_t%d_n%d", kinds[k], t, pl->lane);
                ocn_array *a = ocn_arrayset_find(in, nm);
                if (a) ocn_perturb_vec(p, a->data, a->size);
            }
    ocn_array *x0 = ocn_arrayset_find(in, "x0"), *y = ocn_arrayset_find(in, "y");
    if (x0) ocn_perturb_vec(p, x0->data, x0->size);
    if (y && g->loss == OCN_LOSS_MSE) ocn_perturb_vec(p, y->data, y->size);
}


static int perturbed_step(void *ctx, ocn_perturb *p, ocn_arrayset *out, ocn_error *err)
{
    const ref_run_ctx *c = ctx;
    ocn_arrayset *in = ocn_arrayset_copy(c->inputs);
    if (!in) return ocn_fail(err, OCN_ENOMEM, "out of memory copying inputs");
    ref_perturb_inputs(c->g, in, p);
    if (c->prog) c->prog->p.run++;
    int rc = ref_step_run(c->g, c->opt, in, c->fault, p, NULL, c->prog, out, err);
    ocn_arrayset_free(in);
    return rc;
}

int ocn_ref_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs,
                const ocn_ref_opts *o, ocn_arrayset *out, ocn_error *err)
{
    ref_gsl_quiet();
    int runs = o ? o->measure_runs : 0;
    /* issue 10: refuse, before allocating anything, what cannot fit */
    size_t limit = ocn_memory_limit(o ? o->max_memory : 0);
    char dom[400], need[32], lim[32];
    double est = ref_estimate(g, opt, runs, dom, sizeof dom);
    if (est > (double)limit)
        return ocn_fail(err, OCN_EUNSUPPORTED,
                        "%s: the reference would need about %s of memory (estimated before allocating; %s), over the "
                        "limit of %s (%s); mostly %s",
                        g->name, ocn_format_bytes(est, need, sizeof need),
                        runs > 0 ? "with the §10 perturbation runs" : "one step",
                        ocn_format_bytes((double)limit, lim, sizeof lim),
                        o && o->max_memory ? "max_memory" : "the machine's physical memory", dom);
    ref_progress pr = {o ? o->progress : NULL, o ? o->progress_ctx : NULL, {0, runs * (o && o->measure_f32 ? 2 : 1) + 1, 0, 1, 0, g->T}};
    ref_run_ctx c = {g, opt, inputs, o ? o->fault : OCN_FAULT_NONE, &pr};
    int rc = ref_step_run(g, opt, inputs, c.fault, NULL, NULL, &pr, out, err);
    if (!rc) rc = ocn_measure_sensitivity(g, opt, runs, OCN_U64, perturbed_step, &c, out, err);
    if (!rc && o && o->measure_f32) rc = ocn_measure_sensitivity_f32(g, runs, perturbed_step, &c, out, err);
    return rc;
}
