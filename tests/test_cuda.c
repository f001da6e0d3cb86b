/* The CUDA backend against the reference, f64 and f32, on every fixture the
 * optimized path supports — run where a GPU is present, skipped with the
 * reason where it is not (CI has nvcc but no GPU). */
#include "util.h"
#include "ocn/optimized.h"

Test(cuda, matches_reference_on_every_fixture, .timeout = 600)
{
#ifndef OCN_HAVE_CUDA
    cr_skip_test("this build has no CUDA backend (nvcc not found, or a sanitizer build)");
#else
    ocn_error e = {0};
    ocn_fixture *probe = NULL;
    cr_assert_eq(ocn_fixture_read("fixtures/mlp-tanh-ce", &probe, &e), OCN_OK);
    ocn_arrayset *out = ocn_arrayset_new();
    ocn_opt_config cfg = {"cuda", 64, 0, 0, 0};
    int rc = ocn_opt_run(probe->game, &probe->game->opt, probe->arrays, &cfg, out, &e);
    ocn_arrayset_free(out);
    ocn_fixture_free(probe);
    if (rc == OCN_EUNSUPPORTED) cr_skip_test("%s", e.msg);
    cr_assert_eq(rc, OCN_OK, "%s", e.msg);
    cr_expect_gt(tu_check_all("cuda"), 500);
#endif
}
