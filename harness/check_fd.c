/* GRAD and P2 (SPEC §9): back-propagation and the full-dynamics Bellman
 * quantities against central finite differences.  FD error model (§10):
 * step h = u^{1/3}·max(1,|x|); per entry, rounding u·S0/h plus truncation
 * h²·S, with S0 the magnitude of the differenced function and S = max(S0, 1).
 * The ratio is ‖x − fd‖ / ‖budget‖. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_MAX_COORDS 48   /* columns sampled (strided) per parameter block */
#define FD_MAX_SAMPLES 3

static ocn_arrayset *clone_inputs(const ocn_arrayset *in)
{
    ocn_arrayset *s = ocn_arrayset_new();
    for (int i = 0; s && i < in->count; i++) {
        ocn_array *a = ocn_arrayset_add(s, in->a[i].name, in->a[i].ndim, in->a[i].shape);
        if (!a) {
            ocn_arrayset_free(s);
            return NULL;
        }
        memcpy(a->data, in->a[i].data, a->size * sizeof(double));
    }
    return s;
}

static int stride_of(int m) { return m <= FD_MAX_COORDS ? 1 : (m + FD_MAX_COORDS - 1) / FD_MAX_COORDS; }

int check_grad(check_ctx *c)
{
    const ocn_game *g = c->g;
    int lanes = g->separable ? g->nlanes : 1, rc = OCN_OK;
    for (int lane = 0; lane < lanes && !rc; lane++) {
        ocn_bp *bp = NULL;
        if ((rc = ocn_bp_run_fault(g, c->in, lane, c->o ? c->o->fault : OCN_FAULT_NONE, &bp, c->err))) break;
        double S = fmax(fabs(ocn_bp_loss(bp)), 1.0);
        for (int t = 0; t < g->T && !rc; t++)
            for (int p = 0; p < g->stages[t].nplayers && !rc; p++) {
                const ocn_player *pl = &g->stages[t].players[p];
                if (!pl->m) continue;
                char nm[64];
                snprintf(nm, sizeof nm, "theta_t%d_n%d", t, pl->lane);
                const double *th0 = ocn_arrayset_find(c->in, nm)->data;
                double *th = malloc((size_t)pl->m * sizeof *th), *fd = calloc((size_t)pl->m, sizeof *fd),
                       *an = calloc((size_t)pl->m, sizeof *an), b2 = 0;
                memcpy(th, th0, (size_t)pl->m * sizeof *th);
                int cnt = 0;
                for (int j = 0; j < pl->m && !rc; j += stride_of(pl->m), cnt++) {
                    double h = check_fd_step(th0[j]), lp, lm;
                    th[j] = th0[j] + h;
                    rc = ocn_bp_loss_at(g, c->in, lane, t, p, th, &lp, c->err);
                    th[j] = th0[j] - h;
                    if (!rc) rc = ocn_bp_loss_at(g, c->in, lane, t, p, th, &lm, c->err);
                    th[j] = th0[j];
                    fd[cnt] = (lp - lm) / (2 * h);
                    an[cnt] = ocn_bp_grad(bp, t, p)[j];
                    double e = OCN_U64 * S / h + h * h * S;
                    b2 += e * e;
                }
                snprintf(nm, sizeof nm, "dL/dtheta_t%d_n%d", t, pl->lane);
                if (!rc) check_fd_row(c, "GRAD", nm, an, fd, (size_t)cnt, sqrt(b2));
                free(th), free(fd), free(an);
            }
        ocn_bp_free(bp);
    }
    return rc;
}

/* P2: V_x = ∇_x J, V_xx = ∇²_x J (per sample), Q_θθ = ∇²_θ L (layer block),
 * with Q_θx := 0 and full dynamics (DDPNOpt Prop. 2). */
static int p2_values(check_ctx *c, const ocn_arrayset *r, int t, int lane)
{
    const ocn_game *g = c->g;
    int n = g->n[t], rc = OCN_OK, ns = g->batch < FD_MAX_SAMPLES ? g->batch : FD_MAX_SAMPLES;
    char nm[64];
    snprintf(nm, sizeof nm, "Vx_t%d_n%d", t, lane);
    const ocn_array *Vx = ocn_arrayset_find(r, nm);
    snprintf(nm, sizeof nm, "Vxx_t%d_n%d", t, lane);
    const ocn_array *Vxx = ocn_arrayset_find(r, nm);
    snprintf(nm, sizeof nm, "x_t%d", t);
    const ocn_array *X = ocn_arrayset_find(r, nm);
    double *gfd = malloc((size_t)ns * n * sizeof *gfd), *hfd = malloc((size_t)ns * n * n * sizeof *hfd);
    double *x = malloc((size_t)n * sizeof *x), *gp = malloc((size_t)n * sizeof *gp), *gm = malloc((size_t)n * sizeof *gm);
    double bg = 0, bh = 0;
    for (int i = 0; i < ns && !rc; i++) {
        memcpy(x, X->data + (size_t)i * n, (size_t)n * sizeof *x);
        double J0;
        rc = ocn_bp_costtogo(g, c->in, lane, t, i, x, &J0, gp, c->err);
        double gmax = 0;
        for (int j = 0; j < n; j++) gmax = fmax(gmax, fabs(gp[j]));
        double S0 = fmax(fabs(J0), 1.0), S1 = fmax(gmax, 1.0);
        for (int j = 0; j < n && !rc; j++) {
            double x0 = x[j], h = check_fd_step(x0), Jp, Jm;
            x[j] = x0 + h;
            rc = ocn_bp_costtogo(g, c->in, lane, t, i, x, &Jp, gp, c->err);
            x[j] = x0 - h;
            if (!rc) rc = ocn_bp_costtogo(g, c->in, lane, t, i, x, &Jm, gm, c->err);
            x[j] = x0;
            gfd[(size_t)i * n + j] = (Jp - Jm) / (2 * h);
            for (int k = 0; k < n; k++) hfd[((size_t)i * n + k) * n + j] = (gp[k] - gm[k]) / (2 * h);
            double e = OCN_U64 * S0 / h + h * h * S0;
            bg += e * e;
            e = OCN_U64 * S1 / h + h * h * S1;
            bh += e * e * n;
        }
    }
    if (!rc) {
        snprintf(nm, sizeof nm, "Vx_t%d_n%d", t, lane);
        check_fd_row(c, "P2", nm, Vx->data, gfd, (size_t)ns * n, sqrt(bg));
        snprintf(nm, sizeof nm, "Vxx_t%d_n%d", t, lane);
        check_fd_row(c, "P2", nm, Vxx->data, hfd, (size_t)ns * n * n, sqrt(bh));
    }
    free(gfd), free(hfd), free(x), free(gp), free(gm);
    return rc;
}

static int p2_qthth(check_ctx *c, const ocn_arrayset *r, int t, int p)
{
    const ocn_game *g = c->g;
    const ocn_player *pl = &g->stages[t].players[p];
    int m = pl->m, lane = pl->lane, rc = OCN_OK, st = stride_of(m), cnt = 0;
    char nm[64];
    snprintf(nm, sizeof nm, "Qthth_t%d_n%d", t, lane);
    const ocn_array *Q = ocn_arrayset_find(r, nm);
    ocn_arrayset *in = clone_inputs(c->in);
    snprintf(nm, sizeof nm, "theta_t%d_n%d", t, lane);
    double *th = ocn_arrayset_find(in, nm)->data;
    double *an = malloc((size_t)m * ((size_t)m / (size_t)st + 1) * sizeof *an), *fd = malloc((size_t)m * ((size_t)m / (size_t)st + 1) * sizeof *fd);
    double b2 = 0;
    for (int j = 0; j < m && !rc; j += st, cnt++) {
        double t0 = th[j], h = check_fd_step(t0);
        ocn_bp *bp = NULL, *bm = NULL;
        th[j] = t0 + h;
        rc = ocn_bp_run(g, in, lane, &bp, c->err);
        th[j] = t0 - h;
        if (!rc) rc = ocn_bp_run(g, in, lane, &bm, c->err);
        th[j] = t0;
        if (!rc) {
            double gmax = 0;
            for (int k = 0; k < m; k++) {
                fd[(size_t)cnt * m + k] = (ocn_bp_grad(bp, t, p)[k] - ocn_bp_grad(bm, t, p)[k]) / (2 * h);
                an[(size_t)cnt * m + k] = Q->data[(size_t)k * m + j];
                gmax = fmax(gmax, fabs(ocn_bp_grad(bp, t, p)[k]));
            }
            double S = fmax(gmax, 1.0), e = OCN_U64 * S / h + h * h * S;
            b2 += e * e * m;
        }
        ocn_bp_free(bp), ocn_bp_free(bm);
    }
    snprintf(nm, sizeof nm, "Qthth_t%d_n%d", t, lane);
    if (!rc) check_fd_row(c, "P2", nm, an, fd, (size_t)cnt * m, sqrt(b2));
    free(an), free(fd);
    ocn_arrayset_free(in);
    return rc;
}

int check_p2(check_ctx *c)
{
    const ocn_game *g = c->g;
    ocn_optimizer opt = g->opt;
    opt.dynamics = OCN_DYN_FULL;
    opt.zero = OCN_ZERO_QTHX;
    opt.terminal = OCN_TERMINAL_EXACT;
    ocn_arrayset *r = NULL;
    int rc = check_ref_variant(c, &opt, &r);
    for (int t = 0; t < g->T && !rc; t++)
        for (int lane = 0; lane < g->nlanes && !rc; lane++) {
            rc = p2_values(c, r, t, lane);
            const ocn_player *pl = ocn_game_lane_player(g, t, lane);
            if (!rc && pl && pl->m) rc = p2_qthth(c, r, t, (int)(pl - g->stages[t].players));
        }
    ocn_arrayset_free(r);
    return rc;
}
