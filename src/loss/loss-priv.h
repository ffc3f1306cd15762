/* Internal structure of score_loss. Never installed. */
#ifndef LIBSCORE_LOSS_PRIV_H
#define LIBSCORE_LOSS_PRIV_H

#include "core/core-priv.h"
#include "libscore/loss.h"

#define SCORE__LOSS_NPARAMS 10

struct score__model_ws; /* model/model-priv.h */

struct score_loss {
    int kind;
    /* what the model's evaluations write (made with the loss): the model is only read */
    struct score__model_ws *mws;
    score__param_val params[SCORE__LOSS_NPARAMS];
    /* workspace, grown to the largest batch (rows, probes) seen */
    size_t cap_n, cap_dim, cap_nk;
    double *t, *al, *si, *a, *k, *in, *c, *w, *u; /* per row */
    size_t *idx;                                   /* per row: level draw */
    double *vw, *vjv;                              /* per row and probe */
    float *xt, *xm, *z, *f, *gout;                 /* rows x dim */
    float *v, *jv;                                 /* rows x probes x dim */
};

/* Parameter table of the loss kind (registered in core/param-registry.h). */
const score__param_desc *score__loss_param_table(size_t *n_out);

#endif
