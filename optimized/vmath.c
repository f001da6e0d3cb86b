/* Float32 activations over arrays, evaluated in float64 four lanes at a time
 * (see vmath.h for the accuracy argument). */
#include "vmath.h"

#include <stdint.h>
#include <string.h>

/* the helpers below are static inline: no vector type crosses an ABI boundary */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

static inline v4d vsel(v4l m, v4d a, v4d b) /* m ? a : b (m all-ones or zero per lane) */
{
    return (v4d)(((v4l)a & m) | ((v4l)b & ~m));
}

static inline v4d vmin(v4d a, double c) /* min(a, c); NaN lanes give c (callers restore NaN) */
{
    v4d cc = {c, c, c, c};
    return vsel(a < cc, a, cc);
}

static inline v4d vabs(v4d a)
{
    v4l m = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    return (v4d)((v4l)a & m);
}

/* exp(x) for x in [−700, 0] (callers clamp): x = n ln2 + r, |r| ≤ ln2/2
 * (Cody–Waite, ln2 split so n·ln2_hi is exact), exp(r) by its Taylor series
 * to degree 11 (remainder < 0.347^12/12! < 7e-15), 2^n from the exponent bits. */
static inline v4d vexp_neg(v4d x)
{
    const double magic = 0x1.8p52, inv_ln2 = 0x1.71547652b82fep0, ln2_hi = 0x1.62e42fee00000p-1,
                 ln2_lo = 0x1.a39ef35793c76p-33;
    v4d k = x * inv_ln2 + magic;
    v4d n = k - magic;
    v4d r = (x - n * ln2_hi) - n * ln2_lo;
    v4d p = r * (1.0 / 39916800) + 1.0 / 3628800;
    p = p * r + 1.0 / 362880;
    p = p * r + 1.0 / 40320;
    p = p * r + 1.0 / 5040;
    p = p * r + 1.0 / 720;
    p = p * r + 1.0 / 120;
    p = p * r + 1.0 / 24;
    p = p * r + 1.0 / 6;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    v4l ni = (v4l)k - (v4l)(v4d){magic, magic, magic, magic}; /* n, from k's low mantissa bits */
    v4d scale = (v4d)((ni + 1023) << 52);
    return p * scale;
}

static inline v4d load4(const float *x)
{
    v4f f;
    memcpy(&f, x, sizeof f);
    return __builtin_convertvector(f, v4d);
}

static inline void store4(float *y, v4d d)
{
    v4f f = __builtin_convertvector(d, v4f);
    memcpy(y, &f, sizeof f);
}

static inline v4d nan_keep(v4d x, v4d r) /* x where x is NaN, else r */
{
    return vsel(x == x, r, x);
}

static inline v4d k_tanh(v4d x)
{
    v4d a = vabs(x), a2 = a * a;
    /* |x| < 1/16: the odd series to a⁹ (next term 1382/155925·a¹¹: relative < 1e-14) */
    v4d s = a * (1.0 + a2 * (-1.0 / 3 + a2 * (2.0 / 15 + a2 * (-17.0 / 315 + a2 * (62.0 / 2835)))));
    /* else (1 − e)/(1 + e), e = exp(−2|x|) ≤ e^(−1/8): 1 − e ≥ 0.117, no cancellation;
     * |x| clamped at 20, where the float result is 1 */
    v4d e = vexp_neg(-2.0 * vmin(a, 20.0));
    v4d t = (1.0 - e) / (1.0 + e);
    v4d r = vsel(a < 0.0625, s, t);
    v4l sign = (v4l)x & (v4l){INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN};
    return nan_keep(x, (v4d)((v4l)r | sign));
}

static inline v4d k_sech2(v4d x)
{
    /* 4e/(1 + e)², e = exp(−2|x|): no cancellation anywhere; |x| clamped at 60,
     * where the float result is 0 */
    v4d e = vexp_neg(-2.0 * vmin(vabs(x), 60.0)), d = 1.0 + e;
    return nan_keep(x, 4.0 * e / (d * d));
}

static inline v4d k_sigmoid(v4d x)
{
    v4d e = vexp_neg(-vmin(vabs(x), 700.0)), d = 1.0 + e; /* e = exp(−|x|) */
    return nan_keep(x, vsel(x >= 0.0, 1.0 / d, e / d));
}

static inline v4d k_dsigmoid(v4d x)
{
    v4d e = vexp_neg(-vmin(vabs(x), 700.0)), d = 1.0 + e;
    return nan_keep(x, e / (d * d));
}

/* x86-64: an AVX2 clone beside the SSE2 baseline, chosen at load time (2.7x
 * faster on this project's machines).  The same IEEE float64 operations in
 * either (AVX2 does not bring FMA contraction), so the same bits. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VCLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VCLONES
#define VCLONES
#endif

#define VMAP(name, kern)                                                                                               \
    VCLONES void name(const float *x, float *y, size_t n)                                                              \
    {                                                                                                                  \
        size_t i = 0;                                                                                                  \
        for (; i + 4 <= n; i += 4) store4(y + i, kern(load4(x + i)));                                                  \
        if (i < n) { /* the tail, padded: the same kernel, so a value does not depend on its position */             \
            float bx[4] = {0, 0, 0, 0}, by[4];                                                                         \
            memcpy(bx, x + i, (n - i) * sizeof(float));                                                                \
            store4(by, kern(load4(bx)));                                                                               \
            memcpy(y + i, by, (n - i) * sizeof(float));                                                                \
        }                                                                                                              \
    }

VMAP(ocn_vtanhf, k_tanh)
VMAP(ocn_vsech2f, k_sech2)
VMAP(ocn_vsigmoidf, k_sigmoid)
VMAP(ocn_vdsigmoidf, k_dsigmoid)
