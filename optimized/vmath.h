/* Float32 activations over arrays (issue 12 follow-up, helper perf): tanh,
 * its derivative sech², the logistic σ and σ', four lanes at a time with
 * GCC/Clang vector extensions (SSE2 at the x86-64 baseline), replacing one
 * scalar libm call per element (tanhf/coshf/expf: 35–45% of a float32 SGD
 * step at width 256, docs/performance.md).
 *
 * Accuracy: each is evaluated in float64 — exp by Cody–Waite reduction and a
 * degree-11 Taylor polynomial (relative error < 1e-14), tanh near 0 by its
 * odd series — and rounded once to float32, so the result is within 1 ulp of
 * the exact value for every float argument (tests/test_vmath.c sweeps every
 * float in [2^-30, 100] on a grid and the specials against float64 libm; the
 * forms are those of docs/decisions.md "Activation derivatives": sech² =
 * 4e/(1+e)², σ' = e/(1+e)² with e = exp(−|·|), full relative accuracy where σ
 * saturates).  NaN propagates; ±inf saturates as libm's does; tanh(−0) = −0.
 * An element's value does not depend on its position (the tail is padded
 * into a full vector). */
#ifndef OCN_OPT_VMATH_H
#define OCN_OPT_VMATH_H

#include <stddef.h>

void ocn_vtanhf(const float *x, float *y, size_t n);
void ocn_vsech2f(const float *x, float *y, size_t n);   /* tanh'(x) = 1/cosh²(x) */
void ocn_vsigmoidf(const float *x, float *y, size_t n); /* 1/(1 + e^−x) */
void ocn_vdsigmoidf(const float *x, float *y, size_t n); /* σ'(x) = σ(x)(1 − σ(x)) */

#endif
