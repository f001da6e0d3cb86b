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
/* The same on two variants that differ only in the value mode. */
int check_ref_value_modes(check_ctx *c, ocn_value_mode a, ocn_arrayset **ra, ocn_value_mode b, ocn_arrayset **rb);
/* §10 row comparing x against ref with amplification cnd. */
void check_row(check_ctx *c, const char *id, const char *quantity, const double *x, const double *ref, size_t n, double cnd);
/* §10 FD rows: err = ‖x − fd‖, ratio against the FD error model budget. */
void check_fd_row(check_ctx *c, const char *id, const char *quantity, const double *x, const double *fd, size_t n,
                  double budget);
double check_problem_size(const ocn_game *g);
/* Pseudo-inverse of a symmetric matrix by eigendecomposition (independent of
 * the reference's SVD), same §5 rcond rule.  A, out: n x n row-major. */
int check_sym_pinv(const double *A, int n, double *out, double *cond, ocn_error *err);
/* Same, also returning the numerical rank (eigenvalues kept); eigenvalues
 * below n·ε·max(|λ|max, scale) are dropped, so a matrix formed as a difference
 * of terms of size `scale` is judged against them (0: against itself). */
int check_sym_pinv_rank(const double *A, int n, double scale, double *out, double *cond, int *rank, ocn_error *err);
/* KFAC on the harness side: Ai = (mean a aᵀ + √γI)^†, Gi = (mean g gᵀ + √γI)^†
 * from per-sample a (B x na) and g (B x ng); cond = cond(A)·cond(G). */
int check_kfac_pinv(const double *av, int na, const double *gv, int ng, int B, double gamma, double *Ai, double *Gi,
                    double *cond, ocn_error *err);
/* out = η vec(Gi mat(q) Ai), mat(q) the ng x na column-major reshaping (§2). */
void check_kfac_apply(const double *Ai, int na, const double *Gi, int ng, double eta, const double *q, double *out);
/* Small dense helpers (row-major): C = A B (r x k)(k x c). */
void check_matmul(const double *A, const double *B, double *C, int r, int k, int c);
/* Copies block [r0, r0+nr) x [c0, c0+nc) of an (n x n) row-major matrix. */
double *check_block(const double *M, int n, int r0, int nr, int c0, int nc);
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
int check_t6c(check_ctx *c);
int check_t6a_local(check_ctx *c);
int check_t6a_separable(check_ctx *c);
int check_t6a_coupled(check_ctx *c);
int check_schur(check_ctx *c);
int check_kfac_t3(check_ctx *c);
int check_c7(check_ctx *c);
int check_e4(check_ctx *c);
int ocn_check_c7_applies(const ocn_game *g);
int check_gtp2(check_ctx *c);
/* §14 (harness/check_conv.c) */
int check_conv_dense(check_ctx *c);
int ocn_check_conv_dense_applies(const ocn_game *g);
/* F_θᵀ ct of a conv player for one sample: vec(Σ_p g_p a_pᵀ) (out: m), g = gh (C_o·P) */
void check_conv_theta_vjp(const ocn_player *pl, const double *z, const double *gh, double *out);
int check_conv_kfc_pinv(const ocn_player *pl, const double *zs, const double *gs, int B, double gamma, double *Ai,
                        double *Gi, double *cond, ocn_error *err);
int check_traj(check_ctx *c);
int ocn_check_gtp2_applies(const ocn_game *g);

#endif
