/* make bench, CNN section (issue 14 item 5): the optimized path's SPEC §14
 * conv step (im2col forward, col2im Jᵀ, KFC factors) on a small CNN —
 * 3x16x16 → conv 3x3 `same` 16 → conv 3x3 stride 2 32 (8x8) → conv 3x3
 * stride 2 64 (4x4) → dense 10, ReLU, batch 128, cross-entropy, weight decay
 * 1e-4 — with the MLP section's three steps, measured in one run:
 *   DDP  : FNE, kfac (KFC), terminal outer, blockdiag (feedback + value Hessian)
 *   KFAC : the same path with no_feedback (no K, no value Hessian)
 *   SGD  : sgd curvature, no_feedback (a plain back-propagation step)
 * per step (a fresh state: the one-step computation, median of repetitions,
 * f32 and f64) and amortised (SPEC §13: ρ = 0.95, T_r = 10, mean of 20
 * stateful steps, f32); peak memory of DDP vs KFAC in children; and, where
 * python3-torch is installed (optional), PyTorch's conv2d SGD step on the
 * same shapes (bench/torch_cnn.py).  Ratios are what it reports: absolute
 * seconds move with the machine's load. */
#include "ocn/game.h"
#include "ocn/optimized.h"
#include "ocn/reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void bench_cnn(void);

static const char CNN_GAME[] =
    "{\"name\": \"bench-cnn\", \"seed\": 1, \"batch\": 128, \"input_dim\": 768,"
    " \"loss\": {\"kind\": \"ce\", \"classes\": 10}, \"weight_decay\": 1e-4, \"stages\": ["
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [3, 16, 16],"
    " \"out_channels\": 16, \"kernel\": 3, \"act\": \"relu\"}]},"
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [16, 16, 16],"
    " \"out_channels\": 32, \"kernel\": 3, \"stride\": 2, \"act\": \"relu\"}]},"
    "{\"players\": [{\"lane\": 0, \"kind\": \"conv\", \"in\": \"z\", \"out\": \"z\", \"in_shape\": [32, 8, 8],"
    " \"out_channels\": 64, \"kernel\": 3, \"stride\": 2, \"act\": \"relu\"}]},"
    "{\"players\": [{\"lane\": 0, \"kind\": \"dense\", \"in\": \"z\", \"out\": \"z\", \"out_dim\": 10, \"act\": \"identity\"}]}],"
    " \"optimizer\": {\"game\": \"fne\", \"curvature\": \"kfac\", \"value\": \"blockdiag\", \"terminal\": \"outer\","
    " \"lr\": 0.1, \"damping\": 0.01}}";

enum { C_DDP, C_KFAC, C_SGD };

static double cnow(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Mean seconds per step over `steps` steps of one §13 state (steps = 1: the
 * one-step computation); -1 on error (printed). */
static double cnn_steps(const ocn_game *g, const ocn_arrayset *in, int mode, int prec, int steps, double rho, int tr)
{
    ocn_optimizer o = g->opt;
    if (mode == C_SGD) o.curvature = OCN_CURV_SGD;
    o.stat_decay = rho, o.refresh_every = tr;
    /* lean: a training step, only θ_new handed back (as PyTorch's step hands back nothing) */
    ocn_opt_config cfg = {.backend = "cpu", .precision = prec, .no_feedback = mode != C_DDP, .lean = 1};
    ocn_opt_state *st = NULL;
    ocn_error e = {0};
    if (ocn_opt_state_new(g, &o, &cfg, &st, &e)) {
        fprintf(stderr, "bench cnn: %s\n", e.msg);
        return -1;
    }
    double t0 = cnow();
    int rc = 0;
    for (int s = 0; !rc && s < steps; s++) {
        ocn_arrayset *out = ocn_arrayset_new();
        rc = out ? ocn_opt_step(st, in, out, &e) : ocn_fail(&e, OCN_ENOMEM, "out of memory");
        ocn_arrayset_free(out);
    }
    double t = (cnow() - t0) / steps;
    ocn_opt_state_free(st);
    if (rc) fprintf(stderr, "bench cnn: %s\n", e.msg);
    return rc ? -1 : t;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double cnn_median(const ocn_game *g, const ocn_arrayset *in, int mode, int prec, int reps)
{
    double t[8];
    if (cnn_steps(g, in, mode, prec, 1, 0, 1) < 0) return -1; /* warm-up */
    for (int r = 0; r < reps; r++)
        if ((t[r] = cnn_steps(g, in, mode, prec, 1, 0, 1)) < 0) return -1;
    qsort(t, (size_t)reps, sizeof *t, dcmp);
    return t[reps / 2];
}

/* Peak resident memory (KiB) of a child that runs one step. */
static long cnn_peak_kib(const ocn_game *g, const ocn_arrayset *in, int mode, int prec)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(cnn_steps(g, in, mode, prec, 1, 0, 1) < 0);
    int st;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &st, 0, &ru) < 0) return -1;
    return ru.ru_maxrss;
}

void bench_cnn(void)
{
    ocn_game *g = NULL;
    ocn_error e = {0};
    ocn_arrayset *in = ocn_arrayset_new();
    if (!in || ocn_game_load_string(CNN_GAME, "bench-cnn", &g, &e) || ocn_ref_init_inputs(g, in, &e)) {
        printf("cnn: skipped (%s)\n", e.msg);
        ocn_game_free(g), ocn_arrayset_free(in);
        return;
    }
    printf("cnn (issue 14): 3x16x16 -> conv3x3 16 -> conv3x3/2 32 -> conv3x3/2 64 -> dense 10, relu, batch 128, "
           "%d parameters; lean steps, median of 3\n", ocn_game_nparams(g));
    printf("%-5s %12s %12s %12s %9s %9s %12s\n", "prec", "ddp_s", "kfac_s", "sgd_s", "ddp/kfac", "ddp/sgd", "mem ddp/kfac");
    double sgd32 = 0, r_kfac = 0, r_sgd = 0;
    for (int prec = 32; prec <= 64; prec += 32) {
        double td = cnn_median(g, in, C_DDP, prec, 3), tk = cnn_median(g, in, C_KFAC, prec, 3),
               ts = cnn_median(g, in, C_SGD, prec, 3);
        long md = cnn_peak_kib(g, in, C_DDP, prec), mk = cnn_peak_kib(g, in, C_KFAC, prec);
        if (td < 0 || tk < 0 || ts < 0) {
            printf("cnn: f%d step failed (above)\n", prec);
            continue;
        }
        printf("f%-4d %12.4f %12.4f %12.4f %9.3f %9.3f %12.3f\n", prec, td, tk, ts, td / tk, td / ts,
               md > 0 && mk > 0 ? (double)md / (double)mk : 0.0);
        fflush(stdout);
        if (prec == 32) sgd32 = ts, r_kfac = td / tk, r_sgd = td / ts;
    }
    /* amortised (§13): mean of 20 stateful steps, ρ = 0.95, T_r = 10, f32 */
    double ad = cnn_steps(g, in, C_DDP, 32, 20, 0.95, 10), ak = cnn_steps(g, in, C_KFAC, 32, 20, 0.95, 10),
           as = cnn_steps(g, in, C_SGD, 32, 20, 0.95, 10);
    double r_am = ad > 0 && ak > 0 ? ad / ak : 0, r_ams = ad > 0 && as > 0 ? ad / as : 0;
    printf("cnn amortised (SPEC 13: rho 0.95, refresh every 10, mean of 20 steps), f32: ddp %.4f s, kfac %.4f s, "
           "sgd %.4f s, ddp/kfac %.3f, ddp/sgd %.3f\n", ad, ak, as, r_am, r_ams);
    /* peer: PyTorch's conv2d SGD step on the same shapes, this run */
    double torch32 = 0;
    const char *py = getenv("PYTHON") && *getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch' > /dev/null 2>&1", py);
    if (system(cmd) == 0) {
        snprintf(cmd, sizeof cmd, "%s bench/torch_cnn.py", py);
        fflush(stdout);
        FILE *pp = popen(cmd, "r");
        char line[256];
        while (pp && fgets(line, sizeof line, pp)) {
            int pr = 0;
            double tt = 0;
            if (sscanf(line, "torch_cnn f%d %lf", &pr, &tt) == 2 && tt > 0 && pr == 32) torch32 = tt;
        }
        if (!pp || pclose(pp) != 0) printf("cnn peer: bench/torch_cnn.py failed\n");
        if (torch32 > 0)
            printf("cnn peer: PyTorch conv2d SGD step f32 %.4f s (bench/torch_cnn.py); ocn sgd/torch = %.3f, "
                   "ddp/torch = %.3f\n", torch32, sgd32 / torch32, sgd32 > 0 ? r_sgd * sgd32 / torch32 : 0.0);
    } else {
        printf("cnn peer: skipped (python3-torch not installed: apt-get install python3-torch)\n");
    }
    char tb[32] = "n/a", ta[32] = "n/a";
    if (torch32 > 0 && sgd32 > 0) snprintf(tb, sizeof tb, "%.3f", sgd32 / torch32);
    if (torch32 > 0 && ad > 0) snprintf(ta, sizeof ta, "%.3f", ad / torch32);
    printf("cnn summary: ddp/kfac=%.3f ddp/sgd=%.3f ddp_amort/kfac_amort=%.3f ddp_amort/sgd_amort=%.3f sgd/torch=%s "
           "ddp_amort/torch_sgd=%s\n", r_kfac, r_sgd, r_am, r_ams, tb, ta);
    ocn_arrayset_free(in);
    ocn_game_free(g);
}
