/* Internal: shared context of the §9 checks (harness/checks.c is the table). */
#ifndef OCN_HARNESS_CHECK_H
#define OCN_HARNESS_CHECK_H

#include "ocn/harness.h"

typedef struct {
    const ocn_fixture *f;
    const ocn_game *g;
    const ocn_arrayset *in;   /* the fixture's stored inputs */
    const ocn_ref_opts *o;
    ocn_report *rep;
    ocn_error *err;
    const char *name;         /* fixture name in rows */
} check_ctx;

/* Runs the reference on a variant of the fixture's optimizer. */
int check_ref_variant(check_ctx *c, const ocn_optimizer *opt, ocn_arrayset **out);
/* §10 row comparing x against ref with amplification cnd. */
void check_row(check_ctx *c, const char *id, const char *quantity, const double *x, const double *ref, size_t n, double cnd);
/* §10 FD rows: err = ‖x − fd‖, ratio against the FD error model budget. */
void check_fd_row(check_ctx *c, const char *id, const char *quantity, const double *x, const double *fd, size_t n,
                  double budget);
double check_problem_size(const ocn_game *g);
/* Pseudo-inverse of a symmetric matrix by eigendecomposition (independent of
 * the reference's SVD), same §5 rcond rule.  A, out: n x n row-major. */
int check_sym_pinv(const double *A, int n, double *out, double *cond, ocn_error *err);
double check_norm(const double *x, size_t n);
/* The §10 FD step and error model (SPEC §10: h = u^{1/3}·max(1,|x|)). */
double check_fd_step(double x);

int check_grad(check_ctx *c);
int check_p2(check_ctx *c);
int check_t6b(check_ctx *c);
int check_t6base(check_ctx *c);
int check_p3(check_ctx *c);
int check_lqr(check_ctx *c);
int check_batch(check_ctx *c);

#endif
