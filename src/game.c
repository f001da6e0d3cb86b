/* Loader and validator of the SPEC §12 game description (jansson, strict:
 * duplicate keys and unknown fields are errors).  Builds the §3/§12 block
 * layout: blocks ordered by first appearance, state x_t = alive blocks. */
#include "ocn/game.h"
#include "ocn/npy.h"

#include <fcntl.h>

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    ocn_error *err;
    const char *where;
    ocn_game *g;
} ctx;

static int bad(ctx *c, const char *fmt, const char *a, const char *b)
{
    char m[600];
    snprintf(m, sizeof m, fmt, a ? a : "", b ? b : "");
    return ocn_fail(c->err, OCN_EINVAL, "%s: %s", c->where, m);
}

static int badf(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int badf(ctx *c, const char *fmt, ...)
{
    char m[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return ocn_fail(c->err, OCN_EINVAL, "%s: %s", c->where, m);
}

/* Reject keys not in `allowed` (NULL-terminated). */
static int check_keys(ctx *c, json_t *obj, const char *const *allowed, const char *path)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, key)) ok = 1;
        if (!ok) return bad(c, "%s: unknown field '%s'", path, key);
    }
    return OCN_OK;
}

static int get_int(ctx *c, json_t *obj, const char *key, const char *path, int required,
                   long long lo, long long hi, long long dflt, long long *out)
{
    json_t *v = json_object_get(obj, key);
    char p[300];
    snprintf(p, sizeof p, "%s%s%s", path, path[0] ? " " : "", key);
    if (!v) {
        if (required) return bad(c, "%s missing", p, NULL);
        *out = dflt;
        return OCN_OK;
    }
    if (!json_is_integer(v)) return bad(c, "%s must be an integer", p, NULL);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        char m[400];
        snprintf(m, sizeof m, "%s = %lld out of range [%lld, %lld]", p, x, lo, hi);
        return bad(c, "%s", m, NULL);
    }
    *out = x;
    return OCN_OK;
}

static int get_num(ctx *c, json_t *obj, const char *key, const char *path, int required,
                   double lo, double hi, double dflt, int strict_lo, double *out)
{
    json_t *v = json_object_get(obj, key);
    char p[300];
    snprintf(p, sizeof p, "%s%s%s", path, path[0] ? " " : "", key);
    if (!v) {
        if (required) return bad(c, "%s missing", p, NULL);
        *out = dflt;
        return OCN_OK;
    }
    if (!json_is_number(v)) return bad(c, "%s must be a number", p, NULL);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || (strict_lo && x == lo)) {
        char m[400];
        snprintf(m, sizeof m, "%s = %g must be %s %g", p, x, strict_lo ? ">" : ">=", lo);
        return bad(c, "%s", m, NULL);
    }
    if (x > hi) /* issue 10: absurd values are refused, not left to overflow in the step */
        return badf(c, "%s = %g out of range: at most %g (docs/decisions.md, Limits)", p, x, hi);
    *out = x;
    return OCN_OK;
}

/* String field matched against a table of names; returns the index. */
static int get_enum(ctx *c, json_t *obj, const char *key, const char *path, int required,
                    const char *const *names, int dflt, int *out)
{
    json_t *v = json_object_get(obj, key);
    char p[300];
    snprintf(p, sizeof p, "%s%s%s", path, path[0] ? " " : "", key);
    if (!v) {
        if (required) return bad(c, "%s missing", p, NULL);
        *out = dflt;
        return OCN_OK;
    }
    if (!json_is_string(v)) return bad(c, "%s must be a string", p, NULL);
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], json_string_value(v))) {
            *out = i;
            return OCN_OK;
        }
    return bad(c, "%s: unknown value '%s'", p, json_string_value(v));
}

static const char *const ACT_NAMES[] = {"identity", "tanh", "relu", "sigmoid", NULL};
static const char *const KIND_NAMES[] = {"dense", "bias", "act", "conv", NULL};
static const char *const PAD_NAMES[] = {"valid", "same", NULL};
static const char *const LOSS_NAMES[] = {"ce", "mse", NULL};
static const char *const GAME_NAMES[] = {"fne", "gr", NULL};
static const char *const CURV_NAMES[] = {"exact", "sgd", "rmsprop", "gn-outer", "kfac", "coop-kfac", NULL};
static const char *const DYN_NAMES[] = {"gn", "full", NULL};
static const char *const VALUE_NAMES[] = {"augmented", "blockdiag", "persample", NULL};
static const char *const TERM_NAMES[] = {"exact", "outer", NULL};
static const char *const ZERO_NAMES[] = {"Qthx", "Puv", "Pux", "Mid", NULL};
static const char *const DATA_NAMES[] = {"fixed", "stream", NULL};

const char *ocn_act_name(ocn_act a) { return ACT_NAMES[a]; }
const char *ocn_curvature_name(ocn_curvature c) { return CURV_NAMES[c]; }
const char *ocn_value_name(ocn_value_mode v) { return VALUE_NAMES[v]; }

static int block_id(ctx *c, json_t *v, const char *path, int create)
{
    ocn_game *g = c->g;
    if (!v) return bad(c, "%s missing", path, NULL), -1;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return bad(c, "%s must be a non-empty block name", path, NULL), -1;
    if (json_string_length(v) >= OCN_MAX_NAME)
        return badf(c, "%s: block name of %zu characters (bytes), at most %d", path, json_string_length(v),
                    OCN_MAX_NAME - 1), -1;
    const char *s = json_string_value(v);
    for (int b = 0; b < g->nblocks; b++)
        if (!strcmp(g->block_names[b], s)) return b;
    if (!create) return bad(c, "%s: block '%s' does not exist", path, s), -1;
    if (g->nblocks >= OCN_MAX_BLOCKS)
        return badf(c, "%s: block '%s' would be block %d; at most %d distinct blocks", path, s, g->nblocks + 1,
                    OCN_MAX_BLOCKS), -1;
    void *nb = realloc(g->block_names, (size_t)(g->nblocks + 1) * sizeof *g->block_names);
    if (!nb) return ocn_fail(c->err, OCN_ENOMEM, "%s: out of memory", c->where), -1;
    g->block_names = nb;
    snprintf(g->block_names[g->nblocks], OCN_MAX_NAME, "%s", s);
    return g->nblocks++;
}

/* §14: the conv fields are refused on the other kinds (a typo'd kind would
 * otherwise silently drop them). */
static int no_conv_fields(ctx *c, json_t *pj, const char *path)
{
    static const char *const ck[] = {"in_shape", "out_channels", "kernel", "stride", "padding", NULL};
    for (int i = 0; ck[i]; i++)
        if (json_object_get(pj, ck[i])) return bad(c, "%s %s is only for kind 'conv' (SPEC §14)", path, ck[i]);
    return OCN_OK;
}

/* §14 conv player fields; dimensions are checked against the input block in layout(). */
static int parse_conv(ctx *c, json_t *pj, const char *path, ocn_player *pl)
{
    ocn_conv *q = &pl->conv;
    long long v;
    int rc, e;
    json_t *sh = json_object_get(pj, "in_shape");
    if (!sh) return bad(c, "%s in_shape missing", path, NULL);
    if (!json_is_array(sh) || json_array_size(sh) != 3)
        return bad(c, "%s in_shape must be an array [C, H, W] of three positive integers", path, NULL);
    int *dst[3] = {&q->c, &q->h, &q->w};
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(sh, i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > OCN_MAX_DIM)
            return badf(c, "%s in_shape[%zu] must be an integer in [1, %d]", path, i, OCN_MAX_DIM);
        *dst[i] = (int)json_integer_value(x);
    }
    if ((rc = get_int(c, pj, "out_channels", path, 1, 1, OCN_MAX_DIM, 0, &v))) return rc;
    q->co = (int)v;
    if ((rc = get_int(c, pj, "kernel", path, 1, 1, 4096, 0, &v))) return rc;
    q->k = (int)v;
    if ((rc = get_int(c, pj, "stride", path, 0, 1, 4096, 1, &v))) return rc;
    q->s = (int)v;
    if ((rc = get_enum(c, pj, "padding", path, 0, PAD_NAMES, 1, &e))) return rc;
    q->same = e;
    if (q->same && q->k % 2 == 0)
        return badf(c, "%s kernel %d must be odd with padding 'same' (SPEC §14: pad (k-1)/2 each side)", path, q->k);
    q->pad = q->same ? (q->k - 1) / 2 : 0;
    if (q->h + 2 * q->pad < q->k || q->w + 2 * q->pad < q->k)
        return badf(c, "%s kernel %d larger than the %s input %d x %d (in_shape)", path, q->k,
                    q->same ? "padded" : "unpadded", q->h + 2 * q->pad, q->w + 2 * q->pad);
    q->ho = (q->h + 2 * q->pad - q->k) / q->s + 1;
    q->wo = (q->w + 2 * q->pad - q->k) / q->s + 1;
    return OCN_OK;
}

static int parse_player(ctx *c, json_t *pj, int t, int p, ocn_player *pl)
{
    static const char *const keys[] = {"lane", "kind", "in", "out", "out_dim", "act", "in_shape", "out_channels",
                                       "kernel", "stride", "padding", NULL};
    char path[64];
    snprintf(path, sizeof path, "stage %d player %d:", t, p);
    if (!json_is_object(pj)) return bad(c, "%s must be an object", path, NULL);
    int rc, k, a;
    long long v;
    if ((rc = check_keys(c, pj, keys, path))) return rc;
    if ((rc = get_int(c, pj, "lane", path, 1, 0, LLONG_MAX, 0, &v))) return rc;
    if (v >= OCN_MAX_PLAYERS) /* issue 10: one player limit, lanes 0 .. OCN_MAX_PLAYERS-1 */
        return badf(c, "%s lane %lld out of range [0, %d] (at most %d players per stage)", path, v,
                    OCN_MAX_PLAYERS - 1, OCN_MAX_PLAYERS);
    pl->lane = (int)v;
    if ((rc = get_enum(c, pj, "kind", path, 1, KIND_NAMES, 0, &k))) return rc;
    pl->kind = (ocn_player_kind)k;
    if ((rc = get_enum(c, pj, "act", path, 1, ACT_NAMES, 0, &a))) return rc;
    pl->act = (ocn_act)a;
    char fp[96];
    snprintf(fp, sizeof fp, "%s in", path);
    if ((pl->in_block = block_id(c, json_object_get(pj, "in"), fp, 1)) < 0) return c->err->code;
    snprintf(fp, sizeof fp, "%s out", path);
    if ((pl->out_block = block_id(c, json_object_get(pj, "out"), fp, 1)) < 0) return c->err->code;
    int conv = pl->kind == OCN_PLAYER_CONV;
    if ((rc = get_int(c, pj, "out_dim", path, pl->kind != OCN_PLAYER_ACT && !conv, 1, OCN_MAX_DIM, 0, &v))) return rc;
    pl->out_dim = (int)v; /* 0 for act or conv without out_dim: resolved in layout() */
    return conv ? parse_conv(c, pj, path, pl) : no_conv_fields(c, pj, path);
}

static int parse_stage(ctx *c, json_t *sj, int t, ocn_stage *st)
{
    static const char *const keys[] = {"players", "carries", NULL};
    char path[48];
    snprintf(path, sizeof path, "stage %d:", t);
    if (!json_is_object(sj)) return bad(c, "%s must be an object", path, NULL);
    int rc;
    if ((rc = check_keys(c, sj, keys, path))) return rc;
    json_t *pa = json_object_get(sj, "players");
    if (!pa) return bad(c, "%s players missing", path, NULL);
    if (!json_is_array(pa) || json_array_size(pa) == 0)
        return bad(c, "%s players must be a non-empty array", path, NULL);
    if (json_array_size(pa) > OCN_MAX_PLAYERS)
        return badf(c, "stage %d: %zu players, at most %d", t, json_array_size(pa), OCN_MAX_PLAYERS);
    st->nplayers = (int)json_array_size(pa);
    st->players = calloc((size_t)st->nplayers, sizeof *st->players);
    if (!st->players) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
    for (int p = 0; p < st->nplayers; p++) {
        if ((rc = parse_player(c, json_array_get(pa, (size_t)p), t, p, &st->players[p]))) return rc;
        for (int q = 0; q < p; q++)
            if (st->players[q].lane == st->players[p].lane) {
                char m[120];
                snprintf(m, sizeof m, "stage %d player %d: lane %d already taken by player %d", t, p,
                         st->players[p].lane, q);
                return bad(c, "%s", m, NULL);
            }
    }
    json_t *ca = json_object_get(sj, "carries");
    if (ca) {
        if (!json_is_array(ca)) return bad(c, "%s carries must be an array", path, NULL);
        if (json_array_size(ca) > OCN_MAX_CARRIES)
            return badf(c, "stage %d: %zu carries, at most %d", t, json_array_size(ca), OCN_MAX_CARRIES);
        st->ncarries = (int)json_array_size(ca);
        st->carries = calloc((size_t)st->ncarries + 1, sizeof *st->carries);
        if (!st->carries) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
        for (int k = 0; k < st->ncarries; k++) {
            static const char *const ckeys[] = {"from", "to", NULL};
            char cp[64], fp[96];
            snprintf(cp, sizeof cp, "stage %d carry %d:", t, k);
            json_t *cj = json_array_get(ca, (size_t)k);
            if (!json_is_object(cj)) return bad(c, "%s must be an object", cp, NULL);
            if ((rc = check_keys(c, cj, ckeys, cp))) return rc;
            snprintf(fp, sizeof fp, "%s from", cp);
            if ((st->carries[k].from = block_id(c, json_object_get(cj, "from"), fp, 1)) < 0) return c->err->code;
            snprintf(fp, sizeof fp, "%s to", cp);
            if ((st->carries[k].to = block_id(c, json_object_get(cj, "to"), fp, 1)) < 0) return c->err->code;
        }
    }
    return OCN_OK;
}

static int alloc_layout(ocn_game *g)
{
    g->block_dim = calloc((size_t)g->T + 1, sizeof *g->block_dim);
    g->block_off = calloc((size_t)g->T + 1, sizeof *g->block_off);
    g->n = calloc((size_t)g->T + 1, sizeof *g->n);
    if (!g->block_dim || !g->block_off || !g->n) return OCN_ENOMEM;
    for (int t = 0; t <= g->T; t++) {
        g->block_dim[t] = calloc((size_t)g->nblocks, sizeof **g->block_dim);
        g->block_off[t] = calloc((size_t)g->nblocks, sizeof **g->block_off);
        if (!g->block_dim[t] || !g->block_off[t]) return OCN_ENOMEM;
    }
    return OCN_OK;
}

/* a·b·w (w = element size; 1 for a count) within lim, without overflow. */
static int prod_fits(uint64_t a, uint64_t b, uint64_t w, uint64_t lim)
{
    uint64_t x;
    return !__builtin_mul_overflow(a, b, &x) && !__builtin_mul_overflow(x, w, &x) && x <= lim;
}

/* issue 10: every size the later code keeps in an `int` (dims, parameter
 * counts, B·n) or allocates in `size_t` (B·n x B·n value Hessians, m x m
 * curvatures) must fit; the message names the stage.  B of m x n (Q_θx,
 * K) needs no check of its own: m·Bn ≤ max(m, Bn)². */
static int check_sizes(ctx *c)
{
    ocn_game *g = c->g;
    /* malloc refuses more than PTRDIFF_MAX bytes (≤ SIZE_MAX) */
    const uint64_t B = (uint64_t)g->batch, D = sizeof(double), ALLOC = (uint64_t)PTRDIFF_MAX;
    int64_t total = 0;
    char at[48];
    for (int t = 0; t <= g->T; t++) {
        uint64_t n = (uint64_t)g->n[t];
        snprintf(at, sizeof at, t < g->T ? "stage %d" : "after the last stage (t = %d)", t);
        if (!prod_fits(B, n, 1, INT_MAX))
            return badf(c, "%s: batch %d x state dimension %d = %llu, at most %d", at, g->batch, g->n[t],
                        (unsigned long long)(B * n), INT_MAX);
        if (!prod_fits(B * n, B * n, D, ALLOC))
            return badf(c, "%s: the (batch x state dimension)^2 = %llu^2 value Hessian does not fit in memory (size_t)",
                        at, (unsigned long long)(B * n));
        if (t == g->T) break;
        int64_t m = 0, mmax = 0; /* GR: the stage's joint θ_t; FNE: each player's own */
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            m += g->stages[t].players[p].m;
            if (g->stages[t].players[p].m > mmax) mmax = g->stages[t].players[p].m;
        }
        total += m;
        if (g->opt.game == OCN_GAME_GR && m > INT_MAX)
            return badf(c, "stage %d: %lld parameters in the joint (gr) parameter, at most %d", t, (long long)m, INT_MAX);
        if (g->opt.game != OCN_GAME_GR) m = mmax;
        if (!prod_fits((uint64_t)m, (uint64_t)m, D, ALLOC))
            return badf(c, "stage %d: the %lld x %lld curvature does not fit in memory (size_t)", t, (long long)m,
                        (long long)m);
    }
    if (total > INT_MAX)
        return badf(c, "%lld parameters in all, at most %d", (long long)total, INT_MAX);
    return OCN_OK;
}

/* §14: a conv player's in_shape must match its input block, out_dim (if
 * given) its C_o·H_o·W_o; coop-kfac on its stage is not defined. */
static int conv_layout(ctx *c, int t, int p, ocn_player *pl)
{
    const ocn_conv *q = &pl->conv;
    int64_t in = (int64_t)q->c * q->h * q->w, out = (int64_t)q->co * q->ho * q->wo;
    if (in != pl->in_dim)
        return badf(c, "stage %d player %d: in_shape [%d, %d, %d] has C*H*W = %lld, but its input block '%s' has dim %d",
                    t, p, q->c, q->h, q->w, (long long)in, c->g->block_names[pl->in_block], pl->in_dim);
    if (out > OCN_MAX_DIM)
        return badf(c, "stage %d player %d: output dim out_channels*H_o*W_o = %d*%d*%d = %lld, at most %d", t, p, q->co,
                    q->ho, q->wo, (long long)out, OCN_MAX_DIM);
    if (pl->out_dim && pl->out_dim != out)
        return badf(c, "stage %d player %d: out_dim %d does not match the conv output out_channels*H_o*W_o = %d*%d*%d = %lld",
                    t, p, pl->out_dim, q->co, q->ho, q->wo, (long long)out);
    if (c->g->opt.curvature == OCN_CURV_COOP_KFAC)
        return badf(c, "stage %d player %d: optimizer curvature 'coop-kfac' is not defined on a stage with a conv player "
                    "(SPEC §14); use 'kfac'", t, p);
    pl->out_dim = (int)out;
    return OCN_OK;
}

/* §3/§12: dims of every block at every t; every read block must be alive and
 * every sum (writers + carries) must agree on its dimension. */
static int layout(ctx *c)
{
    ocn_game *g = c->g;
    int rc;
    if (alloc_layout(g)) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
    g->block_dim[0][0] = g->input_dim; /* block 0 is "z" */
    char m[400];
    for (int t = 0; t < g->T; t++) {
        ocn_stage *st = &g->stages[t];
        int *cur = g->block_dim[t], *nxt = g->block_dim[t + 1];
        for (int p = 0; p < st->nplayers; p++) {
            ocn_player *pl = &st->players[p];
            int din = cur[pl->in_block];
            if (!din) {
                snprintf(m, sizeof m, "stage %d player %d: input block '%s' is not alive at stage %d", t, p,
                         g->block_names[pl->in_block], t);
                return bad(c, "%s", m, NULL);
            }
            pl->in_dim = din;
            if (pl->kind == OCN_PLAYER_CONV && (rc = conv_layout(c, t, p, pl))) return rc;
            if (pl->kind == OCN_PLAYER_ACT) {
                if (pl->out_dim && pl->out_dim != din) {
                    snprintf(m, sizeof m, "stage %d player %d: out_dim %d of an act player must equal its input dim %d",
                             t, p, pl->out_dim, din);
                    return bad(c, "%s", m, NULL);
                }
                pl->out_dim = din;
                pl->m = 0;
            } else { /* int64: out_dim·(in+1) overflows int for wide layers (issue 10) */
                int64_t m64 = pl->kind == OCN_PLAYER_DENSE ? (int64_t)pl->out_dim * ((int64_t)din + 1)
                            : pl->kind == OCN_PLAYER_CONV ? (int64_t)pl->conv.co * ((int64_t)pl->conv.c * pl->conv.k * pl->conv.k + 1)
                                                          : pl->out_dim;
                if (m64 > INT_MAX)
                    return badf(c, "stage %d player %d: %lld parameters (out_dim %d x (input dim %d + 1)), at most %d",
                                t, p, (long long)m64, pl->out_dim, din, INT_MAX);
                pl->m = (int)m64;
            }
            int *d = &nxt[pl->out_block];
            if (*d && *d != pl->out_dim) {
                snprintf(m, sizeof m, "stage %d player %d: dimension mismatch: writes %d into block '%s' of dim %d",
                         t, p, pl->out_dim, g->block_names[pl->out_block], *d);
                return bad(c, "%s", m, NULL);
            }
            *d = pl->out_dim;
        }
        for (int k = 0; k < st->ncarries; k++) {
            ocn_carry *ca = &st->carries[k];
            int din = cur[ca->from];
            if (!din) {
                snprintf(m, sizeof m, "stage %d carry %d: block '%s' is not alive at stage %d", t, k,
                         g->block_names[ca->from], t);
                return bad(c, "%s", m, NULL);
            }
            int *d = &nxt[ca->to];
            if (*d && *d != din) {
                snprintf(m, sizeof m, "stage %d carry %d: dimension mismatch: carries %d into block '%s' of dim %d",
                         t, k, din, g->block_names[ca->to], *d);
                return bad(c, "%s", m, NULL);
            }
            *d = din;
        }
    }
    for (int t = 0; t <= g->T; t++) {
        int64_t off = 0; /* int64: the sum of block dims may pass INT_MAX (refused below) */
        for (int b = 0; b < g->nblocks; b++) {
            if (off > INT_MAX) break;
            g->block_off[t][b] = (int)off;
            off += g->block_dim[t][b];
        }
        if (off > INT_MAX) {
            char at[48];
            snprintf(at, sizeof at, t < g->T ? "at stage %d" : "after the last stage (t = %d)", t);
            return badf(c, "state dimension %s exceeds %d (the sum of its block dims)", at, INT_MAX);
        }
        g->n[t] = (int)off;
    }
    return check_sizes(c);
}

static int parse_block_list(ctx *c, json_t *arr, const char *path, int *nout, int **out)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return bad(c, "%s must be a non-empty array of block names", path, NULL);
    if (json_array_size(arr) > OCN_MAX_BLOCKS)
        return badf(c, "%s: %zu block names, at most %d", path, json_array_size(arr), OCN_MAX_BLOCKS);
    *nout = (int)json_array_size(arr);
    *out = calloc((size_t)*nout, sizeof **out);
    if (!*out) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
    for (int i = 0; i < *nout; i++) {
        (*out)[i] = block_id(c, json_array_get(arr, (size_t)i), path, 0);
        if ((*out)[i] < 0) return c->err->code;
        if (!c->g->block_dim[c->g->T][(*out)[i]]) {
            char m[300];
            snprintf(m, sizeof m, "%s: block '%s' is not alive after the last stage", path,
                     c->g->block_names[(*out)[i]]);
            return bad(c, "%s", m, NULL);
        }
        for (int j = 0; j < i; j++)
            if ((*out)[j] == (*out)[i]) return bad(c, "%s: block '%s' listed twice", path, c->g->block_names[(*out)[i]]);
    }
    return OCN_OK;
}

static int parse_optimizer(ctx *c, json_t *oj, ocn_optimizer *o)
{
    static const char *const keys[] = {"game", "curvature", "dynamics", "value", "terminal",
                                       "lr", "damping", "eps", "zero", "steps", "data", "stat_decay",
                                       "refresh_every", NULL};
    const char *path = "optimizer";
    if (!oj) return bad(c, "optimizer missing", NULL, NULL);
    if (!json_is_object(oj)) return bad(c, "optimizer must be an object", NULL, NULL);
    int rc, e;
    if ((rc = check_keys(c, oj, keys, "optimizer:"))) return rc;
    if ((rc = get_enum(c, oj, "game", path, 1, GAME_NAMES, 0, &e))) return rc;
    o->game = (ocn_game_kind)e;
    if ((rc = get_enum(c, oj, "curvature", path, 1, CURV_NAMES, 0, &e))) return rc;
    o->curvature = (ocn_curvature)e;
    if ((rc = get_enum(c, oj, "dynamics", path, 0, DYN_NAMES, OCN_DYN_GN, &e))) return rc;
    o->dynamics = (ocn_dynamics)e;
    if ((rc = get_enum(c, oj, "value", path, 0, VALUE_NAMES, OCN_VALUE_BLOCKDIAG, &e))) return rc;
    o->value = (ocn_value_mode)e;
    if ((rc = get_enum(c, oj, "terminal", path, 0, TERM_NAMES, OCN_TERMINAL_EXACT, &e))) return rc;
    o->terminal = (ocn_terminal)e;
    if ((rc = get_num(c, oj, "lr", path, 0, 0.0, OCN_MAX_HYPER, 1.0, 1, &o->lr))) return rc;
    if ((rc = get_num(c, oj, "damping", path, 0, 0.0, OCN_MAX_HYPER, 0.0, 0, &o->damping))) return rc;
    if ((rc = get_num(c, oj, "eps", path, 0, 0.0, OCN_MAX_HYPER, 1e-8, 0, &o->eps))) return rc;
    long long iv; /* §13 fields: parsed and stored normalised; ocn gen refuses trajectories for now */
    if ((rc = get_int(c, oj, "steps", path, 0, 1, 1 << 20, 1, &iv))) return rc;
    o->steps = (int)iv;
    if ((rc = get_enum(c, oj, "data", path, 0, DATA_NAMES, 0, &e))) return rc;
    o->data_stream = e;
    if ((rc = get_num(c, oj, "stat_decay", path, 0, 0.0, 1.0, 0.0, 0, &o->stat_decay))) return rc;
    if (o->stat_decay >= 1.0) return bad(c, "optimizer stat_decay must be in [0, 1)", NULL, NULL);
    if ((rc = get_int(c, oj, "refresh_every", path, 0, 1, 1 << 20, 1, &iv))) return rc;
    o->refresh_every = (int)iv;
    json_t *z = json_object_get(oj, "zero");
    o->zero = 0;
    if (z) {
        if (!json_is_array(z)) return bad(c, "optimizer zero must be an array of names", NULL, NULL);
        size_t i;
        json_t *v;
        json_array_foreach(z, i, v) {
            if (!json_is_string(v)) return bad(c, "optimizer zero: entries must be strings", NULL, NULL);
            int k = -1;
            for (int j = 0; ZERO_NAMES[j]; j++)
                if (!strcmp(ZERO_NAMES[j], json_string_value(v))) k = j;
            if (k < 0) return bad(c, "optimizer zero: unknown term '%s'", json_string_value(v), NULL);
            o->zero |= 1u << k;
        }
        /* §12: Qthx is the FNE term, Puv/Pux the GR ones; a flag that means
         * nothing for the game is a mistake, not something to ignore */
        if (o->game == OCN_GAME_FNE && (o->zero & (OCN_ZERO_PUV | OCN_ZERO_PUX)))
            return bad(c, "optimizer zero: 'Puv' and 'Pux' apply to gr games only", NULL, NULL);
        if (o->game == OCN_GAME_GR && (o->zero & OCN_ZERO_QTHX))
            return bad(c, "optimizer zero: 'Qthx' applies to fne games only (gr: 'Pux')", NULL, NULL);
    }
    return OCN_OK;
}

static int parse_loss(ctx *c, json_t *lj)
{
    static const char *const keys[] = {"kind", "classes", "lane_outputs", NULL};
    ocn_game *g = c->g;
    if (!lj) return bad(c, "loss missing", NULL, NULL);
    if (!json_is_object(lj)) return bad(c, "loss must be an object", NULL, NULL);
    int rc, e;
    long long v;
    if ((rc = check_keys(c, lj, keys, "loss:"))) return rc;
    if ((rc = get_enum(c, lj, "kind", "loss", 1, LOSS_NAMES, 0, &e))) return rc;
    g->loss = (ocn_loss_kind)e;
    if ((rc = get_int(c, lj, "classes", "loss", g->loss == OCN_LOSS_CE, 2, OCN_MAX_DIM, 0, &v))) return rc;
    g->classes = (int)v;
    if (g->loss == OCN_LOSS_MSE && json_object_get(lj, "classes"))
        return bad(c, "loss classes is only for kind 'ce'", NULL, NULL);
    return OCN_OK;
}

/* Resolve outputs / lane_outputs after the layout is known. */
static int resolve_outputs(ctx *c, json_t *root)
{
    ocn_game *g = c->g;
    int rc;
    json_t *oj = json_object_get(root, "outputs");
    if (oj) {
        if ((rc = parse_block_list(c, oj, "outputs", &g->noutputs, &g->outputs))) return rc;
    } else {
        g->noutputs = 1;
        g->outputs = calloc(1, sizeof *g->outputs);
        if (!g->outputs) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
        if (!g->block_dim[g->T][0]) return bad(c, "outputs: block 'z' is not alive after the last stage", NULL, NULL);
    }
    g->out_dim = 0; /* ≤ n[T] ≤ INT_MAX (outputs are distinct blocks alive at T) */
    for (int i = 0; i < g->noutputs; i++) g->out_dim += g->block_dim[g->T][g->outputs[i]];
    g->lane_nout = calloc((size_t)g->nlanes, sizeof *g->lane_nout);
    g->lane_outputs = calloc((size_t)g->nlanes, sizeof *g->lane_outputs);
    if (!g->lane_nout || !g->lane_outputs) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
    json_t *lo = json_object_get(json_object_get(root, "loss"), "lane_outputs");
    if (lo) {
        if (!json_is_array(lo) || (int)json_array_size(lo) != g->nlanes) {
            char m[120];
            snprintf(m, sizeof m, "loss lane_outputs must be an array with one entry per lane (%d lanes)", g->nlanes);
            return bad(c, "%s", m, NULL);
        }
        g->separable = 1;
        for (int n = 0; n < g->nlanes; n++) {
            char p[64];
            snprintf(p, sizeof p, "loss lane_outputs[%d]", n);
            if ((rc = parse_block_list(c, json_array_get(lo, (size_t)n), p, &g->lane_nout[n], &g->lane_outputs[n])))
                return rc;
            int d = 0;
            for (int i = 0; i < g->lane_nout[n]; i++) d += g->block_dim[g->T][g->lane_outputs[n][i]];
            if (g->loss == OCN_LOSS_CE && d != g->classes) {
                char m[160];
                snprintf(m, sizeof m, "loss lane_outputs[%d]: output dim %d must equal classes %d", n, d, g->classes);
                return bad(c, "%s", m, NULL);
            }
            for (int i = 0; g->loss == OCN_LOSS_MSE && i < g->lane_nout[n]; i++) {
                int b = g->lane_outputs[n][i], found = 0;
                for (int j = 0; j < g->noutputs; j++) found |= g->outputs[j] == b;
                if (!found) { /* mse targets y are laid out like `outputs` */
                    char m[300];
                    snprintf(m, sizeof m, "loss lane_outputs[%d]: block '%s' is not in outputs (mse targets follow outputs)",
                             n, g->block_names[b]);
                    return bad(c, "%s", m, NULL);
                }
            }
        }
    } else {
        for (int n = 0; n < g->nlanes; n++) {
            g->lane_nout[n] = g->noutputs;
            g->lane_outputs[n] = malloc((size_t)g->noutputs * sizeof(int));
            if (!g->lane_outputs[n]) return ocn_fail(c->err, OCN_ENOMEM, "out of memory");
            memcpy(g->lane_outputs[n], g->outputs, (size_t)g->noutputs * sizeof(int));
        }
        if (g->loss == OCN_LOSS_CE && g->out_dim != g->classes) {
            char m[160];
            snprintf(m, sizeof m, "loss classes %d must equal the output dim %d", g->classes, g->out_dim);
            return bad(c, "%s", m, NULL);
        }
    }
    return OCN_OK;
}

int ocn_game_from_json(const void *json, const char *where, ocn_game **out, ocn_error *err)
{
    static const char *const keys[] = {"name", "seed", "batch", "input_dim", "loss", "weight_decay",
                                       "stages", "outputs", "optimizer", NULL};
    json_t *root = (json_t *)json;
    *out = NULL;
    ocn_game *g = calloc(1, sizeof *g);
    if (!g) return ocn_fail(err, OCN_ENOMEM, "%s: out of memory", where);
    ctx c = {err, where, g};
    int rc;
    long long v;
    if (!json_is_object(root)) {
        rc = bad(&c, "the game description must be a JSON object", NULL, NULL);
        goto fail;
    }
    if ((rc = check_keys(&c, root, keys, "game:"))) goto fail;
    json_t *nm = json_object_get(root, "name");
    if (!nm) { rc = bad(&c, "name missing", NULL, NULL); goto fail; }
    if (!json_is_string(nm) || json_string_length(nm) == 0) {
        rc = bad(&c, "name must be a non-empty string", NULL, NULL);
        goto fail;
    }
    if (json_string_length(nm) >= OCN_MAX_NAME) {
        rc = badf(&c, "name: %zu characters (bytes), at most %d", json_string_length(nm), OCN_MAX_NAME - 1);
        goto fail;
    }
    snprintf(g->name, sizeof g->name, "%s", json_string_value(nm));
    if ((rc = get_int(&c, root, "seed", "", 1, 0, 4294967295LL, 0, &v))) goto fail;
    g->seed = (unsigned long)v;
    if ((rc = get_int(&c, root, "batch", "", 1, 1, OCN_MAX_DIM, 0, &v))) goto fail;
    g->batch = (int)v;
    if ((rc = get_int(&c, root, "input_dim", "", 1, 1, OCN_MAX_DIM, 0, &v))) goto fail;
    g->input_dim = (int)v;
    if ((rc = parse_loss(&c, json_object_get(root, "loss")))) goto fail;
    if ((rc = get_num(&c, root, "weight_decay", "", 0, 0.0, OCN_MAX_HYPER, 0.0, 0, &g->weight_decay))) goto fail;
    if ((rc = parse_optimizer(&c, json_object_get(root, "optimizer"), &g->opt))) goto fail;
    json_t *sa = json_object_get(root, "stages");
    if (!sa) { rc = bad(&c, "stages missing", NULL, NULL); goto fail; }
    if (!json_is_array(sa) || json_array_size(sa) == 0) {
        rc = bad(&c, json_is_array(sa) ? "stages: none given, at least 1" : "stages must be an array", NULL, NULL);
        goto fail;
    }
    if (json_array_size(sa) > OCN_MAX_STAGES) {
        rc = badf(&c, "stages: %zu stages, at most %d", json_array_size(sa), OCN_MAX_STAGES);
        goto fail;
    }
    g->T = (int)json_array_size(sa);
    g->stages = calloc((size_t)g->T, sizeof *g->stages);
    if (!g->stages) { rc = ocn_fail(err, OCN_ENOMEM, "out of memory"); goto fail; }
    json_t *zname = json_string("z");
    rc = block_id(&c, zname, "input", 1) < 0 ? err->code : OCN_OK; /* block 0 is the input "z" */
    json_decref(zname);
    if (rc) goto fail;
    for (int t = 0; t < g->T; t++)
        if ((rc = parse_stage(&c, json_array_get(sa, (size_t)t), t, &g->stages[t]))) goto fail;
    g->nlanes = 0;
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (g->stages[t].players[p].lane + 1 > g->nlanes) g->nlanes = g->stages[t].players[p].lane + 1;
    if ((rc = layout(&c))) goto fail;
    if ((rc = resolve_outputs(&c, root))) goto fail;
    g->json = json_incref(root);
    *out = g;
    return OCN_OK;
fail:
    ocn_game_free(g);
    return rc;
}

/* jansson's error, with the position only where it has one (line -1: none). */
static int json_fail(ocn_error *err, const char *where, const json_error_t *je)
{
    if (je->line < 1) return ocn_fail(err, OCN_EINVAL, "%s: malformed JSON: %s", where, je->text);
    return ocn_fail(err, OCN_EINVAL, "%s: malformed JSON at line %d column %d: %s", where, je->line, je->column, je->text);
}

int ocn_game_load_string(const char *text, const char *where, ocn_game **out, ocn_error *err)
{
    json_error_t je;
    *out = NULL;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root) return json_fail(err, where, &je);
    int rc = ocn_game_from_json(root, where, out, err);
    json_decref(root);
    return rc;
}

int ocn_game_load_file(const char *path, ocn_game **out, ocn_error *err)
{
    json_error_t je;
    struct stat st;
    *out = NULL;
    /* issue 10: say what is wrong with the file itself, not "malformed JSON" */
    if (!stat(path, &st) && S_ISDIR(st.st_mode))
        return ocn_fail(err, OCN_EINVAL, "%s: is a directory, not a game description", path);
    /* a regular file only, opened without blocking: a FIFO as the game hung
     * every command, /dev/zero was read until memory ran out (issue 10) */
    unsigned char *text = NULL;
    size_t len = 0;
    int rr = ocn_read_regular_at(AT_FDCWD, path, path, OCN_MAX_GAME_BYTES, &text, &len, err);
    if (rr) return rr;
    if (len == 0) {
        free(text);
        return ocn_fail(err, OCN_EINVAL, "%s: malformed JSON: the file is empty", path);
    }
    json_t *root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root) return json_fail(err, path, &je);
    int rc = ocn_game_from_json(root, path, out, err);
    json_decref(root);
    return rc;
}

void ocn_game_free(ocn_game *g)
{
    if (!g) return;
    for (int t = 0; g->stages && t < g->T; t++) {
        free(g->stages[t].players);
        free(g->stages[t].carries);
    }
    free(g->stages);
    if (g->block_dim)
        for (int t = 0; t <= g->T; t++) free(g->block_dim[t]);
    if (g->block_off)
        for (int t = 0; t <= g->T; t++) free(g->block_off[t]);
    free(g->block_dim);
    free(g->block_off);
    free(g->n);
    free(g->block_names);
    free(g->outputs);
    if (g->lane_outputs)
        for (int n = 0; n < g->nlanes; n++) free(g->lane_outputs[n]);
    free(g->lane_outputs);
    free(g->lane_nout);
    if (g->json) json_decref((json_t *)g->json);
    free(g);
}

const ocn_player *ocn_game_lane_player(const ocn_game *g, int t, int lane)
{
    for (int p = 0; p < g->stages[t].nplayers; p++)
        if (g->stages[t].players[p].lane == lane) return &g->stages[t].players[p];
    return NULL;
}

int ocn_player_na(const ocn_player *pl)
{
    if (pl->kind == OCN_PLAYER_BIAS) return 1;
    if (pl->kind == OCN_PLAYER_CONV) return pl->conv.c * pl->conv.k * pl->conv.k + 1;
    return pl->in_dim + 1;
}

int ocn_player_ng(const ocn_player *pl) { return pl->kind == OCN_PLAYER_CONV ? pl->conv.co : pl->out_dim; }

int ocn_game_has_conv(const ocn_game *g)
{
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++)
            if (g->stages[t].players[p].kind == OCN_PLAYER_CONV) return 1;
    return 0;
}

int ocn_game_nparams(const ocn_game *g)
{
    int m = 0;
    for (int t = 0; t < g->T; t++)
        for (int p = 0; p < g->stages[t].nplayers; p++) m += g->stages[t].players[p].m;
    return m;
}

int ocn_game_is_trajectory(const ocn_game *g)
{
    const ocn_optimizer *o = &g->opt;
    return o->steps > 1 || o->data_stream || o->stat_decay != 0.0 || o->refresh_every != 1;
}

static json_t *block_list(const ocn_game *g, int n, const int *ids)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(g->block_names[ids[i]]));
    return a;
}

void *ocn_game_normalised(const ocn_game *g)
{
    json_t *r = json_object(), *loss = json_object(), *stages = json_array(), *opt = json_object(), *zero = json_array();
    json_object_set_new(r, "name", json_string(g->name));
    json_object_set_new(r, "seed", json_integer((json_int_t)g->seed));
    json_object_set_new(r, "batch", json_integer(g->batch));
    json_object_set_new(r, "input_dim", json_integer(g->input_dim));
    json_object_set_new(r, "weight_decay", json_real(g->weight_decay));
    json_object_set_new(loss, "kind", json_string(LOSS_NAMES[g->loss]));
    if (g->loss == OCN_LOSS_CE) json_object_set_new(loss, "classes", json_integer(g->classes));
    if (g->separable) {
        json_t *lo = json_array();
        for (int n = 0; n < g->nlanes; n++) json_array_append_new(lo, block_list(g, g->lane_nout[n], g->lane_outputs[n]));
        json_object_set_new(loss, "lane_outputs", lo);
    }
    json_object_set_new(r, "loss", loss);
    json_object_set_new(r, "outputs", block_list(g, g->noutputs, g->outputs));
    for (int t = 0; t < g->T; t++) {
        json_t *st = json_object(), *pl = json_array(), *ca = json_array();
        for (int p = 0; p < g->stages[t].nplayers; p++) {
            const ocn_player *q = &g->stages[t].players[p];
            json_t *o = json_object();
            json_object_set_new(o, "lane", json_integer(q->lane));
            json_object_set_new(o, "kind", json_string(KIND_NAMES[q->kind]));
            json_object_set_new(o, "in", json_string(g->block_names[q->in_block]));
            json_object_set_new(o, "out", json_string(g->block_names[q->out_block]));
            json_object_set_new(o, "out_dim", json_integer(q->out_dim));
            json_object_set_new(o, "act", json_string(ACT_NAMES[q->act]));
            if (q->kind == OCN_PLAYER_CONV) { /* §14 fields, defaults filled */
                json_object_set_new(o, "in_shape", json_pack("[iii]", q->conv.c, q->conv.h, q->conv.w));
                json_object_set_new(o, "out_channels", json_integer(q->conv.co));
                json_object_set_new(o, "kernel", json_integer(q->conv.k));
                json_object_set_new(o, "stride", json_integer(q->conv.s));
                json_object_set_new(o, "padding", json_string(PAD_NAMES[q->conv.same]));
            }
            json_array_append_new(pl, o);
        }
        for (int k = 0; k < g->stages[t].ncarries; k++) {
            json_t *o = json_object();
            json_object_set_new(o, "from", json_string(g->block_names[g->stages[t].carries[k].from]));
            json_object_set_new(o, "to", json_string(g->block_names[g->stages[t].carries[k].to]));
            json_array_append_new(ca, o);
        }
        json_object_set_new(st, "players", pl);
        json_object_set_new(st, "carries", ca);
        json_array_append_new(stages, st);
    }
    json_object_set_new(r, "stages", stages);
    const ocn_optimizer *o = &g->opt;
    json_object_set_new(opt, "game", json_string(GAME_NAMES[o->game]));
    json_object_set_new(opt, "curvature", json_string(CURV_NAMES[o->curvature]));
    json_object_set_new(opt, "dynamics", json_string(DYN_NAMES[o->dynamics]));
    json_object_set_new(opt, "value", json_string(VALUE_NAMES[o->value]));
    json_object_set_new(opt, "terminal", json_string(TERM_NAMES[o->terminal]));
    json_object_set_new(opt, "lr", json_real(o->lr));
    json_object_set_new(opt, "damping", json_real(o->damping));
    json_object_set_new(opt, "eps", json_real(o->eps));
    static const char *const zsorted[] = {"Mid", "Puv", "Pux", "Qthx", NULL}; /* §11 v2: `zero` sorted */
    for (int k = 0; zsorted[k]; k++)
        for (int j = 0; ZERO_NAMES[j]; j++)
            if (!strcmp(ZERO_NAMES[j], zsorted[k]) && (o->zero & (1u << j))) json_array_append_new(zero, json_string(zsorted[k]));
    json_object_set_new(opt, "zero", zero);
    json_object_set_new(opt, "steps", json_integer(o->steps));
    json_object_set_new(opt, "data", json_string(DATA_NAMES[o->data_stream]));
    json_object_set_new(opt, "stat_decay", json_real(o->stat_decay));
    json_object_set_new(opt, "refresh_every", json_integer(o->refresh_every));
    json_object_set_new(r, "optimizer", opt);
    return r;
}

/* Depth-first over sorted keys; numbers equal by value (1 == 1.0). */
static int json_same(json_t *a, json_t *b, char *path, size_t n)
{
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_object(a)) {
        const char **keys = malloc((json_object_size(a) + json_object_size(b) + 1) * sizeof *keys);
        size_t nk = 0, len = strlen(path);
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) keys[nk++] = k;
        json_object_foreach(b, k, v) if (!json_object_get(a, k)) keys[nk++] = k;
        for (size_t i = 1; i < nk; i++) /* insertion sort: small objects */
            for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
                const char *t = keys[j];
                keys[j] = keys[j - 1], keys[j - 1] = t;
            }
        int same = 1;
        for (size_t i = 0; same && i < nk; i++) {
            if (len == 0 && !strcmp(keys[i], "name")) continue; /* §11: `name` is ignored */
            snprintf(path + len, n - len, "%s%s", len ? "." : "", keys[i]);
            json_t *x = json_object_get(a, keys[i]), *y = json_object_get(b, keys[i]);
            same = x && y && json_same(x, y, path, n);
            if (same) path[len] = 0;
        }
        free(keys);
        return same;
    }
    if (json_is_array(a)) {
        size_t len = strlen(path);
        size_t na = json_array_size(a), nb = json_array_size(b);
        for (size_t i = 0; i < na || i < nb; i++) {
            snprintf(path + len, n - len, "[%zu]", i);
            if (i >= na || i >= nb || !json_same(json_array_get(a, i), json_array_get(b, i), path, n)) return 0;
            path[len] = 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

int ocn_game_same(const ocn_game *a, const ocn_game *b, char *diff, size_t n)
{
    json_t *x = ocn_game_normalised(a), *y = ocn_game_normalised(b);
    char path[1024] = "";
    int same = x && y && json_same(x, y, path, sizeof path);
    if (diff && n) snprintf(diff, n, "%s", same ? "" : path[0] ? path : "(whole game)");
    json_decref(x), json_decref(y);
    return same;
}
