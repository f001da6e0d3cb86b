/* The optimized implementation (SPEC §5–§8): low-rank value Hessians (§7),
 * Woodbury and Kronecker-factored curvature, float32 and float64, behind a
 * backend op table.  Computes exactly what the reference computes for each
 * supported mode; anything else is refused with OCN_EUNSUPPORTED. */
#ifndef OCN_OPTIMIZED_H
#define OCN_OPTIMIZED_H

#include "ocn/arrays.h"
#include "ocn/game.h"

typedef struct {
    const char *backend;   /* "cpu" (and "cuda" where built) */
    int precision;         /* 32 or 64 */
    int form_limit;        /* form K and Vxx for output only up to this many entries per array (0: never) */
    int no_feedback;       /* benchmark baseline: skip K, the value Hessian and its propagation */
    int measure_runs;      /* §10 rev. 2: perturbation runs measuring each output's c (8 for `ocn gen
                            * --backend`); 0: ->cond is left 0 (not recorded) */
} ocn_opt_config;

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

/* Why the optimized path cannot run this game/optimizer (NULL if it can). */
const char *ocn_opt_unsupported(const ocn_game *g, const ocn_optimizer *opt);

#endif
