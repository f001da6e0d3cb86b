/* The optimized step (SPEC §5–§8), written once for REAL = double and float
 * (step_f64.c / step_f32.c include this file).  Nothing here forms an m x m
 * matrix, a Jacobian, or a feedback gain K (§7):
 *   - value Hessians are carried per sample as v_xx = Zᵀ... stored as Zt (r x n
 *     rows per sample) and a signed S (r x r);
 *   - a parameter vector of a dense player is kept in its vec([W b]) order,
 *     which is the row-major (in+1) x out matrix "Tm", so a per-sample gradient
 *     q = a ⊗ g is the rank-one Tm = a gᵀ and every contraction is a GEMM;
 *   - curvature: sgd and rmsprop elementwise (the §5 rcond rule applied per
 *     entry), kfac through its two factors, coop-kfac through the embedded
 *     factors (§6) — Cholesky where the damping keeps a factor safely above
 *     the §5 cut-off, the eigendecomposition pseudo-inverse otherwise —,
 *     exact (GN) and gn-outer through a low-rank core of size B·r (§7):
 *     the Gram UᵀU's eigendecomposition and the graded symmetric core
 *     μΛ⁻¹ + VᵀDV, applied in push-through forms to vectors kept in
 *     coefficient form (v = Z cf) — no explicit inverse of a Woodbury
 *     capacitance, whose cancellation squared the condition number (§10 rev. 2);
 *   - the feedback is applied as M^† mean_i q_θ^(i) S'^(i) (q_x^(i)ᵀ δx^(i));
 *   - §10 perturbation runs (`pert`) perturb the inputs, every matrix handed
 *     to a factorisation and every stage term as formed (PVEC/PMAT/PSYM). */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vmath.h"
#include "workspace.h"

#define CAT2_(a, b) a##_##b
#define CAT2(a, b) CAT2_(a, b)
#define FN(name) CAT2(name, SFX)

/* the step, in files of one job each (docs/design.md) */
#include "step_ops.h"
#include "step_model.h"
#include "step_curvature.h"
#include "step_statistics.h"
#include "step_values.h"
#include "step_phases.h"
