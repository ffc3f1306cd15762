/* Sliced Wasserstein-2 distance between two point clouds. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>

#include <libscore/libscore.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Both quantile functions are step functions on (0, 1]: Qa jumps at k / na, Qb at k / nb.
 * Walking the merged breakpoints integrates (Qa(u) - Qb(u))^2 du exactly. */
double cli_w2_sq_sorted_1d(const double *a, size_t na, const double *b, size_t nb)
{
    size_t i = 0, j = 0;
    double u = 0.0, acc = 0.0;
    while (i < na && j < nb) {
        double ua = (double)(i + 1) / (double)na, ub = (double)(j + 1) / (double)nb;
        double next = ua < ub ? ua : ub;
        double d = a[i] - b[j];
        acc += (next - u) * d * d;
        u = next;
        /* advance both on a common breakpoint (compare in integers to avoid rounding) */
        int adv_a = (i + 1) * nb <= (j + 1) * na;
        int adv_b = (j + 1) * na <= (i + 1) * nb;
        if (adv_a)
            i++;
        if (adv_b)
            j++;
    }
    return acc;
}

double cli_sliced_w2(const float *a, size_t na, const float *b, size_t nb, size_t dim,
                     size_t n_proj, uint64_t seed)
{
    if (a == NULL || b == NULL || na == 0 || nb == 0 || dim == 0 || n_proj == 0)
        return -1.0;
    double *dir = malloc(n_proj * dim * sizeof *dir);
    double *pa = malloc(na * sizeof *pa), *pb = malloc(nb * sizeof *pb);
    score_rng *rng = NULL;
    double total = -1.0;
    if (dir == NULL || pa == NULL || pb == NULL)
        goto out;
    if (score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed) != SCORE_OK)
        goto out;
    if (dim == 1) {
        for (size_t k = 0; k < n_proj; k++)
            dir[k] = 1.0;
        n_proj = 1;   /* in 1-D every direction gives the same distance */
    } else if (score_rng_fill_normal_f64(rng, 0, n_proj, 0, dim, dir) != SCORE_OK) {
        goto out;
    }
    total = 0.0;
    for (size_t k = 0; k < n_proj; k++) {
        double *d = dir + k * dim, nrm = 0.0;
        for (size_t j = 0; j < dim; j++)
            nrm += d[j] * d[j];
        nrm = sqrt(nrm);
        for (size_t j = 0; j < dim; j++)
            d[j] /= nrm;
        for (size_t i = 0; i < na; i++) {
            double s = 0.0;
            for (size_t j = 0; j < dim; j++)
                s += d[j] * a[i * dim + j];
            pa[i] = s;
        }
        for (size_t i = 0; i < nb; i++) {
            double s = 0.0;
            for (size_t j = 0; j < dim; j++)
                s += d[j] * b[i * dim + j];
            pb[i] = s;
        }
        qsort(pa, na, sizeof *pa, cmp_double);
        qsort(pb, nb, sizeof *pb, cmp_double);
        total += cli_w2_sq_sorted_1d(pa, na, pb, nb);
    }
    total = sqrt(total / (double)n_proj);
out:
    score_rng_free(rng);
    free(dir);
    free(pa);
    free(pb);
    return total;
}
