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
    int no_exchange;        /* tests: act as if the file system had no renameat2(RENAME_EXCHANGE) */
} ocn_write_opts;

/* Writes atomically: a temporary sibling directory DIR.tmp.XXXXXX (locked
 * with flock while this process lives) renamed into place; an existing
 * fixture is swapped with renameat2(RENAME_EXCHANGE) and then removed.  The
 * destination is checked as by ocn_fixture_check_dest, again; stale
 * DIR.tmp.XXXXXX / DIR.old.XXXXXX siblings left by a killed writer are
 * removed first (docs/decisions.md, "Files and paths").  Messages name `dir`,
 * never the temporary, and give the system's reason for an I/O failure. */
int ocn_fixture_write(const char *dir, const ocn_game *g, const ocn_arrayset *arrays,
                      const ocn_producer *p, const ocn_write_opts *wo, ocn_error *err);
/* Can `dir` be written by ocn_fixture_write (call it before computing)?
 * OCN_EINVAL, naming dir, when: it is empty, '.', '..' or '/'; too long for
 * the system (PATH_MAX, NAME_MAX); its parent does not exist (no mkdir -p),
 * is not a directory or is not writable; it is a symbolic link (never
 * followed, even with force); it exists and !force; or, with force, it is
 * not a directory holding only manifest.json and the files that manifest
 * lists (a user's other file is never deleted).  Writes nothing. */
int ocn_fixture_check_dest(const char *dir, int force, ocn_error *err);
/* Inputs of a fixture (x0, y, theta_t*, Wfix_*; §13 also theta_s0_*, x0_s*, y_s*): what a port needs to recompute. */
int ocn_array_is_input(const char *name);
/* The same for a fixture of either kind (§13): in a trajectory the inputs are
 * theta_s0_…, x0, y, x0_s…, y_s…, Wfix_…; theta_t… is the last step's
 * parameters, an output of the steps before it. */
int ocn_array_is_input_of(const char *name, int trajectory);
/* §13: the inputs a trajectory is recomputed from, out of a fixture's
 * arrays: theta_s0_… renamed theta_t…, Wfix_…, x0, y and (stream) x0_s…,
 * y_s… — what ocn_ref_run_trajectory takes.  A missing initial θ is
 * OCN_EINVAL naming `where` and the array. */
int ocn_traj_inputs(const ocn_game *g, const ocn_arrayset *stored, const char *where, ocn_arrayset **in, ocn_error *err);
/* §13 derived arrays (dtheta_s{s}_t{t}_n{n}): formed by the tools, their c
 * stored in the manifest's "derived" table, never as files. */
int ocn_array_is_derived(const char *name);
/* Adds dtheta_s{s}_t{t}_n{n} = theta_s{s+1}_… − theta_s{s}_… to s for every
 * step whose two parameter arrays s holds (keeping a cond already there). */
int ocn_traj_add_derived(const ocn_game *g, ocn_arrayset *s, ocn_error *err);
/* One-line meaning of a §11 array name, for manifests. */
const char *ocn_array_meaning(const char *name);

#endif
