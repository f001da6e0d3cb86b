/* SPEC §1 terminal payoff φ_n (ce / mse) with its gradient and Hessian;
 * §5 `terminal`: exact ∇²φ or outer ∇φ∇φᵀ (DDPNOpt Prop. 3). */
#include "ref.h"

#include <math.h>
#include <stdlib.h>

static double lane_terminal(const ref_model *m, int lane, int sample, const double *xT, ocn_terminal terminal,
                            double *grad, gsl_matrix *hess)
{
    const ocn_game *g = m->g;
    int T = g->T, d = 0;
    for (int i = 0; i < g->lane_nout[lane]; i++) d += g->block_dim[T][g->lane_outputs[lane][i]];
    int *idx = malloc((size_t)d * sizeof *idx), *yi = malloc((size_t)d * sizeof *yi);
    double *o = malloc((size_t)d * sizeof *o), *go = malloc((size_t)d * sizeof *go);
    for (int i = 0, k = 0; i < g->lane_nout[lane]; i++) {
        int b = g->lane_outputs[lane][i], ypos = 0; /* mse: where block b sits in `outputs` (the layout of y) */
        for (int j = 0; j < g->noutputs && g->outputs[j] != b; j++) ypos += g->block_dim[T][g->outputs[j]];
        for (int j = 0; j < g->block_dim[T][b]; j++, k++) idx[k] = g->block_off[T][b] + j, yi[k] = ypos + j;
    }
    for (int k = 0; k < d; k++) o[k] = xT[idx[k]];
    double phi = 0;
    if (grad)
        for (int k = 0; k < g->n[T]; k++) grad[k] = 0;
    if (hess) gsl_matrix_set_zero(hess);
    if (g->loss == OCN_LOSS_CE) {
        int y = (int)m->y[sample];
        double mx = o[0], s = 0;
        for (int k = 1; k < d; k++) mx = o[k] > mx ? o[k] : mx;
        for (int k = 0; k < d; k++) s += exp(o[k] - mx);
        phi = mx + log(s) - o[y];
        for (int k = 0; k < d; k++) go[k] = exp(o[k] - mx) / s; /* p */
        if (hess && terminal == OCN_TERMINAL_EXACT)
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++)
                    gsl_matrix_set(hess, (size_t)idx[a], (size_t)idx[b], (a == b ? go[a] : 0.0) - go[a] * go[b]);
        go[y] -= 1.0;
    } else {
        const double *yt = m->y + (size_t)sample * (size_t)g->out_dim;
        for (int k = 0; k < d; k++) {
            go[k] = o[k] - yt[yi[k]];
            phi += 0.5 * go[k] * go[k];
        }
        if (hess && terminal == OCN_TERMINAL_EXACT)
            for (int a = 0; a < d; a++) gsl_matrix_set(hess, (size_t)idx[a], (size_t)idx[a], 1.0);
    }
    if (hess && terminal == OCN_TERMINAL_OUTER)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) gsl_matrix_set(hess, (size_t)idx[a], (size_t)idx[b], go[a] * go[b]);
    if (grad)
        for (int k = 0; k < d; k++) grad[idx[k]] = go[k];
    free(idx);
    free(yi);
    free(o);
    free(go);
    return phi;
}

/* lane < 0: the network loss φ (GR's one copy, W_T = φ, §4): φ itself for a
 * shared task, Σ_n φ_n for a separable game; `outer` is ∇φ∇φᵀ of that sum. */
double ref_terminal(const ref_model *m, int lane, int sample, const double *xT, ocn_terminal terminal,
                    double *grad, gsl_matrix *hess)
{
    const ocn_game *g = m->g;
    if (lane >= 0 || !g->separable) return lane_terminal(m, lane < 0 ? 0 : lane, sample, xT, terminal, grad, hess);
    size_t nT = (size_t)g->n[g->T];
    double phi = 0, *gl = malloc(nT * sizeof *gl);
    gsl_matrix *hl = hess ? gsl_matrix_alloc(nT, nT) : NULL;
    if (grad)
        for (size_t k = 0; k < nT; k++) grad[k] = 0;
    if (hess) gsl_matrix_set_zero(hess);
    for (int n = 0; n < g->nlanes; n++) {
        phi += lane_terminal(m, n, sample, xT, OCN_TERMINAL_EXACT, gl, hl);
        if (grad)
            for (size_t k = 0; k < nT; k++) grad[k] += gl[k];
        if (hess && terminal == OCN_TERMINAL_EXACT) gsl_matrix_add(hess, hl);
    }
    if (hess && terminal == OCN_TERMINAL_OUTER) {
        double *gt = grad ? grad : gl;
        if (!grad) { /* recompute the total gradient */
            for (size_t k = 0; k < nT; k++) gt[k] = 0;
            for (int n = 0; n < g->nlanes; n++) {
                double *tmp = malloc(nT * sizeof *tmp);
                lane_terminal(m, n, sample, xT, OCN_TERMINAL_EXACT, tmp, NULL);
                for (size_t k = 0; k < nT; k++) gt[k] += tmp[k];
                free(tmp);
            }
        }
        for (size_t a = 0; a < nT; a++)
            for (size_t b = 0; b < nT; b++) gsl_matrix_set(hess, a, b, gt[a] * gt[b]);
    }
    free(gl);
    if (hl) gsl_matrix_free(hl);
    return phi;
}
