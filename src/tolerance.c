/* SPEC §10 revision 2: perturbation runs and measured sensitivity. */
#include "ocn/tolerance.h"

#include <float.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ocn_perturb {
    gsl_rng *rng;
    double u;
};

ocn_perturb *ocn_perturb_new(unsigned long game_seed, int run, double u)
{
    ocn_perturb *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!p->rng) {
        free(p);
        return NULL;
    }
    gsl_rng_set(p->rng, 1000ul * game_seed + (unsigned long)run); /* §10: seeded 1000·seed + r */
    p->u = u;
    return p;
}

void ocn_perturb_free(ocn_perturb *p)
{
    if (!p) return;
    gsl_rng_free(p->rng);
    free(p);
}

/* x(1 + u·ξ), ξ uniform on [−1, 1].  At u = unit roundoff the exact value
 * lies between two neighbouring floating-point numbers: computing
 * `x * (1 + u·ξ)` in the working precision rounds `1 + u·ξ` to 1 for ξ > −½
 * and to 1 − u otherwise, so only a quarter of the elements would move, all
 * downwards (found by the differential game fuzzer).  The exact product is
 * formed in long double and rounded stochastically to one of its two
 * neighbours, with probabilities that make the expectation exact: every
 * element moves by 0 or 1 ulp, either way, as §10 intends (docs/decisions.md). */
static long double target(ocn_perturb *p, long double x)
{
    double xi = 2.0 * gsl_rng_uniform(p->rng) - 1.0;
    return x + x * ((long double)p->u * xi);
}

/* t rounded to d (nearest) or to its other neighbour e, with the probability
 * that makes the expectation t (unbiased stochastic rounding) */
static long double pick(ocn_perturb *p, long double t, long double d, long double e)
{
    long double lo = d < e ? d : e, hi = d < e ? e : d;
    double r = gsl_rng_uniform(p->rng);
    if (d == t || !isfinite(lo) || !isfinite(hi)) return d;
    return r < (double)((t - lo) / (hi - lo)) ? hi : lo;
}

static double perturb1(ocn_perturb *p, double x)
{
    if (x == 0.0 || !isfinite(x)) return x;
    long double t = target(p, x);
    double d = (double)t;
    return (double)pick(p, t, d, nextafter(d, (long double)d < t ? INFINITY : -INFINITY));
}

static float perturb1f(ocn_perturb *p, float x)
{
    if (x == 0.0f || !isfinite(x)) return x;
    long double t = target(p, x);
    float d = (float)t;
    return (float)pick(p, t, d, nextafterf(d, (long double)d < t ? INFINITY : -INFINITY));
}

void ocn_perturb_vec(ocn_perturb *p, double *x, size_t n)
{
    for (size_t i = 0; p && i < n; i++) x[i] = perturb1(p, x[i]);
}

void ocn_perturb_mat(ocn_perturb *p, double *A, size_t rows, size_t cols, size_t ld)
{
    for (size_t i = 0; p && i < rows; i++) ocn_perturb_vec(p, A + i * ld, cols);
}

void ocn_perturb_sym(ocn_perturb *p, double *A, size_t n, size_t ld)
{
    for (size_t i = 0; p && i < n; i++)
        for (size_t j = i; j < n; j++) {
            A[i * ld + j] = perturb1(p, A[i * ld + j]);
            A[j * ld + i] = A[i * ld + j];
        }
}

/* x + s·u·ξ, rounded stochastically as perturb1: an absolute move at the
 * scale s (ocn_perturb_handed, ocn_perturb_vec_at). */
static long double target_abs(ocn_perturb *p, long double x, long double s)
{
    double xi = 2.0 * gsl_rng_uniform(p->rng) - 1.0;
    return x + s * ((long double)p->u * xi);
}

static double perturb_abs(ocn_perturb *p, double x, double s)
{
    if (s == 0.0 || !isfinite(x) || !isfinite(s)) return x;
    long double t = target_abs(p, x, s);
    double d = (double)t;
    return (double)pick(p, t, d, nextafter(d, (long double)d < t ? INFINITY : -INFINITY));
}

static float perturb_absf(ocn_perturb *p, float x, double s)
{
    if (s == 0.0 || !isfinite(x) || !isfinite(s)) return x;
    long double t = target_abs(p, x, s);
    float d = (float)t;
    return (float)pick(p, t, d, nextafterf(d, (long double)d < t ? INFINITY : -INFINITY));
}

void ocn_perturb_vec_at(ocn_perturb *p, double *x, const double *scale, size_t n)
{
    for (size_t i = 0; p && i < n; i++) x[i] = perturb_abs(p, x[i], scale[i]);
}

/* docs/decisions.md "Matrices handed to a factorisation: normwise": a
 * pseudo-inverse, eigendecomposition or Cholesky of a symmetric M is backward
 * stable only normwise — a correct port's computed result is exact for
 * M + E with |E_ij| ~ u·max|M| — so entry (i, j) moves by u·ξ·max|M|, not
 * u·ξ·|M_ij|: a small eigenvalue in the directions of small entries (a damped
 * factor's null space, a nearly dead unit) moves as a port's eigensolver moves
 * it.  Rows that are exactly zero stay zero (LAPACK's Householder reductions
 * keep an exactly zero row and column: dead units stay exactly null). */
static double handed_scale(const double *A, size_t n, size_t ld, int *zero_row)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        zero_row[i] = 1;
        for (size_t j = 0; j < n; j++) {
            mx = fmax(mx, fabs(A[i * ld + j]));
            if (A[i * ld + j] != 0.0) zero_row[i] = 0;
        }
    }
    return mx;
}

void ocn_perturb_handed(ocn_perturb *p, double *A, size_t n, size_t ld)
{
    if (!p || !n) return;
    /* out of memory for the zero-row flags: every row is perturbed — a larger
     * c (weaker verdicts), never a smaller one */
    int *z = calloc(n, sizeof *z);
    double mx = 0;
    if (z) mx = handed_scale(A, n, ld, z);
    else
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) mx = fmax(mx, fabs(A[i * ld + j]));
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++) {
            A[i * ld + j] = perturb_abs(p, A[i * ld + j], z && (z[i] || z[j]) ? 0.0 : mx);
            A[j * ld + i] = A[i * ld + j];
        }
    free(z);
}

void ocn_perturb_handedf(ocn_perturb *p, float *A, size_t n, size_t ld)
{
    if (!p || !n) return;
    int *z = calloc(n, sizeof *z); /* NULL: every row perturbed, as ocn_perturb_handed */
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        int zero = 1;
        for (size_t j = 0; j < n; j++) {
            mx = fmax(mx, fabs((double)A[i * ld + j]));
            if (A[i * ld + j] != 0.0f) zero = 0;
        }
        if (z) z[i] = zero;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++) {
            A[i * ld + j] = perturb_absf(p, A[i * ld + j], z && (z[i] || z[j]) ? 0.0 : mx);
            A[j * ld + i] = A[i * ld + j];
        }
    free(z);
}

void ocn_perturb_vecf(ocn_perturb *p, float *x, size_t n)
{
    for (size_t i = 0; p && i < n; i++) x[i] = perturb1f(p, x[i]);
}

void ocn_perturb_matf(ocn_perturb *p, float *A, size_t rows, size_t cols, size_t ld)
{
    for (size_t i = 0; p && i < rows; i++) ocn_perturb_vecf(p, A + i * ld, cols);
}

void ocn_perturb_symf(ocn_perturb *p, float *A, size_t n, size_t ld)
{
    for (size_t i = 0; p && i < n; i++)
        for (size_t j = i; j < n; j++) {
            A[i * ld + j] = perturb1f(p, A[i * ld + j]);
            A[j * ld + i] = A[i * ld + j];
        }
}

double ocn_tolerance_floor(const ocn_game *g, const ocn_optimizer *opt)
{
    double d = g->batch;
    for (int t = 0; t <= g->T; t++) {
        d = fmax(d, g->n[t]);
        if (opt->value == OCN_VALUE_AUGMENTED) d = fmax(d, (double)g->batch * g->n[t]);
    }
    for (int t = 0; t < g->T; t++) {
        double joint = 0;
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            d = fmax(d, g->stages[t].players[p].m);
            joint += g->stages[t].players[p].m;
        }
        if (opt->game == OCN_GAME_GR) d = fmax(d, joint);
    }
    return d;
}

static double norm2(const double *x, size_t n)
{
    long double s = 0;
    for (size_t i = 0; i < n; i++) s += (long double)x[i] * x[i];
    return (double)sqrtl(s);
}

static double dist2(const double *x, const double *y, size_t n)
{
    long double s = 0;
    for (size_t i = 0; i < n; i++) {
        long double e = (long double)x[i] - y[i];
        s += e * e;
    }
    return (double)sqrtl(s);
}

/* R perturbation runs of size u (seeds 1000·seed + base + r): s[i] gets
 * max_r ‖X^(r) − X‖ / (u·‖X‖) of every nonzero nominal array (∞ when a run
 * is not finite), z[i] (z may be NULL) max_r ‖X^(r)‖ of every all-zero one. */
static int perturbation_runs(const ocn_game *g, int runs, int base, double u, ocn_producer_fn run, void *ctx,
                             const ocn_arrayset *nominal, double *s, double *z, ocn_error *err)
{
    int rc = OCN_OK;
    for (int r = 1; r <= runs && !rc; r++) {
        ocn_perturb *p = ocn_perturb_new(g->seed, base + r, u);
        ocn_arrayset *out = ocn_arrayset_new();
        if (!p || !out) rc = ocn_fail(err, OCN_ENOMEM, "out of memory in perturbation run %d", r);
        if (!rc) rc = run(ctx, p, out, err);
        if (rc == OCN_ENUMERIC && base) {
            /* a float32-sized perturbation makes the reference overflow (NaN/Inf):
             * no float32 computation of this game can be judged — every array's
             * float32 c is ∞ (weak at float32), not a refusal of the whole run
             * (fuzz game 0x6248e58f168d4f80) */
            for (int i = 0; i < nominal->count; i++) s[i] = INFINITY;
            if (err) memset(err, 0, sizeof *err);
            rc = OCN_OK;
            ocn_perturb_free(p);
            ocn_arrayset_free(out);
            break;
        }
        if (rc) ocn_error_prefix(err, "§10 %sperturbation run %d", base ? "float32 " : "", r);
        for (int i = 0; !rc && i < nominal->count; i++) {
            const ocn_array *x = &nominal->a[i], *y = ocn_arrayset_find(out, x->name);
            if (!y || y->size != x->size) { /* a run that changes shapes is a structural failure */
                rc = ocn_fail(err, OCN_ENUMERIC, "§10 perturbation run %d did not produce '%s'", r, x->name);
                break;
            }
            double nx = norm2(x->data, x->size), e = dist2(y->data, x->data, x->size);
            if (!isfinite(e)) {
                s[i] = INFINITY;
                continue;
            }
            if (nx != 0.0) s[i] = fmax(s[i], e / (u * nx));
            else if (z) z[i] = fmax(z[i], e);
        }
        ocn_perturb_free(p);
        ocn_arrayset_free(out);
    }
    return rc;
}

/* Stage index of an array named PREFIX_t<t>[_n<n>] (exactly; -1 otherwise). */
static int stage_of(const char *name, const char *prefix)
{
    size_t lp = strlen(prefix);
    int t, n, len = 0;
    if (strncmp(name, prefix, lp)) return -1;
    const char *r = name + lp;
    if (sscanf(r, "t%d%n", &t, &len) == 1 && !r[len]) return t;
    if (sscanf(r, "t%d_n%d%n", &t, &n, &len) == 2 && !r[len]) return t;
    return -1;
}

/* Position of an array in the update pass (§8): δx_t at 2t, θ_new_t at 2t + 1
 * (formed from δx_t, it drives δx_{t+1}); -1 for every other array. */
static int pass_position(const char *name)
{
    int t;
    if ((t = stage_of(name, "dx_")) >= 0) return 2 * t;
    if ((t = stage_of(name, "theta_new_")) >= 0) return 2 * t + 1;
    return -1;
}

/* docs/decisions.md "Non-informative inputs taint the update pass": the
 * second forward pass (§8) applies saturating activations to what it is
 * handed, so an array computed from one that is not informative at u can look
 * stable in R = 8 runs and still be decided by rounding (fuzz game
 * 0x1d9aada81c4fb2b5: δx_2 weak at float32, σ(·) of it stable in every run, a
 * correct float32 computation on the other side of 0).  θ_new_t_n gets at
 * least the c of a non-informative k_t_n / K_t_n it is formed from, and every
 * δx / θ_new after a non-informative one gets at least its c. */
/* c of `x` raised to that of the array `name` when that one is nonzero and not
 * informative at u. */
static void raise_to(ocn_arrayset *a, ocn_array *x, const char *name, double u, int f32)
{
    const ocn_array *y = ocn_arrayset_find(a, name);
    double *c = f32 ? &x->cond_f32 : &x->cond, cy = y ? (f32 ? y->cond_f32 : y->cond) : 0;
    if (y && norm2(y->data, y->size) != 0.0 && !ocn_informative(cy, u) && cy > *c) *c = cy;
}

static void taint_update_pass(ocn_arrayset *a, double u, int f32)
{
    /* a gain k/K_t_n is formed from its stage's terms Q_θ, Q_θx, Q_θθ (GR: P_θ…
     * of the stage): where those are not informative the gain is not either,
     * however stable it looked (fuzz game 0xdafc4a80898befbd: P_θx and P_θθ of
     * stage 0 are both the residue of DDPNOpt Prop. 3's 1 − s = 0, c ≈ 4e17, their
     * ratio K_t0 = [-0.12, -0.027] stable in every run (c 3.7e12) — and 0 in a
     * correct port that cancels exactly) */
    for (int i = 0; i < a->count; i++) {
        ocn_array *x = &a->a[i];
        int t, n, len = 0;
        if (sscanf(x->name, "%*1[kK]_t%d_n%d%n", &t, &n, &len) != 2 || x->name[len]) continue;
        static const char *const Q[] = {"Qth", "Qthx", "Qthth"}, *const P[] = {"Pth", "Pthx", "Pthth"};
        char nm[64];
        for (int q = 0; q < 3; q++) {
            snprintf(nm, sizeof nm, "%s_t%d_n%d", Q[q], t, n);
            raise_to(a, x, nm, u, f32);
            snprintf(nm, sizeof nm, "%s_t%d", P[q], t);
            raise_to(a, x, nm, u, f32);
        }
    }
    /* θ_new_t_n = θ − k_t_n − mean K_t_n δx: computed from the player's gains
     * (fuzz game 0x1a9e4269d0dee4b1: k_t0_n0 not informative at float32 —
     * 1.3e-6 in the reference, 0.023 in float32 — and θ_new, c = 2.3e3, 33% off) */
    for (int i = 0; i < a->count; i++) {
        ocn_array *x = &a->a[i];
        int t, n, len = 0;
        if (sscanf(x->name, "theta_new_t%d_n%d%n", &t, &n, &len) != 2 || x->name[len]) continue;
        for (int g = 0; g < 2; g++) {
            char gn[64];
            snprintf(gn, sizeof gn, "%c_t%d_n%d", g ? 'K' : 'k', t, n);
            raise_to(a, x, gn, u, f32);
        }
    }
    int last = -1;
    for (int i = 0; i < a->count; i++) last = pass_position(a->a[i].name) > last ? pass_position(a->a[i].name) : last;
    double worst = 0;
    for (int pos = 0; pos <= last; pos++) {
        double here = 0;
        for (int i = 0; i < a->count; i++) {
            ocn_array *x = &a->a[i];
            if (pass_position(x->name) != pos) continue;
            double *c = f32 ? &x->cond_f32 : &x->cond;
            if (worst > *c) *c = worst; /* a zero too: relu of a chaotic sign (0x6e2dafa53d08acd7) */
            if (!ocn_informative(*c, u) && norm2(x->data, x->size) != 0.0) here = fmax(here, *c);
        }
        worst = fmax(worst, here);
    }
}

int ocn_measure_sensitivity(const ocn_game *g, const ocn_optimizer *opt, int runs, double u, ocn_producer_fn run,
                            void *ctx, ocn_arrayset *nominal, ocn_error *err)
{
    double d = ocn_tolerance_floor(g, opt);
    double *s = calloc((size_t)nominal->count + 1, sizeof *s);
    double *z = calloc((size_t)nominal->count + 1, sizeof *z); /* max_r ‖X^(r)‖ of nominal zeros */
    if (!s || !z) {
        free(s), free(z);
        return ocn_fail(err, OCN_ENOMEM, "out of memory measuring sensitivities");
    }
    int rc = perturbation_runs(g, runs, 0, u, run, ctx, nominal, s, z, err);
    for (int i = 0; !rc && i < nominal->count; i++) {
        ocn_array *x = &nominal->a[i];
        int zero = norm2(x->data, x->size) == 0.0;
        x->cond = zero ? d : fmax(s[i], d);
        /* a zero the perturbation runs do not reproduce is a cancellation:
         * it is compared against the size of the cancelled terms, z/u */
        x->zero_scale = zero && z[i] > 0 && isfinite(z[i]) ? z[i] / u : 0;
    }
    if (!rc) taint_update_pass(nominal, u, 0);
    free(s), free(z);
    return rc;
}

int ocn_measure_sensitivity_f32(const ocn_game *g, int runs, ocn_producer_fn run, void *ctx, ocn_arrayset *nominal,
                                ocn_error *err)
{
    double *s = calloc((size_t)nominal->count + 1, sizeof *s);
    if (!s) return ocn_fail(err, OCN_ENOMEM, "out of memory measuring float32 sensitivities");
    int rc = perturbation_runs(g, runs, OCN_F32_RUN_BASE, OCN_U32, run, ctx, nominal, s, NULL, err);
    /* zeros keep the u₆₄ rule (exact, or zero_scale): s stays 0 for them */
    for (int i = 0; !rc && i < nominal->count; i++) nominal->a[i].cond_f32 = fmax(nominal->a[i].cond, s[i]);
    if (!rc) taint_update_pass(nominal, OCN_U32, 1);
    free(s);
    return rc;
}

double ocn_cond_at(const ocn_array *a, double u)
{
    return u > 1e-10 && a->cond_f32 > 0 ? a->cond_f32 : a->cond;
}

int ocn_informative(double c, double u)
{
    double tau = u > 1e-10 ? OCN_TAU_F32 : OCN_TAU_F64;
    return OCN_FAIL_RATIO * u * c < tau;
}

int ocn_name_has_prefix(const char *name, const char *const *prefixes)
{
    for (int i = 0; prefixes[i]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return 1;
    return 0;
}

int ocn_is_gain_or_value(const char *name)
{
    static const char *const p[] = {"k_", "K_", "Vx_", "Vxx_", "Wx_", "Wxx_", NULL};
    return ocn_name_has_prefix(name, p);
}

int ocn_counts_for_detection(const char *name)
{
    static const char *const p[] = {"theta_new_", NULL};
    return ocn_is_gain_or_value(name) || ocn_name_has_prefix(name, p);
}
