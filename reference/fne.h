/* Internal: one FNE stage of the dense reference (SPEC §4). */
#ifndef OCN_REF_FNE_H
#define OCN_REF_FNE_H

#include "ref.h"

typedef struct {
    int p;                 /* player index in the stage, -1 = dummy lane (no gains) */
    gsl_matrix *Qx;        /* B x n */
    gsl_matrix *QXX;       /* Bn x Bn: B·Q_XX (per-sample diagonal blocks = Q_xx^(i)) */
    gsl_vector *Qth;       /* m  */
    gsl_matrix *Qthi;      /* B x m */
    gsl_matrix **Qthx;     /* B of m x n, after `zero` */
    gsl_matrix *Qthth;     /* m x m, λ in, γ out */
    gsl_vector *k;         /* m */
    gsl_matrix **K;        /* B of m x n */
    gsl_matrix *Vx;        /* B x n */
    gsl_matrix *VXX;       /* Bn x Bn: B·V_XX */
    double cond;           /* of the pseudo-inverted curvature, 1 if none */
} ref_fne_out;

/* Lane `lane` at stage t, given the incoming per-sample value gradient
 * vnext (B x n') and B·V_XX' (Bn' x Bn'); X is the nominal x_t (B x n). */
int ref_fne_stage(const ref_model *m, const ocn_optimizer *opt, ocn_fault fault, int t, int lane,
                  const gsl_matrix *X, const gsl_matrix *vnext, const gsl_matrix *VXXnext,
                  ref_fne_out *out, ocn_error *err);
void ref_fne_out_free(ref_fne_out *o, int B);

#endif
