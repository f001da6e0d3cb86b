/* Internal header of the dense reference. */
#ifndef OCN_REF_INTERNAL_H
#define OCN_REF_INTERNAL_H

#include <gsl/gsl_matrix.h>
#include "ocn/reference.h"
#include "ocn/tolerance.h"

/* Parameters and data of one step, borrowed from the inputs arrayset
 * (theta copied: the update pass writes new ones). */
/* §13 carried optimizer state of one expansion (FNE: a lane's player; GR:
 * the stage's joint parameter), kept between the steps of a trajectory
 * (reference/trajectory.c).  Allocated on first use (`init` = 0 before). */
typedef struct {
    int init;                  /* the averages hold a step's statistics */
    int np, coop;              /* players; coop: joint A_ww, G_ww of §6 are averaged */
    int p[OCN_MAX_PLAYERS], moff[OCN_MAX_PLAYERS + 1], aoff[OCN_MAX_PLAYERS + 1], goff[OCN_MAX_PLAYERS + 1];
    gsl_matrix *A, *G;         /* kfac/coop-kfac: EMA of the embedded factors (undamped) */
    gsl_matrix *Ai, *Gi;       /* pseudo-inverses of the damped averages at the last refresh */
    gsl_vector *v;             /* rmsprop: EMA of mean_i Q_θ^(i) ⊙ Q_θ^(i) (m) */
} ref_curv_state;

/* §13 trajectory context of one step: state per stage and expansion index
 * (FNE lane, GR 0), the step number and the optimizer's §13 fields. */
typedef struct {
    ref_curv_state **st;       /* st[t][n] */
    int step;                  /* s */
    int fault;                 /* ocn_fault of the run (decay-drop, refresh-shift) */
} ref_traj;

void ref_curv_state_free(ref_curv_state *s);

typedef struct {
    const ocn_game *g;
    int B;
    double ***th;          /* th[t][p]: player parameters, NULL for act */
    const double ***wfix;  /* wfix[t][p]: bias players' fixed W (out x in), else NULL */
    const double *x0;      /* B x n_0 */
    const double *y;       /* ce: B labels; mse: B x out_dim */
    ocn_perturb *pert;     /* §10 perturbation run, NULL on the nominal run */
    const ref_traj *traj;  /* §13 state of a trajectory step, NULL: one step (§1–§8) */
    /* Scratch of the leaf kernels below (issue 10: they allocate nothing, so
     * they cannot fail): ws holds 4·nmax doubles, iws 2·nmax ints, nmax the
     * largest state dimension.  Region 0 (ws[0, nmax)) and 1 are used by
     * ref_stage_forward, the Jacobians, the terminal and backprop's VJP;
     * region 2 only by ref_terminal's lane sum, region 3 by the terminal's
     * 1 − p (ce), region 4 (ws + 4·nmax, c·k² + 1 doubles of the widest
     * conv player) by the conv patch (§14).  Single-threaded per model. */
    double *ws;
    int *iws;
    size_t nmax;
} ref_model;

int ref_model_init(const ocn_game *g, const ocn_arrayset *in, ref_model *m, ocn_error *err);
void ref_model_free(ref_model *m);

/* §2 activations */
double ref_act(ocn_act a, double h);
double ref_dact(ocn_act a, double h);
double ref_ddact(ocn_act a, double h);

/* W(r, c) of a dense/bias player: theta in vec([W b]) column-major order (§2). */
double ref_weight(const ocn_player *pl, const double *theta, const double *wfix, int r, int c);
/* §14 conv players (reference/conv.c). */
int ref_conv_src(const ocn_conv *q, int p, int col);
double ref_conv_weight(const ocn_player *pl, const double *theta, int r, int c);
void ref_conv_patch(const ocn_conv *q, const double *z, int p, double *a);
void ref_conv_pre(const ocn_player *pl, const double *theta, const double *z, double *h);
void ref_conv_kfc(const ocn_player *pl, const double *z, const double *gh, int B, double *a, double *A, size_t lda,
                  double *G, size_t ldg);
void ref_conv_theta_vjp(const ocn_player *pl, const double *z, const double *gh, double *a, double *gs);
/* Pre-activation h (out_dim) of player p at stage t for stage input x (n_t). */
void ref_player_pre(const ocn_game *g, int t, const ocn_player *pl, const double *theta,
                    const double *wfix, const double *x, double *h);
/* x_{t+1} = F_t(x_t) with stage parameters th (th[p]); §3 sum of writers + carries. */
void ref_stage_forward(const ref_model *m, int t, double *const *th, const double *x, double *xn);

/* §4 per-sample stage Jacobians (dense). Fx: n' x n.  Fth: n' x m of player p. */
void ref_jac_x(const ref_model *m, int t, const double *x, gsl_matrix *Fx);
void ref_jac_theta(const ref_model *m, int t, int p, const double *x, gsl_matrix *Fth);
/* §4 "full": adds V_x'·F_xx (all players) to Hxx (n x n); for player p,
 * adds V_x'·F_θx (m_p x n) to Hthx and V_x'·F_θθ (m_p x m_p) to Hthth. */
void ref_second_order_x(const ref_model *m, int t, const double *x, const double *v, gsl_matrix *Hxx);
void ref_second_order_player(const ref_model *m, int t, int p, const double *x, const double *v, gsl_matrix *Hthx,
                             gsl_matrix *Hthth);

/* §1 terminal payoff of lane n for one sample: value, gradient (n_T) and
 * Hessian (n_T x n_T, exact or outer per `terminal`) in state coordinates. */
double ref_terminal(const ref_model *m, int lane, int sample, const double *xT, ocn_terminal terminal,
                    double *grad, gsl_matrix *hess);

/* §5/§6: M^† (m x m) of a (joint) parameter of np players; θ blocks at
 * moff[u] of size mdim[u].  A, G: KFAC factors of the embedded parameter
 * (§6; player u's own factors are the diagonal blocks at aoff[u], goff[u]);
 * NULL unless the mode is kfac/coop-kfac. */
typedef struct {
    const gsl_matrix *Qthth;  /* m x m, λ included, after `zero` */
    const gsl_matrix *Qthi;   /* B x m per-sample gradients */
    int np;
    const int *moff, *mdim;
    const gsl_matrix *A, *G;
    const int *aoff, *goff;   /* np + 1 entries */
    ocn_perturb *pert;        /* §10: perturbs each matrix as handed to the pseudo-inverse */
    ref_curv_state *st;       /* §13: carried state (NULL: the batch statistics of this step only) */
    const ref_traj *traj;     /* §13: step and fault, with st */
} ref_curv_in;
/* Fault-injection bit (never parsed from a game): drop P_uv in the curvature only. */
#define OCN_ZERO_PUV_CURVATURE_ONLY 0x100
int ref_curvature_pinv(const ocn_optimizer *opt, const ref_curv_in *in, gsl_matrix *Minv, double *cond,
                       ocn_error *err);

/* GSL matrices and vectors whose allocation failure leaks nothing (issue 10):
 * GSL 2.7's gsl_matrix_alloc/gsl_vector_alloc leak the struct when the data
 * allocation fails (and gsl_eigen_symmv_alloc its earlier arrays).  These
 * build the same objects (owner = 1: gsl_matrix_free/gsl_vector_free free
 * them) and return NULL with nothing allocated; calloc variants zero-fill. */
gsl_matrix *ref_matrix_alloc(size_t r, size_t c);
gsl_matrix *ref_matrix_calloc(size_t r, size_t c);
gsl_vector *ref_vector_alloc(size_t n);
gsl_vector *ref_vector_calloc(size_t n);

/* Linear algebra helpers (linalg.c; GSL decompositions, no BLAS of their own).
 * ref_pinv_m returns OCN_ENOMEM (message naming the workspace) when an
 * allocation fails, OCN_ENUMERIC when the decomposition does. */
int ref_pinv_m(const gsl_matrix *A, gsl_matrix *Ainv, double *cond, ocn_error *err);
void ref_kron(const gsl_matrix *A, const gsl_matrix *G, gsl_matrix *out); /* out = A ⊗ G */
/* The reference's dense kernels: plain loops, every sum in increasing index
 * order, so results do not depend on thread count or BLAS (linalg.c).
 * C = alpha op(A) op(B) + beta C;  y = alpha op(A) x + beta y;  y += alpha x;  xᵀy.
 * ref_gemm packs op(A) and op(B) into a workspace of (M·K + K·N) doubles
 * (issue 10: returns OCN_ENOMEM, C untouched, when that allocation fails;
 * callers name the product); the others allocate nothing. */
int ref_gemm(int ta, int tb, double alpha, const gsl_matrix *A, const gsl_matrix *B, double beta, gsl_matrix *C);
void ref_gemv(int ta, double alpha, const gsl_matrix *A, const gsl_vector *x, double beta, gsl_vector *y);
void ref_axpy(double alpha, const gsl_vector *x, gsl_vector *y);
double ref_dot(const gsl_vector *x, const gsl_vector *y);

/* Issue 10 (estimate.c): peak bytes of a run with `runs` §10 perturbation
 * runs, the largest part described in dominant (n bytes, may be NULL); and
 * the inputs' bytes alone. */
double ref_estimate(const ocn_game *g, const ocn_optimizer *opt, int runs, char *dominant, size_t n);
double ref_inputs_bytes(const ocn_game *g);

/* Issue 10: a run's progress reporter (ocn_ref_opts.progress); fn NULL: none. */
typedef struct {
    void (*fn)(void *ctx, const ocn_ref_progress *p);
    void *ctx;
    ocn_ref_progress p;
} ref_progress;
static inline void ref_progress_report(ref_progress *pr)
{
    if (pr && pr->fn) pr->fn(pr->ctx, &pr->p);
}

/* What one reference run (a step in run.c, a trajectory in trajectory.c)
 * needs: the closure handed to ocn_measure_sensitivity for its §10 runs. */
typedef struct {
    const ocn_game *g;
    const ocn_optimizer *opt;
    const ocn_arrayset *inputs;
    ocn_fault fault;
    ref_progress *prog;
} ref_run_ctx;

/* One step (§1–§8) of run.c on `inputs`; `pert` (NULL: nominal) perturbs
 * as §10 says; `traj` (NULL: one step) carries §13 state across the steps of
 * a trajectory; `prog` (may be NULL) hears of every backward stage done.
 * Every §11 output array is added to `out`. */
int ref_step_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs, ocn_fault fault,
                 ocn_perturb *pert, const ref_traj *traj, ref_progress *prog, ocn_arrayset *out, ocn_error *err);
/* §10 input perturbation (run.c): theta_…, Wfix_…, x0, mse y. */
void ref_perturb_inputs(const ocn_game *g, ocn_arrayset *in, ocn_perturb *p);

/* Error-handler guard: GSL's default handler aborts; the reference never lets it. */
void ref_gsl_quiet(void);

#endif
