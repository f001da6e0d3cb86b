/* ocn — the command-line tool.
 *   ocn gen GAME.json -o DIR [--force]     write a §11 fixture from the reference
 *   ocn verify DIR...                      recompute fixtures, compare every array (§10)
 *   ocn theorems DIR... [--json FILE]      run the §9 checks
 * Exit status: 0 ok, 1 a check failed, 2 bad input or usage. */
#include "ocn/fixture.h"
#include "ocn/harness.h"
#include "ocn/optimized.h"
#include "ocn/reference.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef OCN_COMMIT
#define OCN_COMMIT "unknown"
#endif

static int usage(void)
{
    fprintf(stderr,
            "usage: ocn gen GAME.json -o DIR [--force] [--backend reference|cpu] [--precision f64|f32]\n"
            "       ocn verify DIR... [--json FILE]\n"
            "       ocn theorems DIR... [--json FILE]\n"
            "       ocn compare DIR_A DIR_B [--json FILE]\n"
            "       ocn check DIR... [--backend cpu|cuda|all] [--precision f64|f32|both] [--json FILE]\n"
            "  --fault NAME   (harness self-test) inject a wrong kernel into the reference:\n"
            "                 K-sign, feedback-drop, K-perturb, k-perturb\n");
    return 2;
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

/* Prints the table and closing line, writes --json; exit 1 on any FAILED row. */
static int finish_report(const ocn_report *rep, const char *json)
{
    fflush(stdout);
    ocn_report_print(rep, stdout, 1);
    ocn_error e = {0};
    if (json && ocn_report_write_json(rep, json, &e)) return die(&e);
    return ocn_report_failures(rep) ? 1 : 0;
}

static int cmd_gen(int argc, char **argv)
{
    const char *game = NULL, *dir = NULL, *backend = "reference", *prec = "f64";
    int force = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (argv[i][0] == '-') return usage();
        else if (!game) game = argv[i];
        else return usage();
    }
    if (!game || !dir || (strcmp(prec, "f64") && strcmp(prec, "f32"))) return usage();
    int optimized = strcmp(backend, "reference") != 0;
    if (!optimized && strcmp(prec, "f64")) {
        fprintf(stderr, "ocn: the reference computes in f64 only\n");
        return 2;
    }
    ocn_error e = {0};
    ocn_game *g = NULL;
    ocn_arrayset *in = ocn_arrayset_new(), *out = ocn_arrayset_new();
    int rc = ocn_game_load_file(game, &g, &e);
    if (!rc) rc = ocn_ref_init_inputs(g, in, &e);
    ocn_opt_config cfg = {backend, !strcmp(prec, "f32") ? 32 : 64, 1 << 20, 0};
    ocn_ref_opts ro = {OCN_FAULT_NONE, OCN_MEASURE_RUNS}; /* §10 rev. 2: c measured by 8 perturbation runs */
    if (!rc) rc = optimized ? ocn_opt_run(g, &g->opt, in, &cfg, out, &e) : ocn_ref_run(g, &g->opt, in, &ro, out, &e);
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
            ocn_array *a = ocn_arrayset_add(out, in->a[i].name, in->a[i].ndim, in->a[i].shape);
            if (a) memcpy(a->data, in->a[i].data, a->size * sizeof(double));
        }
        ocn_arrayset_sort(out);
        ocn_producer p = {optimized ? "ocnopt optimized" : "ocnopt reference", backend, prec, OCN_COMMIT, "gsl_rng_mt19937",
                          g->seed};
        int fault_after = 0;
        const char *fa = getenv("OCN_FAULT_GEN_AFTER");
        if (fa) fault_after = atoi(fa);
        ocn_write_opts wo = {force, fault_after > 0 ? die_after : NULL, &fault_after};
        rc = ocn_fixture_write(dir, g, out, &p, &wo, &e);
    }
    ocn_game_free(g);
    ocn_arrayset_free(in);
    ocn_arrayset_free(out);
    if (rc) return die(&e);
    printf("wrote %s\n", dir);
    return 0;
}

typedef int (*fixture_fn)(const ocn_fixture *, const ocn_ref_opts *, ocn_report *, ocn_error *);

static int cmd_fixtures(int argc, char **argv, fixture_fn fn)
{
    const char *json = NULL;
    ocn_ref_opts o = {OCN_FAULT_NONE};
    int ndirs = 0;
    char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--fault") && i + 1 < argc) {
            if (ocn_fault_parse(argv[++i], &o.fault)) {
                fprintf(stderr, "ocn: unknown fault '%s'\n", argv[i]);
                free(dirs);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            free(dirs);
            return usage();
        } else dirs[ndirs++] = argv[i];
    }
    if (!ndirs) {
        free(dirs);
        return usage();
    }
    ocn_report *rep = ocn_report_new();
    int status = 0;
    for (int i = 0; i < ndirs; i++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        int rc = ocn_fixture_read(dirs[i], &f, &e);
        if (!rc) rc = fn(f, &o, rep, &e);
        ocn_fixture_free(f);
        if (rc) {
            status = die(&e);
            break;
        }
    }
    if (!status) status = finish_report(rep, json);
    ocn_report_free(rep);
    free(dirs);
    return status;
}

static int cmd_check(int argc, char **argv)
{
    const char *json = NULL, *backend = "cpu", *prec = "f64";
    int ndirs = 0;
    char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else if (argv[i][0] == '-') {
            free(dirs);
            return usage();
        } else dirs[ndirs++] = argv[i];
    }
    int precs[2], np = 0;
    if (!strcmp(prec, "f64") || !strcmp(prec, "both")) precs[np++] = 64;
    if (!strcmp(prec, "f32") || !strcmp(prec, "both")) precs[np++] = 32;
    const char *backends[2] = {backend, NULL};
    int nb = 1;
    if (!strcmp(backend, "all")) backends[0] = "cpu", backends[1] = "cuda", nb = 2;
    if (!ndirs || !np || (strcmp(backend, "cpu") && strcmp(backend, "cuda") && strcmp(backend, "all"))) {
        free(dirs);
        return usage();
    }
    ocn_report *rep = ocn_report_new();
    int status = 0, skipped = 0;
    for (int i = 0; i < ndirs && !status; i++) {
        ocn_error e = {0};
        ocn_fixture *f = NULL;
        int rc = ocn_fixture_read(dirs[i], &f, &e);
        for (int b = 0; !rc && b < nb; b++)
            for (int p = 0; !rc && p < np; p++) {
                rc = ocn_check_fixture(f, backends[b], precs[p], rep, &skipped, stdout, &e);
                if (rc == OCN_EUNSUPPORTED && !strcmp(backends[b], "cuda")) { /* no GPU backend in this build */
                    printf("SKIP  cuda/f%-9d %-28s %s\n", precs[p], f->game->name, ocn_error_message(&e));
                    skipped++;
                    rc = OCN_OK;
                }
            }
        ocn_fixture_free(f);
        if (rc) status = die(&e);
    }
    rep->skipped = skipped; /* the closing line says ", N skipped" */
    if (!status) status = finish_report(rep, json);
    ocn_report_free(rep);
    free(dirs);
    return status;
}

static int cmd_compare(int argc, char **argv)
{
    const char *json = NULL, *dirs[2] = {NULL, NULL};
    int nd = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (argv[i][0] == '-' || nd == 2) return usage();
        else dirs[nd++] = argv[i];
    }
    if (nd != 2) return usage();
    ocn_error e = {0};
    ocn_fixture *a = NULL, *b = NULL;
    ocn_report *rep = ocn_report_new();
    int rc = ocn_fixture_read(dirs[0], &a, &e);
    if (!rc) rc = ocn_fixture_read(dirs[1], &b, &e);
    if (!rc) rc = ocn_compare_fixtures(a, b, rep, stdout, &e);
    int status = rc ? die(&e) : finish_report(rep, json);
    ocn_fixture_free(a), ocn_fixture_free(b);
    ocn_report_free(rep);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "gen")) return cmd_gen(argc - 2, argv + 2);
    if (!strcmp(argv[1], "verify")) return cmd_fixtures(argc - 2, argv + 2, ocn_verify_fixture);
    if (!strcmp(argv[1], "theorems")) return cmd_fixtures(argc - 2, argv + 2, ocn_theorems_fixture);
    if (!strcmp(argv[1], "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(argv[1], "compare")) return cmd_compare(argc - 2, argv + 2);
    return usage();
}
