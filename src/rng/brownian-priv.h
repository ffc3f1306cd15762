/* Brownian paths keyed by the counter-based generator: one path per (seed, stream, generator
 * counter, row, column) on [0, T], queried at arbitrary times (internal; the samplers' noise
 * with SCORE_STEP_PARAM_BROWNIAN). */
#ifndef LIBSCORE_BROWNIAN_PRIV_H
#define LIBSCORE_BROWNIAN_PRIV_H

#include <stddef.h>

#include "rng-priv.h"

/* Bisection depth: the path is exact Brownian motion at the 2^24 + 1 dyadic points
 * k T / 2^24 and linear between them. */
#define SCORE__BROWNIAN_DEPTH 24

/* Doubles of scratch that one query of a row with dim columns needs. */
#define SCORE__BROWNIAN_SCRATCH(dim) (4 * (dim))

/* W(t) of global row `row` (dim columns) into w; t is clamped to [0, T]. scratch holds
 * SCORE__BROWNIAN_SCRATCH(dim) doubles (w may not overlap it). T > 0. */
void score__brownian_at(const score_rng *rng, double T, size_t row, size_t dim, double t,
                        double *w, double *scratch);

/* The standardised increment (W(t1) - W(t0)) / sqrt(|t1 - t0|) of row `row` into out (dim
 * floats): a standard normal vector; increments over disjoint intervals are independent and
 * over nested ones consistent (zeros for t0 = t1). scratch: SCORE__BROWNIAN_SCRATCH(dim) + 2 dim
 * doubles. */
void score__brownian_increment(const score_rng *rng, double T, size_t row, size_t dim,
                               double t0, double t1, float *out, double *scratch);

#endif
