/* Internals of the sampling driver (sampler.c: object and parameters; sampler-run.c: the grid
 * and the runs). Never installed. */
#ifndef LIBSCORE_SAMPLER_PRIV_H
#define LIBSCORE_SAMPLER_PRIV_H

#include "core/comm-priv.h"
#include "evolve-priv.h"
#include "known-priv.h"
#include "smc-priv.h"
#include "step-priv.h"
#include "libscore/evolve.h"
#include "libscore/sampler.h"

#define NPARAMS 36
/* Value of a parameter of a sampler (an lvalue). */
#define PF(s, id) SCORE__PARAM_F64((s)->params, SCORE_SAMPLER_PARAM_NUM_STEPS, id)
#define PI(s, id) SCORE__PARAM_I64((s)->params, SCORE_SAMPLER_PARAM_NUM_STEPS, id)
/* The parameters after SCORE_SAMPLER_PARAM_PRECISION are read by their position in the table
 * (found by id), which does not assume that the ids before them are all present. */
int64_t *score__sampler_pi(score_sampler *s, int id);
#define PIX(s, id) (*score__sampler_pi((score_sampler *)(s), id))
/* 1 for the singlestep DPM-Solver types (SCORE_SAMPLER_PARAM_ORDER_SEQUENCE). */
int score__sampler_singlestep(const score_step *st);
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
    score__smc smc;       /* particles of a twisted SMC run (smc.c) */
    uint64_t nfe, steps, failed;
    /* workspace */
    size_t cap, grid_cap;
    double *grid, *ta, *tb, *zbuf;
    double *xd;           /* n * dim: the double state of a float-array run with precision 64 */
    score_evolve *ev;
    score_control *ctrl;
    score_comm *comm; /* borrowed, or NULL (score_sampler_set_comm()) */
};

/* Frees the per-run workspace (ta, tb, zbuf, xd). */
void score__sampler_free_ws(score_sampler *s);
/* The generic parameter accessors behind score_sampler_set_f64() .. score_sampler_get_i64(). */
int score__sampler_par_set_f64(score_sampler *obj, int param, double value);
int score__sampler_par_set_i64(score_sampler *obj, int param, int64_t value);
int score__sampler_par_get_f64(const score_sampler *obj, int param, double *out);
int score__sampler_par_get_i64(const score_sampler *obj, int param, int64_t *out);

/* The start std of a prior draw at the grid's first time t0 (sampler-run.c): the prior's std
 * when t0 = T, sigma(t0) for variance-exploding schedules, else sqrt(alpha^2 + sigma^2). */
int score__sampler_start_std(const score_schedule *sched, double t0, double *sd);
/* A twisted sequential Monte Carlo run (smc.c): the rows row0 .. row0 + n - 1 of a run whose
 * grid (npts times) is in s->grid, from x_init (n * dim, or NULL for prior draws) into out. */
int score__smc_run(score_sampler *s, score_sde *sde, const score_rng *rng, size_t row0,
                   size_t n, const float *x_init, float *out, size_t npts,
                   score_sampler_progress_fn progress, void *user_data);

#endif
