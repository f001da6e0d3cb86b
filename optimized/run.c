/* Entry point of the optimized implementation: validation, refusals (never a
 * silent fallback), backend and precision dispatch. */
#include "opt.h"
#include "ocn/memory.h"

#include <math.h>
#include <string.h>

#define OPT_MAX_PLAYERS OCN_MAX_PLAYERS /* the loader's one player limit (ocn/game.h) */

const char *ocn_opt_unsupported(const ocn_game *g, const ocn_optimizer *o)
{
    if (o->value == OCN_VALUE_AUGMENTED) return "value 'augmented' is reference-only (SPEC §4): use blockdiag or persample";
    if (o->dynamics == OCN_DYN_FULL) return "dynamics 'full' is reference-only (SPEC §7)";
    int mid = (o->zero & OCN_ZERO_MID) != 0;
    for (int t = 0; t < g->T && o->curvature == OCN_CURV_COOP_KFAC; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (g->stages[t].players[p].kind == OCN_PLAYER_CONV)
                return "coop-kfac on a stage with a conv player is not defined (SPEC §14)";
    if (!mid && o->curvature == OCN_CURV_EXACT && !(g->weight_decay + o->damping > 0))
        return "exact curvature needs weight_decay + damping > 0 for the Woodbury form (SPEC §7)";
    if (!mid && o->curvature == OCN_CURV_GN_OUTER && !(o->damping > 0))
        return "gn-outer curvature needs damping > 0 for the Woodbury form (SPEC §7)";
    for (int t = 0; t < g->T; t++) {
        int np = 0;
        for (int p = 0; p < g->stages[t].nplayers; p++) np += g->stages[t].players[p].m > 0;
        if (g->stages[t].nplayers > OPT_MAX_PLAYERS) return "more than 64 players at a stage";
        if (!mid && o->curvature == OCN_CURV_COOP_KFAC && o->game == OCN_GAME_GR && np > 1 &&
            !(o->zero & OCN_ZERO_PUV) && !(o->damping > 0))
            return "coop-kfac needs damping > 0: its closed form is undefined without it (SPEC §6)";
    }
    return NULL;
}


int ocn_opt_check_finite(const ocn_game *g, int prec, const ocn_arrayset *out, ocn_error *err)
{
    for (int i = 0; i < out->count; i++) {
        const ocn_array *a = &out->a[i];
        for (size_t j = 0; j < a->size; j++)
            if (!isfinite(a->data[j]))
                return ocn_fail(err, OCN_EUNSUPPORTED,
                                "%s: optimized path (f%d) produced NaN/Inf in '%s' (element %zu): this regime "
                                "overflows or is singular for the fast formulation; refused (the reference defines it)",
                                g->name, prec, a->name, j);
    }
    return OCN_OK;
}

/* One step (nominal, or a §10 perturbation run) with the final check: the
 * optimized path never hands back a NaN/Inf array. */
static int run_once(void *ctx, ocn_perturb *p, ocn_arrayset *out, ocn_error *err)
{
    const ocn_opt_run_ctx *c = ctx;
    int rc = c->prec == 64 ? ocn_opt_run_f64(c->g, c->opt, c->in, c->cfg, c->bk, c->ws, p, out, err)
                           : ocn_opt_run_f32(c->g, c->opt, c->in, c->cfg, c->bk, c->ws, p, out, err);
    return ocn_opt_backend_status(c->bk, rc, err); /* the step did the final NaN/Inf check (step_phases.h) */
}

int ocn_opt_backend_status(ocn_backend *bk, int rc, ocn_error *err)
{
    if (!bk->failed) return rc;
    bk->failed = 0; /* reported once; a persistent context (ocn_opt_state) stays usable */
    return ocn_fail(err, OCN_ENUMERIC, "%s", bk->err.msg);
}

int ocn_opt_resolve(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, ocn_backend **bk,
                    int *prec, ocn_error *err)
{
    *bk = NULL;
    const char *why = ocn_opt_unsupported(g, opt);
    if (why) return ocn_fail(err, OCN_EUNSUPPORTED, "%s: optimized path: %s", g->name, why);
    int hr = ocn_blas_headroom(g->name, err); /* issue 10: no OpenBLAS hang under ulimit -v */
    if (hr) return hr;
    { /* issue 10: refuse, before allocating anything, what cannot fit */
        char dom[400], need[32], lim[32];
        size_t limit = ocn_memory_limit(cfg ? cfg->max_memory : 0);
        double est = ocn_opt_estimate_memory(g, opt, cfg, dom, sizeof dom);
        if (est > (double)limit)
            return ocn_fail(err, OCN_EUNSUPPORTED,
                            "%s: the optimized path would need about %s of memory (estimated before allocating), over "
                            "the limit of %s (%s); mostly %s",
                            g->name, ocn_format_bytes(est, need, sizeof need), ocn_format_bytes((double)limit, lim, sizeof lim),
                            cfg && cfg->max_memory ? "max_memory" : "the machine's physical memory", dom);
    }
    if (cfg && cfg->no_feedback && !(opt->zero & OCN_ZERO_MID) &&
        (opt->curvature == OCN_CURV_EXACT))
        return ocn_fail(err, OCN_EUNSUPPORTED, "no_feedback (benchmark baseline) needs a curvature without the value Hessian");
    *prec = cfg && cfg->precision ? cfg->precision : 64;
    if (*prec != 64 && *prec != 32) return ocn_fail(err, OCN_EINVAL, "precision must be 32 or 64, not %d", *prec);
    if (cfg && cfg->measure_runs < 0)
        return ocn_fail(err, OCN_EINVAL, "measure_runs must be >= 0, not %d", cfg->measure_runs);
    /* the registry (backend.c) knows the names; the backend says what it runs */
    int rc = ocn_backend_open(cfg && cfg->backend ? cfg->backend : "cpu", bk, err);
    for (int op = 0; !rc && op < OCN_OP_COUNT; op++)
        if (!(*bk)->supports(*bk, (ocn_op)op, *prec)) {
            rc = ocn_fail(err, OCN_EUNSUPPORTED, "backend '%s' does not run op %d in f%d", (*bk)->name, op, *prec);
            ocn_backend_close(*bk);
            *bk = NULL;
        }
    return rc;
}

ocn_array *ocn_opt_array_reuse(ocn_arrayset *s, const char *name, int ndim, const size_t *shape)
{
    ocn_array *a = ocn_arrayset_find(s, name);
    int same = a && a->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = a->shape[k] == shape[k];
    if (!same) return ocn_arrayset_add(s, name, ndim, shape);
    a->cond = 0;
    return a;
}

/* Hands the arrays of `tmp` to `out` (a refusal part-way adds nothing). */
int ocn_opt_hand_over(const ocn_arrayset *tmp, ocn_arrayset *out, ocn_error *err)
{
    for (int i = 0; i < tmp->count; i++) {
        const ocn_array *a = &tmp->a[i];
        ocn_array *b = ocn_opt_array_reuse(out, a->name, a->ndim, a->shape);
        if (!b) return ocn_fail(err, OCN_ENOMEM, "out of memory storing results");
        memcpy(b->data, a->data, a->size * sizeof(double));
        b->cond = a->cond;
    }
    return OCN_OK;
}

int ocn_opt_hand_over_swap(ocn_arrayset *tmp, ocn_arrayset *out, ocn_error *err)
{
    for (int i = 0; i < tmp->count; i++) {
        ocn_array *a = &tmp->a[i], *b = ocn_arrayset_find(out, a->name);
        int same = b && b->ndim == a->ndim;
        for (int k = 0; same && k < a->ndim; k++) same = a->shape[k] == b->shape[k];
        if (same) { /* moved, not copied: tmp keeps out's old buffer for the next step */
            double *d = b->data;
            b->data = a->data, a->data = d;
            b->cond = a->cond;
            continue;
        }
        ocn_array *c = ocn_arrayset_add(out, a->name, a->ndim, a->shape);
        if (!c) return ocn_fail(err, OCN_ENOMEM, "out of memory storing results");
        memcpy(c->data, a->data, a->size * sizeof(double));
        c->cond = a->cond;
    }
    return OCN_OK;
}

int ocn_opt_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                ocn_arrayset *out, ocn_error *err)
{
    ocn_backend *bk = NULL;
    int prec = 64;
    int rc = ocn_opt_resolve(g, opt, cfg, &bk, &prec, err);
    if (rc) return rc;
    int runs = cfg ? cfg->measure_runs : 0;
    ocn_ws *ws = NULL; /* planned from the game, allocated and checked once for all the runs below */
    rc = ocn_opt_ws_new(g, opt, cfg, &ws, err);
    if (rc) {
        ocn_backend_close(bk);
        return rc;
    }
    ocn_opt_run_ctx c = {g, opt, in, cfg, bk, prec, ws};
    /* computed aside and handed over whole: a refusal part-way adds nothing to `out` */
    ocn_arrayset *tmp = ocn_arrayset_new();
    if (!tmp) {
        ocn_ws_free(ws);
        ocn_backend_close(bk);
        return ocn_fail(err, OCN_ENOMEM, "out of memory");
    }
    rc = run_once(&c, NULL, tmp, err);
    /* §10 rev. 2: c measured by this producer, at its own unit roundoff */
    if (!rc && runs > 0)
        rc = ocn_measure_sensitivity(g, opt, runs, prec == 32 ? OCN_U32 : OCN_U64, run_once, &c, tmp, err);
    if (!rc) rc = ocn_opt_hand_over(tmp, out, err);
    ocn_arrayset_free(tmp);
    ocn_ws_free(ws);
    ocn_backend_close(bk);
    return rc;
}

int ocn_opt_ws_new(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, ocn_ws **ws, ocn_error *err)
{
    int rc = ocn_ws_new(ocn_opt_plan_workspace(g, opt, cfg), cfg ? cfg->fail_alloc_at : 0, ws, err);
    if (rc) ocn_error_prefix(err, "%s", g->name);
    return rc;
}
