/* The network-as-game data model (SPEC §1, §3, §12), shared by reference/,
 * optimized/ and harness/.  Only the description lives here: no math. */
#ifndef OCN_GAME_H
#define OCN_GAME_H

#include <stddef.h>
#include "ocn/error.h"

#define OCN_MAX_NAME 128

/* Limits of a description (issue 10; docs/decisions.md "Limits (issue 10)").
 * The loader refuses anything beyond them with a message naming the stage,
 * player or field, so code past the loader may rely on them: every fixed-size
 * per-player array is sized by OCN_MAX_PLAYERS, and every dimension, parameter
 * count, B·n and (B·n)² the layout implies fits its `int`/`size_t` type. */
#define OCN_MAX_GAME_BYTES ((size_t)64 << 20) /* a game description file (issue 10: /dev/zero as the game) */
#define OCN_MAX_PLAYERS 64        /* players per stage; lanes are 0 .. OCN_MAX_PLAYERS-1 */
#define OCN_MAX_STAGES 4096       /* T */
#define OCN_MAX_CARRIES 1024      /* carries per stage */
#define OCN_MAX_BLOCKS 4096       /* distinct block names in a description */
#define OCN_MAX_DIM (1 << 20)     /* batch, input_dim, out_dim, classes */
#define OCN_MAX_HYPER 1e10        /* lr, damping, eps, weight_decay are at most this */

typedef enum { OCN_PLAYER_DENSE, OCN_PLAYER_BIAS, OCN_PLAYER_ACT, OCN_PLAYER_CONV } ocn_player_kind;

/* SPEC §14 geometry of a conv player (zero for other kinds): input image
 * (c, h, w) channel-major, co output channels, odd-or-any kernel k, stride s,
 * zero padding pad on each side ((k-1)/2 for `same`, 0 for `valid`), output
 * image (co, ho, wo).  W is (co, c·k²), θ = vec([W b]) column-major (§2).
 * `fault` is fault injection for tests only (never parsed): 1 makes the
 * reference read kernel tap (i, j) as (j, i), a transposed kernel index. */
typedef struct { int c, h, w, co, k, s, pad, same, ho, wo, fault; } ocn_conv;
typedef enum { OCN_ACT_IDENTITY, OCN_ACT_TANH, OCN_ACT_RELU, OCN_ACT_SIGMOID } ocn_act;
typedef enum { OCN_LOSS_CE, OCN_LOSS_MSE } ocn_loss_kind;
typedef enum { OCN_GAME_FNE, OCN_GAME_GR } ocn_game_kind;
typedef enum {
    OCN_CURV_EXACT, OCN_CURV_SGD, OCN_CURV_RMSPROP, OCN_CURV_GN_OUTER,
    OCN_CURV_KFAC, OCN_CURV_COOP_KFAC
} ocn_curvature;
typedef enum { OCN_DYN_GN, OCN_DYN_FULL } ocn_dynamics;
typedef enum { OCN_VALUE_AUGMENTED, OCN_VALUE_BLOCKDIAG, OCN_VALUE_PERSAMPLE } ocn_value_mode;
typedef enum { OCN_TERMINAL_EXACT, OCN_TERMINAL_OUTER } ocn_terminal;

/* SPEC §12 `zero` flags (degeneracy checks, §9). */
enum { OCN_ZERO_QTHX = 1, OCN_ZERO_PUV = 2, OCN_ZERO_PUX = 4, OCN_ZERO_MID = 8 };

typedef struct {
    int lane;
    ocn_player_kind kind;
    ocn_act act;
    int in_block, out_block;   /* block ids */
    int in_dim, out_dim;
    int m;                     /* parameter count: dense out*(in+1), bias out, act 0, conv co*(c*k*k+1) */
    ocn_conv conv;             /* kind conv only (§14) */
} ocn_player;

typedef struct { int from, to; } ocn_carry;

typedef struct {
    int nplayers;
    ocn_player *players;
    int ncarries;
    ocn_carry *carries;
} ocn_stage;

typedef struct {
    ocn_game_kind game;
    ocn_curvature curvature;
    ocn_dynamics dynamics;
    ocn_value_mode value;
    ocn_terminal terminal;
    double lr, damping, eps;
    unsigned zero;             /* OCN_ZERO_* bits */
    /* §13 trajectory fields (defaults: the one-step semantics) */
    int steps;                 /* n_s >= 1 */
    int data_stream;           /* 0: "fixed", 1: "stream" */
    double stat_decay;         /* ρ in [0, 1) */
    int refresh_every;         /* T_r >= 1 */
} ocn_optimizer;

/* A loaded, validated game.  Block layout per time t = 0..T:
 * block_dim[t][b] (0 = not alive) and block_off[t][b]; state dim n[t]. */
typedef struct ocn_game {
    char name[OCN_MAX_NAME];
    unsigned long seed;
    int batch, input_dim;
    ocn_loss_kind loss;
    int classes;
    double weight_decay;
    int T;
    ocn_stage *stages;
    int nblocks;
    char (*block_names)[OCN_MAX_NAME];
    int **block_dim, **block_off;
    int *n;
    int noutputs;
    int *outputs;              /* blocks read by φ, concatenated */
    int nlanes;                /* N = max lane + 1 */
    int separable;             /* loss.lane_outputs given */
    int *lane_nout;            /* per lane: number of output blocks */
    int **lane_outputs;        /* per lane: block ids */
    int out_dim;               /* dim of the concatenated outputs */
    ocn_optimizer opt;
    void *json;                /* the description as parsed (jansson json_t*), for manifests */
} ocn_game;

/* Parse and validate a §12 description.  `where` prefixes every message
 * (a file name, or "DIR/manifest.json: game"). */
int ocn_game_load_file(const char *path, ocn_game **out, ocn_error *err);
int ocn_game_load_string(const char *text, const char *where, ocn_game **out, ocn_error *err);
/* From an already parsed json_t* (borrowed). */
int ocn_game_from_json(const void *json, const char *where, ocn_game **out, ocn_error *err);
void ocn_game_free(ocn_game *g);

/* Lane payoff dimension helpers. */
const ocn_player *ocn_game_lane_player(const ocn_game *g, int t, int lane); /* NULL = dummy */
int ocn_game_nparams(const ocn_game *g);   /* total parameter count */
/* KFAC factor dimensions of a player (§5, §14): the length of a = [z; 1]
 * (bias: 1; conv: the patch c·k² + 1) and of g (conv: the co channels). */
int ocn_player_na(const ocn_player *pl);
int ocn_player_ng(const ocn_player *pl);
/* 1 when some stage of g has a conv player (§14: reference-only paths). */
int ocn_game_has_conv(const ocn_game *g);

/* §11 v2: the description with every default filled in (optimizer and §13
 * fields, terminal, outputs, carries, out_dim of act players), `zero` sorted:
 * a new jansson json_t* (the caller json_decref()s it), NULL when out of memory. */
void *ocn_game_normalised(const ocn_game *g);
/* §11 v2: same game when the normalised forms are equal by value (1 == 1.0),
 * ignoring `name`.  Returns 1 if equal; else 0 and the first differing field
 * (sorted-key depth-first, e.g. "optimizer.damping") in diff. */
int ocn_game_same(const ocn_game *a, const ocn_game *b, char *diff, size_t n);
/* §13: a trajectory (steps > 1 or any §13 field off its default). */
int ocn_game_is_trajectory(const ocn_game *g);

const char *ocn_act_name(ocn_act a);
const char *ocn_curvature_name(ocn_curvature c);
const char *ocn_value_name(ocn_value_mode v);

#endif
