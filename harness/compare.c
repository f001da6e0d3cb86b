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
    return (double)(sqrtl(d) / fmaxl(sqrtl(r), DBL_MIN));
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

const char *ocn_verdict_name(ocn_verdict v)
{
    static const char *const n[] = {"ok", "marginal", "FAILED", "measured"};
    return n[v];
}

ocn_report *ocn_report_new(void) { return calloc(1, sizeof(ocn_report)); }

void ocn_report_free(ocn_report *r)
{
    if (!r) return;
    free(r->rows);
    free(r);
}

static ocn_row *add_row(ocn_report *r, const char *id, const char *fixture, const char *quantity)
{
    if (r->count == r->cap) {
        int nc = r->cap ? 2 * r->cap : 64;
        ocn_row *nr = realloc(r->rows, (size_t)nc * sizeof *nr);
        if (!nr) return NULL;
        r->rows = nr;
        r->cap = nc;
    }
    ocn_row *w = &r->rows[r->count++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->fixture, sizeof w->fixture, "%s", fixture);
    snprintf(w->quantity, sizeof w->quantity, "%s", quantity);
    return w;
}

void ocn_report_add(ocn_report *r, const char *id, const char *fixture, const char *quantity, double err, double ratio)
{
    ocn_row *w = add_row(r, id, fixture, quantity);
    if (!w) return;
    w->err = err;
    w->ratio = ratio;
    w->verdict = isfinite(err) ? ocn_verdict_of(ratio) : OCN_FAILED;
}

void ocn_report_measured(ocn_report *r, const char *id, const char *fixture, const char *quantity, double value)
{
    ocn_row *w = add_row(r, id, fixture, quantity);
    if (!w) return;
    w->err = value;
    w->ratio = -1;
    w->verdict = OCN_MEASURED;
}

int ocn_report_failures(const ocn_report *r)
{
    int n = 0;
    for (int i = 0; i < r->count; i++) n += r->rows[i].verdict == OCN_FAILED;
    return n;
}

int ocn_report_passes(const ocn_report *r)
{
    int n = 0;
    for (int i = 0; i < r->count; i++) n += r->rows[i].verdict == OCN_OK_V || r->rows[i].verdict == OCN_MARGINAL;
    return n;
}

void ocn_report_print(const ocn_report *r, FILE *f)
{
    fprintf(f, "%-14s %-28s %-22s %12s %12s  %s\n", "ID", "fixture", "quantity", "err", "ratio", "verdict");
    int measured = 0, marginal = 0;
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        char ratio[32];
        if (w->verdict == OCN_MEASURED) snprintf(ratio, sizeof ratio, "-");
        else snprintf(ratio, sizeof ratio, "%.3g", w->ratio);
        fprintf(f, "%-14s %-28s %-22s %12.4e %12s  %s\n", w->id, w->fixture, w->quantity, w->err, ratio,
                ocn_verdict_name(w->verdict));
        measured += w->verdict == OCN_MEASURED;
        marginal += w->verdict == OCN_MARGINAL;
    }
    fprintf(f, "(%d measured, %d marginal; threshold %.0f, FAILED at %.0f)\n", measured, marginal, OCN_THRESHOLD,
            10 * OCN_THRESHOLD);
    if (r->skipped) fprintf(f, "%d passed, %d failed, %d skipped\n", ocn_report_passes(r), ocn_report_failures(r), r->skipped);
    else fprintf(f, "%d passed, %d failed\n", ocn_report_passes(r), ocn_report_failures(r));
}

int ocn_report_write_json(const ocn_report *r, const char *path, ocn_error *err)
{
    json_t *root = json_object(), *rows = json_array();
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(w->id));
        json_object_set_new(o, "fixture", json_string(w->fixture));
        json_object_set_new(o, "quantity", json_string(w->quantity));
        json_object_set_new(o, "err", isfinite(w->err) ? json_real(w->err) : json_null());
        json_object_set_new(o, "ratio", w->verdict == OCN_MEASURED || !isfinite(w->ratio) ? json_null() : json_real(w->ratio));
        json_object_set_new(o, "verdict", json_string(ocn_verdict_name(w->verdict)));
        json_array_append_new(rows, o);
    }
    json_object_set_new(root, "rows", rows);
    json_object_set_new(root, "passed", json_integer(ocn_report_passes(r)));
    json_object_set_new(root, "failed", json_integer(ocn_report_failures(r)));
    json_object_set_new(root, "skipped", json_integer(r->skipped));
    json_object_set_new(root, "threshold", json_real(OCN_THRESHOLD));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(1));
    json_decref(root);
    if (rc || rename(tmp, path)) {
        remove(tmp);
        return ocn_fail(err, OCN_EIO, "%s: cannot write JSON report", path);
    }
    return OCN_OK;
}
