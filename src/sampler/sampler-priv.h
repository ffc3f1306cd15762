/* Internals of the sampling driver (sampler.c: object and parameters; sampler-run.c: the grid
 * and the runs). Never installed. */
#ifndef LIBSCORE_SAMPLER_PRIV_H
#define LIBSCORE_SAMPLER_PRIV_H

#include "core/comm-priv.h"
#include "evolve-priv.h"
#include "known-priv.h"
#include "step-priv.h"
#include "libscore/evolve.h"
#include "libscore/sampler.h"

#define NPARAMS 31
/* Value of a parameter of a sampler (an lvalue). */
#define PF(s, id) SCORE__PARAM_F64((s)->params, SCORE_SAMPLER_PARAM_NUM_STEPS, id)
#define PI(s, id) SCORE__PARAM_I64((s)->params, SCORE_SAMPLER_PARAM_NUM_STEPS, id)
#define LOWER_ORDER_FINAL_BELOW 10

struct score_sampler {
    size_t dim;
    score_step *pred, *corr;
    score__param_val params[NPARAMS];
    double *ugrid;
    size_t ugrid_n;
    score_sampler_hook_fn hook;
    void *hook_ud;
    score__known known;   /* known coordinates (score_sampler_set_known()) */
    uint64_t nfe, steps, failed;
    /* workspace */
    size_t cap, grid_cap;
    double *grid, *ta, *tb, *zbuf;
    score_evolve *ev;
    score_control *ctrl;
    score_comm *comm; /* borrowed, or NULL (score_sampler_set_comm()) */
};

/* Frees the per-run workspace (ta, tb, zbuf). */
void score__sampler_free_ws(score_sampler *s);

#endif
