/* The step's workspace (issue 11 item 1, issue 10 "every allocation is
 * checked"): one buffer, sized from the game before the first step by the
 * same computation that estimates the path's peak memory (estimate.c,
 * ocn_opt_plan), allocated and checked once, and reused by every step of an
 * ocn_opt_state (trajectories, `ocn train`, make bench) — so a step takes no
 * fresh pages from the kernel and has no allocation of its own to check.
 *
 * The buffer is a double-ended stack:
 *   keep  (from the bottom): what lives until the step ends — states, the
 *         stage values, the factors and gains the update pass reads (§8);
 *   tmp   (from the top, LIFO): a phase's temporaries, released with the mark
 *         taken before them.
 * Every allocation is zeroed and 64-byte aligned.  If the plan was too small
 * (a model error of estimate.c; the tests hold every fixture to it) the
 * allocation comes from an extra block instead, recorded in `over`, and the
 * next step starts with a buffer grown to the measured peak.
 *
 * Failure: an allocation that cannot be had (the extra block's malloc fails,
 * or the test-only countdown says so) records "out of memory: <what>" and
 * longjmps to the step's recovery point (ocn_ws_begin); everything the step
 * took lives in the workspace, so nothing leaks and the step returns
 * OCN_ENOMEM naming what failed. */
#ifndef OCN_OPT_WORKSPACE_H
#define OCN_OPT_WORKSPACE_H

#include <setjmp.h>
#include <stddef.h>
#include "ocn/error.h"

typedef struct ocn_ws ocn_ws;

/* A workspace of `plan` bytes.  `fail_at` > 0 (tests only): the fail_at-th
 * allocation counted by this workspace — its own buffer, the step's
 * allocations, the §13 state's buffers (ocn_ws_fault) — fails; < 0 (tests
 * only): strict, an allocation beyond the plan fails instead of taking an
 * extra block (so the tests hold estimate.c's model to every game). */
int ocn_ws_new(size_t plan, long fail_at, ocn_ws **out, ocn_error *err);
void ocn_ws_free(ocn_ws *ws);

/* A step starts: both ends empty; allocation failures longjmp to *jb with the
 * message in ocn_ws_error.  Grows the buffer first if the last step needed
 * more than it had. */
int ocn_ws_begin(ocn_ws *ws, jmp_buf *jb, ocn_error *err);
/* The step ends (also after a longjmp): extra blocks freed, peak recorded. */
void ocn_ws_end(ocn_ws *ws);
/* The message of the allocation failure that longjmp'ed (OCN_ENOMEM). */
int ocn_ws_error(const ocn_ws *ws, ocn_error *err);

void *ocn_ws_keep(ocn_ws *ws, size_t bytes, const char *what);
void *ocn_ws_tmp(ocn_ws *ws, size_t bytes, const char *what);
/* tmp without zeroing: for buffers every element of which is written before it is read */
void *ocn_ws_tmp_raw(ocn_ws *ws, size_t bytes, const char *what);
void *ocn_ws_keep_raw(ocn_ws *ws, size_t bytes, const char *what);
size_t ocn_ws_mark(const ocn_ws *ws);
void ocn_ws_release(ocn_ws *ws, size_t mark);

/* For allocations the workspace does not hold (the §13 state's buffers): 1
 * when the test-only countdown makes this one fail (counted like the others). */
int ocn_ws_fault(ocn_ws *ws);

/* Bytes: the plan (buffer size), the peak the last step used of it, what it
 * needed beyond it (0 when the plan held). */
size_t ocn_ws_plan(const ocn_ws *ws);
size_t ocn_ws_peak(const ocn_ws *ws);
size_t ocn_ws_over(const ocn_ws *ws);

#endif
