/* Op-level backend tests (issue 11, in the spirit of ggml's test-backend-ops):
 * every op of every available backend against an independent computation
 * and against the CPU backend, on random shapes including ld > cols,
 * sub-views at offsets, zero-size and 1 x 1, with sentinel guard zones
 * around every buffer and in every ld gap checked after each op; and the
 * checking backend catching deliberately wrong ops (over-write, over-read,
 * ld-gap write, a changed input, a shape mismatch) with a clear message,
 * also through a whole optimizer step.  Tolerances: the §10 verdict (ratio <
 * 30) with c the op's standard error growth (k for a k-term dot product, n
 * for an n x n factorisation), normwise. */
#include "util.h"
#include "../optimized/opt.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define TGUARD 8
#define SENTB 0xA5 /* test-side sentinel byte (a NaN-free pattern: 0xA5A5… is a finite negative number) */

typedef struct {
    unsigned char *mem;
    size_t total; /* elements */
    ocn_view v;
    int prec;
} tbuf;

static uint64_t rng = 88172645463325252ULL;
static double urand(void) /* xorshift64, uniform in [-1, 1) */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}
static int irand(int n) { return (int)((urand() + 1) / 2 * n) % (n > 0 ? n : 1); }

static size_t esz(int prec) { return prec == 64 ? 8 : 4; }

/* A rows x cols view at element offset `off` with leading dimension ld in a
 * buffer with TGUARD sentinel elements before and after; gaps are sentinel. */
static tbuf tb_new(int prec, int rows, int cols, int ld, int off)
{
    tbuf b = {0};
    b.prec = prec;
    size_t ext = ocn_view_extent((ocn_view){NULL, 0, rows, cols, ld});
    b.total = TGUARD + (size_t)off + ext + TGUARD;
    b.mem = malloc(b.total * esz(prec));
    memset(b.mem, SENTB, b.total * esz(prec));
    b.v = (ocn_view){b.mem, TGUARD + (size_t)off, rows, cols, ld};
    return b;
}
static double tb_get(const tbuf *b, int i, int j)
{
    size_t at = b->v.off + (size_t)i * b->v.ld + j;
    return b->prec == 64 ? ((double *)b->mem)[at] : (double)((float *)b->mem)[at];
}
static void tb_set(tbuf *b, int i, int j, double x)
{
    size_t at = b->v.off + (size_t)i * b->v.ld + j;
    if (b->prec == 64) ((double *)b->mem)[at] = x;
    else ((float *)b->mem)[at] = (float)x;
}
static void tb_fill(tbuf *b)
{
    for (int i = 0; i < b->v.rows; i++)
        for (int j = 0; j < b->v.cols; j++) tb_set(b, i, j, urand());
}
/* Every element outside the view's rows x cols is still the sentinel. */
static int tb_guards_ok(const tbuf *b)
{
    size_t e = esz(b->prec);
    for (size_t k = 0; k < b->total; k++) {
        int inside = 0;
        if (k >= b->v.off && b->v.rows > 0 && b->v.cols > 0) {
            size_t r = (k - b->v.off) / (size_t)b->v.ld, c = (k - b->v.off) % (size_t)b->v.ld;
            inside = r < (size_t)b->v.rows && c < (size_t)b->v.cols;
        }
        if (inside) continue;
        for (size_t q = 0; q < e; q++)
            if (b->mem[k * e + q] != SENTB) return 0;
    }
    return 1;
}
static tbuf tb_copy(const tbuf *b)
{
    tbuf c = *b;
    c.mem = malloc(b->total * esz(b->prec));
    memcpy(c.mem, b->mem, b->total * esz(b->prec));
    c.v.p = c.mem;
    return c;
}
static void tb_free(tbuf *b) { free(b->mem); }

static double uroundoff(int prec) { return prec == 64 ? OCN_U64 : OCN_U32; }

/* The backends to test: every registered one that opens here (cuda skips with its reason). */
static int open_all(ocn_backend **bks, int max)
{
    int n = 0;
    for (const char *const *nm = ocn_backend_names(); *nm && n < max; nm++) {
        ocn_error e = {0};
        ocn_backend *b = NULL;
        if (ocn_backend_open(*nm, &b, &e)) {
            fprintf(stderr, "backend %s not tested here: %s\n", *nm, e.msg);
            continue;
        }
        bks[n++] = b;
    }
    return n;
}

static const int DIMS[] = {0, 1, 1, 2, 3, 5, 8, 13};
#define NDIMS ((int)(sizeof DIMS / sizeof *DIMS))

static int rdim(void) { return DIMS[irand(NDIMS)]; }
static int rld(int cols) { return cols + (irand(3) == 0 ? 0 : 1 + irand(4)); } /* ld > cols two times in three */

Test(backend_ops, gemm_every_backend_random_views)
{
    ocn_backend *bks[4], *cpu = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_backend_cpu_new(&cpu, &e), OCN_OK);
    int nb = open_all(bks, 4), cases = 0;
    cr_assert_geq(nb, 2, "cpu and checking at least");
    for (int trial = 0; trial < 400; trial++)
        for (int prec = 32; prec <= 64; prec += 32) {
            int m = rdim(), n = rdim(), k = rdim(), ta = irand(2), tb = irand(2);
            int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
            double alpha = irand(2) ? 1 : -0.7, beta = (double[]){0, 1, 0.5}[irand(3)];
            tbuf A = tb_new(prec, ar, ac, rld(ac), irand(5)), B = tb_new(prec, br, bc, rld(bc), irand(5));
            tbuf C = tb_new(prec, m, n, rld(n), irand(5));
            tb_fill(&A), tb_fill(&B), tb_fill(&C);
            /* independent: double sums, and the scale of the standard bound */
            double ref[13 * 13], scale = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0, sa = 0;
                    for (int l = 0; l < k; l++) {
                        double a = ta ? tb_get(&A, l, i) : tb_get(&A, i, l), b = tb_get(&B, tb ? j : l, tb ? l : j);
                        s += a * b, sa += fabs(a * b);
                    }
                    ref[i * n + j] = alpha * s + beta * tb_get(&C, i, j);
                    double sc = fabs(alpha) * sa + fabs(beta * tb_get(&C, i, j));
                    scale += sc * sc;
                }
            scale = sqrt(scale);
            tbuf cpuC = tb_copy(&C);
            cpu->gemm(cpu, prec, ta, tb, alpha, A.v, B.v, beta, cpuC.v);
            for (int q = 0; q < nb; q++) {
                tbuf Cq = tb_copy(&C), Aq = tb_copy(&A), Bq = tb_copy(&B);
                int st = bks[q]->gemm(bks[q], prec, ta, tb, alpha, Aq.v, Bq.v, beta, Cq.v);
                cr_assert_eq(st, 0, "%s gemm: %s", bks[q]->name, bks[q]->err.msg);
                cr_assert(!bks[q]->failed, "%s: %s", bks[q]->name, bks[q]->err.msg);
                cr_assert(tb_guards_ok(&Cq) && tb_guards_ok(&Aq) && tb_guards_ok(&Bq),
                          "%s gemm f%d %dx%dx%d: a guard or ld gap was written", bks[q]->name, prec, m, n, k);
                cr_assert(!memcmp(Aq.mem, A.mem, A.total * esz(prec)) && !memcmp(Bq.mem, B.mem, B.total * esz(prec)),
                          "%s gemm: inputs unchanged", bks[q]->name);
                double err = 0, dc = 0;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double x = tb_get(&Cq, i, j);
                        err += (x - ref[i * n + j]) * (x - ref[i * n + j]);
                        dc += (x - tb_get(&cpuC, i, j)) * (x - tb_get(&cpuC, i, j));
                    }
                double c = k > 1 ? k : 1, u = uroundoff(prec);
                cr_expect_lt(sqrt(err) / (u * c * fmax(scale, 1e-300)), 30, "%s gemm f%d %dx%dx%d ta%d tb%d vs exact",
                             bks[q]->name, prec, m, n, k, ta, tb);
                cr_expect_lt(sqrt(dc) / (u * c * fmax(scale, 1e-300)), 30, "%s gemm vs cpu", bks[q]->name);
                tb_free(&Cq), tb_free(&Aq), tb_free(&Bq);
                cases++;
            }
            tb_free(&cpuC), tb_free(&A), tb_free(&B), tb_free(&C);
        }
    cr_expect_gt(cases, 1500);
    for (int q = 0; q < nb; q++) ocn_backend_close(bks[q]);
    ocn_backend_close(cpu);
}

/* Random symmetric (spd: R Rᵀ + n I) or general well-conditioned (R + n I) n x n. */
static void fill_square(tbuf *A, int kind)
{
    int n = A->v.rows;
    double R[13 * 13];
    for (int i = 0; i < n * n; i++) R[i] = urand();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double x = 0;
            if (kind == 0) x = (R[i * n + j] + R[j * n + i]) / 2; /* symmetric */
            if (kind == 1)
                for (int l = 0; l < n; l++) x += R[i * n + l] * R[j * n + l];
            if (kind == 2) x = R[i * n + j];
            if (kind && i == j) x += n;
            tb_set(A, i, j, x);
        }
}

static double fnorm(const tbuf *A)
{
    double s = 0;
    for (int i = 0; i < A->v.rows; i++)
        for (int j = 0; j < A->v.cols; j++) s += tb_get(A, i, j) * tb_get(A, i, j);
    return sqrt(s);
}

Test(backend_ops, factorisations_every_backend_random_views)
{
    ocn_backend *bks[4], *cpu = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_backend_cpu_new(&cpu, &e), OCN_OK);
    int nb = open_all(bks, 4), cases = 0;
    for (int trial = 0; trial < 60; trial++)
        for (int prec = 32; prec <= 64; prec += 32)
            for (int q = 0; q < nb; q++) {
                int n = rdim(), nrhs = rdim();
                double u = uroundoff(prec), c = n > 1 ? n : 1;
                /* syev: A V = V diag(w), Vᵀ V = I, w ascending and as the cpu backend's */
                tbuf A = tb_new(prec, n, n, rld(n), irand(5)), w = tb_new(prec, n ? 1 : 0, n, rld(n), irand(5));
                fill_square(&A, 0);
                tbuf A0 = tb_copy(&A), Ac = tb_copy(&A), wc = tb_copy(&w);
                int st = bks[q]->syev(bks[q], prec, A.v, w.v);
                cr_assert_eq(st, 0, "%s syev n=%d: %s", bks[q]->name, n, bks[q]->err.msg);
                cr_assert(tb_guards_ok(&A) && tb_guards_ok(&w), "%s syev: guards", bks[q]->name);
                cpu->syev(cpu, prec, Ac.v, wc.v);
                double res = 0, orth = 0, dw = 0, na = fnorm(&A0);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) {
                        double av = 0, vv = 0;
                        for (int l = 0; l < n; l++) av += tb_get(&A0, i, l) * tb_get(&A, l, j), vv += tb_get(&A, l, i) * tb_get(&A, l, j);
                        double r = av - tb_get(&A, i, j) * tb_get(&w, 0, j);
                        res += r * r, orth += (vv - (i == j)) * (vv - (i == j));
                    }
                for (int j = 0; j < n; j++) {
                    dw += pow(tb_get(&w, 0, j) - tb_get(&wc, 0, j), 2);
                    if (j) cr_expect_leq(tb_get(&w, 0, j - 1), tb_get(&w, 0, j), "ascending");
                }
                cr_expect_lt(sqrt(res) / (u * c * fmax(na, 1e-300)), 30, "%s syev f%d n=%d residual", bks[q]->name, prec, n);
                cr_expect_lt(sqrt(orth) / (u * c), 30, "%s syev orthogonality", bks[q]->name);
                cr_expect_lt(sqrt(dw) / (u * c * fmax(na, 1e-300)), 30, "%s syev eigenvalues vs cpu", bks[q]->name);
                tb_free(&A), tb_free(&w), tb_free(&A0), tb_free(&Ac), tb_free(&wc);
                /* gesv: A X = B */
                tbuf G = tb_new(prec, n, n, rld(n), irand(5)), Bm = tb_new(prec, n, nrhs, rld(nrhs), irand(5));
                fill_square(&G, 2), tb_fill(&Bm);
                tbuf G0 = tb_copy(&G), B0 = tb_copy(&Bm);
                int ipiv[16];
                st = bks[q]->gesv(bks[q], prec, G.v, ipiv, Bm.v);
                cr_assert_eq(st, 0, "%s gesv: %s", bks[q]->name, bks[q]->err.msg);
                cr_assert(tb_guards_ok(&G) && tb_guards_ok(&Bm), "%s gesv: guards", bks[q]->name);
                double r2 = 0, nx = fnorm(&Bm);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < nrhs; j++) {
                        double s = -tb_get(&B0, i, j);
                        for (int l = 0; l < n; l++) s += tb_get(&G0, i, l) * tb_get(&Bm, l, j);
                        r2 += s * s;
                    }
                if (n && nrhs)
                    cr_expect_lt(sqrt(r2) / (u * c * fnorm(&G0) * fmax(nx, 1e-300)), 30, "%s gesv f%d n=%d residual",
                                 bks[q]->name, prec, n);
                tb_free(&G), tb_free(&Bm), tb_free(&G0), tb_free(&B0);
                /* spdinv: A X = I */
                tbuf S = tb_new(prec, n, n, rld(n), irand(5));
                fill_square(&S, 1);
                tbuf S0 = tb_copy(&S);
                st = bks[q]->spdinv(bks[q], prec, S.v);
                cr_assert_eq(st, 0, "%s spdinv: %s", bks[q]->name, bks[q]->err.msg);
                cr_assert(tb_guards_ok(&S), "%s spdinv: guards", bks[q]->name);
                double r3 = 0;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) {
                        double s = -(double)(i == j);
                        for (int l = 0; l < n; l++) s += tb_get(&S0, i, l) * tb_get(&S, l, j);
                        r3 += s * s;
                    }
                if (n) cr_expect_lt(sqrt(r3) / (u * c * fnorm(&S0) * fnorm(&S)), 30, "%s spdinv f%d n=%d", bks[q]->name, prec, n);
                tb_free(&S), tb_free(&S0);
                cases++;
            }
    cr_expect_gt(cases, 200);
    for (int q = 0; q < nb; q++) ocn_backend_close(bks[q]);
    ocn_backend_close(cpu);
}

/* ---- deliberately wrong ops behind the checking backend ---- */

enum { BUG_OVERWRITE, BUG_OVERREAD, BUG_GAPWRITE, BUG_INPUT, BUG_NONE };
typedef struct {
    int bug;
} badimpl;

static int bad_gemm(ocn_backend *b, int prec, int ta, int tb, double alpha, ocn_view A, ocn_view B, double beta,
                    ocn_view C)
{
    ocn_backend *cpu = NULL;
    ocn_error e = {0};
    ocn_backend_cpu_new(&cpu, &e);
    int st = cpu->gemm(cpu, prec, ta, tb, alpha, A, B, beta, C);
    ocn_backend_close(cpu);
    int bug = ((badimpl *)b->impl)->bug;
    size_t ext = ocn_view_extent(C), aext = ocn_view_extent(A);
    double *cd = (double *)C.p + C.off;
    float *cf = (float *)C.p + C.off;
    if (bug == BUG_OVERWRITE && ext) { /* one element past the end of C (a rows x ld copy back) */
        if (prec == 64) cd[ext] = 0;
        else cf[ext] = 0;
    }
    if (bug == BUG_OVERREAD && ext && aext) { /* reads A[extent]: a rows x ld upload */
        double x = prec == 64 ? ((double *)A.p + A.off)[aext] : ((float *)A.p + A.off)[aext];
        if (prec == 64) cd[0] += 0 * x;
        else cf[0] += 0 * (float)x;
    }
    if (bug == BUG_GAPWRITE && ext && C.ld > C.cols && C.rows > 1) { /* writes the ld gap (a packed copy) */
        if (prec == 64) cd[C.cols] = 0;
        else cf[C.cols] = 0;
    }
    if (bug == BUG_INPUT && aext) { /* scribbles on its const input */
        if (prec == 64) ((double *)A.p + A.off)[0] += 1;
        else ((float *)A.p + A.off)[0] += 1;
    }
    return st;
}

static int bad_supports(const ocn_backend *b, ocn_op op, int prec) { (void)b, (void)op, (void)prec; return 1; }
static int good_syev(ocn_backend *b, int prec, ocn_view A, ocn_view w)
{
    (void)b;
    ocn_backend *cpu = NULL;
    ocn_error e = {0};
    ocn_backend_cpu_new(&cpu, &e);
    int st = cpu->syev(cpu, prec, A, w);
    ocn_backend_close(cpu);
    return st;
}
static int good_gesv(ocn_backend *b, int prec, ocn_view A, int *ipiv, ocn_view B)
{
    (void)b;
    ocn_backend *cpu = NULL;
    ocn_error e = {0};
    ocn_backend_cpu_new(&cpu, &e);
    int st = cpu->gesv(cpu, prec, A, ipiv, B);
    ocn_backend_close(cpu);
    return st;
}
static int good_spdinv(ocn_backend *b, int prec, ocn_view A)
{
    (void)b;
    ocn_backend *cpu = NULL;
    ocn_error e = {0};
    ocn_backend_cpu_new(&cpu, &e);
    int st = cpu->spdinv(cpu, prec, A);
    ocn_backend_close(cpu);
    return st;
}
static void bad_destroy(ocn_backend *b)
{
    free(b->impl);
    free(b);
}

static ocn_backend *checking_over_bad(int bug)
{
    ocn_backend *in = calloc(1, sizeof *in), *chk = NULL;
    badimpl *bi = calloc(1, sizeof *bi);
    bi->bug = bug;
    in->name = "bad", in->impl = bi;
    in->supports = bad_supports, in->gemm = bad_gemm, in->syev = good_syev, in->gesv = good_gesv;
    in->spdinv = good_spdinv, in->destroy = bad_destroy;
    ocn_error e = {0};
    cr_assert_eq(ocn_backend_checking_new(in, &chk, &e), OCN_OK);
    return chk;
}

Test(backend_ops, checking_backend_catches_wrong_ops)
{
    static const struct { int bug; const char *want; } cases[] = {
        {BUG_OVERWRITE, "wrote past the end of view C"},
        {BUG_OVERREAD, "over-read"},
        {BUG_GAPWRITE, "ld gap of view C"},
        {BUG_INPUT, "changed its input view A"},
    };
    for (int prec = 32; prec <= 64; prec += 32)
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            ocn_backend *b = checking_over_bad(cases[k].bug);
            b->phase(b, "unit test");
            tbuf A = tb_new(prec, 3, 4, 6, 2), B = tb_new(prec, 4, 5, 5, 1), C = tb_new(prec, 3, 5, 7, 3);
            tb_fill(&A), tb_fill(&B), tb_fill(&C);
            tbuf C0 = tb_copy(&C);
            int st = b->gemm(b, prec, 0, 0, 1, A.v, B.v, 0, C.v);
            cr_expect_eq(st, OCN_BK_ECONTRACT, "bug %d f%d caught", cases[k].bug, prec);
            cr_expect(b->failed && strstr(b->err.msg, cases[k].want) && strstr(b->err.msg, "unit test"),
                      "message names the fault and the phase: %s", b->err.msg);
            /* the caller's buffers are untouched by the faulty op (it ran on staged copies) */
            cr_expect(tb_guards_ok(&C) && tb_guards_ok(&A), "the caller's guards survive");
            cr_expect(!memcmp(C.mem, C0.mem, C.total * esz(prec)), "a caught op does not hand back its result");
            tb_free(&A), tb_free(&B), tb_free(&C), tb_free(&C0);
            ocn_backend_close(b);
        }
    /* a correct inner op passes the same checks */
    ocn_backend *b = checking_over_bad(BUG_NONE);
    tbuf A = tb_new(64, 3, 4, 6, 2), B = tb_new(64, 4, 5, 5, 1), C = tb_new(64, 3, 5, 7, 3);
    tb_fill(&A), tb_fill(&B), tb_fill(&C);
    cr_expect_eq(b->gemm(b, 64, 0, 0, 1, A.v, B.v, 0, C.v), 0, "%s", b->err.msg);
    /* contract violations of the call itself: shapes, ld, precision */
    cr_expect_eq(b->gemm(b, 64, 1, 0, 1, A.v, B.v, 0, C.v), OCN_BK_ECONTRACT);
    cr_expect(strstr(b->err.msg, "shapes disagree") != NULL, "%s", b->err.msg);
    ocn_backend_close(b);
    b = checking_over_bad(BUG_NONE);
    ocn_view bad = C.v;
    bad.ld = 2;
    cr_expect_eq(b->gemm(b, 64, 0, 0, 1, A.v, B.v, 0, bad), OCN_BK_ECONTRACT);
    cr_expect(strstr(b->err.msg, "ld 2 < cols") != NULL, "%s", b->err.msg);
    ocn_backend_close(b);
    b = checking_over_bad(BUG_NONE);
    cr_expect_eq(b->spdinv(b, 16, C.v), OCN_BK_ECONTRACT);
    cr_expect(strstr(b->err.msg, "precision 16") != NULL, "%s", b->err.msg);
    ocn_backend_close(b);
    tb_free(&A), tb_free(&B), tb_free(&C);
}

/* A whole step through the checking backend over a faulty GEMM: the step
 * fails with the backend's message naming the phase (never a wrong number);
 * over a correct one it is bit-identical to the cpu backend. */
Test(backend_ops, whole_step_through_the_checking_backend)
{
    ocn_error e = {0};
    ocn_fixture *f = NULL;
    cr_assert_eq(ocn_fixture_read("fixtures/mlp-relu-mse-kfac", &f, &e), OCN_OK, "%s", e.msg);
    ocn_opt_config cfg = {.backend = "cpu", .precision = 64, .form_limit = 1 << 20};
    static const int bugs[] = {BUG_OVERWRITE, BUG_OVERREAD, BUG_INPUT, BUG_NONE};
    for (size_t kb = 0; kb < sizeof bugs / sizeof *bugs; kb++) {
        int bug = bugs[kb];
        ocn_backend *b = checking_over_bad(bug);
        ocn_arrayset *out = ocn_arrayset_new();
        ocn_ws *ws = NULL;
        cr_assert_eq(ocn_opt_ws_new(f->game, &f->game->opt, &cfg, &ws, &e), OCN_OK, "%s", e.msg);
        int rc = ocn_opt_run_f64(f->game, &f->game->opt, f->arrays, &cfg, b, ws, NULL, out, &e);
        ocn_ws_free(ws);
        rc = ocn_opt_backend_status(b, rc, &e);
        if (bug == BUG_NONE) {
            cr_expect_eq(rc, OCN_OK, "%s", e.msg);
            ocn_arrayset *ref = ocn_arrayset_new();
            cr_assert_eq(ocn_opt_run(f->game, &f->game->opt, f->arrays, &cfg, ref, &e), OCN_OK);
            cr_assert_eq(ref->count, out->count);
            for (int i = 0; i < ref->count; i++) {
                const ocn_array *y = ocn_arrayset_find(out, ref->a[i].name);
                cr_assert(y && !memcmp(y->data, ref->a[i].data, y->size * sizeof(double)), "'%s' identical",
                          ref->a[i].name);
            }
            ocn_arrayset_free(ref);
        } else {
            cr_expect_eq(rc, OCN_ENUMERIC, "bug %d: the step fails", bug);
            cr_expect(strstr(e.msg, "backend 'checking'") && strstr(e.msg, "phase '"), "%s", e.msg);
        }
        ocn_arrayset_free(out);
        ocn_backend_close(b);
    }
    ocn_fixture_free(f);
}

/* OpenBLAS 0.3.21 (Prescott kernels, one thread) overwrites its stack in
 * spotri with column-major 'L' for every odd n >= 133: the cpu backend's
 * spdinv must not go there (docs/decisions.md).  A symmetric positive definite
 * float32 matrix of odd sizes up to 171 (and some even ones), one thread,
 * inverted in place; the product with the original must be the identity to
 * float32 accuracy, and the f64 inverse agrees.  Fails before (SIGSEGV). */
extern void openblas_set_num_threads(int) __attribute__((weak));
Test(backend_ops, spdinv_float32_odd_sizes_one_thread)
{
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    ocn_backend *b = NULL;
    ocn_error e = {0};
    cr_assert_eq(ocn_backend_cpu_new(&b, &e), OCN_OK, "%s", e.msg);
    static const int ns[] = {131, 133, 134, 135, 151, 171};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        int n = ns[k], ld = n + (k % 2); /* ld > n too */
        float *a = calloc((size_t)n * ld, sizeof *a), *a0 = calloc((size_t)n * ld, sizeof *a0);
        double *d = calloc((size_t)n * n, sizeof *d), *r = calloc((size_t)n * n, sizeof *r);
        cr_assert(a && a0 && d && r);
        for (int i = 0; i < n * n; i++) r[i] = urand();
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int q = 0; q < n; q++) s += r[i * n + q] * r[j * n + q];
                a[i * ld + j] = a0[i * ld + j] = (float)(s / n + (i == j));
            }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) d[i * n + j] = a0[i * ld + j];
        cr_assert_eq(b->spdinv(b, 32, ocn_view_of(a, n, n, ld)), 0, "n = %d", n);
        cr_assert_eq(b->spdinv(b, 64, ocn_view_of(d, n, n, n)), 0, "n = %d (f64)", n);
        double worst = 0, wd = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int q = 0; q < n; q++) s += (double)a0[i * ld + q] * a[q * ld + j];
                worst = fmax(worst, fabs(s - (i == j)));
                wd = fmax(wd, fabs((double)a[i * ld + j] - d[i * n + j]) / fabs(d[i * n + i]));
            }
        /* κ of R Rᵀ/n + I is a few units: float32 errors ~ n·ε₃₂ */
        cr_expect_lt(worst, 1e-3, "n = %d: |A A⁻¹ − I| = %g", n, worst);
        cr_expect_lt(wd, 1e-4, "n = %d: f32 vs f64 inverse %g", n, wd);
        free(a), free(a0), free(d), free(r);
    }
    ocn_backend_close(b);
    if (openblas_set_num_threads) openblas_set_num_threads(2);
}
