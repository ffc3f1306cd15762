/* Likelihood through the probability-flow ODE: closed-form log-densities of Gaussian and
 * mixture data (exact divergence), Hutchinson estimates within their Monte-Carlo error,
 * bits/dim, batch invariance (an MLP's log p for any split of the rows), parameters and
 * argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/sampler-fixture.h"

/* The requirement for the exact divergence: 1e-3 nats. The solve uses rtol = atol =
 * 1e-5 on (x, delta), whose global error is a few 1e-5 (measured: <= 1.1e-4 on VE). */
#define TOL_LOGP 1e-3
/* Unbiasedness of the Hutchinson estimate: |mean error| over rows within 4 standard errors. */
#define HUTCH_SE 4.0

enum { NL = 32 };

static void analytic_at(score_model *m, double t, size_t n, const float *x, double *out)
{
    double *tt = malloc(n * sizeof *tt);
    ck_assert_ptr_nonnull(tt);
    for (size_t i = 0; i < n; i++)
        tt[i] = t;
    ck_assert_ok(score_model_analytic_logp(m, n, tt, x, out));
    free(tt);
}

/* |log p_T(z) + delta - log p_{t_eps}(x)| with the true marginal at T (removes the mismatch
 * between the schedule's prior and the noised data at T, which is not a solver error). */
static double corrected_error(const fx_system *f, size_t n, const float *x, const float *z,
                              const double *delta, double *errs)
{
    double *pt = malloc(n * sizeof *pt), *pe = malloc(n * sizeof *pe), worst = 0.0;
    analytic_at(f->model, f->T, n, z, pt);
    analytic_at(f->model, f->t_eps, n, x, pe);
    for (size_t i = 0; i < n; i++) {
        double e = pt[i] + delta[i] - pe[i];
        if (errs != NULL)
            errs[i] = e;
        worst = fmax(worst, fabs(e));
    }
    free(pt);
    free(pe);
    return worst;
}

START_TEST(api)
{
    score_likelihood *lk;
    double v;
    int64_t iv;
    fx_system f;
    float x[2 * 4] = {0.1f, 0.2f, 0.3f, -0.4f, 1.0f, 0.0f, -1.0f, 0.5f};
    double lp[4];
    fx_make(&f, SCORE_SCHEDULE_VP, 0, -1.0);
    ck_assert_fails_with(score_likelihood_new(NULL, 2), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_new(&lk, 0), SCORE_E_RANGE);
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_get_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, &v));
    ck_assert_double_eq(v, 1e-5);
    ck_assert_ok(score_likelihood_get_f64(lk, SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET, &v));
    ck_assert_double_eq(v, 0.0);
    ck_assert_ok(score_likelihood_get_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, &iv));
    ck_assert_int_eq(iv, 1);
    ck_assert_fails_with(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_PROBE, 3), SCORE_E_RANGE);
    ck_assert_fails_with(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, 2.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_PROBE, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_set_f64(lk, 799, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_likelihood_set_f64(NULL, SCORE_LIKELIHOOD_PARAM_RTOL, 1e-3), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_set_i64(NULL, SCORE_LIKELIHOOD_PARAM_PROBE, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_get_f64(NULL, SCORE_LIKELIHOOD_PARAM_RTOL, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_get_i64(NULL, SCORE_LIKELIHOOD_PARAM_PROBE, &iv), SCORE_E_INVAL);
    ck_assert_uint_eq(score_param_count(SCORE_OBJECT_LIKELIHOOD), 12);
    /* call errors */
    ck_assert_fails_with(score_likelihood_logp(NULL, f.sde, 4, x, lp, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_logp(lk, NULL, 4, x, lp, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_logp(lk, f.sde, 4, NULL, lp, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_logp(lk, f.sde, 4, x, NULL, NULL, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_likelihood_logp(lk, f.sde, 0, NULL, NULL, NULL, NULL));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, SCORE_LIKELIHOOD_DIV_HUTCHINSON));
    ck_assert_fails_with(score_likelihood_logp(lk, f.sde, 4, x, lp, NULL, NULL), SCORE_E_INVAL); /* no rng */
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, SCORE_LIKELIHOOD_DIV_EXACT));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_T_EPS, 0.5));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_T_END, 0.4));
    ck_assert_fails_with(score_likelihood_logp(lk, f.sde, 4, x, lp, NULL, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_T_END, 0.0));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_T_EPS, 0.0));
    x[3] = NAN;
    ck_assert_fails_with(score_likelihood_logp(lk, f.sde, 4, x, lp, NULL, NULL), SCORE_E_NUMERIC);
    x[3] = 0.0f;
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_MAX_STEPS, 2));
    ck_assert_fails_with(score_likelihood_logp(lk, f.sde, 4, x, lp, NULL, NULL), SCORE_E_NOPROGRESS);
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_MAX_STEPS, 100000));
    ck_assert_ok(score_likelihood_logp(lk, f.sde, 4, x, lp, NULL, NULL));
    ck_assert_uint_gt(score_likelihood_get_nfe(lk), 6 * score_likelihood_get_steps(lk));
    ck_assert_uint_gt(score_likelihood_get_steps(lk), 3);
    score_likelihood_free(lk);
    score_likelihood_free(NULL);
    ck_assert_uint_eq(score_likelihood_get_nfe(NULL), 0);
    ck_assert_uint_eq(score_likelihood_get_steps(NULL), 0);
    /* dimension mismatch */
    ck_assert_ok(score_likelihood_new(&lk, 3));
    ck_assert_fails_with(score_likelihood_logp(lk, f.sde, 2, x, lp, NULL, NULL), SCORE_E_SHAPE);
    score_likelihood_free(lk);
    fx_free(&f);
}
END_TEST

START_TEST(exact_divergence_closed_form)
{
    /* Gaussian (VP, VE) and mixture (VP, VE) data at t_eps = 1e-5 (score_sde's likelihood) */
    int kind = (_i % 2) ? SCORE_SCHEDULE_VE : SCORE_SCHEDULE_VP, gmm = _i >= 2;
    fx_system f;
    score_likelihood *lk;
    score_rng *rng;
    float x[2 * NL], z[2 * NL];
    double lp[NL], delta[NL], bpd[NL], worst;
    fx_make(&f, kind, gmm, 1e-5);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 17));
    ck_assert_ok(score_model_analytic_sample(f.model, rng, f.t_eps, NL, x));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET, 8.0));
    ck_assert_ok(score_likelihood_logp_ex(lk, f.sde, 0, NL, x, lp, bpd, z, delta, NULL));
    worst = corrected_error(&f, NL, x, z, delta, NULL);
    printf("exact divergence, %s %s: max |log p error| = %.2e nats, NFE %llu, steps %llu\n",
           gmm ? "GMM" : "Gaussian", kind == SCORE_SCHEDULE_VE ? "VE" : "VP", worst,
           (unsigned long long)score_likelihood_get_nfe(lk),
           (unsigned long long)score_likelihood_get_steps(lk));
    ck_assert_double_le(worst, TOL_LOGP);
    for (size_t i = 0; i < NL; i++) {
        double pz;
        ck_assert_ok(score_schedule_prior_logp(f.sched, 1, 2, z + 2 * i, &pz));
        ck_assert_double_eq_tol(lp[i], pz + delta[i], 1e-12);
        ck_assert_double_eq_tol(bpd[i], -lp[i] / (2.0 * log(2.0)) + 8.0, 1e-12);
    }
    /* the error measured over the whole batch (score_sde's likelihood): the control then bounds
     * the batch's RMS error, not each row's, so the bound holds for the RMS over the rows */
    {
        double errs[NL], rms = 0.0;
        ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_ERROR_NORM,
                                              SCORE_CONTROL_NORM_BATCH));
        ck_assert_ok(score_likelihood_logp_ex(lk, f.sde, 0, NL, x, lp, bpd, z, delta, NULL));
        worst = corrected_error(&f, NL, x, z, delta, errs);
        for (size_t i = 0; i < NL; i++)
            rms += errs[i] * errs[i] / NL;
        rms = sqrt(rms);
        printf("  error over the batch: RMS |log p error| = %.2e nats, max %.2e, NFE %llu, "
               "steps %llu\n", rms, worst, (unsigned long long)score_likelihood_get_nfe(lk),
               (unsigned long long)score_likelihood_get_steps(lk));
        ck_assert_double_le(rms, TOL_LOGP);
    }
    score_likelihood_free(lk);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

START_TEST(standard_normal_vp_direct)
{
    /* N(0, I) data under VP: every marginal is N(0, I), the prior is exact, and log p(x) must
     * equal the closed form directly (no correction) */
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    score_likelihood *lk;
    score_rng *rng;
    const double mu[3] = {0.0, 0.0, 0.0}, var[3] = {1.0, 1.0, 1.0};
    float x[3 * NL];
    double lp[NL], ex[NL];
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_model_new_gaussian(&m, sc, 3, mu, NULL, var));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    ck_assert_ok(score_rng_fill_normal(rng, 0, NL, 0, 3, x));
    ck_assert_ok(score_likelihood_new(&lk, 3));
    ck_assert_ok(score_likelihood_logp(lk, sde, NL, x, lp, NULL, NULL));
    analytic_at(m, 1e-5, NL, x, ex);
    for (size_t i = 0; i < NL; i++)
        ck_assert_double_eq_tol(lp[i], ex[i], TOL_LOGP);
    score_likelihood_free(lk);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

START_TEST(hutchinson_diagonal_is_exact)
{
    /* with a diagonal Jacobian, v^T J v = tr J for every Rademacher v */
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    score_likelihood *lk;
    score_rng *rng;
    const double mu[2] = {0.5, -1.0}, var[2] = {0.7, 1.8};
    float x[2 * NL];
    double lp[NL], lpe[NL];
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_model_new_gaussian(&m, sc, 2, mu, NULL, var));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    ck_assert_ok(score_model_analytic_sample(m, rng, 1e-5, NL, x));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_logp(lk, sde, NL, x, lpe, NULL, NULL));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, SCORE_LIKELIHOOD_DIV_HUTCHINSON));
    ck_assert_ok(score_likelihood_logp(lk, sde, NL, x, lp, NULL, rng));
    for (size_t i = 0; i < NL; i++)
        ck_assert_double_eq_tol(lp[i], lpe[i], TOL_LOGP);
    score_likelihood_free(lk);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

START_TEST(hutchinson_monte_carlo)
{
    /* full covariance (off-diagonal Jacobian): the estimate is unbiased (mean error over rows
     * within 4 standard errors) and its spread falls like 1/sqrt(k) with k probes */
    int gauss = _i;
    fx_system f;
    score_likelihood *lk;
    score_rng *rng;
    enum { NH = 96 };
    float x[2 * NH], z[2 * NH];
    double lp[NH], delta[NH], err1[NH], err16[NH], sd[2];
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-5);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 23));
    ck_assert_ok(score_model_analytic_sample(f.model, rng, f.t_eps, NH, x));
    ck_assert_ok(score_rng_set_counter(rng, 1));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, SCORE_LIKELIHOOD_DIV_HUTCHINSON));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_PROBE,
                                          gauss ? SCORE_LIKELIHOOD_PROBE_GAUSSIAN : SCORE_LIKELIHOOD_PROBE_RADEMACHER));
    for (int pass = 0; pass < 2; pass++) {
        double *err = pass ? err16 : err1, mean = 0.0, var = 0.0;
        ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, pass ? 16 : 1));
        ck_assert_ok(score_likelihood_logp_ex(lk, f.sde, 0, NH, x, lp, NULL, z, delta, rng));
        (void)corrected_error(&f, NH, x, z, delta, err);
        for (size_t i = 0; i < NH; i++)
            mean += err[i] / NH;
        for (size_t i = 0; i < NH; i++)
            var += (err[i] - mean) * (err[i] - mean) / (NH - 1);
        sd[pass] = sqrt(var);
        printf("Hutchinson %s, %d probe(s): mean error %.4f, sd %.4f (standard error %.4f)\n",
               gauss ? "Gaussian" : "Rademacher", pass ? 16 : 1, mean, sd[pass], sd[pass] / sqrt(NH));
        ck_assert_double_le(fabs(mean), HUTCH_SE * sd[pass] / sqrt(NH) + TOL_LOGP);
    }
    /* 16 probes: sd / 4 in expectation; the sample sd of 96 rows is within ~15 % */
    ck_assert_double_ge(sd[0] / sd[1], 2.5);
    ck_assert_double_le(sd[0] / sd[1], 6.0);
    score_likelihood_free(lk);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

START_TEST(batch_invariance)
{
    /* a row's result (with its Hutchinson probes) does not depend on the batch */
    fx_system f;
    score_likelihood *lk;
    score_rng *rng;
    float x[2 * 12];
    double a[12], b[12];
    fx_make(&f, SCORE_SCHEDULE_VE, 1, 1e-5);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    ck_assert_ok(score_model_analytic_sample(f.model, rng, f.t_eps, 12, x));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, _i ? SCORE_LIKELIHOOD_DIV_HUTCHINSON : SCORE_LIKELIHOOD_DIV_EXACT));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, 3));
    ck_assert_ok(score_likelihood_logp(lk, f.sde, 12, x, a, NULL, rng));
    ck_assert_ok(score_likelihood_logp_ex(lk, f.sde, 0, 5, x, b, NULL, NULL, NULL, rng));
    ck_assert_ok(score_likelihood_logp_ex(lk, f.sde, 5, 7, x + 10, b + 5, NULL, NULL, NULL, rng));
    for (size_t i = 0; i < 12; i++)
        ck_assert_msg(a[i] == b[i], "row %zu: %.17g vs %.17g", i, a[i], b[i]);
    score_likelihood_free(lk);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* An MLP's log p does not depend on how the rows are split into calls or on the model's
 * thread count: its trace and tangents are evaluated in row panels aligned to the global row
 * numbers (a BLAS rounds a row of a product according to the product's shape otherwise). All
 * rows at once and chunks of 64, 7 and 1 rows, with 1 and 2 model threads, bit for bit; the
 * exact divergence (_i even) and Hutchinson's (_i odd, 2 Rademacher probes per row); an MLP
 * (_i < 2, noise prediction) and an energy MLP (score -grad E, its Hessian products in its own
 * aligned panels). */
enum { NSPLIT = 70 };

static void logp_chunks(score_likelihood *lk, score_sde *sde, size_t chunk, const float *x,
                        double *lp, float *z, const score_rng *rng)
{
    for (size_t r0 = 0; r0 < NSPLIT; r0 += chunk) {
        size_t n = NSPLIT - r0 < chunk ? NSPLIT - r0 : chunk;
        ck_assert_ok(score_likelihood_logp_ex(lk, sde, r0, n, x + 2 * r0, lp + r0, NULL,
                                              z + 2 * r0, NULL, rng));
    }
}

START_TEST(mlp_split_invariance)
{
    static const size_t chunks[3] = {64, 7, 1};
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    score_likelihood *lk;
    score_rng *rng;
    float x[2 * NSPLIT], zref[2 * NSPLIT], z[2 * NSPLIT];
    double ref[NSPLIT], lp[NSPLIT], spread = 0.0;
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_set_f64(sc, SCORE_SCHEDULE_PARAM_T_EPS, 1e-3));
    ck_assert_ok(score_schedule_prepare(sc));
    if (_i < 2) {
        ck_assert_ok(score_model_new_mlp(&m, 2, 48, 2, SCORE_ACT_SILU, 11));
    } else {
        ck_assert_ok(score_model_new_energy(&m, 2));
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 48));
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, 2));
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 13));
    }
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score_sde_new(&sde, sc, m, _i < 2 ? SCORE_OUTPUT_EPS : SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 77));
    ck_assert_ok(score_rng_fill_normal(rng, 0, NSPLIT, 0, 2, x));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE,
                                          _i % 2 ? SCORE_LIKELIHOOD_DIV_HUTCHINSON
                                             : SCORE_LIKELIHOOD_DIV_EXACT));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, 2));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, 1e-3));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_ATOL, 1e-3));
    ck_assert_ok(score_likelihood_logp_ex(lk, sde, 0, NSPLIT, x, ref, NULL, zref, NULL, rng));
    for (size_t i = 0; i < NSPLIT; i++)
        spread = fmax(spread, fabs(ref[i] - ref[0]));
    ck_assert_double_gt(spread, 1e-3); /* the rows differ: the comparison means something */
    for (int64_t threads = 1; threads <= 2; threads++) {
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, threads));
        if (threads == 2) {
            ck_assert_ok(score_likelihood_logp_ex(lk, sde, 0, NSPLIT, x, lp, NULL, z, NULL, rng));
            ck_assert_msg(memcmp(ref, lp, sizeof ref) == 0 && memcmp(zref, z, sizeof z) == 0,
                          "all rows, 2 threads differ");
        }
        for (int k = 0; k < 3; k++) {
            memset(lp, 0, sizeof lp);
            logp_chunks(lk, sde, chunks[k], x, lp, z, rng);
            for (size_t i = 0; i < NSPLIT; i++)
                ck_assert_msg(ref[i] == lp[i] && zref[2 * i] == z[2 * i] &&
                                  zref[2 * i + 1] == z[2 * i + 1],
                              "chunks of %zu rows, %d threads: row %zu differs (%.17g vs %.17g)",
                              chunks[k], (int)threads, i, ref[i], lp[i]);
        }
    }
    score_likelihood_free(lk);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

static int fwd_only(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    (void)c;
    (void)ud;
    for (size_t q = 0; q < n * dim; q++)
        out[q] = -x[q];
    return 0;
}

START_TEST(model_without_divergence)
{
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    score_likelihood *lk;
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    double lp[2];
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_model_new_callback(&m, 2, fwd_only, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_fails_with(score_likelihood_logp(lk, sde, 2, x, lp, NULL, NULL), SCORE_E_UNSUPPORTED);
    score_likelihood_free(lk);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* Encode / decode (the probability-flow map alone): for Gaussian data the map is linear and
 * known in closed form (score_model_analytic_pf_map()); for every kind (Gaussian, mixture; VP,
 * VE) decode(encode(x)) returns x; a row's latent does not depend on the batch. The solver runs
 * at rtol = atol = 1e-7, so the float32 results' rounding is the floor: measured worst 7.6e-6
 * (VE latents of size ~50, i.e. 1.5e-7 relative) and 1.4e-6 for the round trip, so 1e-4
 * (relative to 1 + |value|) leaves a wide margin. */
#define TOL_MAP 1e-4

START_TEST(encode_decode_round_trip)
{
    int kind = (_i % 2) ? SCORE_SCHEDULE_VE : SCORE_SCHEDULE_VP, gmm = _i >= 2;
    fx_system f;
    score_likelihood *lk;
    score_rng *rng;
    float x[2 * NL], z[2 * NL], back[2 * NL], zz[2 * NL], one[2];
    double worst_map = 0.0, worst_trip = 0.0, scale = 0.0;
    fx_make(&f, kind, gmm, 1e-5);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 23));
    ck_assert_ok(score_model_analytic_sample(f.model, rng, f.t_eps, NL, x));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, 1e-7));
    ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_ATOL, 1e-7));
    ck_assert_ok(score_likelihood_to_latent(lk, f.sde, 0, NL, x, z));
    ck_assert_uint_gt(score_likelihood_get_nfe(lk), 0);
    if (!gmm) {
        float ref[2 * NL];
        ck_assert_ok(score_model_analytic_pf_map(f.model, f.t_eps, f.T, NL, x, ref));
        for (size_t i = 0; i < 2 * NL; i++) {
            worst_map = fmax(worst_map, fabs((double)z[i] - ref[i]));
            scale = fmax(scale, fabs((double)ref[i]));
        }
        ck_assert_msg(worst_map <= TOL_MAP * (1.0 + scale), "encode vs closed form: %g",
                      worst_map);
    }
    ck_assert_ok(score_likelihood_from_latent(lk, f.sde, 0, NL, z, back));
    for (size_t i = 0; i < 2 * NL; i++)
        worst_trip = fmax(worst_trip, fabs((double)back[i] - x[i]));
    printf("encode/decode, %s %s: max |z - closed form| = %.2e, max |decode(encode(x)) - x| = "
           "%.2e\n", gmm ? "GMM" : "Gaussian", kind == SCORE_SCHEDULE_VE ? "VE" : "VP",
           worst_map, worst_trip);
    ck_assert_double_le(worst_trip, TOL_MAP);
    /* per-row solves: one row alone gives the bits it gets in the batch */
    for (size_t i = 0; i < NL; i += 7) {
        ck_assert_ok(score_likelihood_to_latent(lk, f.sde, i, 1, x + 2 * i, one));
        ck_assert_mem_eq(one, z + 2 * i, sizeof one);
    }
    /* decode of prior draws: the deterministic sampler's end points are finite, and encode
     * maps them back */
    ck_assert_ok(score_schedule_prior_sample(f.sched, rng, NL, 2, zz));
    ck_assert_ok(score_likelihood_from_latent(lk, f.sde, 0, NL, zz, back));
    ck_assert_ok(score_likelihood_to_latent(lk, f.sde, 0, NL, back, z));
    for (size_t i = 0; i < 2 * NL; i++)
        ck_assert_float_eq_tol(z[i], zz[i], TOL_MAP * (1.0f + fabsf(zz[i])));
    /* argument checks */
    ck_assert_fails_with(score_likelihood_to_latent(lk, f.sde, 0, NL, NULL, z), SCORE_E_INVAL);
    ck_assert_fails_with(score_likelihood_from_latent(NULL, f.sde, 0, NL, z, back), SCORE_E_INVAL);
    x[3] = NAN;
    ck_assert_fails_with(score_likelihood_to_latent(lk, f.sde, 0, NL, x, z), SCORE_E_NUMERIC);
    score_likelihood_free(lk);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

static Suite *likelihood_suite(void)
{
    Suite *s = suite_create("likelihood");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, api);
    tcase_add_test(tc, model_without_divergence);
    tcase_add_loop_test(tc, batch_invariance, 0, 2);
    tcase_add_loop_test(tc, mlp_split_invariance, 0, 4);
    suite_add_tcase(s, tc);
    tc = tcase_create("accuracy");
    tcase_add_loop_test(tc, exact_divergence_closed_form, 0, 4);
    tcase_add_test(tc, standard_normal_vp_direct);
    tcase_add_test(tc, hutchinson_diagonal_is_exact);
    tcase_add_loop_test(tc, hutchinson_monte_carlo, 0, 2);
    tcase_add_loop_test(tc, encode_decode_round_trip, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(likelihood_suite());
}
