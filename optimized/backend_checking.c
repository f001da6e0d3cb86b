/* The checking backend (issue 11): the ops of an inner backend (the CPU one)
 * behind the contract of backend.h, checked.
 *
 * Every call is validated (precision, non-negative shapes, ld >= cols, a
 * pointer for every non-empty view, shapes that agree: C = op(A) op(B), square
 * factorisations, w and B of matching size).  Each operand is then staged in a
 * workspace buffer of exactly its view's extent — what a device backend must
 * copy, no more — with the same leading dimension, guard zones of GUARD
 * sentinel elements before and after, and the ld − cols gap of every row
 * filled with the sentinel too (a quiet NaN with a recognisable payload).  The
 * inner op runs on the staged views; afterwards the guards and gaps must be
 * intact (an over-write), inputs must be unchanged (an op writing a const
 * operand), and an output computed from finite inputs must be finite (an
 * over-read of a sentinel shows as NaN).  Results are copied back into the
 * caller's view, its rows x cols elements only.  A violation is reported in
 * the context's error with the op, the operand, the phase of the step and
 * the shapes — never an abort. */
#include "backend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 16 /* sentinel elements on each side of a staged operand */

static const uint64_t SENT64 = 0x7ff8dead0bad0c0dULL; /* quiet NaNs with a payload */
static const uint32_t SENT32 = 0x7fcdeadbU;

typedef struct {
    unsigned char *mem;
    size_t cap; /* bytes */
} wsbuf;

typedef struct {
    ocn_backend *inner;
    wsbuf ws[3];      /* the workspace: one staging buffer per operand slot, explicit sizes */
    char phase[96];
} chk;

static const char *phase_of(ocn_backend *b)
{
    chk *c = b->impl;
    return c->phase[0] ? c->phase : "(no phase)";
}

static int check_view(ocn_backend *b, const char *op, const char *nm, ocn_view v)
{
    if (v.rows < 0 || v.cols < 0)
        return ocn_backend_fail(b, "%s in phase '%s': view %s has a negative shape %d x %d", op, phase_of(b), nm,
                                v.rows, v.cols);
    if (ocn_view_extent(v) == 0) return 0;
    if (v.ld < v.cols || v.ld < 1)
        return ocn_backend_fail(b, "%s in phase '%s': view %s (%d x %d) has ld %d < cols", op, phase_of(b), nm, v.rows,
                                v.cols, v.ld);
    if (!v.p)
        return ocn_backend_fail(b, "%s in phase '%s': view %s (%d x %d) has no buffer", op, phase_of(b), nm, v.rows,
                                v.cols);
    return 0;
}

static size_t esz(int prec) { return prec == 64 ? 8 : 4; }

static void put_sent(unsigned char *p, int prec)
{
    if (prec == 64) memcpy(p, &SENT64, 8);
    else memcpy(p, &SENT32, 4);
}

static int is_sent(const unsigned char *p, int prec)
{
    return prec == 64 ? !memcmp(p, &SENT64, 8) : !memcmp(p, &SENT32, 4);
}

/* Stages view v in workspace slot k: [GUARD sentinels][extent, gaps = sentinel][GUARD sentinels].
 * Returns the staged view (p = slot memory, off = GUARD) or a view with p = NULL when out of memory. */
static ocn_view stage(chk *c, int k, int prec, ocn_view v)
{
    size_t e = esz(prec), ext = ocn_view_extent(v), need = (ext + 2 * GUARD) * e;
    wsbuf *w = &c->ws[k];
    if (w->cap < need) {
        unsigned char *m = realloc(w->mem, need);
        if (!m) return (ocn_view){NULL, 0, v.rows, v.cols, v.ld};
        w->mem = m, w->cap = need;
    }
    for (size_t i = 0; i < ext + 2 * GUARD; i++) put_sent(w->mem + i * e, prec);
    const unsigned char *src = (const unsigned char *)v.p + v.off * e;
    for (int i = 0; i < v.rows && ext; i++)
        memcpy(w->mem + (GUARD + (size_t)i * v.ld) * e, src + (size_t)i * v.ld * e, (size_t)v.cols * e);
    return (ocn_view){w->mem, GUARD, v.rows, v.cols, v.ld};
}

/* After the op: guards and gaps intact; for an input also every element unchanged. */
static int verify(ocn_backend *b, const char *op, const char *nm, int k, int prec, ocn_view v, int input)
{
    chk *c = b->impl;
    size_t e = esz(prec), ext = ocn_view_extent(v);
    const unsigned char *m = c->ws[k].mem;
    for (size_t i = 0; i < GUARD; i++) {
        if (!is_sent(m + i * e, prec))
            return ocn_backend_fail(b, "%s in phase '%s': wrote before view %s (%d x %d, ld %d): guard element -%zu "
                                       "overwritten",
                                    op, phase_of(b), nm, v.rows, v.cols, v.ld, GUARD - i);
        if (!is_sent(m + (GUARD + ext + i) * e, prec))
            return ocn_backend_fail(b, "%s in phase '%s': wrote past the end of view %s (%d x %d, ld %d, extent %zu): "
                                       "guard element +%zu overwritten",
                                    op, phase_of(b), nm, v.rows, v.cols, v.ld, ext, i);
    }
    for (int i = 0; i < v.rows && ext; i++)
        for (int j = v.cols; j < v.ld && (size_t)i * v.ld + j < ext; j++)
            if (!is_sent(m + (GUARD + (size_t)i * v.ld + j) * e, prec))
                return ocn_backend_fail(b, "%s in phase '%s': wrote into the ld gap of view %s (%d x %d, ld %d) at "
                                           "row %d, column %d",
                                        op, phase_of(b), nm, v.rows, v.cols, v.ld, i, j);
    if (input) {
        const unsigned char *src = (const unsigned char *)v.p + v.off * e;
        for (int i = 0; i < v.rows && ext; i++)
            if (memcmp(m + (GUARD + (size_t)i * v.ld) * e, src + (size_t)i * v.ld * e, (size_t)v.cols * e))
                return ocn_backend_fail(b, "%s in phase '%s': changed its input view %s (row %d)", op, phase_of(b), nm,
                                        i);
    }
    return 0;
}

static double elem(ocn_view v, int prec, int i, int j)
{
    size_t at = v.off + (size_t)i * v.ld + j;
    return prec == 64 ? ((const double *)v.p)[at] : (double)((const float *)v.p)[at];
}

static int all_finite(ocn_view v, int prec)
{
    for (int i = 0; i < v.rows; i++)
        for (int j = 0; j < v.cols; j++)
            if (!isfinite(elem(v, prec, i, j))) return 0;
    return 1;
}

/* An output computed from finite inputs is finite unless a sentinel was read. */
static int check_finite_out(ocn_backend *b, const char *op, const char *nm, ocn_view staged, int prec)
{
    for (int i = 0; i < staged.rows; i++)
        for (int j = 0; j < staged.cols; j++) {
            double x = elem(staged, prec, i, j);
            if (isnan(x))
                return ocn_backend_fail(b, "%s in phase '%s': NaN in output %s (%d x %d) at (%d, %d) from finite "
                                           "inputs: an over-read of a guard or ld-gap sentinel",
                                        op, phase_of(b), nm, staged.rows, staged.cols, i, j);
        }
    return 0;
}

static void copy_back(ocn_view dst, ocn_view staged, int prec)
{
    size_t e = esz(prec);
    if (!ocn_view_extent(dst)) return;
    for (int i = 0; i < dst.rows; i++)
        memcpy((unsigned char *)dst.p + (dst.off + (size_t)i * dst.ld) * e,
               (const unsigned char *)staged.p + (staged.off + (size_t)i * staged.ld) * e, (size_t)dst.cols * e);
}

static int prec_ok(ocn_backend *b, const char *op, int prec)
{
    if (prec == 32 || prec == 64) return 0;
    return ocn_backend_fail(b, "%s in phase '%s': precision %d (32 or 64)", op, phase_of(b), prec);
}

static int oom(ocn_backend *b, const char *op) { return ocn_backend_fail(b, "%s: out of memory staging operands", op); }

static int chk_gemm(ocn_backend *b, int prec, int ta, int tb, double alpha, ocn_view A, ocn_view B, double beta,
                    ocn_view C)
{
    chk *c = b->impl;
    const char *op = "gemm";
    if (prec_ok(b, op, prec) || check_view(b, op, "A", A) || check_view(b, op, "B", B) || check_view(b, op, "C", C))
        return OCN_BK_ECONTRACT;
    int m = C.rows, n = C.cols, k = ta ? A.rows : A.cols;
    int am = ta ? A.cols : A.rows, bk = tb ? B.cols : B.rows, bn = tb ? B.rows : B.cols;
    if (am != m || bk != k || bn != n)
        return ocn_backend_fail(b, "gemm in phase '%s': shapes disagree: op(A) %d x %d, op(B) %d x %d, C %d x %d",
                                phase_of(b), am, k, bk, bn, m, n);
    if (!isfinite(alpha) || !isfinite(beta))
        return ocn_backend_fail(b, "gemm in phase '%s': alpha %g, beta %g not finite", phase_of(b), alpha, beta);
    int fin = all_finite(A, prec) && all_finite(B, prec) && (beta == 0 || all_finite(C, prec));
    ocn_view sA = stage(c, 0, prec, A), sB = stage(c, 1, prec, B), sC = stage(c, 2, prec, C);
    if (!sA.p || !sB.p || !sC.p) return oom(b, op);
    int st = c->inner->gemm(c->inner, prec, ta, tb, alpha, sA, sB, beta, sC);
    if (c->inner->failed) return ocn_backend_fail(b, "inner %s", c->inner->err.msg);
    if (verify(b, op, "A", 0, prec, A, 1) || verify(b, op, "B", 1, prec, B, 1) || verify(b, op, "C", 2, prec, C, 0))
        return OCN_BK_ECONTRACT;
    if (fin && check_finite_out(b, op, "C", sC, prec)) return OCN_BK_ECONTRACT;
    copy_back(C, sC, prec);
    return st;
}

static int chk_syev(ocn_backend *b, int prec, ocn_view A, ocn_view w)
{
    chk *c = b->impl;
    const char *op = "syev";
    if (prec_ok(b, op, prec) || check_view(b, op, "A", A) || check_view(b, op, "w", w)) return OCN_BK_ECONTRACT;
    if (A.rows != A.cols || w.rows * w.cols != A.rows || (A.rows && w.rows != 1))
        return ocn_backend_fail(b, "syev in phase '%s': A %d x %d must be square and w 1 x %d (is %d x %d)",
                                phase_of(b), A.rows, A.cols, A.rows, w.rows, w.cols);
    int fin = all_finite(A, prec);
    ocn_view sA = stage(c, 0, prec, A), sw = stage(c, 1, prec, w);
    if (!sA.p || !sw.p) return oom(b, op);
    int st = c->inner->syev(c->inner, prec, sA, sw);
    if (c->inner->failed) return ocn_backend_fail(b, "inner %s", c->inner->err.msg);
    if (verify(b, op, "A", 0, prec, A, 0) || verify(b, op, "w", 1, prec, w, 0)) return OCN_BK_ECONTRACT;
    if (!st && fin && (check_finite_out(b, op, "A", sA, prec) || check_finite_out(b, op, "w", sw, prec)))
        return OCN_BK_ECONTRACT;
    copy_back(A, sA, prec), copy_back(w, sw, prec);
    return st;
}

static int chk_gesv(ocn_backend *b, int prec, ocn_view A, int *ipiv, ocn_view B)
{
    chk *c = b->impl;
    const char *op = "gesv";
    if (prec_ok(b, op, prec) || check_view(b, op, "A", A) || check_view(b, op, "B", B)) return OCN_BK_ECONTRACT;
    if (A.rows != A.cols || B.rows != A.rows || (A.rows && !ipiv))
        return ocn_backend_fail(b, "gesv in phase '%s': A %d x %d must be square, B %d x %d its rows, ipiv given",
                                phase_of(b), A.rows, A.cols, B.rows, B.cols);
    ocn_view sA = stage(c, 0, prec, A), sB = stage(c, 1, prec, B);
    if (!sA.p || !sB.p) return oom(b, op);
    int st = c->inner->gesv(c->inner, prec, sA, ipiv, sB);
    if (c->inner->failed) return ocn_backend_fail(b, "inner %s", c->inner->err.msg);
    if (verify(b, op, "A", 0, prec, A, 0) || verify(b, op, "B", 1, prec, B, 0)) return OCN_BK_ECONTRACT;
    copy_back(A, sA, prec), copy_back(B, sB, prec);
    return st;
}

static int chk_spdinv(ocn_backend *b, int prec, ocn_view A)
{
    chk *c = b->impl;
    const char *op = "spdinv";
    if (prec_ok(b, op, prec) || check_view(b, op, "A", A)) return OCN_BK_ECONTRACT;
    if (A.rows != A.cols)
        return ocn_backend_fail(b, "spdinv in phase '%s': A %d x %d must be square", phase_of(b), A.rows, A.cols);
    int fin = all_finite(A, prec);
    ocn_view sA = stage(c, 0, prec, A);
    if (!sA.p) return oom(b, op);
    int st = c->inner->spdinv(c->inner, prec, sA);
    if (c->inner->failed) return ocn_backend_fail(b, "inner %s", c->inner->err.msg);
    if (verify(b, op, "A", 0, prec, A, 0)) return OCN_BK_ECONTRACT;
    if (!st && fin && check_finite_out(b, op, "A", sA, prec)) return OCN_BK_ECONTRACT;
    if (!st) copy_back(A, sA, prec); /* a failed Cholesky leaves the caller's matrix as it was */
    return st;
}

static int chk_supports(const ocn_backend *b, ocn_op op, int prec)
{
    const chk *c = b->impl;
    return c->inner->supports(c->inner, op, prec);
}

static void chk_phase(ocn_backend *b, const char *name)
{
    chk *c = b->impl;
    snprintf(c->phase, sizeof c->phase, "%s", name ? name : "");
    if (c->inner->phase) c->inner->phase(c->inner, name);
}

static void chk_destroy(ocn_backend *b)
{
    chk *c = b->impl;
    for (int k = 0; k < 3; k++) free(c->ws[k].mem);
    ocn_backend_close(c->inner);
    free(c);
    free(b);
}

int ocn_backend_checking_new(ocn_backend *inner, ocn_backend **out, ocn_error *err)
{
    *out = NULL;
    ocn_backend *b = calloc(1, sizeof *b);
    chk *c = calloc(1, sizeof *c);
    if (!b || !c || !inner) {
        free(b), free(c);
        ocn_backend_close(inner);
        return ocn_fail(err, OCN_ENOMEM, "out of memory (checking backend)");
    }
    c->inner = inner;
    b->name = "checking", b->impl = c;
    b->supports = chk_supports, b->gemm = chk_gemm, b->syev = chk_syev, b->gesv = chk_gesv, b->spdinv = chk_spdinv;
    b->phase = chk_phase, b->destroy = chk_destroy;
    *out = b;
    return OCN_OK;
}
