/* SPEC §8 update pass (DGNOpt Alg. 1 lines 8–12): forward again from x_0,
 * δx_t = x̂_t − x_t, θ ← θ − (k + mean_i K^(i) δx^(i)), x̂_{t+1} = F_t(x̂_t, θ_new). */
#include "update.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* |θ| + |k| + mean_i |K^(i)| |δx^(i)| of player (t, p), into a buffer grown
 * to its m (realloc'd: returned; NULL when out of memory, `buf` freed). */
static double *ref_theta_new_scale(const ref_model *m, int t, int p, ocn_fault fault, gsl_vector *const *const *k,
                                   gsl_matrix **const *const *K, const gsl_matrix *dX, double *buf)
{
    int mm = m->g->stages[t].players[p].m, B = m->B;
    double *s = realloc(buf, (size_t)mm * sizeof *s);
    if (!s) {
        free(buf);
        return NULL;
    }
    for (int j = 0; j < mm; j++) s[j] = fabs(m->th[t][p][j]) + fabs(gsl_vector_get(k[t][p], (size_t)j));
    for (int i = 0; fault != OCN_FAULT_FEEDBACK_DROP && i < B; i++)
        for (int j = 0; j < mm; j++) {
            double a = 0;
            for (size_t l = 0; l < dX->size2; l++)
                a += fabs(gsl_matrix_get(K[t][p][i], (size_t)j, l) * gsl_matrix_get(dX, (size_t)i, l));
            s[j] += a / B;
        }
    return s;
}

int ref_update_pass(const ref_model *m, ocn_fault fault, gsl_vector *const *const *k, gsl_matrix **const *const *K,
                    const gsl_matrix *const *X, gsl_matrix **dX, double ***theta_new, ocn_error *err)
{
    const ocn_game *g = m->g;
    int B = m->B;
    gsl_matrix *Xh = ref_matrix_alloc((size_t)B, (size_t)g->n[0]);
    if (!Xh) return ocn_fail(err, OCN_ENOMEM, "update pass: out of memory allocating x̂_0 (%d x %d)", B, g->n[0]);
    gsl_matrix_memcpy(Xh, X[0]);
    double *scale = NULL;
    for (int t = 0; t <= g->T; t++) {
        gsl_matrix_memcpy(dX[t], Xh);
        gsl_matrix_sub(dX[t], X[t]);
        if (t == g->T) break;
        const ocn_stage *st = &g->stages[t];
        for (int p = 0; p < st->nplayers; p++) {
            const ocn_player *pl = &st->players[p];
            if (!pl->m) continue;
            double *tn = theta_new[t][p];
            for (int j = 0; j < pl->m; j++) tn[j] = m->th[t][p][j] - gsl_vector_get(k[t][p], (size_t)j);
            if (m->pert && !(scale = ref_theta_new_scale(m, t, p, fault, k, K, dX[t], scale))) {
                gsl_matrix_free(Xh);
                return ocn_fail(err, OCN_ENOMEM, "update pass: out of memory (the §10 scale of θ_new)");
            }
            if (fault != OCN_FAULT_FEEDBACK_DROP)
                for (int i = 0; i < B; i++) { /* − mean_i K^(i) δx^(i) */
                    gsl_vector_const_view dxi = gsl_matrix_const_row(dX[t], (size_t)i);
                    gsl_vector_view tv = gsl_vector_view_array(tn, (size_t)pl->m);
                    ref_gemv(0, -1.0 / B, K[t][p][i], &dxi.vector, 1.0, &tv.vector);
                }
            /* §10 amendment (same decision): θ_new is perturbed as formed, before it
             * drives the second forward pass, so c of δx also sees an update below the
             * resolution of θ (x̂ − x ≈ J (θ_new − θ) then carries u·|θ|/|k|) — at the
             * scale of its terms |θ| + |k| + mean_i |K^(i)||δx^(i)|, which a port's
             * rounding reaches when k and K δx cancel (docs/decisions.md "Perturbed
             * at the scale of the terms": f32 θ_new 600 off where k ≈ −K δx ≈ 1e10) */
            ocn_perturb_vec_at(m->pert, tn, scale, (size_t)pl->m);
        }
        gsl_matrix *Xn = ref_matrix_alloc((size_t)B, (size_t)g->n[t + 1]);
        if (!Xn) {
            gsl_matrix_free(Xh), free(scale);
            return ocn_fail(err, OCN_ENOMEM, "update pass: out of memory allocating x̂_%d (%d x %d)", t + 1, B, g->n[t + 1]);
        }
        for (int i = 0; i < B; i++)
            ref_stage_forward(m, t, theta_new[t], gsl_matrix_const_ptr(Xh, (size_t)i, 0), gsl_matrix_ptr(Xn, (size_t)i, 0));
        /* §10 rev. 2 amendment (docs/decisions.md "x̂ perturbed as formed"): the
         * second forward pass's states are perturbed as formed — by
         * ref_stage_forward, at the scale of their terms ("States perturbed as
         * formed, at the scale of their terms") — so c of δx = x̂ − x sees the
         * cancellation of a small update against a large state.  x̂_0 = x_0 is not
         * formed (δx_0 is a structural zero) and stays unperturbed. */
        gsl_matrix_free(Xh);
        Xh = Xn;
    }
    gsl_matrix_free(Xh);
    free(scale);
    return OCN_OK;
}
