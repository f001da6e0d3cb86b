/* Internal: one stage of the Bellman backward pass for a set of players
 * (SPEC §4): FNE calls it per lane with that lane's player, GR once with all
 * parameterised players of the stage (the joint parameter θ_t). */
#ifndef OCN_REF_EXPAND_H
#define OCN_REF_EXPAND_H

#include "ref.h"

#define REF_MAX_PLAYERS OCN_MAX_PLAYERS /* the loader's one player limit (ocn/game.h) */

/* Storage of a value Hessian B·V_XX (issue 10, docs/decisions.md "Memory"):
 * `augmented` keeps the full Bn x Bn matrix; `blockdiag`/`persample` keep
 * only what the SPEC keeps, the B diagonal n x n blocks, stacked as a
 * Bn x n matrix (block i = rows i·n …); the off-diagonal blocks are zero
 * and never stored.  ref_vblock gives block (i, j) (block storage: i = j). */
static inline gsl_matrix_view ref_vblock(gsl_matrix *V, int aug, size_t n, int i, int j)
{
    return gsl_matrix_submatrix(V, (size_t)i * n, aug ? (size_t)j * n : 0, n, n);
}
static inline _gsl_matrix_const_view ref_vblock_const(const gsl_matrix *V, int aug, size_t n, int i, int j)
{
    return gsl_matrix_const_submatrix(V, (size_t)i * n, aug ? (size_t)j * n : 0, n, n);
}

typedef struct {
    int np;                    /* players in the (joint) parameter; 0 = no gains */
    int p[REF_MAX_PLAYERS];    /* their indices in the stage */
    int moff[REF_MAX_PLAYERS]; /* offsets in θ */
    int m;                     /* total parameter count */
    gsl_matrix *Qx;            /* B x n */
    gsl_matrix *Qxx;           /* Bn x n: the per-sample diagonal blocks Q_xx^(i) of B·Q_XX, stacked */
    gsl_vector *Qth;           /* m */
    gsl_matrix *Qthi;          /* B x m */
    gsl_matrix **Qthx;         /* B of m x n, after `zero` */
    gsl_matrix *Qthth;         /* m x m, λ in, γ out, after `zero` */
    gsl_vector *k;             /* m */
    gsl_matrix **K;            /* B of m x n */
    gsl_matrix *Vx;            /* B x n */
    gsl_matrix *VXX;           /* B·V_XX: Bn x Bn (augmented) or its diagonal blocks, Bn x n (ref_vblock) */
    double cond;               /* of the pseudo-inverted curvature, 1 if none (reported, not a tolerance) */
} ref_stage_out;

/* players: stage indices of the parameterised players in the expansion (np may be 0).
 * vnext (B x n'), VXXnext (the incoming value Hessian, stored as ref_vblock
 * says for opt->value); X: nominal x_t (B x n).  Out of memory: OCN_ENOMEM,
 * the message naming the array; whatever was allocated is in `out` (free it
 * with ref_stage_out_free, which takes partial results). */
int ref_stage_backward(const ref_model *m, const ocn_optimizer *opt, ocn_fault fault, int t, const int *players,
                       int np, const gsl_matrix *X, const gsl_matrix *vnext, const gsl_matrix *VXXnext,
                       ref_stage_out *out, ocn_error *err);
void ref_stage_out_free(ref_stage_out *o, int B);

#endif
