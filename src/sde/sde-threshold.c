/* Thresholding of the data prediction (see "Thresholding" in sde.h): static clipping to a box
 * per dimension and dynamic (percentile) thresholding relative to that box, or to [-1, 1]
 * without one. The combine of sde.c maps a row's score to x0, calls score__sde_threshold_row
 * and maps the result back, so every output of an evaluation is that of the thresholded x0. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "sde-priv.h"

double score__sde_threshold_p(const score_sde *sde)
{
    return score__sde_par_f(sde, SCORE_SDE_PARAM_THRESHOLD);
}

int score__sde_threshold_active(const score_sde *sde)
{
    return sde->clip_lo != NULL || score__sde_threshold_p(sde) > 0.0;
}

void score__sde_threshold_free(score_sde *sde)
{
    score__free(sde->clip_lo);
    score__free(sde->clip_lof);
    sde->clip_lo = sde->clip_hi = NULL;
    sde->clip_lof = sde->clip_hif = NULL;
    score__free(sde->trow);
    sde->trow = NULL;
}

int score_sde_set_clip(score_sde *sde, size_t n, const double *lo, const double *hi)
{
    size_t d;
    double *b;
    float *bf;
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde is NULL");
    if ((lo == NULL) != (hi == NULL))
        return score__error(SCORE_E_INVAL, __func__, "only one of lo, hi is NULL");
    if (lo == NULL) {
        score__free(sde->clip_lo);
        score__free(sde->clip_lof);
        sde->clip_lo = sde->clip_hi = NULL;
        sde->clip_lof = sde->clip_hif = NULL;
        return SCORE_OK;
    }
    d = sde->dim;
    if (n != 1 && n != d)
        return score__error(SCORE_E_SHAPE, __func__, "%zu bounds: give 1 or dim = %zu", n, d);
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(lo[j]) || !isfinite(hi[j]) || fabs(lo[j]) > FLT_MAX ||
            fabs(hi[j]) > FLT_MAX)
            return score__error(SCORE_E_RANGE, __func__, "bounds [%g, %g] of dimension %zu are "
                                "not finite floats", lo[j], hi[j], j);
        if (!(hi[j] > lo[j]))
            return score__error(SCORE_E_RANGE, __func__, "bounds [%g, %g] of dimension %zu: hi "
                                "must exceed lo", lo[j], hi[j], j);
    }
    b = score__calloc(2 * d, sizeof *b);
    bf = score__calloc(2 * d, sizeof *bf);
    if (b == NULL || bf == NULL) {
        score__free(b);
        score__free(bf);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    for (size_t j = 0; j < d; j++) {
        double l = lo[n == 1 ? 0 : j], h = hi[n == 1 ? 0 : j];
        float lf = (float)l, hf = (float)h;
        if ((double)lf < l)
            lf = nextafterf(lf, INFINITY);
        if ((double)hf > h)
            hf = nextafterf(hf, -INFINITY);
        if (lf > hf) { /* the box rounded inwards to float is empty */
            score__free(b);
            score__free(bf);
            return score__error(SCORE_E_RANGE, __func__, "bounds [%g, %g] of dimension %zu "
                                "hold no float", l, h, j);
        }
        b[j] = l;
        b[d + j] = h;
        bf[j] = lf;
        bf[d + j] = hf;
    }
    score__free(sde->clip_lo);
    score__free(sde->clip_lof);
    sde->clip_lo = b;
    sde->clip_hi = b + d;
    sde->clip_lof = bf;
    sde->clip_hif = bf + d;
    return SCORE_OK;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The p-quantile of v[0..d-1] (sorted in place): linear interpolation between the order
 * statistics at position p (d - 1), numpy's default method. */
static double quantile(double *v, size_t d, double p)
{
    double pos, fr;
    size_t i;
    qsort(v, d, sizeof *v, cmp_double);
    pos = p * (double)(d - 1);
    i = (size_t)floor(pos);
    if (i >= d - 1)
        return v[d - 1];
    fr = pos - (double)i;
    return v[i] + fr * (v[i + 1] - v[i]);
}

void score__sde_threshold_row(const score_sde *sde, double *x0)
{
    size_t d = sde->dim;
    double p = score__sde_threshold_p(sde);
    const double *lo = sde->clip_lo, *hi = sde->clip_hi;
    if (p > 0.0) {
        double *za = sde->trow + d, s;
        for (size_t j = 0; j < d; j++) {
            double c = lo != NULL ? 0.5 * (lo[j] + hi[j]) : 0.0;
            double h = lo != NULL ? 0.5 * (hi[j] - lo[j]) : 1.0;
            za[j] = fabs((x0[j] - c) / h);
        }
        s = fmax(1.0, quantile(za, d, p));
        for (size_t j = 0; j < d; j++) {
            double c = lo != NULL ? 0.5 * (lo[j] + hi[j]) : 0.0;
            double h = lo != NULL ? 0.5 * (hi[j] - lo[j]) : 1.0;
            double z = (x0[j] - c) / h;
            z = fmin(fmax(z, -s), s) / s;
            x0[j] = c + h * z;
        }
    }
    if (lo != NULL)
        for (size_t j = 0; j < d; j++)
            x0[j] = fmin(fmax(x0[j], lo[j]), hi[j]);
}
