/* LQR and BATCH (SPEC §9). */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stacked gradient of L over all players (plain back-propagation). */
static int full_grad(check_ctx *c, const ocn_arrayset *in, double *out)
{
    ocn_bp *bp = NULL;
    int rc = ocn_bp_run(c->g, in, 0, &bp, c->err), o = 0;
    for (int t = 0; !rc && t < c->g->T; t++)
        for (int p = 0; p < c->g->stages[t].nplayers; p++) {
            int m = c->g->stages[t].players[p].m;
            memcpy(out + o, ocn_bp_grad(bp, t, p), (size_t)m * sizeof *out);
            o += m;
        }
    ocn_bp_free(bp);
    return rc;
}

/* LQR: one exact DDP step on a linear-quadratic game leaves ∇L(θ_new) = 0. */
int check_lqr(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_arrayset *r = NULL, *in2 = ocn_arrayset_new();
    int rc = check_ref_variant(c, &g->opt, &r), mtot = ocn_game_nparams(g);
    double *g0 = calloc((size_t)mtot + 1, sizeof *g0), *g1 = calloc((size_t)mtot + 1, sizeof *g1), cnd = 1;
    for (int i = 0; !rc && i < c->in->count; i++) { /* inputs with θ := θ_new */
        const ocn_array *a = &c->in->a[i];
        const ocn_array *src = a;
        char nm[80];
        if (!strncmp(a->name, "theta_t", 7)) {
            snprintf(nm, sizeof nm, "theta_new_%s", a->name + 6);
            src = ocn_arrayset_find(r, nm);
            cnd = fmax(cnd, src->cond);
        }
        ocn_array *d = ocn_arrayset_add(in2, a->name, a->ndim, a->shape);
        memcpy(d->data, src->data, d->size * sizeof(double));
    }
    if (!rc) rc = full_grad(c, c->in, g0);
    if (!rc) rc = full_grad(c, in2, g1);
    if (!rc) {
        double e = check_norm(g1, (size_t)mtot) / fmax(check_norm(g0, (size_t)mtot), 1e-300);
        ocn_report_add(c->rep, "LQR", c->name, "|dL(theta_new)|/|dL|", e, ocn_ratio(e, OCN_U64, cnd));
    }
    free(g0), free(g1);
    ocn_arrayset_free(in2);
    ocn_arrayset_free(r);
    return rc;
}

/* BATCH: augmented vs blockdiag value Hessians; off-diagonal mass of
 * B·V_XX per stage (GT-DDP Fig. 4 claims it is small) and the effect on k. */
int check_batch(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_arrayset *ra = NULL, *rb = NULL;
    int rc = check_ref_value_modes(c, OCN_VALUE_AUGMENTED, &ra, OCN_VALUE_BLOCKDIAG, &rb);
    int gr = g->opt.game == OCN_GAME_GR;
    for (int t = 0; !rc && t < g->T; t++)
        for (int lane = 0; lane < (gr ? 1 : g->nlanes); lane++) {
            char nm[64], q[96];
            if (gr) snprintf(nm, sizeof nm, "WXX_t%d", t);
            else snprintf(nm, sizeof nm, "VXX_t%d_n%d", t, lane);
            const ocn_array *V = ocn_arrayset_find(ra, nm);
            size_t N = V->shape[0], n = N / (size_t)g->batch;
            double off = 0, all = 0;
            for (size_t i = 0; i < N; i++)
                for (size_t j = 0; j < N; j++) {
                    double x = V->data[i * N + j];
                    all += x * x;
                    if (i / n != j / n) off += x * x;
                }
            snprintf(q, sizeof q, "offdiag %s", nm);
            ocn_report_measured(c->rep, "BATCH", c->name, q, all > 0 ? sqrt(off / all) : 0.0);
            for (int p = 0; p < g->stages[t].nplayers; p++) {
                const ocn_player *pl = &g->stages[t].players[p];
                if (!pl->m || (!gr && pl->lane != lane)) continue;
                snprintf(nm, sizeof nm, "k_t%d_n%d", t, pl->lane);
                const ocn_array *ka = ocn_arrayset_find(ra, nm), *kb = ocn_arrayset_find(rb, nm);
                snprintf(q, sizeof q, "%s aug-vs-blockdiag", nm);
                ocn_report_measured(c->rep, "BATCH", c->name, q, ocn_rel_err(kb->data, ka->data, ka->size));
            }
        }
    ocn_arrayset_free(ra);
    ocn_arrayset_free(rb);
    return rc;
}
