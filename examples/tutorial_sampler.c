/* The program of doc/tutorial-custom-sampler.md: writing samplers from libscore's primitives.
 *
 * The data are Gaussian, N(mu, diag(var)) in 2-D, and the model is their exact score under the
 * VP schedule, so the exact end point of the probability-flow ODE is known in closed form
 * (score_model_analytic_pf_map()) and every sampler below can be checked against it.
 *
 *   1. DDIM written from its formula, with only the sde (score_sde_x0()) and the schedule
 *      (score_schedule_alpha_sigma()): x' = alpha' x0 + sigma' (x - alpha x0) / sigma, and
 *      with eta > 0 the noise of the same (counter, row) coordinates as the library's steps.
 *   2. The same loop with the built-in "ddim" step type (score_step_apply()): the same numbers.
 *   3. An adaptive solve with a control and an evolve object (DPM-Solver-2/3 pair with its
 *      error estimate), ending with the denoising step to t = 0.
 * The program exits with status 1 when a result is not what the tutorial says. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <libscore/libscore.h>

#define CHECK(call)                                                                          \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ != SCORE_OK) {                                                               \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, score_status_name(rc_),           \
                    score_last_error_message());                                             \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

enum { DIM = 2, N = 500, STEPS = 50 };

/* ---- 1. DDIM by hand ---------------------------------------------------------------------- */

/* One DDIM step of n rows from t to t_next (0 = the data) with noise amount eta; z is the
 * step's standard normal noise (n * DIM, used when eta > 0), x0 a scratch of n * DIM. */
static void ddim_step(score_sde *sde, double t, double t_next, double eta, size_t n, float *x,
                      float *x0, const float *z)
{
    static double tt[N];
    double a, sg, an = 1.0, sgn = 0.0;
    const score_schedule *sch = score_sde_schedule(sde);
    for (size_t i = 0; i < n; i++)
        tt[i] = t;
    CHECK(score_sde_x0(sde, n, tt, x, x0)); /* the model's data prediction at (x, t) */
    CHECK(score_schedule_alpha_sigma(sch, 1, &t, &a, &sg));
    if (t_next > 0.0)
        CHECK(score_schedule_alpha_sigma(sch, 1, &t_next, &an, &sgn));
    /* the noise part: se of fresh noise, the rest along the predicted noise direction */
    double se = 0.0;
    if (eta > 0.0) {
        double q = (sgn / an) / (sg / a);
        se = fmin(eta * sgn * sqrt(fmax(1.0 - q * q, 0.0)), sgn);
    }
    double ce = sqrt(fmax(sgn * sgn - se * se, 0.0)) / sg;
    for (size_t k = 0; k < n * DIM; k++) {
        double sigma_eps = (double)x[k] - a * x0[k]; /* sigma * eps_hat */
        double v = an * x0[k] + ce * sigma_eps;
        if (eta > 0.0)
            v += se * (double)z[k];
        x[k] = (float)v;
    }
}

/* The whole sampler: steps steps on the grid (the last one to t = 0). Step k draws its noise
 * at counter k + 1, row i at row i, block 0: the coordinates a built-in step called with
 * counter k + 1 uses, so part 2 reproduces this loop exactly. */
static void ddim_by_hand(score_sde *sde, size_t steps, const double *grid, double eta,
                         const score_rng *rng, float *x)
{
    static float x0[N * DIM], z[N * DIM];
    for (size_t k = 0; k < steps; k++) {
        if (eta > 0.0)
            CHECK(score_step_noise(rng, k + 1, 0, N, DIM, 0, z));
        ddim_step(sde, grid[k], grid[k + 1], eta, N, x, x0, z);
    }
}

/* ---- 2. the same with the built-in step type ---------------------------------------------- */

static void ddim_builtin(score_sde *sde, const double *grid, double eta, const score_rng *rng,
                         float *x)
{
    score_step *ddim;
    CHECK(score_step_new(&ddim, score_step_type_find("ddim"), DIM));
    CHECK(score_step_set_f64(ddim, SCORE_STEP_PARAM_ETA, eta));
    for (size_t k = 0; k < STEPS; k++)
        CHECK(score_step_apply(ddim, sde, grid[k], grid[k + 1], N, x, NULL, rng, k + 1));
    score_step_free(ddim);
}

/* ---- 3. adaptive: control + evolve --------------------------------------------------------- */

/* Integrates the PF-ODE from T to t_end with an error-controlled step, then takes the denoising
 * step to t = 0 with a fixed step. Returns the number of accepted steps. */
static uint64_t adaptive(score_sde *sde, double T, double t_end, double tol, float *x,
                         uint64_t *nfe)
{
    score_control *ctl;
    score_evolve *ev;
    score_step *pair, *last;
    CHECK(score_control_new_tol(&ctl, tol, tol));
    CHECK(score_evolve_new(&ev, DIM));
    CHECK(score_step_new(&pair, score_step_type_find("dpm-solver-23"), DIM));
    CHECK(score_step_new(&last, score_step_type_find("ddim"), DIM));
    CHECK(score_evolve_init(ev, T, 0.0, N)); /* h0 = 0: the default first step */
    int rc;
    while ((rc = score_evolve_apply(ev, ctl, pair, sde, t_end, N, x, NULL)) == SCORE_OK)
        ; /* each call is one attempt per unfinished row; SCORE_DONE when all are at t_end */
    if (rc != SCORE_DONE)
        CHECK(rc);
    CHECK(score_evolve_apply_fixed(ev, last, sde, 0.0, N, x, NULL)); /* the denoising step */
    uint64_t steps = score_evolve_get_steps(ev);
    *nfe = score_evolve_get_nfe(ev);
    score_step_free(last);
    score_step_free(pair);
    score_evolve_free(ev);
    score_control_free(ctl);
    return steps;
}

/* ---- checks -------------------------------------------------------------------------------- */

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

int main(void)
{
    static float prior[N * DIM], hand[N * DIM], builtin[N * DIM], exact[N * DIM], ad[N * DIM];
    const double mu[DIM] = {1.5, -0.5}, var[DIM] = {0.25, 0.64};
    int ok = 1;

    score_schedule *vp;
    score_model *gauss;
    score_sde *sde;
    score_rng *rng;
    CHECK(score_schedule_new_preset(&vp, "vp"));
    CHECK(score_model_new_gaussian(&gauss, vp, DIM, mu, NULL, var));
    CHECK(score_sde_new(&sde, vp, gauss, SCORE_OUTPUT_SCORE));
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 11));

    double T, t_eps, grid[STEPS + 1];
    CHECK(score_schedule_get_f64(vp, SCORE_SCHEDULE_PARAM_T, &T));
    CHECK(score_schedule_get_f64(vp, SCORE_SCHEDULE_PARAM_T_EPS, &t_eps));
    /* STEPS times uniform in log-SNR from T to t_eps (STEPS - 1 steps), then the step to 0 */
    CHECK(score_schedule_time_grid(vp, SCORE_GRID_UNIFORM_LAMBDA, STEPS,
                                   SCORE_GRID_APPEND_ZERO, grid));
    CHECK(score_schedule_prior_sample(vp, rng, N, DIM, prior));

    /* the exact PF-ODE end point of each prior point (the data, t = 0) */
    CHECK(score_model_analytic_pf_map(gauss, T, 0.0, N, prior, exact));

    for (int pass = 0; pass < 2; pass++) {
        double eta = pass == 0 ? 0.0 : 1.0;
        for (size_t k = 0; k < N * DIM; k++)
            hand[k] = builtin[k] = prior[k];
        ddim_by_hand(sde, STEPS, grid, eta, rng, hand);
        ddim_builtin(sde, grid, eta, rng, builtin);
        double d = max_abs_diff(hand, builtin, N * DIM);
        printf("DDIM eta=%g: by hand vs built-in step: max |difference| = %.3g\n", eta, d);
        ok &= d <= 1e-5;
        if (eta == 0.0) {
            /* DDIM is first order: twice the steps, half the error */
            static float twice[N * DIM];
            static double grid2[2 * STEPS + 1];
            CHECK(score_schedule_time_grid(vp, SCORE_GRID_UNIFORM_LAMBDA, 2 * STEPS,
                                           SCORE_GRID_APPEND_ZERO, grid2));
            for (size_t k = 0; k < N * DIM; k++)
                twice[k] = prior[k];
            ddim_by_hand(sde, 2 * STEPS, grid2, 0.0, NULL, twice);
            double e1 = max_abs_diff(hand, exact, N * DIM);
            double e2 = max_abs_diff(twice, exact, N * DIM);
            printf("DDIM eta=0: max error to the exact PF-ODE end point %.3g (%d steps), "
                   "%.3g (%d steps): ratio %.2f\n", e1, STEPS, e2, 2 * STEPS, e1 / e2);
            ok &= e1 / e2 > 1.7 && e1 / e2 < 2.4;
        }
    }

    for (size_t k = 0; k < N * DIM; k++)
        ad[k] = prior[k];
    uint64_t nfe;
    uint64_t steps = adaptive(sde, T, t_eps, 1e-4, ad, &nfe);
    double e = max_abs_diff(ad, exact, N * DIM);
    printf("adaptive DPM-Solver-2/3, tol 1e-4: %llu steps, %llu evaluations, max error %.3g\n",
           (unsigned long long)steps, (unsigned long long)nfe, e);
    ok &= e < 5e-3;

    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(gauss);
    score_schedule_free(vp);
    if (!ok)
        fprintf(stderr, "tutorial_sampler: a result is not what the tutorial says\n");
    return ok ? 0 : 1;
}
