/* Fixture directory I/O (SPEC §11). */
#include "ocn/fixture.h"
#include "ocn/npy.h"
#include "ocn/tolerance.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A manifest is JSON text a person could read; beyond this it is not one
 * (issue 10: /dev/zero as manifest.json took 2.3 GB before failing). */
#define MANIFEST_MAX ((size_t)256 << 20)

/* A path as messages show it: whole up to 480 characters, else its head and
 * tail (an ocn_error holds 1024 characters and the reason must survive). */
static void elide(char *out, size_t n, const char *path)
{
    size_t len = strlen(path);
    if (len < 480 || n < 460) snprintf(out, n, "%s", path);
    else snprintf(out, n, "%.240s...%s", path, path + len - 200);
}

/* strdup without trailing slashes ("/" stays "/"). */
static char *strip_slashes(const char *dir)
{
    char *c = strdup(dir);
    if (!c) return NULL;
    size_t dl = strlen(c);
    while (dl > 1 && c[dl - 1] == '/') c[--dl] = 0;
    return c;
}

int ocn_array_is_input(const char *name)
{
    return !strcmp(name, "x0") || !strcmp(name, "y") || !strncmp(name, "theta_t", 7) ||
           !strncmp(name, "Wfix_", 5);
}

const char *ocn_array_meaning(const char *n)
{
    static const struct { const char *prefix, *meaning; } tab[] = {
        {"x0", "batch inputs (B, n_0)"},
        {"y", "targets: ce labels (B,) or mse targets (B, n_out)"},
        {"theta_new_", "parameters after the SPEC §8 update pass"},
        {"theta_", "parameters before the step, vec([W b]) column-major (SPEC §2)"},
        {"Wfix_", "fixed W of a bias player (out, in)"},
        {"x_", "nominal state (B, n_t)"},
        {"dx_", "update-pass state deviation (B, n_t) (SPEC §8)"},
        {"Qxx_", "per-sample Q_xx (B, n_t, n_t) (SPEC §4)"},
        {"Qx_", "per-sample Q_x (B, n_t)"},
        {"Qthth_", "Q_thth (m, m), lambda included, gamma excluded"},
        {"Qthx_", "per-sample Q_thx (B, m, n_t), after zero"},
        {"Qthi_", "per-sample gradient statistics F_th^T v_x' (B, m) (SPEC §5)"},
        {"Qth_", "batch gradient Q_th (m,), weight decay included"},
        {"k_", "open gain (m,)"},
        {"K_", "per-sample feedback gain M^+ Q_thx^(i) (B, m, n_t)"},
        {"VXX_", "augmented value Hessian B*V_XX (B n_t, B n_t)"},
        {"Vxx_", "per-sample value Hessian (B, n_t, n_t) (SPEC §1 scaling)"},
        {"Vx_", "per-sample value gradient (B, n_t) (SPEC §1 scaling)"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
        if (!strncmp(n, tab[i].prefix, strlen(tab[i].prefix))) return tab[i].meaning;
    return "see SPEC §11";
}

static int has_nonfinite(const ocn_array *a)
{
    for (size_t i = 0; i < a->size; i++)
        if (!isfinite(a->data[i])) return 1;
    return 0;
}

/* §11 manifest schema: every entry names a plain file, a dtype string and a
 * shape of non-negative integers (at most OCN_MAX_NDIM). */
static int check_array_entry(const char *name, json_t *e, const char *mpath, ocn_error *err)
{
    json_t *file = json_object_get(e, "file"), *dtype = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
    if (!json_is_object(e) || !json_is_string(file) || !json_is_string(dtype) || !json_is_array(shape))
        return ocn_fail(err, OCN_EINVAL, "%s: arrays.%s needs string 'file', 'dtype' and array 'shape'", mpath, name);
    const char *fn = json_string_value(file);
    if (strlen(name) == 0 || strlen(name) >= 64 || strchr(fn, '/') || fn[0] == '.' || fn[0] == 0)
        return ocn_fail(err, OCN_EINVAL, "%s: arrays.%s: file '%s' must be a plain name inside the fixture", mpath, name, fn);
    if (json_array_size(shape) > OCN_MAX_NDIM)
        return ocn_fail(err, OCN_EINVAL, "%s: arrays.%s: more than %d dimensions", mpath, name, OCN_MAX_NDIM);
    for (size_t d = 0; d < json_array_size(shape); d++) {
        json_t *x = json_array_get(shape, d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return ocn_fail(err, OCN_EINVAL, "%s: arrays.%s.shape[%zu] must be a non-negative integer", mpath, name, d);
    }
    return OCN_OK;
}

int ocn_fixture_parse_manifest(const char *text, size_t len, const char *mpath, ocn_game **game, void **json_out,
                               ocn_error *err)
{
    json_error_t je;
    *game = NULL;
    if (json_out) *json_out = NULL;
    json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!m) return ocn_fail(err, OCN_EINVAL, "%s: malformed JSON at line %d column %d: %s", mpath, je.line, je.column, je.text);
    int rc = OCN_OK;
    json_t *fmt = json_object_get(m, "format"), *arrays = json_object_get(m, "arrays"), *p = json_object_get(m, "producer");
    if (!json_is_object(m)) rc = ocn_fail(err, OCN_EINVAL, "%s: the manifest must be a JSON object", mpath);
    else if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "ocnopt-fixture"))
        rc = ocn_fail(err, OCN_EINVAL, "%s: format must be \"ocnopt-fixture\"", mpath);
    else if (!json_is_integer(json_object_get(m, "version")) || json_integer_value(json_object_get(m, "version")) < 1 ||
             json_integer_value(json_object_get(m, "version")) > 2)
        rc = ocn_fail(err, OCN_EINVAL, "%s: version must be 1 or 2 (SPEC §11)", mpath);
    else if (p && !json_is_object(p))
        rc = ocn_fail(err, OCN_EINVAL, "%s: producer must be an object", mpath);
    else if (!json_is_object(arrays))
        rc = ocn_fail(err, OCN_EINVAL, "%s: 'arrays' must be an object", mpath);
    if (!rc) {
        const char *name;
        json_t *e;
        json_object_foreach(arrays, name, e) {
            if ((rc = check_array_entry(name, e, mpath, err))) break;
        }
    }
    if (!rc) {
        char where[4200];
        snprintf(where, sizeof where, "%s: game", mpath);
        rc = ocn_game_from_json(json_object_get(m, "game"), where, game, err);
    }
    if (!rc && json_out) *json_out = m;
    else json_decref(m);
    return rc;
}

static int read_arrays(ocn_fixture *f, int dfd, const char *shown, json_t *arrays, ocn_error *err)
{
    const char *name;
    json_t *e;
    json_object_foreach(arrays, name, e) {
        json_t *dtype = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
        const char *file = json_string_value(json_object_get(e, "file"));
        char path[1024]; /* what messages call it */
        snprintf(path, sizeof path, "%s/%s", shown, file);
        char dt[8];
        int rc = ocn_npy_read_at(dfd, file, path, f->arrays, name, dt, err);
        if (rc) return rc;
        if (strcmp(dt, json_string_value(dtype)))
            return ocn_fail(err, OCN_EINVAL, "%s: dtype %s, but the manifest says %s", path, dt, json_string_value(dtype));
        ocn_array *a = ocn_arrayset_find(f->arrays, name);
        int ok = (int)json_array_size(shape) == a->ndim;
        for (int d = 0; ok && d < a->ndim; d++)
            ok = json_integer_value(json_array_get(shape, (size_t)d)) == (json_int_t)a->shape[d];
        if (!ok) return ocn_fail(err, OCN_EINVAL, "%s: shape does not match the manifest's arrays.%s.shape", path, name);
        if (ocn_array_is_input(name) && has_nonfinite(a))
            return ocn_fail(err, OCN_EINVAL, "%s: input array '%s' contains NaN or Inf", path, name);
        json_t *c = json_object_get(e, "cond");
        if (json_is_number(c)) a->cond = json_number_value(c);
    }
    return OCN_OK;
}

static void copy_str(char *dst, size_t n, json_t *v, const char *dflt)
{
    snprintf(dst, n, "%s", json_is_string(v) ? json_string_value(v) : dflt);
}

int ocn_fixture_read(const char *dir, ocn_fixture **out, ocn_error *err)
{
    *out = NULL;
    ocn_fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = strip_slashes(dir)) || !(f->arrays = ocn_arrayset_new())) {
        ocn_fixture_free(f);
        return ocn_fail(err, OCN_ENOMEM, "out of memory");
    }
    char shown[800], mpath[1024];
    elide(shown, sizeof shown, f->dir);
    snprintf(mpath, sizeof mpath, "%s/manifest.json", shown);
    json_t *m = NULL;
    int rc;
    size_t len = 0;
    unsigned char *text = NULL;
    /* the directory is opened once and every file read relative to it: no
     * path is ever cut, and a FIFO or device is refused, never waited on */
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENAMETOOLONG)
            rc = ocn_fail(err, OCN_EINVAL, "%s: path too long (%zu characters; the system's limit is %d)", shown,
                          strlen(f->dir), PATH_MAX - 1);
        else if (errno == ENOMEM)
            rc = ocn_fail(err, OCN_ENOMEM, "%s: out of memory", shown);
        else
            rc = ocn_fail(err, OCN_EINVAL, "%s: not a fixture directory (%s)", shown, strerror(errno));
        goto done;
    }
    if ((rc = ocn_read_regular_at(dfd, "manifest.json", mpath, MANIFEST_MAX, &text, &len, err))) goto done;
    void *mj = NULL;
    if ((rc = ocn_fixture_parse_manifest((const char *)text, len, mpath, &f->game, &mj, err))) goto done;
    m = mj;
    json_t *p = json_object_get(m, "producer");
    copy_str(f->producer, sizeof f->producer, json_object_get(p, "name"), "unknown");
    copy_str(f->backend, sizeof f->backend, json_object_get(p, "backend"), "unknown");
    copy_str(f->precision, sizeof f->precision, json_object_get(p, "precision"), "f64");
    f->version = (int)json_integer_value(json_object_get(m, "version"));
    json_t *tol = json_object_get(m, "tolerance"), *kind = json_object_get(m, "kind");
    /* §10 rev. 2: only a v2 manifest's measured c is used; a v1 `cond` was a
     * product of condition-number bounds and is re-measured instead */
    f->c_measured = f->version >= 2 && json_is_string(json_object_get(tol, "rule")) &&
                    !strcmp(json_string_value(json_object_get(tol, "rule")), "measured");
    f->trajectory = json_is_string(kind) && !strcmp(json_string_value(kind), "trajectory");
    if (kind && (!json_is_string(kind) || (strcmp(json_string_value(kind), "step") && !f->trajectory))) {
        rc = ocn_fail(err, OCN_EINVAL, "%s: kind must be \"step\" or \"trajectory\"", mpath);
        goto done;
    }
    rc = read_arrays(f, dfd, shown, json_object_get(m, "arrays"), err);
    if (!rc && !f->c_measured)
        for (int i = 0; i < f->arrays->count; i++) f->arrays->a[i].cond = 0; /* not a rev.-2 c */
done:
    if (dfd >= 0) close(dfd);
    free(text);
    if (m) json_decref(m);
    if (rc) {
        ocn_fixture_free(f);
        return rc;
    }
    *out = f;
    return OCN_OK;
}

void ocn_fixture_free(ocn_fixture *f)
{
    if (!f) return;
    ocn_game_free(f->game);
    ocn_arrayset_free(f->arrays);
    free(f->dir);
    free(f);
}

static json_t *manifest(const ocn_game *g, const ocn_arrayset *s, const ocn_producer *p)
{
    json_t *m = json_object(), *arr = json_object(), *prod = json_object();
    int ngv = 0, nweak = 0;
    double power = 0, u = p->precision && !strcmp(p->precision, "f32") ? OCN_U32 : OCN_U64; /* c's unit (§10) */
    json_object_set_new(m, "format", json_string("ocnopt-fixture"));
    json_object_set_new(m, "version", json_integer(2));
    json_object_set_new(m, "kind", json_string(ocn_game_is_trajectory(g) ? "trajectory" : "step"));
    json_object_set_new(m, "game", (json_t *)ocn_game_normalised(g)); /* §11 v2: every default filled in */
    if (p->measure_runs > 0) { /* §10 rev. 2 */
        json_t *tol = json_object();
        json_object_set_new(tol, "rule", json_string("measured"));
        json_object_set_new(tol, "runs", json_integer(p->measure_runs));
        json_object_set_new(tol, "rng", json_string("mt19937"));
        json_object_set_new(tol, "seed_base", json_integer((json_int_t)(1000 * g->seed)));
        json_object_set_new(tol, "floor_d", json_real(ocn_tolerance_floor(g, &g->opt)));
        json_object_set_new(tol, "unit_roundoff", json_real(u));
        json_object_set_new(m, "tolerance", tol);
    }
    json_object_set_new(prod, "name", json_string(p->name ? p->name : "ocnopt"));
    json_object_set_new(prod, "backend", json_string(p->backend ? p->backend : "reference"));
    json_object_set_new(prod, "precision", json_string(p->precision ? p->precision : "f64"));
    if (p->commit) json_object_set_new(prod, "commit", json_string(p->commit));
    if (p->rng) json_object_set_new(prod, "rng", json_string(p->rng));
    json_object_set_new(prod, "seed", json_integer((json_int_t)p->seed));
    json_object_set_new(m, "producer", prod);
    for (int i = 0; i < s->count; i++) {
        const ocn_array *a = &s->a[i];
        json_t *e = json_object(), *sh = json_array();
        char fn[80];
        snprintf(fn, sizeof fn, "%s.npy", a->name);
        for (int d = 0; d < a->ndim; d++) json_array_append_new(sh, json_integer((json_int_t)a->shape[d]));
        json_object_set_new(e, "file", json_string(fn));
        json_object_set_new(e, "dtype", json_string("<f8"));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "meaning", json_string(ocn_array_meaning(a->name)));
        if (!ocn_array_is_input(a->name)) {
            json_object_set_new(e, "metric", json_string("ratio_u"));
            json_object_set_new(e, "threshold", json_integer(30));
            if (a->cond > 0 && p->measure_runs > 0) {
                json_object_set_new(e, "cond", json_real(a->cond));
                json_object_set_new(e, "informative", json_boolean(ocn_informative(a->cond, u)));
                if (ocn_is_gain_or_value(a->name)) {
                    ngv++;
                    nweak += !ocn_informative(a->cond, u);
                }
                if (ocn_counts_for_detection(a->name) && ocn_informative(a->cond, u))
                    power = fmax(power, OCN_FAIL_RATIO * u * a->cond);
            }
        }
        json_object_set_new(arr, a->name, e);
    }
    json_object_set_new(m, "arrays", arr);
    if (p->measure_runs > 0) {
        /* §10: more than half of the gain/value arrays weak → not fit for ports */
        if (2 * nweak > ngv) json_object_set_new(m, "fit_for_ports", json_false());
        json_object_set_new(json_object_get(m, "tolerance"), "detection_power", json_real(power));
        json_object_set_new(json_object_get(m, "tolerance"), "weak", json_integer(nweak));
        json_object_set_new(json_object_get(m, "tolerance"), "gain_value_arrays", json_integer(ngv));
    }
    return m;
}

/* Removes a fixture directory we own (flat: files only). */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

int ocn_fixture_write(const char *dir, const ocn_game *g, const ocn_arrayset *arrays, const ocn_producer *p,
                      const ocn_write_opts *wo, ocn_error *err)
{
    struct stat st;
    char clean[2048];
    int force = wo && wo->force;
    snprintf(clean, sizeof clean, "%s", dir);
    size_t dl = strlen(clean);
    while (dl > 1 && clean[dl - 1] == '/') clean[--dl] = 0;
    int exists = stat(clean, &st) == 0;
    if (exists) {
        char mp[4096];
        snprintf(mp, sizeof mp, "%s/manifest.json", clean);
        if (!force) return ocn_fail(err, OCN_EINVAL, "%s: already exists (use --force to replace a fixture)", clean);
        if (!S_ISDIR(st.st_mode) || access(mp, F_OK))
            return ocn_fail(err, OCN_EINVAL, "%s: exists and is not a fixture directory; not replacing it", clean);
    }
    char tmp[2100];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", clean);
    if (!mkdtemp(tmp)) return ocn_fail(err, OCN_EIO, "%s: cannot create temporary directory: %s", tmp, strerror(errno));
    int rc = OCN_OK;
    char path[4096];
    for (int i = 0; i < arrays->count && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", tmp, arrays->a[i].name);
        rc = ocn_npy_write(path, &arrays->a[i], err);
        if (!rc && wo && wo->after_file) wo->after_file(wo->ctx, i + 1);
    }
    if (!rc) {
        json_t *m = manifest(g, arrays, p);
        snprintf(path, sizeof path, "%s/manifest.json", tmp);
        if (json_dump_file(m, path, JSON_INDENT(1) | JSON_SORT_KEYS))
            rc = ocn_fail(err, OCN_EIO, "%s: cannot write manifest", path);
        json_decref(m);
    }
    if (!rc && exists) {
        /* atomic swap: the destination is always a whole fixture, old or new */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, clean, RENAME_EXCHANGE) == 0) {
            remove_flat_dir(tmp); /* now holds the old fixture */
            return OCN_OK;
        }
        char old[2100];
        snprintf(old, sizeof old, "%s.old.XXXXXX", clean);
        if (!mkdtemp(old) || rename(clean, old)) {
            rc = ocn_fail(err, OCN_EIO, "%s: cannot move the old fixture aside: %s", clean, strerror(errno));
        } else if (rename(tmp, clean)) {
            rc = ocn_fail(err, OCN_EIO, "%s: cannot rename into place: %s", clean, strerror(errno));
            rename(old, clean);
        } else {
            remove_flat_dir(old);
        }
        if (rc) rmdir(old);
    } else if (!rc && rename(tmp, clean)) {
        rc = ocn_fail(err, OCN_EIO, "%s: cannot rename into place: %s", clean, strerror(errno));
    }
    if (rc) remove_flat_dir(tmp);
    return rc;
}
