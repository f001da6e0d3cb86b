/* The harness: SPEC §10 comparisons, the §9 theorem checks, fixture
 * verification.  Reports are tables of rows (LAPACK-style: every ratio printed). */
#ifndef OCN_HARNESS_H
#define OCN_HARNESS_H

#include <stdio.h>
#include "ocn/arrays.h"
#include "ocn/fixture.h"
#include "ocn/reference.h"
#include "ocn/tolerance.h"

#define OCN_THRESHOLD 30.0   /* §10: LAPACK's test-ratio threshold */

/* §10 rev. 2 verdicts.  `weak`: the array is not informative (300·u·c ≥ τ), so
 * a small ratio is no evidence — never counted as passed.  `measured`: a
 * number reported with an expectation, not judged.  `SKIP`: not run, with a
 * reason (e.g. a mode the optimized path refuses). */
typedef enum { OCN_OK_V = 0, OCN_MARGINAL, OCN_FAILED, OCN_MEASURED, OCN_WEAK, OCN_SKIP } ocn_verdict;

typedef struct {
    char id[24], fixture[160], quantity[96];
    double err, ratio;       /* ratio < 0: not applicable (measured and SKIP rows) */
    double c;                /* §10 sensitivity the ratio used (0: none) */
    ocn_verdict verdict;
    char reason[256];        /* SKIP rows: why */
} ocn_row;

/* Per fixture: §10 detection power (largest 300·u₆₄·c over its informative
 * k, K, Vx, Vxx, Wx, Wxx, theta_new; 0 when it has none) and how many of its
 * gain/value arrays are weak. */
typedef struct {
    char fixture[160];
    double detection;
    int weak, total;         /* weak gain/value arrays out of total */
    int fit_for_ports;
} ocn_fixture_info;

/* An array present on one side of a comparison only (§10 completeness). */
typedef struct {
    char fixture[160], name[64];
    char side[32];           /* e.g. "reference only", "tested only" */
} ocn_one_side;

typedef struct ocn_report {
    int count, cap;
    ocn_row *rows;
    int skipped;             /* runs refused (e.g. by the optimized path), printed, never passed */
    int nfix, capfix;
    ocn_fixture_info *fix;
    int none, capone;
    ocn_one_side *one;
} ocn_report;

/* §10 */
double ocn_rel_err(const double *x, const double *ref, size_t n);
double ocn_ratio(double err, double u, double c);
ocn_verdict ocn_verdict_of(double ratio);
const char *ocn_verdict_name(ocn_verdict v);

ocn_report *ocn_report_new(void);
void ocn_report_free(ocn_report *r);
/* Adds a row; verdict from ratio (§10), FAILED for NaN/Inf err. */
void ocn_report_add(ocn_report *r, const char *id, const char *fixture, const char *quantity, double err, double ratio);
/* Adds a §10 rev. 2 row: ratio = err/(u·c); `weak` instead of ok/marginal
 * when the array is not informative at u (FAILED stays FAILED). */
void ocn_report_add_c(ocn_report *r, const char *id, const char *fixture, const char *quantity, double err, double u,
                      double c);
void ocn_report_measured(ocn_report *r, const char *id, const char *fixture, const char *quantity, double value);
/* A SKIP row (counted in r->skipped) with its reason. */
void ocn_report_skip(ocn_report *r, const char *id, const char *fixture, const char *reason);
void ocn_report_fixture_info(ocn_report *r, const ocn_fixture_info *info);
void ocn_report_one_side(ocn_report *r, const char *fixture, const char *name, const char *side);
/* Default: one line per fixture × check family (worst ratio, counts of
 * ok/marginal/weak/FAILED/SKIP), every row that is not ok/measured, detection
 * power per fixture, one-side arrays; verbose: every row.  Ends with the
 * closing line "N passed, N failed[, N skipped]". */
void ocn_report_print(const ocn_report *r, FILE *f, int verbose);
/* JSON (schema "ocnopt-report", version 1) and JUnit XML (one testcase per
 * fixture × check family).  Written via a temporary file in the target's
 * directory (mkstemp) and renamed; a non-regular target is refused. */
int ocn_report_write_json(const ocn_report *r, const char *path, ocn_error *err);
int ocn_report_write_junit(const ocn_report *r, const char *path, ocn_error *err);
int ocn_report_failures(const ocn_report *r);
int ocn_report_passes(const ocn_report *r);
int ocn_report_weak(const ocn_report *r);
/* Rows that compared something (any verdict but SKIP); 0 means the run
 * compared nothing (§10 completeness: exit 1 unless --allow-skip). */
int ocn_report_compared(const ocn_report *r);

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
