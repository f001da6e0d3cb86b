/* The step's workspace: one planned buffer, a double-ended stack (see
 * workspace.h for the contract and why). */
#include "workspace.h"
#include "ocn/memory.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64

typedef struct blk {
    struct blk *next;
} blk;

struct ocn_ws {
    unsigned char *buf;
    size_t cap;      /* bytes of buf (the plan, or the last step's peak when it needed more) */
    size_t lo, hi;   /* keep: [0, lo); tmp: [hi, cap) */
    size_t peak;     /* max of lo + (cap − hi) this step */
    size_t over;     /* bytes taken from extra blocks this step */
    size_t want;     /* the buffer the next step needs (grown after an overflow) */
    blk *extra;
    long fail_at, count;
    jmp_buf *jb;
    ocn_error err;
};

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* Counts one allocation; 1 if the test-only countdown makes it fail. */
static int injected(ocn_ws *ws) { return ++ws->count == ws->fail_at; }

static unsigned char *buffer(size_t bytes) { return bytes ? aligned_alloc(ALIGN, round_up(bytes)) : NULL; }

int ocn_ws_new(size_t plan, long fail_at, ocn_ws **out, ocn_error *err)
{
    *out = NULL;
    char b[32];
    plan = round_up(plan);
    if (fail_at == 1) /* tests: the first counted allocation is the workspace itself */
        return ocn_fail(err, OCN_ENOMEM, "out of memory: the step's workspace (%s, planned from the game)",
                        ocn_format_bytes((double)plan, b, sizeof b));
    ocn_ws *ws = calloc(1, sizeof *ws);
    if (ws) ws->buf = buffer(plan);
    if (!ws || (plan && !ws->buf)) {
        free(ws);
        return ocn_fail(err, OCN_ENOMEM, "out of memory: the step's workspace (%s, planned from the game)",
                        ocn_format_bytes((double)plan, b, sizeof b));
    }
    ws->cap = ws->want = plan, ws->hi = plan;
    ws->fail_at = fail_at, ws->count = 1;
    *out = ws;
    return OCN_OK;
}

static void free_extra(ocn_ws *ws)
{
    while (ws->extra) {
        blk *n = ws->extra->next;
        free(ws->extra);
        ws->extra = n;
    }
}

void ocn_ws_free(ocn_ws *ws)
{
    if (!ws) return;
    free_extra(ws);
    free(ws->buf);
    free(ws);
}

int ocn_ws_begin(ocn_ws *ws, jmp_buf *jb, ocn_error *err)
{
    char b[32];
    if (ws->want > ws->cap) { /* the last step needed more than the plan: grown once, to its peak */
        unsigned char *nb = injected(ws) ? NULL : buffer(ws->want);
        if (!nb)
            return ocn_fail(err, OCN_ENOMEM, "out of memory: the step's workspace grown to %s",
                            ocn_format_bytes((double)ws->want, b, sizeof b));
        free(ws->buf);
        ws->buf = nb, ws->cap = ws->want;
    }
    ws->lo = 0, ws->hi = ws->cap, ws->peak = 0, ws->over = 0;
    ws->jb = jb;
    memset(&ws->err, 0, sizeof ws->err);
    return OCN_OK;
}

void ocn_ws_end(ocn_ws *ws)
{
    free_extra(ws);
    if (ws->over) ws->want = round_up(ws->peak + ws->over + ws->over / 4);
    ws->jb = NULL;
}

int ocn_ws_error(const ocn_ws *ws, ocn_error *err)
{
    return ocn_fail(err, OCN_ENOMEM, "%s", ws->err.msg[0] ? ws->err.msg : "out of memory in the step's workspace");
}

static void *fail(ocn_ws *ws, size_t bytes, const char *what)
{
    char b[32];
    ocn_fail(&ws->err, OCN_ENOMEM, "out of memory: %s (%s) in the step's workspace", what,
             ocn_format_bytes((double)bytes, b, sizeof b));
    if (ws->jb) longjmp(*ws->jb, 1);
    return NULL;
}

/* Beyond the plan: an extra block, freed when the step ends (strict, for
 * the tests: a failure — the plan is estimate.c's model and must hold). */
static void *extra(ocn_ws *ws, size_t n, const char *what)
{
    if (ws->fail_at < 0) {
        char b[32], c[32];
        ocn_fail(&ws->err, OCN_ENOMEM, "the step's workspace plan (%s) is exceeded by %s (%s more): estimate.c's model "
                 "is wrong", ocn_format_bytes((double)ws->cap, b, sizeof b), what, ocn_format_bytes((double)n, c, sizeof c));
        if (ws->jb) longjmp(*ws->jb, 1);
        return NULL;
    }
    blk *x = malloc(sizeof(blk) + ALIGN + n);
    if (!x) return fail(ws, n, what);
    x->next = ws->extra, ws->extra = x;
    ws->over += n;
    uintptr_t p = ((uintptr_t)(x + 1) + ALIGN - 1) / ALIGN * ALIGN;
    return (void *)p;
}

static void *take(ocn_ws *ws, size_t bytes, const char *what, int top, int zero)
{
    if (bytes / 2 > SIZE_MAX / 4) return fail(ws, bytes, what);
    if (injected(ws)) return fail(ws, bytes, what);
    size_t n = round_up(bytes ? bytes : 1);
    void *p;
    if (n > ws->hi - ws->lo) {
        p = extra(ws, n, what);
    } else if (top) {
        ws->hi -= n;
        p = ws->buf + ws->hi;
    } else {
        p = ws->buf + ws->lo;
        ws->lo += n;
    }
    size_t used = ws->lo + (ws->cap - ws->hi);
    if (used > ws->peak) ws->peak = used;
    if (zero) memset(p, 0, n);
    return p;
}

void *ocn_ws_keep(ocn_ws *ws, size_t bytes, const char *what) { return take(ws, bytes, what, 0, 1); }
void *ocn_ws_keep_raw(ocn_ws *ws, size_t bytes, const char *what) { return take(ws, bytes, what, 0, 0); }
void *ocn_ws_tmp(ocn_ws *ws, size_t bytes, const char *what) { return take(ws, bytes, what, 1, 1); }
void *ocn_ws_tmp_raw(ocn_ws *ws, size_t bytes, const char *what) { return take(ws, bytes, what, 1, 0); }

size_t ocn_ws_mark(const ocn_ws *ws) { return ws->hi; }
void ocn_ws_release(ocn_ws *ws, size_t mark)
{
    if (mark >= ws->hi && mark <= ws->cap) ws->hi = mark;
}

int ocn_ws_fault(ocn_ws *ws) { return ws && injected(ws); }

size_t ocn_ws_plan(const ocn_ws *ws) { return ws->cap; }
size_t ocn_ws_peak(const ocn_ws *ws) { return ws->peak; }
size_t ocn_ws_over(const ocn_ws *ws) { return ws->over; }
