/* The SPEC §9 theorem catalogue as one table (ggml test-case style): an
 * entry per ID, a predicate saying whether it applies to a game, and the
 * check.  A check that does not apply prints nothing — never a pass. */
#include "check.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

static int is_fne(const ocn_game *g) { return g->opt.game == OCN_GAME_FNE; }

static int has_params(const ocn_game *g) { return ocn_game_nparams(g) > 0; }

static int applies_always(const ocn_game *g) { return has_params(g); }

static int applies_fne(const ocn_game *g) { return is_fne(g) && has_params(g); }

/* P3: terminal outer + gn dynamics, per-sample value Hessians (§9). */
static int applies_p3(const ocn_game *g)
{
    return applies_fne(g) && g->opt.terminal == OCN_TERMINAL_OUTER && g->opt.dynamics == OCN_DYN_GN &&
           (g->opt.value != OCN_VALUE_AUGMENTED || g->batch == 1);
}

/* LQR: bias-only parameters, identity σ, mse, λ > 0, exact, augmented or B = 1, undamped. */
static int applies_lqr(const ocn_game *g)
{
    if (!applies_fne(g) || g->loss != OCN_LOSS_MSE || !(g->weight_decay > 0) || g->opt.curvature != OCN_CURV_EXACT ||
        g->opt.dynamics != OCN_DYN_GN || g->opt.zero || g->opt.damping != 0 ||
        (g->opt.value != OCN_VALUE_AUGMENTED && g->batch > 1) || g->opt.terminal != OCN_TERMINAL_EXACT)
        return 0;
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            const ocn_player *pl = &g->stages[t].players[p];
            if (pl->kind == OCN_PLAYER_DENSE || pl->kind == OCN_PLAYER_CONV || pl->act != OCN_ACT_IDENTITY) return 0;
        }
    return 1;
}

static int applies_batch(const ocn_game *g) { return has_params(g) && g->batch > 1; }

static int is_gr(const ocn_game *g) { return g->opt.game == OCN_GAME_GR && has_params(g); }

/* Largest number of parameterised players at one stage. */
static int max_players(const ocn_game *g)
{
    int best = 0;
    for (int t = 0; t < g->T; t++) {
        int k = 0;
        for (int p = 0; p < g->stages[t].nplayers; p++) k += g->stages[t].players[p].m > 0;
        best = k > best ? k : best;
    }
    return best;
}

static int has_two_player_stage(const ocn_game *g)
{
    for (int t = 0; t < g->T; t++) {
        int k = 0;
        for (int p = 0; p < g->stages[t].nplayers; p++) k += g->stages[t].players[p].m > 0;
        if (k == 2) return 1;
    }
    return 0;
}

static int applies_multi_gr(const ocn_game *g) { return is_gr(g) && max_players(g) >= 2; }
/* Lemma 9 needs W_T'' = Σ_n ∇²φ_n (block-diagonal over the lanes): with
 * terminal `outer`, GR's ∇φ∇φᵀ of the sum has cross-lane blocks. */
static int applies_separable(const ocn_game *g)
{
    return is_gr(g) && g->separable && g->nlanes >= 2 && g->opt.terminal == OCN_TERMINAL_EXACT;
}
static int applies_coupled(const ocn_game *g) { return is_gr(g) && !g->separable && g->nlanes >= 2; }
static int applies_kfac_t3(const ocn_game *g) { return is_gr(g) && has_two_player_stage(g) && !ocn_game_has_conv(g); } /* §14: coop-kfac undefined with conv */
static int applies_c7(const ocn_game *g) { return is_gr(g) && ocn_check_c7_applies(g); }
static int applies_e4(const ocn_game *g) { return has_params(g) && g->batch > 1 && g->opt.value == OCN_VALUE_PERSAMPLE; }

/* §13 TRAJ: every trajectory fixture */
static int applies_traj(const ocn_game *g) { return ocn_game_is_trajectory(g) && has_params(g); }

static const struct {
    const char *id;
    int (*applies)(const ocn_game *);
    int (*run)(check_ctx *);
} CHECKS[] = {
    {"GRAD", applies_always, check_grad},
    {"T6b", applies_fne, check_t6b},
    {"T6-base", applies_fne, check_t6base},
    {"P2", applies_fne, check_p2},
    {"P3/E1", applies_p3, check_p3},
    {"LQR", applies_lqr, check_lqr},
    {"BATCH", applies_batch, check_batch},
    {"T6c", is_gr, check_t6c},
    {"T6a-local", applies_multi_gr, check_t6a_local},
    {"T6a-separable", applies_separable, check_t6a_separable},
    {"T6a-coupled/E2", applies_coupled, check_t6a_coupled},
    {"SCHUR", applies_multi_gr, check_schur},
    {"KFAC-T3/E3", applies_kfac_t3, check_kfac_t3},
    {"C7", applies_c7, check_c7},
    {"E4", applies_e4, check_e4},
    {"GT-P2", ocn_check_gtp2_applies, check_gtp2},
    {"CONV-DENSE", ocn_check_conv_dense_applies, check_conv_dense},
    {"TRAJ", applies_traj, check_traj},
};

int ocn_filter_match(const char *pattern, const char *fixture, const char *id)
{
    if (!pattern) return 1;
    char both[512];
    snprintf(both, sizeof both, "%s/%s", fixture, id ? id : "");
    return !fnmatch(pattern, fixture, 0) || (id && !fnmatch(pattern, id, 0)) || !fnmatch(pattern, both, 0);
}

int ocn_theorems_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_report *rep, ocn_error *err)
{
    return ocn_theorems_select(f, o, NULL, rep, err);
}

int ocn_theorems_select(const ocn_fixture *f, const ocn_ref_opts *o, const char *filter, ocn_report *rep, ocn_error *err)
{
    check_ctx c = {f, f->game, f->arrays, o, rep, err, f->game->name};
    int any = 0;
    for (size_t i = 0; i < sizeof CHECKS / sizeof *CHECKS; i++)
        any |= CHECKS[i].applies(f->game) && ocn_filter_match(filter, f->game->name, CHECKS[i].id);
    if (f->c_measured && any) { /* §10: every report prints the fixture's detection power */
        ocn_fixture_info info;
        ocn_fixture_info_of(f->game->name, f->arrays, &info);
        ocn_report_fixture_info(rep, &info);
    }
    for (size_t i = 0; i < sizeof CHECKS / sizeof *CHECKS; i++) {
        if (!CHECKS[i].applies(f->game) || !ocn_filter_match(filter, f->game->name, CHECKS[i].id)) continue;
        int rc = CHECKS[i].run(&c);
        if (rc) return ocn_error_prefix(err, "%s: check %s", f->dir, CHECKS[i].id);
    }
    return OCN_OK;
}
