/* Drivers, evolve and control: parameters and presets, grids, callbacks, NFE accounting,
 * reproducibility (batch-split invariance, reuse), non-finite values, few-step edge cases on
 * every schedule, adaptive solves reaching their tolerance, and stochastic samplers on a 2-D
 * Gaussian mixture (sliced Wasserstein-2 distance and mixture weights against exact samples). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/sampler-fixture.h"

/* SW2 of a sampler's output against exact samples, relative to the SW2 between two exact sample
 * sets of the same size (the Monte-Carlo floor: about 0.2 for 1000 samples of this mixture,
 * dominated by the multinomial fluctuation of the component counts, with a relative scatter of
 * about 30 % per pair). Both are averaged over 6 replicates (relative sd of the ratio about
 * 0.17 for an exact sampler), so 1.6 is 3.5 standard deviations above 1. A sampler with a
 * real bias (e.g. the Langevin SNR rule with per-row norms in 2-D) gives ratios above 4. */
#define SW2_FACTOR 1.6
/* Mixture weights averaged over 6 x 1000 samples: binomial sd <= 0.0065; 4 sd plus 0.01 of
 * discretization bias. */
#define TOL_WEIGHT 0.036
/* Adaptive solves: global error relative to the requested tolerance scale tol (1 + |x|);
 * per-step (local) control lets the global error exceed the tolerance by a small factor. */
#define ADAPTIVE_FACTOR 10.0

/* ---- control ------------------------------------------------------------------------------ */

START_TEST(control_api)
{
    score_control *c;
    double v, err[2], h;
    int dec;
    const float x[4] = {1.0f, -2.0f, 0.0f, 0.5f}, xn[4] = {1.0f, -2.0f, 0.0f, 0.5f};
    const float xe[4] = {1e-5f, 2e-5f, 1e-5f, 0.0f};
    ck_assert_fails_with(score_control_new(NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_control_new_tol(NULL, 1e-3, 1e-3), SCORE_E_INVAL);
    ck_assert_fails_with(score_control_new_tol(&c, 0.0, 0.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_control_new_tol(&c, -1.0, 0.0), SCORE_E_RANGE);
    ck_assert_ok(score_control_new_tol(&c, 1e-5, 1e-5));
    ck_assert_ok(score_control_get_f64(c, SCORE_CONTROL_PARAM_SAFETY, &v));
    ck_assert_double_eq(v, 0.9);
    ck_assert_fails_with(score_control_set_f64(c, SCORE_CONTROL_PARAM_SAFETY, 1.5), SCORE_E_RANGE);
    ck_assert_fails_with(score_control_set_f64(c, 999, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_control_set_f64(NULL, SCORE_CONTROL_PARAM_RTOL, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_control_get_f64(NULL, SCORE_CONTROL_PARAM_RTOL, &v), SCORE_E_INVAL);
    ck_assert_ok(score_control_set_f64(c, SCORE_CONTROL_PARAM_RTOL, 0.0));
    ck_assert_fails_with(score_control_set_f64(c, SCORE_CONTROL_PARAM_ATOL, 0.0), SCORE_E_RANGE);
    ck_assert_ok(score_control_get_f64(c, SCORE_CONTROL_PARAM_ATOL, &v));
    ck_assert_double_eq(v, 1e-5); /* refused value not kept */
    ck_assert_ok(score_control_set_f64(c, SCORE_CONTROL_PARAM_RTOL, 1e-5));
    /* err = sqrt(mean((e / (atol + rtol max|x|))^2)) per row */
    ck_assert_ok(score_control_error(c, 2, 2, x, xn, xe, err));
    {
        double r00 = 1e-5 / (1e-5 + 1e-5 * 1.0), r01 = 2e-5 / (1e-5 + 1e-5 * 2.0);
        double r10 = 1e-5 / 1e-5;
        ck_assert_double_eq_tol(err[0], sqrt((r00 * r00 + r01 * r01) / 2.0), 1e-6);
        ck_assert_double_eq_tol(err[1], sqrt(r10 * r10 / 2.0), 1e-6);
    }
    ck_assert_fails_with(score_control_error(c, 2, 0, x, xn, xe, err), SCORE_E_INVAL);
    ck_assert_fails_with(score_control_error(c, 2, 2, NULL, xn, xe, err), SCORE_E_INVAL);
    /* decisions */
    h = 0.1;
    ck_assert_ok(score_control_hadjust(c, 4, 0.5, &h, &dec));
    ck_assert_int_eq(dec, SCORE_CONTROL_HADJ_INC);
    ck_assert_double_eq_tol(h, 0.1 * 0.9 * pow(0.5, -0.2), 1e-15);
    h = 0.1;
    ck_assert_ok(score_control_hadjust(c, 4, 0.0, &h, &dec));
    ck_assert_double_eq_tol(h, 1.0, 1e-15); /* fac_max = 10 */
    h = 0.1;
    ck_assert_ok(score_control_hadjust(c, 4, 0.95, &h, &dec));
    ck_assert_int_eq(dec, SCORE_CONTROL_HADJ_NIL);
    h = 0.1;
    ck_assert_ok(score_control_hadjust(c, 4, 2.0, &h, &dec));
    ck_assert_int_eq(dec, SCORE_CONTROL_HADJ_DEC);
    ck_assert_double_eq_tol(h, 0.1 * 0.9 * pow(2.0, -0.2), 1e-15);
    h = 0.1;
    ck_assert_ok(score_control_hadjust(c, 1, NAN, &h, &dec));
    ck_assert_int_eq(dec, SCORE_CONTROL_HADJ_DEC);
    ck_assert_double_eq_tol(h, 0.02, 1e-15);
    ck_assert_ok(score_control_set_f64(c, SCORE_CONTROL_PARAM_H_MAX, 0.15));
    h = 0.1;
    ck_assert_ok(score_control_hadjust(c, 4, 0.0, &h, NULL));
    ck_assert_double_eq(h, 0.15);
    h = 0.0;
    ck_assert_fails_with(score_control_hadjust(c, 4, 0.5, &h, &dec), SCORE_E_INVAL);
    h = 0.1;
    ck_assert_fails_with(score_control_hadjust(c, 0, 0.5, &h, &dec), SCORE_E_RANGE);
    ck_assert_fails_with(score_control_hadjust(c, INT_MIN, 0.5, &h, &dec), SCORE_E_RANGE);
    /* the largest order: exponent 1 / (INT_MAX + 1) = 2^-31 computed without int overflow */
    ck_assert_ok(score_control_hadjust(c, INT_MAX, 0.5, &h, &dec));
    ck_assert_double_eq(h, 0.1 * (0.9 * pow(0.5, -1.0 / 2147483648.0)));
    ck_assert_int_eq(dec, SCORE_CONTROL_HADJ_NIL);
    h = 0.1;
    ck_assert_fails_with(score_control_hadjust(NULL, 4, 0.5, &h, &dec), SCORE_E_INVAL);
    ck_assert_uint_eq(score_param_count(SCORE_OBJECT_CONTROL), 8);
    score_control_free(c);
    score_control_free(NULL);
}
END_TEST

/* ---- evolve ------------------------------------------------------------------------------ */

START_TEST(evolve_api)
{
    fx_system f;
    score_evolve *e;
    score_control *c;
    score_step *dp, *eu, *em;
    enum { N = 8 };
    float x[2 * N], exact[2 * N];
    double t[N], h[N];
    int rc, calls = 0;
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    ck_assert_fails_with(score_evolve_new(NULL, 2), SCORE_E_INVAL);
    ck_assert_fails_with(score_evolve_new(&e, 0), SCORE_E_RANGE);
    ck_assert_ok(score_evolve_new(&e, 2));
    ck_assert_ok(score_control_new_tol(&c, 1e-6, 1e-6));
    ck_assert_ok(score_step_new(&dp, score_step_type_find("dopri5"), 2));
    ck_assert_ok(score_step_new(&eu, score_step_type_find("euler"), 2));
    ck_assert_ok(score_step_new(&em, score_step_type_find("em"), 2));
    fx_prior(&f, 6, N, x);
    ck_assert_ok(score_model_analytic_pf_map(f.model, f.T, 0.05, N, x, exact));
    ck_assert_fails_with(score_evolve_apply(e, c, dp, f.sde, 0.05, N, x, NULL), SCORE_E_INVAL); /* no init */
    ck_assert_fails_with(score_evolve_init(e, 1.0, 0.0, 0), SCORE_E_INVAL);
    ck_assert_fails_with(score_evolve_init(e, 0.0, 0.0, N), SCORE_E_RANGE);
    ck_assert_fails_with(score_evolve_init(e, 1.0, -1.0, N), SCORE_E_RANGE);
    ck_assert_fails_with(score_evolve_init(NULL, 1.0, 0.0, N), SCORE_E_INVAL);
    ck_assert_ok(score_evolve_init(e, f.T, 0.0, N));
    ck_assert_fails_with(score_evolve_apply(e, c, eu, f.sde, 0.05, N, x, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_evolve_apply(e, c, em, f.sde, 0.05, N, x, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_evolve_apply(e, c, dp, f.sde, 0.05, N - 1, x, NULL), SCORE_E_SHAPE);
    ck_assert_fails_with(score_evolve_apply(e, NULL, dp, f.sde, 0.05, N, x, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_evolve_apply(e, c, dp, f.sde, 0.0, N, x, NULL), SCORE_E_RANGE);
    while ((rc = score_evolve_apply(e, c, dp, f.sde, 0.05, N, x, NULL)) == SCORE_OK)
        calls++;
    ck_assert_int_eq(rc, SCORE_DONE);
    ck_assert_int_gt(calls, 3);
    ck_assert_double_le(fx_max_abs_diff(2 * N, x, exact), 1e-4);
    ck_assert_ok(score_evolve_get_t(e, N, t));
    ck_assert_ok(score_evolve_get_h(e, N, h));
    for (int i = 0; i < N; i++) {
        ck_assert_double_eq(t[i], 0.05);
        ck_assert_double_gt(h[i], 0.0);
    }
    ck_assert_fails_with(score_evolve_get_t(e, N + 1, t), SCORE_E_SHAPE);
    ck_assert_fails_with(score_evolve_get_h(NULL, N, h), SCORE_E_INVAL);
    ck_assert_uint_gt(score_evolve_get_steps(e), 2);
    ck_assert_uint_ge(score_evolve_get_nfe(e), 6 * score_evolve_get_steps(e));
    /* DONE again, no work */
    ck_assert_int_eq(score_evolve_apply(e, c, dp, f.sde, 0.05, N, x, NULL), SCORE_DONE);
    /* fixed steps: per-row times follow */
    ck_assert_ok(score_evolve_apply_fixed(e, eu, f.sde, 0.02, N, x, NULL));
    ck_assert_ok(score_evolve_get_t(e, N, t));
    ck_assert_double_eq(t[0], 0.02);
    ck_assert_fails_with(score_evolve_apply_fixed(e, eu, f.sde, -0.1, N, x, NULL), SCORE_E_RANGE);
    /* no progress: h_min above every step the tolerance allows */
    fx_prior(&f, 6, N, x);
    ck_assert_ok(score_control_set_f64(c, SCORE_CONTROL_PARAM_RTOL, 1e-9));
    ck_assert_ok(score_control_set_f64(c, SCORE_CONTROL_PARAM_ATOL, 1e-9));
    ck_assert_ok(score_control_set_f64(c, SCORE_CONTROL_PARAM_H_MIN, 0.5));
    ck_assert_ok(score_evolve_init(e, f.T, 1.0, N));
    do
        rc = score_evolve_apply(e, c, dp, f.sde, 0.05, N, x, NULL);
    while (rc == SCORE_OK);
    ck_assert_int_eq(rc, SCORE_E_NOPROGRESS);
    ck_assert_ok(score_evolve_reset(e));
    ck_assert_fails_with(score_evolve_reset(NULL), SCORE_E_INVAL);
    ck_assert_uint_eq(score_evolve_get_steps(NULL), 0);
    ck_assert_uint_eq(score_evolve_get_failed_steps(NULL), 0);
    ck_assert_uint_eq(score_evolve_get_nfe(NULL), 0);
    score_evolve_free(e);
    score_evolve_free(NULL);
    score_control_free(c);
    score_step_free(dp);
    score_step_free(eu);
    score_step_free(em);
    fx_free(&f);
}
END_TEST

/* ---- sampler API ------------------------------------------------------------------------- */

START_TEST(sampler_api)
{
    fx_system f;
    score_sampler *s;
    score_rng *rng;
    double g[64], v;
    size_t ng;
    int64_t iv;
    float x[8];
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1));
    ck_assert_fails_with(score_sampler_new(NULL, score_step_type_find("euler"), NULL, 2), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_new(&s, NULL, NULL, 2), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_new(&s, score_step_type_find("euler"), NULL, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score_sampler_new_preset(&s, 99, 2), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sampler_new_preset(NULL, SCORE_SAMPLER_PRESET_PC, 2), SCORE_E_INVAL);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("euler"), NULL, 2));
    ck_assert_ok(score_sampler_get_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, &iv));
    ck_assert_int_eq(iv, 20);
    ck_assert_ok(score_sampler_get_f64(s, SCORE_SAMPLER_PARAM_RTOL, &v));
    ck_assert_double_eq(v, 1e-5);
    ck_assert_fails_with(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, 7), SCORE_E_RANGE);
    ck_assert_fails_with(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, -1), SCORE_E_RANGE);
    ck_assert_fails_with(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 3.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ETA, -2.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_sampler_set_f64(s, 199, 0.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sampler_set_f64(NULL, SCORE_SAMPLER_PARAM_ETA, 0.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_set_i64(NULL, SCORE_SAMPLER_PARAM_GRID, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_get_f64(NULL, SCORE_SAMPLER_PARAM_ETA, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_get_i64(NULL, SCORE_SAMPLER_PARAM_GRID, &iv), SCORE_E_INVAL);
    ck_assert_uint_eq(score_param_count(SCORE_OBJECT_SAMPLER), 36);
    /* grids */
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 64, g, &ng));
    ck_assert_uint_eq(ng, 6);
    ck_assert_double_eq(g[0], 1.0);
    ck_assert_double_eq(g[5], 1e-3);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 0, NULL, &ng));
    ck_assert_uint_eq(ng, 6);
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 64, g, &ng));
    ck_assert_double_eq(g[4], 1e-3);
    ck_assert_double_eq(g[5], 0.0);
    ck_assert_fails_with(score_sampler_get_grid(s, f.sde, 3, g, &ng), SCORE_E_SHAPE);
    ck_assert_fails_with(score_sampler_get_grid(NULL, f.sde, 64, g, &ng), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_set_grid(s, 1, g), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_set_grid(s, 3, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_set_grid(s, 3, (double[]){1.0, 0.5, 0.7}), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_set_grid(s, 2, (double[]){1.0, NAN}), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_set_grid(NULL, 0, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_sampler_set_grid(s, 3, (double[]){0.5, 0.1, 0.0}));
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 64, g, &ng));
    ck_assert_uint_eq(ng, 3);
    ck_assert_double_eq(g[1], 0.1);
    /* a user grid outside the schedule fails at run time */
    ck_assert_ok(score_sampler_set_grid(s, 2, (double[]){2.0, 0.5}));
    ck_assert_fails_with(score_sampler_run(s, f.sde, 4, NULL, x, rng, NULL, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_sampler_set_grid(s, 0, NULL));
    ck_assert_ok(score_sampler_set_hook(s, NULL, NULL));
    ck_assert_fails_with(score_sampler_set_hook(NULL, NULL, NULL), SCORE_E_INVAL);
    /* run errors */
    ck_assert_fails_with(score_sampler_run(NULL, f.sde, 4, NULL, x, rng, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_run(s, NULL, 4, NULL, x, rng, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_run(s, f.sde, 4, NULL, NULL, rng, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sampler_run(s, f.sde, 4, NULL, x, NULL, NULL, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_sampler_run(s, f.sde, 0, NULL, NULL, rng, NULL, NULL));
    x[0] = x[1] = x[2] = x[3] = x[4] = x[5] = x[6] = x[7] = 0.5f;
    ck_assert_ok(score_sampler_run(s, f.sde, 4, x, x, NULL, NULL, NULL)); /* deterministic, in place */
    x[3] = INFINITY;
    ck_assert_fails_with(score_sampler_run(s, f.sde, 4, x, x, NULL, NULL, NULL), SCORE_E_NUMERIC);
    ck_assert_fails_with(score_sampler_run_ex(s, f.sde, ((size_t)1 << 32) - 2, 4, NULL, x, rng, NULL, NULL),
                         SCORE_E_RANGE);
    score_sampler_free(s);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("euler"), NULL, 3));
    ck_assert_fails_with(score_sampler_run(s, f.sde, 2, NULL, x, rng, NULL, NULL), SCORE_E_SHAPE);
    score_sampler_free(s);
    score_sampler_free(NULL);
    ck_assert_uint_eq(score_sampler_get_nfe(NULL), 0);
    ck_assert_uint_eq(score_sampler_get_steps(NULL), 0);
    ck_assert_uint_eq(score_sampler_get_failed_steps(NULL), 0);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* ---- callbacks ---------------------------------------------------------------------------- */

typedef struct cb_log {
    size_t calls, cancel_at;
    double last_t;
    size_t hook_calls;
} cb_log;

static int progress_cb(size_t step, size_t total, double t, void *ud)
{
    cb_log *l = ud;
    (void)total;
    l->calls++;
    l->last_t = t;
    return step == l->cancel_at ? 1 : 0;
}

static int hook_cb(size_t step, double t, double tn, size_t row0, size_t n, size_t dim, float *x,
                   void *ud)
{
    cb_log *l = ud;
    (void)step;
    (void)t;
    (void)row0;
    l->hook_calls++;
    /* clamp (a thresholding-like hook) */
    for (size_t q = 0; q < n * dim; q++)
        if (x[q] > 1.0f)
            x[q] = 1.0f;
    return tn < 0.0 ? 1 : (l->cancel_at == 1000 ? 7 : 0);
}

START_TEST(callbacks_and_nfe)
{
    fx_system f;
    score_sampler *s;
    score_rng *rng;
    cb_log l = {0, 100, 0.0, 0};
    float x[2 * 32];
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1));
    /* PC: N(1 + m) evaluations with the final denoise (score_sde), (N + 1) m + N without */
    ck_assert_ok(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_PC, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 10));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, 2));
    ck_assert_ok(score_sampler_run(s, f.sde, 32, NULL, x, rng, progress_cb, &l));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 10 * 3);
    ck_assert_uint_eq(score_sampler_get_steps(s), 10);
    ck_assert_uint_eq(l.calls, 10);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 0));
    ck_assert_ok(score_sampler_run(s, f.sde, 32, NULL, x, rng, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 11 * 2 + 10);
    /* cancel */
    l.calls = 0;
    l.cancel_at = 3;
    ck_assert_fails_with(score_sampler_run(s, f.sde, 32, NULL, x, rng, progress_cb, &l), SCORE_E_CANCELLED);
    ck_assert_uint_eq(l.calls, 4);
    for (size_t q = 0; q < 64; q++)
        ck_assert(isfinite(x[q]));
    /* hook: called after every predictor step, may modify x, non-zero stops the run */
    ck_assert_ok(score_sampler_set_hook(s, hook_cb, &l));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1)); /* hook is last */
    l.cancel_at = 100;
    ck_assert_ok(score_sampler_run(s, f.sde, 32, NULL, x, rng, NULL, NULL));
    ck_assert_uint_eq(l.hook_calls, 10);
    for (size_t q = 0; q < 64; q++)
        ck_assert_float_le(x[q], 1.0f);
    l.cancel_at = 1000;
    ck_assert_fails_with(score_sampler_run(s, f.sde, 32, NULL, x, rng, NULL, NULL), SCORE_E_CALLBACK);
    score_sampler_free(s);
    /* EDM preset: 18 Heun steps ending at 0 = 35 evaluations */
    ck_assert_ok(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_EDM, 2));
    ck_assert_ok(score_sampler_run(s, f.sde, 32, NULL, x, rng, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 35);
    score_sampler_free(s);
    /* DPM-Solver++(2M) preset: 20 evaluations */
    ck_assert_ok(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_DPMPP_2M, 2));
    ck_assert_ok(score_sampler_run(s, f.sde, 32, NULL, x, rng, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 20);
    score_sampler_free(s);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* A callback model wrapping the analytic Gaussian that returns NaN (or fails) below t_bad. */
typedef struct bad_model {
    score_model *inner;
    double t_bad;
    int fail;
} bad_model;

static int bad_fn(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    bad_model *b = ud;
    if (score_model_forward(b->inner, n, x, c, out) != SCORE_OK)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (c[i] < b->t_bad) {
            if (b->fail)
                return -5;
            out[i * dim] = NAN;
        }
    return 0;
}

START_TEST(nan_from_callback_is_reported)
{
    fx_system f;
    score_model *cb;
    score_sde *sde;
    score_sampler *s;
    score_rng *rng;
    bad_model b;
    float x[2 * 8];
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    b.inner = f.model;
    b.t_bad = 0.3;
    b.fail = 0;
    ck_assert_ok(score_model_new_callback(&cb, 2, bad_fn, &b));
    ck_assert_ok(score_sde_new(&sde, f.sched, cb, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(_i ? "dpmpp-2m-sde" : "heun"), NULL, 2));
    ck_assert_fails_with(score_sampler_run(s, sde, 8, NULL, x, rng, NULL, NULL), SCORE_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "step"));
    b.fail = 1;
    ck_assert_fails_with(score_sampler_run(s, sde, 8, NULL, x, rng, NULL, NULL), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_model_last_callback_status(cb), -5);
    /* adaptive */
    score_sampler_free(s);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("dopri5"), NULL, 2));
    b.fail = 0;
    ck_assert_fails_with(score_sampler_run(s, sde, 8, NULL, x, rng, NULL, NULL), SCORE_E_NUMERIC);
    score_sampler_free(s);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(cb);
    fx_free(&f);
}
END_TEST

START_TEST(lower_order_final)
{
    /* with fewer than 10 steps the final multistep steps use order min(order, steps left):
     * equal to stepping by hand with those caps; without the option, the full order */
    fx_system f;
    score_sampler *s;
    score_step *st;
    float x0[2 * 8], a[2 * 8], b[2 * 8];
    double g[6];
    size_t ng;
    fx_make(&f, SCORE_SCHEDULE_VE, 0, 1e-3);
    fx_prior(&f, 3, 8, x0);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("dpmpp-3m"), NULL, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
    ck_assert_ok(score_sampler_run(s, f.sde, 8, x0, a, NULL, NULL, NULL));
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 6, g, &ng));
    ck_assert_ok(score_step_new(&st, score_step_type_find("dpmpp-3m"), 2));
    memcpy(b, x0, sizeof b);
    for (size_t k = 0; k < 5; k++) {
        ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_ORDER, 5 - (int64_t)k < 3 ? 5 - (int64_t)k : 3));
        ck_assert_ok(score_step_apply(st, f.sde, g[k], g[k + 1], 8, b, NULL, NULL, 0));
    }
    for (size_t q = 0; q < 16; q++)
        ck_assert_float_eq(a[q], b[q]);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, 0));
    ck_assert_ok(score_sampler_run(s, f.sde, 8, x0, b, NULL, NULL, NULL));
    ck_assert_double_gt(fx_max_abs_diff(16, a, b), 1e-4);
    /* 10 steps and more: no effect */
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 10));
    ck_assert_ok(score_sampler_run(s, f.sde, 8, x0, b, NULL, NULL, NULL));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, 1));
    ck_assert_ok(score_sampler_run(s, f.sde, 8, x0, a, NULL, NULL, NULL));
    for (size_t q = 0; q < 16; q++)
        ck_assert_float_eq(a[q], b[q]);
    score_step_free(st);
    score_sampler_free(s);
    fx_free(&f);
}
END_TEST

START_TEST(guidance_through_combination)
{
    /* classifier-free guidance is a combination model behind the same sde API: w = 0 is the
     * conditional model, w > 0 pushes samples away from the unconditional mean */
    fx_system f;
    score_model *unc, *cfg;
    score_sde *sde;
    score_sampler *s;
    const double mu0[2] = {0.0, 0.0}, var0[2] = {1.0, 1.0};
    float x0[2 * 64], a[2 * 64], b[2 * 64];
    double ma = 0.0, mb = 0.0;
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 5, 64, x0);
    ck_assert_ok(score_model_new_gaussian(&unc, f.sched, 2, mu0, NULL, var0));
    ck_assert_ok(score_model_new_cfg(&cfg, f.model, unc, 0.0));
    ck_assert_ok(score_sde_new(&sde, f.sched, cfg, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("dpmpp-2m"), NULL, 2));
    ck_assert_ok(score_sampler_run(s, f.sde, 64, x0, a, NULL, NULL, NULL));
    ck_assert_ok(score_sampler_run(s, sde, 64, x0, b, NULL, NULL, NULL));
    ck_assert_double_le(fx_max_abs_diff(128, a, b), 1e-5);
    ck_assert_ok(score_model_set_f64(cfg, SCORE_MODEL_PARAM_GUIDANCE, 2.0));
    ck_assert_ok(score_sampler_run(s, sde, 64, x0, b, NULL, NULL, NULL));
    for (size_t i = 0; i < 64; i++) {
        ma += a[2 * i] / 64.0;
        mb += b[2 * i] / 64.0;
    }
    ck_assert_double_gt(mb, ma + 0.5); /* the conditional mean 1.0 is pushed away from 0 */
    score_sampler_free(s);
    score_sde_free(sde);
    score_model_free(cfg);
    score_model_free(unc);
    fx_free(&f);
}
END_TEST

/* ---- reproducibility ------------------------------------------------------------------------ */

static const struct {
    const char *pred, *corr;
    int snr_norm;
} repro_cases[] = {
    {"reverse-diffusion", "langevin", 1}, {"em", NULL, 0},       {"ancestral", NULL, 0},
    {"euler-ancestral", NULL, 0},        {"ddim", NULL, 0},     {"dpmpp-2m-sde", NULL, 0},
    {"heun", NULL, 0},                   {"none", "ald", 0},     {"dpmpp-3m", NULL, 0},
    {"dopri5", NULL, 0},                 {"dpm-solver-23", NULL, 0},
};

START_TEST(batch_split_invariance)
{
    /* one run of 40 rows = runs of 13 + 27 rows at row0 = 0, 13 = 40 runs of one row, bit for
     * bit, and a second run with the same sampler gives the same result */
    fx_system f;
    score_sampler *s;
    score_rng *rng;
    enum { N = 40 };
    float a[2 * N], b[2 * N], c[2 * N];
    fx_make(&f, SCORE_SCHEDULE_VP, 1, 1e-3);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 77));
    ck_assert_ok(score_rng_set_counter(rng, 5));
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(repro_cases[_i].pred),
                                   repro_cases[_i].corr ? score_step_type_find(repro_cases[_i].corr) : NULL, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 12));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ETA, 0.8));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_CHURN, 10.0));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SNR_NORM, repro_cases[_i].snr_norm));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_RTOL, 1e-4));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ATOL, 1e-4));
    ck_assert_ok(score_sampler_run(s, f.sde, N, NULL, a, rng, NULL, NULL));
    ck_assert_ok(score_sampler_run_ex(s, f.sde, 0, 13, NULL, b, rng, NULL, NULL));
    ck_assert_ok(score_sampler_run_ex(s, f.sde, 13, N - 13, NULL, b + 26, rng, NULL, NULL));
    for (size_t i = 0; i < N; i++)
        ck_assert_ok(score_sampler_run_ex(s, f.sde, i, 1, NULL, c + 2 * i, rng, NULL, NULL));
    for (size_t q = 0; q < 2 * N; q++) {
        ck_assert_msg(a[q] == b[q], "%s: split 13 + 27 differs at %zu", repro_cases[_i].pred, q);
        ck_assert_msg(a[q] == c[q], "%s: rows one by one differ at %zu", repro_cases[_i].pred, q);
        ck_assert(isfinite(a[q]));
    }
    ck_assert_ok(score_sampler_run(s, f.sde, N, NULL, b, rng, NULL, NULL));
    for (size_t q = 0; q < 2 * N; q++)
        ck_assert(a[q] == b[q]);
    /* another counter gives other samples for the stochastic ones */
    if (repro_cases[_i].corr != NULL || strcmp(repro_cases[_i].pred, "dpmpp-3m") != 0) {
        ck_assert_ok(score_rng_set_counter(rng, 6000));
        ck_assert_ok(score_sampler_run(s, f.sde, N, NULL, b, rng, NULL, NULL));
        ck_assert_double_gt(fx_max_abs_diff(2 * N, a, b), 1e-3);
    }
    score_sampler_free(s);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* ---- few steps on every schedule ------------------------------------------------------------ */

static const int sched_kinds[7] = {SCORE_SCHEDULE_VE,          SCORE_SCHEDULE_VP,
                                   SCORE_SCHEDULE_SUBVP,       SCORE_SCHEDULE_NCSN,
                                   SCORE_SCHEDULE_DDPM_LINEAR, SCORE_SCHEDULE_DDPM_SCALED_LINEAR,
                                   SCORE_SCHEDULE_DDPM_COSINE};
static const char *const few_pred[] = {
    "euler", "heun", "midpoint", "rk4", "dopri5", "em", "reverse-diffusion", "ancestral",
    "euler-ancestral", "ddim", "dpm-solver-1", "dpm-solver-2", "dpm-solver-3", "dpmpp-2m",
    "dpmpp-3m", "dpmpp-2m-sde", "dpm-solver-12", "dpm-solver-23", "none"};

START_TEST(few_steps_every_schedule)
{
    /* every sampler with 1, 2, 3, 5 steps (with and without the final denoise, with a
     * Langevin corrector for the SDE predictors) on every schedule kind gives finite samples */
    int kind = sched_kinds[_i];
    fx_system f;
    score_rng *rng;
    enum { N = 8 };
    float x[2 * N];
    const size_t steps[4] = {1, 2, 3, 5};
    fx_make(&f, kind, 0, -1.0);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 31));
    for (size_t p = 0; p < sizeof few_pred / sizeof few_pred[0]; p++) {
        for (int corr = 0; corr < 2; corr++) {
            score_sampler *s;
            ck_assert_ok(score_sampler_new(&s, score_step_type_find(few_pred[p]),
                                           corr ? score_step_type_find(_i % 2 ? "ald" : "langevin") : NULL, 2));
            ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_CHURN, 5.0));
            for (size_t k = 0; k < 4; k++) {
                for (int den = 0; den < 2; den++) {
                    int rc;
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)steps[k]));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, den));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID,
                                                       (int64_t)(1 + (k + p) % 6)));
                    rc = score_sampler_run(s, f.sde, N, NULL, x, rng, NULL, NULL);
                    ck_assert_msg(rc == SCORE_OK, "%s%s on %s, %zu steps, denoise %d: %s",
                                  few_pred[p], corr ? "+corrector" : "", score_schedule_name(f.sched),
                                  steps[k], den, score_last_error_message());
                    for (size_t q = 0; q < 2 * N; q++)
                        ck_assert_msg(isfinite(x[q]), "%s on %s: non-finite sample", few_pred[p],
                                      score_schedule_name(f.sched));
                }
            }
            score_sampler_free(s);
        }
    }
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

START_TEST(score_sde_vp_discretization)
{
    /* score_sde's VP discretization has beta_i >= 1 for N <= 20: refused with a clear error;
     * the default exact transitions (and the schedule's exact discretization) stay finite */
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    score_sampler *s;
    score_rng *rng;
    float x[2 * 8];
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_set_i64(sc, SCORE_SCHEDULE_PARAM_DISCRETIZATION, SCORE_SCHEDULE_DISC_SCORE_SDE));
    ck_assert_ok(score_model_new_gaussian(&m, sc, 2, fx_mean, fx_cov, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("reverse-diffusion"), NULL, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_DISC_N, 5));
    ck_assert_fails_with(score_sampler_run(s, sde, 8, NULL, x, rng, NULL, NULL), SCORE_E_RANGE);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_DISC_N, 0));
    ck_assert_ok(score_sampler_run(s, sde, 8, NULL, x, rng, NULL, NULL));
    for (size_t q = 0; q < 16; q++)
        ck_assert(isfinite(x[q]));
    score_sampler_free(s);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* ---- adaptive solves ------------------------------------------------------------------------- */

START_TEST(adaptive_reaches_tolerance)
{
    static const struct {
        const char *name;
        double tol;
    } cases[] = {{"dopri5", 1e-4}, {"dopri5", 1e-6}, {"dpm-solver-23", 1e-5}, {"dpm-solver-12", 1e-4}};
    fx_system f;
    enum { N = 32 };
    float x0[2 * N], x[2 * N], exact[2 * N];
    uint64_t nfe_prev = 0;
    fx_make(&f, _i ? SCORE_SCHEDULE_VE : SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 12, N, x0);
    ck_assert_ok(score_model_analytic_pf_map(f.model, f.T, f.t_eps, N, x0, exact));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        score_sampler *s;
        double worst = 0.0;
        ck_assert_ok(score_sampler_new(&s, score_step_type_find(cases[k].name), NULL, 2));
        ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_RTOL, cases[k].tol));
        ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ATOL, cases[k].tol));
        ck_assert_ok(score_sampler_run(s, f.sde, N, x0, x, NULL, NULL, NULL));
        for (size_t q = 0; q < 2 * N; q++)
            worst = fmax(worst, fabs(x[q] - exact[q]) / (cases[k].tol * (1.0 + fabs(exact[q]))));
        printf("adaptive %-13s %s tol %g: error / tol = %.2f, NFE %llu, failed row-steps %llu\n",
               cases[k].name, _i ? "VE" : "VP", cases[k].tol, worst,
               (unsigned long long)score_sampler_get_nfe(s),
               (unsigned long long)score_sampler_get_failed_steps(s));
        ck_assert_double_le(worst, ADAPTIVE_FACTOR);
        if (k == 1)
            ck_assert_uint_gt(score_sampler_get_nfe(s), nfe_prev);
        nfe_prev = score_sampler_get_nfe(s);
        score_sampler_free(s);
    }
    /* too few attempts */
    {
        score_sampler *s;
        ck_assert_ok(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_ODE, 2));
        ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_MAX_STEPS, 3));
        ck_assert_fails_with(score_sampler_run(s, f.sde, N, x0, x, NULL, NULL, NULL), SCORE_E_NOPROGRESS);
        score_sampler_free(s);
    }
    fx_free(&f);
}
END_TEST

/* ---- stochastic samplers on the mixture ------------------------------------------------------ */

static const struct {
    const char *pred, *corr;
    double eta, churn;
    int grid, m;
} sw_cases[] = {
    {"reverse-diffusion", "langevin", -1, 0, SCORE_GRID_UNIFORM_T, 1},
    {"em", NULL, -1, 0, SCORE_GRID_UNIFORM_T, 0},
    {"reverse-diffusion", NULL, -1, 0, SCORE_GRID_UNIFORM_T, 0},
    {"ancestral", NULL, -1, 0, SCORE_GRID_UNIFORM_T, 0},
    {"euler-ancestral", NULL, -1, 0, SCORE_GRID_UNIFORM_T, 0},
    {"ddim", NULL, 1.0, 0, SCORE_GRID_UNIFORM_T, 0},
    {"dpmpp-2m-sde", NULL, -1, 0, SCORE_GRID_UNIFORM_T, 0},
    {"heun", NULL, -1, 40.0, SCORE_GRID_KARRAS, 0},
};

enum { NSW = 1000, RSW = 6 };

/* Mean over RSW replicates of SW2(sampler run r, exact set A_r) and of SW2(exact set B_r, exact
 * set A_r) (equal in expectation for an exact sampler), and the mean mixture weights. */
static void sw_replicates(score_sampler *s, score_sde *sde, score_model *model, double t_eps,
                          double *sw, double *floor_sw, double wsum[3])
{
    score_rng *r;
    float *a = malloc(2 * NSW * sizeof *a), *b = malloc(2 * NSW * sizeof *b),
          *x = malloc(2 * NSW * sizeof *x);
    double w[3];
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(x);
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 2024));
    *sw = *floor_sw = 0.0;
    wsum[0] = wsum[1] = wsum[2] = 0.0;
    for (int k = 0; k < RSW; k++) {
        ck_assert_ok(score_rng_set_counter(r, 1000000u + 2u * (unsigned)k));
        ck_assert_ok(score_model_analytic_sample(model, r, t_eps, NSW, a));
        ck_assert_ok(score_rng_set_counter(r, 1000001u + 2u * (unsigned)k));
        ck_assert_ok(score_model_analytic_sample(model, r, t_eps, NSW, b));
        *floor_sw += fx_sw2(NSW, a, b) / RSW;
        ck_assert_ok(score_rng_set_counter(r, 10000u * (unsigned)k));
        ck_assert_ok(score_sampler_run(s, sde, NSW, NULL, x, r, NULL, NULL));
        *sw += fx_sw2(NSW, x, a) / RSW;
        fx_weights(NSW, x, w);
        for (int q = 0; q < 3; q++)
            wsum[q] += w[q] / RSW;
    }
    score_rng_free(r);
    free(a);
    free(b);
    free(x);
}

START_TEST(stochastic_samplers_gmm)
{
    int ve = _i >= (int)(sizeof sw_cases / sizeof sw_cases[0]);
    size_t c = (size_t)_i % (sizeof sw_cases / sizeof sw_cases[0]);
    fx_system f;
    score_sampler *s;
    double floor_sw, sw, wsum[3];
    fx_make(&f, ve ? SCORE_SCHEDULE_VE : SCORE_SCHEDULE_VP, 1, 1e-3);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(sw_cases[c].pred),
                                   sw_cases[c].corr ? score_step_type_find(sw_cases[c].corr) : NULL, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 100));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, sw_cases[c].grid));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, sw_cases[c].m));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ETA, sw_cases[c].eta));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_CHURN, sw_cases[c].churn));
    sw_replicates(s, f.sde, f.model, f.t_eps, &sw, &floor_sw, wsum);
    printf("%-18s %-9s %s: SW2 %.4f (floor %.4f, ratio %.2f), weights %.3f %.3f %.3f, NFE %llu\n",
           sw_cases[c].pred, sw_cases[c].corr ? sw_cases[c].corr : "", ve ? "VE" : "VP", sw,
           floor_sw, sw / floor_sw, wsum[0], wsum[1], wsum[2],
           (unsigned long long)score_sampler_get_nfe(s));
    ck_assert_double_le(sw, SW2_FACTOR * floor_sw);
    for (int q = 0; q < 3; q++)
        ck_assert_double_le(fabs(wsum[q] - fx_w[q]), TOL_WEIGHT);
    score_sampler_free(s);
    fx_free(&f);
}
END_TEST

START_TEST(sw2_detects_a_biased_sampler)
{
    /* negative control: the metric must reject a visibly biased sampler (Euler-Maruyama with
     * 4 steps; the Langevin corrector's SNR rule with per-row norms, unstable in 2-D) */
    fx_system f;
    score_sampler *s;
    double floor_sw, sw, wsum[3];
    fx_make(&f, SCORE_SCHEDULE_VP, 1, 1e-3);
    if (_i == 0) {
        ck_assert_ok(score_sampler_new(&s, score_step_type_find("em"), NULL, 2));
        ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 4));
    } else {
        ck_assert_ok(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_PC, 2));
        ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 100));
        ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SNR_NORM, 1));
    }
    sw_replicates(s, f.sde, f.model, f.t_eps, &sw, &floor_sw, wsum);
    printf("negative control %d: SW2 ratio %.2f\n", _i, sw / floor_sw);
    ck_assert_double_gt(sw, 2.0 * SW2_FACTOR * floor_sw);
    score_sampler_free(s);
    fx_free(&f);
}
END_TEST

START_TEST(annealed_langevin_ncsn)
{
    /* NCSNv2-style annealed Langevin (predictor none, ald corrector, final denoise) over a
     * geometric ladder of 20 levels 10 .. 0.01, 20 steps per level, step_lr 2e-5 */
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    score_sampler *s;
    double sw, floor_sw, wsum[3], teps;
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_NCSN));
    ck_assert_ok(score_schedule_set_f64(sc, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 10.0));
    ck_assert_ok(score_schedule_set_i64(sc, SCORE_SCHEDULE_PARAM_NUM_LEVELS, 20));
    ck_assert_ok(score_schedule_prepare(sc));
    ck_assert_ok(score_schedule_get_f64(sc, SCORE_SCHEDULE_PARAM_T_EPS, &teps));
    ck_assert_ok(score_model_new_gmm(&m, sc, 2, 3, fx_w, fx_mu, fx_var));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_NCSNV2, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, 20));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_STEP_LR, 2e-5));
    sw_replicates(s, sde, m, teps, &sw, &floor_sw, wsum);
    /* 20 levels x 20 corrector steps + the final denoise step */
    ck_assert_uint_eq(score_sampler_get_nfe(s), 20 * 20 + 1);
    printf("annealed Langevin (NCSN): SW2 %.4f (floor %.4f, ratio %.2f), weights %.3f %.3f %.3f\n",
           sw, floor_sw, sw / floor_sw, wsum[0], wsum[1], wsum[2]);
    ck_assert_double_le(sw, SW2_FACTOR * floor_sw);
    for (int q = 0; q < 3; q++)
        ck_assert_double_le(fabs(wsum[q] - fx_w[q]), TOL_WEIGHT);
    score_sampler_free(s);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

START_TEST(presets_run)
{
    fx_system f;
    score_sampler *s;
    score_rng *rng;
    float x[2 * 16];
    int64_t iv;
    fx_make(&f, SCORE_SCHEDULE_VE, 0, 1e-3);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    for (int p = SCORE_SAMPLER_PRESET_PC; p <= SCORE_SAMPLER_PRESET_DPMPP_2M; p++) {
        ck_assert_ok(score_sampler_new_preset(&s, p, 2));
        ck_assert_ok(score_sampler_get_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, &iv));
        if (p == SCORE_SAMPLER_PRESET_NCSN || p == SCORE_SAMPLER_PRESET_NCSNV2) {
            ck_assert_int_eq(iv, 0);
            ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 10));
        }
        if (p == SCORE_SAMPLER_PRESET_PC) {
            ck_assert_int_eq(iv, 1000);
            ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 50));
        }
        ck_assert_ok(score_sampler_run(s, f.sde, 16, NULL, x, rng, NULL, NULL));
        for (size_t q = 0; q < 32; q++)
            ck_assert(isfinite(x[q]));
        score_sampler_free(s);
    }
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, control_api);
    tcase_add_test(tc, evolve_api);
    tcase_add_test(tc, sampler_api);
    tcase_add_test(tc, callbacks_and_nfe);
    tcase_add_loop_test(tc, nan_from_callback_is_reported, 0, 2);
    tcase_add_test(tc, presets_run);
    tcase_add_test(tc, lower_order_final);
    tcase_add_test(tc, guidance_through_combination);
    suite_add_tcase(s, tc);
    tc = tcase_create("reproducibility");
    tcase_add_loop_test(tc, batch_split_invariance, 0, (int)(sizeof repro_cases / sizeof repro_cases[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("few-steps");
    tcase_add_loop_test(tc, few_steps_every_schedule, 0, 7);
    tcase_add_test(tc, score_sde_vp_discretization);
    suite_add_tcase(s, tc);
    tc = tcase_create("accuracy");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, adaptive_reaches_tolerance, 0, 2);
    tcase_add_loop_test(tc, stochastic_samplers_gmm, 0, 2 * (int)(sizeof sw_cases / sizeof sw_cases[0]));
    tcase_add_test(tc, annealed_langevin_ncsn);
    tcase_add_loop_test(tc, sw2_detects_a_biased_sampler, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(sampler_suite());
}
