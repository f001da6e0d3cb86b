/* SPEC §14 conv players in the dense reference: the patch geometry
 * (cross-correlation, channel-major), the effective dense weight W_eff(r, c)
 * = ∂h_r/∂z_c that every Jacobian of §4 reads through ref_weight, and the
 * KFC statistics of §14.  The reference is dense by design: a conv is the
 * linear map h = W_eff z + b, formed entry by entry. */
#include "ref.h"

/* input index of patch entry col = (c·k + i)·k + j at output location p =
 * y·W_o + x, or -1 where the patch reads zero padding */
int ref_conv_src(const ocn_conv *q, int p, int col)
{
    int y = p / q->wo, x = p % q->wo, kk = q->k * q->k;
    int c = col / kk, i = (col % kk) / q->k, j = col % q->k;
    if (q->fault) { int tmp = i; i = j, j = tmp; } /* tests only (ocn/game.h) */
    int yi = y * q->s + i - q->pad, xi = x * q->s + j - q->pad;
    if (yi < 0 || yi >= q->h || xi < 0 || xi >= q->w) return -1;
    return (c * q->h + yi) * q->w + xi;
}

/* W_eff(r, c): r = (o, y, x), c = (ci, yi, xi); the kernel tap that maps
 * input c to output r, or 0 outside the patch. */
double ref_conv_weight(const ocn_player *pl, const double *theta, int r, int c)
{
    const ocn_conv *q = &pl->conv;
    int P = q->ho * q->wo, o = r / P, p = r % P, y = p / q->wo, x = p % q->wo;
    int ci = c / (q->h * q->w), yi = (c / q->w) % q->h, xi = c % q->w;
    int i = yi - (y * q->s - q->pad), j = xi - (x * q->s - q->pad);
    if (i < 0 || i >= q->k || j < 0 || j >= q->k) return 0.0;
    if (q->fault) { int tmp = i; i = j, j = tmp; } /* tests only (ocn/game.h) */
    return theta[(size_t)((ci * q->k + i) * q->k + j) * (size_t)q->co + (size_t)o];
}

/* a_p = [patch of z at location p in (c, i, j) order; 1] (length c·k² + 1) */
void ref_conv_patch(const ocn_conv *q, const double *z, int p, double *a)
{
    int K = q->c * q->k * q->k;
    for (int col = 0; col < K; col++) {
        int s = ref_conv_src(q, p, col);
        a[col] = s < 0 ? 0.0 : z[s];
    }
    a[K] = 1.0;
}

/* h[o·P + p] = Σ_col W[o, col] a_p[col] + b[o] (§14), no scratch */
void ref_conv_pre(const ocn_player *pl, const double *theta, const double *z, double *h)
{
    const ocn_conv *q = &pl->conv;
    int K = q->c * q->k * q->k, P = q->ho * q->wo;
    for (int p = 0; p < P; p++)
        for (int o = 0; o < q->co; o++) {
            double s = 0;
            for (int col = 0; col < K; col++) {
                int src = ref_conv_src(q, p, col);
                if (src >= 0) s += theta[(size_t)col * (size_t)q->co + (size_t)o] * z[src];
            }
            h[(size_t)o * (size_t)P + (size_t)p] = s + theta[(size_t)K * (size_t)q->co + (size_t)o];
        }
}

/* §14 KFC statistics of one sample, accumulated: A += (1/B) Σ_p a_p a_pᵀ
 * ((K+1)², K = c·k²), G += (1/B)(1/P) Σ_p g_p g_pᵀ (co²) with g_p[o] =
 * gh[o·P + p]; a: K + 1 scratch.  A, G row-major with leading dims lda, ldg. */
void ref_conv_kfc(const ocn_player *pl, const double *z, const double *gh, int B, double *a, double *A, size_t lda,
                  double *G, size_t ldg)
{
    const ocn_conv *q = &pl->conv;
    int K = q->c * q->k * q->k, P = q->ho * q->wo;
    for (int p = 0; p < P; p++) {
        ref_conv_patch(q, z, p, a);
        for (int r = 0; r <= K; r++)
            for (int c = 0; c <= K; c++) A[(size_t)r * lda + (size_t)c] += a[r] * a[c] / B;
        for (int r = 0; r < q->co; r++)
            for (int c = 0; c < q->co; c++)
                G[(size_t)r * ldg + (size_t)c] += gh[(size_t)r * (size_t)P + (size_t)p] * gh[(size_t)c * (size_t)P + (size_t)p] / B / P;
    }
}

/* θ-gradient of one sample, F_θᵀ ct = vec(Σ_p g_p a_pᵀ) (§2, §14), written to
 * gs (m); a: K + 1 scratch */
void ref_conv_theta_vjp(const ocn_player *pl, const double *z, const double *gh, double *a, double *gs)
{
    const ocn_conv *q = &pl->conv;
    int K = q->c * q->k * q->k, P = q->ho * q->wo;
    for (int j = 0; j < pl->m; j++) gs[j] = 0;
    for (int p = 0; p < P; p++) {
        ref_conv_patch(q, z, p, a);
        for (int col = 0; col <= K; col++)
            for (int o = 0; o < q->co; o++) gs[(size_t)col * (size_t)q->co + (size_t)o] += gh[(size_t)o * (size_t)P + (size_t)p] * a[col];
    }
}
