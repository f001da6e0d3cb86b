/* SPEC §10 tolerance policy: err = ‖X − X*‖_F / max(‖X*‖_F, tiny),
 * ratio = err / (u·c), ok < 30 ≤ marginal < 300 ≤ FAILED. */
#include "ocn/harness.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double ocn_rel_err(const double *x, const double *ref, size_t n)
{
    long double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return INFINITY;
        long double e = (long double)x[i] - ref[i];
        d += e * e;
        r += (long double)ref[i] * ref[i];
    }
    return (double)(sqrtl(d) / fmaxl(sqrtl(r), DBL_MIN));
}

double ocn_ratio(double err, double u, double c)
{
    if (!isfinite(err)) return INFINITY;
    return err / (u * (c > 1.0 ? c : 1.0));
}

ocn_verdict ocn_verdict_of(double ratio)
{
    if (!(ratio < 10 * OCN_THRESHOLD)) return OCN_FAILED; /* NaN fails too */
    return ratio < OCN_THRESHOLD ? OCN_OK_V : OCN_MARGINAL;
}

