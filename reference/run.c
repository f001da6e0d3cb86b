/* One optimizer step of the dense reference: forward (§3), terminal (§1),
 * FNE backward (§4, §5), update pass (§8); every §11 array stored with its
 * §10 amplification c (problem size × product of the condition numbers of
 * the pseudo-inverses it went through). */
#include "fne.h"
#include "update.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FAULT_NAMES[] = {"none", "K-sign", "feedback-drop", "K-perturb", "k-perturb"};

const char *ocn_fault_name(ocn_fault f) { return (unsigned)f < OCN_FAULT_COUNT ? FAULT_NAMES[f] : "?"; }

int ocn_fault_parse(const char *s, ocn_fault *out)
{
    for (int f = 0; f < OCN_FAULT_COUNT; f++)
        if (!strcmp(s, FAULT_NAMES[f])) {
            *out = (ocn_fault)f;
            return OCN_OK;
        }
    return OCN_EINVAL;
}

typedef struct {
    ocn_arrayset *out;
    int fail;
} store;

static ocn_array *put(store *s, double cond, int ndim, size_t d0, size_t d1, size_t d2, const char *fmt, int t, int n)
{
    char name[64];
    snprintf(name, sizeof name, fmt, t, n);
    ocn_array *a = ocn_arrayset_add2(s->out, name, ndim, d0, d1, d2);
    if (!a) s->fail = 1;
    else a->cond = cond;
    return a;
}

static void put_matrix(store *s, double cond, const gsl_matrix *M, const char *fmt, int t, int n)
{
    ocn_array *a = put(s, cond, 2, M->size1, M->size2, 0, fmt, t, n);
    for (size_t i = 0; a && i < M->size1; i++)
        for (size_t j = 0; j < M->size2; j++) a->data[i * M->size2 + j] = gsl_matrix_get(M, i, j);
}

/* Per-sample diagonal blocks of a (Bn x Bn) matrix as (B, n, n). */
static void put_diag_blocks(store *s, double cond, const gsl_matrix *M, int B, const char *fmt, int t, int n)
{
    size_t d = M->size1 / (size_t)B;
    ocn_array *a = put(s, cond, 3, (size_t)B, d, d, fmt, t, n);
    for (int i = 0; a && i < B; i++)
        for (size_t r = 0; r < d; r++)
            for (size_t c = 0; c < d; c++)
                a->data[((size_t)i * d + r) * d + c] = gsl_matrix_get(M, (size_t)i * d + r, (size_t)i * d + c);
}

static void put_batch(store *s, double cond, gsl_matrix *const *M, int B, const char *fmt, int t, int n)
{
    size_t r = M[0]->size1, c = M[0]->size2;
    ocn_array *a = put(s, cond, 3, (size_t)B, r, c, fmt, t, n);
    for (int i = 0; a && i < B; i++)
        for (size_t x = 0; x < r; x++)
            for (size_t y = 0; y < c; y++) a->data[((size_t)i * r + x) * c + y] = gsl_matrix_get(M[i], x, y);
}

static void put_values(store *s, double cond, const gsl_matrix *Vx, const gsl_matrix *VXX, int B, int aug, int t, int n)
{
    put_matrix(s, cond, Vx, "Vx_t%d_n%d", t, n);
    put_diag_blocks(s, cond, VXX, B, "Vxx_t%d_n%d", t, n);
    if (aug) put_matrix(s, cond, VXX, "VXX_t%d_n%d", t, n);
}

static void put_stage(store *s, const ref_fne_out *o, int B, int aug, double cq, double cg, int t, int n)
{
    put_matrix(s, cq, o->Qx, "Qx_t%d_n%d", t, n);
    put_diag_blocks(s, cq, o->QXX, B, "Qxx_t%d_n%d", t, n);
    if (o->p >= 0) {
        gsl_matrix_const_view qth = gsl_matrix_const_view_vector(o->Qth, o->Qth->size, 1);
        ocn_array *a = put(s, cq, 1, o->Qth->size, 0, 0, "Qth_t%d_n%d", t, n);
        if (a) memcpy(a->data, qth.matrix.data, o->Qth->size * sizeof(double));
        put_matrix(s, cq, o->Qthi, "Qthi_t%d_n%d", t, n);
        put_batch(s, cq, o->Qthx, B, "Qthx_t%d_n%d", t, n);
        put_matrix(s, cq, o->Qthth, "Qthth_t%d_n%d", t, n);
        a = put(s, cg, 1, o->k->size, 0, 0, "k_t%d_n%d", t, n);
        for (size_t j = 0; a && j < o->k->size; j++) a->data[j] = gsl_vector_get(o->k, j);
        put_batch(s, cg, o->K, B, "K_t%d_n%d", t, n);
    }
    put_values(s, cg, o->Vx, o->VXX, B, aug, t, n);
}

int ocn_ref_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *inputs,
                const ocn_ref_opts *o, ocn_arrayset *out, ocn_error *err)
{
    ref_gsl_quiet();
    if (opt->game == OCN_GAME_GR)
        return ocn_fail(err, OCN_EUNSUPPORTED,
                        "%s: GR (cooperative) games are not implemented in the reference yet (issue 3)", g->name);
    ocn_fault fault = o ? o->fault : OCN_FAULT_NONE;
    ref_model m;
    int rc = ref_model_init(g, inputs, &m, err);
    if (rc) {
        ref_model_free(&m);
        return rc;
    }
    int B = g->batch, T = g->T, N = g->nlanes, aug = opt->value == OCN_VALUE_AUGMENTED;
    store s = {out, 0};

    /* §10 amplification: size × product of condition numbers on the way */
    int nmax = 0, mmax = 0;
    for (int t = 0; t <= T; t++) nmax = g->n[t] > nmax ? g->n[t] : nmax;
    for (int t = 0; t < T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            mmax = g->stages[t].players[p].m > mmax ? g->stages[t].players[p].m : mmax;
    double size = (double)B * nmax + mmax, *cum = calloc((size_t)T + 1, sizeof *cum);

    /* forward (§3) */
    gsl_matrix **X = calloc((size_t)T + 1, sizeof *X), **dX = calloc((size_t)T + 1, sizeof *dX);
    for (int t = 0; t <= T; t++) {
        X[t] = gsl_matrix_alloc((size_t)B, (size_t)g->n[t]);
        dX[t] = gsl_matrix_alloc((size_t)B, (size_t)g->n[t]);
    }
    memcpy(X[0]->data, m.x0, (size_t)B * (size_t)g->n[0] * sizeof(double));
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++)
            ref_stage_forward(&m, t, m.th[t], gsl_matrix_ptr(X[t], (size_t)i, 0), gsl_matrix_ptr(X[t + 1], (size_t)i, 0));

    /* terminal (§1): per lane, v_x^(i) = ∇φ_n, Ṽ = blockdiag(∇²φ_n) */
    gsl_matrix **v = calloc((size_t)N, sizeof *v), **V = calloc((size_t)N, sizeof *V);
    size_t nT = (size_t)g->n[T];
    gsl_matrix *H = gsl_matrix_alloc(nT, nT);
    for (int n = 0; n < N; n++) {
        v[n] = gsl_matrix_calloc((size_t)B, nT);
        V[n] = gsl_matrix_calloc((size_t)B * nT, (size_t)B * nT);
        for (int i = 0; i < B; i++) {
            ref_terminal(&m, n, i, gsl_matrix_ptr(X[T], (size_t)i, 0), opt->terminal, gsl_matrix_ptr(v[n], (size_t)i, 0), H);
            gsl_matrix_view blk = gsl_matrix_submatrix(V[n], (size_t)i * nT, (size_t)i * nT, nT, nT);
            gsl_matrix_memcpy(&blk.matrix, H);
        }
        put_values(&s, size, v[n], V[n], B, aug, T, n);
    }
    gsl_matrix_free(H);

    /* backward (§4) — keep gains per player for the update pass */
    gsl_vector ***k = calloc((size_t)T, sizeof *k);
    gsl_matrix ****K = calloc((size_t)T, sizeof *K);
    ref_fne_out *outs = calloc((size_t)N, sizeof *outs);
    cum[T] = 1.0;
    for (int t = T - 1; t >= 0 && !rc; t--) {
        k[t] = calloc((size_t)g->stages[t].nplayers, sizeof **k);
        K[t] = calloc((size_t)g->stages[t].nplayers, sizeof **K);
        double cstage = 1.0;
        memset(outs, 0, (size_t)N * sizeof *outs);
        for (int n = 0; n < N && !rc; n++) {
            rc = ref_fne_stage(&m, opt, fault, t, n, X[t], v[n], V[n], &outs[n], err);
            if (!rc) cstage = fmax(cstage, outs[n].cond);
        }
        cum[t] = cum[t + 1] * cstage;
        for (int n = 0; n < N; n++) {
            if (!rc) put_stage(&s, &outs[n], B, aug, size * cum[t + 1], size * cum[t], t, n);
            if (!rc && outs[n].p >= 0) { /* hand gains over; the rest is freed */
                k[t][outs[n].p] = outs[n].k;
                K[t][outs[n].p] = outs[n].K;
                outs[n].k = NULL;
                outs[n].K = NULL;
            }
            if (outs[n].Vx) {
                gsl_matrix_free(v[n]), gsl_matrix_free(V[n]);
                v[n] = outs[n].Vx, V[n] = outs[n].VXX;
                outs[n].Vx = outs[n].VXX = NULL;
            }
            ref_fne_out_free(&outs[n], B);
        }
    }

    /* update pass (§8) */
    double ***thn = calloc((size_t)T, sizeof *thn);
    for (int t = 0; t < T; t++) {
        thn[t] = calloc((size_t)g->stages[t].nplayers, sizeof **thn);
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (g->stages[t].players[p].m) thn[t][p] = calloc((size_t)g->stages[t].players[p].m, sizeof(double));
    }
    if (!rc) rc = ref_update_pass(&m, fault, (gsl_vector *const *const *)k, (gsl_matrix **const *const *)K,
                                  (const gsl_matrix *const *)X, dX, thn, err);
    if (!rc) {
        for (int t = 0; t <= T; t++) {
            put_matrix(&s, size, X[t], "x_t%d%.0d", t, 0);
            put_matrix(&s, size * cum[0], dX[t], "dx_t%d%.0d", t, 0);
        }
        for (int t = 0; t < T; t++)
            for (int p = 0; p < g->stages[t].nplayers; p++) {
                const ocn_player *pl = &g->stages[t].players[p];
                if (!pl->m) continue;
                ocn_array *a = put(&s, size * cum[0], 1, (size_t)pl->m, 0, 0, "theta_new_t%d_n%d", t, pl->lane);
                if (a) memcpy(a->data, thn[t][p], (size_t)pl->m * sizeof(double));
            }
    }
    if (!rc && s.fail) rc = ocn_fail(err, OCN_ENOMEM, "out of memory storing results");
    /* NaN/Inf where inputs were finite is a numerical failure, never silent */
    for (int i = 0; !rc && i < out->count; i++)
        for (size_t j = 0; j < out->a[i].size; j++)
            if (!isfinite(out->a[i].data[j])) {
                rc = ocn_fail(err, OCN_ENUMERIC, "%s: reference produced NaN/Inf in '%s'", g->name, out->a[i].name);
                break;
            }

    for (int t = 0; t < T; t++) {
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            if (k[t] && k[t][p]) gsl_vector_free(k[t][p]);
            if (K[t] && K[t][p]) {
                for (int i = 0; i < B; i++) gsl_matrix_free(K[t][p][i]);
                free(K[t][p]);
            }
            if (thn[t]) free(thn[t][p]);
        }
        free(k[t]), free(K[t]), free(thn[t]);
    }
    free(k), free(K), free(thn), free(outs);
    for (int n = 0; n < N; n++) gsl_matrix_free(v[n]), gsl_matrix_free(V[n]);
    free(v), free(V);
    for (int t = 0; t <= T; t++) gsl_matrix_free(X[t]), gsl_matrix_free(dX[t]);
    free(X), free(dX), free(cum);
    ref_model_free(&m);
    return rc;
}
