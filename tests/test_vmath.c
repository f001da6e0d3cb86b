/* optimized/vmath.c: the float32 activations of the optimized step (tanh,
 * sech², σ, σ') against float64 libm rounded to float32 — an independent
 * computation — within 1 ulp over a grid of every 97th float in
 * [2^-30, 128] of both signs (saturation included), and at the specials. */
#include "util.h"
#include "../optimized/vmath.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int64_t ord(float f) /* floats in order as integers: ulp distance = difference */
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

static double ref(int fn, double d)
{
    switch (fn) {
    case 0: return tanh(d);
    case 1: { double c = cosh(d); return 1 / (c * c); }
    case 2: return 1 / (1 + exp(-d));
    default: { double e = exp(-fabs(d)); return e / ((1 + e) * (1 + e)); }
    }
}

static void vfn(int fn, const float *x, float *y, size_t n)
{
    if (fn == 0) ocn_vtanhf(x, y, n);
    else if (fn == 1) ocn_vsech2f(x, y, n);
    else if (fn == 2) ocn_vsigmoidf(x, y, n);
    else ocn_vdsigmoidf(x, y, n);
}

static const char *NAME[4] = {"tanh", "sech2", "sigmoid", "dsigmoid"};

Test(vmath, within_one_ulp_of_float64_libm_over_the_float_range)
{
    uint32_t lo, hi;
    float flo = 0x1p-30f, fhi = 128.f;
    memcpy(&lo, &flo, 4), memcpy(&hi, &fhi, 4);
    size_t n = (hi - lo) / 97 + 1, k = 0;
    float *x = malloc(2 * n * sizeof *x), *y = malloc(2 * n * sizeof *y);
    cr_assert(x && y);
    for (uint32_t b = lo; b <= hi && k + 1 < 2 * n; b += 97) {
        float f;
        memcpy(&f, &b, 4);
        x[k++] = f, x[k++] = -f;
    }
    for (int fn = 0; fn < 4; fn++) {
        vfn(fn, x, y, k);
        int64_t worst = 0;
        float wx = 0;
        for (size_t i = 0; i < k; i++) {
            int64_t u = llabs(ord(y[i]) - ord((float)ref(fn, x[i])));
            if (u > worst) worst = u, wx = x[i];
        }
        cr_expect_leq(worst, 1, "%s: %lld ulp at x = %a", NAME[fn], (long long)worst, (double)wx);
    }
    free(x), free(y);
}

Test(vmath, specials_saturation_and_position)
{
    const float sp[] = {0.f, -0.f, INFINITY, -INFINITY, NAN, 0x1p-149f, -0x1p-149f, 1e-38f, 9.f, 20.f, 44.5f, 50.f, 89.f, -100.f, 1e30f, -3e38f, 0.0625f, -0.0625f, 0x1.fffffep-5f};
    const int ns = sizeof sp / sizeof *sp;
    float y[32];
    for (int fn = 0; fn < 4; fn++) {
        vfn(fn, sp, y, (size_t)ns);
        for (int i = 0; i < ns; i++) {
            double r = ref(fn, sp[i]);
            if (isnan(sp[i])) {
                cr_expect(isnan(y[i]), "%s(NaN) = %g", NAME[fn], (double)y[i]);
                continue;
            }
            if (isinf(sp[i]) && fn == 2) r = sp[i] > 0 ? 1 : 0; /* 1/(1 + e^∞): libm's exp(-(-inf)) = inf */
            cr_expect(llabs(ord(y[i]) - ord((float)r)) <= 1, "%s(%a) = %a, float64 libm %a", NAME[fn], (double)sp[i],
                      (double)y[i], r);
        }
    }
    float z = -0.f, t;
    ocn_vtanhf(&z, &t, 1);
    cr_expect(signbit(t), "tanh(-0) = -0");
    /* a value does not depend on where it sits (the tail is padded into a full vector) */
    float a[7] = {0.3f, -1.7f, 5.f, 0.01f, -30.f, 2.f, 0.7f}, b[7], c[7];
    for (int fn = 0; fn < 4; fn++) {
        vfn(fn, a, b, 7);
        for (int i = 0; i < 7; i++) {
            vfn(fn, a + i, c, 1);
            cr_expect(!memcmp(&b[i], &c[0], sizeof(float)), "%s: element %d alone and in an array", NAME[fn], i);
        }
    }
}
