/* Reports (SPEC §10): rows of verdicts, per-fixture detection power, arrays
 * on one side only; printed as a table, JSON or JUnit XML. */
#include "ocn/harness.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *ocn_verdict_name(ocn_verdict v)
{
    static const char *const n[] = {"ok", "marginal", "FAILED", "measured", "weak", "SKIP"};
    return (unsigned)v < sizeof n / sizeof *n ? n[v] : "?";
}

ocn_report *ocn_report_new(void) { return calloc(1, sizeof(ocn_report)); }

void ocn_report_free(ocn_report *r)
{
    if (!r) return;
    free(r->rows);
    free(r->fix);
    free(r->one);
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

void ocn_report_add_c(ocn_report *r, const char *id, const char *fixture, const char *quantity, double err, double u,
                      double c)
{
    double ratio = ocn_ratio(err, u, c);
    ocn_row *w = add_row(r, id, fixture, quantity);
    if (!w) return;
    w->err = err;
    w->ratio = ratio;
    w->c = c;
    w->verdict = isfinite(err) ? ocn_verdict_of(ratio) : OCN_FAILED;
    if (w->verdict != OCN_FAILED && !ocn_informative(c, u)) w->verdict = OCN_WEAK;
}

void ocn_report_skip(ocn_report *r, const char *id, const char *fixture, const char *reason)
{
    ocn_row *w = add_row(r, id, fixture, "-");
    if (!w) return;
    w->ratio = -1;
    w->verdict = OCN_SKIP;
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    r->skipped++;
}

void ocn_report_fixture_info(ocn_report *r, const ocn_fixture_info *info)
{
    if (r->nfix == r->capfix) {
        int nc = r->capfix ? 2 * r->capfix : 16;
        ocn_fixture_info *n = realloc(r->fix, (size_t)nc * sizeof *n);
        if (!n) return;
        r->fix = n, r->capfix = nc;
    }
    r->fix[r->nfix++] = *info;
}

void ocn_report_one_side(ocn_report *r, const char *fixture, const char *name, const char *side)
{
    if (r->none == r->capone) {
        int nc = r->capone ? 2 * r->capone : 16;
        ocn_one_side *n = realloc(r->one, (size_t)nc * sizeof *n);
        if (!n) return;
        r->one = n, r->capone = nc;
    }
    ocn_one_side *o = &r->one[r->none++];
    snprintf(o->fixture, sizeof o->fixture, "%s", fixture);
    snprintf(o->name, sizeof o->name, "%s", name);
    snprintf(o->side, sizeof o->side, "%s", side);
}

int ocn_report_weak(const ocn_report *r)
{
    int n = 0;
    for (int i = 0; i < r->count; i++) n += r->rows[i].verdict == OCN_WEAK;
    return n;
}

int ocn_report_compared(const ocn_report *r)
{
    int n = 0;
    for (int i = 0; i < r->count; i++) n += r->rows[i].verdict != OCN_SKIP;
    return n;
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

void ocn_report_print(const ocn_report *r, FILE *f, int verbose)
{
    fprintf(f, "%-14s %-28s %-22s %12s %12s  %s\n", "ID", "fixture", "quantity", "err", "ratio", "verdict");
    int measured = 0, marginal = 0;
    for (int i = 0; i < r->count; i++) {
        const ocn_row *w = &r->rows[i];
        if (!verbose && (w->verdict == OCN_OK_V || w->verdict == OCN_MEASURED)) continue;
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

int ocn_report_write_junit(const ocn_report *r, const char *path, ocn_error *err)
{
    (void)r;
    return ocn_fail(err, OCN_EUNSUPPORTED, "%s: JUnit output not written yet", path);
}
