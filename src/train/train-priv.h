/* Internal structures of the training layer (optimizer, EMA, trainer). Never installed. */
#ifndef LIBSCORE_TRAIN_PRIV_H
#define LIBSCORE_TRAIN_PRIV_H

#include "core/core-priv.h"
#include "libscore/train.h"

#define SCORE__OPT_NPARAMS 9
#define SCORE__EMA_NPARAMS 2
#define SCORE__TRAINER_NPARAMS 6

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

#endif
