/* float32 instantiation of the optimized step. */
#include "opt.h"

#include <float.h>
#include <stdio.h>

#define REF_MAXP OCN_MAX_PLAYERS /* the loader's one player limit (ocn/game.h) */
#define REAL float
#define SFX f32
#define PREC 32
/* this precision's math functions (f32: float functions, issue 11) */
#define RTANH tanhf
#define RCOSH coshf
#define REXP expf
#define EPS FLT_EPSILON
/* §10 perturbation runs on this precision's arrays (a NULL stream is a no-op) */
#define PVEC(p, x, n) ocn_perturb_vecf((p), (x), (size_t)(n))
#define PMAT(p, x, r, c) ocn_perturb_matf((p), (x), (size_t)(r), (size_t)(c), (size_t)(c))
#define PSYM(p, x, n) ocn_perturb_symf((p), (x), (size_t)(n), (size_t)(n))
#define PHANDED(p, x, n) ocn_perturb_handedf((p), (x), (size_t)(n), (size_t)(n))
#include "step_impl.h"
