/* Entry point of the optimized implementation: validation, refusals (never a
 * silent fallback), backend and precision dispatch. */
#include "opt.h"

#include <string.h>

#define OPT_MAX_PLAYERS 64

const char *ocn_opt_unsupported(const ocn_game *g, const ocn_optimizer *o)
{
    if (o->value == OCN_VALUE_AUGMENTED) return "value 'augmented' is reference-only (SPEC §4): use blockdiag or persample";
    if (o->dynamics == OCN_DYN_FULL) return "dynamics 'full' is reference-only (SPEC §7)";
    int mid = (o->zero & OCN_ZERO_MID) != 0;
    if (!mid && o->curvature == OCN_CURV_EXACT && !(g->weight_decay + o->damping > 0))
        return "exact curvature needs weight_decay + damping > 0 for the Woodbury form (SPEC §7)";
    if (!mid && o->curvature == OCN_CURV_GN_OUTER && !(o->damping > 0))
        return "gn-outer curvature needs damping > 0 for the Woodbury form (SPEC §7)";
    for (int t = 0; t < g->T; t++) {
        int np = 0;
        for (int p = 0; p < g->stages[t].nplayers; p++) np += g->stages[t].players[p].m > 0;
        if (g->stages[t].nplayers > OPT_MAX_PLAYERS) return "more than 64 players at a stage";
        if (!mid && o->curvature == OCN_CURV_COOP_KFAC && o->game == OCN_GAME_GR && np > 1 &&
            !(o->zero & OCN_ZERO_PUV) && !(o->damping > 0))
            return "coop-kfac needs damping > 0: its closed form is undefined without it (SPEC §6)";
    }
    return NULL;
}

int ocn_opt_run(const ocn_game *g, const ocn_optimizer *opt, const ocn_arrayset *in, const ocn_opt_config *cfg,
                ocn_arrayset *out, ocn_error *err)
{
    const char *why = ocn_opt_unsupported(g, opt);
    if (why) return ocn_fail(err, OCN_EUNSUPPORTED, "%s: optimized path: %s", g->name, why);
    const char *bname = cfg && cfg->backend ? cfg->backend : "cpu";
    const ocn_backend *bk = NULL;
    if (!strcmp(bname, "cpu")) bk = ocn_backend_cpu();
    if (!strcmp(bname, "cuda")) {
#ifdef OCN_HAVE_CUDA
        const char *gpu = "";
        bk = ocn_backend_cuda(&gpu);
        if (!bk) return ocn_fail(err, OCN_EUNSUPPORTED, "backend 'cuda': no usable GPU (%s)", gpu);
#else
        return ocn_fail(err, OCN_EUNSUPPORTED, "backend 'cuda': this build has no CUDA backend (nvcc was not found at build time)");
#endif
    }
    if (!bk) return ocn_fail(err, OCN_EUNSUPPORTED, "backend '%s' is not available in this build", bname);
    if (cfg && cfg->no_feedback && !(opt->zero & OCN_ZERO_MID) &&
        (opt->curvature == OCN_CURV_EXACT))
        return ocn_fail(err, OCN_EUNSUPPORTED, "no_feedback (benchmark baseline) needs a curvature without the value Hessian");
    int prec = cfg && cfg->precision ? cfg->precision : 64;
    if (prec == 64) return ocn_opt_run_f64(g, opt, in, cfg, bk, out, err);
    if (prec == 32) return ocn_opt_run_f32(g, opt, in, cfg, bk, out, err);
    return ocn_fail(err, OCN_EINVAL, "precision must be 32 or 64, not %d", prec);
}
