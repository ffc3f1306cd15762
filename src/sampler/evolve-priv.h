/* Fixed steps of score_evolve for the sampling drivers: the one place where noise counters of
 * fixed-grid runs are computed. Never installed. */
#ifndef LIBSCORE_EVOLVE_PRIV_H
#define LIBSCORE_EVOLVE_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "libscore/evolve.h"

/* Noise layout of fixed steps after an init: fixed step k (k predictor steps taken so far)
 * uses the counter base + k * stride + slot. An init sets base 0, stride 1 (the public
 * score_evolve_apply_fixed: counter k). The sampler uses base 1, stride 1 + corrector steps:
 * slot 0 for the predictor, slots 1 + j for corrector step j. */
int score__evolve_set_noise(score_evolve *e, uint64_t base, uint64_t stride);

/* One fixed step of every row to t_next with the counter of @p slot; advance = 1 moves the rows
 * to t_next and counts the step (predictor), advance = 0 keeps their time (corrector). x is a
 * float state (f64 = 0) or a double state (f64 = 1, the step's precision 64). */
int score__evolve_step(score_evolve *e, score_step *step, score_sde *sde, double t_next,
                       size_t n, int f64, void *x, const score_rng *rng, uint64_t slot,
                       int advance);

#endif /* LIBSCORE_EVOLVE_PRIV_H */
