/* SPEC §4 backward pass of one stage in the augmented (whole-batch) form,
 * per-sample quantities scaled as in §1.  With F_θ the Jacobian of the
 * (joint) parameter of the players in the expansion:
 *   Q_x^(i)   = F_x^(i)ᵀ v_x'^(i)
 *   B·Q_XX    = [F_x^(i)ᵀ Ṽ'_ij F_x^(j)] (+ δ_ij v'·F_xx, "full")
 *   Q_θx^(j)  = Σ_i F_θ^(i)ᵀ Ṽ'_ij F_x^(j) (+ v'·F_θx)
 *   Q_θθ      = λI + (1/B) Σ_ij F_θ^(i)ᵀ Ṽ'_ij F_θ^(j) (+ mean v'·F_θθ)
 *   k = M^† Q_θ, K^(i) = M^† Q_θx^(i), v_x^(i) = Q_x^(i) − Q_xθ^(i) k,
 *   Ṽ_ij = B·Q_XX_ij − c Q_xθ^(i) K^(j)   (c = 1/B; persample: c = 1, i = j)
 * blockdiag/persample keep only the diagonal blocks of Ṽ (GT-DDP §4.2), and
 * store only those (expand.h, ref_vblock; issue 10).
 * FNE: one player (Q^{t,n} of lane n); GR: all players jointly (P, W).
 * Every allocation is checked (issue 10): out of memory returns OCN_ENOMEM
 * with the array named; nothing is left allocated but what `o` holds. */
#include "expand.h"

#include "ocn/memory.h"

#include <math.h>
#include <stdlib.h>

static int nomem(ocn_error *err, const char *what, double doubles)
{
    char sz[32];
    return ocn_fail(err, OCN_ENOMEM, "out of memory allocating %s, %s", what,
                    ocn_format_bytes(doubles * (double)sizeof(double), sz, sizeof sz));
}

/* B matrices r x c, zero-filled; NULL (nothing left allocated) when out of memory */
static gsl_matrix **alloc_batch(int B, size_t r, size_t c)
{
    gsl_matrix **a = calloc((size_t)B, sizeof *a);
    for (int i = 0; a && i < B; i++)
        if (!(a[i] = ref_matrix_calloc(r, c))) {
            while (i-- > 0) gsl_matrix_free(a[i]);
            free(a);
            return NULL;
        }
    return a;
}

static void free_batch(gsl_matrix **a, int B)
{
    if (!a) return;
    for (int i = 0; i < B; i++) gsl_matrix_free(a[i]);
    free(a);
}

void ref_stage_out_free(ref_stage_out *o, int B)
{
    gsl_matrix_free(o->Qx), gsl_matrix_free(o->Qxx), gsl_matrix_free(o->Vx), gsl_matrix_free(o->VXX);
    gsl_vector_free(o->Qth), gsl_vector_free(o->k);
    gsl_matrix_free(o->Qthi), gsl_matrix_free(o->Qthth);
    free_batch(o->Qthx, B);
    free_batch(o->K, B);
    o->Qx = o->Qxx = o->Vx = o->VXX = o->Qthi = o->Qthth = NULL;
    o->Qth = o->k = NULL;
    o->Qthx = o->K = NULL;
}

/* §10 rev. 2 on a block-stored B·Q_XX: the same draws, in the same order, as
 * ocn_perturb_sym on the full Bn x Bn matrix (upper triangle, row-major): the
 * zero off-diagonal blocks draw their factors too (a zero stays zero), so the
 * stream and every measured c are those of the full storage. */
static void perturb_sym_blocks(ocn_perturb *p, gsl_matrix *V, int B, size_t n)
{
    enum { Z = 512 };
    double zero[Z] = {0};
    if (!p) return;
    for (int i = 0; i < B; i++) {
        gsl_matrix_view blk = gsl_matrix_submatrix(V, (size_t)i * n, 0, n, n);
        double *A = blk.matrix.data;
        size_t ld = blk.matrix.tda;
        for (size_t a = 0; a < n; a++) {
            for (size_t b = a; b < n; b++) { /* the row's entries in block (i, i), mirrored */
                ocn_perturb_vec(p, &A[a * ld + b], 1);
                A[b * ld + a] = A[a * ld + b];
            }
            for (size_t rest = (size_t)(B - 1 - i) * n; rest;) { /* blocks (i, j > i): zeros */
                size_t k = rest < Z ? rest : Z;
                ocn_perturb_vec(p, zero, k);
                rest -= k;
            }
        }
    }
}

/* §5/§6 KFAC statistics on the embedded parameter: A_ww = mean a aᵀ with
 * a = [a_1; …; a_np], a_u = [z_u; 1] ([1] for a bias player); G_ww likewise
 * with g_u = σ'(h_u) ⊙ v_x'[out_u].  Per-player KFAC uses the diagonal blocks. */
static int kfac_factors(const ref_model *m, int t, const int *players, int np, const gsl_matrix *X,
                        const gsl_matrix *vnext, int *aoff, int *goff, gsl_matrix **A, gsl_matrix **G, ocn_error *err)
{
    const ocn_game *g = m->g;
    int B = m->B, na = 0, ng = 0, nh = 0;
    for (int u = 0; u < np; u++) {
        const ocn_player *pl = &g->stages[t].players[players[u]];
        aoff[u] = na, goff[u] = ng;
        na += ocn_player_na(pl);
        ng += ocn_player_ng(pl);
        nh += pl->out_dim;
    }
    aoff[np] = na, goff[np] = ng;
    *A = ref_matrix_calloc((size_t)na, (size_t)na);
    *G = ref_matrix_calloc((size_t)ng, (size_t)ng);
    double *a = malloc((size_t)na * sizeof *a), *gv = malloc((size_t)(ng + nh) * sizeof *gv);
    double *h = malloc((size_t)nh * sizeof *h);
    if (!*A || !*G || !a || !gv || !h) {
        gsl_matrix_free(*A), gsl_matrix_free(*G);
        *A = *G = NULL;
        free(a), free(gv), free(h);
        return nomem(err, "the KFAC factors A, G", (double)na * na + (double)ng * ng);
    }
    for (int i = 0; i < B; i++) {
        const double *x = gsl_matrix_const_ptr(X, (size_t)i, 0);
        for (int u = 0; u < np; u++) {
            const ocn_player *pl = &g->stages[t].players[players[u]];
            const double *z = x + g->block_off[t][pl->in_block];
            const double *v = gsl_matrix_const_ptr(vnext, (size_t)i, 0) + g->block_off[t + 1][pl->out_block];
            if (pl->kind == OCN_PLAYER_CONV) { /* §14 KFC: its own diagonal blocks; its cross blocks (coop only) stay 0 */
                double *gf = gv + ng;
                ref_player_pre(g, t, pl, m->th[t][players[u]], NULL, x, h);
                for (int r = 0; r < pl->out_dim; r++) gf[r] = ref_dact(pl->act, h[r]) * v[r];
                ref_conv_kfc(pl, z, gf, B, m->ws + 4 * m->nmax, gsl_matrix_ptr(*A, (size_t)aoff[u], (size_t)aoff[u]),
                             (*A)->tda, gsl_matrix_ptr(*G, (size_t)goff[u], (size_t)goff[u]), (*G)->tda);
                for (int c = aoff[u]; c < aoff[u + 1]; c++) a[c] = 0.0;
                for (int c = goff[u]; c < goff[u + 1]; c++) gv[c] = 0.0;
                continue;
            }
            ref_player_pre(g, t, pl, m->th[t][players[u]], m->wfix[t][players[u]], x, h + goff[u]);
            int nau = aoff[u + 1] - aoff[u];
            for (int c = 0; c + 1 < nau; c++) a[aoff[u] + c] = z[c];
            a[aoff[u] + nau - 1] = 1.0;
            for (int r = 0; r < pl->out_dim; r++) gv[goff[u] + r] = ref_dact(pl->act, h[goff[u] + r]) * v[r];
        }
        for (int r = 0; r < na; r++)
            for (int c = 0; c < na; c++) *gsl_matrix_ptr(*A, (size_t)r, (size_t)c) += a[r] * a[c] / B;
        for (int r = 0; r < ng; r++)
            for (int c = 0; c < ng; c++) *gsl_matrix_ptr(*G, (size_t)r, (size_t)c) += gv[r] * gv[c] / B;
    }
    free(a), free(gv), free(h);
    return OCN_OK;
}

/* F_θ of the joint parameter: the players' Jacobians side by side (each
 * written into its column block in place). */
static void joint_jac_theta(const ref_model *m, int t, const ref_stage_out *o, const double *x, gsl_matrix *F)
{
    for (int u = 0; u < o->np; u++) {
        int mu = m->g->stages[t].players[o->p[u]].m;
        gsl_matrix_view dst = gsl_matrix_submatrix(F, 0, (size_t)o->moff[u], F->size1, (size_t)mu);
        ref_jac_theta(m, t, o->p[u], x, &dst.matrix);
    }
}

/* "full": v'·F_xx summed over all players; v'·F_θx, v'·F_θθ per player of the
 * expansion (a player's f depends on its own θ only: no cross-player block). */
static void joint_second_order(const ref_model *m, int t, const ref_stage_out *o, const double *x, const double *v,
                               gsl_matrix *Hxx, gsl_matrix *Hthx, gsl_matrix *Hthth)
{
    ref_second_order_x(m, t, x, v, Hxx);
    for (int u = 0; Hthx && u < o->np; u++) { /* (Hthx is NULL without players) */
        size_t mu = (size_t)m->g->stages[t].players[o->p[u]].m;
        gsl_matrix_view hx = gsl_matrix_submatrix(Hthx, (size_t)o->moff[u], 0, mu, Hthx->size2);
        gsl_matrix_view hh = gsl_matrix_submatrix(Hthth, (size_t)o->moff[u], (size_t)o->moff[u], mu, mu);
        ref_second_order_player(m, t, o->p[u], x, v, &hx.matrix, &hh.matrix);
    }
}

#define GEMM(what, ...)                                                                      \
    do {                                                                                      \
        if (ref_gemm(__VA_ARGS__)) {                                                          \
            rc = ocn_fail(err, OCN_ENOMEM, "out of memory allocating the workspace of %s", what); \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)

int ref_stage_backward(const ref_model *m, const ocn_optimizer *opt, ocn_fault fault, int t, const int *players,
                       int np, const gsl_matrix *X, const gsl_matrix *vnext, const gsl_matrix *VXXnext,
                       ref_stage_out *o, ocn_error *err)
{
    const ocn_game *g = m->g;
    int B = m->B, rc = OCN_OK;
    size_t n = (size_t)g->n[t], n1 = (size_t)g->n[t + 1], Bn = (size_t)B * n;
    int full = opt->dynamics == OCN_DYN_FULL && fault != OCN_FAULT_SECOND_DROP, aug = opt->value == OCN_VALUE_AUGMENTED;
    o->np = np;
    o->m = 0;
    o->cond = 1.0;
    for (int u = 0; u < np; u++) {
        o->p[u] = players[u];
        o->moff[u] = o->m;
        o->m += g->stages[t].players[players[u]].m;
    }
    size_t mm = (size_t)o->m;
    double dB = B, dn = (double)n, dn1 = (double)n1, dm = (double)mm;

    /* per-sample Jacobians; the "full" second-order terms only when used */
    gsl_matrix **Fx = NULL, **Fth = NULL, **Hxx = NULL, **Hthx = NULL, *Hthth = NULL, *T1 = NULL, *T2 = NULL,
               *T3 = NULL, *Minv = NULL, *A = NULL, *G = NULL;
    if (!(Fx = alloc_batch(B, n1, n))) {
        rc = nomem(err, "the per-sample Jacobians F_x (B x n' x n)", dB * dn1 * dn);
        goto done;
    }
    if (np && !(Fth = alloc_batch(B, n1, mm))) {
        rc = nomem(err, "the per-sample Jacobians F_θ (B x n' x m)", dB * dn1 * dm);
        goto done;
    }
    if (full && !(Hxx = alloc_batch(B, n, n))) {
        rc = nomem(err, "the second-order terms V_x'·F_xx (B x n x n)", dB * dn * dn);
        goto done;
    }
    if (full && np && (!(Hthx = alloc_batch(B, mm, n)) || !(Hthth = ref_matrix_calloc(mm, mm)))) {
        rc = nomem(err, "the second-order terms V_x'·F_θx, V_x'·F_θθ (B x m x n, m x m)", dB * dm * dn + dm * dm);
        goto done;
    }
    for (int i = 0; i < B; i++) {
        const double *x = gsl_matrix_const_ptr(X, (size_t)i, 0);
        ref_jac_x(m, t, x, Fx[i]);
        if (np) joint_jac_theta(m, t, o, x, Fth[i]);
        if (full) joint_second_order(m, t, o, x, gsl_matrix_const_ptr(vnext, (size_t)i, 0), Hxx[i], np ? Hthx[i] : NULL, Hthth);
    }

    /* Q_x and B·Q_XX; B·Q_XX is formed where B·V_XX will be (updated in place below) */
    if (!(o->Qx = ref_matrix_calloc((size_t)B, n))) {
        rc = nomem(err, "Q_x (B x n)", dB * dn);
        goto done;
    }
    if (!(o->VXX = ref_matrix_calloc(Bn, aug ? Bn : n))) {
        rc = nomem(err, aug ? "B·Q_XX (Bn x Bn)" : "the diagonal blocks of B·Q_XX (B x n x n)", (double)Bn * (aug ? (double)Bn : dn));
        goto done;
    }
    if (!(T1 = ref_matrix_alloc(n, n1))) { /* F_x^(i)ᵀ Ṽ'_ij */
        rc = nomem(err, "F_xᵀ V' (n x n')", dn * dn1);
        goto done;
    }
    for (int i = 0; i < B; i++) {
        gsl_vector_const_view vi = gsl_matrix_const_row(vnext, (size_t)i);
        gsl_vector_view qi = gsl_matrix_row(o->Qx, (size_t)i);
        ref_gemv(1, 1.0, Fx[i], &vi.vector, 0.0, &qi.vector);
        for (int j = 0; j < B; j++) {
            if (i != j && !aug) continue; /* blockdiag/persample: Ṽ'_ij = 0 exactly off the diagonal */
            gsl_matrix_const_view Vij = ref_vblock_const(VXXnext, aug, n1, i, j);
            gsl_matrix_view Qij = ref_vblock(o->VXX, aug, n, i, j);
            GEMM("F_xᵀ V'", 1, 0, 1.0, Fx[i], &Vij.matrix, 0.0, T1);
            GEMM("Q_XX", 0, 0, 1.0, T1, Fx[j], 0.0, &Qij.matrix);
            if (i == j && full) gsl_matrix_add(&Qij.matrix, Hxx[i]);
        }
    }
    /* §10 rev. 2: the stage's expansion terms are perturbed as formed, so
     * cancellation later in the pass (V = Q − correction) is measured */
    ocn_perturb_mat(m->pert, o->Qx->data, o->Qx->size1, o->Qx->size2, o->Qx->tda);
    if (aug) ocn_perturb_sym(m->pert, o->VXX->data, o->VXX->size1, o->VXX->tda);
    else perturb_sym_blocks(m->pert, o->VXX, B, n);
    /* the stored Q_xx^(i): the diagonal blocks as perturbed */
    if (!(o->Qxx = ref_matrix_alloc(Bn, n))) {
        rc = nomem(err, "the diagonal blocks Q_xx^(i) (B x n x n)", dB * dn * dn);
        goto done;
    }
    for (int i = 0; i < B; i++) {
        gsl_matrix_view src = ref_vblock(o->VXX, aug, n, i, i), dst = ref_vblock(o->Qxx, 0, n, i, i);
        gsl_matrix_memcpy(&dst.matrix, &src.matrix);
    }

    if (np) {
        o->Qth = ref_vector_calloc(mm);
        o->Qthi = ref_matrix_calloc((size_t)B, mm);
        o->Qthth = ref_matrix_calloc(mm, mm);
        o->k = ref_vector_calloc(mm);
        if (!o->Qth || !o->Qthi || !o->Qthth || !o->k) {
            rc = nomem(err, "Q_θ, Q_θ^(i), Q_θθ, k (m, B x m, m x m, m)", 2 * dm + dB * dm + dm * dm);
            goto done;
        }
        if (!(o->Qthx = alloc_batch(B, mm, n))) {
            rc = nomem(err, "Q_θx^(i) (B x m x n)", dB * dm * dn);
            goto done;
        }
        if (!(o->K = alloc_batch(B, mm, n))) {
            rc = nomem(err, "the gains K^(i) (B x m x n)", dB * dm * dn);
            goto done;
        }
        T2 = ref_matrix_alloc(mm, n1), T3 = ref_matrix_alloc(mm, mm);
        if (!T2 || !T3) {
            rc = nomem(err, "F_θᵀ V', F_θᵀ V' F_θ (m x n', m x m)", dm * dn1 + dm * dm);
            goto done;
        }
        for (int i = 0; i < B; i++) {
            gsl_vector_const_view vi = gsl_matrix_const_row(vnext, (size_t)i);
            gsl_vector_view gi = gsl_matrix_row(o->Qthi, (size_t)i);
            ref_gemv(1, 1.0, Fth[i], &vi.vector, 0.0, &gi.vector);
            gsl_vector_add(o->Qth, &gi.vector);
            for (int j = 0; j < B; j++) {
                if (i != j && !aug) continue;
                gsl_matrix_const_view Vij = ref_vblock_const(VXXnext, aug, n1, i, j);
                GEMM("F_θᵀ V'", 1, 0, 1.0, Fth[i], &Vij.matrix, 0.0, T2);
                GEMM("Q_θx", 0, 0, 1.0, T2, Fx[j], 1.0, o->Qthx[j]);
                GEMM("Q_θθ", 0, 0, 1.0, T2, Fth[j], 0.0, T3);
                gsl_matrix_scale(T3, 1.0 / B);
                gsl_matrix_add(o->Qthth, T3);
            }
            if (full) gsl_matrix_add(o->Qthx[i], Hthx[i]);
        }
        gsl_matrix_free(T2), gsl_matrix_free(T3);
        T2 = T3 = NULL;
        gsl_vector_scale(o->Qth, 1.0 / B);
        double lam = g->weight_decay;
        for (int u = 0; u < np; u++) { /* ℓ_θ = λθ per player */
            int mu = g->stages[t].players[o->p[u]].m;
            gsl_vector_const_view th = gsl_vector_const_view_array(m->th[t][o->p[u]], (size_t)mu);
            gsl_vector_view dst = gsl_vector_subvector(o->Qth, (size_t)o->moff[u], (size_t)mu);
            ref_axpy(lam, &th.vector, &dst.vector);
        }
        if (full) {
            gsl_matrix_scale(Hthth, 1.0 / B);
            gsl_matrix_add(o->Qthth, Hthth);
        }
        for (size_t d = 0; d < mm; d++) /* ℓ_θθ = λI */
            *gsl_matrix_ptr(o->Qthth, d, d) += fault == OCN_FAULT_DECAY_TWICE ? 2 * lam : lam;
        /* `zero` (§12): FNE Qthx / GR Pux zero Q_θx; GR Puv zeroes cross-player blocks */
        if (opt->zero & (OCN_ZERO_QTHX | OCN_ZERO_PUX))
            for (int i = 0; i < B; i++) gsl_matrix_set_zero(o->Qthx[i]);
        if (opt->zero & OCN_ZERO_PUV)
            for (int u = 0; u < np; u++)
                for (int v = 0; v < np; v++)
                    if (u != v) {
                        gsl_matrix_view blk = gsl_matrix_submatrix(o->Qthth, (size_t)o->moff[u], (size_t)o->moff[v],
                                                                   (size_t)g->stages[t].players[o->p[u]].m,
                                                                   (size_t)g->stages[t].players[o->p[v]].m);
                        gsl_matrix_set_zero(&blk.matrix);
                    }

        /* §10 rev. 2: θ terms after λ and `zero`, in the order formed; the
         * gradients at the scale of their terms (docs/decisions.md "Perturbed
         * at the scale of the terms"): Q_θ^(i) = F_θ^(i)ᵀ v'^(i) and their
         * mean can cancel to a residue of rounding that a pseudo-inverse
         * then amplifies (fuzz game 0x8aa243824281aa6e: Q_θ = 3e-17 from
         * terms of 1e-1, k = 1e15 in the reference and 0 in a correct port) */
        if (m->pert) {
            double *sc = calloc((size_t)(B + 1) * mm, sizeof *sc);
            if (!sc) {
                rc = nomem(err, "the §10 scale of Q_θ (B + 1 x m)", (double)(B + 1) * dm);
                goto done;
            }
            for (int i = 0; i < B; i++)
                for (size_t l = 0; l < n1; l++) {
                    double v = fabs(gsl_matrix_get(vnext, (size_t)i, l));
                    for (size_t j = 0; j < mm; j++) sc[(size_t)(i + 1) * mm + j] += fabs(gsl_matrix_get(Fth[i], l, j)) * v;
                }
            for (int i = 0; i < B; i++)
                for (size_t j = 0; j < mm; j++) sc[j] += sc[(size_t)(i + 1) * mm + j] / B;
            for (int u = 0; u < np; u++)
                for (int j = 0; j < g->stages[t].players[o->p[u]].m; j++)
                    sc[(size_t)o->moff[u] + j] += fabs(lam * m->th[t][o->p[u]][j]);
            ocn_perturb_vec_at(m->pert, o->Qth->data, sc, mm);
            for (int i = 0; i < B; i++) ocn_perturb_vec_at(m->pert, gsl_matrix_ptr(o->Qthi, (size_t)i, 0), sc + (size_t)(i + 1) * mm, mm);
            free(sc);
        }
        for (int i = 0; i < B; i++) ocn_perturb_mat(m->pert, o->Qthx[i]->data, mm, n, o->Qthx[i]->tda);
        ocn_perturb_sym(m->pert, o->Qthth->data, mm, o->Qthth->tda);

        /* §5/§6 curvature and gains */
        if (!(Minv = ref_matrix_calloc(mm, mm))) {
            rc = nomem(err, "the curvature's pseudo-inverse M^† (m x m)", dm * dm);
            goto done;
        }
        int aoff[REF_MAX_PLAYERS + 1], goff[REF_MAX_PLAYERS + 1], mdim[REF_MAX_PLAYERS];
        for (int u = 0; u < np; u++) mdim[u] = g->stages[t].players[o->p[u]].m;
        if (opt->curvature == OCN_CURV_COOP_KFAC && opt->game == OCN_GAME_GR && np > 1 && !(opt->zero & OCN_ZERO_PUV))
            for (int u = 0; u < np; u++) /* §14 (the loader refuses it; variants bypass the loader) */
                if (g->stages[t].players[o->p[u]].kind == OCN_PLAYER_CONV) {
                    rc = ocn_fail(err, OCN_EUNSUPPORTED, "stage %d lane %d: coop-kfac is not defined on a stage with a "
                                  "conv player (SPEC §14)", t, g->stages[t].players[o->p[u]].lane);
                    goto done;
                }
        if (opt->curvature == OCN_CURV_KFAC || opt->curvature == OCN_CURV_COOP_KFAC)
            if ((rc = kfac_factors(m, t, o->p, np, X, vnext, aoff, goff, &A, &G, err))) goto done;
        ref_curv_in ci = {o->Qthth, o->Qthi, np, o->moff, mdim, A, G, aoff, goff, m->pert, NULL, m->traj};
        if (m->traj) { /* §13: the state of this expansion (FNE: the lane's player; GR: the stage's joint θ) */
            ci.st = &m->traj->st[t][opt->game == OCN_GAME_GR ? 0 : g->stages[t].players[o->p[0]].lane];
            ci.st->np = np;
            for (int u = 0; u < np; u++) ci.st->p[u] = o->p[u], ci.st->moff[u] = o->moff[u];
            ci.st->moff[np] = o->m;
        }
        ocn_optimizer fo = *opt;
        if (fault == OCN_FAULT_PUV_DROP && opt->game == OCN_GAME_GR) fo.zero |= OCN_ZERO_PUV_CURVATURE_ONLY;
        if ((rc = ref_curvature_pinv(&fo, &ci, Minv, &o->cond, err))) goto done;
        gsl_matrix_free(A), gsl_matrix_free(G);
        A = G = NULL;
        ref_gemv(0, 1.0, Minv, o->Qth, 0.0, o->k);
        for (int i = 0; i < B; i++) GEMM("the gains K = M^† Q_θx", 0, 0, 1.0, Minv, o->Qthx[i], 0.0, o->K[i]);
        if (fault == OCN_FAULT_k_PERTURB) gsl_vector_scale(o->k, 1.0 + 1e-6);
        for (int i = 0; i < B; i++) {
            if (fault == OCN_FAULT_K_SIGN) gsl_matrix_scale(o->K[i], -1.0);
            if (fault == OCN_FAULT_K_PERTURB) gsl_matrix_scale(o->K[i], 1.0 + 1e-6);
        }
        gsl_matrix_free(Minv);
        Minv = NULL;
    }

    /* value: v_x^(i) = Q_x^(i) − Q_xθ^(i) k;  Ṽ_ij = Q̃_ij − c Q_xθ^(i) K^(j), in place
     * (blockdiag/persample: diagonal blocks only, the others are not stored) */
    if (!(o->Vx = ref_matrix_alloc((size_t)B, n))) {
        rc = nomem(err, "V_x (B x n)", dB * dn);
        goto done;
    }
    gsl_matrix_memcpy(o->Vx, o->Qx);
    if (np) {
        for (int i = 0; i < B; i++) {
            gsl_vector_view vi = gsl_matrix_row(o->Vx, (size_t)i);
            ref_gemv(1, -1.0, o->Qthx[i], o->k, 1.0, &vi.vector);
            for (int j = 0; j < B; j++) {
                if (i != j && !aug) continue;
                double c = opt->value == OCN_VALUE_PERSAMPLE && fault != OCN_FAULT_PERSAMPLE_B ? 1.0 : 1.0 / B;
                gsl_matrix_view Vij = ref_vblock(o->VXX, aug, n, i, j);
                GEMM("V_XX", 1, 0, -c, o->Qthx[i], o->K[j], 1.0, &Vij.matrix);
            }
        }
    }
    if (fault == OCN_FAULT_W_PERTURB && opt->game == OCN_GAME_GR) gsl_matrix_scale(o->Vx, 1.0 + 1e-6);
done:
    free_batch(Fx, B), free_batch(Fth, B), free_batch(Hxx, B), free_batch(Hthx, B);
    gsl_matrix_free(Hthth), gsl_matrix_free(T1), gsl_matrix_free(T2), gsl_matrix_free(T3);
    gsl_matrix_free(Minv), gsl_matrix_free(A), gsl_matrix_free(G);
    return rc;
}
