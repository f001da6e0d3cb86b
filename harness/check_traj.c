/* SPEC §13 check TRAJ (ocn theorems) and `ocn check` of trajectory fixtures.
 *
 * TRAJ, against computations independent of the trajectory loop:
 *  - every loss_s is the §1 objective at theta_s{s} on step s's batch (plain
 *    back-propagation's forward pass), and theta_t… / theta_new… are the
 *    stored θ_{n_s−1} / θ_{n_s};
 *  - with ρ = 0 and T_r = 1 (or a curvature that carries no state) every step
 *    equals the one-step computation (ocn_ref_run, no state) from that step's
 *    parameters and batch: each Δ_s against its derived c, and the last step's
 *    §11 arrays against their stored c;
 *  - with state: the last step's gain k from the exported state — rmsprop
 *    η Q_θ ⊘ (√v + ε); kfac / coop-kfac, when the last step refreshed, the
 *    harness's own eigendecomposition pseudo-inverses of the damped exported
 *    averages applied to Q_θ (when it did not, the distance to that fresh
 *    gain is a measured row: the stale inverse is not stored).
 * The optimized trajectory against the reference trajectory is `ocn check`
 * (harness/check_opt.c: ocn_opt_run_trajectory, required set ocn_requires_of). */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ocn_array *find(const ocn_arrayset *s, const char *fmt, int a, int b, int c)
{
    char nm[64];
    snprintf(nm, sizeof nm, fmt, a, b, c);
    return ocn_arrayset_find(s, nm);
}

static int copy_as(ocn_arrayset *to, const char *name, const ocn_array *a)
{
    ocn_array *c = a ? ocn_arrayset_add(to, name, a->ndim, a->shape) : NULL;
    if (!c) return -1;
    memcpy(c->data, a->data, a->size * sizeof(double));
    return 0;
}

/* The one-step inputs of step s: theta_t… := theta_s{s}_…, x0, y := step s's
 * batch (stream: x0_s{s}, y_s{s}), Wfix_…. */
static int step_inputs(const ocn_game *g, const ocn_arrayset *st, int s, ocn_arrayset **out, ocn_error *err)
{
    ocn_arrayset *in = ocn_arrayset_new();
    int bad = !in, stream = g->opt.data_stream && g->opt.steps > 1;
    for (int i = 0; !bad && i < st->count; i++)
        if (!strncmp(st->a[i].name, "Wfix_", 5)) bad = copy_as(in, st->a[i].name, &st->a[i]);
    for (int t = 0; !bad && t < g->T; t++)
        for (int p = 0; !bad && p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            if (!pl->m) continue;
            char nm[64];
            snprintf(nm, sizeof nm, "theta_t%d_n%d", t, pl->lane);
            bad = copy_as(in, nm, find(st, "theta_s%d_t%d_n%d", s, t, pl->lane));
        }
    if (!bad) bad = copy_as(in, "x0", stream ? find(st, "x0_s%d", s, 0, 0) : ocn_arrayset_find(st, "x0"));
    if (!bad) bad = copy_as(in, "y", stream ? find(st, "y_s%d", s, 0, 0) : ocn_arrayset_find(st, "y"));
    if (bad) {
        ocn_arrayset_free(in);
        *out = NULL;
        return ocn_fail(err, OCN_EINVAL, "trajectory fixture lacks step %d's parameters or batch (SPEC §13)", s);
    }
    *out = in;
    return OCN_OK;
}

static int stateless(const ocn_optimizer *o)
{
    return (o->stat_decay == 0.0 && o->refresh_every == 1) || (o->zero & OCN_ZERO_MID) || o->curvature == OCN_CURV_EXACT ||
           o->curvature == OCN_CURV_SGD || o->curvature == OCN_CURV_GN_OUTER;
}

/* ρ = 0, T_r = 1: step s from its own parameters and batch, no state */
static int one_step_rows(check_ctx *c, int s, const ocn_arrayset *in)
{
    const ocn_game *g = c->g;
    ocn_arrayset *out = ocn_arrayset_new();
    ocn_ref_opts o = {.fault = c->o ? c->o->fault : OCN_FAULT_NONE, .max_memory = c->o ? c->o->max_memory : 0};
    int rc = out ? ocn_ref_run(g, &g->opt, in, &o, out, c->err) : ocn_fail(c->err, OCN_ENOMEM, "out of memory");
    char q[96];
    for (int t = 0; !rc && t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            if (!pl->m) continue;
            const ocn_array *tn = find(out, "theta_new_t%d_n%d", t, pl->lane, 0), *th = find(in, "theta_t%d_n%d", t, pl->lane, 0),
                            *d = find(c->in, "dtheta_s%d_t%d_n%d", s, t, pl->lane);
            snprintf(q, sizeof q, "dtheta_s%d_t%d_n%d = one step from theta_s%d", s, t, pl->lane, s);
            if (!tn || !d || d->size != tn->size) {
                ocn_report_add(c->rep, "TRAJ", c->name, q, INFINITY, INFINITY);
                continue;
            }
            double *dd = malloc(tn->size * sizeof *dd);
            if (!dd) {
                rc = ocn_fail(c->err, OCN_ENOMEM, "out of memory");
                break;
            }
            for (size_t j = 0; j < tn->size; j++) dd[j] = tn->data[j] - th->data[j];
            check_row(c, "TRAJ", q, dd, d->data, tn->size, d->cond);
            free(dd);
        }
    if (!rc && s == g->opt.steps - 1) /* the last step's §11 arrays are that one-step fixture's */
        for (int i = 0; i < out->count; i++) {
            const ocn_array *x = &out->a[i], *r = ocn_arrayset_find(c->in, x->name);
            if (ocn_array_is_input(x->name)) continue;
            snprintf(q, sizeof q, "%s (last step = one step)", x->name);
            if (!r || r->size != x->size) ocn_report_add(c->rep, "TRAJ", c->name, q, INFINITY, INFINITY);
            else check_row(c, "TRAJ", q, x->data, r->data, x->size, r->cond);
        }
    ocn_arrayset_free(out);
    return rc;
}

/* Q_θ of player p (lane) at stage t of the last step: FNE Qth_t{t}_n{lane},
 * GR its block of Pth_t{t} (players in lane order). */
static const double *player_grad(const check_ctx *c, int t, int p)
{
    const ocn_game *g = c->g;
    const ocn_player *pl = &g->stages[t].players[p];
    if (g->opt.game == OCN_GAME_FNE) {
        const ocn_array *a = find(c->in, "Qth_t%d_n%d", t, pl->lane, 0);
        return a && a->size == (size_t)pl->m ? a->data : NULL;
    }
    const ocn_array *a = find(c->in, "Pth_t%d", t, 0, 0);
    size_t off = 0;
    for (int l = 0; l < pl->lane; l++) {
        const ocn_player *q = ocn_game_lane_player(g, t, l);
        if (q) off += (size_t)q->m;
    }
    return a && a->size >= off + (size_t)pl->m ? a->data + off : NULL;
}

/* (M + √γ I)^† of an exported d x d average, by the harness's eigendecomposition */
static int damped_inv(check_ctx *c, const ocn_array *M, int d, double sg, double *out)
{
    double *D = malloc((size_t)d * d * sizeof *D), cond;
    if (!D) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
    memcpy(D, M->data, (size_t)d * d * sizeof *D);
    for (int i = 0; i < d; i++) D[(size_t)i * d + i] += sg;
    int rc = check_sym_pinv(D, d, out, &cond, c->err);
    free(D);
    return rc;
}

/* The last step's k from the exported state, one row per player */
static int state_rows(check_ctx *c)
{
    const ocn_game *g = c->g;
    const ocn_optimizer *o = &g->opt;
    int last = o->steps - 1, refreshed = last % o->refresh_every == 0, rc = OCN_OK;
    double sg = sqrt(o->damping);
    char q[128];
    for (int t = 0; !rc && t < g->T; t++) {
        const ocn_array *Aj = find(c->in, "A_t%d", t, 0, 0), *Gj = find(c->in, "G_t%d", t, 0, 0);
        int na = 0, ng = 0, nk = 0;
        double *Ai = NULL, *Gi = NULL;
        if (Aj && Gj) { /* coop-kfac joint state (§6, §13) */
            na = (int)Aj->shape[0], ng = (int)Gj->shape[0];
            Ai = malloc((size_t)na * na * sizeof *Ai), Gi = malloc((size_t)ng * ng * sizeof *Gi);
            if (!Ai || !Gi) rc = ocn_fail(c->err, OCN_ENOMEM, "out of memory");
            if (!rc) rc = damped_inv(c, Aj, na, sg, Ai);
            if (!rc) rc = damped_inv(c, Gj, ng, sg, Gi);
        }
        int ao = 0, go = 0;
        for (int l = 0; !rc && l < g->nlanes; l++) {
            const ocn_player *pl = ocn_game_lane_player(g, t, l);
            if (!pl || !pl->m) continue;
            int p = (int)(pl - g->stages[t].players), m = pl->m;
            /* the Kronecker factor sizes: §5 for dense/bias, §14's KFC patch (C·k² + 1) and C_o for conv */
            int pa = ocn_player_na(pl), pg = ocn_player_ng(pl);
            const ocn_array *k = find(c->in, "k_t%d_n%d", t, l, 0);
            const double *qth = player_grad(c, t, p);
            double *want = calloc((size_t)m, sizeof *want);
            if (!want) {
                rc = ocn_fail(c->err, OCN_ENOMEM, "out of memory");
                break;
            }
            int have = 0;
            if (!k || !qth || k->size != (size_t)m) {
                snprintf(q, sizeof q, "k_t%d_n%d from the exported state (k or Q_th missing)", t, l);
                ocn_report_add(c->rep, "TRAJ", c->name, q, INFINITY, INFINITY);
            } else if (o->curvature == OCN_CURV_RMSPROP) {
                const ocn_array *v = find(c->in, "v_t%d_n%d", t, l, 0);
                if (v && v->size == (size_t)m) {
                    for (int j = 0; j < m; j++) want[j] = o->lr * qth[j] / (sqrt(v->data[j]) + o->eps);
                    have = 1;
                }
                snprintf(q, sizeof q, "k_t%d_n%d = lr Q_th / (sqrt(v_t%d_n%d) + eps)", t, l, t, l);
            } else if (Ai) { /* k_u = η Σ_v vec(G^†_uv mat(P_v) A^†_vu) */
                int bo = 0, bg = 0;
                for (int l2 = 0; l2 < g->nlanes; l2++) {
                    const ocn_player *p2 = ocn_game_lane_player(g, t, l2);
                    if (!p2 || !p2->m) continue;
                    int va = ocn_player_na(p2), vg = ocn_player_ng(p2);
                    const double *pv = player_grad(c, t, (int)(p2 - g->stages[t].players));
                    for (int r = 0; pv && r < pg; r++)
                        for (int col = 0; col < pa; col++) {
                            double s = 0;
                            for (int a = 0; a < vg; a++)
                                for (int b = 0; b < va; b++)
                                    s += Gi[(size_t)(go + r) * ng + bg + a] * pv[(size_t)b * vg + a] * Ai[(size_t)(bo + b) * na + ao + col];
                            want[(size_t)col * pg + r] += o->lr * s;
                        }
                    bo += va, bg += vg;
                }
                have = 1;
                snprintf(q, sizeof q, "k_t%d_n%d from the joint averages A_t%d, G_t%d", t, l, t, t);
            } else { /* per-player kfac */
                const ocn_array *A = find(c->in, "A_t%d_n%d", t, l, 0), *G = find(c->in, "G_t%d_n%d", t, l, 0);
                if (A && G && (int)A->shape[0] == pa && (int)G->shape[0] == pg) {
                    double *ai = malloc((size_t)pa * pa * sizeof *ai), *gi = malloc((size_t)pg * pg * sizeof *gi);
                    rc = ai && gi ? damped_inv(c, A, pa, sg, ai) : ocn_fail(c->err, OCN_ENOMEM, "out of memory");
                    if (!rc) rc = damped_inv(c, G, pg, sg, gi);
                    if (!rc) check_kfac_apply(ai, pa, gi, pg, o->lr, qth, want), have = 1;
                    free(ai), free(gi);
                }
                snprintf(q, sizeof q, "k_t%d_n%d from the averages A_t%d_n%d, G_t%d_n%d", t, l, t, l, t, l);
            }
            if (have && !rc) {
                if (o->curvature == OCN_CURV_RMSPROP || refreshed) check_row(c, "TRAJ", q, want, k->data, (size_t)m, k->cond);
                else { /* the inverse in use was refreshed at an earlier step and is not stored */
                    char q2[160];
                    snprintf(q2, sizeof q2, "%.90s: stale inverse (refreshed at s=%d) vs fresh", q,
                             last - last % o->refresh_every);
                    ocn_report_measured(c->rep, "TRAJ", c->name, q2, ocn_rel_err(want, k->data, (size_t)m));
                }
            } else if (!have && k && qth && k->size == (size_t)m) {
                snprintf(q, sizeof q, "k_t%d_n%d: the exported state is missing (SPEC §13)", t, l);
                ocn_report_add(c->rep, "TRAJ", c->name, q, INFINITY, INFINITY);
            }
            free(want);
            ao += pa, go += pg, nk++;
        }
        (void)nk;
        free(Ai), free(Gi);
    }
    return rc;
}

int check_traj(check_ctx *c)
{
    const ocn_game *g = c->g;
    int ns = g->opt.steps, rc = OCN_OK;
    char q[96];
    for (int s = 0; s < ns && !rc; s++) {
        ocn_arrayset *in = NULL;
        if ((rc = step_inputs(g, c->in, s, &in, c->err))) break;
        double L;
        const ocn_array *ls = find(c->in, "loss_s%d", s, 0, 0);
        rc = ocn_bp_loss_at(g, in, -1, 0, 0, NULL, &L, c->err);
        snprintf(q, sizeof q, "loss_s%d = objective at theta_s%d", s, s);
        if (!rc) {
            if (ls && ls->size == 1) check_row(c, "TRAJ", q, &L, ls->data, 1, ls->cond);
            else ocn_report_add(c->rep, "TRAJ", c->name, q, INFINITY, INFINITY);
        }
        if (!rc && stateless(&g->opt)) rc = one_step_rows(c, s, in);
        ocn_arrayset_free(in);
    }
    /* theta_t… and theta_new… are the last step's θ_{n_s−1} and θ_{n_s} */
    for (int t = 0; !rc && t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            if (!pl->m) continue;
            const char *base[2] = {"theta_t%d_n%d", "theta_new_t%d_n%d"};
            for (int k = 0; k < 2; k++) {
                const ocn_array *x = find(c->in, base[k], t, pl->lane, 0), *r = find(c->in, "theta_s%d_t%d_n%d", ns - 1 + k, t, pl->lane);
                snprintf(q, sizeof q, k ? "theta_new_t%d_n%d = theta_s%d" : "theta_t%d_n%d = theta_s%d", t, pl->lane, ns - 1 + k);
                if (!x || !r || x->size != r->size) ocn_report_add(c->rep, "TRAJ", c->name, q, INFINITY, INFINITY);
                else check_row(c, "TRAJ", q, x->data, r->data, x->size, x->cond);
            }
        }
    if (!rc && !stateless(&g->opt)) rc = state_rows(c);
    return rc;
}
