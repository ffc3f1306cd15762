/* Internal access to the counter-based generator for other modules. */
#ifndef LIBSCORE_RNG_PRIV_H
#define LIBSCORE_RNG_PRIV_H

#include <stdint.h>

#include "libscore/rng.h"

struct score_rng {
    int kind;
    uint64_t seed;
    uint32_t stream;
    uint32_t counter;
};

/* One Philox4x32-10 block. */
void score__philox4x32_10(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* Box-Muller on n word pairs (w1 gives the radius, w2 the angle): zc[i] and zs[i] are the cos
 * and sin normals of pair i, as in the normal fills (exposed for tests). No array may overlap
 * another. */
void score__rng_box_muller(size_t n, const uint32_t *restrict w1, const uint32_t *restrict w2,
                           double *restrict zc, double *restrict zs);

/* Unchecked fills for internal use (arguments already validated by the caller); the counter is
 * given explicitly so that drivers can draw noise for (step k, row i) without touching the
 * handle. */
void score__rng_normal_at(const score_rng *rng, uint32_t counter, size_t row0, size_t nrows,
                          size_t col0, size_t ncols, float *out);
void score__rng_uniform_f64_at(const score_rng *rng, uint32_t counter, size_t row0,
                               size_t nrows, size_t col0, size_t ncols, double *out);
void score__rng_rademacher_at(const score_rng *rng, uint32_t counter, size_t row0,
                              size_t nrows, size_t col0, size_t ncols, float *out);

#endif
