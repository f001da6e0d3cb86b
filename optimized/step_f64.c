/* float64 instantiation of the optimized step. */
#include "opt.h"

#include <float.h>
#include <stdio.h>

#define REF_MAXP OCN_MAX_PLAYERS /* the loader's one player limit (ocn/game.h) */
#define REAL double
#define SFX f64
#define PREC 64
/* this precision's math functions (f32: float functions, issue 11) */
#define RTANH tanh
#define RCOSH cosh
#define REXP exp
#define EPS DBL_EPSILON
/* §10 perturbation runs on this precision's arrays (a NULL stream is a no-op) */
#define PVEC(p, x, n) ocn_perturb_vec((p), (x), (size_t)(n))
#define PMAT(p, x, r, c) ocn_perturb_mat((p), (x), (size_t)(r), (size_t)(c), (size_t)(c))
#define PSYM(p, x, n) ocn_perturb_sym((p), (x), (size_t)(n), (size_t)(n))
#define PHANDED(p, x, n) ocn_perturb_handed((p), (x), (size_t)(n), (size_t)(n))
#include "step_impl.h"
