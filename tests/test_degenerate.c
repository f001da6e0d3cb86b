/* Degenerate cooperative games (issue 3 / SPEC §6): each gives a defined,
 * finite result, never NaN. */
#include "util.h"

#include <math.h>
#include <string.h>

static ocn_arrayset *run_game(const char *json)
{
    ocn_game *g = tu_game(json);
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    ocn_error e = {0};
    cr_assert_eq(ocn_ref_init_inputs(g, in, &e), OCN_OK, "%s", e.msg);
    cr_assert_eq(ocn_ref_run(g, &g->opt, in, NULL, out, &e), OCN_OK, "%s", e.msg);
    for (int i = 0; i < out->count; i++)
        for (size_t j = 0; j < out->a[i].size; j++) cr_assert(isfinite(out->a[i].data[j]), "%s not finite", out->a[i].name);
    ocn_arrayset_free(in);
    ocn_game_free(g);
    return out;
}

#define COOP(ACT, CURV, DAMP, WD)                                                                                      \
    "{\"name\": \"d\", \"seed\": 3, \"batch\": 3, \"input_dim\": 3, \"loss\": {\"kind\": \"mse\"}, \"weight_decay\": " WD \
    ", \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"" ACT \
    "\"}, {\"lane\": 1, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"" ACT "\"}]},"      \
    " {\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 2, \"act\": \"identity\"}]}],"     \
    " \"optimizer\": {\"game\": \"gr\", \"curvature\": \"" CURV "\", \"damping\": " DAMP "}}"

/* Biases make A_ww singular and a shared input makes Ã_uu = 0: undamped
 * coop-kfac is still defined by the factor-wise pseudo-inverse (§6). */
Test(degenerate, coop_kfac_undamped_shared_input_with_biases)
{
    ocn_arrayset *o = run_game(COOP("identity", "coop-kfac", "0.0", "0.0"));
    cr_assert_not_null(ocn_arrayset_find(o, "k_t0_n0"));
    cr_assert_not_null(ocn_arrayset_find(o, "k_t0_n1"));
    ocn_arrayset_free(o);
}

/* λ = γ = 0: the joint P_θθ is singular; the pinv defines the gains. */
Test(degenerate, singular_joint_curvature)
{
    ocn_arrayset *o = run_game(COOP("tanh", "exact", "0.0", "0.0"));
    cr_assert_not_null(ocn_arrayset_find(o, "Pthth_t0"));
    ocn_arrayset_free(o);
}

/* A stage whose players are all parameter-free has no gains and W = P there;
 * a player with m = 0 next to a parameterised one gets no gains either. */
Test(degenerate, parameter_free_players_and_stages)
{
    const char *json =
        "{\"name\": \"pf\", \"seed\": 4, \"batch\": 2, \"input_dim\": 3, \"loss\": {\"kind\": \"ce\", \"classes\": 3},"
        " \"stages\": [{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 3, \"act\": \"tanh\"},"
        "   {\"lane\": 1, \"kind\": \"act\", \"in\": \"z\", \"out\": \"a\", \"act\": \"relu\"}]},"
        "  {\"players\": [{\"lane\": 0, \"kind\": \"act\", \"in\": \"z\", \"out\": \"z\", \"act\": \"tanh\"},"
        "   {\"lane\": 1, \"kind\": \"act\", \"in\": \"a\", \"out\": \"z\", \"act\": \"identity\"}]}],"
        " \"optimizer\": {\"game\": \"gr\", \"curvature\": \"exact\", \"damping\": 0.1}}";
    ocn_arrayset *o = run_game(json);
    cr_assert_null(ocn_arrayset_find(o, "k_t0_n1"), "an act player has no gains");
    cr_assert_null(ocn_arrayset_find(o, "Pth_t1"), "a parameter-free stage has no P_theta");
    const ocn_array *W = ocn_arrayset_find(o, "Wx_t1"), *P = ocn_arrayset_find(o, "Px_t1");
    cr_assert(W && P && W->size == P->size);
    cr_assert(memcmp(W->data, P->data, W->size * sizeof(double)) == 0, "W = P on a parameter-free stage");
    ocn_arrayset_free(o);
}
