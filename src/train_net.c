/* `ocn train`'s own forward and backward pass for §12 chains (one player per
 * stage, no carries; dense, bias, act and §14 conv players) with a softmax
 * cross-entropy loss (§1).  Conv players are computed by direct loops over
 * the taps (no im2col): a computation apart from both the reference's
 * explicit Jacobian and the optimized path's im2col/col2im.  Written apart
 * from reference/ and optimized/ on purpose: it drives the baselines, the
 * evaluation, and is the independent side of the test that the optimized
 * path's `zero: [Qthx]` step is the adaptive-diagonal step (issue 13). */
#include "ocn/train.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ocn_net {
    int T, M, maxdim;
    ocn_player *pl;  /* one per stage (copies) */
    size_t *off;     /* parameter offset of stage t in the flat theta */
    double **Wfix;   /* bias players' fixed W (out x in, row-major, §2), else NULL */
    double *x, *h;   /* per stage t = 0..T: state and pre-activation, maxdim each */
    double *dl, *dl2, *gi;
};

void ocn_net_free(ocn_net *n)
{
    if (!n) return;
    for (int t = 0; n->Wfix && t < n->T; t++) free(n->Wfix[t]);
    free(n->Wfix), free(n->pl), free(n->off), free(n->x), free(n->h), free(n->dl), free(n->dl2), free(n->gi);
    free(n);
}

int ocn_net_nparams(const ocn_net *n) { return n->M; }

int ocn_net_new(const ocn_game *g, ocn_net **out, ocn_error *err)
{
    *out = NULL;
    if (g->loss != OCN_LOSS_CE)
        return ocn_fail(err, OCN_EUNSUPPORTED, "%s: ocn train needs a classification game (loss.kind 'ce')", g->name);
    if (g->separable)
        return ocn_fail(err, OCN_EUNSUPPORTED, "%s: ocn train does not train separable games (loss.lane_outputs)", g->name);
    for (int t = 0; t < g->T; t++) {
        const ocn_stage *s = &g->stages[t];
        if (s->nplayers != 1 || s->ncarries)
            return ocn_fail(err, OCN_EUNSUPPORTED, "%s: stage %d: ocn train computes chains (one player per stage, no "
                            "carries); this stage has %d players and %d carries", g->name, t, s->nplayers, s->ncarries);
        if (s->players[0].in_dim != g->n[t] || s->players[0].out_dim != g->n[t + 1])
            return ocn_fail(err, OCN_EUNSUPPORTED, "%s: stage %d: the player must read and write the whole state "
                            "(a chain)", g->name, t);
    }
    if (g->out_dim != g->n[g->T])
        return ocn_fail(err, OCN_EUNSUPPORTED, "%s: the loss must read the whole final state", g->name);
    ocn_net *n = calloc(1, sizeof *n);
    if (!n) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    n->T = g->T;
    n->pl = calloc((size_t)g->T, sizeof *n->pl);
    n->off = calloc((size_t)g->T + 1, sizeof *n->off);
    n->Wfix = calloc((size_t)g->T, sizeof *n->Wfix);
    int ok = n->pl && n->off && n->Wfix;
    for (int t = 0; ok && t <= g->T; t++)
        if (g->n[t] > n->maxdim) n->maxdim = g->n[t];
    for (int t = 0; ok && t < g->T; t++) {
        n->pl[t] = g->stages[t].players[0];
        n->off[t + 1] = n->off[t] + (size_t)n->pl[t].m;
        if (n->pl[t].kind == OCN_PLAYER_BIAS)
            ok = (n->Wfix[t] = calloc((size_t)n->pl[t].out_dim * (size_t)n->pl[t].in_dim, sizeof(double))) != NULL;
    }
    if (ok) {
        n->M = (int)n->off[g->T];
        size_t md = (size_t)n->maxdim, S = (size_t)(g->T + 1) * md;
        n->x = malloc(S * sizeof *n->x), n->h = malloc(S * sizeof *n->h);
        n->dl = malloc(md * sizeof *n->dl), n->dl2 = malloc(md * sizeof *n->dl2);
        n->gi = malloc(((size_t)n->M + 1) * sizeof *n->gi);
        ok = n->x && n->h && n->dl && n->dl2 && n->gi;
    }
    if (!ok) {
        ocn_net_free(n);
        return ocn_fail(err, OCN_ENOMEM, "out of memory");
    }
    *out = n;
    return OCN_OK;
}

int ocn_net_get(const ocn_net *n, const double *theta, ocn_arrayset *set, ocn_error *err)
{
    for (int t = 0; t < n->T; t++) {
        const ocn_player *p = &n->pl[t];
        char nm[64];
        if (p->m) {
            snprintf(nm, sizeof nm, "theta_t%d_n%d", t, p->lane);
            ocn_array *a = ocn_arrayset_add2(set, nm, 1, (size_t)p->m, 0, 0);
            if (!a) return ocn_fail(err, OCN_ENOMEM, "out of memory");
            memcpy(a->data, theta + n->off[t], (size_t)p->m * sizeof(double));
        }
        if (p->kind == OCN_PLAYER_BIAS) {
            snprintf(nm, sizeof nm, "Wfix_t%d_n%d", t, p->lane);
            ocn_array *a = ocn_arrayset_add2(set, nm, 2, (size_t)p->out_dim, (size_t)p->in_dim, 0);
            if (!a) return ocn_fail(err, OCN_ENOMEM, "out of memory");
            memcpy(a->data, n->Wfix[t], a->size * sizeof(double));
        }
    }
    return OCN_OK;
}

int ocn_net_set(const ocn_net *n, double *theta, const ocn_arrayset *set, ocn_error *err)
{
    for (int t = 0; t < n->T; t++) {
        const ocn_player *p = &n->pl[t];
        if (!p->m) continue;
        char nm[64];
        snprintf(nm, sizeof nm, "theta_new_t%d_n%d", t, p->lane);
        const ocn_array *a = ocn_arrayset_find(set, nm);
        if (!a || a->size != (size_t)p->m) return ocn_fail(err, OCN_EINVAL, "optimized step returned no '%s'", nm);
        memcpy(theta + n->off[t], a->data, a->size * sizeof(double));
    }
    return OCN_OK;
}

void ocn_net_init(ocn_net *n, double *theta, void *rng)
{
    gsl_rng *r = rng;
    for (int t = 0; t < n->T; t++) {
        const ocn_player *p = &n->pl[t];
        /* §14: a conv player's W is (C_o, C·k²) with fan-in C·k² (the same draws as a dense (C_o x C·k²) W) */
        int conv = p->kind == OCN_PLAYER_CONV;
        size_t out = conv ? (size_t)p->conv.co : (size_t)p->out_dim;
        size_t in = conv ? (size_t)p->conv.c * (size_t)p->conv.k * (size_t)p->conv.k : (size_t)p->in_dim;
        double sw = 1.0 / sqrt((double)in), sb = 0.1;
        double *th = theta + n->off[t];
        if (p->kind == OCN_PLAYER_DENSE || conv) { /* §12: W drawn row-major, stored column-major (§2) */
            for (size_t rr = 0; rr < out; rr++)
                for (size_t c = 0; c < in; c++) th[c * out + rr] = gsl_ran_gaussian(r, sw);
            for (size_t rr = 0; rr < out; rr++) th[in * out + rr] = gsl_ran_gaussian(r, sb);
        } else if (p->kind == OCN_PLAYER_BIAS) {
            for (size_t i = 0; i < out * in; i++) n->Wfix[t][i] = gsl_ran_gaussian(r, sw);
            for (size_t rr = 0; rr < out; rr++) th[rr] = gsl_ran_gaussian(r, sb);
        }
    }
}

static double act(ocn_act a, double h)
{
    switch (a) {
    case OCN_ACT_IDENTITY: return h;
    case OCN_ACT_TANH: return tanh(h);
    case OCN_ACT_RELU: return h > 0 ? h : 0;
    case OCN_ACT_SIGMOID: return 1 / (1 + exp(-h));
    }
    return h;
}

/* σ'(h) from h and y = σ(h) (§2: relu'(0) := 0). */
static double dact(ocn_act a, double h, double y)
{
    switch (a) {
    case OCN_ACT_IDENTITY: return 1;
    case OCN_ACT_TANH: return 1 - y * y;
    case OCN_ACT_RELU: return h > 0 ? 1 : 0;
    case OCN_ACT_SIGMOID: return y * (1 - y);
    }
    return 1;
}

/* §14 conv, one sample: h[o, y, x] = b[o] + Σ_{c,i,j} W[o, (c·k + i)·k + j] ·
 * z_pad[c, y·s + i, x·s + j] (cross-correlation; z channel-major, zero
 * padding `pad` on each side).  θ = vec([W b]) column-major (§2): W[o, col]
 * at θ[col·C_o + o], b[o] at θ[C·k²·C_o + o]. */
static void conv_forward(const ocn_conv *cv, const double *th, const double *z, double *h)
{
    int C = cv->c, H = cv->h, W = cv->w, Co = cv->co, k = cv->k, s = cv->s, pad = cv->pad, Ho = cv->ho, Wo = cv->wo;
    size_t P = (size_t)Ho * (size_t)Wo, ncol = (size_t)C * (size_t)k * (size_t)k;
    for (int o = 0; o < Co; o++)
        for (size_t p = 0; p < P; p++) h[(size_t)o * P + p] = th[ncol * (size_t)Co + (size_t)o];
    for (int c = 0; c < C; c++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                size_t col = ((size_t)c * (size_t)k + (size_t)i) * (size_t)k + (size_t)j;
                for (int y = 0; y < Ho; y++) {
                    int yy = y * s + i - pad;
                    if (yy < 0 || yy >= H) continue; /* zero padding */
                    for (int x = 0; x < Wo; x++) {
                        int xx = x * s + j - pad;
                        if (xx < 0 || xx >= W) continue;
                        double zv = z[((size_t)c * (size_t)H + (size_t)yy) * (size_t)W + (size_t)xx];
                        for (int o = 0; o < Co; o++)
                            h[(size_t)o * P + (size_t)y * (size_t)Wo + (size_t)x] += th[col * (size_t)Co + (size_t)o] * zv;
                    }
                }
            }
}

/* Its back-propagation for one sample: dh = V_h (C_o·H_o·W_o), adds
 * ∂/∂W[o, col] = Σ_p dh[o, p]·z_pad[patch col at p], ∂/∂b[o] = Σ_p dh[o, p]
 * to gt, and writes dz = Σ W[o, col]·dh[o, p] scattered onto the input
 * taps (padding taps dropped). */
static void conv_backward(const ocn_conv *cv, const double *th, const double *z, const double *dh, double *gt, double *dz)
{
    int C = cv->c, H = cv->h, W = cv->w, Co = cv->co, k = cv->k, s = cv->s, pad = cv->pad, Ho = cv->ho, Wo = cv->wo;
    size_t P = (size_t)Ho * (size_t)Wo, ncol = (size_t)C * (size_t)k * (size_t)k;
    memset(dz, 0, (size_t)C * (size_t)H * (size_t)W * sizeof *dz);
    for (int o = 0; o < Co; o++) {
        double sb = 0;
        for (size_t p = 0; p < P; p++) sb += dh[(size_t)o * P + p];
        gt[ncol * (size_t)Co + (size_t)o] += sb;
    }
    for (int c = 0; c < C; c++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                size_t col = ((size_t)c * (size_t)k + (size_t)i) * (size_t)k + (size_t)j;
                const double *w = th + col * (size_t)Co;
                double *gw = gt + col * (size_t)Co;
                for (int y = 0; y < Ho; y++) {
                    int yy = y * s + i - pad;
                    if (yy < 0 || yy >= H) continue;
                    for (int x = 0; x < Wo; x++) {
                        int xx = x * s + j - pad;
                        if (xx < 0 || xx >= W) continue;
                        size_t zi = ((size_t)c * (size_t)H + (size_t)yy) * (size_t)W + (size_t)xx;
                        size_t p = (size_t)y * (size_t)Wo + (size_t)x;
                        double zv = z[zi], acc = 0;
                        for (int o = 0; o < Co; o++) {
                            double d = dh[(size_t)o * P + p];
                            gw[o] += d * zv, acc += w[o] * d;
                        }
                        dz[zi] += acc;
                    }
                }
            }
}

/* Forward of one row: fills x, h for t = 0..T; returns the logits x_T. */
static const double *forward(ocn_net *n, const double *theta, const double *x0, size_t d0)
{
    size_t md = (size_t)n->maxdim;
    memcpy(n->x, x0, d0 * sizeof *x0);
    for (int t = 0; t < n->T; t++) {
        const ocn_player *p = &n->pl[t];
        const double *z = n->x + (size_t)t * md, *th = theta + n->off[t];
        double *h = n->h + (size_t)(t + 1) * md, *y = n->x + (size_t)(t + 1) * md;
        size_t out = (size_t)p->out_dim, in = (size_t)p->in_dim;
        if (p->kind == OCN_PLAYER_ACT) {
            for (size_t r = 0; r < out; r++) h[r] = z[r];
        } else if (p->kind == OCN_PLAYER_CONV) {
            conv_forward(&p->conv, th, z, h);
        } else if (p->kind == OCN_PLAYER_DENSE) {
            for (size_t r = 0; r < out; r++) h[r] = th[in * out + r];
            for (size_t c = 0; c < in; c++) {
                const double *w = th + c * out, zc = z[c];
                for (size_t r = 0; r < out; r++) h[r] += w[r] * zc;
            }
        } else {
            for (size_t r = 0; r < out; r++) {
                double s = th[r];
                for (size_t c = 0; c < in; c++) s += n->Wfix[t][r * in + c] * z[c];
                h[r] = s;
            }
        }
        for (size_t r = 0; r < out; r++) y[r] = act(p->act, h[r]);
    }
    return n->x + (size_t)n->T * md;
}

/* Softmax cross-entropy of logits z (k classes) against label c; p (may be
 * NULL) gets dφ/dz = softmax(z) − e_c. */
static double ce(const double *z, int k, int c, double *p)
{
    double mx = z[0];
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    double s = 0;
    for (int j = 0; j < k; j++) s += exp(z[j] - mx);
    double lse = mx + log(s);
    if (p)
        for (int j = 0; j < k; j++) p[j] = exp(z[j] - lse) - (j == c);
    return lse - z[c];
}

void ocn_net_eval(ocn_net *n, const double *theta, const ocn_dataset *d, const size_t *idx, size_t k, double *loss,
                  double *acc)
{
    int K = n->pl[n->T - 1].out_dim;
    double L = 0;
    size_t hit = 0;
    for (size_t i = 0; i < k; i++) {
        size_t row = idx[i];
        const double *z = forward(n, theta, d->X + row * d->d, d->d);
        int best = 0;
        for (int j = 1; j < K; j++)
            if (z[j] > z[best]) best = j;
        hit += best == d->y[row];
        L += ce(z, K, d->y[row], NULL);
    }
    *loss = L / (double)k;
    *acc = (double)hit / (double)k;
}

double ocn_net_grad(ocn_net *n, const double *theta, const ocn_dataset *d, const size_t *idx, size_t B, double lambda,
                    double *grad, double *persq)
{
    size_t M = (size_t)n->M, md = (size_t)n->maxdim;
    int K = n->pl[n->T - 1].out_dim;
    memset(grad, 0, M * sizeof *grad);
    if (persq) memset(persq, 0, M * sizeof *persq);
    double L = 0;
    for (size_t i = 0; i < B; i++) {
        size_t row = idx[i];
        const double *z = forward(n, theta, d->X + row * d->d, d->d);
        L += ce(z, K, d->y[row], n->dl);
        /* per-sample gradient into gi when the squares are wanted, else straight into grad */
        double *g = persq ? n->gi : grad;
        if (persq) memset(g, 0, M * sizeof *g);
        for (int t = n->T - 1; t >= 0; t--) {
            const ocn_player *p = &n->pl[t];
            size_t out = (size_t)p->out_dim, in = (size_t)p->in_dim;
            const double *zin = n->x + (size_t)t * md, *h = n->h + (size_t)(t + 1) * md, *y = n->x + (size_t)(t + 1) * md;
            const double *th = theta + n->off[t];
            double *gt = g + n->off[t];
            for (size_t r = 0; r < out; r++) n->dl[r] *= dact(p->act, h[r], y[r]); /* V_h = σ' ⊙ V_x' (§4) */
            if (p->kind == OCN_PLAYER_ACT) continue;
            if (p->kind == OCN_PLAYER_CONV) {
                conv_backward(&p->conv, th, zin, n->dl, gt, n->dl2);
            } else if (p->kind == OCN_PLAYER_DENSE) { /* ∇θ = a ⊗ g, a = [z; 1] (§2) */
                for (size_t c = 0; c < in; c++) {
                    double *gw = gt + c * out, zc = zin[c];
                    const double *w = th + c * out;
                    double s = 0;
                    for (size_t r = 0; r < out; r++) gw[r] += n->dl[r] * zc, s += w[r] * n->dl[r];
                    n->dl2[c] = s;
                }
                for (size_t r = 0; r < out; r++) gt[in * out + r] += n->dl[r];
            } else {
                for (size_t r = 0; r < out; r++) gt[r] += n->dl[r];
                for (size_t c = 0; c < in; c++) {
                    double s = 0;
                    for (size_t r = 0; r < out; r++) s += n->Wfix[t][r * in + c] * n->dl[r];
                    n->dl2[c] = s;
                }
            }
            memcpy(n->dl, n->dl2, in * sizeof *n->dl);
        }
        if (persq)
            for (size_t j = 0; j < M; j++) grad[j] += g[j], persq[j] += g[j] * g[j];
    }
    double reg = 0;
    for (size_t j = 0; j < M; j++) {
        grad[j] = grad[j] / (double)B + lambda * theta[j];
        if (persq) persq[j] /= (double)B;
        reg += theta[j] * theta[j];
    }
    return L / (double)B + 0.5 * lambda * reg;
}
