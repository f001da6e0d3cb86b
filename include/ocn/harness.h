/* The harness: SPEC §10 comparisons, the §9 theorem checks, fixture
 * verification.  Reports are tables of rows (LAPACK-style: every ratio printed). */
#ifndef OCN_HARNESS_H
#define OCN_HARNESS_H

#include <stdio.h>
#include "ocn/arrays.h"
#include "ocn/fixture.h"
#include "ocn/reference.h"

#define OCN_THRESHOLD 30.0   /* §10: LAPACK's test-ratio threshold */

typedef enum { OCN_OK_V = 0, OCN_MARGINAL, OCN_FAILED, OCN_MEASURED } ocn_verdict;

typedef struct {
    char id[24], fixture[160], quantity[96];
    double err, ratio;       /* ratio < 0: not applicable (measured rows) */
    ocn_verdict verdict;
} ocn_row;

typedef struct ocn_report {
    int count, cap;
    ocn_row *rows;
    int skipped;             /* runs refused (e.g. by the optimized path), printed, never passed */
} ocn_report;

/* §10 */
double ocn_rel_err(const double *x, const double *ref, size_t n);
double ocn_ratio(double err, double u, double c);
ocn_verdict ocn_verdict_of(double ratio);
const char *ocn_verdict_name(ocn_verdict v);
#define OCN_U64 (1.1102230246251565e-16) /* 2^-53 */

ocn_report *ocn_report_new(void);
void ocn_report_free(ocn_report *r);
/* Adds a row; verdict from ratio (§10), FAILED for NaN/Inf err. */
void ocn_report_add(ocn_report *r, const char *id, const char *fixture, const char *quantity, double err, double ratio);
void ocn_report_measured(ocn_report *r, const char *id, const char *fixture, const char *quantity, double value);
void ocn_report_print(const ocn_report *r, FILE *f);
int ocn_report_write_json(const ocn_report *r, const char *path, ocn_error *err);
int ocn_report_failures(const ocn_report *r);
int ocn_report_passes(const ocn_report *r);

/* Recompute a fixture's stored outputs with the reference from its stored
 * inputs; one row per array (id "REPRO").  Arrays the reference does not
 * produce are rows of their own (FAILED): nothing is skipped silently. */
int ocn_verify_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_report *rep, ocn_error *err);

/* Run every §9 check that applies to the fixture's game. */
int ocn_theorems_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_report *rep, ocn_error *err);

/* `ocn check`: optimized (backend, precision 32/64) vs reference on one
 * fixture; a game the optimized path refuses is counted in *skipped (and
 * named on `notes`, may be NULL), never passed. */
int ocn_check_fixture(const ocn_fixture *f, const char *backend, int precision, ocn_report *rep, int *skipped,
                      FILE *notes, ocn_error *err);

/* `ocn compare`: fixtures A and B of the same game, every common array;
 * arrays on one side only are named on `notes` (may be NULL). */
int ocn_compare_fixtures(const ocn_fixture *a, const ocn_fixture *b, ocn_report *rep, FILE *notes, ocn_error *err);

#endif
