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
    ocn_opt_config cfg = {"cuda", 64, 0, 0};
    int rc = ocn_opt_run(probe->game, &probe->game->opt, probe->arrays, &cfg, out, &e);
    ocn_arrayset_free(out);
    ocn_fixture_free(probe);
    if (rc == OCN_EUNSUPPORTED) cr_skip_test("%s", e.msg);
    cr_assert_eq(rc, OCN_OK, "%s", e.msg);
    int n, skipped = 0;
    const char *const *d = tu_fixtures(&n);
    for (int prec = 32; prec <= 64; prec += 32) {
        ocn_report *r = ocn_report_new();
        for (int i = 0; i < n; i++) {
            ocn_fixture *f = NULL;
            cr_assert_eq(ocn_fixture_read(d[i], &f, &e), OCN_OK, "%s", e.msg);
            cr_assert_eq(ocn_check_fixture(f, "cuda", prec, r, &skipped, NULL, &e), OCN_OK, "%s", e.msg);
            ocn_fixture_free(f);
        }
        for (int i = 0; i < r->count; i++)
            cr_expect_neq(r->rows[i].verdict, OCN_FAILED, "cuda f%d %s %s: err %g ratio %g", prec, r->rows[i].fixture,
                          r->rows[i].quantity, r->rows[i].err, r->rows[i].ratio);
        ocn_report_free(r);
    }
#endif
}
