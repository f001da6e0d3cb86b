/* SPEC §5 curvature modes, formed densely: M = (C + γI)/η unless the row
 * says otherwise, and M^† = η (C + γI)^†.  Kronecker products are formed
 * explicitly (that is the point of a reference) with the pinv rule applied
 * per factor, M^† = A^† ⊗ G^† (§5 last paragraph). */
#include "ref.h"

#include <math.h>

static int damped_pinv(const gsl_matrix *C, double gamma, double eta, gsl_matrix *Minv, double *cond, ocn_error *err)
{
    gsl_matrix *D = gsl_matrix_alloc(C->size1, C->size2);
    gsl_matrix_memcpy(D, C);
    for (size_t i = 0; i < D->size1; i++) *gsl_matrix_ptr(D, i, i) += gamma;
    int rc = ref_pinv_m(D, Minv, cond, err);
    gsl_matrix_scale(Minv, eta);
    gsl_matrix_free(D);
    return rc;
}

int ref_curvature_pinv(const ocn_optimizer *opt, const ref_curv_in *in, gsl_matrix *Minv, double *cond,
                       ocn_error *err)
{
    size_t m = Minv->size1, B = in->Qthi->size1;
    double eta = opt->lr, gamma = opt->damping;
    if ((opt->zero & OCN_ZERO_MID) || opt->curvature == OCN_CURV_SGD) { /* M = I/η */
        gsl_matrix_set_identity(Minv);
        gsl_matrix_scale(Minv, eta);
        *cond = 1.0;
        return OCN_OK;
    }
    int rc = OCN_OK;
    gsl_matrix *C = gsl_matrix_calloc(m, m);
    switch (opt->curvature) {
    case OCN_CURV_EXACT:
        gsl_matrix_memcpy(C, in->Qthth);
        rc = damped_pinv(C, gamma, eta, Minv, cond, err);
        break;
    case OCN_CURV_RMSPROP: /* diag(sqrt(mean_i Q_θ^(i) ⊙ Q_θ^(i)) + ε), no γ */
        for (size_t j = 0; j < m; j++) {
            double s = 0;
            for (size_t i = 0; i < B; i++) s += gsl_matrix_get(in->Qthi, i, j) * gsl_matrix_get(in->Qthi, i, j);
            gsl_matrix_set(C, j, j, sqrt(s / (double)B) + opt->eps);
        }
        rc = damped_pinv(C, 0.0, eta, Minv, cond, err);
        break;
    case OCN_CURV_GN_OUTER: /* mean_i Q_θ^(i) Q_θ^(i)ᵀ */
        ref_gemm(1, 0, 1.0 / (double)B, in->Qthi, in->Qthi, 0.0, C);
        rc = damped_pinv(C, gamma, eta, Minv, cond, err);
        break;
    case OCN_CURV_KFAC:
    case OCN_CURV_COOP_KFAC: { /* §6: under FNE coop-kfac is kfac */
        double sg = sqrt(gamma), ca = 1, cg = 1;
        size_t na = in->A->size1, ng = in->G->size1;
        gsl_matrix *Ai = gsl_matrix_alloc(na, na), *Gi = gsl_matrix_alloc(ng, ng);
        rc = damped_pinv(in->A, sg, 1.0, Ai, &ca, err);
        if (!rc) rc = damped_pinv(in->G, sg, 1.0, Gi, &cg, err);
        if (!rc) {
            ref_kron(Ai, Gi, Minv);
            gsl_matrix_scale(Minv, eta);
            *cond = ca * cg;
        }
        gsl_matrix_free(Ai);
        gsl_matrix_free(Gi);
        break;
    }
    default:
        rc = ocn_fail(err, OCN_EUNSUPPORTED, "curvature mode not handled");
    }
    gsl_matrix_free(C);
    return rc;
}
