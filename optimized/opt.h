/* Internal header of the optimized implementation (never included by reference/). */
#ifndef OCN_OPT_INTERNAL_H
#define OCN_OPT_INTERNAL_H

#include "backend.h"
#include "workspace.h"
#include "ocn/optimized.h"
#include "ocn/tolerance.h"

/* Compile-time fault injection for the mutation tests (make mutants): each
 * value makes the optimized path deliberately wrong in one way. */
#ifndef OCN_MUTANT
#define OCN_MUTANT 0
#endif
/* (macros, not an enum: they are compared in #if) */
#define MUT_NONE 0
#define MUT_S_SIGN 1         /* sign flip in the S update of §7 */
#define MUT_NO_INV_B 2       /* the 1/B of blockdiag's S update missing */
#define MUT_NO_FEEDBACK 3    /* K δx dropped in the update pass */
#define MUT_KFAC_TRANSPOSE 4 /* θ read in the wrong vec order: G ⊗ A instead of A ⊗ G */
#define MUT_DAMP_TWICE 5     /* damping added twice to the KFAC factors */
#define MUT_F32_ACCUM 6      /* float64 path accumulating the batch gradient in float32 */
#define MUT_DROP_THETA0 7    /* stage 0's theta_new not written (ocn check's completeness, §10) */
#define MUT_EMA_NO_1MRHO 8   /* §13: the (1 − ρ) of the statistics' moving average missing */
#define MUT_REFRESH_OFF_BY_ONE 9 /* §13: factorisations refreshed at s ≡ 1 (mod T_r) instead of 0 */
#define MUT_CONV_TRANSPOSE 10 /* §14: the optimized im2col/col2im reads the kernel transposed (i, j swapped) */
#define MUT_COUNT 11

/* §13 carried optimizer state, precision-independent storage (float32 values
 * are stored exactly as doubles).  One factor set per kfac/rmsprop player
 * ([t][p]) and per coop-kfac joint stage ([t]).  Double-buffered: a step reads
 * buffers `cur` (the state after step s − 1) and writes the other ones, so a
 * refused or failed step leaves the state as it was (ocn_opt_step commits by
 * flipping `cur` only on success). */
typedef struct {
    int na, out, m;               /* factor dimensions (kfac/coop: na, out; rmsprop: m) */
    int have[2];                  /* buffer holds a state */
    double *A[2], *G[2];          /* kfac/coop: undamped averages A_s, G_s (§13) */
    double *Ai[2], *Gi[2];        /* their damped pseudo-inverses from the last refresh */
    double *v[2];                 /* rmsprop: average of mean_i (Q_θ^(i))² (before sqrt and ε) */
} ocn_opt_fstate;

typedef struct {
    int s, cur;                   /* index of the step being computed; buffers of the state before it */
    double rho;                   /* stat_decay ρ */
    int refresh;                  /* refresh_every T_r */
    int T;
    int *np;                      /* players per stage */
    ocn_opt_fstate **pl;          /* [t][p] */
    ocn_opt_fstate *joint;        /* [t] */
} ocn_opt_sstate;

ocn_opt_sstate *ocn_opt_sstate_new(const ocn_game *g, const ocn_optimizer *opt);
void ocn_opt_sstate_free(ocn_opt_sstate *s);

/* Backend (opened from the registry; the caller closes it) and precision of a
 * configuration, after the refusals of ocn_opt_run. */
int ocn_opt_resolve(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, ocn_backend **bk,
                    int *prec, ocn_error *err);
/* A contract violation recorded by the backend during a step becomes the step's
 * error (OCN_ENUMERIC, the backend's message); else rc. */
int ocn_opt_backend_status(ocn_backend *bk, int rc, ocn_error *err);
/* The final check of every optimized run: no NaN/Inf array is handed back. */
int ocn_opt_check_finite(const ocn_game *g, int prec, const ocn_arrayset *out, ocn_error *err);
/* The array `name` of `s` with this shape, overwritten in place (cond 0) when
 * it is there already — a training loop's steps then take no fresh pages —
 * else added (ocn_arrayset_add2); NULL when out of memory. */
ocn_array *ocn_opt_array_reuse(ocn_arrayset *s, const char *name, int ndim, const size_t *shape);
/* Copies every array of tmp (data and cond) into out (reusing out's arrays of the same name and shape). */
int ocn_opt_hand_over(const ocn_arrayset *tmp, ocn_arrayset *out, ocn_error *err);
/* The same, moving the data of arrays `out` already holds with the same shape
 * (swapped with tmp's: a training loop's steps copy nothing). */
int ocn_opt_hand_over_swap(ocn_arrayset *tmp, ocn_arrayset *out, ocn_error *err);

/* One step with the §13 state `ss` (NULL: the one-step semantics, no state),
 * `pin` = perturb the inputs (theta, Wfix, x0, mse y) with `pert` (a
 * trajectory perturbs them once itself), `want_loss` = also write "loss"
 * (shape (1,), the §1 objective on this batch before the step). */
int ocn_opt_step_f64(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                     ocn_backend *bk, ocn_ws *ws, ocn_perturb *pert, int pin, ocn_opt_sstate *ss, int want_loss,
                     ocn_arrayset *out, ocn_error *err);
int ocn_opt_step_f32(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                     ocn_backend *bk, ocn_ws *ws, ocn_perturb *pert, int pin, ocn_opt_sstate *ss, int want_loss,
                     ocn_arrayset *out, ocn_error *err);

/* One step in one precision.  `pert` (NULL on the nominal run) is a §10
 * perturbation run: inputs, every matrix handed to a factorisation and every
 * stage term are perturbed as they are formed. */
int ocn_opt_run_f64(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                    ocn_backend *bk, ocn_ws *ws, ocn_perturb *pert, ocn_arrayset *out, ocn_error *err);
int ocn_opt_run_f32(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                    ocn_backend *bk, ocn_ws *ws, ocn_perturb *pert, ocn_arrayset *out, ocn_error *err);

/* What one producer run (a step in run.c, a trajectory in state.c) needs:
 * the closure handed to ocn_measure_sensitivity for its §10 runs. */
typedef struct {
    const ocn_game *g;
    const ocn_optimizer *opt;
    const ocn_arrayset *in;
    const ocn_opt_config *cfg;
    ocn_backend *bk;
    int prec;
    ocn_ws *ws;                   /* the step's workspace, reused by every run and step */
} ocn_opt_run_ctx;

/* The workspace plan (issue 11 item 1): the bytes of one step's buffers, from
 * the game alone — the same model as ocn_opt_estimate_memory (estimate.c), of
 * which it is the in-step part, so the two cannot disagree. */
/* bytes of one stage expansion's record in the step (the same in both precisions) */
extern const size_t ocn_opt_expn_bytes_f64, ocn_opt_expn_bytes_f32;
size_t ocn_opt_plan_workspace(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg);
/* A workspace of that plan (cfg->fail_alloc_at honoured); ENOMEM naming it. */
int ocn_opt_ws_new(const ocn_game *g, const ocn_optimizer *opt, const ocn_opt_config *cfg, ocn_ws **ws, ocn_error *err);

#endif
