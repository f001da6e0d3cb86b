/* SPEC §11 fixtures: a directory with manifest.json and one .npy per array. */
#ifndef OCN_FIXTURE_H
#define OCN_FIXTURE_H

#include "ocn/arrays.h"
#include "ocn/game.h"

typedef struct ocn_fixture {
    char *dir;              /* the path as given, trailing slashes removed (malloc'd: never cut) */
    ocn_game *game;
    ocn_arrayset *arrays;   /* inputs and outputs, as stored */
    char producer[256], backend[64], precision[16];
    int version;            /* §11: 1 or 2 */
    int c_measured;         /* §10 rev. 2: stored cond is a measured c (v2 "tolerance": {"rule": "measured"}) */
    int trajectory;         /* §11 v2 "kind": "trajectory" */
} ocn_fixture;

typedef struct {
    const char *name, *backend, *precision, *commit, *rng;
    unsigned long seed;
    int measure_runs;       /* §10 rev. 2 perturbation runs that measured each cond (0: not measured) */
} ocn_producer;

/* Reads and validates (manifest fields, every array's dtype and shape against
 * the manifest, NaN/Inf in inputs).  Messages name the file and field. */
int ocn_fixture_read(const char *dir, ocn_fixture **out, ocn_error *err);
void ocn_fixture_free(ocn_fixture *f);
/* Validates a manifest's text (§11 schema and the §12 game) without reading
 * arrays: the game is returned; json_out (may be NULL) gets the parsed
 * jansson object (json_t *, the caller json_decref()s it).  Used by
 * ocn_fixture_read and by the fuzz target. */
int ocn_fixture_parse_manifest(const char *text, size_t len, const char *mpath, ocn_game **game, void **json_out,
                               ocn_error *err);
/* Options of ocn_fixture_write: `force` replaces an existing fixture;
 * after_file (may be NULL) is called after each array file is written (the
 * CLI's fault injection uses it to die part-way). */
typedef struct {
    int force;
    void (*after_file)(void *ctx, int nwritten);
    void *ctx;
} ocn_write_opts;

/* Writes atomically: a temporary sibling directory renamed into place (an
 * existing fixture is swapped with renameat2(RENAME_EXCHANGE)).  An existing
 * destination is replaced only with `force` and only if it is a fixture. */
int ocn_fixture_write(const char *dir, const ocn_game *g, const ocn_arrayset *arrays,
                      const ocn_producer *p, const ocn_write_opts *wo, ocn_error *err);
/* Inputs of a fixture (x0, y, theta_*, Wfix_*): what a port needs to recompute. */
int ocn_array_is_input(const char *name);
/* One-line meaning of a §11 array name, for manifests. */
const char *ocn_array_meaning(const char *name);

#endif
