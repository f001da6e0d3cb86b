/* ocn — the command-line tool (usage() below is the one list of commands,
 * options and exit statuses; README.md repeats the table). */
#include "ocn/fixture.h"
#include "ocn/harness.h"
#include "ocn/optimized.h"
#include "ocn/reference.h"
#include "ocn/tolerance.h"
#include "ocn/train.h"
#include "ocn/version.h"

#include <jansson.h>
#include <math.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef OCN_COMMIT
#define OCN_COMMIT "unknown"
#endif

static const char USAGE[] =
    "usage: ocn gen GAME.json -o DIR [--force] [--backend reference|cpu] [--precision f64|f32] [--max-memory SIZE]\n"
    "       ocn verify DIR... [REPORT OPTIONS]\n"
    "       ocn theorems DIR... [REPORT OPTIONS]\n"
    "       ocn check DIR... [--backend cpu|checking|cuda|all] [--precision f64|f32|both] [REPORT OPTIONS]\n"
    "       ocn compare DIR_A DIR_B [--require all|gains] [REPORT OPTIONS]   (A is the reference side)\n"
    "       ocn normalise GAME.json      print the SPEC §11 v2 normalised game (every default filled in)\n"
    "       ocn detect DIR... [--max-power P] [--max-weak FRACTION]\n"
    "                                    §10 detection power per fixture and of the set (exit 1 over a limit)\n"
    "       ocn train GAME.json DATA_DIR [options]   train a §12 network on a data set (ocn train --help)\n"
    "       ocn --version | --help | CMD --help\n"
    "report options:\n"
    "  --verbose        print every row (default: one line per fixture x check family, and every row not ok)\n"
    "  --json FILE      machine-readable report (schema ocnopt-report v1)\n"
    "  --junit FILE     JUnit XML, one testcase per fixture x check family\n"
    "  --allow-skip     exit 0 even when the run compared nothing or skipped everything\n"
    "  --filter PATTERN run only the fixtures x checks a glob selects: it matches the fixture's name,\n"
    "                   the check ID (T6b, REPRO, cpu/f32, COMPARE) or NAME/ID, e.g. 'mlp-*', T6b, '*-gr/SCHUR'\n"
    "  --max-memory SIZE  (also gen) refuse a reference run whose estimated peak memory exceeds SIZE\n"
    "                   (e.g. 512M, 8G; default: the machine's physical memory)\n"
    "  --fault NAME     (verify, theorems: harness self-test) inject a wrong kernel into the reference;\n"
    "                   a fixture it does not apply to is a SKIP row saying why:\n"
    "%FAULTS%"
    "exit status:\n"
    "  0  every comparison passed (ok or marginal; weak rows are printed, never counted as passed)\n"
    "  1  a comparison FAILED, or the run compared nothing / skipped everything (without --allow-skip)\n"
    "  2  bad input or usage, or a game that cannot be computed (a refused regime, NaN/Inf):\n"
    "     a message names the file, field or layer; nothing is written\n"
    "  3  an I/O or resource failure (cannot write a file, out of memory)\n";

static void print_faults(FILE *f)
{
    for (int i = 1; i < OCN_FAULT_TRAJ_END; i++) /* one-step faults, then the §13 trajectory ones */
        if (i < OCN_FAULT_COUNT || i >= OCN_FAULT_DECAY_DROP)
            fprintf(f, "                     %-17s %s\n", ocn_fault_name((ocn_fault)i), ocn_fault_description((ocn_fault)i));
}

/* USAGE, its fault list from the table the code parses (reference/run.c:
 * each name once, with what it breaks).  cmd != NULL (`ocn CMD --help`):
 * CMD's lines of the usage block with their continuation lines, the report
 * options where CMD takes them, and the exit statuses. */
static void print_usage(FILE *f, const char *cmd)
{
    const char *mark = strstr(USAGE, "%FAULTS%"), *ropts = strstr(USAGE, "report options:");
    if (!cmd) {
        fwrite(USAGE, 1, (size_t)(mark - USAGE), f);
        print_faults(f);
        fputs(mark + strlen("%FAULTS%"), f);
        return;
    }
    size_t cl = strlen(cmd);
    int in = 0, report = 0, first = 1;
    for (const char *l = USAGE; l < ropts;) {
        size_t len = (size_t)(strchr(l, '\n') - l) + 1;
        const char *body = l + 7; /* after "usage: " or 7 blanks */
        if (len > 11 && !strncmp(body, "ocn ", 4))
            in = !strncmp(body + 4, cmd, cl) && (body[4 + cl] == ' ' || body[4 + cl] == '\n');
        if (in && len > 7) {
            fprintf(f, "%s%.*s", first ? "usage: " : "       ", (int)(len - 7), body);
            report |= memmem(l, len, "REPORT OPTIONS", 14) != NULL;
            first = 0;
        }
        l += len;
    }
    if (report) {
        fwrite(ropts, 1, (size_t)(mark - ropts), f);
        print_faults(f);
    } else if (!strcmp(cmd, "gen")) {
        const char *mm = strstr(USAGE, "  --max-memory SIZE"), *fa = strstr(USAGE, "  --fault NAME");
        fputs("options:\n", f);
        fwrite(mm, 1, (size_t)(fa - mm), f);
    }
    fputs(strstr(USAGE, "exit status:"), f);
}

static int usage(void)
{
    print_usage(stderr, NULL);
    return 2;
}

static const char *const COMMANDS[] = {"gen", "verify", "theorems", "check", "compare", "detect", "normalise", NULL};

/* Bad usage of one command: a line naming the option or argument at fault
 * (the full usage block buried it), then where to read the command's
 * options; exit 2 (the table in usage()). */
static int bad_usage(const char *cmd, const char *fmt, const char *what)
{
    fprintf(stderr, "ocn %s: ", cmd);
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (ocn %s --help lists its options)\n", cmd);
    return 2;
}

/* Why argv[i] was not accepted: an option given last without its value, an
 * unknown option, or an argument beyond those the command takes. */
static int bad_arg(const char *cmd, int argc, char **argv, int i)
{
    static const char *const VALUED[] = {"-o", "--backend", "--precision", "--max-memory", "--json", "--junit",
                                         "--filter", "--fault", "--require", "--max-power", "--max-weak", NULL};
    if (argv[i][0] != '-') return bad_usage(cmd, "unexpected argument '%s'", argv[i]);
    for (int v = 0; VALUED[v]; v++)
        if (!strcmp(argv[i], VALUED[v]) && i + 1 >= argc) return bad_usage(cmd, "%s needs a value", argv[i]);
    return bad_usage(cmd, "unknown option '%s'", argv[i]);
}

static int die(const ocn_error *e)
{
    fprintf(stderr, "ocn: %s\n", ocn_error_message(e));
    return e->code == OCN_EINVAL || e->code == OCN_EUNSUPPORTED ? 2 : 3;
}

/* OCN_FAULT_GEN_AFTER=N (tests only): die by SIGKILL after N array files,
 * to show that a crash never leaves a partial fixture at the destination. */
static void die_after(void *ctx, int nwritten)
{
    if (nwritten >= *(int *)ctx) raise(SIGKILL);
}

/* "--max-memory SIZE": bytes, with an optional K, M, G or T suffix (powers of 1024). */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024.0 * 1024 * 1024, end++;
    else if (*end == 'T' || *end == 't') mul = 1024.0 * 1024 * 1024 * 1024, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (end == s || *end || !(v > 0) || v * mul > 1e18) {
        fprintf(stderr, "ocn: --max-memory: '%s' is not a size (e.g. 512M, 8G)\n", s);
        return -1;
    }
    *out = (size_t)(v * mul);
    return 0;
}

typedef struct {
    const char *json, *junit, *filter;
    int verbose, allow_skip;
    ocn_ref_opts ref;
} report_opts;

/* Parses a report option at argv[*i]; 1 if it was one, -1 on a bad value. */
static int report_option(int argc, char **argv, int *i, report_opts *ro)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--verbose")) ro->verbose = 1;
    else if (!strcmp(a, "--allow-skip")) ro->allow_skip = 1;
    else if (!strcmp(a, "--json") && *i + 1 < argc) ro->json = argv[++*i];
    else if (!strcmp(a, "--junit") && *i + 1 < argc) ro->junit = argv[++*i];
    else if (!strcmp(a, "--filter") && *i + 1 < argc) ro->filter = argv[++*i];
    else if (!strcmp(a, "--max-memory") && *i + 1 < argc) {
        if (parse_size(argv[++*i], &ro->ref.max_memory)) return -1;
    }
    else if (!strcmp(a, "--fault") && *i + 1 < argc) {
        if (ocn_fault_parse(argv[++*i], &ro->ref.fault)) {
            fprintf(stderr, "ocn: unknown fault '%s'\n", argv[*i]);
            return -1;
        }
    } else return 0;
    return 1;
}

/* Prints the report, writes --json/--junit; the exit status of the table in
 * usage(): `status` carries 2 when some input was bad (the rest still ran). */
static int finish_report(const ocn_report *rep, const report_opts *ro, int status, int processed)
{
    if (status && (!processed || !rep->count)) return status; /* only bad input: its messages, no report, nothing written */
    fflush(stdout);
    ocn_report_print(rep, stdout, ro->verbose);
    ocn_error e = {0};
    if (ro->json && ocn_report_write_json(rep, ro->json, &e)) return die(&e);
    if (ro->junit && ocn_report_write_junit(rep, ro->junit, &e)) return die(&e);
    if (status) return status;
    if (ocn_report_failures(rep)) return 1;
    if (!ocn_report_compared(rep) && !ro->allow_skip) { /* §10: a verdict that compared nothing is no pass */
        fflush(stdout);
        if (ro->filter && !rep->count) fprintf(stderr, "ocn: --filter '%s' selected no fixture or check\n", ro->filter);
        fprintf(stderr, "ocn: nothing was compared%s; exit 1 (--allow-skip to accept)\n",
                rep->skipped ? " (everything skipped)" : "");
        return 1;
    }
    return 0;
}

/* A fixture that could not be processed: bad input is reported (status 2)
 * and the other fixtures still run; a numerical failure is a FAILED row. */
static int fixture_error(ocn_report *rep, const char *id, const char *dir, const ocn_error *e)
{
    if (e->code == OCN_EINVAL || e->code == OCN_EUNSUPPORTED) { /* bad input, or refused (e.g. --max-memory) */
        fprintf(stderr, "ocn: %s\n", ocn_error_message(e));
        return 2;
    }
    if (e->code == OCN_EIO || e->code == OCN_ENOMEM) {
        fprintf(stderr, "ocn: %s\n", ocn_error_message(e));
        return 3;
    }
    char q[96];
    snprintf(q, sizeof q, "(could not run: %.70s)", ocn_error_message(e));
    ocn_report_add(rep, id, dir, q, INFINITY, INFINITY);
    return 0;
}

static int worse(int a, int b) { return a > b ? a : b; }

/* Issue 10: `ocn gen` reports progress on a terminal (stderr) once a run has
 * taken longer than OCN_PROGRESS_AFTER seconds (default 2), at most twice a
 * second: the run, the trajectory step, the stage, the time elapsed and an
 * estimate of the time left (from the fraction of stages done). */
typedef struct {
    double t0, last, after;
    int shown;
} gen_progress;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void gen_progress_cb(void *ctx, const ocn_ref_progress *p)
{
    gen_progress *gp = ctx;
    double t = mono_s() - gp->t0;
    if (t < gp->after || (gp->shown && t - gp->last < 0.5)) return;
    gp->last = t;
    double steps = p->steps > 0 ? p->steps : 1, stages = p->stages > 0 ? p->stages : 1, runs = p->runs > 0 ? p->runs : 1;
    double done = (p->run + (p->step + p->stage / stages) / steps) / runs;
    char step[48] = "", left[48] = "";
    if (p->steps > 1) snprintf(step, sizeof step, ", step %d/%d", p->step + 1, p->steps);
    if (done > 0.01) snprintf(left, sizeof left, ", about %.0f s left", t * (1 - done) / done);
    fprintf(stderr, "\r\033[Kocn gen: run %d/%d (%s)%s, stage %d/%d, %.1f s elapsed%s", p->run + 1, p->runs,
            p->run ? "§10 perturbation" : "nominal", step, p->stage, p->stages, t, left);
    fflush(stderr);
    gp->shown = 1;
}

static int cmd_gen(int argc, char **argv)
{
    const char *game = NULL, *dir = NULL, *backend = "reference", *prec = "f64";
    int force = 0;
    size_t max_memory = 0; /* 0: the machine's physical memory (ocn_ref_opts) */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (!strcmp(argv[i], "--max-memory") && i + 1 < argc) {
            if (parse_size(argv[++i], &max_memory)) return 2;
        } else if (argv[i][0] == '-' || game) return bad_arg("gen", argc, argv, i);
        else game = argv[i];
    }
    if (!game) return bad_usage("gen", "%s", "no GAME.json given");
    if (!dir) return bad_usage("gen", "%s", "no output directory given (-o DIR)");
    if (strcmp(prec, "f64") && strcmp(prec, "f32")) return bad_usage("gen", "--precision takes f64 or f32, not '%s'", prec);
    if (strcmp(backend, "reference") && !ocn_opt_backend_known(backend))
        return bad_usage("gen", "--backend takes reference or an optimized backend (cpu), not '%s'", backend);
    int optimized = strcmp(backend, "reference") != 0;
    if (!optimized && strcmp(prec, "f64")) {
        fprintf(stderr, "ocn: the reference computes in f64 only\n");
        return 2;
    }
    ocn_error e = {0};
    /* issue 10: a destination that cannot be written is refused before any
     * computing (ocn_fixture_write checks it again) */
    if (ocn_fixture_check_dest(dir, force, &e)) return die(&e);
    ocn_game *g = NULL;
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    int rc = ocn_game_load_file(game, &g, &e);
    if (!rc) rc = ocn_ref_init_inputs(g, in, &e);
    ocn_opt_config cfg = {.backend = backend, .precision = !strcmp(prec, "f32") ? 32 : 64, .form_limit = 1 << 20,
                          .measure_runs = OCN_MEASURE_RUNS, .max_memory = max_memory}; /* its own measured c (§10) */
    /* §10 rev. 2: c measured by 8 perturbation runs; and at float32 (docs/decisions.md) */
    ocn_ref_opts ro = {.fault = OCN_FAULT_NONE, .measure_runs = OCN_MEASURE_RUNS, .measure_f32 = 1, .max_memory = max_memory};
    const char *after = getenv("OCN_PROGRESS_AFTER");
    gen_progress gp = {mono_s(), 0, after && *after ? atof(after) : 2.0, 0};
    if (isatty(STDERR_FILENO)) ro.progress = gen_progress_cb, ro.progress_ctx = &gp;
    int traj = !rc && ocn_game_is_trajectory(g); /* §13: a trajectory fixture */
    if (traj && optimized)
        rc = ocn_fail(&e, OCN_EUNSUPPORTED, "%s: the optimized producer writes no trajectory fixtures (SPEC §13); "
                      "use the reference", game);
    if (!rc) {
        rc = optimized ? ocn_opt_run(g, &g->opt, in, &cfg, out, &e)
             : traj    ? ocn_ref_run_trajectory(g, &g->opt, in, &ro, out, &e)
                       : ocn_ref_run(g, &g->opt, in, &ro, out, &e);
        if (gp.shown) fprintf(stderr, "\r\033[K"); /* the progress line leaves no trace */
        if (rc == OCN_ENUMERIC) { /* a legal game float64 cannot compute (NaN/Inf, a failed factorisation): refused, named */
            ocn_error_prefix(&e, "%s", game);
            e.code = OCN_EUNSUPPORTED;
        }
    }
    if (!rc) {
        /* §11: large shapes omit the m×m and per-sample m×n arrays (> 1 MB) */
        for (int i = out->count - 1; i >= 0; i--) {
            const char *n = out->a[i].name;
            if ((!strncmp(n, "Qthth_", 6) || !strncmp(n, "Qthx_", 5) || !strncmp(n, "K_", 2) ||
                 !strncmp(n, "Pthth_", 6) || !strncmp(n, "Pthx_", 5)) &&
                out->a[i].size * sizeof(double) > (1u << 20))
                ocn_arrayset_remove(out, n);
        }
        for (int i = 0; i < in->count; i++) {
            if (ocn_arrayset_find(out, in->a[i].name)) continue; /* a trajectory stores its last step's x0, y, theta_t */
            ocn_array *a = ocn_arrayset_add(out, in->a[i].name, in->a[i].ndim, in->a[i].shape);
            if (a) memcpy(a->data, in->a[i].data, a->size * sizeof(double));
        }
        ocn_arrayset_sort(out);
        ocn_producer p = {optimized ? "ocnopt optimized" : "ocnopt reference", backend, prec, OCN_COMMIT, "gsl_rng_mt19937",
                          g->seed, OCN_MEASURE_RUNS};
        int fault_after = 0;
        const char *fa = getenv("OCN_FAULT_GEN_AFTER");
        if (fa) fault_after = atoi(fa);
        ocn_write_opts wo = {.force = force, .after_file = fault_after > 0 ? die_after : NULL, .ctx = &fault_after};
        rc = ocn_fixture_write(dir, g, out, &p, &wo, &e);
    }
    ocn_game_free(g);
    ocn_arrayset_free(in);
    ocn_arrayset_free(out);
    if (rc) return die(&e);
    printf("wrote %s\n", dir);
    return 0;
}

typedef int (*fixture_fn)(const ocn_fixture *, const report_opts *, ocn_report *, ocn_error *);

static int run_verify(const ocn_fixture *f, const report_opts *ro, ocn_report *rep, ocn_error *e)
{
    return ocn_filter_match(ro->filter, f->game->name, "REPRO") ? ocn_verify_fixture(f, &ro->ref, rep, e) : OCN_OK;
}

static int run_theorems(const ocn_fixture *f, const report_opts *ro, ocn_report *rep, ocn_error *e)
{
    return ocn_theorems_select(f, &ro->ref, ro->filter, rep, e);
}

static int cmd_fixtures(int argc, char **argv, fixture_fn fn, const char *id)
{
    report_opts ro = {0};
    const char *cmd = fn == run_theorems ? "theorems" : "verify";
    int ndirs = 0, status = 0, processed = 0;
    char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    if (!dirs) return 3;
    for (int i = 0; i < argc; i++) {
        int k = report_option(argc, argv, &i, &ro);
        if (k < 0 || (!k && argv[i][0] == '-')) {
            free(dirs);
            return k < 0 ? 2 : bad_arg(cmd, argc, argv, i);
        }
        if (!k) dirs[ndirs++] = argv[i];
    }
    if (!ndirs) {
        free(dirs);
        return bad_usage(cmd, "%s", "no fixture directory given");
    }
    ocn_report *rep = ocn_report_new();
    for (int i = 0; rep && i < ndirs; i++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        int rc = ocn_fixture_read(dirs[i], &f, &e);
        char why[160];
        /* the §9-check faults act on the checks' variants: `theorems` runs them on every fixture */
        int gate = !(fn == run_theorems && OCN_FAULT_IS_CHECK(ro.ref.fault));
        if (!rc && ro.ref.fault != OCN_FAULT_NONE && gate && !ocn_fault_applies(f->game, ro.ref.fault, why, sizeof why)) {
            char reason[256]; /* a fault that cannot show would be a silent pass (issue 15) */
            snprintf(reason, sizeof reason, "--fault %s does not apply: %s", ocn_fault_name(ro.ref.fault), why);
            ocn_report_skip(rep, id, f->game->name, reason);
            processed++;
        } else if (!rc) rc = fn(f, &ro, rep, &e), processed++;
        if (rc) status = worse(status, fixture_error(rep, id, f ? f->game->name : dirs[i], &e));
        ocn_fixture_free(f);
    }
    status = rep ? finish_report(rep, &ro, status, processed) : 3;
    ocn_report_free(rep);
    free(dirs);
    return status;
}

static int cmd_check(int argc, char **argv)
{
    report_opts ro = {0};
    const char *backend = "cpu", *prec = "f64";
    int ndirs = 0, status = 0, processed = 0;
    char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    if (!dirs) return 3;
    for (int i = 0; i < argc; i++) {
        int k = report_option(argc, argv, &i, &ro);
        if (k) {
            if (k < 0) {
                free(dirs);
                return 2;
            }
        } else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (argv[i][0] == '-') {
            free(dirs);
            return bad_arg("check", argc, argv, i);
        } else dirs[ndirs++] = argv[i];
    }
    int precs[2], np = 0;
    if (!strcmp(prec, "f64") || !strcmp(prec, "both")) precs[np++] = 64;
    if (!strcmp(prec, "f32") || !strcmp(prec, "both")) precs[np++] = 32;
    const char *backends[2] = {backend, NULL};
    int nb = 1;
    if (!strcmp(backend, "all")) backends[0] = "cpu", backends[1] = "cuda", nb = 2;
    if (!ndirs || !np || (strcmp(backend, "all") && !ocn_opt_backend_known(backend))) { /* the registry's names */
        free(dirs);
        if (!np) return bad_usage("check", "--precision takes f64, f32 or both, not '%s'", prec);
        if (ndirs) return bad_usage("check", "--backend takes cpu, checking, cuda or all, not '%s'", backend);
        return bad_usage("check", "%s", "no fixture directory given");
    }
    ocn_report *rep = ocn_report_new();
    for (int i = 0; rep && i < ndirs; i++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        int rc = ocn_fixture_read(dirs[i], &f, &e);
        if (rc) {
            status = worse(status, fixture_error(rep, "check", dirs[i], &e));
            continue;
        }
        processed++;
        for (int b = 0; b < nb; b++)
            for (int p = 0; p < np; p++) {
                char id[24];
                snprintf(id, sizeof id, "%s/f%d", backends[b], precs[p]);
                if (!ocn_filter_match(ro.filter, f->game->name, id)) continue;
                rc = ocn_check_fixture(f, backends[b], precs[p], rep, &e);
                /* a refusal (no GPU, no CUDA in this build, or a regime the optimized path found it
                 * cannot compute to §10 accuracy during the run) is a visible SKIP, never a pass */
                if (rc == OCN_EUNSUPPORTED) ocn_report_skip(rep, id, f->game->name, ocn_error_message(&e));
                else if (rc)
                    status = worse(status, fixture_error(rep, id, f->game->name, &e));
            }
        ocn_fixture_free(f);
    }
    status = rep ? finish_report(rep, &ro, status, processed) : 3;
    ocn_report_free(rep);
    free(dirs);
    return status;
}

static int cmd_compare(int argc, char **argv)
{
    report_opts ro = {0};
    const char *dirs[2] = {NULL, NULL};
    ocn_require req = OCN_REQUIRE_ALL;
    int nd = 0;
    for (int i = 0; i < argc; i++) {
        int k = report_option(argc, argv, &i, &ro);
        if (k < 0) return 2;
        if (k) continue;
        if (!strcmp(argv[i], "--require") && i + 1 < argc) {
            const char *r = argv[++i];
            if (!strcmp(r, "gains")) req = OCN_REQUIRE_GAINS;
            else if (!strcmp(r, "all")) req = OCN_REQUIRE_ALL;
            else { /* §10: narrowed to the gains, never to nothing */
                fprintf(stderr, "ocn: --require takes 'all' or 'gains', not '%s'\n", r);
                return 2;
            }
        } else if (argv[i][0] == '-' || nd == 2) return bad_arg("compare", argc, argv, i);
        else dirs[nd++] = argv[i];
    }
    if (nd != 2) return bad_usage("compare", "%s", nd ? "needs two fixture directories, DIR_A DIR_B; one given" : "no fixture directories given (DIR_A DIR_B)");
    ocn_error e = {0};
    ocn_fixture *a = NULL, *b = NULL;
    ocn_report *rep = ocn_report_new();
    int rc = rep ? OCN_OK : ocn_fail(&e, OCN_ENOMEM, "out of memory");
    if (!rc) rc = ocn_fixture_read(dirs[0], &a, &e);
    if (!rc) rc = ocn_fixture_read(dirs[1], &b, &e);
    if (!rc && ocn_filter_match(ro.filter, a->game->name, "COMPARE")) rc = ocn_compare_fixtures(a, b, req, rep, &e);
    int status = rc ? die(&e) : finish_report(rep, &ro, 0, 1);
    ocn_fixture_free(a), ocn_fixture_free(b);
    ocn_report_free(rep);
    return status;
}

static int by_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* §10 detection power of each fixture and of the set: `make detect`. */
static int cmd_detect(int argc, char **argv)
{
    double max_power = INFINITY, max_weak = 1.0;
    int nd = 0, status = 0, weak = 0, total = 0;
    double *power = calloc((size_t)argc + 1, sizeof *power);
    if (!power) return 3;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--max-power") || !strcmp(argv[i], "--max-weak")) && i + 1 < argc) {
            char *end; /* atof read "abc" as 0: every fixture over the limit, with no word on why */
            double v = strtod(argv[i + 1], &end);
            if (end == argv[i + 1] || *end || !(v >= 0)) {
                free(power);
                fprintf(stderr, "ocn detect: %s: '%s' is not a number >= 0\n", argv[i], argv[i + 1]);
                return 2;
            }
            *(argv[i][6] == 'p' ? &max_power : &max_weak) = v, i++;
        } else if (argv[i][0] == '-') {
            free(power);
            return bad_arg("detect", argc, argv, i);
        } else {
            ocn_error e = {0};
            ocn_fixture *f = NULL;
            ocn_arrayset *ref = NULL;
            int rc = ocn_fixture_read(argv[i], &f, &e);
            if (!rc) rc = ocn_reference_side(f, &ref, &e);
            if (rc) {
                status = worse(status, die(&e));
            } else {
                ocn_fixture_info info;
                ocn_fixture_info_of(f->game->name, ref, &info);
                printf("%-40s power=%.2e  weak=%d/%d%s\n", f->game->name, info.detection, info.weak, info.total,
                       info.fit_for_ports ? "" : "  (not fit for ports)");
                power[nd++] = info.detection, weak += info.weak, total += info.total;
            }
            ocn_arrayset_free(ref);
            ocn_fixture_free(f);
        }
    }
    if (!nd) {
        free(power);
        return status ? status : bad_usage("detect", "%s", "no fixture directory given");
    }
    qsort(power, (size_t)nd, sizeof *power, by_double);
    double median = nd % 2 ? power[nd / 2] : 0.5 * (power[nd / 2 - 1] + power[nd / 2]);
    printf("detection: fixtures=%d median=%.2e worst=%.2e weak=%d/%d\n", nd, median, power[nd - 1], weak, total);
    if (power[nd - 1] > max_power || weak > max_weak * total) {
        printf("ocn detect: worst %.2e (limit %.2e), weak %d/%d (limit %.0f%%)\n", power[nd - 1], max_power, weak, total,
               100 * max_weak);
        status = worse(status, 1);
    }
    free(power);
    return status;
}

static int cmd_normalise(int argc, char **argv)
{
    if (argc < 1) return bad_usage("normalise", "%s", "no GAME.json given");
    if (argv[0][0] == '-') return bad_arg("normalise", argc, argv, 0);
    if (argc > 1) return bad_arg("normalise", argc, argv, 1);
    ocn_error e = {0};
    ocn_game *g = NULL;
    if (ocn_game_load_file(argv[0], &g, &e)) return die(&e);
    json_t *n = ocn_game_normalised(g);
    int rc = n && json_dumpf(n, stdout, JSON_INDENT(1) | JSON_SORT_KEYS) == 0 ? 0 : 3;
    if (!rc) putchar('\n');
    json_decref(n);
    ocn_game_free(g);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout, argc > 2 && strcmp(argv[1], "help") == 0 ? argv[2] : NULL);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("ocn %s (commit %s)\n", OCN_VERSION, OCN_COMMIT);
        return 0;
    }
    for (int i = 2; i < argc; i++) /* `ocn CMD --help`: that command's usage, to stdout, exit 0 */
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            for (int c = 0; COMMANDS[c]; c++)
                if (!strcmp(argv[1], COMMANDS[c]) || (!strcmp(argv[1], "normalize") && !strcmp(COMMANDS[c], "normalise"))) {
                    print_usage(stdout, COMMANDS[c]);
                    return 0;
                }
            break;
        }
    if (!strcmp(argv[1], "gen")) return cmd_gen(argc - 2, argv + 2);
    if (!strcmp(argv[1], "verify")) return cmd_fixtures(argc - 2, argv + 2, run_verify, "REPRO");
    if (!strcmp(argv[1], "theorems")) return cmd_fixtures(argc - 2, argv + 2, run_theorems, "THEOREMS");
    if (!strcmp(argv[1], "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(argv[1], "compare")) return cmd_compare(argc - 2, argv + 2);
    if (!strcmp(argv[1], "detect")) return cmd_detect(argc - 2, argv + 2);
    if (!strcmp(argv[1], "train")) return ocn_cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "normalise") || !strcmp(argv[1], "normalize")) return cmd_normalise(argc - 2, argv + 2);
    fprintf(stderr, "ocn: unknown command '%s' (ocn --help lists them)\n", argv[1]);
    return 2;
}
