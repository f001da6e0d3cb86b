/* SPEC §4 per-sample stage Jacobians and "full" second-order contractions of
 * the reference against central finite differences (FD error model §10:
 * h = u^{1/3}·max(1,|x|); budget (u/h + h²)·scale per entry; ratio < 30). */
#include "util.h"
#include "../reference/ref.h"

#include <float.h>
#include <gsl/gsl_blas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double U = DBL_EPSILON / 2;

typedef void (*vecfn)(const ref_model *m, int t, int p, const double *x, const double *v, double *out);

/* F(x) flattened: the stage map itself */
static void f_stage(const ref_model *m, int t, int p, const double *x, const double *v, double *out)
{
    (void)p, (void)v;
    ref_stage_forward(m, t, m->th[t], x, out);
}
/* F_xᵀ v */
static void f_fxv(const ref_model *m, int t, int p, const double *x, const double *v, double *out)
{
    (void)p;
    const ocn_game *g = m->g;
    gsl_matrix *Fx = gsl_matrix_alloc((size_t)g->n[t + 1], (size_t)g->n[t]);
    ref_jac_x(m, t, x, Fx);
    gsl_vector_const_view vv = gsl_vector_const_view_array(v, (size_t)g->n[t + 1]);
    gsl_vector_view o = gsl_vector_view_array(out, (size_t)g->n[t]);
    gsl_blas_dgemv(CblasTrans, 1.0, Fx, &vv.vector, 0.0, &o.vector);
    gsl_matrix_free(Fx);
}
/* F_θᵀ v */
static void f_fthv(const ref_model *m, int t, int p, const double *x, const double *v, double *out)
{
    const ocn_game *g = m->g;
    int mm = g->stages[t].players[p].m;
    gsl_matrix *Ft = gsl_matrix_alloc((size_t)g->n[t + 1], (size_t)mm);
    ref_jac_theta(m, t, p, x, Ft);
    gsl_vector_const_view vv = gsl_vector_const_view_array(v, (size_t)g->n[t + 1]);
    gsl_vector_view o = gsl_vector_view_array(out, (size_t)mm);
    gsl_blas_dgemv(CblasTrans, 1.0, Ft, &vv.vector, 0.0, &o.vector);
    gsl_matrix_free(Ft);
}

/* Central-difference Jacobian of fn (nout) w.r.t. the vector w (nw) in place;
 * compares with `an` (nout x nw, row-major) and asserts the FD ratio < 30. */
static void fd_compare(const ref_model *m, int t, int p, const double *x, const double *v, vecfn fn, double *w, int nw,
                       int nout, const double *an, const char *what)
{
    double *fp = malloc((size_t)nout * sizeof *fp), *fm = malloc((size_t)nout * sizeof *fm), d2 = 0, b2 = 0, s = 1;
    fn(m, t, p, x, v, fp);
    for (int i = 0; i < nout; i++) s = fmax(s, fabs(fp[i]));
    for (int j = 0; j < nw; j++) {
        double w0 = w[j], h = cbrt(U) * fmax(1.0, fabs(w0));
        w[j] = w0 + h;
        fn(m, t, p, x, v, fp);
        w[j] = w0 - h;
        fn(m, t, p, x, v, fm);
        w[j] = w0;
        for (int i = 0; i < nout; i++) {
            double fd = (fp[i] - fm[i]) / (2 * h), e = an[(size_t)i * nw + j] - fd, bud = (U / h + h * h) * s;
            d2 += e * e;
            b2 += bud * bud;
        }
    }
    double ratio = sqrt(d2) / sqrt(b2);
    cr_assert_lt(ratio, 30.0, "%s at stage %d: FD ratio %g", what, t, ratio);
    free(fp), free(fm);
}

static void setup(ocn_game **g, ocn_arrayset **in, ref_model *m)
{
    *g = tu_game(TU_RESBLOCK);
    *in = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_init_inputs(*g, *in, &e), OCN_OK);
    cr_assert_eq(ref_model_init(*g, *in, m, &e), OCN_OK, "%s", e.msg);
}

Test(jacobian, fx_and_ftheta_match_finite_differences)
{
    ocn_game *g;
    ocn_arrayset *in;
    ref_model m;
    setup(&g, &in, &m);
    double x[16], xn[16];
    memcpy(x, m.x0, (size_t)g->n[0] * sizeof *x);
    for (int t = 0; t < g->T; t++) {
        int n = g->n[t], n1 = g->n[t + 1];
        gsl_matrix *Fx = gsl_matrix_alloc((size_t)n1, (size_t)n);
        ref_jac_x(&m, t, x, Fx);
        fd_compare(&m, t, 0, x, NULL, f_stage, x, n, n1, Fx->data, "F_x");
        gsl_matrix_free(Fx);
        const ocn_player *pl = &g->stages[t].players[0];
        if (pl->m) {
            gsl_matrix *Ft = gsl_matrix_alloc((size_t)n1, (size_t)pl->m);
            ref_jac_theta(&m, t, 0, x, Ft);
            fd_compare(&m, t, 0, x, NULL, f_stage, m.th[t][0], pl->m, n1, Ft->data, "F_theta");
            gsl_matrix_free(Ft);
        }
        ref_stage_forward(&m, t, m.th[t], x, xn);
        memcpy(x, xn, (size_t)n1 * sizeof *x);
    }
    ref_model_free(&m);
    ocn_arrayset_free(in);
    ocn_game_free(g);
}

Test(jacobian, full_second_order_matches_finite_differences)
{
    ocn_game *g;
    ocn_arrayset *in;
    ref_model m;
    setup(&g, &in, &m);
    double x[16], xn[16], v[16];
    memcpy(x, m.x0, (size_t)g->n[0] * sizeof *x);
    for (int t = 0; t < g->T; t++) {
        int n = g->n[t], n1 = g->n[t + 1];
        const ocn_player *pl = &g->stages[t].players[0];
        int mm = pl->m;
        for (int i = 0; i < n1; i++) v[i] = cos(1.0 + 3.0 * i + t);
        gsl_matrix *Hxx = gsl_matrix_calloc((size_t)n, (size_t)n);
        gsl_matrix *Hthx = gsl_matrix_calloc((size_t)(mm ? mm : 1), (size_t)n);
        gsl_matrix *Hthth = gsl_matrix_calloc((size_t)(mm ? mm : 1), (size_t)(mm ? mm : 1));
        ref_second_order_x(&m, t, x, v, Hxx);
        if (mm) ref_second_order_player(&m, t, 0, x, v, Hthx, Hthth);
        fd_compare(&m, t, 0, x, v, f_fxv, x, n, n, Hxx->data, "v·F_xx");
        if (mm) {
            fd_compare(&m, t, 0, x, v, f_fthv, x, n, mm, Hthx->data, "v·F_thx");
            fd_compare(&m, t, 0, x, v, f_fthv, m.th[t][0], mm, mm, Hthth->data, "v·F_thth");
        }
        gsl_matrix_free(Hxx), gsl_matrix_free(Hthx), gsl_matrix_free(Hthth);
        ref_stage_forward(&m, t, m.th[t], x, xn);
        memcpy(x, xn, (size_t)n1 * sizeof *x);
    }
    ref_model_free(&m);
    ocn_arrayset_free(in);
    ocn_game_free(g);
}
