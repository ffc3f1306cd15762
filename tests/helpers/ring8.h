/* The ring of 8 Gaussians (score_dataset_toy_mixture "ring8") in tests of class-conditional
 * sampling: which component a sample lands in. */
#ifndef LIBSCORE_TEST_RING8_H
#define LIBSCORE_TEST_RING8_H

#include <math.h>
#include <stddef.h>

#define K8 8

/* Fraction of the n 2-D samples in out whose nearest of the K8 means mu (2 * K8 values) is
 * mean y. */
static inline double ring8_nearest_fraction(const double *mu, int y, size_t n, const float *out)
{
    size_t hit = 0;
    for (size_t b = 0; b < n; b++) {
        int best = 0;
        double bd = INFINITY;
        for (int j = 0; j < K8; j++) {
            double dx = out[2 * b] - mu[2 * j], dy = out[2 * b + 1] - mu[2 * j + 1];
            if (dx * dx + dy * dy < bd) {
                bd = dx * dx + dy * dy;
                best = j;
            }
        }
        hit += best == y;
    }
    return (double)hit / (double)n;
}

#endif /* LIBSCORE_TEST_RING8_H */
