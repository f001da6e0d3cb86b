/* SPEC §4: exact per-sample stage Jacobians F_x, F_θ and the "full"
 * second-order contractions V_x'·F_xx, V_x'·F_θx, V_x'·F_θθ (DDPNOpt eq. 26–27),
 * hand-derived for h = W z + b, f = σ(h), dense. */
#include "ref.h"


/* h of player p in the model's scratch region 0 (issue 10: no allocation) */
static double *player_h(const ref_model *m, int t, int p, const double *x)
{
    const ocn_player *pl = &m->g->stages[t].players[p];
    double *h = m->ws;
    ref_player_pre(m->g, t, pl, m->th[t][p], m->wfix[t][p], x, h);
    return h;
}

void ref_jac_x(const ref_model *m, int t, const double *x, gsl_matrix *Fx)
{
    const ocn_game *g = m->g;
    const ocn_stage *st = &g->stages[t];
    gsl_matrix_set_zero(Fx);
    for (int p = 0; p < st->nplayers; p++) {
        const ocn_player *pl = &st->players[p];
        double *h = player_h(m, t, p, x);
        size_t ro = (size_t)g->block_off[t + 1][pl->out_block], co = (size_t)g->block_off[t][pl->in_block];
        for (int r = 0; r < pl->out_dim; r++) {
            double d = ref_dact(pl->act, h[r]);
            if (pl->kind == OCN_PLAYER_ACT) {
                *gsl_matrix_ptr(Fx, ro + (size_t)r, co + (size_t)r) += d;
                continue;
            }
            for (int c = 0; c < pl->in_dim; c++)
                *gsl_matrix_ptr(Fx, ro + (size_t)r, co + (size_t)c) += d * ref_weight(pl, m->th[t][p], m->wfix[t][p], r, c);
        }
    }
    for (int k = 0; k < st->ncarries; k++) {
        const ocn_carry *c = &st->carries[k];
        size_t ro = (size_t)g->block_off[t + 1][c->to], co = (size_t)g->block_off[t][c->from];
        for (int i = 0; i < g->block_dim[t][c->from]; i++) *gsl_matrix_ptr(Fx, ro + (size_t)i, co + (size_t)i) += 1.0;
    }
}

/* dh_r/dθ_j of a dense or bias player (h is linear in θ): calls f(r, j, value). */
#define FOR_DH_DTHETA(pl, z, BODY)                                                          \
    for (int r_ = 0; r_ < (pl)->out_dim; r_++) {                                             \
        if ((pl)->kind == OCN_PLAYER_BIAS) {                                                 \
            int r = r_; size_t j = (size_t)r_; double dh = 1.0; BODY;                        \
            continue;                                                                        \
        }                                                                                    \
        if ((pl)->kind == OCN_PLAYER_CONV) { /* §14: r = (o, p), j = col·C_o + o */          \
            int K_ = ocn_player_na(pl) - 1, P_ = (pl)->conv.ho * (pl)->conv.wo;              \
            for (int c_ = 0; c_ <= K_; c_++) {                                               \
                int s_ = c_ < K_ ? ref_conv_src(&(pl)->conv, r_ % P_, c_) : -2;              \
                int r = r_; size_t j = (size_t)c_ * (size_t)(pl)->conv.co + (size_t)(r_ / P_); \
                double dh = s_ == -2 ? 1.0 : s_ < 0 ? 0.0 : (z)[s_]; BODY;                   \
            }                                                                                \
            continue;                                                                        \
        }                                                                                    \
        for (int c_ = 0; c_ <= (pl)->in_dim; c_++) {                                         \
            int r = r_; size_t j = (size_t)c_ * (size_t)(pl)->out_dim + (size_t)r_;          \
            double dh = c_ < (pl)->in_dim ? (z)[c_] : 1.0; BODY;                             \
        }                                                                                    \
    }

void ref_jac_theta(const ref_model *m, int t, int p, const double *x, gsl_matrix *Fth)
{
    const ocn_game *g = m->g;
    const ocn_player *pl = &g->stages[t].players[p];
    gsl_matrix_set_zero(Fth);
    if (!pl->m) return;
    double *h = player_h(m, t, p, x);
    const double *z = x + g->block_off[t][pl->in_block];
    size_t ro = (size_t)g->block_off[t + 1][pl->out_block];
    FOR_DH_DTHETA(pl, z, gsl_matrix_set(Fth, ro + (size_t)r, j, ref_dact(pl->act, h[r]) * dh));
}

/* v'·F_xx: Wᵀ diag(v ⊙ σ'') W on each player's input block (act: diag(v ⊙ σ'')). */
void ref_second_order_x(const ref_model *m, int t, const double *x, const double *v, gsl_matrix *Hxx)
{
    const ocn_game *g = m->g;
    const ocn_stage *st = &g->stages[t];
    for (int q = 0; q < st->nplayers; q++) {
        const ocn_player *pl = &st->players[q];
        double *h = player_h(m, t, q, x);
        const double *vo = v + g->block_off[t + 1][pl->out_block];
        size_t co = (size_t)g->block_off[t][pl->in_block];
        for (int r = 0; r < pl->out_dim; r++) {
            double w = vo[r] * ref_ddact(pl->act, h[r]);
            if (w == 0.0) continue;
            if (pl->kind == OCN_PLAYER_ACT) {
                *gsl_matrix_ptr(Hxx, co + (size_t)r, co + (size_t)r) += w;
                continue;
            }
            for (int a = 0; a < pl->in_dim; a++) {
                double wa = w * ref_weight(pl, m->th[t][q], m->wfix[t][q], r, a);
                for (int b = 0; b < pl->in_dim; b++)
                    *gsl_matrix_ptr(Hxx, co + (size_t)a, co + (size_t)b) += wa * ref_weight(pl, m->th[t][q], m->wfix[t][q], r, b);
            }
        }
    }
}

/* v'·F_θx (m x n) = h_θᵀ diag(w) W + V_h·h_θx with V_h = v ⊙ σ' (DDPNOpt eq. 27),
 * and v'·F_θθ (m x m) = h_θᵀ diag(w) h_θ (h is linear in θ), w = v ⊙ σ''. */
void ref_second_order_player(const ref_model *m, int t, int p, const double *x, const double *v, gsl_matrix *Hthx,
                             gsl_matrix *Hthth)
{
    const ocn_game *g = m->g;
    const ocn_player *pl = &g->stages[t].players[p];
    if (!pl->m) return;
    double *h = player_h(m, t, p, x);
    const double *vo = v + g->block_off[t + 1][pl->out_block];
    const double *z = x + g->block_off[t][pl->in_block];
    size_t co = (size_t)g->block_off[t][pl->in_block];
    double *w = m->ws + m->nmax; /* region 1 */
    for (int r = 0; r < pl->out_dim; r++) w[r] = vo[r] * ref_ddact(pl->act, h[r]);
    FOR_DH_DTHETA(pl, z, {
        for (int b = 0; b < pl->in_dim; b++)
            *gsl_matrix_ptr(Hthx, j, co + (size_t)b) += dh * w[r] * ref_weight(pl, m->th[t][p], m->wfix[t][p], r, b);
    });
    if (pl->kind == OCN_PLAYER_CONV) /* §14: ∂²h_(o,p)/∂W[o,col]∂z_src = 1 */
        for (int r = 0; r < pl->out_dim; r++) {
            int K = ocn_player_na(pl) - 1, P = pl->conv.ho * pl->conv.wo;
            for (int col = 0; col < K; col++) {
                int src = ref_conv_src(&pl->conv, r % P, col);
                if (src >= 0)
                    *gsl_matrix_ptr(Hthx, (size_t)col * (size_t)pl->conv.co + (size_t)(r / P), co + (size_t)src) +=
                        vo[r] * ref_dact(pl->act, h[r]);
            }
        }
    if (pl->kind == OCN_PLAYER_DENSE)
        for (int r = 0; r < pl->out_dim; r++)
            for (int c = 0; c < pl->in_dim; c++)
                *gsl_matrix_ptr(Hthx, (size_t)c * (size_t)pl->out_dim + (size_t)r, co + (size_t)c) +=
                    vo[r] * ref_dact(pl->act, h[r]);
    if (pl->kind == OCN_PLAYER_CONV) { /* §14: h_θθ = 0, so v'·F_θθ = h_θᵀ diag(w) h_θ, per output r */
        int K = ocn_player_na(pl) - 1, P = pl->conv.ho * pl->conv.wo;
        double *a = m->ws + 4 * m->nmax; /* region 4 (ref.h) */
        for (int r = 0; r < pl->out_dim; r++) {
            if (w[r] == 0.0) continue;
            ref_conv_patch(&pl->conv, z, r % P, a);
            size_t o = (size_t)(r / P), Co = (size_t)pl->conv.co;
            for (int c1 = 0; c1 <= K; c1++)
                for (int c2 = 0; c2 <= K; c2++)
                    *gsl_matrix_ptr(Hthth, (size_t)c1 * Co + o, (size_t)c2 * Co + o) += a[c1] * w[r] * a[c2];
        }
        return;
    }
    for (int r = 0; r < pl->out_dim; r++) {
        if (w[r] == 0.0) continue;
        int ncol = pl->kind == OCN_PLAYER_BIAS ? 1 : pl->in_dim + 1;
        for (int c1 = 0; c1 < ncol; c1++) {
            size_t j1 = pl->kind == OCN_PLAYER_BIAS ? (size_t)r : (size_t)c1 * (size_t)pl->out_dim + (size_t)r;
            double d1 = (pl->kind == OCN_PLAYER_BIAS || c1 == pl->in_dim) ? 1.0 : z[c1];
            for (int c2 = 0; c2 < ncol; c2++) {
                size_t j2 = pl->kind == OCN_PLAYER_BIAS ? (size_t)r : (size_t)c2 * (size_t)pl->out_dim + (size_t)r;
                double d2 = (pl->kind == OCN_PLAYER_BIAS || c2 == pl->in_dim) ? 1.0 : z[c2];
                *gsl_matrix_ptr(Hthth, j1, j2) += d1 * w[r] * d2;
            }
        }
    }
}
