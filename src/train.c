/* `ocn train`'s driver (issue 13): epochs of shuffled batches, one optimizer
 * step per batch, evaluation after every epoch.  The DDP variants step
 * through the optimized path (ocn/optimized.h) — never through this file's
 * math; the baselines use PyTorch's update rules (below). */
#include "ocn/optimized.h"
#include "ocn/train.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ocn_train_opts_default(ocn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = OCN_TRAIN_GAME;
    o->momentum = 0.9, o->alpha = 0.99, o->beta1 = 0.9, o->beta2 = 0.999, o->eps = 1e-8;
    o->epochs = 40;
    o->backend = "cpu";
}

void ocn_train_result_free(ocn_train_result *r)
{
    free(r->train_loss), free(r->eval_loss), free(r->eval_acc), free(r->seconds);
    memset(r, 0, sizeof *r);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Baseline state: PyTorch's buffers (momentum / square average / moments). */
typedef struct {
    double *buf, *sq, *grad;
    long step;
} baseline;

/* PyTorch's rules (torch.optim, defaults otherwise), step = 1, 2, ...:
 * SGD     b = μ b + g (b = g at the first step), θ -= η b
 * RMSprop v = α v + (1−α) g², θ -= η g / (√v + ε)         (v starts at 0)
 * Adam    m = β1 m + (1−β1) g, v = β2 v + (1−β2) g²,
 *         θ -= η (m / (1−β1^t)) / (√v / √(1−β2^t) + ε)
 * g includes the weight decay λθ (§1's objective; PyTorch's weight_decay). */
void ocn_train_baseline_step(const ocn_train_opts *o, double lr, long step, const double *g, double *buf, double *sq,
                             double *theta, size_t M)
{
    if (o->method == OCN_TRAIN_SGD) {
        for (size_t j = 0; j < M; j++) {
            buf[j] = step == 1 ? g[j] : o->momentum * buf[j] + g[j];
            theta[j] -= lr * buf[j];
        }
    } else if (o->method == OCN_TRAIN_RMSPROP) {
        for (size_t j = 0; j < M; j++) {
            sq[j] = o->alpha * sq[j] + (1 - o->alpha) * g[j] * g[j];
            theta[j] -= lr * g[j] / (sqrt(sq[j]) + o->eps);
        }
    } else if (o->method == OCN_TRAIN_ADAM) {
        double bc1 = 1 - pow(o->beta1, (double)step), bc2 = 1 - pow(o->beta2, (double)step);
        for (size_t j = 0; j < M; j++) {
            buf[j] = o->beta1 * buf[j] + (1 - o->beta1) * g[j];
            sq[j] = o->beta2 * sq[j] + (1 - o->beta2) * g[j] * g[j];
            theta[j] -= lr * (buf[j] / bc1) / (sqrt(sq[j]) / sqrt(bc2) + o->eps);
        }
    }
}

static void baseline_step(const ocn_train_opts *o, double lr, baseline *s, double *theta, size_t M)
{
    s->step++;
    ocn_train_baseline_step(o, lr, s->step, s->grad, s->buf, s->sq, theta, M);
}

/* One step of the game's optimizer on the optimized path (§8: theta_new),
 * carrying the §13 state (moving averages with the game's stat_decay ρ,
 * kfac factorisations refreshed every refresh_every steps). */
int ocn_train_game_step(const ocn_game *g, const ocn_net *net, ocn_opt_state *st, const ocn_dataset *d,
                        const size_t *idx, double *theta, ocn_arrayset *in, ocn_error *err)
{
    size_t B = (size_t)g->batch;
    int rc = ocn_net_get(net, theta, in, err);
    ocn_array *x0 = rc ? NULL : ocn_arrayset_add2(in, "x0", 2, B, d->d, 0);
    if (!rc && !x0) rc = ocn_fail(err, OCN_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < B; i++) memcpy(x0->data + i * d->d, d->X + idx[i] * d->d, d->d * sizeof(double));
    ocn_array *y = rc ? NULL : ocn_arrayset_add2(in, "y", 1, B, 0, 0);
    if (!rc && !y) rc = ocn_fail(err, OCN_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < B; i++) y->data[i] = d->y[idx[i]]; /* §12: ce labels as <f8 integers */
    ocn_arrayset *out = rc ? NULL : ocn_arrayset_new();
    if (!rc && !out) rc = ocn_fail(err, OCN_ENOMEM, "out of memory");
    if (!rc) rc = ocn_opt_step(st, in, out, err);
    if (!rc) rc = ocn_net_set(net, theta, out, err);
    ocn_arrayset_free(out);
    return rc;
}

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int ocn_train_run(const ocn_game *g, const ocn_dataset *d, const ocn_train_opts *o, ocn_train_result *res,
                  ocn_error *err)
{
    memset(res, 0, sizeof *res);
    if (!d->prepared) return ocn_fail(err, OCN_EINVAL, "data set not prepared (ocn_dataset_prepare)");
    if ((size_t)g->input_dim != d->d)
        return ocn_fail(err, OCN_EINVAL, "%s: input_dim is %d but the data set's X.npy has %zu features", g->name,
                        g->input_dim, d->d);
    if (d->classes > g->classes)
        return ocn_fail(err, OCN_EINVAL, "%s: loss.classes is %d but the data set's y.npy has labels up to %d", g->name,
                        g->classes, d->classes - 1);
    if ((size_t)g->batch > d->ntrain)
        return ocn_fail(err, OCN_EINVAL, "%s: batch %d is larger than the %zu training rows", g->name, g->batch, d->ntrain);
    if (o->epochs < 0 || o->epochs > 1000000) return ocn_fail(err, OCN_EINVAL, "epochs must be in [0, 1000000], not %d", o->epochs);
    if (o->method == OCN_TRAIN_GAME) {
        const char *why = ocn_opt_unsupported(g, &g->opt);
        if (why) return ocn_fail(err, OCN_EUNSUPPORTED, "%s: optimized path: %s", g->name, why);
    }
    double lr = o->lr > 0 ? o->lr : g->opt.lr;
    ocn_net *net = NULL;
    int rc = ocn_net_new(g, &net, err);
    if (rc) return rc;
    size_t M = (size_t)ocn_net_nparams(net), E = (size_t)o->epochs + 1, B = (size_t)g->batch;
    double *theta = calloc(M + 1, sizeof *theta);
    size_t *order = malloc(d->ntrain * sizeof *order);
    baseline bs = {calloc(M + 1, sizeof(double)), calloc(M + 1, sizeof(double)), calloc(M + 1, sizeof(double)), 0};
    ocn_arrayset *in = ocn_arrayset_new();
    ocn_opt_state *st = NULL;
    ocn_opt_config cfg = {.backend = o->backend ? o->backend : "cpu", .precision = 64, .form_limit = 0};
    if (o->method == OCN_TRAIN_GAME && (rc = ocn_opt_state_new(g, &g->opt, &cfg, &st, err))) {
        ocn_net_free(net);
        ocn_arrayset_free(in);
        free(theta), free(order), free(bs.buf), free(bs.sq), free(bs.grad);
        return rc;
    }
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    res->train_loss = calloc(E, sizeof(double)), res->eval_loss = calloc(E, sizeof(double));
    res->eval_acc = calloc(E, sizeof(double)), res->seconds = calloc(E, sizeof(double));
    if (!theta || !order || !bs.buf || !bs.sq || !bs.grad || !in || !r || !res->train_loss || !res->eval_loss ||
        !res->eval_acc || !res->seconds)
        rc = ocn_fail(err, OCN_ENOMEM, "out of memory");
    if (!rc) {
        /* one stream: §12 initialisation first, then each epoch's shuffle */
        gsl_rng_set(r, o->seed);
        ocn_net_init(net, theta, r);
        memcpy(order, d->train, d->ntrain * sizeof *order);
        ocn_net_eval(net, theta, d, d->train, d->ntrain, &res->train_loss[0], &(double){0});
        ocn_net_eval(net, theta, d, d->test, d->ntest, &res->eval_loss[0], &res->eval_acc[0]);
    }
    size_t nb = d->ntrain / B; /* the last partial batch is dropped (the optimized path's B is fixed) */
    for (int e = 1; !rc && !res->diverged && e <= o->epochs; e++) {
        for (size_t i = d->ntrain - 1; i > 0; i--) { /* Fisher–Yates */
            size_t j = gsl_rng_uniform_int(r, i + 1), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        double t0 = now();
        for (size_t b = 0; !rc && b < nb; b++) {
            const size_t *idx = order + b * B;
            if (o->method == OCN_TRAIN_GAME) {
                ocn_error se = {0};
                int s = ocn_train_game_step(g, net, st, d, idx, theta, in, &se);
                if (s == OCN_EUNSUPPORTED || s == OCN_ENUMERIC) { /* the run left the regime the path computes */
                    res->diverged = 1;
                    snprintf(res->why, sizeof res->why, "epoch %d, batch %zu: %s", e, b, se.msg);
                    break;
                }
                if (s) rc = s, *err = se;
            } else {
                ocn_net_grad(net, theta, d, idx, B, g->weight_decay, bs.grad, NULL);
                baseline_step(o, lr, &bs, theta, M);
            }
        }
        res->seconds[e] = now() - t0;
        res->step_seconds += res->seconds[e];
        if (rc || res->diverged) break;
        if (!all_finite(theta, M)) {
            res->diverged = 1;
            snprintf(res->why, sizeof res->why, "epoch %d: a parameter became NaN or Inf", e);
            break;
        }
        double acc_train;
        ocn_net_eval(net, theta, d, d->train, d->ntrain, &res->train_loss[e], &acc_train);
        ocn_net_eval(net, theta, d, d->test, d->ntest, &res->eval_loss[e], &res->eval_acc[e]);
        res->epochs_run = e;
        if (!isfinite(res->train_loss[e]) || !isfinite(res->eval_loss[e])) {
            res->diverged = 1;
            snprintf(res->why, sizeof res->why, "epoch %d: the loss became NaN or Inf", e);
            break;
        }
        if (o->progress) {
            fprintf(o->progress, "epoch %3d/%d  train loss %.4f  eval loss %.4f  eval acc %6.2f%%  %.2fs\n", e, o->epochs,
                    res->train_loss[e], res->eval_loss[e], 100 * res->eval_acc[e], res->seconds[e]);
            fflush(o->progress);
        }
    }
    if (r) gsl_rng_free(r);
    ocn_arrayset_free(in);
    ocn_opt_state_free(st);
    free(bs.buf), free(bs.sq), free(bs.grad), free(order), free(theta);
    ocn_net_free(net);
    if (rc) ocn_train_result_free(res);
    return rc;
}
