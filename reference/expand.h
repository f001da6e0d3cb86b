/* Internal: one stage of the Bellman backward pass for a set of players
 * (SPEC §4): FNE calls it per lane with that lane's player, GR once with all
 * parameterised players of the stage (the joint parameter θ_t). */
#ifndef OCN_REF_EXPAND_H
#define OCN_REF_EXPAND_H

#include "ref.h"

#define REF_MAX_PLAYERS OCN_MAX_PLAYERS /* the loader's one player limit (ocn/game.h) */

typedef struct {
    int np;                    /* players in the (joint) parameter; 0 = no gains */
    int p[REF_MAX_PLAYERS];    /* their indices in the stage */
    int moff[REF_MAX_PLAYERS]; /* offsets in θ */
    int m;                     /* total parameter count */
    gsl_matrix *Qx;            /* B x n */
    gsl_matrix *QXX;           /* Bn x Bn: B·Q_XX (per-sample diagonal blocks = Q_xx^(i)) */
    gsl_vector *Qth;           /* m */
    gsl_matrix *Qthi;          /* B x m */
    gsl_matrix **Qthx;         /* B of m x n, after `zero` */
    gsl_matrix *Qthth;         /* m x m, λ in, γ out, after `zero` */
    gsl_vector *k;             /* m */
    gsl_matrix **K;            /* B of m x n */
    gsl_matrix *Vx;            /* B x n */
    gsl_matrix *VXX;           /* Bn x Bn: B·V_XX */
    double cond;               /* of the pseudo-inverted curvature, 1 if none (reported, not a tolerance) */
} ref_stage_out;

/* players: stage indices of the parameterised players in the expansion (np may be 0).
 * vnext (B x n'), VXXnext (Bn' x Bn'): incoming value; X: nominal x_t (B x n). */
int ref_stage_backward(const ref_model *m, const ocn_optimizer *opt, ocn_fault fault, int t, const int *players,
                       int np, const gsl_matrix *X, const gsl_matrix *vnext, const gsl_matrix *VXXnext,
                       ref_stage_out *out, ocn_error *err);
void ref_stage_out_free(ref_stage_out *o, int B);

#endif
