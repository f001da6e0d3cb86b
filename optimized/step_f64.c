/* float64 instantiation of the optimized step. */
#include "opt.h"

#include <float.h>
#include <stdio.h>

#define REF_MAXP 64
#define REAL double
#define SFX f64
#define EPS DBL_EPSILON
#define GEMM(bk, ...) (bk)->dgemm(__VA_ARGS__)
#define SYEV(bk, ...) (bk)->dsyev(__VA_ARGS__)
#define GESV(bk, ...) (bk)->dgesv(__VA_ARGS__)
#define SPDINV(bk, ...) (bk)->dspdinv(__VA_ARGS__)
#include "step_impl.h"
