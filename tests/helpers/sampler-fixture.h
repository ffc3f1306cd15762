/* Shared fixtures of the sampler, step and likelihood tests: analytic Gaussian / GMM systems
 * and error measures. Header-only (static functions). */
#ifndef LIBSCORE_TEST_SAMPLER_FIXTURE_H
#define LIBSCORE_TEST_SAMPLER_FIXTURE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test-helpers.h"

/* 2-D Gaussian data with a full covariance: the PF-ODE map is known in closed form
 * (score_model_analytic_pf_map). */
static const double fx_mean[2] = {1.0, -0.5};
static const double fx_cov[4] = {1.0, 0.3, 0.3, 0.5};

/* 2-D mixture of three diagonal Gaussians. */
static const double fx_w[3] = {0.5, 0.3, 0.2};
static const double fx_mu[6] = {-2.0, 0.0, 2.0, 0.0, 0.0, 2.5};
static const double fx_var[6] = {0.1, 0.1, 0.2, 0.05, 0.05, 0.2};

typedef struct fx_system {
    score_schedule *sched;
    score_model *model;
    score_sde *sde;
    double T, t_eps;
} fx_system;

/* kind: a schedule kind; gmm: 0 = Gaussian, 1 = mixture; t_eps <= 0 keeps the default. */
static inline void fx_make(fx_system *f, int kind, int gmm, double t_eps)
{
    ck_assert_ok(score_schedule_new(&f->sched, kind));
    if (t_eps > 0.0)
        ck_assert_ok(score_schedule_set_f64(f->sched, SCORE_SCHEDULE_PARAM_T_EPS, t_eps));
    if (kind == SCORE_SCHEDULE_VE)
        ck_assert_ok(score_schedule_set_f64(f->sched, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 20.0));
    ck_assert_ok(score_schedule_prepare(f->sched));
    if (gmm)
        ck_assert_ok(score_model_new_gmm(&f->model, f->sched, 2, 3, fx_w, fx_mu, fx_var));
    else
        ck_assert_ok(score_model_new_gaussian(&f->model, f->sched, 2, fx_mean, fx_cov, NULL));
    ck_assert_ok(score_sde_new(&f->sde, f->sched, f->model, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_schedule_get_f64(f->sched, SCORE_SCHEDULE_PARAM_T, &f->T));
    ck_assert_ok(score_schedule_get_f64(f->sched, SCORE_SCHEDULE_PARAM_T_EPS, &f->t_eps));
}

static inline void fx_free(fx_system *f)
{
    score_sde_free(f->sde);
    score_model_free(f->model);
    score_schedule_free(f->sched);
    memset(f, 0, sizeof *f);
}

/* n prior draws (std of the schedule's prior) from a generator with the given seed. */
static inline void fx_prior(const fx_system *f, uint64_t seed, size_t n, float *x)
{
    score_rng *r;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_schedule_prior_sample(f->sched, r, n, 2, x));
    score_rng_free(r);
}

static inline double fx_max_abs_diff(size_t n, const float *a, const float *b)
{
    double e = 0.0;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs((double)a[i] - (double)b[i]));
    return e;
}

static inline int fx_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sliced Wasserstein-2 distance between two 2-D sample sets of equal size, over L equally
 * spaced directions (exact 1-D W2 by sorting). */
static inline double fx_sw2(size_t n, const float *a, const float *b)
{
    const int L = 16;
    double tot = 0.0, *pa = malloc(n * sizeof *pa), *pb = malloc(n * sizeof *pb);
    ck_assert_ptr_nonnull(pa);
    ck_assert_ptr_nonnull(pb);
    for (int l = 0; l < L; l++) {
        double th = 3.14159265358979323846 * (l + 0.5) / L, c = cos(th), s = sin(th), acc = 0.0;
        for (size_t i = 0; i < n; i++) {
            pa[i] = c * a[2 * i] + s * a[2 * i + 1];
            pb[i] = c * b[2 * i] + s * b[2 * i + 1];
        }
        qsort(pa, n, sizeof *pa, fx_cmp_double);
        qsort(pb, n, sizeof *pb, fx_cmp_double);
        for (size_t i = 0; i < n; i++)
            acc += (pa[i] - pb[i]) * (pa[i] - pb[i]);
        tot += acc / (double)n;
    }
    free(pa);
    free(pb);
    return sqrt(tot / L);
}

/* Fractions of samples nearest to each mixture mean. */
static inline void fx_weights(size_t n, const float *x, double f[3])
{
    f[0] = f[1] = f[2] = 0.0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        double bd = 1e300;
        for (int k = 0; k < 3; k++) {
            double dx = x[2 * i] - fx_mu[2 * k], dy = x[2 * i + 1] - fx_mu[2 * k + 1];
            double d = dx * dx + dy * dy;
            if (d < bd) {
                bd = d;
                best = k;
            }
        }
        f[best] += 1.0 / (double)n;
    }
}

#endif
