/* Helpers shared by the §9 checks. */
#include "check.h"

#include <float.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdlib.h>

int check_ref_variant(check_ctx *c, const ocn_optimizer *opt, ocn_arrayset **out)
{
    *out = ocn_arrayset_new();
    /* §10 rev. 2: a check measures c for its variant with R = 2 */
    ocn_ref_opts o = {.fault = c->o ? c->o->fault : OCN_FAULT_NONE, .measure_runs = OCN_CHECK_RUNS,
                      .max_memory = c->o ? c->o->max_memory : 0};
    int rc = *out ? ocn_ref_run(c->g, opt, c->in, &o, *out, c->err) : ocn_fail(c->err, OCN_ENOMEM, "out of memory");
    if (rc) {
        ocn_arrayset_free(*out);
        *out = NULL;
    }
    return rc;
}

int check_ref_value_modes(check_ctx *c, ocn_value_mode a, ocn_arrayset **ra, ocn_value_mode b, ocn_arrayset **rb)
{
    ocn_optimizer oa = c->g->opt, ob = c->g->opt;
    oa.value = a, ob.value = b;
    *rb = NULL;
    int rc = check_ref_variant(c, &oa, ra);
    if (!rc) rc = check_ref_variant(c, &ob, rb);
    return rc;
}

double check_norm(const double *x, size_t n)
{
    long double s = 0;
    for (size_t i = 0; i < n; i++) s += (long double)x[i] * x[i];
    return (double)sqrtl(s);
}

double check_problem_size(const ocn_game *g)
{
    int nmax = 0, mmax = 0;
    for (int t = 0; t <= g->T; t++) nmax = g->n[t] > nmax ? g->n[t] : nmax;
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            mmax = g->stages[t].players[p].m > mmax ? g->stages[t].players[p].m : mmax;
    return (double)g->batch * nmax + mmax;
}

void check_row(check_ctx *c, const char *id, const char *quantity, const double *x, const double *ref, size_t n, double cnd)
{
    ocn_report_add_c(c->rep, id, c->name, quantity, ocn_rel_err(x, ref, n), OCN_U64, cnd);
}

void check_fd_row(check_ctx *c, const char *id, const char *quantity, const double *x, const double *fd, size_t n,
                  double budget)
{
    double d = 0, r = check_norm(fd, n);
    for (size_t i = 0; i < n; i++) d += (x[i] - fd[i]) * (x[i] - fd[i]);
    d = sqrt(d);
    double e = d / fmax(r, DBL_MIN);
    ocn_report_add(c->rep, id, c->name, quantity, e, isfinite(d) ? d / fmax(budget, DBL_MIN) : INFINITY);
}

double check_fd_step(double x) { return cbrt(OCN_U64) * fmax(1.0, fabs(x)); }

int check_sym_pinv(const double *A, int n, double *out, double *cond, ocn_error *err)
{
    return check_sym_pinv_rank(A, n, 0.0, out, cond, NULL, err);
}

int check_sym_pinv_rank(const double *A, int n, double scale, double *out, double *cond, int *rank, ocn_error *err)
{
    gsl_matrix *M = gsl_matrix_alloc((size_t)n, (size_t)n), *V = gsl_matrix_alloc((size_t)n, (size_t)n);
    gsl_vector *ev = gsl_vector_alloc((size_t)n);
    gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc((size_t)n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) gsl_matrix_set(M, (size_t)i, (size_t)j, 0.5 * (A[i * n + j] + A[j * n + i]));
    int st = gsl_eigen_symmv(M, ev, V, w);
    if (!st) {
        double mx = 0;
        for (int k = 0; k < n; k++) mx = fmax(mx, fabs(gsl_vector_get(ev, (size_t)k)));
        /* §5 rule relative to the matrix, or to the scale it was formed at
         * (a difference that is zero in exact arithmetic is rounding noise) */
        double tol = n * DBL_EPSILON * fmax(mx, scale), mn = mx;
        int rk = 0;
        for (int i = 0; i < n * n; i++) out[i] = 0;
        for (int k = 0; k < n; k++) {
            double l = gsl_vector_get(ev, (size_t)k);
            if (!(fabs(l) > tol)) continue;
            rk++;
            mn = fmin(mn, fabs(l));
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    out[i * n + j] += gsl_matrix_get(V, (size_t)i, (size_t)k) * gsl_matrix_get(V, (size_t)j, (size_t)k) / l;
        }
        *cond = mx > 0 ? mx / mn : 1.0;
        if (rank) *rank = rk;
    }
    gsl_eigen_symmv_free(w);
    gsl_vector_free(ev);
    gsl_matrix_free(M), gsl_matrix_free(V);
    if (st) return ocn_fail(err, OCN_ENUMERIC, "symmetric eigendecomposition failed (%s)", gsl_strerror(st));
    return OCN_OK;
}

void check_matmul(const double *A, const double *B, double *C, int r, int k, int c)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) {
            double s = 0;
            for (int l = 0; l < k; l++) s += A[(size_t)i * k + l] * B[(size_t)l * c + j];
            C[(size_t)i * c + j] = s;
        }
}

double *check_block(const double *M, int n, int r0, int nr, int c0, int nc)
{
    double *b = malloc((size_t)(nr ? nr : 1) * (size_t)(nc ? nc : 1) * sizeof *b);
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nc; j++) b[(size_t)i * nc + j] = M[(size_t)(r0 + i) * n + c0 + j];
    return b;
}

int check_kfac_pinv(const double *av, int na, const double *gv, int ng, int B, double gamma, double *Ai, double *Gi,
                    double *cond, ocn_error *err)
{
    double *A = calloc((size_t)na * na, sizeof *A), *G = calloc((size_t)ng * ng, sizeof *G), ca = 1, cg = 1;
    for (int i = 0; i < B; i++) {
        for (int a = 0; a < na; a++)
            for (int b = 0; b < na; b++) A[a * na + b] += av[i * na + a] * av[i * na + b] / B;
        for (int a = 0; a < ng; a++)
            for (int b = 0; b < ng; b++) G[a * ng + b] += gv[i * ng + a] * gv[i * ng + b] / B;
    }
    for (int a = 0; a < na; a++) A[a * na + a] += sqrt(gamma);
    for (int a = 0; a < ng; a++) G[a * ng + a] += sqrt(gamma);
    int rc = check_sym_pinv(A, na, Ai, &ca, err);
    if (!rc) rc = check_sym_pinv(G, ng, Gi, &cg, err);
    *cond = ca * cg;
    free(A), free(G);
    return rc;
}

void check_kfac_apply(const double *Ai, int na, const double *Gi, int ng, double eta, const double *q, double *out)
{
    for (int r = 0; r < ng; r++)
        for (int col = 0; col < na; col++) {
            double s = 0;
            for (int a = 0; a < ng; a++)
                for (int b = 0; b < na; b++) s += Gi[r * ng + a] * q[(size_t)b * ng + a] * Ai[b * na + col];
            out[(size_t)col * ng + r] = eta * s;
        }
}
