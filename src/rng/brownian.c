/* Brownian paths on top of the counter-based generator, for noise that is consistent across
 * step sizes (the same seed at 20 and at 200 steps follows the same path).
 *
 * A path of one (row, column) on [0, T] is built by bisection: W(0) = 0, W(T) = sqrt(T) z_0,
 * and the value at the midpoint m of a dyadic interval [a, b] (depth d, index k, so
 * [a, b] = [k, k + 1] T / 2^d) is the Brownian-bridge draw
 *   W(m) = (W(a) + W(b)) / 2 + sqrt(b - a) / 2 z_{2^d + k},
 * where z_j is the standard normal at generator counter j, the row's number and the column.
 * Every dyadic value is a pure function of its position, so any set of queries sees one path;
 * below depth SCORE__BROWNIAN_DEPTH the path is linear (a query descends at most that many
 * levels and stops early at a dyadic point). The normals come from a generator whose key is the
 * seed mixed with the handle's counter, so they do not coincide with the step noise of the
 * same seed (which uses the counter slot for the step number) and a caller that advances the
 * counter between runs gets a fresh path. */
#include <math.h>

#include "brownian-priv.h"
#include "core/core-priv.h"

/* The generator of the path's normals: same stream, key mixed with the counter. */
static score_rng path_rng(const score_rng *rng)
{
    score_rng r = *rng;
    uint64_t c = (uint64_t)rng->counter * 2u + 1u;
    r.seed = rng->seed ^ (c * 0xD1B54A32D192ED03ull) ^ 0x8BB84B93962EACC9ull;
    r.counter = 0;
    return r;
}

/* dim normals of node j of row `row`. */
static void node_normals(score_rng *r, uint32_t j, size_t row, size_t dim, double *z)
{
    int rc;
    r->counter = j;
    /* cannot fail: the caller's rows and columns were checked against the same limits */
    rc = score_rng_fill_normal_f64(r, row, 1, 0, dim, z);
    (void)rc;
}

void score__brownian_at(const score_rng *rng, double T, size_t row, size_t dim, double t,
                        double *w, double *scratch)
{
    score_rng r = path_rng(rng);
    double *wa = scratch, *wb = scratch + dim, *z = scratch + 2 * dim;
    double a = 0.0, b = T;
    uint32_t k = 0;
    if (!(t > 0.0)) {
        for (size_t j = 0; j < dim; j++)
            w[j] = 0.0;
        return;
    }
    node_normals(&r, 0, row, dim, z);
    for (size_t j = 0; j < dim; j++) {
        wa[j] = 0.0;
        wb[j] = sqrt(T) * z[j];
    }
    if (t >= T) {
        for (size_t j = 0; j < dim; j++)
            w[j] = wb[j];
        return;
    }
    for (int d = 0; d < SCORE__BROWNIAN_DEPTH; d++) {
        double m = 0.5 * (a + b), amp = 0.5 * sqrt(b - a);
        node_normals(&r, ((uint32_t)1 << d) + k, row, dim, z);
        if (t == m) {
            for (size_t j = 0; j < dim; j++)
                w[j] = 0.5 * (wa[j] + wb[j]) + amp * z[j];
            return;
        }
        if (t < m) {
            for (size_t j = 0; j < dim; j++)
                wb[j] = 0.5 * (wa[j] + wb[j]) + amp * z[j];
            b = m;
            k = 2 * k;
        } else {
            for (size_t j = 0; j < dim; j++)
                wa[j] = 0.5 * (wa[j] + wb[j]) + amp * z[j];
            a = m;
            k = 2 * k + 1;
        }
    }
    {
        double u = (t - a) / (b - a);
        for (size_t j = 0; j < dim; j++)
            w[j] = wa[j] + u * (wb[j] - wa[j]);
    }
}

void score__brownian_increment(const score_rng *rng, double T, size_t row, size_t dim,
                               double t0, double t1, float *out, double *scratch)
{
    double *w0 = scratch + SCORE__BROWNIAN_SCRATCH(dim), *w1 = w0 + dim;
    double inv;
    if (t1 == t0) {
        for (size_t j = 0; j < dim; j++)
            out[j] = 0.0f;
        return;
    }
    inv = 1.0 / sqrt(fabs(t1 - t0));
    score__brownian_at(rng, T, row, dim, t0, w0, scratch);
    score__brownian_at(rng, T, row, dim, t1, w1, scratch);
    for (size_t j = 0; j < dim; j++)
        out[j] = (float)((w1[j] - w0[j]) * inv);
}
