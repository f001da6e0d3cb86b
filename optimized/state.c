/* SPEC §13 in the optimized path: the carried optimizer state (moving
 * averages of the curvature statistics, factorisations refreshed every T_r
 * steps), one stateful step, its export under §13's names, and whole
 * trajectories with the §10 rev. 2 sensitivity measured over all their steps.
 * The algorithm itself is step_impl.h (its `ss` argument); this file owns the
 * state's lifetime and the trajectory's bookkeeping. */
#include "opt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ocn_opt_state {
    const ocn_game *g;
    const ocn_optimizer *opt;
    ocn_opt_config cfg;
    ocn_backend *bk;
    int prec;
    ocn_opt_sstate *ss;
    ocn_ws *ws;         /* the step's workspace: planned once, reused by every step */
    ocn_arrayset *tmp;  /* a step's outputs before they are handed over (reused: no fresh pages) */
};

static int steps_of(const ocn_optimizer *opt) { return opt->steps < 1 ? 1 : opt->steps; }
static int refresh_of(const ocn_optimizer *opt) { return opt->refresh_every < 1 ? 1 : opt->refresh_every; }

ocn_opt_sstate *ocn_opt_sstate_new(const ocn_game *g, const ocn_optimizer *opt)
{
    ocn_opt_sstate *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->rho = opt->stat_decay, s->refresh = refresh_of(opt), s->T = g->T;
    s->np = calloc((size_t)g->T + 1, sizeof *s->np);
    s->pl = calloc((size_t)g->T + 1, sizeof *s->pl);
    s->joint = calloc((size_t)g->T + 1, sizeof *s->joint);
    int ok = s->np && s->pl && s->joint;
    for (int t = 0; ok && t < g->T; t++) {
        s->np[t] = g->stages[t].nplayers;
        ok = (s->pl[t] = calloc((size_t)s->np[t] + 1, sizeof **s->pl)) != NULL;
    }
    if (!ok) {
        ocn_opt_sstate_free(s);
        return NULL;
    }
    return s;
}

static void fstate_free(ocn_opt_fstate *f)
{
    for (int b = 0; b < 2; b++) free(f->A[b]), free(f->G[b]), free(f->Ai[b]), free(f->Gi[b]), free(f->v[b]);
}

void ocn_opt_sstate_free(ocn_opt_sstate *s)
{
    if (!s) return;
    for (int t = 0; t < s->T; t++) {
        for (int p = 0; s->pl && s->pl[t] && p < s->np[t]; p++) fstate_free(&s->pl[t][p]);
        if (s->pl) free(s->pl[t]);
        if (s->joint) fstate_free(&s->joint[t]);
    }
    free(s->np), free(s->pl), free(s->joint), free(s);
}

/* The step is complete: its buffers become the state (double buffering, opt.h). */
static void sstate_commit(ocn_opt_sstate *s)
{
    s->cur = 1 - s->cur;
    s->s++;
}

static int check_traj_fields(const ocn_game *g, const ocn_optimizer *opt, ocn_error *err)
{
    if (!(opt->stat_decay >= 0 && opt->stat_decay < 1))
        return ocn_fail(err, OCN_EINVAL, "%s: optimizer.stat_decay must be in [0, 1), not %g (SPEC §13)", g->name,
                        opt->stat_decay);
    if (opt->refresh_every < 1 || opt->steps < 1)
        return ocn_fail(err, OCN_EINVAL, "%s: optimizer.steps and refresh_every must be >= 1 (SPEC §13)", g->name);
    return OCN_OK;
}

static int step(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                ocn_backend *bk, ocn_ws *ws, int prec, ocn_perturb *pert, int pin, ocn_opt_sstate *ss, int want_loss,
                ocn_arrayset *out, ocn_error *err)
{
    int rc = prec == 64 ? ocn_opt_step_f64(g, opt, in, cfg, bk, ws, pert, pin, ss, want_loss, out, err)
                        : ocn_opt_step_f32(g, opt, in, cfg, bk, ws, pert, pin, ss, want_loss, out, err);
    (void)prec; /* the step did the final NaN/Inf check (step_phases.h) */
    return ocn_opt_backend_status(bk, rc, err);
}

/* ocn_opt_resolve plus the §13 fields; on failure nothing is left open */
static int resolve_traj(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, ocn_backend **bk,
                        int *prec, ocn_error *err)
{
    int rc = ocn_opt_resolve(g, opt, cfg, bk, prec, err);
    if (!rc) rc = check_traj_fields(g, opt, err);
    if (rc) {
        ocn_backend_close(*bk);
        *bk = NULL;
    }
    return rc;
}

int ocn_opt_state_new(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, ocn_opt_state **out,
                      ocn_error *err)
{
    *out = NULL;
    ocn_backend *bk = NULL;
    int prec = 64;
    int rc = resolve_traj(g, opt, cfg, &bk, &prec, err);
    if (rc) return rc;
    ocn_ws *ws = NULL;
    if ((rc = ocn_opt_ws_new(g, opt, cfg, &ws, err))) {
        ocn_backend_close(bk);
        return rc;
    }
    ocn_opt_state *st = ocn_ws_fault(ws) ? NULL : calloc(1, sizeof *st);
    if (!st || ocn_ws_fault(ws) || !(st->ss = ocn_opt_sstate_new(g, opt)) || !(st->tmp = ocn_arrayset_new())) {
        if (st) ocn_opt_sstate_free(st->ss);
        free(st);
        ocn_ws_free(ws);
        ocn_backend_close(bk);
        return ocn_fail(err, OCN_ENOMEM, "%s: out of memory: the optimizer state (SPEC §13)", g->name);
    }
    st->ws = ws;
    st->g = g, st->opt = opt, st->bk = bk, st->prec = prec;
    if (cfg) st->cfg = *cfg;
    st->cfg.backend = NULL; /* resolved once: bk */
    st->cfg.precision = prec;
    *out = st;
    return OCN_OK;
}

void ocn_opt_state_free(ocn_opt_state *st)
{
    if (!st) return;
    ocn_opt_sstate_free(st->ss);
    ocn_arrayset_free(st->tmp);
    ocn_ws_free(st->ws);
    ocn_backend_close(st->bk); /* the context: handles (persistent across steps) */
    free(st);
}

int ocn_opt_state_step_index(const ocn_opt_state *st) { return st ? st->ss->s : 0; }

double ocn_opt_state_gemm_flops(const ocn_opt_state *st) { return st ? st->bk->gemm_flops : 0; }

int ocn_opt_step(ocn_opt_state *st, const ocn_arrayset *in, ocn_arrayset *out, ocn_error *err)
{
    if (!st) return ocn_fail(err, OCN_EINVAL, "ocn_opt_step: no state");
    ocn_arrayset *tmp = st->tmp; /* the same names every step: its arrays are overwritten in place */
    int rc = step(st->g, st->opt, in, &st->cfg, st->bk, st->ws, st->prec, NULL, 1, st->ss, 0, tmp, err);
    if (rc) ocn_error_prefix(err, "step %d", st->ss->s);
    if (!rc) rc = ocn_opt_hand_over_swap(tmp, out, err);
    if (!rc) sstate_commit(st->ss);
    return rc;
}

static int put_matrix(ocn_arrayset *out, const char *nm, const double *x, int ndim, size_t d0, size_t d1,
                      ocn_error *err)
{
    ocn_array *a = ocn_arrayset_add2(out, nm, ndim, d0, d1, 0);
    if (!a) return ocn_fail(err, OCN_ENOMEM, "out of memory exporting the optimizer state");
    memcpy(a->data, x, a->size * sizeof(double));
    return OCN_OK;
}

static int sstate_export(const ocn_game *g, const ocn_opt_sstate *s, ocn_arrayset *out, ocn_error *err)
{
    int c = s->cur, rc = OCN_OK;
    char nm[64];
    for (int t = 0; t < s->T && !rc; t++) {
        for (int p = 0; p < s->np[t] && !rc; p++) {
            const ocn_opt_fstate *f = &s->pl[t][p];
            int lane = g->stages[t].players[p].lane;
            if (!f->have[c]) continue;
            if (f->m) {
                snprintf(nm, sizeof nm, "v_t%d_n%d", t, lane);
                rc = put_matrix(out, nm, f->v[c], 1, (size_t)f->m, 0, err);
            } else {
                snprintf(nm, sizeof nm, "A_t%d_n%d", t, lane);
                rc = put_matrix(out, nm, f->A[c], 2, (size_t)f->na, (size_t)f->na, err);
                snprintf(nm, sizeof nm, "G_t%d_n%d", t, lane);
                if (!rc) rc = put_matrix(out, nm, f->G[c], 2, (size_t)f->out, (size_t)f->out, err);
            }
        }
        const ocn_opt_fstate *j = &s->joint[t];
        if (rc || !j->have[c]) continue;
        snprintf(nm, sizeof nm, "A_t%d", t);
        rc = put_matrix(out, nm, j->A[c], 2, (size_t)j->na, (size_t)j->na, err);
        snprintf(nm, sizeof nm, "G_t%d", t);
        if (!rc) rc = put_matrix(out, nm, j->G[c], 2, (size_t)j->out, (size_t)j->out, err);
    }
    return rc;
}

int ocn_opt_state_export(const ocn_opt_state *st, ocn_arrayset *out, ocn_error *err)
{
    if (!st) return ocn_fail(err, OCN_EINVAL, "ocn_opt_state_export: no state");
    return sstate_export(st->g, st->ss, out, err);
}

int ocn_opt_is_derived(const char *name) { return !strncmp(name, "dtheta_s", 8); }

/* ---- whole trajectories ---- */


/* §10: an input perturbed once, at the run's precision (float32 inputs are
 * rounded first, as the step would, so the perturbation is the one the step
 * itself would draw). */
static void perturb_input(ocn_perturb *p, int prec, double *x, size_t n)
{
    if (!p) return;
    if (prec == 64) {
        ocn_perturb_vec(p, x, n);
        return;
    }
    float f;
    for (size_t i = 0; i < n; i++) { /* element by element: the stream is drawn row-major either way */
        f = (float)x[i];
        ocn_perturb_vecf(p, &f, 1);
        x[i] = (double)f;
    }
}

/* `src` may be an element of `dst` itself (theta_t… from theta_s…): the add
 * may move it (realloc), so its fields are read first; its data buffer does
 * not move.  `name` must differ from src's. */
static int copy_into(ocn_arrayset *dst, const char *name, const ocn_array *src, ocn_array **res, ocn_error *err)
{
    const ocn_array s = *src;
    ocn_array *a = ocn_arrayset_add(dst, name, s.ndim, s.shape);
    if (!a) return ocn_fail(err, OCN_ENOMEM, "out of memory (trajectory)");
    memcpy(a->data, s.data, s.size * sizeof(double));
    if (res) *res = a;
    return OCN_OK;
}

/* Parameters of every player with parameters, in stage and player order (§10's input order). */
static int for_params(const ocn_game *g, int t, int p) { return g->stages[t].players[p].m > 0; }

static int traj_once(void *vctx, ocn_perturb *pert, ocn_arrayset *out, ocn_error *err)
{
    const ocn_opt_run_ctx *c = vctx;
    const ocn_game *g = c->g;
    const ocn_optimizer *opt = c->opt;
    int ns = steps_of(opt), rc = OCN_OK;
    char nm[80], nm2[80];
    ocn_opt_sstate *ss = ocn_opt_sstate_new(g, opt);
    ocn_arrayset *work = ocn_arrayset_new();
    if (!ss || !work) rc = ocn_fail(err, OCN_ENOMEM, "out of memory (trajectory)");
    /* initial parameters (theta_s0_…, else theta_…), then Wfix: perturbed once */
    for (int t = 0; t < g->T && !rc; t++)
        for (int p = 0; p < g->stages[t].nplayers && !rc; p++) {
            if (!for_params(g, t, p)) continue;
            int lane = g->stages[t].players[p].lane;
            snprintf(nm, sizeof nm, "theta_s0_t%d_n%d", t, lane);
            snprintf(nm2, sizeof nm2, "theta_t%d_n%d", t, lane);
            const ocn_array *a = ocn_arrayset_find(c->in, nm);
            if (!a) a = ocn_arrayset_find(c->in, nm2);
            if (!a || a->size != (size_t)g->stages[t].players[p].m) {
                rc = ocn_fail(err, OCN_EINVAL, "%s: trajectory input '%s' (or '%s') missing or of the wrong size",
                              g->name, nm, nm2);
                break;
            }
            ocn_array *w = NULL;
            rc = copy_into(work, nm2, a, &w, err);
            if (!rc) perturb_input(pert, c->prec, w->data, w->size);
        }
    for (int t = 0; t < g->T && !rc; t++)
        for (int p = 0; p < g->stages[t].nplayers && !rc; p++) {
            if (g->stages[t].players[p].kind != OCN_PLAYER_BIAS) continue;
            snprintf(nm, sizeof nm, "Wfix_t%d_n%d", t, g->stages[t].players[p].lane);
            const ocn_array *a = ocn_arrayset_find(c->in, nm);
            if (!a) {
                rc = ocn_fail(err, OCN_EINVAL, "%s: trajectory input '%s' missing", g->name, nm);
                break;
            }
            ocn_array *w = NULL;
            rc = copy_into(work, nm, a, &w, err);
            if (!rc) perturb_input(pert, c->prec, w->data, w->size);
        }
    char xsrc[80] = "";
    for (int s = 0; s < ns && !rc; s++) {
        /* the batch of step s: x0_s{s}, y_s{s} where stored, else the §12 batch (fixed) */
        char xn[80], yn[80];
        snprintf(xn, sizeof xn, "x0_s%d", s);
        snprintf(yn, sizeof yn, "y_s%d", s);
        const ocn_array *xa = ocn_arrayset_find(c->in, xn), *ya = ocn_arrayset_find(c->in, yn);
        if (!xa || !ya) {
            if (opt->data_stream) { /* stream: x0/y are the last step's batch in a trajectory fixture (§13) */
                rc = ocn_fail(err, OCN_EINVAL, "%s: data: stream needs the batch of step %d ('%s', '%s')", g->name, s,
                              xn, yn);
                break;
            }
            snprintf(xn, sizeof xn, "x0");
            snprintf(yn, sizeof yn, "y");
            xa = ocn_arrayset_find(c->in, "x0"), ya = ocn_arrayset_find(c->in, "y");
        }
        if (!xa || !ya) {
            rc = ocn_fail(err, OCN_EINVAL, "%s: trajectory input '%s' or '%s' missing", g->name, xn, yn);
            break;
        }
        if (strcmp(xsrc, xn)) { /* a batch first met: copied in, perturbed once (§10 on trajectories) */
            ocn_array *w = NULL;
            rc = copy_into(work, "x0", xa, &w, err);
            if (!rc) perturb_input(pert, c->prec, w->data, w->size);
            if (!rc) rc = copy_into(work, "y", ya, &w, err);
            if (!rc && g->loss == OCN_LOSS_MSE) perturb_input(pert, c->prec, w->data, w->size);
            snprintf(xsrc, sizeof xsrc, "%s", xn);
        }
        for (int t = 0; t < g->T && !rc; t++) /* theta_s{s}: the parameters before step s */
            for (int p = 0; p < g->stages[t].nplayers && !rc; p++) {
                if (!for_params(g, t, p)) continue;
                int lane = g->stages[t].players[p].lane;
                snprintf(nm, sizeof nm, "theta_t%d_n%d", t, lane);
                snprintf(nm2, sizeof nm2, "theta_s%d_t%d_n%d", s, t, lane);
                rc = copy_into(out, nm2, ocn_arrayset_find(work, nm), NULL, err);
            }
        if (rc) break;
        ocn_arrayset *so = ocn_arrayset_new();
        if (!so) {
            rc = ocn_fail(err, OCN_ENOMEM, "out of memory (trajectory)");
            break;
        }
        rc = step(g, opt, work, c->cfg, c->bk, c->ws, c->prec, pert, 0, ss, 1, so, err);
        if (rc) ocn_error_prefix(err, "trajectory step %d", s);
        if (!rc) {
            snprintf(nm, sizeof nm, "loss_s%d", s);
            rc = copy_into(out, nm, ocn_arrayset_find(so, "loss"), NULL, err);
        }
        for (int t = 0; t < g->T && !rc; t++) /* θ_{s+1} and the derived step Δ_s = θ_{s+1} − θ_s */
            for (int p = 0; p < g->stages[t].nplayers && !rc; p++) {
                if (!for_params(g, t, p)) continue;
                int lane = g->stages[t].players[p].lane;
                snprintf(nm, sizeof nm, "theta_new_t%d_n%d", t, lane);
                const ocn_array *nw = ocn_arrayset_find(so, nm);
                if (!nw) {
                    rc = ocn_fail(err, OCN_ENUMERIC, "%s: trajectory step %d did not produce '%s'", g->name, s, nm);
                    break;
                }
                snprintf(nm, sizeof nm, "theta_t%d_n%d", t, lane);
                snprintf(nm2, sizeof nm2, "dtheta_s%d_t%d_n%d", s, t, lane);
                ocn_array *d = NULL, *w = ocn_arrayset_find(work, nm);
                rc = copy_into(out, nm2, nw, &d, err);
                for (size_t i = 0; !rc && i < d->size; i++) d->data[i] -= w->data[i];
                if (!rc) memcpy(w->data, nw->data, nw->size * sizeof(double));
            }
        if (!rc) sstate_commit(ss);
        for (int i = 0; !rc && s == ns - 1 && i < so->count; i++) /* the last step's §11 arrays */
            if (strcmp(so->a[i].name, "loss")) rc = copy_into(out, so->a[i].name, &so->a[i], NULL, err);
        ocn_arrayset_free(so);
    }
    for (int t = 0; t < g->T && !rc; t++) /* theta_s{n_s}: the result; theta_t…: the last step's parameters */
        for (int p = 0; p < g->stages[t].nplayers && !rc; p++) {
            if (!for_params(g, t, p)) continue;
            int lane = g->stages[t].players[p].lane;
            snprintf(nm, sizeof nm, "theta_t%d_n%d", t, lane);
            snprintf(nm2, sizeof nm2, "theta_s%d_t%d_n%d", ns, t, lane);
            rc = copy_into(out, nm2, ocn_arrayset_find(work, nm), NULL, err);
            snprintf(nm2, sizeof nm2, "theta_s%d_t%d_n%d", ns - 1, t, lane);
            if (!rc) rc = copy_into(out, nm, ocn_arrayset_find(out, nm2), NULL, err);
        }
    if (!rc) rc = sstate_export(g, ss, out, err);
    ocn_opt_sstate_free(ss);
    ocn_arrayset_free(work);
    return rc;
}

int ocn_opt_run_trajectory(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in,
                           const ocn_opt_config *cfg, ocn_arrayset *out, ocn_error *err)
{
    ocn_backend *bk = NULL;
    int prec = 64;
    int rc = resolve_traj(g, opt, cfg, &bk, &prec, err);
    if (rc) return rc;
    ocn_opt_config c2 = {0};
    if (cfg) c2 = *cfg;
    ocn_ws *ws = NULL; /* planned once, reused by every step of every run */
    if ((rc = ocn_opt_ws_new(g, opt, cfg, &ws, err))) {
        ocn_backend_close(bk);
        return rc;
    }
    ocn_opt_run_ctx c = {g, opt, in, &c2, bk, prec, ws};
    ocn_arrayset *tmp = ocn_arrayset_new();
    if (!tmp) {
        ocn_ws_free(ws);
        ocn_backend_close(bk);
        return ocn_fail(err, OCN_ENOMEM, "out of memory");
    }
    rc = traj_once(&c, NULL, tmp, err);
    /* §10 rev. 2 on trajectories (§13): each perturbation run is a whole trajectory */
    if (!rc && c2.measure_runs > 0)
        rc = ocn_measure_sensitivity(g, opt, c2.measure_runs, prec == 32 ? OCN_U32 : OCN_U64, traj_once, &c, tmp, err);
    if (!rc) rc = ocn_opt_hand_over(tmp, out, err);
    ocn_arrayset_free(tmp);
    ocn_ws_free(ws);
    ocn_backend_close(bk);
    return rc;
}
