/* Internal header of the optimized implementation (never included by reference/). */
#ifndef OCN_OPT_INTERNAL_H
#define OCN_OPT_INTERNAL_H

#include "backend.h"
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
#define MUT_COUNT 8

/* One step in one precision.  `pert` (NULL on the nominal run) is a §10
 * perturbation run: inputs, every matrix handed to a factorisation and every
 * stage term are perturbed as they are formed. */
int ocn_opt_run_f64(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                    const ocn_backend *bk, ocn_perturb *pert, ocn_arrayset *out, ocn_error *err);
int ocn_opt_run_f32(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                    const ocn_backend *bk, ocn_perturb *pert, ocn_arrayset *out, ocn_error *err);

#endif
