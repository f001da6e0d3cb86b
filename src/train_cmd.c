/* `ocn train GAME.json DATA_DIR [options]` (issue 13): the command line over
 * ocn_train_run; CSV per epoch, a JSON summary, progress on a terminal. */
#include "ocn/game.h"
#include "ocn/train.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char TRAIN_USAGE[] =
    "usage: ocn train GAME.json DATA_DIR [options]\n"
    "  GAME.json      a SPEC §12 chain network (one player per stage: dense, bias, act or §14 conv) with\n"
    "                 loss 'ce'; its optimizer is the\n"
    "                 DDP variant run on the optimized path (--optimizer game, the default)\n"
    "  DATA_DIR       X.npy (rows, features; any numeric dtype), y.npy (integer labels),\n"
    "                 train_idx.npy, test_idx.npy (integer row indices)\n"
    "options:\n"
    "  --optimizer game|sgd|rmsprop|adam   baselines use PyTorch's update rules (default: game)\n"
    "  --lr X         learning rate (default: the game's optimizer.lr)\n"
    "  --momentum X   SGD momentum (0.9)      --alpha X   RMSprop smoothing (0.99)\n"
    "  --eps X        RMSprop/Adam epsilon (1e-8)\n"
    "  --epochs N     (40)    --seed S (0: parameters and shuffling)    --batch B (the game's batch)\n"
    "  --curvature C  --damping X  --zero LIST (e.g. Qthx, or '' for none)  --value V   override the game's optimizer\n"
    "  --terminal exact|outer   override the game's optimizer.terminal (§12)\n"
    "  --weight-decay X   override the game's weight_decay\n"
    "  --stat-decay X  --refresh-every N   SPEC §13 state of the DDP variants (moving-average factor rho of the\n"
    "                 rmsprop/kfac statistics; kfac factorisations recomputed every N steps)\n"
    "  --valid F      hold out a fraction F of the training split (fixed draw) and evaluate on it, never on\n"
    "                 the test split (learning-rate search)\n"
    "  --csv FILE     per epoch: epoch, train loss, eval loss, eval accuracy, seconds\n"
    "  --json FILE    summary\n"
    "  --no-timing    leave the seconds out of CSV and JSON (byte-identical reruns)\n"
    "  --fit-data     set the network's input_dim, loss.classes and last layer's out_dim from the data set\n"
    "                 (the same network file on any data set in this layout)\n"
    "  --backend cpu|cuda   the optimized path's backend (cpu)\n"
    "  --quiet        no progress lines (they go to stderr only when it is a terminal)\n"
    "exit status: 0 trained; 1 diverged (a NaN/Inf loss or a step the optimized path refused; files are\n"
    "written and say so); 2 bad input or usage (the message names the file and field); 3 I/O or memory\n";

static int train_usage(void)
{
    fputs(TRAIN_USAGE, stderr);
    return 2;
}

static int fail_exit(const ocn_error *e)
{
    fprintf(stderr, "ocn train: %s\n", ocn_error_message(e));
    return e->code == OCN_EINVAL || e->code == OCN_EUNSUPPORTED ? 2 : 3;
}

static int parse_num(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v)) {
        fprintf(stderr, "ocn train: %s: '%s' is not a number\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Writes text to path through a temporary file renamed into place (never half a file). */
static int write_atomic(const char *path, const char *text, ocn_error *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return ocn_fail(err, OCN_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int rc = OCN_OK;
    if (!f) rc = ocn_fail(err, OCN_EIO, "%s: cannot create: %s", path, strerror(errno));
    else {
        int bad = fputs(text, f) < 0;
        if (fclose(f) || bad) rc = ocn_fail(err, OCN_EIO, "%s: write failed: %s", path, strerror(errno));
        else if (rename(tmp, path)) rc = ocn_fail(err, OCN_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* Appends printf output to a growing buffer. */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s, b->cap = cap;
    }
}

static const char *method_name(ocn_train_method m)
{
    switch (m) {
    case OCN_TRAIN_GAME: return "game";
    case OCN_TRAIN_SGD: return "sgd";
    case OCN_TRAIN_RMSPROP: return "rmsprop";
    case OCN_TRAIN_ADAM: return "adam";
    }
    return "?";
}

/* The --zero list: comma-separated §12 names. */
static json_t *zero_list(const char *s)
{
    json_t *a = json_array();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        json_array_append_new(a, json_string(tok));
    return a;
}

int ocn_cmd_train(int argc, char **argv)
{
    const char *game_path = NULL, *data_dir = NULL, *csv = NULL, *jsonp = NULL, *backend = "cpu";
    const char *curvature = NULL, *zero = NULL, *value = NULL, *terminal = NULL;
    double lr = 0, damping = -1, wd = -1, valid = 0, v;
    long batch = 0, refresh = 0;
    double rho = -1;
    int quiet = 0, fit = 0;
    ocn_train_opts o;
    ocn_train_opts_default(&o);
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(TRAIN_USAGE, stdout);
            return 0;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int num = 0;
        if (!strcmp(a, "--no-timing")) o.no_timing = 1;
        else if (!strcmp(a, "--fit-data")) fit = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-' && a[1] && !next) return train_usage();
        else if (!strcmp(a, "--optimizer")) {
            i++;
            if (!strcmp(next, "game")) o.method = OCN_TRAIN_GAME;
            else if (!strcmp(next, "sgd")) o.method = OCN_TRAIN_SGD;
            else if (!strcmp(next, "rmsprop")) o.method = OCN_TRAIN_RMSPROP;
            else if (!strcmp(next, "adam")) o.method = OCN_TRAIN_ADAM;
            else {
                fprintf(stderr, "ocn train: --optimizer takes game, sgd, rmsprop or adam, not '%s'\n", next);
                return 2;
            }
        } else if (!strcmp(a, "--csv")) csv = argv[++i];
        else if (!strcmp(a, "--json")) jsonp = argv[++i];
        else if (!strcmp(a, "--backend")) backend = argv[++i];
        else if (!strcmp(a, "--curvature")) curvature = argv[++i];
        else if (!strcmp(a, "--zero")) zero = argv[++i];
        else if (!strcmp(a, "--value")) value = argv[++i];
        else if (!strcmp(a, "--terminal")) terminal = argv[++i];
        else if (a[0] == '-' && a[1]) {
            num = 1;
            if (parse_num(a, argv[++i], &v)) return 2;
            if (!strcmp(a, "--lr") && v > 0) lr = v;
            else if (!strcmp(a, "--momentum") && v >= 0 && v < 1) o.momentum = v;
            else if (!strcmp(a, "--alpha") && v >= 0 && v < 1) o.alpha = v;
            else if (!strcmp(a, "--eps") && v > 0) o.eps = v;
            else if (!strcmp(a, "--epochs") && v >= 0 && v <= 1e6 && v == floor(v)) o.epochs = (int)v;
            else if (!strcmp(a, "--seed") && v >= 0 && v < 4294967296.0 && v == floor(v)) o.seed = (unsigned long)v;
            else if (!strcmp(a, "--batch") && v >= 1 && v <= OCN_MAX_DIM && v == floor(v)) batch = (long)v;
            else if (!strcmp(a, "--damping") && v >= 0) damping = v;
            else if (!strcmp(a, "--weight-decay") && v >= 0) wd = v;
            else if (!strcmp(a, "--stat-decay") && v >= 0 && v < 1) rho = v;
            else if (!strcmp(a, "--refresh-every") && v >= 1 && v <= 1e9 && v == floor(v)) refresh = (long)v;
            else if (!strcmp(a, "--valid") && v >= 0 && v < 1) valid = v;
            else if (!strcmp(a, "--lr") || !strcmp(a, "--momentum") || !strcmp(a, "--alpha") || !strcmp(a, "--eps") ||
                     !strcmp(a, "--epochs") || !strcmp(a, "--seed") || !strcmp(a, "--batch") || !strcmp(a, "--damping") ||
                     !strcmp(a, "--weight-decay") || !strcmp(a, "--valid") || !strcmp(a, "--stat-decay") ||
                     !strcmp(a, "--refresh-every")) {
                fprintf(stderr, "ocn train: %s: %s is out of range (see ocn train --help)\n", a, argv[i]);
                return 2;
            } else return train_usage();
        } else if (!game_path) game_path = a;
        else if (!data_dir) data_dir = a;
        else return train_usage();
        (void)num;
    }
    if (!game_path || !data_dir) return train_usage();
    o.backend = backend;
    o.lr = lr;

    ocn_error e = {0};
    ocn_dataset *d = NULL;
    int rc = ocn_dataset_load(data_dir, &d, &e);
    if (!rc) rc = ocn_dataset_prepare(d, valid, 12345, &e); /* one fixed held-out draw for every run */
    if (rc) return fail_exit(&e);
    json_error_t je;
    json_t *root = json_load_file(game_path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        ocn_dataset_free(d);
        if (je.line > 0) fprintf(stderr, "ocn train: %s: line %d: %s\n", game_path, je.line, je.text);
        else fprintf(stderr, "ocn train: %s\n", je.text);
        return 2;
    }
    /* command-line overrides edit the description before it is validated, so
     * a bad value is reported by the §12 loader like one in the file */
    json_t *opt = json_object_get(root, "optimizer");
    if (json_is_object(opt)) {
        if (curvature) json_object_set_new(opt, "curvature", json_string(curvature));
        if (zero) json_object_set_new(opt, "zero", zero_list(zero));
        if (value) json_object_set_new(opt, "value", json_string(value));
        if (terminal) json_object_set_new(opt, "terminal", json_string(terminal));
        if (damping >= 0) json_object_set_new(opt, "damping", json_real(damping));
        if (rho >= 0) json_object_set_new(opt, "stat_decay", json_real(rho));
        if (refresh) json_object_set_new(opt, "refresh_every", json_integer(refresh));
        if (lr > 0 && o.method == OCN_TRAIN_GAME) json_object_set_new(opt, "lr", json_real(lr));
    }
    if (batch) json_object_set_new(root, "batch", json_integer(batch));
    if (wd >= 0) json_object_set_new(root, "weight_decay", json_real(wd));
    if (fit) { /* the same network on another data set: its input and class count from the data */
        json_object_set_new(root, "input_dim", json_integer((json_int_t)d->d));
        json_t *loss = json_object_get(root, "loss"), *stages = json_object_get(root, "stages");
        if (json_is_object(loss)) json_object_set_new(loss, "classes", json_integer(d->classes));
        json_t *last = json_array_get(stages, json_array_size(stages) - 1);
        json_t *pl = json_array_get(json_object_get(last, "players"), 0);
        if (json_is_object(pl) && json_object_get(pl, "out_dim")) json_object_set_new(pl, "out_dim", json_integer(d->classes));
    }
    ocn_game *g = NULL;
    rc = ocn_game_from_json(root, game_path, &g, &e);
    json_decref(root);
    if (rc) {
        ocn_dataset_free(d);
        return fail_exit(&e);
    }
    if (g->opt.steps != 1 || g->opt.data_stream) {
        ocn_game_free(g);
        ocn_dataset_free(d);
        fprintf(stderr, "ocn train: %s: optimizer.steps and optimizer.data describe a fixture's trajectory (SPEC §13); "
                        "ocn train takes its batches from the data set (leave them at their defaults)\n", game_path);
        return 2;
    }
    o.progress = !quiet && isatty(STDERR_FILENO) ? stderr : NULL;
    ocn_train_result res;
    rc = ocn_train_run(g, d, &o, &res, &e);
    if (rc == OCN_EINVAL) {
        ocn_error_prefix(&e, "%s", game_path);
        size_t n = strlen(e.msg);
        if (!fit && (strstr(e.msg, "input_dim is") || strstr(e.msg, "loss.classes is")) && n + 64 < sizeof e.msg)
            snprintf(e.msg + n, sizeof e.msg - n, " (--fit-data takes both from the data set)");
    }
    if (rc) {
        ocn_dataset_free(d);
        ocn_game_free(g);
        return fail_exit(&e);
    }
    const char *ev = valid > 0 ? "valid" : "test";
    if (csv) {
        sbuf b = {0};
        sb_printf(&b, "epoch,train_loss,%s_loss,%s_acc%s\n", ev, ev, o.no_timing ? "" : ",seconds");
        for (int k = 0; k <= res.epochs_run; k++) {
            sb_printf(&b, "%d,%.9g,%.9g,%.9g", k, res.train_loss[k], res.eval_loss[k], res.eval_acc[k]);
            if (!o.no_timing) sb_printf(&b, ",%.4f", res.seconds[k]);
            sb_printf(&b, "\n");
        }
        rc = b.oom ? ocn_fail(&e, OCN_ENOMEM, "out of memory") : write_atomic(csv, b.s ? b.s : "", &e);
        free(b.s);
    }
    if (!rc && jsonp) {
        json_t *j = json_object();
        json_object_set_new(j, "format", json_string("ocnopt-train"));
        json_object_set_new(j, "version", json_integer(1));
        json_object_set_new(j, "game", (json_t *)ocn_game_normalised(g));
        json_object_set_new(j, "data", json_pack("{s:s, s:I, s:I, s:i, s:I, s:I, s:s, s:f}", "dir", data_dir, "rows",
                                                 (json_int_t)d->n, "features", (json_int_t)d->d, "classes", d->classes,
                                                 "train_rows", (json_int_t)d->ntrain, "eval_rows", (json_int_t)d->ntest,
                                                 "eval", ev, "valid_fraction", valid));
        json_t *oj = json_pack("{s:s, s:f, s:i, s:I, s:i}", "method", method_name(o.method), "lr",
                               lr > 0 ? lr : g->opt.lr, "epochs", o.epochs, "seed", (json_int_t)o.seed, "batch", g->batch);
        if (o.method == OCN_TRAIN_SGD) json_object_set_new(oj, "momentum", json_real(o.momentum));
        if (o.method == OCN_TRAIN_RMSPROP) json_object_set_new(oj, "alpha", json_real(o.alpha));
        if (o.method == OCN_TRAIN_ADAM) json_object_set_new(oj, "betas", json_pack("[f, f]", o.beta1, o.beta2));
        if (o.method == OCN_TRAIN_RMSPROP || o.method == OCN_TRAIN_ADAM) json_object_set_new(oj, "eps", json_real(o.eps));
        if (o.method == OCN_TRAIN_GAME) json_object_set_new(oj, "backend", json_string(backend));
        json_object_set_new(j, "training", oj);
        int E = res.epochs_run;
        json_object_set_new(j, "epochs_run", json_integer(E));
        json_object_set_new(j, "diverged", json_boolean(res.diverged));
        if (res.diverged) json_object_set_new(j, "why", json_string(res.why));
        json_object_set_new(j, "final", json_pack("{s:f, s:f, s:f}", "train_loss", res.train_loss[E], "eval_loss",
                                                  res.eval_loss[E], "eval_acc", res.eval_acc[E]));
        json_t *c = json_object(), *tl = json_array(), *el = json_array(), *ea = json_array();
        for (int k = 0; k <= E; k++) {
            json_array_append_new(tl, json_real(res.train_loss[k]));
            json_array_append_new(el, json_real(res.eval_loss[k]));
            json_array_append_new(ea, json_real(res.eval_acc[k]));
        }
        json_object_set_new(c, "train_loss", tl), json_object_set_new(c, "eval_loss", el);
        json_object_set_new(c, "eval_acc", ea);
        json_object_set_new(j, "curves", c);
        if (!o.no_timing) {
            json_object_set_new(j, "step_seconds", json_real(res.step_seconds));
            json_object_set_new(j, "seconds_per_epoch", json_real(E ? res.step_seconds / E : 0));
        }
        char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
        json_decref(j);
        if (!text) rc = ocn_fail(&e, OCN_ENOMEM, "out of memory");
        else {
            size_t L = strlen(text);
            char *t2 = realloc(text, L + 2);
            if (t2) text = t2, strcat(text, "\n");
            rc = write_atomic(jsonp, text, &e);
            free(text);
        }
    }
    if (!rc) {
        int E = res.epochs_run;
        printf("%s: %s, %d epochs%s: train loss %.4f, %s loss %.4f, %s accuracy %.2f%%\n", g->name,
               o.method == OCN_TRAIN_GAME ? ocn_curvature_name(g->opt.curvature) : method_name(o.method), E,
               res.diverged ? " (diverged)" : "", res.train_loss[E], ev, res.eval_loss[E], ev, 100 * res.eval_acc[E]);
        if (res.diverged) fprintf(stderr, "ocn train: diverged: %s\n", res.why);
    }
    int diverged = res.diverged;
    ocn_train_result_free(&res);
    ocn_dataset_free(d);
    ocn_game_free(g);
    if (rc) return fail_exit(&e);
    return diverged ? 1 : 0;
}
