/* The CUDA backend (the dlopen'd module libocn-cuda.so) against the reference,
 * f64 and f32, on every fixture the optimized path supports — run where the
 * module is built and a GPU is present, skipped with the printed reason
 * otherwise (CI builds the module where nvcc exists, but has no GPU).  Its ops
 * are also exercised one by one, guard zones included, by
 * tests/test_backend_ops.c whenever it opens. */
#include "util.h"
#include "ocn/optimized.h"

Test(cuda, matches_reference_on_every_fixture, .timeout = 600)
{
    ocn_error e = {0};
    ocn_fixture *probe = NULL;
    cr_assert_eq(ocn_fixture_read("fixtures/mlp-tanh-ce", &probe, &e), OCN_OK);
    ocn_arrayset *out = ocn_arrayset_new();
    ocn_opt_config cfg = {.backend = "cuda", .precision = 64};
    int rc = ocn_opt_run(probe->game, &probe->game->opt, probe->arrays, &cfg, out, &e);
    ocn_arrayset_free(out);
    ocn_fixture_free(probe);
    if (rc == OCN_EUNSUPPORTED) {
        fprintf(stderr, "cuda backend skipped: %s\n", e.msg);
        cr_skip_test("%s", e.msg);
    }
    cr_assert_eq(rc, OCN_OK, "%s", e.msg);
    cr_expect_gt(tu_check_all("cuda"), 500);
}
