/* SPEC §10 revision 2: measured sensitivity `c`, informative arrays and
 * detection power.  Shared, math-free machinery: the perturbation stream
 * both producers (reference/ and optimized/) draw from, the floor `d`, and
 * the bookkeeping that turns perturbation runs into each array's `c`.  The
 * producers decide *where* to perturb (§10: inputs, every matrix handed to a
 * pseudo-inverse or factorisation, every stage's expansion terms); this file
 * only says *how*. */
#ifndef OCN_TOLERANCE_H
#define OCN_TOLERANCE_H

#include <stddef.h>
#include "ocn/arrays.h"
#include "ocn/game.h"

#define OCN_MEASURE_RUNS 8         /* §10: R = 8 perturbation runs per fixture */
#define OCN_CHECK_RUNS 2           /* §10: a §9 check's variant uses R = 2 */
#define OCN_TAU_F64 1e-6           /* §10: informative when 300·u·c < τ */
#define OCN_TAU_F32 1e-2
#define OCN_FAIL_RATIO 300.0       /* §10: FAILED at ratio ≥ 300 */
#define OCN_U32 (5.9604644775390625e-08) /* 2^-24 */
#define OCN_U64 (1.1102230246251565e-16) /* 2^-53 */

/* One perturbation run r: elements x become x(1 + u·ξ), ξ uniform on [−1, 1],
 * drawn from gsl_rng_mt19937 seeded with 1000·seed + r in the order the
 * computation meets the arrays (row-major).  A NULL perturbation is a no-op,
 * so producers call these unconditionally on their nominal run. */
typedef struct ocn_perturb ocn_perturb;
ocn_perturb *ocn_perturb_new(unsigned long game_seed, int run, double u);
void ocn_perturb_free(ocn_perturb *p);
void ocn_perturb_vec(ocn_perturb *p, double *x, size_t n);
/* n x n symmetric matrix with leading dimension ld: upper triangle perturbed,
 * then mirrored, so it stays exactly symmetric (§10). */
void ocn_perturb_sym(ocn_perturb *p, double *A, size_t n, size_t ld);
/* x_i + u·ξ·scale_i: a sum perturbed at the scale of its terms (Σ|terms|),
 * which a correct port's rounding reaches when the terms cancel (θ_new =
 * θ − k − K δx; docs/decisions.md "Perturbed at the scale of the terms").
 * A zero scale leaves x_i as is. */
void ocn_perturb_vec_at(ocn_perturb *p, double *x, const double *scale, size_t n);
/* n x n symmetric matrix as handed to a pseudo-inverse, eigendecomposition or
 * factorisation: entry (i, j) moves by u·ξ·max|A| — the normwise backward
 * error of a correct port's solver, not u·|A_ij| — except in rows that are
 * exactly zero (kept: LAPACK's reductions keep them).  §10 "every matrix
 * handed to a pseudo-inverse or factorisation, as handed" (docs/decisions.md
 * "Matrices handed to a factorisation: normwise"); mirrored. */
void ocn_perturb_handed(ocn_perturb *p, double *A, size_t n, size_t ld);
void ocn_perturb_handedf(ocn_perturb *p, float *A, size_t n, size_t ld);
/* rows x cols block with leading dimension ld, row-major. */
void ocn_perturb_mat(ocn_perturb *p, double *A, size_t rows, size_t cols, size_t ld);
/* float versions for a float32 producer (the same stream; u is that precision's). */
void ocn_perturb_vecf(ocn_perturb *p, float *x, size_t n);
void ocn_perturb_symf(ocn_perturb *p, float *A, size_t n, size_t ld);
void ocn_perturb_matf(ocn_perturb *p, float *A, size_t rows, size_t cols, size_t ld);

/* §10 floor d: the largest dimension summed or inverted in the game — max of
 * B, every n_t, every player's m, the joint Σ_n m_{t,n} of a GR stage, and
 * B·n_t in augmented mode. */
double ocn_tolerance_floor(const ocn_game *g, const ocn_optimizer *opt);

/* Measures every array's c (§10): `run` computes the step into `out` with the
 * perturbation `p` (NULL: the nominal run).  `nominal` holds the nominal
 * run's outputs already; on success each of its arrays gets
 * cond = max(max_r ‖X^(r) − X‖_F / (u·max(‖X‖_F, tiny)), d), and cond = d for
 * an all-zero X (§10: it passes only when exactly zero).  runs = 0 sets
 * every cond to d. */
typedef int (*ocn_producer_fn)(void *ctx, ocn_perturb *p, ocn_arrayset *out, ocn_error *err);
int ocn_measure_sensitivity(const ocn_game *g, const ocn_optimizer *opt, int runs, double u, ocn_producer_fn run,
                            void *ctx, ocn_arrayset *nominal, ocn_error *err);

/* c at float32 (docs/decisions.md "c measured at the precision compared"):
 * the same runs with u = u₃₂ and seeds 1000·seed + OCN_F32_RUN_BASE + r;
 * each nonzero array of `nominal` (whose cond is already measured) gets
 * cond_f32 = max(cond, max_r ‖X^(r) − X‖_F / (u₃₂·‖X‖_F)); a zero keeps
 * cond_f32 = cond.  The first-order c of u₆₄ runs does not extrapolate to
 * float32 where an upstream quantity has lost every f32 digit (a saturated
 * σ whose argument flips sign, a rank decision): these runs see it. */
#define OCN_F32_RUN_BASE 500
int ocn_measure_sensitivity_f32(const ocn_game *g, int runs, ocn_producer_fn run, void *ctx, ocn_arrayset *nominal,
                                ocn_error *err);
/* The c a comparison at unit roundoff u uses: cond_f32 at float32 where recorded. */
double ocn_cond_at(const ocn_array *a, double u);

/* §10: informative at unit roundoff u when 300·u·c < τ (τ by precision). */
int ocn_informative(double c, double u);
/* Gain and value arrays (k, K, Vx, Vxx, Wx, Wxx) that decide `fit_for_ports`,
 * and, with theta_new, the detection power (§10). */
int ocn_is_gain_or_value(const char *name);
/* 1 if name starts with one of the NULL-terminated prefixes (array families). */
int ocn_name_has_prefix(const char *name, const char *const *prefixes);
int ocn_counts_for_detection(const char *name);

#endif
