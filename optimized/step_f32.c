/* float32 instantiation of the optimized step. */
#include "opt.h"

#include <float.h>
#include <stdio.h>

#define REF_MAXP 64
#define REAL float
#define SFX f32
#define EPS FLT_EPSILON
#define GEMM(bk, ...) (bk)->sgemm(__VA_ARGS__)
#define SYEV(bk, ...) (bk)->ssyev(__VA_ARGS__)
#define GESV(bk, ...) (bk)->sgesv(__VA_ARGS__)
#define SPDINV(bk, ...) (bk)->sspdinv(__VA_ARGS__)
#include "step_impl.h"
