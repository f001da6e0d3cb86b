/* SPEC §1 terminal payoff φ_n (ce / mse) with its gradient and Hessian;
 * §5 `terminal`: exact ∇²φ or outer ∇φ∇φᵀ (DDPNOpt Prop. 3).
 * Allocation-free (issue 10): vectors live in the model's scratch. */
#include "ref.h"

#include <math.h>

/* acc = 0: grad (n_T) and hess are overwritten (zero outside the lane's
 * outputs); acc = 1: the lane's gradient and exact Hessian are added to them
 * (the separable sum below; adding the zeros the overwrite form would hold
 * changes no bit: the sums start at +0 and never become −0). */
static double lane_terminal(const ref_model *m, int lane, int sample, const double *xT, ocn_terminal terminal,
                            double *grad, gsl_matrix *hess, int acc)
{
    const ocn_game *g = m->g;
    int T = g->T, d = 0;
    for (int i = 0; i < g->lane_nout[lane]; i++) d += g->block_dim[T][g->lane_outputs[lane][i]];
    int *idx = m->iws, *yi = m->iws + m->nmax;           /* d <= n_T <= nmax */
    double *o = m->ws, *go = m->ws + m->nmax;            /* regions 0 and 1 */
    for (int i = 0, k = 0; i < g->lane_nout[lane]; i++) {
        int b = g->lane_outputs[lane][i], ypos = 0; /* mse: where block b sits in `outputs` (the layout of y) */
        for (int j = 0; j < g->noutputs && g->outputs[j] != b; j++) ypos += g->block_dim[T][g->outputs[j]];
        for (int j = 0; j < g->block_dim[T][b]; j++, k++) idx[k] = g->block_off[T][b] + j, yi[k] = ypos + j;
    }
    for (int k = 0; k < d; k++) o[k] = xT[idx[k]];
    double phi = 0;
    if (grad && !acc)
        for (int k = 0; k < g->n[T]; k++) grad[k] = 0;
    if (hess && !acc) gsl_matrix_set_zero(hess);
    if (g->loss == OCN_LOSS_CE) {
        int y = (int)m->y[sample];
        double mx = o[0], s = 0;
        for (int k = 1; k < d; k++) mx = o[k] > mx ? o[k] : mx;
        for (int k = 0; k < d; k++) s += exp(o[k] - mx);
        phi = mx + log(s) - o[y];
        for (int k = 0; k < d; k++) go[k] = exp(o[k] - mx) / s; /* p */
        /* 1 − p_k without cancellation where p_k ≈ 1 (docs/decisions.md
         * "Softmax derivatives"): Σ_{j≠k} p_j for the one k with p_k ≥ ½ */
        double *q1 = m->ws + 3 * m->nmax;                 /* region 3: 1 − p */
        for (int k = 0; k < d; k++) {
            q1[k] = 1.0 - go[k];
            if (go[k] >= 0.5) {
                q1[k] = 0;
                for (int j = 0; j < d; j++) q1[k] += j == k ? 0.0 : go[j];
            }
        }
        if (hess && terminal == OCN_TERMINAL_EXACT)
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) {
                    double h = a == b ? go[a] * q1[a] : -go[a] * go[b];
                    if (acc) *gsl_matrix_ptr(hess, (size_t)idx[a], (size_t)idx[b]) += h;
                    else gsl_matrix_set(hess, (size_t)idx[a], (size_t)idx[b], h);
                }
        go[y] = -q1[y];
    } else {
        const double *yt = m->y + (size_t)sample * (size_t)g->out_dim;
        for (int k = 0; k < d; k++) {
            go[k] = o[k] - yt[yi[k]];
            phi += 0.5 * go[k] * go[k];
        }
        if (hess && terminal == OCN_TERMINAL_EXACT)
            for (int a = 0; a < d; a++) {
                if (acc) *gsl_matrix_ptr(hess, (size_t)idx[a], (size_t)idx[a]) += 1.0;
                else gsl_matrix_set(hess, (size_t)idx[a], (size_t)idx[a], 1.0);
            }
    }
    if (hess && terminal == OCN_TERMINAL_OUTER) /* never with acc (the sum's outer form is formed below) */
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) gsl_matrix_set(hess, (size_t)idx[a], (size_t)idx[b], go[a] * go[b]);
    if (grad)
        for (int k = 0; k < d; k++) {
            if (acc) grad[idx[k]] += go[k];
            else grad[idx[k]] = go[k];
        }
    return phi;
}

/* lane < 0: the network loss φ (GR's one copy, W_T = φ, §4): φ itself for a
 * shared task, Σ_n φ_n for a separable game; `outer` is ∇φ∇φᵀ of that sum. */
double ref_terminal(const ref_model *m, int lane, int sample, const double *xT, ocn_terminal terminal,
                    double *grad, gsl_matrix *hess)
{
    const ocn_game *g = m->g;
    if (lane >= 0 || !g->separable) return lane_terminal(m, lane < 0 ? 0 : lane, sample, xT, terminal, grad, hess, 0);
    size_t nT = (size_t)g->n[g->T];
    double phi = 0, *gt = grad;
    if (hess && terminal == OCN_TERMINAL_OUTER && !gt) gt = m->ws + 2 * m->nmax; /* region 2: the total gradient */
    if (gt)
        for (size_t k = 0; k < nT; k++) gt[k] = 0;
    if (hess) gsl_matrix_set_zero(hess);
    for (int n = 0; n < g->nlanes; n++)
        phi += lane_terminal(m, n, sample, xT, OCN_TERMINAL_EXACT, gt, terminal == OCN_TERMINAL_EXACT ? hess : NULL, 1);
    if (hess && terminal == OCN_TERMINAL_OUTER)
        for (size_t a = 0; a < nT; a++)
            for (size_t b = 0; b < nT; b++) gsl_matrix_set(hess, a, b, gt[a] * gt[b]);
    return phi;
}
