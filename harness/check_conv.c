/* SPEC §14 on the harness's side: CONV-DENSE and the KFC factors of the
 * T6-base kfac baseline, with conv code written apart from reference/conv.c
 * (explicit zero-padded image, loops in (o, y, x) / (c, i, j) order). */
#include "check.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* §14: a conv whose kernel covers its whole (unpadded) input is a dense layer
 * with out_dim = C_o and the same θ: patch (c, i, j) is element (c·H + i)·W + j. */
static int covers(const ocn_player *pl)
{
    return pl->kind == OCN_PLAYER_CONV && pl->conv.pad == 0 && pl->conv.k == pl->conv.h && pl->conv.k == pl->conv.w;
}

int ocn_check_conv_dense_applies(const ocn_game *g)
{
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (covers(&g->stages[t].players[p]) && g->stages[t].players[p].m) return 1;
    return 0;
}

/* the game with every covering conv player rewritten as dense (normalised JSON) */
static int dense_twin(const ocn_game *g, ocn_game **out, ocn_error *err)
{
    json_t *n = ocn_game_normalised(g);
    if (!n) return ocn_fail(err, OCN_ENOMEM, "CONV-DENSE: out of memory");
    json_t *st = json_object_get(n, "stages");
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            if (!covers(&g->stages[t].players[p])) continue;
            json_t *o = json_array_get(json_object_get(json_array_get(st, (size_t)t), "players"), (size_t)p);
            json_object_set_new(o, "kind", json_string("dense"));
            static const char *const drop[] = {"in_shape", "out_channels", "kernel", "stride", "padding", NULL};
            for (int k = 0; drop[k]; k++) json_object_del(o, drop[k]);
        }
    int rc = ocn_game_from_json(n, "CONV-DENSE twin", out, err);
    json_decref(n);
    return rc;
}

/* One mode: both sides recomputed (a fault in the conv arithmetic shows).
 * The fixture's own mode uses the fixture's stored c; a variant measures its
 * c on the conv side with R = 2 (§10: a check's variant). */
static int dense_mode(check_ctx *c, const ocn_game *d, const ocn_optimizer *opt, int own, const char *tag)
{
    ocn_arrayset *rc_ = ocn_arrayset_new(), *rd = ocn_arrayset_new();
    ocn_ref_opts o = {.fault = c->o ? c->o->fault : OCN_FAULT_NONE, .measure_runs = own ? 0 : OCN_CHECK_RUNS,
                      .max_memory = c->o ? c->o->max_memory : 0};
    ocn_optimizer od = *opt;
    int rc = !rc_ || !rd ? ocn_fail(c->err, OCN_ENOMEM, "CONV-DENSE: out of memory") : OCN_OK;
    if (!rc) rc = ocn_ref_run(c->g, opt, c->in, &o, rc_, c->err);
    o.measure_runs = 0;
    if (!rc) rc = ocn_ref_run(d, &od, c->in, &o, rd, c->err);
    for (int i = 0; !rc && i < rc_->count; i++) {
        const ocn_array *a = &rc_->a[i], *b = ocn_arrayset_find(rd, a->name);
        const ocn_array *s = own ? ocn_arrayset_find(c->f->arrays, a->name) : NULL;
        char q[160];
        snprintf(q, sizeof q, "%s%s%s", a->name, tag[0] ? " " : "", tag);
        if (!b || b->size != a->size) {
            ocn_report_add(c->rep, "CONV-DENSE", c->name, q, INFINITY, INFINITY);
            continue;
        }
        check_row(c, "CONV-DENSE", q, a->data, b->data, a->size, s && s->cond > 0 ? s->cond : a->cond);
    }
    ocn_arrayset_free(rc_), ocn_arrayset_free(rd);
    return rc;
}

/* CONV-DENSE: the fixture's mode, then every curvature the conv player has
 * (§14: coop-kfac is not defined) x dynamics x value mode, and terminal outer —
 * kfac among them checks that KFC at P = 1 is §5's dense kfac. */
int check_conv_dense(check_ctx *c)
{
    static const ocn_curvature curv[] = {OCN_CURV_EXACT, OCN_CURV_SGD, OCN_CURV_RMSPROP, OCN_CURV_GN_OUTER, OCN_CURV_KFAC};
    static const char *const cname[] = {"exact", "sgd", "rmsprop", "gn-outer", "kfac"};
    ocn_game *d = NULL;
    int rc = dense_twin(c->g, &d, c->err);
    if (!rc) rc = dense_mode(c, d, &c->g->opt, 1, "");
    for (int ci = 0; !rc && ci < 5; ci++)
        for (int dyn = 0; !rc && dyn < 2; dyn++)
            for (int v = 0; !rc && v < 3; v++)
                for (int term = 0; !rc && term < 2; term++) {
                    if (term && (dyn || v != OCN_VALUE_BLOCKDIAG)) continue; /* outer: once per curvature */
                    ocn_optimizer o = c->g->opt;
                    o.curvature = curv[ci], o.dynamics = (ocn_dynamics)dyn, o.value = (ocn_value_mode)v;
                    o.terminal = term ? OCN_TERMINAL_OUTER : OCN_TERMINAL_EXACT;
                    char tag[96];
                    snprintf(tag, sizeof tag, "[%s %s %s%s]", cname[ci], dyn ? "full" : "gn", ocn_value_name(o.value),
                             term ? " outer" : "");
                    rc = dense_mode(c, d, &o, 0, tag);
                }
    ocn_game_free(d);
    return rc;
}

/* §14 KFC on the harness side from back-propagation's statistics: z (B x
 * C·H·W) and g = σ'(h) ⊙ ct (B x C_o·P): A = (1/B) Σ_i Σ_p a_p a_pᵀ, G =
 * (1/B) Σ_i (1/P) Σ_p g_p g_pᵀ; returns Ai = (A + √γI)^†, Gi likewise. */
int check_conv_kfc_pinv(const ocn_player *pl, const double *zs, const double *gs, int B, double gamma, double *Ai,
                        double *Gi, double *cond, ocn_error *err)
{
    const ocn_conv *q = &pl->conv;
    int C = q->c, H = q->h, Wd = q->w, k = q->k, s = q->s, pd = q->pad, Co = q->co, Ho = q->ho, Wo = q->wo;
    int Hp = H + 2 * pd, Wp = Wd + 2 * pd, na = C * k * k + 1, P = Ho * Wo;
    double *img = calloc((size_t)C * Hp * Wp, sizeof *img), *a = malloc((size_t)na * sizeof *a);
    double *A = calloc((size_t)na * na, sizeof *A), *G = calloc((size_t)Co * Co, sizeof *G);
    int rc = OCN_OK;
    if (!img || !a || !A || !G) {
        rc = ocn_fail(err, OCN_ENOMEM, "KFC: out of memory");
        goto out;
    }
    for (int i = 0; i < B; i++) {
        const double *z = zs + (size_t)i * C * H * Wd, *g = gs + (size_t)i * Co * P;
        for (int ch = 0; ch < C; ch++) /* the zero-padded image */
            for (int y = 0; y < H; y++)
                for (int x = 0; x < Wd; x++) img[((size_t)ch * Hp + y + pd) * Wp + x + pd] = z[((size_t)ch * H + y) * Wd + x];
        for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++) {
                int e = 0;
                for (int ch = 0; ch < C; ch++)
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) a[e++] = img[((size_t)ch * Hp + y * s + u) * Wp + x * s + v];
                a[e] = 1.0;
                for (int r = 0; r < na; r++)
                    for (int cc = 0; cc < na; cc++) A[(size_t)r * na + cc] += a[r] * a[cc] / B;
                int p = y * Wo + x;
                for (int r = 0; r < Co; r++)
                    for (int cc = 0; cc < Co; cc++) G[(size_t)r * Co + cc] += g[(size_t)r * P + p] * g[(size_t)cc * P + p] / B / P;
            }
    }
    double sg = sqrt(gamma), ca = 1, cg = 1;
    for (int r = 0; r < na; r++) A[(size_t)r * na + r] += sg;
    for (int r = 0; r < Co; r++) G[(size_t)r * Co + r] += sg;
    rc = check_sym_pinv(A, na, Ai, &ca, err);
    if (!rc) rc = check_sym_pinv(G, Co, Gi, &cg, err);
    *cond = ca * cg;
out:
    free(img), free(a), free(A), free(G);
    return rc;
}

void check_conv_theta_vjp(const ocn_player *pl, const double *z, const double *gh, double *out)
{
    const ocn_conv *q = &pl->conv;
    int C = q->c, H = q->h, Wd = q->w, k = q->k, s = q->s, pd = q->pad, Co = q->co, Ho = q->ho, Wo = q->wo, P = Ho * Wo;
    memset(out, 0, (size_t)pl->m * sizeof *out);
    for (int o = 0; o < Co; o++)
        for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++) {
                double gv = gh[(size_t)o * P + y * Wo + x];
                out[(size_t)C * k * k * Co + o] += gv; /* bias column */
                for (int ch = 0; ch < C; ch++)
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) {
                            int yy = y * s + u - pd, xx = x * s + v - pd;
                            if (yy >= 0 && yy < H && xx >= 0 && xx < Wd)
                                out[(size_t)((ch * k + u) * k + v) * Co + o] += gv * z[((size_t)ch * H + yy) * Wd + xx];
                        }
            }
}
