/* Fixture directory I/O (SPEC §11). */
#include "ocn/fixture.h"
#include "ocn/npy.h"
#include "ocn/tolerance.h"
#include "ocn/version.h"

#include <ctype.h>
#include <float.h>
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
    /* §13: the initial parameters theta_s0_… and a stream's batches x0_s…, y_s… are inputs wherever they appear */
    return !strcmp(name, "x0") || !strcmp(name, "y") || !strncmp(name, "theta_t", 7) ||
           !strncmp(name, "Wfix_", 5) || !strncmp(name, "theta_s0_", 9) || !strncmp(name, "x0_s", 4) ||
           !strncmp(name, "y_s", 3);
}

int ocn_array_is_input_of(const char *name, int trajectory)
{
    /* §13: in a trajectory theta_t… (the last step's parameters) are computed by the steps before it */
    return ocn_array_is_input(name) && !(trajectory && !strncmp(name, "theta_t", 7));
}

int ocn_traj_inputs(const ocn_game *g, const ocn_arrayset *stored, const char *where, ocn_arrayset **in, ocn_error *err)
{
    *in = ocn_arrayset_new();
    if (!*in) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    for (int i = 0; i < stored->count; i++) {
        const ocn_array *a = &stored->a[i];
        if (!ocn_array_is_input_of(a->name, 1)) continue;
        char nm[64];
        snprintf(nm, sizeof nm, "%s", a->name);
        if (!strncmp(nm, "theta_s0_", 9)) snprintf(nm, sizeof nm, "theta_%s", a->name + 9); /* the initial θ */
        ocn_array *c = ocn_arrayset_add(*in, nm, a->ndim, a->shape);
        if (!c) {
            ocn_arrayset_free(*in);
            *in = NULL;
            return ocn_fail(err, OCN_ENOMEM, "out of memory");
        }
        memcpy(c->data, a->data, a->size * sizeof(double));
    }
    for (int t = 0; t < g->T; t++) /* §13: the initial parameters are theta_s0_… */
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (g->stages[t].players[p].m) {
                char nm[64];
                snprintf(nm, sizeof nm, "theta_t%d_n%d", t, g->stages[t].players[p].lane);
                if (!ocn_arrayset_find(*in, nm)) {
                    ocn_arrayset_free(*in);
                    *in = NULL;
                    return ocn_fail(err, OCN_EINVAL, "%s: trajectory fixture without its initial parameters 'theta_s0_%s' "
                                    "(SPEC §13)", where, nm + 6);
                }
            }
    return OCN_OK;
}

int ocn_array_is_derived(const char *name) { return !strncmp(name, "dtheta_s", 8); }

int ocn_traj_add_derived(const ocn_game *g, ocn_arrayset *s, ocn_error *err)
{
    char a0[64], a1[64], dn[64];
    for (int st = 0; st < g->opt.steps; st++)
        for (int t = 0; t < g->T; t++)
            for (int p = 0; p < g->stages[t].nplayers; p++) {
                const ocn_player *pl = &g->stages[t].players[p];
                if (!pl->m) continue;
                snprintf(a0, sizeof a0, "theta_s%d_t%d_n%d", st, t, pl->lane);
                snprintf(a1, sizeof a1, "theta_s%d_t%d_n%d", st + 1, t, pl->lane);
                snprintf(dn, sizeof dn, "dtheta_s%d_t%d_n%d", st, t, pl->lane);
                const ocn_array *x0 = ocn_arrayset_find(s, a0), *x1 = ocn_arrayset_find(s, a1);
                if (!x0 || !x1 || x0->size != (size_t)pl->m || x1->size != (size_t)pl->m) continue; /* absent: listed as missing */
                double keep = 0, keepz = 0, keep32 = 0;
                const ocn_array *old = ocn_arrayset_find(s, dn);
                if (old) keep = old->cond, keepz = old->zero_scale, keep32 = old->cond_f32;
                ocn_array *d = ocn_arrayset_add2(s, dn, 1, (size_t)pl->m, 0, 0);
                if (!d) return ocn_fail(err, OCN_ENOMEM, "out of memory forming %s", dn);
                x0 = ocn_arrayset_find(s, a0), x1 = ocn_arrayset_find(s, a1); /* the add may move them */
                for (int j = 0; j < pl->m; j++) d->data[j] = x1->data[j] - x0->data[j];
                d->cond = keep, d->zero_scale = keepz, d->cond_f32 = keep32;
            }
    return OCN_OK;
}

const char *ocn_array_meaning(const char *n)
{
    static const struct { const char *prefix, *meaning; } tab[] = {
        {"x0", "batch inputs (B, n_0)"},
        {"y", "targets: ce labels (B,) or mse targets (B, n_out)"},
        {"theta_new_", "parameters after the SPEC §8 update pass"},
        {"theta_s", "parameters before step s of the trajectory (s = n_s: the result) (SPEC §13)"},
        {"dtheta_s", "step s of the trajectory, theta_s{s+1} - theta_s{s} (SPEC §13)"},
        {"loss_s", "the SPEC §1 objective on step s's batch before step s (1,) (SPEC §13)"},
        {"x0_s", "batch inputs of step s (B, n_0) (SPEC §13 data: stream)"},
        {"y_s", "targets of step s (SPEC §13 data: stream)"},
        {"A_t", "SPEC §13 state after the last step: moving average of the KFAC factor A (undamped)"},
        {"G_t", "SPEC §13 state after the last step: moving average of the KFAC factor G (undamped)"},
        {"v_t", "SPEC §13 state after the last step: rmsprop moving average of mean_i Qthi^2 (m,)"},
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

/* §10 fields of one array's manifest entry (arrays.NAME or derived.NAME):
 * cond, and where present and positive the zero-by-cancellation scale and
 * the float32 c (docs/decisions.md) */
static double positive_field(json_t *e, const char *key)
{
    json_t *v = json_object_get(e, key);
    double x = json_is_number(v) ? json_number_value(v) : 0;
    return x > 0 && isfinite(x) ? x : 0;
}

static void read_tolerance(json_t *e, ocn_array *a)
{
    json_t *c = json_object_get(e, "cond");
    if (json_is_number(c)) a->cond = json_number_value(c);
    a->zero_scale = positive_field(e, "zero_scale");
    a->cond_f32 = positive_field(e, "cond_f32");
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
        read_tolerance(e, a);
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
    if (!kind) f->trajectory = ocn_game_is_trajectory(f->game); /* v1, or a writer without "kind" */
    if (f->trajectory != ocn_game_is_trajectory(f->game)) {
        /* §11 v2: "trajectory" whenever steps > 1 or a §13 field is off its default (§13) */
        rc = ocn_fail(err, OCN_EINVAL, "%s: kind is \"%s\" but the game %s a trajectory (SPEC §13: steps, data, stat_decay, "
                      "refresh_every)", mpath, f->trajectory ? "trajectory" : "step", f->trajectory ? "is not" : "is");
        goto done;
    }
    rc = read_arrays(f, dfd, shown, json_object_get(m, "arrays"), err);
    if (!rc && f->trajectory) { /* §13: the tools form the steps Δ_s; c from the "derived" table */
        rc = ocn_traj_add_derived(f->game, f->arrays, err);
        json_t *der = json_object_get(m, "derived");
        for (int i = 0; !rc && i < f->arrays->count; i++) {
            ocn_array *a = &f->arrays->a[i];
            if (ocn_array_is_derived(a->name)) read_tolerance(json_object_get(der, a->name), a);
        }
    }
    if (!rc && !f->c_measured)
        for (int i = 0; i < f->arrays->count; i++) f->arrays->a[i].cond = f->arrays->a[i].cond_f32 = 0; /* not a rev.-2 c */
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
    json_t *m = json_object(), *arr = json_object(), *prod = json_object(), *der = json_object();
    int ngv = 0, nweak = 0, traj = ocn_game_is_trajectory(g);
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
        int f32 = 0; /* c also measured at float32 (docs/decisions.md "c measured at the precision compared") */
        for (int i = 0; i < s->count && !f32; i++) f32 = s->a[i].cond_f32 > 0;
        if (f32) {
            json_t *t32 = json_object();
            json_object_set_new(t32, "runs", json_integer(p->measure_runs));
            json_object_set_new(t32, "seed_base", json_integer((json_int_t)(1000 * g->seed + OCN_F32_RUN_BASE)));
            json_object_set_new(t32, "unit_roundoff", json_real(OCN_U32));
            json_object_set_new(tol, "f32", t32);
        }
        json_object_set_new(m, "tolerance", tol);
    }
    json_object_set_new(prod, "name", json_string(p->name ? p->name : "ocnopt"));
    json_object_set_new(prod, "backend", json_string(p->backend ? p->backend : "reference"));
    json_object_set_new(prod, "precision", json_string(p->precision ? p->precision : "f64"));
    json_object_set_new(prod, "version", json_string(OCN_VERSION)); /* issue 15: the library that wrote it */
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
        if (!ocn_array_is_derived(a->name)) json_object_set_new(e, "file", json_string(fn));
        json_object_set_new(e, "dtype", json_string("<f8"));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "meaning", json_string(ocn_array_meaning(a->name)));
        if (!ocn_array_is_input_of(a->name, traj)) {
            json_object_set_new(e, "metric", json_string("ratio_u"));
            json_object_set_new(e, "threshold", json_integer(30));
            if (a->cond > 0 && p->measure_runs > 0) {
                json_object_set_new(e, "cond", json_real(a->cond));
                if (a->zero_scale > 0) json_object_set_new(e, "zero_scale", json_real(a->zero_scale));
                /* JSON has no ∞: a float32 c that is infinite (a float32-sized
                 * perturbation overflowed the reference) is written as DBL_MAX —
                 * not informative, every float32 row weak */
                if (a->cond_f32 > 0) json_object_set_new(e, "cond_f32", json_real(isinf(a->cond_f32) ? DBL_MAX : a->cond_f32));
                json_object_set_new(e, "informative", json_boolean(ocn_informative(a->cond, u)));
                if (ocn_is_gain_or_value(a->name)) {
                    ngv++;
                    nweak += !ocn_informative(a->cond, u);
                }
                if (ocn_counts_for_detection(a->name) && ocn_informative(a->cond, u))
                    power = fmax(power, OCN_FAIL_RATIO * u * a->cond);
            }
        }
        json_object_set_new(ocn_array_is_derived(a->name) ? der : arr, a->name, e); /* §13: Δ_s are formed, not stored */
    }
    json_object_set_new(m, "arrays", arr);
    if (json_object_size(der)) json_object_set_new(m, "derived", der);
    else json_decref(der);
    if (p->measure_runs > 0) {
        /* §10: more than half of the gain/value arrays weak → not fit for ports */
        if (2 * nweak > ngv) json_object_set_new(m, "fit_for_ports", json_false());
        json_object_set_new(json_object_get(m, "tolerance"), "detection_power", json_real(power));
        json_object_set_new(json_object_get(m, "tolerance"), "weak", json_integer(nweak));
        json_object_set_new(json_object_get(m, "tolerance"), "gain_value_arrays", json_integer(ngv));
    }
    return m;
}

/* ---- ocn gen's destination (issue 10, docs/decisions.md "Files and paths") ----
 *
 * Everything is done relative to the parent directory, opened once: names
 * are never joined into buffers that could cut them, and no symlink is ever
 * followed when replacing or removing (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW,
 * unlinkat removes a link itself).  A temporary DIR.tmp.XXXXXX is locked
 * (flock) by the gen that made it for as long as that process lives, which
 * is how a later gen tells a stale one (its maker was killed) from one in
 * use. */

#define SUFFIX_LEN 6 /* DIR.tmp.XXXXXX and DIR.old.XXXXXX */

typedef struct {
    char *clean;      /* the user's path without trailing slashes */
    char shown[800];  /* clean as messages show it */
    const char *name; /* its last component (inside clean) */
    int pfd;          /* the parent directory */
    int exists;
    dev_t dev;
    ino_t ino;
} dest;

static void dest_close(dest *d)
{
    free(d->clean);
    d->clean = NULL;
    if (d->pfd >= 0) close(d->pfd);
    d->pfd = -1;
}

static int same_inode(int pfd, const char *name, int fd)
{
    struct stat a, b;
    return !fstat(fd, &a) && !fstatat(pfd, name, &b, AT_SYMLINK_NOFOLLOW) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

enum { ENTRIES_FIXTURE, ENTRIES_OURS };

/* Is the directory dfd made of fixture files only (never looking through a
 * link)?  ENTRIES_FIXTURE, a user's directory that --force would replace:
 * manifest.json must be readable JSON with an "arrays" object, and every
 * other entry a regular file its manifest lists.  ENTRIES_OURS, a temporary
 * or an old fixture of ours about to be removed: regular files that are
 * manifest.json, listed by it, or *.npy (a partial write has no manifest).
 * OCN_EINVAL names the first entry that is not; `shown` names the directory. */
static int fixture_entries(int dfd, const char *shown, int mode, ocn_error *err)
{
    unsigned char *text = NULL;
    size_t len = 0;
    char mwhere[1024];
    snprintf(mwhere, sizeof mwhere, "%s/manifest.json", shown);
    json_t *listed = json_object(), *m = NULL;
    if (!listed) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    ocn_error e2 = {0};
    int rc = ocn_read_regular_at(dfd, "manifest.json", mwhere, MANIFEST_MAX, &text, &len, &e2);
    if (!rc) {
        m = json_loadb((const char *)text, len, 0, NULL);
        free(text);
    }
    json_t *arrays = json_object_get(m, "arrays");
    if (mode == ENTRIES_FIXTURE && rc) {
        json_decref(listed);
        return ocn_fail(err, e2.code == OCN_ENOMEM ? OCN_ENOMEM : OCN_EINVAL,
                        "%s: not a fixture directory (%s); not replacing it", shown,
                        e2.code == OCN_EINVAL && strstr(e2.msg, strerror(ENOENT)) ? "no manifest.json" : e2.msg);
    }
    if (mode == ENTRIES_FIXTURE && !json_is_object(arrays)) {
        json_decref(m), json_decref(listed);
        return ocn_fail(err, OCN_EINVAL, "%s: not a fixture manifest (no \"arrays\" object), so which files belong to "
                        "the fixture is unknown; not replacing %s", mwhere, shown);
    }
    const char *k;
    json_t *v;
    json_object_foreach(arrays, k, v) {
        json_t *file = json_object_get(v, "file");
        if (json_is_string(file)) json_object_set(listed, json_string_value(file), json_true());
    }
    json_decref(m);
    int fd2 = dup(dfd);
    DIR *dp = fd2 < 0 ? NULL : fdopendir(fd2);
    if (!dp) {
        if (fd2 >= 0) close(fd2);
        json_decref(listed);
        return ocn_fail(err, OCN_EIO, "%s: cannot list: %s", shown, strerror(errno));
    }
    rewinddir(dp);
    struct dirent *de;
    rc = OCN_OK;
    while (!rc && (de = readdir(dp))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
        struct stat st;
        if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW)) {
            if (errno == ENOENT) continue; /* removed meanwhile */
            rc = ocn_fail(err, OCN_EIO, "%s/%s: cannot stat: %s", shown, n, strerror(errno));
            break;
        }
        int named = !strcmp(n, "manifest.json") || json_object_get(listed, n) ||
                    (mode == ENTRIES_OURS && ends_with(n, ".npy"));
        if (!S_ISREG(st.st_mode) || !named)
            rc = ocn_fail(err, OCN_EINVAL, "%s: holds '%s' (%s), which is not a file of the fixture (manifest.json and the "
                          "files its manifest lists); not replacing it", shown, n,
                          S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode) ? "a directory" :
                          !S_ISREG(st.st_mode) ? "not a regular file" : "not in the manifest");
    }
    closedir(dp);
    json_decref(listed);
    return rc;
}

/* Removes pfd/name if it is a directory of our files only (ENTRIES_OURS);
 * dfd: that directory already open (and locked by the caller), or -1.  The
 * directory is opened O_NOFOLLOW and checked to be the one at `name`; entries
 * are removed with unlinkat (a link is removed, never followed).  Anything
 * else found there stays, and so does the directory.  0 when removed. */
static int remove_ours(int pfd, const char *name, int dfd)
{
    int own = dfd < 0;
    if (own) dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return -1;
    int rc = -1;
    if (same_inode(pfd, name, dfd) && fixture_entries(dfd, name, ENTRIES_OURS, NULL) == OCN_OK) {
        for (int removed = 1; removed;) { /* again until a pass removes nothing (readdir while unlinking) */
            removed = 0;
            int fd2 = dup(dfd);
            DIR *dp = fd2 < 0 ? NULL : fdopendir(fd2);
            if (!dp) {
                if (fd2 >= 0) close(fd2);
                break;
            }
            rewinddir(dp);
            struct dirent *de;
            while ((de = readdir(dp)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && !unlinkat(dfd, de->d_name, 0)) removed = 1;
            closedir(dp);
        }
        if (same_inode(pfd, name, dfd)) rc = unlinkat(pfd, name, AT_REMOVEDIR);
    }
    if (own) close(dfd);
    return rc;
}

/* 1: NAME.tmp.XXXXXX, 2: NAME.old.XXXXXX (X: letters and digits), else 0. */
static int our_sibling(const char *ent, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(ent, name, n)) return 0;
    int kind = !strncmp(ent + n, ".tmp.", 5) ? 1 : !strncmp(ent + n, ".old.", 5) ? 2 : 0;
    if (!kind || strlen(ent + n + 5) != SUFFIX_LEN) return 0;
    for (const char *c = ent + n + 5; *c; c++)
        if (!isalnum((unsigned char)*c)) return 0;
    return kind;
}

/* Stale temporaries of d (docs/decisions.md): NAME.tmp.XXXXXX and
 * NAME.old.XXXXXX directories that no live process has locked and that hold
 * fixture files only; NAME.old.* only while NAME exists (otherwise it may be
 * the one whole copy, left by a crash between the two renames of the
 * fallback swap).  Best effort: what cannot be removed stays, silently. */
static void remove_stale(const dest *d)
{
    int fd2 = dup(d->pfd);
    DIR *dp = fd2 < 0 ? NULL : fdopendir(fd2);
    if (!dp) {
        if (fd2 >= 0) close(fd2);
        return;
    }
    rewinddir(dp);
    char **found = NULL;
    size_t nf = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!our_sibling(de->d_name, d->name)) continue;
        if (nf == cap) {
            size_t nc = cap ? 2 * cap : 8;
            char **nfound = realloc(found, nc * sizeof *nfound);
            if (!nfound) break;
            found = nfound, cap = nc;
        }
        if (!(found[nf] = strdup(de->d_name))) break;
        nf++;
    }
    closedir(dp);
    for (size_t i = 0; i < nf; i++) {
        struct stat st;
        if (our_sibling(found[i], d->name) == 2 &&
            (fstatat(d->pfd, d->name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode))) {
            free(found[i]);
            continue;
        }
        int cfd = openat(d->pfd, found[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd >= 0) {
            if (flock(cfd, LOCK_EX | LOCK_NB) == 0) remove_ours(d->pfd, found[i], cfd); /* its maker is gone */
            close(cfd);                                                                 /* releases the lock */
        }
        free(found[i]);
    }
    free(found);
}

static void random_suffix(char out[SUFFIX_LEN + 1])
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static unsigned long counter;
    unsigned char r[SUFFIX_LEN];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        unsigned long x = (unsigned long)t.tv_nsec ^ ((unsigned long)getpid() << 16) ^ (++counter * 2654435761ul);
        for (int i = 0; i < SUFFIX_LEN; i++) r[i] = (unsigned char)(x >> (5 * i)) ^ (unsigned char)(t.tv_sec >> i);
    }
    for (int i = 0; i < SUFFIX_LEN; i++) out[i] = al[r[i] % (sizeof al - 1)];
    out[SUFFIX_LEN] = 0;
}

/* Creates NAME.<kind>.XXXXXX beside d's destination, mode 0700 while being
 * filled, opened and flock()ed (held until *fd is closed or the process
 * dies). */
static int make_sibling(const dest *d, const char *kind, char **name_out, int *fd_out, ocn_error *err)
{
    size_t n = strlen(d->name) + 5 + SUFFIX_LEN + 1;
    for (int tries = 0; tries < 100; tries++) {
        char *t = malloc(n), suf[SUFFIX_LEN + 1];
        if (!t) return ocn_fail(err, OCN_ENOMEM, "out of memory");
        random_suffix(suf);
        snprintf(t, n, "%s.%s.%s", d->name, kind, suf);
        if (mkdirat(d->pfd, t, 0700)) {
            int e = errno;
            free(t);
            if (e == EEXIST) continue;
            return ocn_fail(err, OCN_EIO, "%s: cannot create a temporary directory beside it: %s", d->shown, strerror(e));
        }
        int fd = openat(d->pfd, t, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT) {
            int e = errno;
            unlinkat(d->pfd, t, AT_REMOVEDIR);
            free(t);
            return ocn_fail(err, OCN_EIO, "%s: cannot open a temporary directory beside it: %s", d->shown, strerror(e));
        }
        if (fd >= 0) {
            (void)flock(fd, LOCK_EX); /* a file system without flock only loses the protection of a running gen */
            /* another gen's clean-up may have taken the empty directory before we locked it: make another */
            if (same_inode(d->pfd, t, fd)) {
                *name_out = t, *fd_out = fd;
                return OCN_OK;
            }
            close(fd);
        }
        free(t);
    }
    return ocn_fail(err, OCN_EIO, "%s: cannot create a temporary directory beside it", d->shown);
}

/* The umask, read without changing it where /proc allows. */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned m;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &m) == 1) {
            fclose(f);
            return (mode_t)m;
        }
    if (f) fclose(f);
    mode_t u = umask(022);
    umask(u);
    return u;
}

/* Parses and checks the destination; opens its parent (d->pfd). */
static int dest_open(const char *dir, int force, dest *d, ocn_error *err)
{
    memset(d, 0, sizeof *d);
    d->pfd = -1;
    if (!dir || !*dir) return ocn_fail(err, OCN_EINVAL, "-o \"\": empty destination (give the fixture directory to write)");
    if (!(d->clean = strip_slashes(dir))) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    elide(d->shown, sizeof d->shown, d->clean);
    char *slash = strrchr(d->clean, '/');
    d->name = slash ? slash + 1 : d->clean;
    if (!*d->name || !strcmp(d->name, ".") || !strcmp(d->name, ".."))
        return ocn_fail(err, OCN_EINVAL, "%s: not a usable fixture directory name (name the directory itself, not '.', "
                        "'..' or '/')", d->shown);
    if (strlen(d->name) + 5 + SUFFIX_LEN > NAME_MAX)
        return ocn_fail(err, OCN_EINVAL, "%s: name too long (%zu characters; at most %d, so that NAME.tmp.XXXXXX fits the "
                        "system's NAME_MAX %d)", d->shown, strlen(d->name), NAME_MAX - 5 - SUFFIX_LEN, NAME_MAX);
    if (strlen(d->clean) + 1 + sizeof ((ocn_array *)0)->name + 4 > PATH_MAX)
        return ocn_fail(err, OCN_EINVAL, "%s: path too long (%zu characters; at most %zu, so that every DIR/<array>.npy "
                        "fits the system's PATH_MAX %d)", d->shown, strlen(d->clean),
                        (size_t)PATH_MAX - 5 - sizeof ((ocn_array *)0)->name, PATH_MAX);
    char *parent = slash == d->clean ? strdup("/") : slash ? strndup(d->clean, (size_t)(slash - d->clean)) : strdup(".");
    if (!parent) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    char pshown[800];
    elide(pshown, sizeof pshown, parent);
    int rc = OCN_OK;
    d->pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->pfd < 0) {
        int e = errno;
        if (e == ENOENT) /* no mkdir -p: a typo in the parent should not grow a tree */
            rc = ocn_fail(err, OCN_EINVAL, "%s: the parent directory %s does not exist (ocn gen does not create it)", d->shown,
                          pshown);
        else if (e == ENOTDIR)
            rc = ocn_fail(err, OCN_EINVAL, "%s: %s is not a directory", d->shown, pshown);
        else
            rc = ocn_fail(err, e == ENOMEM ? OCN_ENOMEM : e == EIO ? OCN_EIO : OCN_EINVAL,
                          "%s: cannot open the parent directory %s: %s", d->shown, pshown, strerror(e));
    } else if (faccessat(d->pfd, ".", W_OK | X_OK, AT_EACCESS)) {
        rc = ocn_fail(err, OCN_EINVAL, "%s: the parent directory %s is not writable: %s", d->shown, pshown, strerror(errno));
    }
    free(parent);
    if (rc) return rc;
    struct stat st;
    if (fstatat(d->pfd, d->name, &st, AT_SYMLINK_NOFOLLOW)) {
        if (errno == ENOENT) return OCN_OK;
        return ocn_fail(err, OCN_EIO, "%s: cannot stat: %s", d->shown, strerror(errno));
    }
    d->exists = 1, d->dev = st.st_dev, d->ino = st.st_ino;
    if (S_ISLNK(st.st_mode))
        return ocn_fail(err, OCN_EINVAL, "%s: is a symbolic link; ocn gen neither writes through nor replaces a link "
                        "(give the directory itself)", d->shown);
    if (!force) return ocn_fail(err, OCN_EINVAL, "%s: already exists (use --force to replace a fixture)", d->shown);
    if (!S_ISDIR(st.st_mode))
        return ocn_fail(err, OCN_EINVAL, "%s: exists and is not a fixture directory; not replacing it", d->shown);
    int dfd = openat(d->pfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return ocn_fail(err, OCN_EINVAL, "%s: cannot open: %s; not replacing it", d->shown, strerror(errno));
    rc = fixture_entries(dfd, d->shown, ENTRIES_FIXTURE, err);
    close(dfd);
    return rc;
}

int ocn_fixture_check_dest(const char *dir, int force, ocn_error *err)
{
    dest d;
    int rc = dest_open(dir, force, &d, err);
    dest_close(&d);
    return rc;
}

/* Puts the finished temporary (pfd/tmp) in place of d's existing fixture,
 * which is locked and checked again first; the old one is removed. */
static int replace_existing(const dest *d, const char *tmp, int no_exchange, ocn_error *err)
{
    int ofd = openat(d->pfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rc = OCN_OK;
    struct stat st;
    if (ofd < 0 || fstat(ofd, &st) || st.st_dev != d->dev || st.st_ino != d->ino) {
        rc = ocn_fail(err, OCN_EINVAL, "%s: changed while the fixture was being written; not replacing it", d->shown);
    } else {
        (void)flock(ofd, LOCK_EX); /* a gen that has just put it there holds it until it returns */
        if (!same_inode(d->pfd, d->name, ofd))
            rc = ocn_fail(err, OCN_EINVAL, "%s: changed while the fixture was being written; not replacing it", d->shown);
        else
            rc = fixture_entries(ofd, d->shown, ENTRIES_FIXTURE, err); /* still only fixture files */
    }
    if (!rc) {
        /* atomic swap: the destination is always a whole fixture, old or new */
        int swapped = !no_exchange && renameat2(d->pfd, tmp, d->pfd, d->name, RENAME_EXCHANGE) == 0;
        if (no_exchange) errno = EINVAL;
        if (swapped) {
            remove_ours(d->pfd, tmp, ofd); /* tmp now names the old fixture */
        } else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
            /* no RENAME_EXCHANGE here: move the old one aside (still locked), then the new one in */
            char *old = NULL;
            int xfd = -1;
            rc = make_sibling(d, "old", &old, &xfd, err);
            if (!rc) {
                close(xfd); /* the reserved empty directory is replaced by the old fixture */
                if (renameat(d->pfd, d->name, d->pfd, old)) {
                    rc = ocn_fail(err, OCN_EIO, "%s: cannot move the old fixture aside: %s", d->shown, strerror(errno));
                    unlinkat(d->pfd, old, AT_REMOVEDIR);
                } else if (renameat(d->pfd, tmp, d->pfd, d->name)) {
                    rc = ocn_fail(err, OCN_EIO, "%s: cannot rename into place: %s", d->shown, strerror(errno));
                    renameat(d->pfd, old, d->pfd, d->name);
                } else {
                    remove_ours(d->pfd, old, ofd);
                }
            }
            free(old);
        } else {
            rc = ocn_fail(err, OCN_EIO, "%s: cannot replace it: %s", d->shown, strerror(errno));
        }
    }
    if (ofd >= 0) close(ofd);
    return rc;
}

int ocn_fixture_write(const char *dir, const ocn_game *g, const ocn_arrayset *arrays, const ocn_producer *p,
                      const ocn_write_opts *wo, ocn_error *err)
{
    dest d;
    int rc = dest_open(dir, wo && wo->force, &d, err);
    char *tmp = NULL;
    int tfd = -1;
    if (!rc) {
        remove_stale(&d);
        rc = make_sibling(&d, "tmp", &tmp, &tfd, err);
    }
    char where[1024];
    for (int i = 0; i < arrays->count && !rc; i++) {
        if (ocn_array_is_derived(arrays->a[i].name)) continue; /* §13: in the manifest's "derived" table only */
        char fn[80];
        snprintf(fn, sizeof fn, "%s.npy", arrays->a[i].name);
        snprintf(where, sizeof where, "%s/%s", d.shown, fn); /* messages name the user's path */
        rc = ocn_npy_write_at(tfd, fn, where, &arrays->a[i], err);
        if (!rc && wo && wo->after_file) wo->after_file(wo->ctx, i + 1);
    }
    if (!rc) {
        json_t *m = manifest(g, arrays, p);
        char *text = m ? json_dumps(m, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
        snprintf(where, sizeof where, "%s/manifest.json", d.shown);
        rc = text ? ocn_write_file_at(tfd, "manifest.json", where, text, strlen(text), err)
                  : ocn_fail(err, OCN_ENOMEM, "%s: out of memory", where);
        free(text);
        json_decref(m);
    }
    /* mkdir made it 0700 while it was being filled; a fixture gets what the
     * umask allows, like any directory the user makes */
    if (!rc && fchmod(tfd, 0777 & ~current_umask()))
        rc = ocn_fail(err, OCN_EIO, "%s: cannot set the directory's mode: %s", d.shown, strerror(errno));
    if (!rc && d.exists) {
        rc = replace_existing(&d, tmp, wo && wo->no_exchange, err);
    } else if (!rc && renameat2(d.pfd, tmp, d.pfd, d.name, RENAME_NOREPLACE)) {
        int e = errno;
        if ((e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) && !renameat(d.pfd, tmp, d.pfd, d.name)) e = 0;
        if (e == EEXIST || e == ENOTEMPTY)
            rc = ocn_fail(err, OCN_EINVAL, "%s: appeared while the fixture was being written; not replacing it", d.shown);
        else if (e)
            rc = ocn_fail(err, OCN_EIO, "%s: cannot rename into place: %s", d.shown, strerror(e));
    }
    if (rc && tmp) remove_ours(d.pfd, tmp, tfd); /* still our temporary: nothing was swapped */
    if (tfd >= 0) close(tfd);
    free(tmp);
    dest_close(&d);
    return rc;
}
