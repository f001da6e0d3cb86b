/* `ocn train` (issue 13): a §12 network trained on a classification data set
 * with the optimized path's §12/§13 optimizer (the DDP variants) or a plain
 * baseline with PyTorch's update rules (SGD with momentum, RMSprop, Adam).
 *
 * Data set: a directory of four .npy files — X.npy (N, d) any numeric dtype,
 * y.npy (N,) integer labels, train_idx.npy and test_idx.npy (integer row
 * indices).  Features are standardised with the training part's mean and
 * (population) std; a feature with std 0 is only centred.
 *
 * Networks: chains of §12 stages, one player per stage (dense, bias, act or
 * §14 conv), no carries — what the baselines' own forward/backward (src/train_net.c)
 * computes; other shapes are refused with a message naming the stage.
 * Deterministic given the seed: parameters drawn by the §12 rule and the
 * batches shuffled from one gsl_rng_mt19937 seeded with it. */
#ifndef OCN_TRAIN_H
#define OCN_TRAIN_H

#include <stdio.h>
#include "ocn/arrays.h"
#include "ocn/game.h"

/* ---- data set -------------------------------------------------------- */

typedef struct {
    size_t n, d;          /* rows, features */
    double *X;            /* (n, d) standardised (see ocn_dataset_prepare) */
    int *y;               /* (n,) labels in [0, classes) */
    int classes;          /* max label + 1 */
    size_t ntrain, ntest; /* index lists into X/y */
    size_t *train, *test;
    double *mean, *std;   /* per feature, of the rows standardised by */
    int prepared;         /* X standardised (ocn_dataset_prepare, once) */
} ocn_dataset;

/* Reads DIR/{X,y,train_idx,test_idx}.npy; every message names the file and
 * what is wrong (shape mismatch, label not an integer or negative, index out
 * of range or repeated, train and test overlapping, NaN/Inf features). */
int ocn_dataset_load(const char *dir, ocn_dataset **out, ocn_error *err);
/* X as read, until ocn_dataset_prepare (call it once) standardises it: */
void ocn_dataset_free(ocn_dataset *d);
/* valid = 0: standardise with the training split.  valid in (0, 1): hold out
 * round(valid·ntrain) of the training rows (drawn by a shuffle seeded with
 * valid_seed, the same for every run) as the evaluation split, train on the
 * rest and standardise with the rest; the test split is then never used. */
int ocn_dataset_prepare(ocn_dataset *d, double valid, unsigned long valid_seed, ocn_error *err);

/* ---- the network (§12 chain) ----------------------------------------- */

typedef struct ocn_net ocn_net;
/* Checks the game is a chain this code computes; the message names the stage. */
int ocn_net_new(const ocn_game *g, ocn_net **out, ocn_error *err);
void ocn_net_free(ocn_net *n);
int ocn_net_nparams(const ocn_net *n);
/* Parameters as §11 names theta_t{t}_n{n} (and Wfix_t{t}_n{n} of bias players). */
int ocn_net_get(const ocn_net *n, const double *theta, ocn_arrayset *set, ocn_error *err);
int ocn_net_set(const ocn_net *n, double *theta, const ocn_arrayset *set, ocn_error *err);
/* §12 initialisation (W ~ N(0, 1/in), b ~ N(0, 0.01), stage, W-then-b
 * order) from `rng` (a gsl_rng *), into theta and the net's fixed W. */
void ocn_net_init(ocn_net *n, double *theta, void *rng);
/* Mean cross-entropy and accuracy of rows idx[0..k) (no weight decay). */
void ocn_net_eval(ocn_net *n, const double *theta, const ocn_dataset *d, const size_t *idx, size_t k,
                  double *loss, double *acc);
/* Batch gradient of §1's objective on rows idx[0..B): grad = mean_i ∇φ_i + λθ.
 * persq (may be NULL) gets mean_i (∇φ_i)² elementwise (§5 rmsprop's statistic,
 * weight decay excluded).  Returns the batch loss (mean φ + λ/2‖θ‖²). */
double ocn_net_grad(ocn_net *n, const double *theta, const ocn_dataset *d, const size_t *idx, size_t B,
                    double lambda, double *grad, double *persq);

/* ---- optimizers and the driver --------------------------------------- */

typedef enum { OCN_TRAIN_GAME, OCN_TRAIN_SGD, OCN_TRAIN_RMSPROP, OCN_TRAIN_ADAM } ocn_train_method;

typedef struct {
    ocn_train_method method;  /* GAME: the game's optimizer on the optimized path */
    double lr;                /* baselines (the game's optimizer.lr for GAME) */
    double momentum;          /* SGD (PyTorch: dampening 0, not Nesterov) */
    double alpha;             /* RMSprop smoothing (PyTorch default 0.99) */
    double beta1, beta2;      /* Adam (0.9, 0.999) */
    double eps;               /* RMSprop/Adam (1e-8) */
    int epochs;               /* default 40 */
    unsigned long seed;
    const char *backend;      /* optimized path: "cpu" (default) or "cuda" */
    int no_timing;            /* CSV/JSON without the seconds columns (byte-identical runs) */
    FILE *progress;           /* one line per epoch, or NULL */
} ocn_train_opts;

typedef struct {
    int epochs_run;           /* < epochs when it diverged */
    int diverged;             /* a non-finite loss or parameter (or the optimized path refused) */
    char why[1200];
    double *train_loss, *eval_loss, *eval_acc, *seconds; /* per epoch (epochs entries; [0] = before training) */
    double step_seconds;      /* training time (steps only) summed */
} ocn_train_result;

void ocn_train_opts_default(ocn_train_opts *o);
/* One baseline step (o->method SGD, RMSPROP or ADAM; PyTorch's rules), step
 * = 1, 2, ...; buf (momentum / first moment) and sq (square average) start
 * at 0 and are carried by the caller; g includes λθ. */
void ocn_train_baseline_step(const ocn_train_opts *o, double lr, long step, const double *g, double *buf, double *sq,
                             double *theta, size_t M);
/* One step of the game's optimizer on the optimized path (what `ocn train`
 * does per batch): θ and the rows idx[0..g->batch) of d as §11 inputs into
 * `in` (a scratch set the caller owns and reuses), ocn_opt_step with the
 * carried §13 state st (ocn_opt_state_new(g, &g->opt, …)), θ ← theta_new. */
typedef struct ocn_opt_state ocn_opt_state;
int ocn_train_game_step(const ocn_game *g, const ocn_net *net, ocn_opt_state *st, const ocn_dataset *d,
                        const size_t *idx, double *theta, ocn_arrayset *in, ocn_error *err);
/* Trains g's network on d (prepared).  Batches of g->batch rows, the last
 * partial batch of an epoch dropped (the optimized path's batch is fixed).
 * Row e of the result: after e epochs (row 0: the initial parameters). */
int ocn_train_run(const ocn_game *g, const ocn_dataset *d, const ocn_train_opts *o, ocn_train_result *res,
                  ocn_error *err);
void ocn_train_result_free(ocn_train_result *r);

/* The command line `ocn train ...` (src/train_cmd.c); returns the exit status. */
int ocn_cmd_train(int argc, char **argv);

#endif
