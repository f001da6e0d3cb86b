#ifndef OCN_REF_UPDATE_H
#define OCN_REF_UPDATE_H
#include <gsl/gsl_blas.h>
#include "ref.h"
/* k[t][p], K[t][p][i] (players with parameters); X[t] nominal states; fills
 * dX[t] (t = 0..T) and theta_new[t][p] (for act players, theta_new[t][p] is NULL). */
int ref_update_pass(const ref_model *m, ocn_fault fault, gsl_vector *const *const *k, gsl_matrix **const *const *K,
                    const gsl_matrix *const *X, gsl_matrix **dX, double ***theta_new, ocn_error *err);
#endif
