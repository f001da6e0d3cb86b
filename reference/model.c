/* Parameters, activations and the forward pass of the stage graph (§2, §3). */
#include "ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ref_act(ocn_act a, double h)
{
    switch (a) {
    case OCN_ACT_TANH: return tanh(h);
    case OCN_ACT_RELU: return h > 0 ? h : 0.0;
    case OCN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-h));
    default: return h;
    }
}

/* σ' and σ'' in forms that keep their relative accuracy where σ saturates
 * (docs/decisions.md "Activation derivatives"): 1 − tanh² and s(1 − s)
 * cancel to a few digits there (|h| = 10: σ' ≈ 8e-9 from 1 − (1 − 8e-9)),
 * and a port that uses the stable form would be failed for being right. */
double ref_dact(ocn_act a, double h)
{
    switch (a) {
    case OCN_ACT_TANH: { double c = cosh(h); return 1.0 / (c * c); }             /* sech² h */
    case OCN_ACT_RELU: return h > 0 ? 1.0 : 0.0;   /* §2: relu'(0) := 0 */
    case OCN_ACT_SIGMOID: { double e = exp(-fabs(h)); return e / ((1.0 + e) * (1.0 + e)); }
    default: return 1.0;
    }
}

double ref_ddact(ocn_act a, double h)
{
    switch (a) {
    case OCN_ACT_TANH: { double c = cosh(h); return -2.0 * tanh(h) / (c * c); }
    case OCN_ACT_SIGMOID: /* σ'(1 − 2σ), 1 − 2σ(h) = −tanh(h/2) */
        { double e = exp(-fabs(h)); return -tanh(0.5 * h) * e / ((1.0 + e) * (1.0 + e)); }
    default: return 0.0;                              /* §2: relu'' := 0 */
    }
}

double ref_weight(const ocn_player *pl, const double *theta, const double *wfix, int r, int c)
{
    if (pl->kind == OCN_PLAYER_BIAS) return wfix[(size_t)r * (size_t)pl->in_dim + (size_t)c];
    if (pl->kind == OCN_PLAYER_CONV) return ref_conv_weight(pl, theta, r, c); /* §14: W_eff */
    return theta[(size_t)c * (size_t)pl->out_dim + (size_t)r];
}

void ref_player_pre(const ocn_game *g, int t, const ocn_player *pl, const double *theta,
                    const double *wfix, const double *x, double *h)
{
    const double *z = x + g->block_off[t][pl->in_block];
    if (pl->kind == OCN_PLAYER_ACT) {
        memcpy(h, z, (size_t)pl->in_dim * sizeof *h);
        return;
    }
    if (pl->kind == OCN_PLAYER_CONV) {
        ref_conv_pre(pl, theta, z, h);
        return;
    }
    const double *b = pl->kind == OCN_PLAYER_DENSE ? theta + (size_t)pl->out_dim * (size_t)pl->in_dim : theta;
    for (int r = 0; r < pl->out_dim; r++) {
        double s = 0;
        for (int c = 0; c < pl->in_dim; c++) s += ref_weight(pl, theta, wfix, r, c) * z[c];
        h[r] = s + b[r];
    }
}

/* §10 rev. 2 amendment (docs/decisions.md "States perturbed as formed, at the
 * scale of their terms"): a block of x_{t+1} is a sum — the players writing it
 * and the carries into it (§3) — and a port forms that sum in its precision, so
 * entry r moves by u·ξ·(Σ|terms|), not u·ξ·|x_r|: saturated players that cancel
 * (tanh ≈ −1 beside tanh ≈ 1) leave a state of 1e-10 whose rounding a port
 * cannot avoid (fuzz game ae6d6c200b9aafdd: float32 x_t2 = 0 where the
 * reference has −1.7e-10, rmsprop's k 17% off at a c of 16 that never saw it).
 * One player and no carry: the state's own relative rounding.  The scale lives
 * in region 2 of the model's scratch (ref.h: the forward pass never runs inside
 * the terminal, region 2's other user). */
static void perturb_state(const ref_model *m, int t, double *const *th, const double *x, double *xn)
{
    const ocn_game *g = m->g;
    const ocn_stage *st = &g->stages[t];
    double *h = m->ws, *sc = m->ws + 2 * m->nmax;
    memset(sc, 0, (size_t)g->n[t + 1] * sizeof *sc);
    for (int p = 0; p < st->nplayers; p++) {
        const ocn_player *pl = &st->players[p];
        ref_player_pre(g, t, pl, th[p], m->wfix[t][p], x, h);
        double *o = sc + g->block_off[t + 1][pl->out_block];
        for (int r = 0; r < pl->out_dim; r++) o[r] += fabs(ref_act(pl->act, h[r]));
    }
    for (int k = 0; k < st->ncarries; k++) {
        const ocn_carry *c = &st->carries[k];
        const double *s = x + g->block_off[t][c->from];
        double *o = sc + g->block_off[t + 1][c->to];
        for (int i = 0; i < g->block_dim[t][c->from]; i++) o[i] += fabs(s[i]);
    }
    ocn_perturb_vec_at(m->pert, xn, sc, (size_t)g->n[t + 1]);
}

void ref_stage_forward(const ref_model *m, int t, double *const *th, const double *x, double *xn)
{
    const ocn_game *g = m->g;
    const ocn_stage *st = &g->stages[t];
    memset(xn, 0, (size_t)g->n[t + 1] * sizeof *xn);
    double *h = m->ws; /* region 0: out_dim <= n_{t+1} <= nmax */
    for (int p = 0; p < st->nplayers; p++) {
        const ocn_player *pl = &st->players[p];
        ref_player_pre(g, t, pl, th[p], m->wfix[t][p], x, h);
        double *o = xn + g->block_off[t + 1][pl->out_block];
        for (int r = 0; r < pl->out_dim; r++) o[r] += ref_act(pl->act, h[r]);
    }
    for (int k = 0; k < st->ncarries; k++) {
        const ocn_carry *c = &st->carries[k];
        const double *s = x + g->block_off[t][c->from];
        double *o = xn + g->block_off[t + 1][c->to];
        for (int i = 0; i < g->block_dim[t][c->from]; i++) o[i] += s[i];
    }
    if (m->pert) perturb_state(m, t, th, x, xn);
}

/* Issue 10: on failure the model is freed here (callers may free it again). */
static int model_nomem(ref_model *m, ocn_error *err, const char *what)
{
    ref_model_free(m);
    return ocn_fail(err, OCN_ENOMEM, "out of memory allocating %s", what);
}

int ref_model_init(const ocn_game *g, const ocn_arrayset *in, ref_model *m, ocn_error *err)
{
    memset(m, 0, sizeof *m); /* first: callers free m even when the inputs are refused */
    ref_gsl_quiet();
    int rc = ocn_ref_check_inputs(g, in, "inputs", err);
    if (rc) return rc;
    m->g = g;
    m->B = g->batch;
    m->x0 = ocn_arrayset_find(in, "x0")->data;
    m->y = ocn_arrayset_find(in, "y")->data;
    for (int t = 0; t <= g->T; t++)
        if ((size_t)g->n[t] > m->nmax) m->nmax = (size_t)g->n[t];
    size_t kmax = 0; /* §14: region 4 holds a conv patch a_p (c·k² + 1) */
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (g->stages[t].players[p].kind == OCN_PLAYER_CONV && (size_t)ocn_player_na(&g->stages[t].players[p]) > kmax)
                kmax = (size_t)ocn_player_na(&g->stages[t].players[p]);
    m->ws = malloc((4 * m->nmax + kmax + 1) * sizeof *m->ws);
    m->iws = malloc((2 * m->nmax + 1) * sizeof *m->iws);
    if (!m->ws || !m->iws) return model_nomem(m, err, "the model's scratch vectors");
    m->th = calloc((size_t)g->T, sizeof *m->th);
    m->wfix = calloc((size_t)g->T, sizeof *m->wfix);
    if (!m->th || !m->wfix) return model_nomem(m, err, "the parameter tables");
    for (int t = 0; t < g->T; t++) {
        const ocn_stage *st = &g->stages[t];
        m->th[t] = calloc((size_t)st->nplayers, sizeof **m->th);
        m->wfix[t] = calloc((size_t)st->nplayers, sizeof **m->wfix);
        if (!m->th[t] || !m->wfix[t]) return model_nomem(m, err, "the parameter tables");
        for (int p = 0; p < st->nplayers; p++) {
            const ocn_player *pl = &st->players[p];
            char nm[64];
            if (pl->m) {
                snprintf(nm, sizeof nm, "theta_t%d_n%d", t, pl->lane);
                const ocn_array *a = ocn_arrayset_find(in, nm);
                m->th[t][p] = malloc((size_t)pl->m * sizeof(double));
                if (!m->th[t][p]) return model_nomem(m, err, nm);
                memcpy(m->th[t][p], a->data, (size_t)pl->m * sizeof(double));
            }
            if (pl->kind == OCN_PLAYER_BIAS) {
                snprintf(nm, sizeof nm, "Wfix_t%d_n%d", t, pl->lane);
                m->wfix[t][p] = ocn_arrayset_find(in, nm)->data;
            }
        }
    }
    return OCN_OK;
}

void ref_model_free(ref_model *m)
{
    if (!m->g) return;
    for (int t = 0; t < m->g->T; t++) {
        if (m->th && m->th[t])
            for (int p = 0; p < m->g->stages[t].nplayers; p++) free(m->th[t][p]);
        if (m->th) free(m->th[t]);
        if (m->wfix) free(m->wfix[t]);
    }
    free(m->th);
    free(m->wfix);
    free(m->ws);
    free(m->iws);
    memset(m, 0, sizeof *m);
}
