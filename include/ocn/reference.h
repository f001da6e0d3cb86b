/* The dense float64 reference (SPEC §3–§8).  Slow on purpose: explicit
 * Jacobians, explicit Kronecker products, SVD pseudo-inverses (GSL).
 * Never calls optimized/ code. */
#ifndef OCN_REFERENCE_H
#define OCN_REFERENCE_H

#include "ocn/arrays.h"
#include "ocn/game.h"

/* Deliberately wrong kernels, for the harness's own tests (SPEC §10: a
 * harness that cannot fail is worthless).  Never set in normal runs. */
typedef enum {
    OCN_FAULT_NONE = 0,
    OCN_FAULT_K_SIGN,       /* K := -K */
    OCN_FAULT_FEEDBACK_DROP,/* update pass applies k only, drops K dx */
    OCN_FAULT_K_PERTURB,    /* K := K (1 + 1e-6) */
    OCN_FAULT_k_PERTURB,    /* k := k (1 + 1e-6) */
    OCN_FAULT_PUV_DROP,     /* GR: cross-player blocks P_uv left out of the exact curvature */
    /* session 6: faults for the §9 checks no gain fault can move (each is what
     * a port could get wrong, and one check shows it: tests/test_theorems.c) */
    OCN_FAULT_BP_GRAD,      /* plain back-propagation: gradient := gradient (1 + 1e-6)      (GRAD) */
    OCN_FAULT_SECOND_DROP,  /* full dynamics without the V_x'·F_xx, F_θx, F_θθ terms          (P2) */
    OCN_FAULT_W_PERTURB,    /* GR: the value gradient W_x := W_x (1 + 1e-6) at every stage (T6a, E2, C7) */
    OCN_FAULT_PERSAMPLE_B,  /* persample values with the batch objective's 1/B (DDPNOpt Alg. 3 "fixed") (E4) */
    OCN_FAULT_DECAY_TWICE,  /* the weight decay's curvature λI added twice to Q_θθ / P_θθ            (C7) */
#define OCN_FAULT_IS_CHECK(f) ((f) >= OCN_FAULT_BP_GRAD && (f) <= OCN_FAULT_DECAY_TWICE)
    OCN_FAULT_COUNT,        /* the one-step faults are 1 .. OCN_FAULT_COUNT - 1 */
    /* §13 trajectory faults (no effect on one step; a state bug a port could have) */
    OCN_FAULT_DECAY_DROP = 16, /* averages ρ·prev + new, the (1 − ρ) missing */
    OCN_FAULT_REFRESH_SHIFT,   /* pseudo-inverses refreshed at s ≡ 1 (mod T_r), off by one */
    OCN_FAULT_TRAJ_END
} ocn_fault;

/* Where a reference run is (ocn_ref_opts.progress). */
typedef struct ocn_ref_progress {
    int run, runs;     /* 0: the nominal run; 1 … runs − 1: the §10 perturbation runs */
    int step, steps;   /* §13 trajectory step (0 of 1 for one step) */
    int stage, stages; /* backward-pass stages done in this step */
} ocn_ref_progress;

typedef struct {
    ocn_fault fault;
    int measure_runs;   /* §10 rev. 2 perturbation runs (8 for fixtures, 2 for checks); 0: c = the floor d */
    int measure_f32;    /* also measure cond_f32 with as many u₃₂ runs (ocn_measure_sensitivity_f32) */
    /* Issue 10: the most memory (bytes) a run may need.  ocn_ref_run refuses,
     * before allocating anything, a game whose estimated peak
     * (ocn_ref_estimate_memory, with this run's perturbation runs) exceeds
     * it.  0: the machine's physical memory (ocn_memory_limit, ocn/memory.h). */
    size_t max_memory;
    /* Issue 10: progress of a long run (`ocn gen` prints it on a terminal);
     * NULL: none.  Called after every backward-pass stage of every run; it
     * only reports (it cannot stop the run). */
    void (*progress)(void *ctx, const ocn_ref_progress *p);
    void *progress_ctx;
} ocn_ref_opts;


/* Issue 10: the reference's estimated peak memory on game g with optimizer
 * settings opt, as `ocn gen` runs it (the §10 perturbation runs hold the
 * nominal outputs and a second, perturbed set at once), counting the
 * inputs, every stored output and the big working arrays: per-sample
 * Jacobians (B·n'·n, B·n'·m), the value/expansion Hessians ((B·n)² in
 * augmented mode, B·n² otherwise), the m² curvature with its pseudo-inverse
 * workspaces (or the explicit Kronecker product of kfac/coop-kfac),
 * per-sample Q_θx and K (B·m·n), the gains kept for the update pass.
 * *bytes gets the estimate (SIZE_MAX if it does not fit); `dominant` (n
 * bytes, may be NULL) names the largest part at the peak and its biggest
 * array, e.g. "the value Hessians B·V_XX (stage 2 lane 0: 200000 x 200000
 * doubles, 320.0 GB)".  Computes from the description only (no allocation
 * of the arrays, well under a second).  Returns OCN_OK, or OCN_EINVAL for a
 * NULL argument. */
int ocn_ref_estimate_memory(const ocn_game *g, const ocn_optimizer *opt, size_t *bytes, char *dominant, size_t n);

const char *ocn_fault_name(ocn_fault f);
int ocn_fault_parse(const char *s, ocn_fault *out);
/* One line on what the fault breaks (for --help, from the same table). */
const char *ocn_fault_description(ocn_fault f);
/* 1 when fault f changes what the reference computes on game g; otherwise 0
 * and `why` (n bytes) says why not, e.g. Puv-drop on an FNE game (issue 15). */
int ocn_fault_applies(const ocn_game *g, ocn_fault f, char *why, size_t n);

/* One optimizer step of the reference on game g with optimizer settings opt
 * (normally &g->opt; checks pass variants).  `inputs` holds x0, y, theta_*,
 * Wfix_* (SPEC §11 names).  Adds every §11 output array to `out`, each with
 * its §10 rev. 2 measured sensitivity in ->cond (o->measure_runs runs; with
 * none, ->cond is the floor d). */
int ocn_ref_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs,
                const ocn_ref_opts *o, ocn_arrayset *out, ocn_error *err);

/* §13: a trajectory of n_s steps of §8 with the optimizer state carried
 * (reference/trajectory.c).  `inputs`: the initial theta_t{t}_n{n}, Wfix_…,
 * and x0, y (data fixed) or x0_s{s}, y_s{s} for s = 0 … n_s − 1 (stream).
 * Adds every array of a §13 trajectory fixture to `out`: the inputs
 * (theta_s0_…, x0_s…/y_s…, Wfix_…), theta_s{s}_t{t}_n{n} for s = 1 … n_s,
 * loss_s{s}, the last step's §11 arrays under their one-step names (theta_t…,
 * x0, y: that step's inputs), the state after the last step (A_t{t}_n{n},
 * G_t{t}_n{n}, A_t{t}, G_t{t}, v_t{t}_n{n}) and the derived steps
 * dtheta_s{s}_t{t}_n{n} = θ_{s+1} − θ_s; with o->measure_runs > 0 each
 * output's ->cond is its §10 measured sensitivity over the whole trajectory
 * (inputs perturbed once, stage terms every step, factorisations when
 * refreshed).  On one step with default §13 fields this is ocn_ref_run. */
int ocn_ref_run_trajectory(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs,
                           const ocn_ref_opts *o, ocn_arrayset *out, ocn_error *err);

/* Checks that inputs has every array the game needs, with the right shapes,
 * finite, and ce labels integral in [0, classes). */
int ocn_ref_check_inputs(const ocn_game *g, const ocn_arrayset *inputs, const char *where, ocn_error *err);

/* Draws the inputs of g from gsl_rng_mt19937 seeded with g->seed (SPEC §12
 * initialisation order); with §13 `data: stream` and n_s > 1 also the
 * batches x0_s{s}, y_s{s} (s = 0: copies of x0, y; then each later step's x0,
 * then y, from the same generator, in step order). */
int ocn_ref_init_inputs(const ocn_game *g, ocn_arrayset *inputs, ocn_error *err);

/* Moore–Penrose pseudo-inverse by SVD with the SPEC §5 rcond rule
 * (rcond = max(rows, cols) * eps).  A is r x c row-major; out is c x r.
 * cond gets sigma_max / sigma_min over the retained singular values. */
int ocn_ref_pinv(const double *A, int r, int c, double *out, double *cond, ocn_error *err);

/* --- plain back-propagation (independent of the Bellman code) --- */
typedef struct ocn_bp ocn_bp;
/* Backprop of lane `lane`'s payoff L_n = mean_i phi_n + sum (lambda/2)|theta|^2
 * from stage 0.  Results are read with the accessors below. */
int ocn_bp_run(const ocn_game *g, const ocn_arrayset *inputs, int lane, ocn_bp **out, ocn_error *err);
/* The same with a deliberately wrong kernel (harness self-tests: OCN_FAULT_BP_GRAD
 * scales every gradient by 1 + 1e-6; other faults change nothing here). */
int ocn_bp_run_fault(const ocn_game *g, const ocn_arrayset *inputs, int lane, ocn_fault fault, ocn_bp **out,
                     ocn_error *err);
void ocn_bp_free(ocn_bp *bp);
double ocn_bp_loss(const ocn_bp *bp);
/* grad of L_n wrt theta_{t,p} (m), weight decay included. */
const double *ocn_bp_grad(const ocn_bp *bp, int t, int p);
/* per-sample gradient of phi_n^(i) wrt theta_{t,p}: (B, m), no weight decay. */
const double *ocn_bp_grad_sample(const ocn_bp *bp, int t, int p);
/* co-state B * dL/dx_t^(i): (B, n_t), t = 0..T. */
const double *ocn_bp_costate(const ocn_bp *bp, int t);
/* KFAC statistics of player (t, p): a^(i) (B, in+1 or 1) and g^(i) = dphi/dh (B, out). */
const double *ocn_bp_kfac_a(const ocn_bp *bp, int t, int p, int *dim);
const double *ocn_bp_kfac_g(const ocn_bp *bp, int t, int p, int *dim);

/* One stage's vector-Jacobian product for one sample (plain back-propagation):
 * given the stage input x (n_t) and a cotangent ct1 (n_{t+1}), returns
 * ct0 = F_xᵀ ct1 (n_t) and, per player p, the pre-activation cotangent
 * gh[p] = σ'(h) ⊙ ct1[out] (out_dim; NULL entries are skipped).  F_θᵀ ct1 of a
 * dense player is vec(gh aᵀ), a = [z; 1]; of a bias player gh. */
int ocn_bp_stage_vjp(const ocn_game *g, const ocn_arrayset *inputs, int t, const double *x, const double *ct1,
                     double *ct0, double **gh, ocn_error *err);
/* Stage-t input block z of player p for state x (pointer into x). */
const double *ocn_bp_player_input(const ocn_game *g, int t, int p, const double *x);

/* Loss L_n (mean over batch, + weight decay) with parameters from `inputs`,
 * optionally overriding theta_{t_par,p_par} by theta (may be NULL). */
int ocn_bp_loss_at(const ocn_game *g, const ocn_arrayset *inputs, int lane, int t_par, int p_par,
                   const double *theta, double *loss, ocn_error *err);
/* Cost-to-go of one sample from stage t: phi_n(forward from x_t = x), and its
 * gradient by back-propagation (grad may be NULL). */
int ocn_bp_costtogo(const ocn_game *g, const ocn_arrayset *inputs, int lane, int t, int sample,
                    const double *x, double *J, double *grad, ocn_error *err);

#endif
