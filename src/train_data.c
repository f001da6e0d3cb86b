/* `ocn train` data sets (issue 13): the four-file layout, validated with a
 * message naming the file and the field, and standardised by the training
 * part's statistics only (never the evaluation split's). */
#include "ocn/npy.h"
#include "ocn/train.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ocn_dataset_free(ocn_dataset *d)
{
    if (!d) return;
    free(d->X), free(d->y), free(d->train), free(d->test), free(d->mean), free(d->std);
    free(d);
}

/* Reads DIR/NAME into set as `name`, any numeric dtype. */
static int read_file(const char *dir, const char *file, ocn_arrayset *set, char *path, size_t pn, ocn_error *err)
{
    snprintf(path, pn, "%s/%s", dir, file);
    char dt[8];
    return ocn_npy_read_numeric(path, set, file, dt, err);
}

static int read_index(const char *dir, const char *file, ocn_arrayset *set, size_t n, size_t **out, size_t *k,
                      unsigned char *seen, int mark, ocn_error *err)
{
    char path[4096];
    int rc = read_file(dir, file, set, path, sizeof path, err);
    if (rc) return rc;
    const ocn_array *a = ocn_arrayset_find(set, file);
    if (a->ndim != 1) return ocn_fail(err, OCN_EINVAL, "%s: shape must be (k,), a list of row indices, not %d-d", path, a->ndim);
    if (!a->size) return ocn_fail(err, OCN_EINVAL, "%s: empty index list", path);
    *out = malloc(a->size * sizeof **out);
    if (!*out) return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < a->size; i++) {
        double v = a->data[i];
        if (v != floor(v) || v < 0 || v >= (double)n)
            return ocn_fail(err, OCN_EINVAL, "%s: entry %zu is %g, not a row index in [0, %zu) of X.npy", path, i, v, n);
        size_t r = (size_t)v;
        if (seen[r] == mark) return ocn_fail(err, OCN_EINVAL, "%s: row %zu appears twice", path, r);
        if (seen[r]) return ocn_fail(err, OCN_EINVAL, "%s: row %zu is also in train_idx.npy (the splits must be disjoint)", path, r);
        seen[r] = (unsigned char)mark;
        (*out)[i] = r;
    }
    *k = a->size;
    return OCN_OK;
}

int ocn_dataset_load(const char *dir, ocn_dataset **out, ocn_error *err)
{
    *out = NULL;
    ocn_dataset *d = calloc(1, sizeof *d);
    ocn_arrayset *set = ocn_arrayset_new();
    unsigned char *seen = NULL;
    char px[4096], py[4096];
    int rc = d && set ? OCN_OK : ocn_fail(err, OCN_ENOMEM, "out of memory");
    if (!rc) rc = read_file(dir, "X.npy", set, px, sizeof px, err);
    if (!rc) rc = read_file(dir, "y.npy", set, py, sizeof py, err);
    const ocn_array *X = rc ? NULL : ocn_arrayset_find(set, "X.npy"), *y = rc ? NULL : ocn_arrayset_find(set, "y.npy");
    if (!rc && X->ndim != 2) rc = ocn_fail(err, OCN_EINVAL, "%s: shape must be (rows, features), not %d-d", px, X->ndim);
    if (!rc && (!X->shape[0] || !X->shape[1])) rc = ocn_fail(err, OCN_EINVAL, "%s: no rows or no features", px);
    if (!rc && (y->ndim != 1 || y->shape[0] != X->shape[0]))
        rc = ocn_fail(err, OCN_EINVAL, "%s: shape must be (%zu,), one label per row of X.npy (got %s%zu%s)", py,
                      X->shape[0], y->ndim == 1 ? "(" : "", y->ndim ? y->shape[0] : 0, y->ndim == 1 ? ",)" : ", ...)");
    if (!rc) {
        d->n = X->shape[0], d->d = X->shape[1];
        d->X = malloc(X->size * sizeof *d->X);
        d->y = malloc(d->n * sizeof *d->y);
        d->mean = calloc(d->d, sizeof *d->mean);
        d->std = calloc(d->d, sizeof *d->std);
        seen = calloc(d->n, 1);
        if (!d->X || !d->y || !d->mean || !d->std || !seen) rc = ocn_fail(err, OCN_ENOMEM, "%s: out of memory", px);
    }
    for (size_t i = 0; !rc && i < X->size; i++) {
        if (!isfinite(X->data[i]))
            rc = ocn_fail(err, OCN_EINVAL, "%s: row %zu, feature %zu is NaN or Inf", px, i / d->d, i % d->d);
        else d->X[i] = X->data[i];
    }
    for (size_t i = 0; !rc && i < d->n; i++) {
        double v = y->data[i];
        if (!isfinite(v) || v != floor(v)) rc = ocn_fail(err, OCN_EINVAL, "%s: label %zu is %g, not an integer", py, i, v);
        else if (v < 0) rc = ocn_fail(err, OCN_EINVAL, "%s: label %zu is %g; labels are class numbers 0, 1, ...", py, i, v);
        else if (v >= (double)OCN_MAX_DIM) rc = ocn_fail(err, OCN_EINVAL, "%s: label %zu is %g, beyond %d classes", py, i, v, OCN_MAX_DIM);
        else {
            d->y[i] = (int)v;
            if (d->y[i] + 1 > d->classes) d->classes = d->y[i] + 1;
        }
    }
    if (!rc) rc = read_index(dir, "train_idx.npy", set, d->n, &d->train, &d->ntrain, seen, 1, err);
    if (!rc) rc = read_index(dir, "test_idx.npy", set, d->n, &d->test, &d->ntest, seen, 2, err);
    free(seen);
    ocn_arrayset_free(set);
    if (rc) {
        ocn_dataset_free(d);
        return rc;
    }
    *out = d;
    return OCN_OK;
}

int ocn_dataset_prepare(ocn_dataset *d, double valid, unsigned long valid_seed, ocn_error *err)
{
    if (!(valid >= 0 && valid < 1)) return ocn_fail(err, OCN_EINVAL, "--valid must be in [0, 1), not %g", valid);
    if (d->prepared) return ocn_fail(err, OCN_EINVAL, "data set already prepared (standardised once)");
    d->prepared = 1;
    if (valid > 0) {
        /* issue 13: learning rates are searched on a held-out part of the
         * training split; the same part for every run (its own seed) */
        size_t nv = (size_t)floor(valid * (double)d->ntrain + 0.5);
        if (nv < 1 || nv >= d->ntrain)
            return ocn_fail(err, OCN_EINVAL, "--valid %g leaves %zu of %zu training rows for validation", valid, nv, d->ntrain);
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        if (!r) return ocn_fail(err, OCN_ENOMEM, "out of memory");
        gsl_rng_set(r, valid_seed);
        size_t *p = d->train;
        for (size_t i = d->ntrain - 1; i > 0; i--) {
            size_t j = gsl_rng_uniform_int(r, i + 1), t = p[i];
            p[i] = p[j], p[j] = t;
        }
        gsl_rng_free(r);
        /* the held-out rows become the evaluation list; the test split is dropped */
        size_t *v = malloc(nv * sizeof *v);
        if (!v) return ocn_fail(err, OCN_ENOMEM, "out of memory");
        memcpy(v, p + (d->ntrain - nv), nv * sizeof *v);
        free(d->test);
        d->test = v, d->ntest = nv, d->ntrain -= nv;
    }
    /* mean and population std over the training rows; std 0: only centred */
    for (size_t j = 0; j < d->d; j++) {
        double s = 0, q = 0;
        for (size_t i = 0; i < d->ntrain; i++) s += d->X[d->train[i] * d->d + j];
        double m = s / (double)d->ntrain;
        for (size_t i = 0; i < d->ntrain; i++) {
            double c = d->X[d->train[i] * d->d + j] - m;
            q += c * c;
        }
        d->mean[j] = m, d->std[j] = sqrt(q / (double)d->ntrain);
    }
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = 0; j < d->d; j++) {
            double *x = &d->X[i * d->d + j];
            *x -= d->mean[j];
            if (d->std[j] > 0) *x /= d->std[j];
        }
    return OCN_OK;
}
