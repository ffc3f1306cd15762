/* Internal structures of the training layer (optimizer, EMA, trainer). Never installed. */
#ifndef LIBSCORE_TRAIN_PRIV_H
#define LIBSCORE_TRAIN_PRIV_H

#include "core/core-priv.h"
#include "libscore/train.h"

#define SCORE__OPT_NPARAMS 9
#define SCORE__EMA_NPARAMS 2
#define SCORE__TRAINER_NPARAMS 8

struct score_optimizer {
    int kind;
    size_t n;
    score__param_val params[SCORE__OPT_NPARAMS];
    uint64_t step;      /* applied updates */
    uint64_t skipped;   /* refused (non-finite) steps */
    double last_norm;   /* gradient norm seen by the last step call */
    double last_lr;     /* learning rate of the last applied update */
    float *m;           /* SGD: momentum buffer; Adam: first moment */
    float *v;           /* Adam: second moment (NULL for SGD) */
    float *m_next;      /* score__optimizer_step_guarded(): the new moments before they are */
    float *v_next;      /* committed (allocated on first use; swapped with m, v) */
    double bound_m;     /* upper bounds of max |m_i| and max v_i kept by the guarded step */
    double bound_v;     /* (0 for zero moments; < 0: unknown, measured when needed) */
    int threads;        /* threads of the in-place sweep of the guarded step (the trainer sets
                         * its model's SCORE_MODEL_PARAM_THREADS; elementwise: same bits) */
    struct score__pool *pool; /* their pool (core/pool-priv.h), made on first use, not cloned */
    size_t pool_failed;       /* thread count whose pool could not be made (not retried) */
    struct score__pool *lent; /* the model's pool, lent by the trainer for one guarded step
                               * (used instead of pool when it has the sweep's thread count) */
};

struct score_ema {
    size_t n;
    score__param_val params[SCORE__EMA_NPARAMS];
    uint64_t num_updates;
    float *shadow;
};

/* Parameter tables (registered in core/param-registry.h). */
const score__param_desc *score__optimizer_param_table(size_t *n_out);
const score__param_desc *score__ema_param_table(size_t *n_out);
const score__param_desc *score__trainer_param_table(size_t *n_out);

/* Number of moment buffers of an optimizer kind (1 for SGD, 2 for Adam/AdamW). */
int score__optimizer_nbuf(int kind);

/* The trainer's step: score_optimizer_step() on opt->n values that commits nothing unless the
 * gradient and every new weight and moment are finite. A first sweep takes the gradient norm
 * (which bounds every |g_i|) and the largest |weight|; with the moments' magnitudes, which the
 * optimizer tracks from update to update (bound_m, bound_v), they bound every value of the
 * update. When that bound is below the float range (the normal case) the update is made in
 * place in a second sweep (*in_spare = 0). Otherwise the new weights go to spare (opt->n
 * floats, overlapping nothing) and the new moments to the optimizer's own spare buffers, with
 * checks, and they are committed only when all are finite (*in_spare = 1: the caller installs
 * spare as the weights). Both ways give the same bits. On SCORE_E_NUMERIC (non-finite
 * gradient, or an update that overflowed) params, the moments and the counters are unchanged
 * except the skipped counter. With ema != NULL (opt->n values) the EMA is updated with the new
 * weights once they are committed (score__ema_update_finite(): in the in-place update's own
 * sweep, otherwise from spare); a refused step leaves it unchanged. fn names the caller in error
 * messages. With cleared != NULL the in-place sweep also writes 0 over each gradient value once
 * it has read it (the caller's next gradient then needs no clearing pass) and sets *cleared to
 * 1; otherwise (and on every other path) grad is left as it was and *cleared is 0. */
int score__optimizer_step_guarded(score_optimizer *opt, const char *fn, float *params,
                                  float *grad, float *spare, int *in_spare, score_ema *ema,
                                  int *cleared);

/* Tells the optimizer that its moments were written other than by its own updates (their
 * tracked magnitude bounds are then recomputed when needed). */
void score__optimizer_moments_changed(score_optimizer *opt);

/* score_ema_update() for parameters known to be finite (no check, no argument validation). */
void score__ema_update_finite(score_ema *ema, const float *params);
/* The weight w of the next EMA update (shadow -= w (shadow - params)). */
double score__ema_next_weight(const score_ema *ema);

/* The trainer (trainer.c; checkpoint.c saves and loads it). */
enum { TRAINER_IX_BATCH, TRAINER_IX_SEED, TRAINER_IX_SHUFFLE, TRAINER_IX_USE_EMA, TRAINER_IX_EVERY, TRAINER_IX_MAX_SKIPS,
       TRAINER_IX_P_UNCOND, TRAINER_IX_REDUCE_ROWS };

struct score_trainer {
    score__param_val params[SCORE__TRAINER_NPARAMS];
    score_model *model;      /* borrowed */
    const score_sde *sde;    /* borrowed, may be NULL */
    score_loss *loss;        /* owned copy */
    score_optimizer *opt;    /* owned */
    score_ema *ema;          /* owned */
    score_rng *rng;          /* owned: seed = SEED; stream 0 = loss noise, 1 = permutations,
                              * 2 = label dropout */
    score_model *ema_model;  /* owned clone, created on demand */
    size_t np;
    float *p, *g;            /* parameters and gradient (np) */
    int g_zero;              /* 1: g is all zero (the last update's sweep cleared it) */
    float *spare;            /* np: the optimizer's output, swapped with the model's array */
    float *data;             /* rows x dim, owned copy */
    size_t rows, dim;
    size_t *perm;            /* rows */
    double *u;               /* rows: uniforms of the permutation */
    uint64_t perm_epoch;
    int perm_valid;
    float *batch;            /* cap_batch x dim */
    size_t cap_batch;
    /* per-row conditions of the data (score_trainer_set_labels / _set_context), or NULL */
    int32_t *labels;         /* label_rows labels */
    size_t label_rows;
    float *ctx;              /* ctx_rows x ctx_m */
    size_t ctx_rows, ctx_m;
    /* those of the minibatch, cap_cond rows */
    int32_t *blab;
    float *bctx;
    double *bu;              /* uniforms of the label dropout */
    size_t cap_cond;
    uint64_t step, skipped;
    double last_loss, last_lr;
    int ema_init;            /* the EMA shadow has been (re)started from the weights */
    /* distributed steps (score_trainer_set_comm(), trainer-comm.c) */
    score_comm *comm;        /* borrowed, or NULL */
    unsigned char *crec;     /* all blocks' records (loss, status, gradient), cap_rec bytes */
    size_t cap_rec;
    size_t step_pos;         /* position in the epoch's order of the current minibatch's row 0 */
    int comm_checked;        /* the ranks' fingerprints were compared since the last change */
};

static inline int64_t score__trainer_i64(const score_trainer *tr, int ix)
{
    return tr->params[ix].i;
}

/* Points the trainer's generator (remade when the seed parameter changed) at stream and
 * counter; SCORE_E_RANGE when counter does not fit the generator's 2^32 counters. */
int score__trainer_rng_at(score_trainer *tr, uint64_t stream, uint64_t counter, const char *fn);

/* trainer-comm.c: one step with a communicator; the fingerprint check is redone after any
 * change of the state (score__trainer_comm_dirty()). */
int score__trainer_step_comm(score_trainer *tr, double *loss_out, const char *fn);
static inline void score__trainer_comm_dirty(score_trainer *tr)
{
    tr->comm_checked = 0;
}

/* trainer.c, for trainer-comm.c: the minibatch of the current step (B rows in tr->batch,
 * conditions not yet given to the loss); the conditions of minibatch rows pos .. pos + n - 1
 * given to the loss; the skip of a step with a non-finite loss or gradient; the update of the
 * weights, moments and EMA with a gradient in tr->g. */
int score__trainer_gather_rows(score_trainer *tr, size_t *bsz_out, const char *fn);
int score__trainer_conditions(score_trainer *tr, size_t pos, size_t n, const char *fn);
int score__trainer_skip(score_trainer *tr, const char *fn, const char *why);
int score__trainer_apply(score_trainer *tr, const char *fn);
int score__trainer_ema_start(score_trainer *tr);

/* The fingerprint of the dataset a trainer draws from (checkpoint-inputs.c): rows, dim and the
 * hash of the data; label rows (0: no labels) and the hash of the labels; context rows and
 * values per row (0: none) and the hash of the contexts. Each hash is the 64-bit FNV-1a of the
 * values' little-endian bytes in row-major order (of nothing, 0xcbf29ce484222325, for an
 * absent part): the same on every machine. Checkpoints record it, and the ranks of a
 * communicator compare it. */
typedef struct score__data_print {
    uint64_t v[8]; /* rows, dim, hash, label_rows, labels_hash, context_rows, context_dim,
                    * context_hash */
} score__data_print;
void score__trainer_data_print(const score_trainer *tr, score__data_print *out);

/* checkpoint.c, for checkpoint-inputs.c: a parameter's value as the checkpoint's text (see
 * there); the refusal of a parameter that differs, naming it and both values. */
void score__ckpt_fmt_val(char *buf, size_t len, const score__param_desc *d, score__param_val v);
int score__ckpt_mismatch(const char *fn, const char *group, const char *name, const char *stored,
                         const char *mine);

/* checkpoint-inputs.c: the trainer's inputs as checkpoint metadata ("config.sde.*",
 * "config.schedule.*" and the tensor "config.schedule.array", "config.data.*"); whether a
 * "config." key is one of them; the comparison of a checkpoint's inputs with the trainer's
 * (SCORE_E_FORMAT naming the first difference; entries absent from an older checkpoint are
 * not checked). */
struct score__st_writer;
struct score__st_reader;
int score__ckpt_put_inputs(const char *fn, struct score__st_writer *w, const score_trainer *tr);
int score__ckpt_input_key(const char *key);
int score__ckpt_check_inputs(const char *fn, const score_trainer *tr,
                             const struct score__st_reader *r);

#endif
