/* Twisted sequential Monte Carlo runs of the sampler (smc.c, score_sampler_run() with
 * SCORE_SAMPLER_PARAM_PARTICLES > 1). Never installed. */
#ifndef LIBSCORE_SMC_PRIV_H
#define LIBSCORE_SMC_PRIV_H

#include <stddef.h>
#include <stdint.h>

/* Workspace of the particles of one block of rows, and the diagnostics of the last run. */
typedef struct score__smc {
    size_t cap;             /* particles the arrays hold */
    float *x, *s, *g;       /* cap * dim: states, twisted scores, twist terms */
    float *x2, *s2, *g2;    /* cap * dim: the same after resampling */
    float *z;               /* cap * dim: the proposal's noise */
    double *lt, *lt2;       /* cap: log twist of every particle (and after resampling) */
    double *lw;             /* cap: log weight of every particle */
    double *t;              /* cap: times of an evaluation */
    size_t *anc;            /* cap: ancestors, then the chosen particle of each row */
    /* diagnostics of the last run (score_sampler_get_ess()) */
    int ran;                /* the last run was a particle run */
    double ess_sum;         /* sum over rows of the final effective sample size */
    double ess_min;         /* smallest effective sample size of a row at any step */
    size_t ess_rows;        /* rows in ess_sum */
    uint64_t resamples;     /* row-steps that resampled */
} score__smc;

void score__smc_free(score__smc *w);

#endif /* LIBSCORE_SMC_PRIV_H */
