/* SPEC §10 tolerance policy: err = ‖X − X*‖_F / max(‖X*‖_F, tiny),
 * ratio = err / (u·c), ok < 30 ≤ marginal < 300 ≤ FAILED. */
#include "ocn/harness.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double ocn_rel_err(const double *x, const double *ref, size_t n)
{
    long double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return INFINITY;
        long double e = (long double)x[i] - ref[i];
        d += e * e;
        r += (long double)ref[i] * ref[i];
    }
    /* a finite x never gives err = inf (reserved for NaN/Inf): ‖x‖ against a
     * zero reference is ‖x‖/DBL_MIN, which overflows double for ‖x‖ > 4 */
    long double q = sqrtl(d) / fmaxl(sqrtl(r), DBL_MIN);
    return q > DBL_MAX ? DBL_MAX : (double)q;
}

/* err of `x` against the reference array `ref`: §10's relative error, except
 * for a zero by cancellation (ref->zero_scale > 0, docs/decisions.md), whose
 * error is measured against the size of the terms that cancelled. */
double ocn_array_err(const double *x, const ocn_array *ref)
{
    int zero = 1; /* the rule is for an all-zero reference only (a manifest's zero_scale on another is ignored) */
    for (size_t i = 0; zero && i < ref->size; i++) zero = ref->data[i] == 0.0;
    if (ref->zero_scale > 0 && zero) {
        /* x's own finiteness decides: the relative error against the zero
         * reference (‖x‖/DBL_MIN) overflows to inf for any ‖x‖ > 4 and must
         * not stand in for it (fuzz game 0x8aa243824281aa6e: ‖K‖ = 4e14 beside
         * a zero_scale of 1.8e31 was "err inf"; python/ocnopt/compare.py divides
         * in long double and never overflowed) */
        long double d = 0;
        for (size_t i = 0; i < ref->size; i++) {
            if (!isfinite(x[i])) return INFINITY;
            d += (long double)x[i] * x[i];
        }
        return (double)(sqrtl(d) / ref->zero_scale);
    }
    return ocn_rel_err(x, ref->data, ref->size);
}

double ocn_ratio(double err, double u, double c)
{
    if (!isfinite(err)) return INFINITY;
    return err / (u * (c > 1.0 ? c : 1.0));
}

ocn_verdict ocn_verdict_of(double ratio)
{
    if (!(ratio < 10 * OCN_THRESHOLD)) return OCN_FAILED; /* NaN fails too */
    return ratio < OCN_THRESHOLD ? OCN_OK_V : OCN_MARGINAL;
}



/* The arrays the optimized path defines (ocn check's required set; the same
 * table is in docs/checks.md).  K and Vxx/Wxx are defined wherever the
 * reference fixture stores them (§11 omits K above 1 MB). */
static const char *const OPTIMIZED_DEFINES[] = {"x_t", "dx_t", "Qx_t", "Px_t", "Qth_t", "Pth_t", "k_t", "K_t",
                                                "Vx_t", "Vxx_t", "Wx_t", "Wxx_t", "theta_new_t", NULL};
static const char *const GAIN_ARRAYS[] = {"k_t", "K_t", "Vx_t", "Vxx_t", "Wx_t", "Wxx_t", "dx_t", "theta_new_t", NULL};

/* §13: a trajectory's own arrays, required beside the one-step sets */
static const char *const TRAJ_DEFINES[] = {"theta_s", "dtheta_s", "loss_s", "theta_t", "A_t", "G_t", "v_t", NULL};
static const char *const TRAJ_GAINS[] = {"theta_s", "dtheta_s", "theta_t", NULL};

int ocn_requires_of(ocn_require req, const char *name, int trajectory)
{
    if (!trajectory) return ocn_requires(req, name);
    if (ocn_array_is_input_of(name, 1)) return 0;
    if (req == OCN_REQUIRE_OPTIMIZED && ocn_name_has_prefix(name, TRAJ_DEFINES)) return 1;
    if (req == OCN_REQUIRE_GAINS && ocn_name_has_prefix(name, TRAJ_GAINS)) return 1;
    return req == OCN_REQUIRE_ALL || ocn_requires(req, name);
}

int ocn_requires(ocn_require req, const char *name)
{
    if (ocn_array_is_input(name)) return 0;
    switch (req) {
    case OCN_REQUIRE_GAINS: return ocn_name_has_prefix(name, GAIN_ARRAYS);
    case OCN_REQUIRE_OPTIMIZED: return ocn_name_has_prefix(name, OPTIMIZED_DEFINES);
    default: return 1;
    }
}

void ocn_fixture_info_of(const char *fixture, const ocn_arrayset *ref, ocn_fixture_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->fixture, sizeof info->fixture, "%s", fixture);
    for (int i = 0; i < ref->count; i++) {
        const ocn_array *a = &ref->a[i];
        if (ocn_array_is_input(a->name)) continue;
        int inf = ocn_informative(a->cond, OCN_U64);
        if (ocn_is_gain_or_value(a->name)) info->total++, info->weak += !inf;
        if (inf && ocn_counts_for_detection(a->name))
            info->detection = fmax(info->detection, OCN_FAIL_RATIO * OCN_U64 * a->cond);
    }
    info->fit_for_ports = 2 * info->weak <= info->total;
}

/* "(4, 42, 6)", "(21,)" as numpy prints shapes */
static const char *shape_str(char *b, size_t n, const ocn_array *a)
{
    size_t l = (size_t)snprintf(b, n, "(");
    for (int d = 0; d < a->ndim && l < n; d++)
        l += (size_t)snprintf(b + l, n - l, "%s%zu", d ? ", " : "", a->shape[d]);
    if (l < n) snprintf(b + l, n - l, a->ndim == 1 ? ",)" : ")");
    return b;
}

static int same_shape(const ocn_array *a, const ocn_array *b)
{
    int same = a->ndim == b->ndim;
    for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
    return same;
}

int ocn_compare_sets(ocn_report *rep, const ocn_compare_spec *s, const ocn_arrayset *ref, const ocn_arrayset *tested)
{
    char q[96];
    int compared = 0, traj = 0;
    for (int i = 0; i < ref->count && !traj; i++) traj = !strncmp(ref->a[i].name, "theta_s0_", 9); /* §13 */
    for (int i = 0; i < ref->count; i++) {
        const ocn_array *x = &ref->a[i], *y = ocn_arrayset_find(tested, x->name);
        if (ocn_array_is_input_of(x->name, traj)) { /* the same inputs, bit for bit, or the comparison means nothing */
            if (y && (!same_shape(x, y) || memcmp(x->data, y->data, x->size * sizeof *x->data))) {
                snprintf(q, sizeof q, "%s (input differs)", x->name);
                ocn_report_add_c(rep, s->id, s->fixture, q, INFINITY, s->u, ocn_cond_at(x, s->u));
            }
            continue;
        }
        if (!ocn_requires_of(s->require, x->name, traj)) {
            /* check's required set is the optimized path's whole output by design (docs/checks.md) */
            if (!y) {
                if (s->require != OCN_REQUIRE_OPTIMIZED)
                    ocn_report_one_side(rep, s->fixture, x->name, "reference only, not required");
            } else if (same_shape(x, y)) { /* compared, but not part of the required set */
                ocn_report_add_c(rep, s->id, s->fixture, x->name, ocn_array_err(y->data, x), s->u, ocn_cond_at(x, s->u));
                compared++;
            }
            continue;
        }
        if (!y) { /* §10: a required array that is missing is FAILED */
            snprintf(q, sizeof q, "%s (missing)", x->name);
            ocn_report_add_c(rep, s->id, s->fixture, q, INFINITY, s->u, ocn_cond_at(x, s->u));
            continue;
        }
        if (!same_shape(x, y)) {
            snprintf(q, sizeof q, "%s (shape differs)", x->name);
            ocn_report_add_c(rep, s->id, s->fixture, q, INFINITY, s->u, ocn_cond_at(x, s->u));
            char sx[64], sy[64]; /* both shapes on the row's reason line (issue 15) */
            if (rep->count && !strcmp(rep->rows[rep->count - 1].quantity, q))
                snprintf(rep->rows[rep->count - 1].reason, sizeof rep->rows[0].reason, "shape %s, reference %s",
                         shape_str(sy, sizeof sy, y), shape_str(sx, sizeof sx, x));
            continue;
        }
        ocn_report_add_c(rep, s->id, s->fixture, x->name, ocn_array_err(y->data, x), s->u, ocn_cond_at(x, s->u));
        compared++;
    }
    for (int i = 0; i < tested->count; i++)
        if (!ocn_arrayset_find(ref, tested->a[i].name))
            ocn_report_one_side(rep, s->fixture, tested->a[i].name, s->tested_only ? s->tested_only : "tested only");
    ocn_fixture_info info;
    ocn_fixture_info_of(s->fixture, ref, &info);
    ocn_report_fixture_info(rep, &info);
    return compared;
}

int ocn_reference_side(const ocn_fixture *f, ocn_arrayset **ref, ocn_error *err)
{
    *ref = ocn_arrayset_copy(f->arrays);
    if (!*ref) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    if (f->c_measured) return OCN_OK;
    /* §10: "a v1 fixture, or one without cond, gets c re-measured by the reference" */
    ocn_arrayset *run = ocn_arrayset_new();
    ocn_ref_opts o = {.fault = OCN_FAULT_NONE, .measure_runs = OCN_MEASURE_RUNS, .measure_f32 = 1};
    int rc = run ? ocn_recompute_fixture(f, &o, run, err) : ocn_fail(err, OCN_ENOMEM, "out of memory");
    double d = ocn_tolerance_floor(f->game, &f->game->opt);
    for (int i = 0; !rc && i < (*ref)->count; i++) {
        const ocn_array *m = ocn_arrayset_find(run, (*ref)->a[i].name);
        (*ref)->a[i].cond = m ? m->cond : d;
        (*ref)->a[i].zero_scale = m ? m->zero_scale : 0;
        (*ref)->a[i].cond_f32 = m ? m->cond_f32 : 0;
    }
    ocn_arrayset_free(run);
    if (rc) {
        ocn_arrayset_free(*ref);
        *ref = NULL;
        return ocn_error_prefix(err, "%s: re-measuring §10 sensitivities", f->dir);
    }
    return OCN_OK;
}
