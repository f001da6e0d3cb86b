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
/* §10 err of x against a reference array, honouring its zero_scale (a zero by cancellation) */
double ocn_array_err(const double *x, const ocn_array *ref);
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
/* Rows that judged something (ok, marginal or FAILED); 0 means the run
 * compared nothing (§10 completeness: exit 1 unless --allow-skip). */
int ocn_report_compared(const ocn_report *r);

/* §10 completeness: the set of the reference side's output arrays a tool
 * requires.  ALL: every output (verify, compare); GAINS: k, K, Vx, Vxx, Wx,
 * Wxx, dx, theta_new (compare --require gains); OPTIMIZED: the arrays the
 * optimized path defines (check; table in harness/compare.c and docs/checks.md). */
typedef enum { OCN_REQUIRE_ALL = 0, OCN_REQUIRE_GAINS, OCN_REQUIRE_OPTIMIZED } ocn_require;
int ocn_requires(ocn_require req, const char *name);
/* The same for a fixture of either kind: in a trajectory (§13) theta_t… is an
 * output (required by ALL and GAINS), and the trajectory's own arrays
 * (theta_s…, dtheta_s…, loss_s…, the state A_t…, G_t…, v_t…) join the GAINS
 * (theta_s…, dtheta_s…) and OPTIMIZED sets. */
int ocn_requires_of(ocn_require req, const char *name, int trajectory);

typedef struct {
    const char *id;          /* row family, e.g. "REPRO", "cpu/f64", "COMPARE" */
    const char *fixture;     /* fixture name in rows */
    ocn_require require;
    double u;                /* unit roundoff of the lower precision involved */
    const char *tested_only; /* label for arrays only the tested side has (NULL: "tested only") */
} ocn_compare_spec;

/* The one comparison routine (§10) behind verify, check and compare: X* = ref
 * (its ->cond is the measured c, always the reference side's), X = tested;
 * ref holding theta_s0_… arrays is a §13 trajectory (its inputs and required
 * sets: ocn_array_is_input_of, ocn_requires_of).
 * A required array missing or of another shape is FAILED; inputs present on
 * both sides must be identical; arrays on one side only are listed; the
 * fixture's detection power is recorded.  Returns how many output arrays
 * were compared. */
int ocn_compare_sets(ocn_report *rep, const ocn_compare_spec *s, const ocn_arrayset *ref, const ocn_arrayset *tested);
/* §10 detection power and weak counts of a reference-side arrayset. */
void ocn_fixture_info_of(const char *fixture, const ocn_arrayset *ref, ocn_fixture_info *info);
/* The reference side of a fixture: its stored arrays with their measured c
 * (§10 rev. 2); a v1 fixture or one without measured c gets c re-measured by
 * the reference (8 runs) on its own inputs. */
int ocn_reference_side(const ocn_fixture *f, ocn_arrayset **ref, ocn_error *err);

/* The reference's recomputation of a fixture from its stored inputs: one
 * step (ocn_ref_run), or for a §13 trajectory fixture the whole trajectory
 * (ocn_ref_run_trajectory from theta_s0_… and the stored batches). */
int ocn_recompute_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_arrayset *out, ocn_error *err);

/* Recompute a fixture's stored outputs with the reference from its stored
 * inputs; one row per array (id "REPRO").  Arrays the reference does not
 * produce are rows of their own (FAILED): nothing is skipped silently. */
int ocn_verify_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_report *rep, ocn_error *err);

/* Run every §9 check that applies to the fixture's game. */
int ocn_theorems_fixture(const ocn_fixture *f, const ocn_ref_opts *o, ocn_report *rep, ocn_error *err);
/* The same, only the checks `filter` selects (NULL: all; see ocn_filter_match). */
int ocn_theorems_select(const ocn_fixture *f, const ocn_ref_opts *o, const char *filter, ocn_report *rep,
                        ocn_error *err);
/* `--filter PATTERN` (issue 15): a glob (fnmatch) selecting a fixture × check
 * when it matches the fixture's name, the check ID (e.g. "T6b", "REPRO",
 * "cpu/f32"), or "NAME/ID"; NULL selects everything. */
int ocn_filter_match(const char *pattern, const char *fixture, const char *id);

/* `ocn check`: optimized (backend, precision 32/64) vs reference on one
 * fixture; a game the optimized path refuses statically is a SKIP row with the
 * reason (counted in rep->skipped), never passed. */
int ocn_check_fixture(const ocn_fixture *f, const char *backend, int precision, ocn_report *rep, ocn_error *err);

/* `ocn compare`: fixtures A (the reference side) and B of the same game;
 * `require` says which of A's outputs B must have (§10 completeness). */
int ocn_compare_fixtures(const ocn_fixture *a, const ocn_fixture *b, ocn_require require, ocn_report *rep,
                         ocn_error *err);

#endif
