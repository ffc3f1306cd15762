/* Known coordinates of a sampling run (score_sampler_set_known()): the mask and values, and
 * their imposition on the rows (score_sde's imputation). Never installed. */
#ifndef LIBSCORE_KNOWN_PRIV_H
#define LIBSCORE_KNOWN_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "libscore/rng.h"
#include "libscore/schedule.h"

/* First noise column of the known coordinates' forward-process noise: the noise of update c of
 * global row r is normal(counter c, row r, columns KNOWN_COL0 .. KNOWN_COL0 + dim - 1), far
 * from the columns the steps draw (blocks 0, 1, ... of dim columns), so it is independent of
 * the steps' noise and of every other (row, update). */
#define SCORE__KNOWN_COL0 ((size_t)1 << 33)

typedef struct score__known {
    size_t dim;
    size_t rows;          /* rows of the mask: 0 none, 1 every row, else global rows 0..rows-1 */
    uint8_t *mask;        /* rows * dim, 1 = known */
    float *y;             /* rows * dim known values (0 where unknown) */
    /* state of a run (score__known_begin()) */
    const score_rng *rng;
    const score_schedule *sched;
    size_t row0, n;       /* the run's rows */
    uint64_t counter;     /* noise counter offset of the current update */
    int moment;           /* the run conditions by the moment method (sde-inverse.c), not by
                           * replacement: nothing is imposed before the end */
    size_t cap;           /* rows of xe */
    float *xe;            /* cap * dim: the rows an evaluation sees */
    float *z;             /* dim: noise of one row */
} score__known;

/* Replaces the mask (rows = 0 removes it). Checks and copies. fn names the caller. */
int score__known_set(score__known *k, const char *fn, size_t dim, size_t rows,
                     const uint8_t *mask, const float *values);
void score__known_free(score__known *k);
/* 1 when a mask is set. */
int score__known_active(const score__known *k);
/* 1 when a mask is set and the run in progress imposes it by replacement (not the moment
 * method of the sde). */
int score__known_replaces(const score__known *k);
/* Prepares a run of rows row0 .. row0 + n - 1: checks that the mask has these rows and grows
 * the workspace (outside the loops). The caller checks that rng is given when noise is drawn. */
int score__known_begin(score__known *k, const char *fn, const score_rng *rng,
                       const score_schedule *sched, size_t row0, size_t n);
/* Sets the known coordinates of the n rows x (global rows row0 + i, or row0 + idx[i]) at their
 * times t (one time for all rows when t_all >= 0, else t[i]) to alpha(t) y + sigma(t) z with z
 * the noise of update `counter`; t = 0 gives y exactly. */
int score__known_impose(score__known *k, const char *fn, size_t row0, const size_t *idx,
                        size_t n, double t_all, const double *t, uint64_t counter, float *x);
/* Sets the known coordinates of the run's rows to y exactly. */
void score__known_finish(const score__known *k, size_t n, float *x);
/* The sde input overlay (score__sde_input_fn): the rows with their known coordinates imposed
 * at the evaluation times with the noise of the current update (k->counter). */
int score__known_input(void *ud, const char *fn, size_t n, int has_rows, size_t row0,
                       const size_t *idx, const double *t, const float *x, const float **x_eff);

#endif /* LIBSCORE_KNOWN_PRIV_H */
