/* make bench: the optimized CPU step against its own baselines, measured in
 * one run (ratios, never absolute claims from a unit test).
 *   DDP step   : FNE, kfac, terminal outer, blockdiag (feedback + value Hessian)
 *   KFAC step  : the same code path with no_feedback (no K, no value Hessian)
 *   SGD step   : sgd curvature, no_feedback (a plain back-propagation step)
 * MLP of depth 6, batch 128, widths 64..1024 (BENCH_MAX_WIDTH to go further),
 * f32 and f64; median of several repetitions; exponent of time vs width
 * (optimized, and the dense reference at the widths it can afford); peak
 * memory of the DDP step vs the KFAC step, each measured in its own child.
 * Amortised section (issue 12, SPEC §13): the same DDP and KFAC steps in
 * training conditions — statistics averaged with ρ = 0.95, factorisations
 * refreshed every T_r = 10 steps (ocn_opt_state) — mean over 20 steps, weight
 * decay 0 and 1e-4 reported separately.
 * Peer section (issue 11 item 4): where python3-torch is installed (optional,
 * never needed by make test), bench/torch_sgd.py times PyTorch's SGD step on
 * the same shapes in the same run; sgd/torch = ocnopt's SGD step over it. */
#include "ocn/game.h"
#include "ocn/optimized.h"
#include "ocn/reference.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEPTH 6
#define BATCH 128

void bench_cnn(void); /* bench/cnn.c: the CNN section (issue 14) */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static ocn_game *mlp(int width, int batch, const char *curv)
{
    char buf[8192];
    int k = snprintf(buf, sizeof buf,
                     "{\"name\": \"bench-w%d\", \"seed\": 1, \"batch\": %d, \"input_dim\": %d,"
                     " \"loss\": {\"kind\": \"ce\", \"classes\": 10}, \"weight_decay\": 1e-4, \"stages\": [",
                     width, batch, width);
    for (int l = 0; l < DEPTH; l++)
        k += snprintf(buf + k, sizeof buf - (size_t)k,
                      "%s{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": %d, \"act\": \"%s\"}]}",
                      l ? ", " : "", l == DEPTH - 1 ? 10 : width, l == DEPTH - 1 ? "identity" : "tanh");
    snprintf(buf + k, sizeof buf - (size_t)k,
             "], \"optimizer\": {\"game\": \"fne\", \"curvature\": \"%s\", \"value\": \"blockdiag\", \"terminal\": \"outer\","
             " \"lr\": 0.1, \"damping\": 0.01}}",
             curv);
    ocn_game *g = NULL;
    ocn_error e = {0};
    if (ocn_game_load_string(buf, "bench", &g, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        exit(2);
    }
    return g;
}

typedef enum { DDP, KFAC, SGD } mode_t2;

/* One step; returns seconds, or -1 on error (the peak-memory child). */
static double step(ocn_game *g, const ocn_arrayset *in, mode_t2 mode, int prec, int reference)
{
    ocn_optimizer o = g->opt;
    if (mode == SGD) o.curvature = OCN_CURV_SGD;
    /* lean: a training step, only θ_new handed back (as PyTorch's step hands back nothing) */
    ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .no_feedback = mode != DDP, .lean = 1};
    ocn_arrayset *out = ocn_arrayset_new();
    ocn_error e = {0};
    double t0 = now();
    int rc = reference ? ocn_ref_run(g, &o, in, NULL, out, &e) : ocn_opt_run(g, &o, in, &cfg, out, &e);
    double t = now() - t0;
    ocn_arrayset_free(out);
    if (rc) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return -1;
    }
    return t;
}

/* Mean seconds per step over `steps` stateful steps (§13: ρ = 0.95, T_r = 10). */
static double amortised_time(ocn_game *g, const ocn_arrayset *in, mode_t2 mode, int prec, int steps)
{
    ocn_optimizer o = g->opt;
    o.stat_decay = 0.95, o.refresh_every = 10, o.steps = steps;
    ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .no_feedback = mode != DDP, .lean = 1};
    ocn_opt_state *st = NULL;
    ocn_error e = {0};
    if (ocn_opt_state_new(g, &o, &cfg, &st, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return -1;
    }
    ocn_arrayset *out = ocn_arrayset_new(); /* reused, as a training loop does */
    double t0 = now();
    for (int s = 0; s < steps; s++) {
        int rc = ocn_opt_step(st, in, out, &e);
        if (rc) {
            fprintf(stderr, "bench: %s\n", e.msg);
            ocn_opt_state_free(st);
            ocn_arrayset_free(out);
            return -1;
        }
    }
    double t = (now() - t0) / steps;
    ocn_opt_state_free(st);
    ocn_arrayset_free(out);
    return t;
}

/* gemm% (issue 11): one fresh DDP step (a state's first step is the one-step
 * computation), its GEMM FLOPs over its wall time, over a large square SGEMM's rate. */
static double gemm_rate(int n)
{
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 0;
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = 1e-3f * (float)(i % 97);
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double t = now() - t0;
        if (r && t < best) best = t; /* the first is a warm-up */
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best;
}

static double ddp_gemm_fraction(ocn_game *g, const ocn_arrayset *in, double sgemm)
{
    ocn_opt_config cfg = {.backend = "cpu", .precision = 32, .lean = 1};
    ocn_opt_state *st = NULL;
    ocn_error e = {0};
    double best = 0;
    for (int r = 0; r < 3; r++) {
        if (ocn_opt_state_new(g, &g->opt, &cfg, &st, &e)) return 0;
        ocn_arrayset *out = ocn_arrayset_new();
        double t0 = now();
        int rc = ocn_opt_step(st, in, out, &e);
        double t = now() - t0, f = ocn_opt_state_gemm_flops(st);
        ocn_arrayset_free(out);
        ocn_opt_state_free(st);
        if (rc) return 0;
        if (r) best = fmax(best, f / t / sgemm); /* the first is a warm-up */
    }
    return best;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of `reps` steps after a warm-up.  The optimized steps run as a
 * training loop does: one ocn_opt_state (its workspace and output arrays reused,
 * issue 11 item 1) with ρ = 0 and T_r = 1, i.e. every step is the SPEC's
 * one-step computation (SPEC §13: bit-identical to ocn_opt_run). */
static double median_time(ocn_game *g, const ocn_arrayset *in, mode_t2 mode, int prec, int reps, int reference)
{
    double t[16];
    if (reference) {
        step(g, in, mode, prec, reference); /* warm-up */
        for (int r = 0; r < reps; r++) t[r] = step(g, in, mode, prec, reference);
    } else {
        ocn_optimizer o = g->opt;
        if (mode == SGD) o.curvature = OCN_CURV_SGD;
        o.stat_decay = 0, o.refresh_every = 1, o.steps = 1;
        ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .no_feedback = mode != DDP, .lean = 1};
        ocn_opt_state *st = NULL;
        ocn_arrayset *out = ocn_arrayset_new();
        ocn_error e = {0};
        if (ocn_opt_state_new(g, &o, &cfg, &st, &e) || ocn_opt_step(st, in, out, &e)) { /* warm-up */
            fprintf(stderr, "bench: %s\n", e.msg);
            exit(2);
        }
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            int rc = ocn_opt_step(st, in, out, &e);
            t[r] = now() - t0;
            if (rc) {
                fprintf(stderr, "bench: %s\n", e.msg);
                exit(2);
            }
        }
        ocn_opt_state_free(st);
        ocn_arrayset_free(out);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    return t[reps / 2];
}

/* Peak resident memory (KiB) of a child process that runs one step. */
static long peak_kib(ocn_game *g, const ocn_arrayset *in, mode_t2 mode, int prec)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(step(g, in, mode, prec, 0) < 0);
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) return -1;
    return ru.ru_maxrss;
}

static double fit_exponent(const int *w, const double *t, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        double x = log((double)w[i]), y = log(t[i]);
        sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

/* OpenBLAS picks its kernels from CPUID when it loads; on a virtual CPU whose
 * model it does not know (this project's machines: "Intel(R) Xeon(R)
 * Processor" with AVX-512) it falls back to Prescott, SSE3 kernels at a third
 * of the machine's SGEMM rate.  The bench then re-executes itself once with
 * OPENBLAS_CORETYPE set from the CPU's own flags — before OpenBLAS loads, so
 * for ocnopt and for the PyTorch peer it starts (same kernels on both sides)
 * — and prints the kernel set it ran with.  An explicit OPENBLAS_CORETYPE is
 * left as it is. */
char *openblas_get_corename(void);
static void choose_blas_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott")) return;
    __builtin_cpu_init();
    const char *want = __builtin_cpu_supports("avx512f") ? "SkylakeX" : __builtin_cpu_supports("avx2") ? "Haswell" : NULL;
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: run with what OpenBLAS chose */
}

int main(int argc, char **argv)
{
    (void)argc;
    choose_blas_kernels(argv);
    int maxw = getenv("BENCH_MAX_WIDTH") ? atoi(getenv("BENCH_MAX_WIDTH")) : 1024;
    int widths[8], nw = 0;
    for (int w = 64; w <= maxw && nw < 8; w *= 2) widths[nw++] = w;
    double la[3] = {0, 0, 0};
    if (getloadavg(la, 3) < 1) la[0] = -1;
    printf("ocnopt bench: MLP depth %d, batch %d, CPU backend, %ld cores online, load average %.2f at the start; "
           "OpenBLAS kernels %s%s; lean steps of one ocn_opt_state (only theta_new handed back, workspace reused); "
           "median of repetitions\n",
           DEPTH, BATCH, sysconf(_SC_NPROCESSORS_ONLN), la[0], openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? " (OPENBLAS_CORETYPE)" : "");
    printf("%-5s %6s %12s %12s %12s %9s %9s %10s\n", "prec", "width", "ddp_s", "kfac_s", "sgd_s", "ddp/kfac", "ddp/sgd", "mem ddp/kfac");
    double sum_kfac = 0, sum_sgd = 0, sum_mem = 0, sum_exp = 0, tsgd[2][8] = {{0}};
    for (int pi = 0; pi < 2; pi++) {
        int prec = pi ? 64 : 32;
        double tddp[8];
        for (int i = 0; i < nw; i++) {
            int w = widths[i], reps = w >= 512 ? 3 : 5;
            ocn_game *g = mlp(w, BATCH, "kfac");
            ocn_arrayset *in = ocn_arrayset_new();
            ocn_error e = {0};
            ocn_ref_init_inputs(g, in, &e);
            double td = median_time(g, in, DDP, prec, reps, 0), tk = median_time(g, in, KFAC, prec, reps, 0),
                   ts = median_time(g, in, SGD, prec, reps, 0);
            long md = peak_kib(g, in, DDP, prec), mk = peak_kib(g, in, KFAC, prec);
            tddp[i] = td;
            tsgd[pi][i] = ts;
            printf("f%-4d %6d %12.4f %12.4f %12.4f %9.3f %9.3f %10.3f\n", prec, w, td, tk, ts, td / tk, td / ts,
                   (double)md / (double)mk);
            fflush(stdout);
            if (prec == 32 && w == 1024) sum_kfac = td / tk, sum_sgd = td / ts, sum_mem = (double)md / (double)mk;
            ocn_arrayset_free(in);
            ocn_game_free(g);
        }
        double ex = fit_exponent(widths, tddp, nw);
        printf("f%d: fitted exponent of the optimized DDP step time vs width (%d..%d): %.3f\n", prec, widths[0],
               widths[nw - 1], ex);
        if (prec == 32) sum_exp = ex;
    }
    /* amortised (§13), f32: mean of 20 stateful steps, ρ = 0.95, T_r = 10 */
    double am_ratio = 0, am_exp = 0, tam[8], am_ddp1024 = 0;
    int namw = 0, amw[8];
    printf("amortised (SPEC 13: rho 0.95, refresh every 10, mean of 20 steps), f32\n");
    printf("%-5s %6s %8s %12s %12s %9s\n", "prec", "width", "wd", "ddp_s", "kfac_s", "ddp/kfac");
    for (int i = 0; i < nw; i++) {
        int w = widths[i];
        if (w < 256) continue;
        for (int k = 0; k < 2; k++) {
            ocn_game *g = mlp(w, BATCH, "kfac");
            g->weight_decay = k ? 1e-4 : 0;
            ocn_arrayset *in = ocn_arrayset_new();
            ocn_error e = {0};
            ocn_ref_init_inputs(g, in, &e);
            double td = amortised_time(g, in, DDP, 32, 20), tk = amortised_time(g, in, KFAC, 32, 20);
            printf("f%-4d %6d %8.0e %12.4f %12.4f %9.3f\n", 32, w, g->weight_decay, td, tk, td / tk);
            fflush(stdout);
            if (!k) amw[namw] = w, tam[namw++] = td;
            if (!k && w == 1024) am_ratio = td / tk, am_ddp1024 = td;
            ocn_arrayset_free(in);
            ocn_game_free(g);
        }
    }
    if (namw > 1) {
        am_exp = fit_exponent(amw, tam, namw);
        printf("amortised f32: fitted exponent of the DDP step time vs width (%d..%d): %.3f\n", amw[0], amw[namw - 1],
               am_exp);
    }
    /* gemm%: the DDP step's GEMM rate over a large square SGEMM's, width 1024 (or the widest), f32 */
    double gemm_pct = 0;
    {
        double sg = gemm_rate(2048);
        ocn_game *g = mlp(widths[nw - 1], BATCH, "kfac");
        ocn_arrayset *in = ocn_arrayset_new();
        ocn_error e = {0};
        ocn_ref_init_inputs(g, in, &e);
        gemm_pct = 100 * ddp_gemm_fraction(g, in, sg);
        printf("gemm%%: DDP step f32 width %d: its GEMM FLOPs / wall time = %.1f%% of a 2048^3 SGEMM (%.1f GFLOP/s)\n",
               widths[nw - 1], gemm_pct, sg / 1e9);
        ocn_arrayset_free(in);
        ocn_game_free(g);
    }
    /* peer: PyTorch's SGD step (forward, backward, update), same shapes, same run */
    double sgd_torch = 0, torch1024 = 0;
    const char *py = getenv("PYTHON") && *getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch' > /dev/null 2>&1", py);
    if (system(cmd) == 0) {
        int k = snprintf(cmd, sizeof cmd, "%s bench/torch_sgd.py", py);
        for (int i = 0; i < nw; i++)
            if (widths[i] >= 256) k += snprintf(cmd + k, sizeof cmd - (size_t)k, " %d", widths[i]);
        fflush(stdout);
        FILE *pp = popen(cmd, "r");
        char line[256];
        printf("peer: PyTorch SGD step (bench/torch_sgd.py), same shapes, this run\n");
        printf("%-5s %6s %12s %12s %10s\n", "prec", "width", "ocn_sgd_s", "torch_s", "sgd/torch");
        while (pp && fgets(line, sizeof line, pp)) {
            int pr = 0, w = 0;
            double tt = 0;
            if (sscanf(line, "torch f%d %d %lf", &pr, &w, &tt) != 3 || !(tt > 0)) continue;
            for (int i = 0; i < nw; i++)
                if (widths[i] == w) {
                    double ts = tsgd[pr == 64][i];
                    printf("f%-4d %6d %12.4f %12.4f %10.3f\n", pr, w, ts, tt, ts / tt);
                    if (pr == 32 && w == 1024) sgd_torch = ts / tt, torch1024 = tt;
                }
        }
        if (!pp || pclose(pp) != 0) printf("peer: bench/torch_sgd.py failed\n");
    } else {
        printf("peer: skipped (python3-torch not installed: apt-get install python3-torch)\n");
    }
    /* the dense reference, at the widths it can afford (its Q_θθ is m x m, m ≈ w²) */
    int rw[3] = {8, 16, 32};
    double rt[3];
    for (int i = 0; i < 3; i++) {
        ocn_game *g = mlp(rw[i], BATCH, "kfac");
        ocn_arrayset *in = ocn_arrayset_new();
        ocn_error e = {0};
        ocn_ref_init_inputs(g, in, &e);
        rt[i] = median_time(g, in, DDP, 64, 3, 1);
        printf("reference f64 width %d: %.4f s\n", rw[i], rt[i]);
        ocn_arrayset_free(in);
        ocn_game_free(g);
    }
    printf("reference: fitted exponent of step time vs width (8..32): %.3f\n", fit_exponent(rw, rt, 3));
    bench_cnn();
    if (maxw >= 1024) {
        /* issue 12 item 4: the amortised DDP step (f32, width 1024, wd 0) over PyTorch's SGD step, same run */
        char st_[32] = "n/a", at_[32] = "n/a";
        if (sgd_torch > 0) snprintf(st_, sizeof st_, "%.3f", sgd_torch);
        if (torch1024 > 0 && am_ddp1024 > 0) snprintf(at_, sizeof at_, "%.3f", am_ddp1024 / torch1024);
        printf("summary: ddp/kfac=%.3f ddp/sgd=%.3f exponent=%.3f mem=%.3f ddp_amort/kfac_amort=%.3f amort_exponent=%.3f "
               "sgd/torch=%s ddp_amort/torch_sgd=%s gemm%%=%.1f\n",
               sum_kfac, sum_sgd, sum_exp, sum_mem, am_ratio, am_exp, st_, at_, gemm_pct);
    }
    else
        printf("summary: (width 1024 not run: BENCH_MAX_WIDTH=%d)\n", maxw);
    return 0;
}
