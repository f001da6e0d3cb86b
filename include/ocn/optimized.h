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
} ocn_opt_config;

/* One optimizer step; adds the arrays it computes (§11 names, converted to
 * float64) to `out`: x_t, Qx/Px, Qth/Pth, k, K (small), Vx/Wx, Vxx/Wxx
 * (small), dx, theta_new. */
int ocn_opt_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs, const ocn_opt_config *cfg,
                ocn_arrayset *out, ocn_error *err);

/* Why the optimized path cannot run this game/optimizer (NULL if it can). */
const char *ocn_opt_unsupported(const ocn_game *g, const ocn_optimizer *opt);

#endif
