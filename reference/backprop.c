/* Plain back-propagation of L_n (SPEC §1), written apart from the Bellman
 * code: vector-Jacobian products only, no Jacobian matrices, no gains.  The
 * harness uses it as the independent side of T6b, T6-base, GRAD, P2, P3, LQR. */
#include "ref.h"

#include <stdlib.h>
#include <string.h>

struct ocn_bp {
    const ocn_game *g;
    int B, lane;
    double loss;
    double ***grad, ***gsample, ***ka, ***kg, **costate;
    int **na;
};

const double *ocn_bp_player_input(const ocn_game *g, int t, int p, const double *x)
{
    return x + g->block_off[t][g->stages[t].players[p].in_block];
}

/* ct0 = F_tᵀ ct1 for one sample; gh[p] = σ'(h_p) ⊙ ct1[out_p].  h and gl live
 * in the model's scratch regions 0 and 1 (issue 10: no allocation). */
static void stage_vjp(const ref_model *m, int t, double *const *th, const double *x, const double *ct1,
                      double *ct0, double **gh)
{
    const ocn_game *g = m->g;
    const ocn_stage *st = &g->stages[t];
    memset(ct0, 0, (size_t)g->n[t] * sizeof *ct0);
    double *h = m->ws, *gl = m->ws + m->nmax;
    for (int p = 0; p < st->nplayers; p++) {
        const ocn_player *pl = &st->players[p];
        ref_player_pre(g, t, pl, th[p], m->wfix[t][p], x, h);
        const double *c1 = ct1 + g->block_off[t + 1][pl->out_block];
        double *c0 = ct0 + g->block_off[t][pl->in_block];
        for (int r = 0; r < pl->out_dim; r++) gl[r] = ref_dact(pl->act, h[r]) * c1[r];
        if (gh && gh[p]) memcpy(gh[p], gl, (size_t)pl->out_dim * sizeof *gl);
        if (pl->kind == OCN_PLAYER_ACT) {
            for (int r = 0; r < pl->out_dim; r++) c0[r] += gl[r];
            continue;
        }
        for (int c = 0; c < pl->in_dim; c++) { /* Wᵀ gl */
            double s = 0;
            for (int r = 0; r < pl->out_dim; r++) s += ref_weight(pl, th[p], m->wfix[t][p], r, c) * gl[r];
            c0[c] += s;
        }
    }
    for (int k = 0; k < st->ncarries; k++) {
        const ocn_carry *c = &st->carries[k];
        for (int i = 0; i < g->block_dim[t][c->from]; i++)
            ct0[g->block_off[t][c->from] + i] += ct1[g->block_off[t + 1][c->to] + i];
    }
}

int ocn_bp_stage_vjp(const ocn_game *g, const ocn_arrayset *inputs, int t, const double *x, const double *ct1,
                     double *ct0, double **gh, ocn_error *err)
{
    ref_model m;
    int rc = ref_model_init(g, inputs, &m, err);
    if (!rc) stage_vjp(&m, t, m.th[t], x, ct1, ct0, gh);
    ref_model_free(&m);
    return rc;
}

static double weight_decay_term(const ref_model *m)
{
    const ocn_game *g = m->g;
    double s = 0;
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            for (int j = 0; j < g->stages[t].players[p].m; j++) s += m->th[t][p][j] * m->th[t][p][j];
    return 0.5 * g->weight_decay * s;
}

/* Forward one sample from stage t0 with state x into xT (n_T); traj[t]
 * (t0..T), when given, gets every state.  buf: 2·nmax doubles of the
 * caller's (issue 10: no allocation here). */
static void forward_from(const ref_model *m, int t0, const double *x, double **traj, double *buf, double *xT)
{
    const ocn_game *g = m->g;
    double *cur = buf, *nx = buf + m->nmax;
    memcpy(cur, x, (size_t)g->n[t0] * sizeof *cur);
    for (int t = t0; t < g->T; t++) {
        if (traj) memcpy(traj[t], cur, (size_t)g->n[t] * sizeof *cur);
        ref_stage_forward(m, t, m->th[t], cur, nx);
        double *sw = cur;
        cur = nx, nx = sw;
    }
    if (traj) memcpy(traj[g->T], cur, (size_t)g->n[g->T] * sizeof *cur);
    memcpy(xT, cur, (size_t)g->n[g->T] * sizeof *cur);
}

static int bp_nomem(ocn_error *err, const char *fn, const char *what)
{
    return ocn_fail(err, OCN_ENOMEM, "%s: out of memory allocating %s", fn, what);
}

/* traj[t] for t = 0..T (one block); NULL when out of memory */
static double **traj_alloc(const ocn_game *g)
{
    size_t tot = 0;
    for (int t = 0; t <= g->T; t++) tot += (size_t)g->n[t];
    double **traj = malloc(((size_t)g->T + 1) * sizeof *traj);
    double *d = malloc((tot + 1) * sizeof *d);
    if (!traj || !d) {
        free(traj), free(d);
        return NULL;
    }
    size_t off = 0;
    for (int t = 0; t <= g->T; off += (size_t)g->n[t], t++) traj[t] = d + off;
    return traj;
}

static void traj_free(double **traj)
{
    if (traj) free(traj[0]);
    free(traj);
}

int ocn_bp_loss_at(const ocn_game *g, const ocn_arrayset *inputs, int lane, int t_par, int p_par,
                   const double *theta, double *loss, ocn_error *err)
{
    ref_model m;
    int rc = ref_model_init(g, inputs, &m, err);
    double *buf = rc ? NULL : malloc((2 * m.nmax + (size_t)g->n[g->T] + 1) * sizeof *buf);
    if (!rc && !buf) rc = bp_nomem(err, "loss", "forward vectors");
    if (!rc) {
        if (theta) memcpy(m.th[t_par][p_par], theta, (size_t)g->stages[t_par].players[p_par].m * sizeof *theta);
        double s = 0, *xT = buf + 2 * m.nmax;
        for (int i = 0; i < m.B; i++) {
            forward_from(&m, 0, m.x0 + (size_t)i * (size_t)g->n[0], NULL, buf, xT);
            s += ref_terminal(&m, lane, i, xT, OCN_TERMINAL_EXACT, NULL, NULL);
        }
        *loss = s / m.B + weight_decay_term(&m);
    }
    free(buf);
    ref_model_free(&m);
    return rc;
}

int ocn_bp_costtogo(const ocn_game *g, const ocn_arrayset *inputs, int lane, int t, int sample,
                    const double *x, double *J, double *grad, ocn_error *err)
{
    ref_model m;
    int rc = ref_model_init(g, inputs, &m, err);
    if (rc) {
        ref_model_free(&m);
        return rc;
    }
    double **traj = traj_alloc(g);
    /* forward ping-pong (2 nmax), x_T, two co-states (nmax each) */
    double *buf = malloc((5 * m.nmax + 1) * sizeof *buf);
    if (!traj || !buf) {
        traj_free(traj), free(buf);
        ref_model_free(&m);
        return bp_nomem(err, "cost-to-go", "trajectory and co-state vectors");
    }
    double *xT = buf + 2 * m.nmax, *ct = buf + 3 * m.nmax, *c0 = buf + 4 * m.nmax;
    forward_from(&m, t, x, traj, buf, xT);
    for (size_t k = 0; k < (size_t)g->n[g->T]; k++) ct[k] = 0; /* (ref_terminal overwrites it) */
    *J = ref_terminal(&m, lane, sample, xT, OCN_TERMINAL_EXACT, ct, NULL);
    for (int s = g->T - 1; grad && s >= t; s--) {
        stage_vjp(&m, s, m.th[s], traj[s], ct, c0, NULL);
        double *sw = ct;
        ct = c0, c0 = sw;
    }
    if (grad) memcpy(grad, ct, (size_t)g->n[t] * sizeof *ct);
    traj_free(traj), free(buf);
    ref_model_free(&m);
    return OCN_OK;
}

int ocn_bp_run(const ocn_game *g, const ocn_arrayset *inputs, int lane, ocn_bp **out, ocn_error *err)
{
    return ocn_bp_run_fault(g, inputs, lane, OCN_FAULT_NONE, out, err);
}

int ocn_bp_run_fault(const ocn_game *g, const ocn_arrayset *inputs, int lane, ocn_fault fault, ocn_bp **out,
                     ocn_error *err)
{
    *out = NULL;
    ref_model m;
    int rc = ref_model_init(g, inputs, &m, err);
    if (rc) {
        ref_model_free(&m);
        return rc;
    }
    int T = g->T, B = m.B;
    ocn_bp *bp = calloc(1, sizeof *bp);
    double **traj = traj_alloc(g), *buf = malloc((3 * m.nmax + 1) * sizeof *buf);
    double **gh = malloc((OCN_MAX_PLAYERS + 1) * sizeof *gh);
    const char *what = "the result";
    if (!bp || !traj || !buf || !gh) goto nomem;
    bp->g = g, bp->B = B, bp->lane = lane;
    what = "per-stage tables";
    bp->grad = calloc((size_t)T, sizeof *bp->grad);
    bp->gsample = calloc((size_t)T, sizeof *bp->gsample);
    bp->ka = calloc((size_t)T, sizeof *bp->ka);
    bp->kg = calloc((size_t)T, sizeof *bp->kg);
    bp->na = calloc((size_t)T, sizeof *bp->na);
    bp->costate = calloc((size_t)T + 1, sizeof *bp->costate);
    if (!bp->grad || !bp->gsample || !bp->ka || !bp->kg || !bp->na || !bp->costate) goto nomem;
    what = "co-states (B x n_t)";
    for (int t = 0; t <= T; t++)
        if (!(bp->costate[t] = calloc((size_t)B * (size_t)g->n[t], sizeof(double)))) goto nomem;
    for (int t = 0; t < T; t++) {
        int np = g->stages[t].nplayers;
        what = "per-player tables";
        bp->grad[t] = calloc((size_t)np, sizeof(double *));
        bp->gsample[t] = calloc((size_t)np, sizeof(double *));
        bp->ka[t] = calloc((size_t)np, sizeof(double *));
        bp->kg[t] = calloc((size_t)np, sizeof(double *));
        bp->na[t] = calloc((size_t)np, sizeof(int));
        if (!bp->grad[t] || !bp->gsample[t] || !bp->ka[t] || !bp->kg[t] || !bp->na[t]) goto nomem;
        what = "gradients and KFAC statistics (B x m, B x (in+1), B x out)";
        for (int p = 0; p < np; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            /* §14: for a conv player the statistic is its input image z (in_dim); the patches a_p are the user's */
            bp->na[t][p] = pl->kind == OCN_PLAYER_CONV ? pl->in_dim : ocn_player_na(pl);
            bp->grad[t][p] = calloc((size_t)pl->m + 1, sizeof(double));
            bp->gsample[t][p] = calloc((size_t)B * (size_t)pl->m + 1, sizeof(double));
            bp->ka[t][p] = calloc((size_t)B * (size_t)bp->na[t][p], sizeof(double));
            bp->kg[t][p] = calloc((size_t)B * (size_t)pl->out_dim + 1, sizeof(double));
            if (!bp->grad[t][p] || !bp->gsample[t][p] || !bp->ka[t][p] || !bp->kg[t][p]) goto nomem;
        }
    }
    double loss = 0, *xT = buf + 2 * m.nmax;
    for (int i = 0; i < B; i++) {
        forward_from(&m, 0, m.x0 + (size_t)i * (size_t)g->n[0], traj, buf, xT);
        double *ct = bp->costate[T] + (size_t)i * (size_t)g->n[T];
        loss += ref_terminal(&m, lane, i, xT, OCN_TERMINAL_EXACT, ct, NULL);
        for (int t = T - 1; t >= 0; t--) {
            int np = g->stages[t].nplayers;
            for (int p = 0; p < np; p++) gh[p] = bp->kg[t][p] + (size_t)i * (size_t)g->stages[t].players[p].out_dim;
            double *c0 = bp->costate[t] + (size_t)i * (size_t)g->n[t];
            stage_vjp(&m, t, m.th[t], traj[t], bp->costate[t + 1] + (size_t)i * (size_t)g->n[t + 1], c0, gh);
            for (int p = 0; p < np; p++) { /* F_θᵀ ct = vec(gh aᵀ) */
                const ocn_player *pl = &g->stages[t].players[p];
                double *a = bp->ka[t][p] + (size_t)i * (size_t)bp->na[t][p];
                const double *z = ocn_bp_player_input(g, t, p, traj[t]);
                double *gs = bp->gsample[t][p] + (size_t)i * (size_t)pl->m;
                if (pl->kind == OCN_PLAYER_CONV) { /* §14: vec(Σ_p g_p a_pᵀ), patch scratch in region 4 */
                    memcpy(a, z, (size_t)pl->in_dim * sizeof *a);
                    ref_conv_theta_vjp(pl, z, gh[p], m.ws + 4 * m.nmax, gs);
                    for (int j = 0; j < pl->m; j++) bp->grad[t][p][j] += gs[j] / B;
                    continue;
                }
                for (int c = 0; c + 1 < bp->na[t][p]; c++) a[c] = z[c];
                a[bp->na[t][p] - 1] = 1.0;
                if (pl->kind == OCN_PLAYER_DENSE)
                    for (int c = 0; c < bp->na[t][p]; c++)
                        for (int r = 0; r < pl->out_dim; r++) gs[(size_t)c * (size_t)pl->out_dim + (size_t)r] = gh[p][r] * a[c];
                else if (pl->kind == OCN_PLAYER_BIAS)
                    memcpy(gs, gh[p], (size_t)pl->out_dim * sizeof *gs);
                for (int j = 0; j < pl->m; j++) bp->grad[t][p][j] += gs[j] / B;
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            for (int j = 0; j < g->stages[t].players[p].m; j++) {
                bp->grad[t][p][j] += g->weight_decay * m.th[t][p][j];
                if (fault == OCN_FAULT_BP_GRAD) bp->grad[t][p][j] *= 1.0 + 1e-6;
            }
    bp->loss = loss / B + weight_decay_term(&m);
    traj_free(traj), free(buf), free(gh);
    ref_model_free(&m);
    *out = bp;
    return OCN_OK;
nomem:
    traj_free(traj), free(buf), free(gh);
    ref_model_free(&m);
    ocn_bp_free(bp);
    return bp_nomem(err, "back-propagation", what);
}

void ocn_bp_free(ocn_bp *bp)
{
    if (!bp) return;
    const ocn_game *g = bp->g;
    for (int t = 0; g && t < g->T; t++) {
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            if (bp->grad && bp->grad[t]) free(bp->grad[t][p]);
            if (bp->gsample && bp->gsample[t]) free(bp->gsample[t][p]);
            if (bp->ka && bp->ka[t]) free(bp->ka[t][p]);
            if (bp->kg && bp->kg[t]) free(bp->kg[t][p]);
        }
        if (bp->grad) free(bp->grad[t]);
        if (bp->gsample) free(bp->gsample[t]);
        if (bp->ka) free(bp->ka[t]);
        if (bp->kg) free(bp->kg[t]);
        if (bp->na) free(bp->na[t]);
    }
    for (int t = 0; g && bp->costate && t <= g->T; t++) free(bp->costate[t]);
    free(bp->grad), free(bp->gsample), free(bp->ka), free(bp->kg), free(bp->na), free(bp->costate);
    free(bp);
}

double ocn_bp_loss(const ocn_bp *bp) { return bp->loss; }
const double *ocn_bp_grad(const ocn_bp *bp, int t, int p) { return bp->grad[t][p]; }
const double *ocn_bp_grad_sample(const ocn_bp *bp, int t, int p) { return bp->gsample[t][p]; }
const double *ocn_bp_costate(const ocn_bp *bp, int t) { return bp->costate[t]; }
const double *ocn_bp_kfac_a(const ocn_bp *bp, int t, int p, int *dim)
{
    *dim = bp->na[t][p];
    return bp->ka[t][p];
}
const double *ocn_bp_kfac_g(const ocn_bp *bp, int t, int p, int *dim)
{
    *dim = bp->g->stages[t].players[p].out_dim;
    return bp->kg[t][p];
}
