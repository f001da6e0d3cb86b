/* Inputs of a step: validation (§11/§12 bad input) and the generator's
 * initialisation from gsl_rng_mt19937 (§12). */
#include "ref.h"

#include "ocn/memory.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int expect_finite(const ocn_arrayset *in, const char *where, const char *name, int ndim, size_t d0,
                         size_t d1, const ocn_array **a, ocn_error *err)
{
    size_t sh[2] = {d0, d1};
    int rc = ocn_arrayset_expect(in, where, name, ndim, sh, a, err);
    if (rc) return rc;
    for (size_t i = 0; i < (*a)->size; i++)
        if (!isfinite((*a)->data[i]))
            return ocn_fail(err, OCN_EINVAL, "%s: array '%s' contains NaN or Inf at flat index %zu", where, name, i);
    return OCN_OK;
}

int ocn_ref_check_inputs(const ocn_game *g, const ocn_arrayset *in, const char *where, ocn_error *err)
{
    const ocn_array *a;
    size_t B = (size_t)g->batch;
    int rc = expect_finite(in, where, "x0", 2, B, (size_t)g->n[0], &a, err);
    if (rc) return rc;
    if (g->loss == OCN_LOSS_CE) {
        if ((rc = expect_finite(in, where, "y", 1, B, 0, &a, err))) return rc;
        for (size_t i = 0; i < B; i++) {
            double l = a->data[i];
            if (l != floor(l) || l < 0 || l >= g->classes)
                return ocn_fail(err, OCN_EINVAL, "%s: array 'y': label %g of sample %zu is not an integer in [0, %d)",
                                where, l, i, g->classes);
        }
    } else if ((rc = expect_finite(in, where, "y", 2, B, (size_t)g->out_dim, &a, err))) {
        return rc;
    }
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            char nm[64];
            if (pl->m) {
                snprintf(nm, sizeof nm, "theta_t%d_n%d", t, pl->lane);
                if ((rc = expect_finite(in, where, nm, 1, (size_t)pl->m, 0, &a, err))) return rc;
            }
            if (pl->kind == OCN_PLAYER_BIAS) {
                snprintf(nm, sizeof nm, "Wfix_t%d_n%d", t, pl->lane);
                if ((rc = expect_finite(in, where, nm, 2, (size_t)pl->out_dim, (size_t)pl->in_dim, &a, err)))
                    return rc;
            }
        }
    return OCN_OK;
}

/* §12: W ~ N(0, 1/in), b ~ N(0, 0.01), x0 ~ N(0, 1), mse targets N(0, 1),
 * labels uniform; stage, lane, W-then-b order, then x0, then y. */
/* x0 ~ N(0, 1), then y (§12): ce labels uniform, mse targets N(0, 1) */
static int draw_batch(const ocn_game *g, gsl_rng *r, ocn_arrayset *in, const char *xn, const char *yn, ocn_error *err)
{
    /* x0 is filled before y is added (that add may move x0); only its NULL-ness is read after */
    ocn_array *x0 = ocn_arrayset_add2(in, xn, 2, (size_t)g->batch, (size_t)g->n[0], 0);
    ocn_array *y = NULL;
    if (x0) {
        for (size_t i = 0; i < x0->size; i++) x0->data[i] = gsl_ran_gaussian(r, 1.0);
        if (g->loss == OCN_LOSS_CE) {
            y = ocn_arrayset_add2(in, yn, 1, (size_t)g->batch, 0, 0);
            for (size_t i = 0; y && i < y->size; i++) y->data[i] = (double)gsl_rng_uniform_int(r, (unsigned long)g->classes);
        } else {
            y = ocn_arrayset_add2(in, yn, 2, (size_t)g->batch, (size_t)g->out_dim, 0);
            for (size_t i = 0; y && i < y->size; i++) y->data[i] = gsl_ran_gaussian(r, 1.0);
        }
    }
    if (!x0 || !y) return ocn_fail(err, OCN_ENOMEM, "out of memory allocating %s", !x0 ? xn : yn);
    return OCN_OK;
}

int ocn_ref_init_inputs(const ocn_game *g, ocn_arrayset *in, ocn_error *err)
{
    /* issue 10: inputs that cannot fit the machine are refused before drawing */
    double need = ref_inputs_bytes(g);
    size_t limit = ocn_memory_limit(0);
    if (need > (double)limit) {
        char a[32], b[32];
        return ocn_fail(err, OCN_EUNSUPPORTED, "%s: the inputs (theta, Wfix, x0, y) need %s, more than the machine's "
                        "physical memory (%s)", g->name, ocn_format_bytes(need, a, sizeof a),
                        ocn_format_bytes((double)limit, b, sizeof b));
    }
    ref_gsl_quiet(); /* a failed gsl_rng_alloc returns NULL instead of aborting */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) return ocn_fail(err, OCN_ENOMEM, "out of memory allocating the random number generator");
    gsl_rng_set(r, g->seed);
    int rc = OCN_OK;
    for (int t = 0; t < g->T && !rc; t++) {
        const ocn_stage *st = &g->stages[t];
        for (int lane = 0; lane < g->nlanes && !rc; lane++) {
            const ocn_player *pl = ocn_game_lane_player(g, t, lane);
            if (!pl || pl->kind == OCN_PLAYER_ACT) continue;
            (void)st;
            char nth[64], nwf[64];
            /* §14: a conv player's W is (C_o, C·k²) with fan-in C·k² */
            int fan = pl->kind == OCN_PLAYER_CONV ? ocn_player_na(pl) - 1 : pl->in_dim;
            double sw = 1.0 / sqrt((double)fan), sb = 0.1;
            ocn_array *th, *wf = NULL;
            snprintf(nth, sizeof nth, "theta_t%d_n%d", t, lane);
            snprintf(nwf, sizeof nwf, "Wfix_t%d_n%d", t, lane);
            int ok = ocn_arrayset_add2(in, nth, 1, (size_t)pl->m, 0, 0) != NULL;
            if (ok && pl->kind == OCN_PLAYER_BIAS)
                ok = ocn_arrayset_add2(in, nwf, 2, (size_t)pl->out_dim, (size_t)pl->in_dim, 0) != NULL;
            if (!ok) {
                rc = ocn_fail(err, OCN_ENOMEM, "out of memory allocating %s%s%s", nth,
                              pl->kind == OCN_PLAYER_BIAS ? " or " : "", pl->kind == OCN_PLAYER_BIAS ? nwf : "");
                break;
            }
            /* an add may move every array of the set (issue 10: use after free
             * of `th` once Wfix grew it): look both up after the last add */
            th = ocn_arrayset_find(in, nth);
            if (pl->kind == OCN_PLAYER_BIAS) wf = ocn_arrayset_find(in, nwf);
            if (!th || (pl->kind == OCN_PLAYER_BIAS && !wf)) { /* cannot happen: just added */
                rc = ocn_fail(err, OCN_ENOMEM, "%s: lost after adding it", nth);
                break;
            }
            if (pl->kind == OCN_PLAYER_DENSE || pl->kind == OCN_PLAYER_CONV) {
                /* W first: draw row-major W[r][c], store column-major (§2; §14: W is C_o x C·k²) */
                int rows = ocn_player_ng(pl), cols = ocn_player_na(pl) - 1;
                for (int rr = 0; rr < rows; rr++)
                    for (int c = 0; c < cols; c++)
                        th->data[(size_t)c * (size_t)rows + (size_t)rr] = gsl_ran_gaussian(r, sw);
                for (int rr = 0; rr < rows; rr++)
                    th->data[(size_t)cols * (size_t)rows + (size_t)rr] = gsl_ran_gaussian(r, sb);
            } else if (wf) { /* bias */
                for (size_t i = 0; i < wf->size; i++) wf->data[i] = gsl_ran_gaussian(r, sw);
                for (int rr = 0; rr < pl->out_dim; rr++) th->data[rr] = gsl_ran_gaussian(r, sb);
            }
        }
    }
    if (!rc) rc = draw_batch(g, r, in, "x0", "y", err);
    /* §13 stream: step 0 uses the §12 batch; each later step draws x0, then y,
     * after everything drawn before, in step order */
    int stream = g->opt.data_stream && g->opt.steps > 1;
    for (int s = 0; stream && !rc && s < g->opt.steps; s++) {
        char xn[32], yn[32];
        snprintf(xn, sizeof xn, "x0_s%d", s);
        snprintf(yn, sizeof yn, "y_s%d", s);
        if (s == 0) {
            /* copies of x0, y (an add may move every array: shapes copied first, sources found after) */
            const char *src[2] = {"x0", "y"}, *dst[2] = {xn, yn};
            for (int k = 0; k < 2 && !rc; k++) {
                const ocn_array *a = ocn_arrayset_find(in, src[k]);
                size_t shape[OCN_MAX_NDIM];
                int nd = a->ndim;
                memcpy(shape, a->shape, sizeof shape);
                ocn_array *c = ocn_arrayset_add(in, dst[k], nd, shape);
                if (!c) rc = ocn_fail(err, OCN_ENOMEM, "out of memory allocating %s", dst[k]);
                else memcpy(c->data, ocn_arrayset_find(in, src[k])->data, c->size * sizeof(double));
            }
        } else
            rc = draw_batch(g, r, in, xn, yn, err);
    }
    gsl_rng_free(r);
    return rc;
}
