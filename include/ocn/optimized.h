/* The optimized implementation (SPEC §5–§8): low-rank value Hessians (§7),
 * Woodbury and Kronecker-factored curvature, float32 and float64, behind a
 * backend op table.  Computes exactly what the reference computes for each
 * supported mode; anything else is refused with OCN_EUNSUPPORTED. */
#ifndef OCN_OPTIMIZED_H
#define OCN_OPTIMIZED_H

#include "ocn/arrays.h"
#include "ocn/game.h"

typedef struct {
    const char *backend;   /* a registered backend: "cpu", "checking" (the cpu ops checked against the
                            * backend contract), "cuda" (where the module is built and a GPU is present) */
    int precision;         /* 32 or 64 */
    int form_limit;        /* form K and Vxx for output only up to this many entries per array (0: never) */
    int no_feedback;       /* benchmark baseline: skip K, the value Hessian and its propagation */
    int measure_runs;      /* §10 rev. 2: perturbation runs measuring each output's c (8 for `ocn gen
                            * --backend`); 0: ->cond is left 0 (not recorded) */
    int lean;              /* a training step: only theta_new_* is written (no x_t, Q…, k, V…, dx arrays
                            * converted to float64 for the harness); the arithmetic is unchanged */
    size_t max_memory;     /* issue 10: refuse (OCN_EUNSUPPORTED, before allocating) a run whose estimated
                            * peak (ocn_opt_estimate_memory) exceeds this many bytes; 0: the machine's
                            * physical memory */
    long fail_alloc_at;    /* tests only (issue 10): the n-th allocation of the optimized path — its step
                            * workspace, a buffer taken from it, the §13 state's buffers — fails, to show that
                            * every failure is a clean OCN_ENOMEM naming what failed; < 0: strict, a step
                            * needing more than its planned workspace fails (the plan is held to); 0: off */
} ocn_opt_config;

/* Issue 10: the optimized path's estimated peak memory in bytes for game g
 * with cfg (precision, lean, form_limit, measure_runs), from the description
 * alone (optimized/estimate.c says what it counts); `dom` (may be NULL) gets
 * the part that dominates and its largest array. */
double ocn_opt_estimate_memory(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, char *dom,
                               size_t ndom);

/* One optimizer step; adds the arrays it computes (§11 names, converted to
 * float64) to `out`: x_t, Qx/Px, Qth/Pth, k, K (small), Vx/Wx, Vxx/Wxx
 * (small), dx, theta_new.  Either every array is finite and is the SPEC's
 * value, or nothing is added and the status is an error: OCN_EUNSUPPORTED
 * (with a message naming the stage/player and the quantity) for a regime this
 * path cannot compute to §10 accuracy, found before or during the run.  With
 * cfg->measure_runs > 0 each array's ->cond is its §10 measured sensitivity
 * (perturbation size and measurement at the run's unit roundoff, 2^-53 or
 * 2^-24). */
int ocn_opt_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs, const ocn_opt_config *cfg,
                ocn_arrayset *out, ocn_error *err);

/* ---- SPEC §13: optimizer state across steps ---- */

typedef struct ocn_opt_state ocn_opt_state;   /* SPEC §13 carried state (opaque) */
/* State for trajectories of game g with optimizer opt (its stat_decay and
 * refresh_every are used; g and opt are borrowed and must outlive the state),
 * cfg gives backend and precision as for ocn_opt_run (copied).  Validates like
 * ocn_opt_run (the same refusals). */
int ocn_opt_state_new(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, ocn_opt_state **out,
                      ocn_error *err);
void ocn_opt_state_free(ocn_opt_state *st);
/* Index s of the next step (0 for a new state). */
int ocn_opt_state_step_index(const ocn_opt_state *st);
/* GEMM floating-point operations (2·m·n·k per call) of all steps so far (make bench's gemm%). */
double ocn_opt_state_gemm_flops(const ocn_opt_state *st);
/* One §13 step s (the state knows s, starting at 0): `in` holds the one-step
 * inputs (theta_t{t}_n{n}, Wfix_…, x0, y — §11 names); writes the §11 one-step
 * outputs to `out` (the arrays of ocn_opt_run, theta_new_* included) and
 * advances the state: moving averages of the statistics with ρ, refresh of the
 * kfac/coop-kfac factorisations at s ≡ 0 (mod T_r), the stale operator in
 * between.  No §10 measurement.  On any error nothing is added to `out` and
 * the state is unchanged.  With steps = 1, ρ = 0, T_r = 1 (or at s = 0 for
 * any ρ, T_r) the arrays are bit-identical to ocn_opt_run's. */
int ocn_opt_step(ocn_opt_state *st, const ocn_arrayset *in, ocn_arrayset *out, ocn_error *err);
/* The state after the last step under §13's names: A_t{t}_n{n}, G_t{t}_n{n}
 * (per-player kfac averages, undamped), A_t{t}, G_t{t} (coop-kfac joint
 * averages), v_t{t}_n{n} (rmsprop, θ's vec order).  Modes without state
 * (exact, gn-outer, sgd, zero: [Mid]) and a state before its first step
 * export nothing. */
int ocn_opt_state_export(const ocn_opt_state *st, ocn_arrayset *out, ocn_error *err);
/* A whole trajectory of opt->steps steps (§13).  Inputs: the initial
 * parameters theta_s0_t{t}_n{n} (or, absent, theta_t{t}_n{n}), Wfix_…, and the
 * batches: x0_s{s}, y_s{s} (data: stream needs them for every s, 0 included;
 * its x0, y are ignored), else x0, y (data: fixed).  Adds every computed §13
 * trajectory-fixture array: theta_s{s}_t{t}_n{n} (s = 0..n_s), theta_t{t}_n{n}
 * (= θ_{n_s−1}, the last step's parameters), loss_s{s} (shape (1,)), the last
 * step's §11 outputs under their one-step names, the exported state, and the
 * derived steps dtheta_s{s}_t{t}_n{n} = θ_{s+1} − θ_s (s = 0..n_s−1; they
 * belong in the manifest's "derived" table, ocn_opt_is_derived).  Inputs
 * (x0, y, x0_s…, y_s…, Wfix_…) are not added.  With
 * cfg->measure_runs > 0 every array's ->cond is its §10 rev. 2 sensitivity
 * measured over the whole trajectory: inputs perturbed once (each stored batch
 * when first used), matrices and stage terms at every step, a factorisation
 * only when refreshed. */
#define OCN_OPT_HAVE_TRAJECTORY 1 /* for harness/check_traj.c (helper traj) */
int ocn_opt_run_trajectory(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in,
                           const ocn_opt_config *cfg, ocn_arrayset *out, ocn_error *err);
/* 1 for the names of §13's derived arrays (dtheta_s…): the manifest's "derived" table. */
int ocn_opt_is_derived(const char *name);

/* 1 if `name` is a registered backend (cpu, checking, cuda), usable here or not. */
int ocn_opt_backend_known(const char *name);

/* Why the optimized path cannot run this game/optimizer (NULL if it can). */
const char *ocn_opt_unsupported(const ocn_game *g, const ocn_optimizer *opt);

#endif
