/* Values of the adaptive path and of the stochastic steps' rules, checked directly: the final
 * denoise step of an adaptive run against the one-step data prediction, the order of each
 * embedded error estimate by halving the step, adaptive solves with an error bound and an NFE
 * budget, the Langevin step-size rule against its formula, and the noise counters of predictor
 * and corrector against a run rebuilt from single steps. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libscore/libscore.h"
#include "helpers/sampler-fixture.h"

/* The step types with an embedded error estimate and the order q of the lower solution: the
 * estimate is O(h^(q+1)) per step. */
static const struct {
    const char *name;
    int q;
} est_types[] = {{"dopri5", 4}, {"dpm-solver-12", 1}, {"dpm-solver-23", 2}};
enum { NEST = sizeof est_types / sizeof est_types[0] };

/* Adaptive run from x0 (n rows) with tolerance tol; final = the final_denoise parameter. */
static void adaptive_run(const fx_system *f, const char *type, double tol, int final, size_t n,
                         const float *x0, float *x, uint64_t *steps, uint64_t *nfe)
{
    score_sampler *s;
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(type), NULL, 2));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_RTOL, tol));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ATOL, tol));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, final));
    ck_assert_ok(score_sampler_run(s, f->sde, n, x0, x, NULL, NULL, NULL));
    *steps = score_sampler_get_steps(s);
    *nfe = score_sampler_get_nfe(s);
    score_sampler_free(s);
}

/* With final_denoise = 1 the adaptive run ends with one data prediction at t_eps: the result
 * is x0_hat(x(t_eps), t_eps) of the run without it (same rows, same solve), and the step and
 * evaluation counts are one higher. */
START_TEST(final_denoise_is_the_data_prediction)
{
    enum { N = 16 };
    fx_system f;
    float x0[2 * N], xa[2 * N], xb[2 * N], want[2 * N];
    double te[N];
    uint64_t sa, na, sb, nb;
    const char *type = est_types[_i % NEST].name;
    fx_make(&f, _i < NEST ? SCORE_SCHEDULE_VP : SCORE_SCHEDULE_VE, 1, 1e-3);
    fx_prior(&f, 31, N, x0);
    adaptive_run(&f, type, 1e-5, 0, N, x0, xa, &sa, &na);
    adaptive_run(&f, type, 1e-5, 1, N, x0, xb, &sb, &nb);
    for (size_t i = 0; i < N; i++)
        te[i] = f.t_eps;
    ck_assert_ok(score_sde_x0(f.sde, N, te, xa, want));
    for (size_t q = 0; q < 2 * N; q++) {
        double tol = 4.0 * 0x1p-24 * (1.0 + fabs(want[q]));
        ck_assert_msg(fabs((double)xb[q] - (double)want[q]) <= tol,
                      "%s: denoised value %zu = %.9g, data prediction %.9g", type, q, xb[q],
                      want[q]);
    }
    /* and the step did something: the noise left at t_eps is not negligible */
    ck_assert_double_gt(fx_max_abs_diff(2 * N, xa, xb), 1e-4);
    ck_assert_uint_eq(sb, sa + 1);
    ck_assert_uint_eq(nb, na + 1);
    fx_free(&f);
}
END_TEST

/* Largest |estimate| of one step of `type` from t0 over h in lambda (rows x, n). */
static double one_step_error(const fx_system *f, const char *type, double t0, double h, size_t n,
                             const float *x)
{
    score_step *st;
    double lam0, lam1, t1;
    float *y = malloc(2 * n * sizeof *y), *e = malloc(2 * n * sizeof *e);
    double worst = 0.0;
    ck_assert_ptr_nonnull(y);
    ck_assert_ptr_nonnull(e);
    ck_assert_ok(score_schedule_lambda(f->sched, 1, &t0, &lam0));
    lam1 = lam0 + h;
    ck_assert_ok(score_schedule_t_of_lambda(f->sched, 1, &lam1, &t1));
    ck_assert_ok(score_step_new(&st, score_step_type_find(type), 2));
    memcpy(y, x, 2 * n * sizeof *y);
    ck_assert_ok(score_step_apply(st, f->sde, t0, t1, n, y, e, NULL, 0));
    for (size_t q = 0; q < 2 * n; q++)
        worst = fmax(worst, fabs((double)e[q]));
    score_step_free(st);
    free(y);
    free(e);
    return worst;
}

/* The embedded estimate of a type whose lower solution has order q is C h^(q+1) + O(h^(q+2)):
 * halving the step divides it by about 2^(q+1) (measured on this system: 4.5, 9.6 and 45 for
 * q = 1, 2, 4 at these steps; the higher terms push the ratio up, float32 rounding of the
 * stages pulls it down at smaller steps). A lower solution with a wrong coefficient is off by
 * O(h) or O(h^2) and gives a ratio near 2 or 4 instead. */
START_TEST(error_estimate_order)
{
    enum { N = 8 };
    fx_system f;
    float x[2 * N];
    const char *type = est_types[_i].name;
    int q = est_types[_i].q;
    /* step sizes in lambda small enough for the leading term, large enough to stay far
     * above float32 rounding of x */
    double h = q == 4 ? 0.5 : 0.2, t0 = 0.6, e1, e2, ratio, want = ldexp(1.0, q + 1);
    fx_make(&f, SCORE_SCHEDULE_VP, 1, 1e-3);
    {
        score_rng *r;
        double a, sg;
        ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 5));
        ck_assert_ok(score_rng_fill_normal(r, 0, N, 0, 2, x));
        score_rng_free(r);
        ck_assert_ok(score_schedule_alpha_sigma(f.sched, 1, &t0, &a, &sg));
        /* points of the noised mixture: alpha mu_k + sqrt(alpha^2 var + sigma^2) z */
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < 2; j++) {
                size_t k = i % 3;
                x[2 * i + j] = (float)(a * fx_mu[2 * k + j] +
                                       sqrt(a * a * fx_var[2 * k + j] + sg * sg) * x[2 * i + j]);
            }
    }
    e1 = one_step_error(&f, type, t0, h, N, x);
    e2 = one_step_error(&f, type, t0, 0.5 * h, N, x);
    ratio = e1 / e2;
    printf("error estimate of %-13s: |e(h)| = %.3g, |e(h/2)| = %.3g, ratio %.2f (2^(q+1) = %g)\n",
           type, e1, e2, ratio, want);
    fflush(stdout);
    ck_assert_double_gt(e2, 1e-7);
    ck_assert_double_ge(ratio, 0.75 * want);
    ck_assert_double_le(ratio, 1.5 * want);
    fx_free(&f);
}
END_TEST

/* Adaptive PF-ODE solves to a tolerance: the error against the closed-form map is bounded and
 * so is the number of model evaluations (an estimate that is too pessimistic buys accuracy
 * with many more steps; one that is too optimistic misses the error bound). The budgets are
 * about 1.5 times the evaluations the solves take. */
START_TEST(tolerance_with_nfe_budget)
{
    static const struct {
        const char *name;
        double tol;
        uint64_t nfe_max[2]; /* VP, VE */
    } cases[] = {{"dopri5", 1e-5, {190, 145}}, {"dpm-solver-12", 1e-4, {370, 355}},
                 {"dpm-solver-23", 1e-5, {300, 260}}};
    enum { N = 32 };
    fx_system f;
    float x0[2 * N], x[2 * N], exact[2 * N];
    fx_make(&f, _i ? SCORE_SCHEDULE_VE : SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 12, N, x0);
    ck_assert_ok(score_model_analytic_pf_map(f.model, f.T, f.t_eps, N, x0, exact));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint64_t steps, nfe;
        double worst = 0.0;
        adaptive_run(&f, cases[k].name, cases[k].tol, 0, N, x0, x, &steps, &nfe);
        for (size_t q = 0; q < 2 * N; q++)
            worst = fmax(worst, fabs(x[q] - exact[q]) / (cases[k].tol * (1.0 + fabs(exact[q]))));
        printf("adaptive %-13s %s tol %g: error / tol = %.2f, NFE %llu, steps %llu\n",
               cases[k].name, _i ? "VE" : "VP", cases[k].tol, worst, (unsigned long long)nfe,
               (unsigned long long)steps);
        ck_assert_double_le(worst, 10.0);
        ck_assert_uint_le(nfe, cases[k].nfe_max[_i]);
    }
    fx_free(&f);
}
END_TEST

/* SCORE_CONTROL_PARAM_NORM: per row, every row keeps its own step sizes and its result does not
 * depend on the batch; over the batch (scipy's solve_ivp on the flattened state), all rows
 * share the accept decision and step size: no more attempts than the slowest row, still
 * within the tolerance of the exact map, and a row's result changes with the other rows of
 * the batch. Returns the attempts (batched calls of the step). */
static uint64_t evolve_run(const fx_system *f, int norm, double tol, size_t n, const float *x0,
                           float *x)
{
    score_control *c;
    score_evolve *e;
    score_step *st;
    uint64_t calls = 0;
    int rc;
    ck_assert_ok(score_control_new_tol(&c, tol, tol));
    ck_assert_ok(score_control_set_i64(c, SCORE_CONTROL_PARAM_NORM, norm));
    ck_assert_ok(score_evolve_new(&e, 2));
    ck_assert_ok(score_step_new(&st, score_step_type_find("dopri5"), 2));
    ck_assert_ok(score_evolve_init(e, f->T, 0.05, n));
    memcpy(x, x0, 2 * n * sizeof *x);
    while ((rc = score_evolve_apply(e, c, st, f->sde, f->t_eps, n, x, NULL)) == SCORE_OK)
        calls++;
    ck_assert_int_eq(rc, SCORE_DONE);
    score_step_free(st);
    score_evolve_free(e);
    score_control_free(c);
    return calls;
}

START_TEST(batch_error_norm)
{
    enum { N = 64 };
    const double tol = 1e-5;
    fx_system f;
    float x0[2 * N], xr[2 * N], xb[2 * N], xb7[2 * 7], exact[2 * N];
    uint64_t calls_row, calls_batch;
    double worst_row = 0.0, worst_batch = 0.0;
    int differs = 0;
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 5, N, x0);
    ck_assert_ok(score_model_analytic_pf_map(f.model, f.T, f.t_eps, N, x0, exact));
    calls_row = evolve_run(&f, SCORE_CONTROL_NORM_ROW, tol, N, x0, xr);
    calls_batch = evolve_run(&f, SCORE_CONTROL_NORM_BATCH, tol, N, x0, xb);
    for (size_t q = 0; q < 2 * N; q++) {
        double sc = tol * (1.0 + fabs(exact[q]));
        worst_row = fmax(worst_row, fabs(xr[q] - exact[q]) / sc);
        worst_batch = fmax(worst_batch, fabs(xb[q] - exact[q]) / sc);
    }
    printf("dopri5 tol %g, %d rows: per-row norm %llu attempts, error / tol %.2f; batch norm "
           "%llu attempts, error / tol %.2f\n", tol, N, (unsigned long long)calls_row,
           worst_row, (unsigned long long)calls_batch, worst_batch);
    ck_assert_double_le(worst_row, 10.0);
    ck_assert_double_le(worst_batch, 10.0);
    /* the batch norm never takes more attempts than the slowest row */
    ck_assert_uint_le(calls_batch, calls_row);
    /* the first 7 rows alone: per row they are the same bits, over the batch not */
    {
        (void)evolve_run(&f, SCORE_CONTROL_NORM_ROW, tol, 7, x0, xb7);
        ck_assert_mem_eq(xb7, xr, sizeof xb7);
        (void)evolve_run(&f, SCORE_CONTROL_NORM_BATCH, tol, 7, x0, xb7);
        for (size_t q = 0; q < 2 * 7; q++)
            differs |= xb7[q] != xb[q];
        ck_assert_int_eq(differs, 1);
    }
    ck_assert_fails_with(score_control_set_i64(NULL, SCORE_CONTROL_PARAM_NORM, 1), SCORE_E_INVAL);
    /* the sampler driver's adaptive mode takes the norm from SCORE_SAMPLER_PARAM_ERROR_NORM */
    {
        score_sampler *s;
        float xs[2 * N];
        double worst = 0.0;
        ck_assert_ok(score_sampler_new(&s, score_step_type_find("dopri5"), NULL, 2));
        ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_RTOL, tol));
        ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ATOL, tol));
        ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 0));
        ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ERROR_NORM,
                                           SCORE_CONTROL_NORM_BATCH));
        ck_assert_fails_with(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ERROR_NORM, 2),
                             SCORE_E_RANGE);
        ck_assert_ok(score_sampler_run(s, f.sde, N, x0, xs, NULL, NULL, NULL));
        for (size_t q = 0; q < 2 * N; q++)
            worst = fmax(worst, fabs(xs[q] - exact[q]) / (tol * (1.0 + fabs(exact[q]))));
        ck_assert_double_le(worst, 10.0);
        ck_assert_uint_le(score_sampler_get_steps(s), calls_row);
        score_sampler_free(s);
    }
    fx_free(&f);
}
END_TEST

/* One Langevin corrector step against x + eps s + sqrt(2 eps) z with
 * eps = 2 alpha_i (snr |z| / |s|)^2 (norms averaged over the batch, or per row),
 * alpha_i = (alpha(t) / alpha(t'))^2, z the step's documented noise (block 0). */
START_TEST(langevin_step_size_rule)
{
    enum { N = 8 };
    const double snr = 0.16, t = 0.5, tn = 0.45;
    int per_row = _i;
    fx_system f;
    score_step *st;
    score_rng *rng;
    float x[2 * N], y[2 * N], s[2 * N], z[2 * N];
    double tt[N], a[2], sg[2], times[2] = {t, tn}, ai, eps[N], mz = 0.0, ms = 0.0, nz[N], ns[N];
    fx_make(&f, SCORE_SCHEDULE_VP, 1, 1e-3);
    fx_prior(&f, 3, N, x);
    for (size_t i = 0; i < N; i++)
        tt[i] = t;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 77));
    ck_assert_ok(score_step_new(&st, score_step_type_find("langevin"), 2));
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_SNR, snr));
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_SNR_NORM, per_row));
    memcpy(y, x, sizeof x);
    ck_assert_ok(score_step_apply(st, f.sde, t, tn, N, y, NULL, rng, 9));
    ck_assert_ok(score_sde_score(f.sde, N, tt, x, s));
    ck_assert_ok(score_step_noise(rng, 9, 0, N, 2, 0, z));
    ck_assert_ok(score_schedule_alpha_sigma(f.sched, 2, times, a, sg));
    ai = (a[0] / a[1]) * (a[0] / a[1]);
    ck_assert_double_gt(fabs(ai - 1.0), 1e-3); /* the ratio is exercised */
    for (size_t i = 0; i < N; i++) {
        nz[i] = hypot(z[2 * i], z[2 * i + 1]);
        ns[i] = hypot(s[2 * i], s[2 * i + 1]);
        mz += nz[i] / N;
        ms += ns[i] / N;
    }
    for (size_t i = 0; i < N; i++) {
        double r = per_row ? snr * nz[i] / ns[i] : snr * mz / ms;
        eps[i] = 2.0 * ai * r * r;
        for (size_t j = 0; j < 2; j++) {
            size_t q = 2 * i + j;
            double want = x[q] + eps[i] * s[q] + sqrt(2.0 * eps[i]) * z[q];
            ck_assert_msg(fabs(y[q] - want) <= 1e-6 * (1.0 + fabs(want)),
                          "row %zu: langevin %.9g, formula %.9g (eps %.6g)", i, y[q], want, eps[i]);
        }
    }
    /* a fixed step size replaces the rule */
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, 0.01));
    memcpy(y, x, sizeof x);
    ck_assert_ok(score_step_apply(st, f.sde, t, tn, N, y, NULL, rng, 9));
    for (size_t q = 0; q < 2 * N; q++) {
        double want = x[q] + 0.01 * s[q] + sqrt(0.02) * z[q];
        ck_assert(fabs(y[q] - want) <= 1e-6 * (1.0 + fabs(want)));
    }
    score_step_free(st);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* A predictor-corrector run rebuilt from single steps: at grid point k, corrector step j
 * draws with counter 1 + k (m + 1) + 1 + j and the predictor with 1 + k (m + 1), so no two
 * draws of a run share a counter (the corrector never reuses the predictor's noise). */
START_TEST(predictor_corrector_noise_counters)
{
    enum { N = 6, STEPS = 4, M = 2 };
    fx_system f;
    score_sampler *smp;
    score_step *pred, *corr;
    score_rng *rng;
    float x0[2 * N], got[2 * N], x[2 * N];
    double grid[STEPS + 1];
    size_t npts;
    fx_make(&f, SCORE_SCHEDULE_VP, 1, 1e-3);
    fx_prior(&f, 8, N, x0);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 2024));
    ck_assert_ok(score_sampler_new(&smp, score_step_type_find("reverse-diffusion"),
                                   score_step_type_find("langevin"), 2));
    ck_assert_ok(score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, STEPS));
    ck_assert_ok(score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, M));
    ck_assert_ok(score_sampler_run(smp, f.sde, N, x0, got, rng, NULL, NULL));
    ck_assert_ok(score_sampler_get_grid(smp, f.sde, STEPS + 1, grid, &npts));
    ck_assert_uint_eq(npts, STEPS + 1);
    ck_assert_ok(score_step_new(&pred, score_step_type_find("reverse-diffusion"), 2));
    ck_assert_ok(score_step_new(&corr, score_step_type_find("langevin"), 2));
    /* the driver's default step-size rule (a step made alone defaults to score_sde's) */
    ck_assert_ok(score_step_set_i64(corr, SCORE_STEP_PARAM_SNR_NORM, 2));
    memcpy(x, x0, sizeof x);
    for (size_t k = 0; k <= STEPS; k++) {
        double tn = k < STEPS ? grid[k + 1] : grid[k];
        uint64_t base = 1 + (uint64_t)k * (M + 1);
        for (size_t j = 0; j < M; j++)
            ck_assert_ok(score_step_apply(corr, f.sde, grid[k], tn, N, x, NULL, rng, base + 1 + j));
        if (k < STEPS)
            ck_assert_ok(score_step_apply(pred, f.sde, grid[k], grid[k + 1], N, x, NULL, rng, base));
    }
    for (size_t q = 0; q < 2 * N; q++)
        ck_assert_msg(fabs((double)got[q] - (double)x[q]) <= 1e-5 * (1.0 + fabs((double)x[q])),
                      "value %zu: sampler %.9g, rebuilt %.9g", q, got[q], x[q]);
    /* the draws differ: the corrector's first noise is not the predictor's */
    {
        float zp[2 * N], zc[2 * N];
        ck_assert_ok(score_step_noise(rng, 1, 0, N, 2, 0, zp));
        ck_assert_ok(score_step_noise(rng, 2, 0, N, 2, 0, zc));
        ck_assert_double_gt(fx_max_abs_diff(2 * N, zp, zc), 0.1);
    }
    score_step_free(pred);
    score_step_free(corr);
    score_sampler_free(smp);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

static Suite *adaptive_suite(void)
{
    Suite *s = suite_create("sampler-adaptive");
    TCase *tc = tcase_create("adaptive");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, final_denoise_is_the_data_prediction, 0, 2 * NEST);
    tcase_add_loop_test(tc, error_estimate_order, 0, NEST);
    tcase_add_loop_test(tc, tolerance_with_nfe_budget, 0, 2);
    tcase_add_test(tc, batch_error_norm);
    suite_add_tcase(s, tc);
    tc = tcase_create("stochastic");
    tcase_add_loop_test(tc, langevin_step_size_rule, 0, 2);
    tcase_add_test(tc, predictor_corrector_noise_counters);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(adaptive_suite());
}
