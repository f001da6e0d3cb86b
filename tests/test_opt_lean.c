/* Lean (training) steps of the optimized path (issue 12 follow-up, helper
 * perf): a lean step skips the passes over parameter-sized arrays that only
 * other outputs read — Q_θ's λθ and k = η Q_θ of sgd formed as θ_new is
 * written, kfac's unused Q_θ without weight decay, the final NaN/Inf check
 * done as θ_new is converted.  The arithmetic of θ_new is unchanged, so it
 * must be the full step's bit for bit (the full step is the one `ocn check`
 * compares with the reference); a non-finite θ_new is still refused. */
#include "util.h"
#include "ocn/optimized.h"

#include <math.h>
#include <string.h>

/* Lean against full, both as stateful steps (θ_new fed back), every θ_new bit for bit. */
static void expect_lean_is_full(const ocn_game *g, const ocn_optimizer *o, const ocn_arrayset *in0, int prec, int nofb,
                                int steps, const char *what)
{
    ocn_error e = {0};
    ocn_opt_config full = {.backend = "cpu", .precision = prec, .no_feedback = nofb}, lean = full;
    lean.lean = 1;
    ocn_opt_state *sf = NULL, *sl = NULL;
    int rf = ocn_opt_state_new(g, o, &full, &sf, &e);
    if (rf == OCN_EUNSUPPORTED) return;
    cr_assert_eq(rf, OCN_OK, "%s: %s", what, e.msg);
    cr_assert_eq(ocn_opt_state_new(g, o, &lean, &sl, &e), OCN_OK, "%s: %s", what, e.msg);
    ocn_arrayset *in = ocn_arrayset_new(), *a = ocn_arrayset_new(), *b = ocn_arrayset_new();
    for (int i = 0; i < in0->count; i++) {
        ocn_array *c = ocn_arrayset_add(in, in0->a[i].name, in0->a[i].ndim, in0->a[i].shape);
        memcpy(c->data, in0->a[i].data, c->size * sizeof(double));
    }
    for (int s = 0; s < steps; s++) {
        rf = ocn_opt_step(sf, in, a, &e);
        if (rf == OCN_EUNSUPPORTED) break;
        cr_assert_eq(rf, OCN_OK, "%s: %s", what, e.msg);
        cr_assert_eq(ocn_opt_step(sl, in, b, &e), OCN_OK, "%s step %d: %s", what, s, e.msg);
        int nt = 0;
        for (int i = 0; i < a->count; i++) {
            if (strncmp(a->a[i].name, "theta_new_", 10)) continue;
            const ocn_array *y = ocn_arrayset_find(b, a->a[i].name);
            cr_assert(y && y->size == a->a[i].size && !memcmp(y->data, a->a[i].data, y->size * sizeof(double)),
                      "%s f%d nofb %d step %d: '%s' of the lean step differs from the full step's", what, prec, nofb, s,
                      a->a[i].name);
            char nm[64];
            snprintf(nm, sizeof nm, "theta_%s", a->a[i].name + 10);
            ocn_array *th = ocn_arrayset_find(in, nm);
            cr_assert(th != NULL);
            memcpy(th->data, y->data, y->size * sizeof(double)); /* a training loop */
            nt++;
        }
        cr_expect_gt(nt, 0);
        cr_expect_eq(b->count, nt, "%s: only theta_new_* in a lean step", what);
    }
    ocn_opt_state_free(sf), ocn_opt_state_free(sl);
    ocn_arrayset_free(in), ocn_arrayset_free(a), ocn_arrayset_free(b);
}

/* Every shipped one-step fixture, its own optimizer and the sgd and kfac
 * variants (weight decay as shipped and 0), feedback on and off, f32 and f64. */
Test(opt_lean, theta_new_bit_identical_to_the_full_step_on_every_fixture, .timeout = 300)
{
    int nf = 0, ncmp = 0;
    const char *const *fx = tu_fixtures(&nf);
    for (int k = 0; k < nf; k++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        cr_assert_eq(ocn_fixture_read(fx[k], &f, &e), OCN_OK, "%s", e.msg);
        if (f->game->opt.steps > 1 || ocn_opt_unsupported(f->game, &f->game->opt)) {
            ocn_fixture_free(f);
            continue;
        }
        double wd0 = f->game->weight_decay;
        for (int v = 0; v < 5; v++) {
            ocn_optimizer o = f->game->opt;
            o.stat_decay = 0.9, o.refresh_every = 2;
            if (v == 1 || v == 2) o.curvature = OCN_CURV_SGD;
            if (v == 3 || v == 4) o.curvature = OCN_CURV_KFAC, o.damping = 0.1;
            f->game->weight_decay = v == 2 || v == 4 ? 0 : wd0;
            if (ocn_opt_unsupported(f->game, &o)) continue;
            for (int prec = 32; prec <= 64; prec += 32)
                for (int nofb = 0; nofb <= 1; nofb++, ncmp++) expect_lean_is_full(f->game, &o, f->arrays, prec, nofb, 3, fx[k]);
        }
        f->game->weight_decay = wd0;
        ocn_fixture_free(f);
    }
    cr_expect_gt(ncmp, 300);
}

/* An MLP where kfac's gain takes its rank-B form (width 24 > 1.5 × batch 4):
 * without weight decay the lean step forms no Q_θ at all — its GEMMs are
 * counted: (in+1)·out·B·2 fewer per layer than with Q_θ formed. */
Test(opt_lean, rank_b_kfac_and_sgd_mlp_bit_identical_and_skip_q_theta)
{
    static const char *curv[] = {"sgd", "kfac", "rmsprop"};
    for (int c = 0; c < 3; c++)
        for (int wd = 0; wd <= 1; wd++) {
            char js[2048];
            snprintf(js, sizeof js,
                     "{\"name\": \"lean-mlp\", \"seed\": 5, \"batch\": 4, \"input_dim\": 24,"
                     " \"loss\": {\"kind\": \"ce\", \"classes\": 3}, \"weight_decay\": %g, \"stages\": ["
                     "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 24, \"act\": \"tanh\"}]},"
                     "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 24, \"act\": \"tanh\"}]},"
                     "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"identity\"}]}"
                     " ], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"%s\", \"value\": \"blockdiag\","
                     " \"terminal\": \"outer\", \"lr\": 0.1, \"damping\": 0.01, \"stat_decay\": 0.95, \"refresh_every\": 3}}",
                     wd ? 1e-3 : 0.0, curv[c]);
            ocn_game *g = tu_game(js);
            ocn_error e = {0};
            ocn_arrayset *in = ocn_arrayset_new();
            cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
            for (int prec = 32; prec <= 64; prec += 32)
                for (int nofb = 0; nofb <= 1; nofb++) expect_lean_is_full(g, &g->opt, in, prec, nofb, 5, js);
            if (c == 1 && !wd) { /* kfac, no_feedback, wd 0: GEMM FLOPs of one lean and one full step */
                double fl[2], qth = 0, x0 = 0, fwd = 0, B = g->batch;
                for (int lean = 0; lean <= 1; lean++) {
                    ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .no_feedback = 1, .lean = lean};
                    ocn_opt_state *st = NULL;
                    ocn_arrayset *out = ocn_arrayset_new();
                    cr_assert_eq(ocn_opt_state_new(g, &g->opt, &cfg, &st, &e), OCN_OK, "%s", e.msg);
                    cr_assert_eq(ocn_opt_step(st, in, out, &e), OCN_OK, "%s", e.msg);
                    fl[lean] = ocn_opt_state_gemm_flops(st);
                    ocn_opt_state_free(st);
                    ocn_arrayset_free(out);
                }
                for (int t = 0; t < g->T; t++) {
                    const ocn_player *p = &g->stages[t].players[0];
                    double na = p->in_dim + 1.0, o = p->out_dim; /* kfac's rank-B gain where it is cheaper */
                    if (B * (na * na + o * o + na * o) < na * o * (na + o)) qth += 2 * na * o * B; /* Q_θ = (1/B) Aᵀ G */
                    fwd += 2 * B * p->out_dim * p->in_dim;       /* the x̂ pass (none without feedback) */
                    if (!t) x0 = 2 * B * p->out_dim * p->in_dim; /* stage 0's Q_x (not formed by a lean step) */
                }
                cr_expect_eq(fl[1], fl[0] - qth - x0 - fwd, "lean kfac wd 0: %g GEMM FLOPs, full %g, Q_θ %g", fl[1],
                             fl[0], qth);
            }
            ocn_arrayset_free(in);
            ocn_game_free(g);
        }
}

/* A θ_new that overflows (f32: lr 1e10, weight decay 1, a bias of 1e30) is refused by a lean step as by a full
 * one, naming the array, although the lean step checks it as it is written. */
Test(opt_lean, non_finite_theta_new_refused_by_a_lean_step)
{
    static const char *curv[] = {"sgd", "kfac"};
    for (int c = 0; c < 2; c++)
        for (int lean = 1; lean <= 1; lean++) { /* (a full step refuses in its x̂ pass first) */
            char js[2048];
            snprintf(js, sizeof js,
                     "{\"name\": \"lean-inf\", \"seed\": 5, \"batch\": 4, \"input_dim\": 6,"
                     " \"loss\": {\"kind\": \"ce\", \"classes\": 3}, \"weight_decay\": 1, \"stages\": ["
                     "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 5, \"act\": \"tanh\"}]},"
                     "  {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"identity\"}]}"
                     " ], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"%s\", \"lr\": 1e10, \"damping\": 0.01}}",
                     curv[c]);
            ocn_game *g = tu_game(js);
            ocn_error e = {0};
            ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
            cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
            ocn_array *b = ocn_arrayset_find(in, "theta_t1_n0"); /* the last layer's bias: 1e30 */
            for (size_t i = b->size - 3; i < b->size; i++) b->data[i] = 1e30;
            ocn_opt_config cfg = {.backend = "cpu", .precision = 32, .no_feedback = 1, .lean = lean};
            ocn_opt_state *st = NULL;
            cr_assert_eq(ocn_opt_state_new(g, &g->opt, &cfg, &st, &e), OCN_OK, "%s", e.msg);
            cr_expect_eq(ocn_opt_step(st, in, out, &e), OCN_EUNSUPPORTED, "%s lean %d", curv[c], lean);
            cr_expect(strstr(e.msg, "NaN/Inf in 'theta_new_t") != NULL, "%s lean %d: %s", curv[c], lean, e.msg);
            cr_expect_eq(out->count, 0, "nothing handed back");
            ocn_opt_state_free(st);
            ocn_arrayset_free(in), ocn_arrayset_free(out);
            ocn_game_free(g);
        }
}
