/* SPEC §13 trajectories: n_s steps of §8, each on its own batch (`data:
 * fixed|stream`), with the optimizer state carried between them (rmsprop's
 * v, kfac's A and G per player, coop-kfac's joint A_ww and G_ww; the
 * pseudo-inverses of the damped factors refreshed at s ≡ 0 (mod T_r)).  Each
 * step is run.c's one step (ref_step_run) with that state attached: the
 * averaging and the refresh live in curvature.c, nowhere else.  §10 on a
 * trajectory: the inputs (initial θ, Wfix, every stored batch) are perturbed
 * once, the stage terms at every step, a factorisation only when refreshed;
 * c is measured on every output, the derived steps Δ_s = θ_{s+1} − θ_s
 * included.  Bitwise deterministic: the same loops, in the same order. */
#include "ref.h"
#include "ocn/memory.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int nomem(ocn_error *err, const char *what)
{
    return ocn_fail(err, OCN_ENOMEM, "trajectory: out of memory allocating %s", what);
}

/* adds a copy of src under `name` */
static int put_copy(ocn_arrayset *out, const char *name, const ocn_array *src, ocn_error *err)
{
    ocn_array *a = ocn_arrayset_add(out, name, src->ndim, src->shape);
    if (!a) return nomem(err, name);
    memcpy(a->data, src->data, src->size * sizeof(double));
    return OCN_OK;
}

/* The batch of step s: x0_s{s}, y_s{s} (stream) or x0, y (fixed). */
static void batch_names(const ocn_optimizer *opt, int s, char *xn, char *yn, size_t n)
{
    if (opt->data_stream && opt->steps > 1) {
        snprintf(xn, n, "x0_s%d", s);
        snprintf(yn, n, "y_s%d", s);
    } else {
        snprintf(xn, n, "x0");
        snprintf(yn, n, "y");
    }
}

/* §13 stream inputs: every step's batch, shaped as x0 and y. */
static int check_batches(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, ocn_error *err)
{
    const ocn_array *x0 = ocn_arrayset_find(in, "x0"), *y = ocn_arrayset_find(in, "y");
    if (!x0 || !y) return OCN_OK; /* ocn_ref_check_inputs names them */
    for (int s = 0; opt->data_stream && opt->steps > 1 && s < opt->steps; s++) {
        char xn[32], yn[32];
        const ocn_array *a;
        batch_names(opt, s, xn, yn, sizeof xn);
        int rc = ocn_arrayset_expect(in, "inputs (SPEC §13 data: stream)", xn, x0->ndim, x0->shape, &a, err);
        if (!rc) rc = ocn_arrayset_expect(in, "inputs (SPEC §13 data: stream)", yn, y->ndim, y->shape, &a, err);
        if (rc) return ocn_error_prefix(err, "%s", g->name);
    }
    return OCN_OK;
}

/* §10: the inputs, once — θ and Wfix (run.c's order), then each stored batch
 * in step order (x0, then the mse targets). */
static void perturb_once(const ocn_game *g, const ocn_optimizer *opt, ocn_arrayset *in, ocn_perturb *p)
{
    if (!p) return;
    if (!(opt->data_stream && opt->steps > 1)) {
        ref_perturb_inputs(g, in, p);
        return;
    }
    ocn_arrayset_remove(in, "x0"), ocn_arrayset_remove(in, "y"); /* stream: the steps read x0_s{s}, y_s{s} */
    ref_perturb_inputs(g, in, p);
    for (int s = 0; s < opt->steps; s++) {
        char xn[32], yn[32];
        batch_names(opt, s, xn, yn, sizeof xn);
        ocn_array *x = ocn_arrayset_find(in, xn), *y = ocn_arrayset_find(in, yn);
        if (x) ocn_perturb_vec(p, x->data, x->size);
        if (y && g->loss == OCN_LOSS_MSE) ocn_perturb_vec(p, y->data, y->size);
    }
}

/* The carried state after the last step, §13 names: per-player averages
 * A_t{t}_n{n}, G_t{t}_n{n} (undamped diagonal blocks), coop-kfac's joint
 * A_t{t}, G_t{t}, rmsprop's v_t{t}_n{n}. */
static int export_state(const ocn_game *g, ref_curv_state **st, int N, ocn_arrayset *out, ocn_error *err)
{
    char nm[64];
    for (int t = 0; t < g->T; t++)
        for (int n = 0; n < N; n++) {
            const ref_curv_state *c = &st[t][n];
            if (!c->init) continue;
            if (c->A && c->coop) {
                const gsl_matrix *M[2] = {c->A, c->G};
                for (int k = 0; k < 2; k++) {
                    snprintf(nm, sizeof nm, "%s_t%d", k ? "G" : "A", t);
                    ocn_array *a = ocn_arrayset_add2(out, nm, 2, M[k]->size1, M[k]->size2, 0);
                    if (!a) return nomem(err, nm);
                    memcpy(a->data, M[k]->data, a->size * sizeof(double)); /* contiguous (tda = size2) */
                }
                continue;
            }
            for (int u = 0; u < c->np; u++) {
                const ocn_player *pl = &g->stages[t].players[c->p[u]];
                if (c->v) {
                    snprintf(nm, sizeof nm, "v_t%d_n%d", t, pl->lane);
                    ocn_array *a = ocn_arrayset_add2(out, nm, 1, (size_t)pl->m, 0, 0);
                    if (!a) return nomem(err, nm);
                    memcpy(a->data, c->v->data + c->moff[u], (size_t)pl->m * sizeof(double));
                }
                if (c->A) {
                    const gsl_matrix *M[2] = {c->A, c->G};
                    const int *off[2] = {c->aoff, c->goff};
                    for (int k = 0; k < 2; k++) {
                        size_t o = (size_t)off[k][u], d = (size_t)(off[k][u + 1] - off[k][u]);
                        snprintf(nm, sizeof nm, "%s_t%d_n%d", k ? "G" : "A", t, pl->lane);
                        ocn_array *a = ocn_arrayset_add2(out, nm, 2, d, d, 0);
                        if (!a) return nomem(err, nm);
                        for (size_t r = 0; r < d; r++)
                            for (size_t q = 0; q < d; q++) a->data[r * d + q] = gsl_matrix_get(M[k], o + r, o + q);
                    }
                }
            }
        }
    return OCN_OK;
}

/* Copies theta_t{t}_n{n} of `from` into theta_{prefix}t{t}_n{n} of `to`
 * (prefix "" or "s{s}_"), or from theta_new_… when `from_new`. */
static int copy_thetas(const ocn_game *g, const ocn_arrayset *from, int from_new, ocn_arrayset *to, const char *prefix,
                       ocn_error *err)
{
    char src[64], dst[64];
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            if (!pl->m) continue;
            snprintf(src, sizeof src, "theta_%st%d_n%d", from_new ? "new_" : "", t, pl->lane);
            snprintf(dst, sizeof dst, "theta_%st%d_n%d", prefix, t, pl->lane);
            const ocn_array *a = ocn_arrayset_find(from, src);
            if (!a) return ocn_fail(err, OCN_ENUMERIC, "trajectory: the step produced no '%s'", src);
            int rc = put_copy(to, dst, a, err);
            if (rc) return rc;
        }
    return OCN_OK;
}

static int traj_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs, ocn_fault fault,
                    ocn_perturb *pert, ref_progress *prog, ocn_arrayset *out, ocn_error *err)
{
    int ns = opt->steps, T = g->T, N = opt->game == OCN_GAME_GR ? 1 : g->nlanes, rc = OCN_OK;
    ocn_arrayset *in = ocn_arrayset_copy(inputs), *so = NULL;
    ref_curv_state **st = calloc((size_t)T, sizeof *st);
    if (!in || !st) {
        rc = nomem(err, "the inputs' copy");
        goto done;
    }
    for (int t = 0; t < T; t++)
        if (!(st[t] = calloc((size_t)N, sizeof **st))) {
            rc = nomem(err, "the state table");
            goto done;
        }
    perturb_once(g, opt, in, pert);
    /* the initial parameters and every stored batch are inputs of the fixture */
    if ((rc = copy_thetas(g, in, 0, out, "s0_", err))) goto done;
    for (int s = 0; s < ns && opt->data_stream && ns > 1; s++) {
        char xn[32], yn[32];
        batch_names(opt, s, xn, yn, sizeof xn);
        if ((rc = put_copy(out, xn, ocn_arrayset_find(in, xn), err)) || (rc = put_copy(out, yn, ocn_arrayset_find(in, yn), err)))
            goto done;
    }
    for (int i = 0; i < in->count; i++)
        if (!strncmp(in->a[i].name, "Wfix_", 5) && (rc = put_copy(out, in->a[i].name, &in->a[i], err))) goto done;

    int cur = 0;
    for (int s = 0; s < ns; s++) {
        char xn[32], yn[32], nm[64];
        cur = s;
        batch_names(opt, s, xn, yn, sizeof xn);
        if (strcmp(xn, "x0")) { /* stream: step s reads its own batch under the one-step names */
            if ((rc = put_copy(in, "x0", ocn_arrayset_find(in, xn), err)) || (rc = put_copy(in, "y", ocn_arrayset_find(in, yn), err)))
                goto done;
        }
        /* loss_s: the §1 objective (weight decay included) on step s's batch, before the step */
        double loss;
        if ((rc = ocn_bp_loss_at(g, in, -1, 0, 0, NULL, &loss, err))) goto step_fail;
        snprintf(nm, sizeof nm, "loss_s%d", s);
        ocn_array *la = ocn_arrayset_add2(out, nm, 1, 1, 0, 0);
        if (!la) {
            rc = nomem(err, nm);
            goto done;
        }
        la->data[0] = loss;
        if (!(so = ocn_arrayset_new())) {
            rc = nomem(err, "a step's outputs");
            goto done;
        }
        ref_traj tr = {st, s, (int)fault};
        if (prog) prog->p.step = s, prog->p.steps = ns;
        if ((rc = ref_step_run(g, opt, in, fault, pert, &tr, prog, so, err))) goto step_fail;
        snprintf(nm, sizeof nm, "s%d_", s + 1);
        if ((rc = copy_thetas(g, so, 1, out, nm, err))) goto done;
        if (s == ns - 1) { /* the last step's §11 arrays and inputs under their one-step names */
            for (int i = 0; i < so->count; i++)
                if ((rc = put_copy(out, so->a[i].name, &so->a[i], err))) goto done;
            if ((rc = copy_thetas(g, in, 0, out, "", err)) || (rc = put_copy(out, "x0", ocn_arrayset_find(in, "x0"), err)) ||
                (rc = put_copy(out, "y", ocn_arrayset_find(in, "y"), err)))
                goto done;
        } else if ((rc = copy_thetas(g, so, 1, in, "", err))) /* θ_{s+1} */
            goto done;
        ocn_arrayset_free(so);
        so = NULL;
    }
    if ((rc = export_state(g, st, N, out, err))) goto done;
    /* the derived steps Δ_s = θ_{s+1} − θ_s (§13: c is measured on them) */
    for (int s = 0; s < ns; s++)
        for (int t = 0; t < T; t++)
            for (int p = 0; p < g->stages[t].nplayers; p++) {
                const ocn_player *pl = &g->stages[t].players[p];
                if (!pl->m) continue;
                char a0[64], a1[64], dn[64];
                snprintf(a0, sizeof a0, "theta_s%d_t%d_n%d", s, t, pl->lane);
                snprintf(a1, sizeof a1, "theta_s%d_t%d_n%d", s + 1, t, pl->lane);
                snprintf(dn, sizeof dn, "dtheta_s%d_t%d_n%d", s, t, pl->lane);
                ocn_array *d = ocn_arrayset_add2(out, dn, 1, (size_t)pl->m, 0, 0);
                if (!d) {
                    rc = nomem(err, dn);
                    goto done;
                }
                const ocn_array *x0 = ocn_arrayset_find(out, a0), *x1 = ocn_arrayset_find(out, a1);
                for (int j = 0; j < pl->m; j++) d->data[j] = x1->data[j] - x0->data[j];
            }
    goto done;
step_fail:
    ocn_error_prefix(err, "%s: trajectory step %d", g->name, cur);
done:
    ocn_arrayset_free(so);
    for (int t = 0; st && t < T; t++) {
        for (int n = 0; st[t] && n < N; n++) ref_curv_state_free(&st[t][n]);
        free(st[t]);
    }
    free(st);
    ocn_arrayset_free(in);
    return rc;
}

static int perturbed_traj(void *ctx, ocn_perturb *p, ocn_arrayset *out, ocn_error *err)
{
    const ref_run_ctx *c = ctx;
    if (c->prog) c->prog->p.run++;
    return traj_run(c->g, c->opt, c->inputs, c->fault, p, c->prog, out, err);
}

int ocn_ref_run_trajectory(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs,
                           const ocn_ref_opts *o, ocn_arrayset *out, ocn_error *err)
{
    ref_gsl_quiet();
    int runs = o ? o->measure_runs : 0;
    size_t limit = ocn_memory_limit(o ? o->max_memory : 0);
    char dom[400], need[32], lim[32];
    double est = ref_estimate(g, opt, runs, dom, sizeof dom); /* one step's peak; the state is O(m + a² + g²) more */
    if (est > (double)limit)
        return ocn_fail(err, OCN_EUNSUPPORTED,
                        "%s: the reference would need about %s of memory (estimated before allocating), over the "
                        "limit of %s; mostly %s",
                        g->name, ocn_format_bytes(est, need, sizeof need), ocn_format_bytes((double)limit, lim, sizeof lim),
                        dom);
    int rc = ocn_ref_check_inputs(g, inputs, "inputs", err);
    if (!rc) rc = check_batches(g, opt, inputs, err);
    if (rc) return rc;
    ref_progress pr = {o ? o->progress : NULL, o ? o->progress_ctx : NULL, {0, runs * (o && o->measure_f32 ? 2 : 1) + 1, 0, 1, 0, g->T}};
    ref_run_ctx c = {g, opt, inputs, o ? o->fault : OCN_FAULT_NONE, &pr};
    rc = traj_run(g, opt, inputs, c.fault, NULL, &pr, out, err);
    if (!rc) rc = ocn_measure_sensitivity(g, opt, runs, OCN_U64, perturbed_traj, &c, out, err);
    if (!rc && o && o->measure_f32) rc = ocn_measure_sensitivity_f32(g, runs, perturbed_traj, &c, out, err);
    if (!rc) /* NaN/Inf where inputs were finite is a numerical failure, never silent */
        for (int i = 0; i < out->count; i++)
            for (size_t j = 0; j < out->a[i].size; j++)
                if (!isfinite(out->a[i].data[j]))
                    return ocn_fail(err, OCN_ENUMERIC, "%s: reference trajectory produced NaN/Inf in '%s'", g->name,
                                    out->a[i].name);
    return rc;
}
