/* Issue 10: the optimized path's peak memory, estimated from the game alone
 * before anything is allocated, so that a game that cannot fit is refused
 * with a message (exit 2) instead of failing part-way or being killed.
 *
 * An upper-bound model of step_impl.h, in elements of the run's precision
 * (plus the float64 copies of the outputs handed back, unless `lean`):
 *   states        x_t, x̂_t, δx_t: 3·B·n_t per stage
 *   players       θ (×4: θ, θ_new, k, a feedback temporary), pre-activations
 *                 B·out, KFAC inputs B·na, per-sample gradient rows B·out
 *   curvature     kfac: the damped factors and their inverses, 3·(na² + out²)
 *                 per player (factor, inverse, eigen workspace); coop-kfac: the
 *                 embedded joint factors 3·((Σ na)² + (Σ out)²) per stage;
 *                 exact / gn-outer (§7 Woodbury): U (B·r·out per player) and
 *                 the core (B·r)² with its eigen workspace ×3
 *   value (§7)    kept for the update pass at every stage and lane: Z (B·r·n_t),
 *                 S (B·r²), q_x (B·r·n_t); the feedback in its rank-B form, K
 *                 (m·n_t per player) formed only for output up to form_limit
 *   outputs       float64 copies of every array written (x_t, Q…, k, K, V…;
 *                 Vxx/Qxx B·n_t² only up to form_limit entries)
 * r is the rank of the terminal value Hessian (§7): 1 with `terminal:
 * outer`, else the summed output dimension of the lanes.  The §10
 * perturbation runs of `ocn gen --backend` hold two output sets at once. */
#include "opt.h"
#include "ocn/memory.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    double total, part[5];
    double big;       /* the largest single array, elements */
    char bigname[160];
} est;

static const char *const PART[5] = {"the states and per-player vectors", "the curvature factors and inverses",
                                    "the low-rank values kept for the update pass (§7)",
                                    "the float64 copies of the outputs", "the Woodbury cores (§7)"};

static void add(est *e, int part, double elems, double bytes_per, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(est *e, int part, double elems, double bytes_per, const char *fmt, ...)
{
    double by = elems * bytes_per;
    e->total += by, e->part[part] += by;
    if (elems > e->big) {
        e->big = elems;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->bigname, sizeof e->bigname, fmt, ap);
        va_end(ap);
    }
}

static int terminal_rank(const ocn_game *g, const ocn_optimizer *o)
{
    if (o->terminal == OCN_TERMINAL_OUTER) return 1;
    int T = g->T, r = 0;
    for (int l = 0; l < g->nlanes; l++)
        for (int q = 0; q < g->lane_nout[l]; q++) r += g->block_dim[T][g->lane_outputs[l][q]];
    return r > 0 ? r : 1;
}

/* The model: every part, in bytes. */
static void model(const ocn_game *g, const ocn_optimizer *o, const ocn_opt_config *cfg, est *ep)
{
    est e;
    memset(&e, 0, sizeof e);
    double w = cfg && cfg->precision == 32 ? 4.0 : 8.0, B = g->batch;
    int lean = cfg && cfg->lean, runs = cfg ? cfg->measure_runs : 0;
    double limit = cfg ? (double)cfg->form_limit : 0;
    double r = terminal_rank(g, o);
    int gr = o->game == OCN_GAME_GR, N = gr ? 1 : g->nlanes;
    int nofb = cfg && cfg->no_feedback;
    /* the step's tables: one expansion record per stage and lane (step_impl.h), 64-byte alignment */
    add(&e, 0, (double)g->T * N * (double)ocn_opt_expn_bytes_f64 + 16384, 1, "the step's tables");
    for (int t = 0; t <= g->T; t++) {
        double n = g->n[t];
        add(&e, 0, (3 + 2 * N) * B * n + 256, w, "stage %d: the states (%d x %.0f; x̂, δx, Q_x and V_x alike)", t,
            g->batch, n);
        if (!lean) add(&e, 3, 2 * B * n, 8, "stage %d: x_t and dx_t (%d x %.0f doubles)", t, g->batch, n);
    }
    for (int t = 0; t < g->T; t++) {
        const ocn_stage *st = &g->stages[t];
        double n = g->n[t], sna = 0, sout = 0;
        for (int p = 0; p < st->nplayers; p++) {
            const ocn_player *pl = &st->players[p];
            double m = pl->m, out = pl->out_dim, na = pl->m > 0 ? m / (out > 0 ? out : 1) : 0;
            if (m <= 0) continue;
            /* §14 conv: factors na = c·k² + 1 and C_o; the im2col patches B·H_o·W_o·na */
            double L = pl->kind == OCN_PLAYER_CONV ? (double)pl->conv.ho * pl->conv.wo : 1;
            if (pl->kind == OCN_PLAYER_CONV) na = ocn_player_na(pl), out = ocn_player_ng(pl);
            sna += na, sout += out;
            /* θ and k kept; Q_θ, λθ in the backward pass, θ_new, its step, K δx and
             * M^†'s temporary in the update pass: 7 vectors of m; H, a, kfac's A A^†,
             * G_v G^† and g_z G^†, and the g's */
            add(&e, 0, 7 * m + 4 * B * L * out + 2 * B * L * na + (nofb ? 0 : 2 * B * r * L * out) + 48 * 64 / w, w,
                "stage %d player %d: θ, k and the per-sample rows (%.0f, %.0f)", t, p, m, B * L * out);
            if (L > 1 && !nofb) /* §14: per-sample q's formed for the value quadratic */
                add(&e, 2, (r + 1) * m, w, "stage %d player %d: the conv per-sample q's (%.0f x %.0f)", t, p, r, m);
            if (o->curvature == OCN_CURV_KFAC || o->curvature == OCN_CURV_COOP_KFAC)
                add(&e, 1, 3 * (na * na + out * out), w, "stage %d player %d: the KFAC factors (%.0f² and %.0f²)", t, p, na,
                    out);
            if ((o->curvature == OCN_CURV_EXACT || o->curvature == OCN_CURV_GN_OUTER) && L > 1)
                /* §14 conv: the Gram's location products A Aᵀ over B·P rows and G_L G_Rᵀ over B·r·P rows */
                add(&e, 4, (B * L) * (B * L) + (B * r * L) * (B * r * L), w,
                    "stage %d player %d: the conv Woodbury Gram's location products ((%.0f)² and (%.0f)²)", t, p, B * L,
                    B * r * L);
            if (o->curvature == OCN_CURV_EXACT || o->curvature == OCN_CURV_GN_OUTER)
                add(&e, 4, B * r * L * out, w, "stage %d player %d: the Woodbury factor U (%.0f x %.0f)", t, p, B * r * L, out);
            /* the feedback stays in its rank-B factored form (§7); K itself is
             * formed only for output, up to form_limit entries */
            int formk = !nofb && !lean && B * m * n <= limit;
            if (formk) add(&e, 2, B * m * n, w, "stage %d player %d: the feedback gain K formed for output (%d x %.0f x %.0f)", t, p, g->batch, m, n);
            if (!lean) add(&e, 3, 3 * m + (formk ? B * m * n : 0), 8,
                           "stage %d player %d: θ_new, k, Qθ and K as doubles (%.0f x %.0f)", t, p, m, n);
        }
        if (o->curvature == OCN_CURV_COOP_KFAC && gr)
            add(&e, 1, 3 * (sna * sna + sout * sout), w, "stage %d: the embedded coop-kfac factors (%.0f² and %.0f²)", t, sna,
                sout);
        if (o->curvature == OCN_CURV_EXACT || o->curvature == OCN_CURV_GN_OUTER) {
            /* the Gram, its eigenvectors, the core and its inverse, with the factorisations'
             * temporaries (6 of (B·r)²), the kept eigenvectors Vr and the Gram kept for
             * the refinement step of every group */
            int groups = (o->zero & OCN_ZERO_PUV) ? st->nplayers : 1;
            add(&e, 4, (6 + 2 * groups) * (B * r) * (B * r), w, "stage %d: the Woodbury core (%d·r)² with r = %.0f", t,
                g->batch, r);
        }
        if (!nofb) {
            add(&e, 2, N * (2 * B * r * n + B * r * r), w, "stage %d: the value factors Z, q_x (%.0f x %.0f) and S", t, B * r, n);
            if (!lean && (B * n * n <= limit)) {
                add(&e, 2, B * n * n, w, "stage %d: Vxx formed for output (%d x %.0f²)", t, g->batch, n);
                add(&e, 3, 2 * N * B * n * n, 8, "stage %d: Vxx and Qxx as doubles (%d x %.0f²)", t, g->batch, n);
            }
        }
    }
    if (runs > 0) e.total += e.part[3]; /* §10: the nominal outputs are held during each perturbation run */
    *ep = e;
}

/* The step's workspace (workspace.h) holds every part but the float64
 * copies of the outputs (those are the caller's arrays). */
size_t ocn_opt_plan_workspace(const ocn_game *g, const ocn_optimizer *o, const ocn_opt_config *cfg)
{
    est e;
    model(g, o, cfg, &e);
    double b = e.part[0] + e.part[1] + e.part[2] + e.part[4];
    return b < (double)SIZE_MAX / 2 ? (size_t)b : SIZE_MAX / 2;
}

double ocn_opt_estimate_memory(const ocn_game *g, const ocn_optimizer *o, const ocn_opt_config *cfg, char *dom,
                               size_t ndom)
{
    est e;
    model(g, o, cfg, &e);
    double w = cfg && cfg->precision == 32 ? 4.0 : 8.0;
    if (dom && ndom) {
        int big = 0;
        for (int k = 1; k < 5; k++) big = e.part[k] > e.part[big] ? k : big;
        char a[32], b[32];
        snprintf(dom, ndom, "%s (%s; the largest: %s, %s)", PART[big], ocn_format_bytes(e.part[big], a, sizeof a),
                 e.bigname, ocn_format_bytes(e.big * w, b, sizeof b));
    }
    return e.total;
}
