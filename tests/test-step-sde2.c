/* The stochastic k-diffusion-family steps (dpm-2-ancestral, dpmpp-2s-ancestral, dpmpp-sde,
 * dpmpp-3m-sde: recorded outputs of k-diffusion given the same noise), Restart and the
 * Brownian-consistent noise: the path's statistics and
 * consistency, the eta = 0 reductions to the deterministic solvers, refusals, Restart's
 * evaluation count and marginals, and the strong order of the SDE solvers on one Brownian path
 * (VP SDE, 2-D Gaussian data with the analytic score: additive noise, so Euler-Maruyama has
 * strong order 1, and so do the exponential-integrator SDE solvers, whose noise term is one
 * Gaussian per step and misses the O(h^1.5) iterated integrals). */
#include <stdio.h>

#include "helpers/sampler-fixture.h"
#include "rng/brownian-priv.h"

enum { DIM = 2 };

/* ---- the Brownian path ------------------------------------------------------------------ */

START_TEST(path_is_consistent)
{
    score_rng *rng, *rng2;
    double ws[6 * 3], w1[3], w2[3];
    float a[3], b[3], c[3];
    const double T = 1.0;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    ck_assert_ok(score_rng_new(&rng2, SCORE_RNG_PHILOX4X32_10, 5));
    ck_assert_ok(score_rng_set_counter(rng2, 1));
    /* increments add up: sqrt(dt) z over [0.1, 0.37] + [0.37, 0.9] = over [0.1, 0.9] */
    score__brownian_increment(rng, T, 3, 3, 0.1, 0.37, a, ws);
    score__brownian_increment(rng, T, 3, 3, 0.37, 0.9, b, ws);
    score__brownian_increment(rng, T, 3, 3, 0.1, 0.9, c, ws);
    for (int j = 0; j < 3; j++) {
        double sum = sqrt(0.27) * a[j] + sqrt(0.53) * b[j];
        ck_assert_double_eq_tol(sum, sqrt(0.8) * (double)c[j], 1e-6);
    }
    /* W(0) = 0, queries repeat bit for bit, rows and counters give other paths */
    score__brownian_at(rng, T, 3, 3, 0.0, w1, ws);
    ck_assert(w1[0] == 0.0 && w1[1] == 0.0 && w1[2] == 0.0);
    score__brownian_at(rng, T, 3, 3, 0.61, w1, ws);
    score__brownian_at(rng, T, 3, 3, 0.61, w2, ws);
    ck_assert(memcmp(w1, w2, sizeof w1) == 0);
    score__brownian_at(rng, T, 4, 3, 0.61, w2, ws);
    ck_assert(w1[0] != w2[0]);
    score__brownian_at(rng2, T, 3, 3, 0.61, w2, ws);
    ck_assert(w1[0] != w2[0]);
    /* the path is exact at dyadic points and linear below depth 24: a query between two
     * neighbouring dyadic points is their interpolation */
    {
        double h = T / (double)(1u << SCORE__BROWNIAN_DEPTH), t0 = 12345.0 * h, wl[3], wr[3];
        score__brownian_at(rng, T, 3, 3, t0, wl, ws);
        score__brownian_at(rng, T, 3, 3, t0 + h, wr, ws);
        score__brownian_at(rng, T, 3, 3, t0 + 0.25 * h, w1, ws);
        for (int j = 0; j < 3; j++)
            ck_assert_double_eq_tol(w1[j], 0.75 * wl[j] + 0.25 * wr[j], 1e-12);
    }
    score_rng_free(rng);
    score_rng_free(rng2);
}
END_TEST

START_TEST(path_statistics)
{
    /* increments over [0.1, 0.3], [0.3, 0.77] (disjoint) and [0.1, 0.77] (containing both)
     * of R rows: standard normals, independent for disjoint intervals, correlation
     * sqrt(0.47 / 0.67) for nested ones */
    enum { R = 4000 };
    score_rng *rng;
    double ws[6], m[3] = {0, 0, 0}, v[3] = {0, 0, 0}, c01 = 0.0, c12 = 0.0;
    static float z[3][R];
    const double lo[3] = {0.1, 0.3, 0.1}, hi[3] = {0.3, 0.77, 0.77};
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 17));
    for (size_t r = 0; r < R; r++)
        for (int k = 0; k < 3; k++)
            score__brownian_increment(rng, 1.0, r, 1, lo[k], hi[k], &z[k][r], ws);
    for (size_t r = 0; r < R; r++) {
        for (int k = 0; k < 3; k++) {
            m[k] += z[k][r] / (double)R;
            v[k] += (double)z[k][r] * z[k][r] / (double)R;
        }
        c01 += (double)z[0][r] * z[1][r] / (double)R;
        c12 += (double)z[1][r] * z[2][r] / (double)R;
    }
    for (int k = 0; k < 3; k++) {
        ck_assert_double_lt(fabs(m[k]), 4.0 / sqrt((double)R));
        ck_assert_double_lt(fabs(v[k] - 1.0), 4.0 * sqrt(2.0 / (double)R));
    }
    ck_assert_double_lt(fabs(c01), 4.0 / sqrt((double)R));
    ck_assert_double_lt(fabs(c12 - sqrt(0.47 / 0.67)), 0.03);
    score_rng_free(rng);
}
END_TEST

/* ---- one-call checks -------------------------------------------------------------------- */

/* One call of type `name` (eta, 8 rows from the VE prior) from t0 to t1; x out. */
static void one_call(const fx_system *f, const char *name, double eta, double t0, double t1,
                     float *x, int *rc_out)
{
    score_step *st;
    score_rng *rng;
    ck_assert_ok(score_step_new(&st, score_step_type_find(name), DIM));
    if (eta >= 0.0)
        ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_ETA, eta));
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_RESTART_K, 0));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    fx_prior(f, 1, 8, x);
    *rc_out = score_step_apply(st, f->sde, t0, t1, 8, x, NULL, rng, 0);
    score_step_free(st);
    score_rng_free(rng);
}

START_TEST(matches_k_diffusion)
{
    /* rows 0 and 1 of 8 after 6 steps on the VE (sigma 0.01..20) Karras grid with the final
     * denoise, eta = 1, 2-D Gaussian data, start from the prior draw of seed 77, step k called
     * with counter k: values of k-diffusion's sample_dpm_2_ancestral, sample_dpmpp_2s_ancestral,
     * sample_dpmpp_sde and sample_dpmpp_3m_sde (torch, float64) given the same grid, start and
     * noise (the blocks 0, 1 of score_step_noise() at counter k as its noise_sampler) */
    static const struct {
        const char *name;
        double x[4];
    } rec[4] = {
        {"dpm-2-ancestral", {1.75292676, -0.0212378003, 1.94603791, -0.151758987}},
        {"dpmpp-2s-ancestral", {1.28467134, -0.385624661, 1.29771048, -0.448967783}},
        {"dpmpp-sde", {0.20182876, -0.671333173, 0.533846222, -0.804284345}},
        {"dpmpp-3m-sde", {1.18122819, -0.984453501, 1.10439542, -0.781234254}},
    };
    enum { NS = 6, NRW = 8 };
    fx_system f;
    double grid[NS + 1];
    ck_assert_ok(score_schedule_new(&f.sched, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_schedule_set_f64(f.sched, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 20.0));
    ck_assert_ok(score_schedule_prepare(f.sched));
    ck_assert_ok(score_model_new_gaussian(&f.model, f.sched, 2, fx_mean, fx_cov, NULL));
    ck_assert_ok(score_sde_new(&f.sde, f.sched, f.model, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_schedule_time_grid(f.sched, SCORE_GRID_KARRAS, NS, SCORE_GRID_APPEND_ZERO,
                                          grid));
    for (int k = 0; k < 4; k++) {
        score_step *st;
        score_rng *rng;
        float x[NRW * DIM];
        ck_assert_ok(score_step_new(&st, score_step_type_find(rec[k].name), DIM));
        ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 77));
        ck_assert_ok(score_schedule_prior_sample(f.sched, rng, NRW, DIM, x));
        for (int i = 0; i < NS; i++)
            ck_assert_ok(score_step_apply(st, f.sde, grid[i], grid[i + 1], NRW, x, NULL, rng,
                                          (uint64_t)i));
        for (int q = 0; q < 4; q++)
            ck_assert_msg(fabs((double)x[q] - rec[k].x[q]) < 1e-5,
                          "%s: x[%d] = %.9g, k-diffusion %.9g",
                          rec[k].name, q, (double)x[q], rec[k].x[q]);
        score_step_free(st);
        score_rng_free(rng);
    }
    fx_free(&f);
}
END_TEST

START_TEST(eta_zero_reductions)
{
    /* without noise: dpm-2-ancestral is DPM-Solver-2, dpmpp-2s-ancestral and dpmpp-sde are
     * DPM-Solver++(2S), restart with K = 0 is heun (same formulas in other arithmetic) */
    static const char *const pairs[4][2] = {{"dpm-2-ancestral", "dpm-solver-2"},
                                            {"dpmpp-2s-ancestral", "dpmpp-2s"},
                                            {"dpmpp-sde", "dpmpp-2s"},
                                            {"restart", "heun"}};
    for (int kind = 0; kind < 2; kind++) {
        fx_system f;
        fx_make(&f, kind ? SCORE_SCHEDULE_VP : SCORE_SCHEDULE_VE, 1, 1e-3);
        for (int p = 0; p < 4; p++) {
            float a[8 * DIM], b[8 * DIM];
            int rc;
            one_call(&f, pairs[p][0], 0.0, 0.7, 0.45, a, &rc);
            ck_assert_ok(rc);
            one_call(&f, pairs[p][1], -1.0, 0.7, 0.45, b, &rc);
            ck_assert_ok(rc);
            ck_assert_msg(fx_max_abs_diff(8 * DIM, a, b) < 2e-5, "%s vs %s: %g", pairs[p][0],
                          pairs[p][1], fx_max_abs_diff(8 * DIM, a, b));
        }
        fx_free(&f);
    }
}
END_TEST

START_TEST(registry_and_refusals)
{
    static const struct {
        const char *name;
        int kind;
    } t[5] = {{"dpm-2-ancestral", SCORE_STEP_DPM2_ANCESTRAL},
              {"dpmpp-2s-ancestral", SCORE_STEP_DPMPP_2S_ANCESTRAL},
              {"dpmpp-sde", SCORE_STEP_DPMPP_SDE},
              {"dpmpp-3m-sde", SCORE_STEP_DPMPP_3M_SDE},
              {"restart", SCORE_STEP_RESTART}};
    fx_system f;
    score_step *st;
    score_rng *rng;
    float x[8 * DIM];
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    for (int i = 0; i < 5; i++) {
        const score_step_type *T = score_step_type_find(t[i].name);
        ck_assert_ptr_eq(T, score_step_type_get(t[i].kind));
        ck_assert_int_eq(score_step_type_order(T), 2);
        ck_assert_uint_eq(score_step_type_flags(T), SCORE_STEP_FLAG_STOCHASTIC);
        ck_assert_ok(score_step_new(&st, T, DIM));
        ck_assert_int_eq(score_step_is_stochastic(st), 1);
        ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_ETA, 0.0));
        ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_RESTART_K, 0));
        ck_assert_int_eq(score_step_is_stochastic(st), 0);
        /* no generator needed without noise; going forward is refused */
        fx_prior(&f, 1, 8, x);
        ck_assert_ok(score_step_apply(st, f.sde, 0.5, 0.4, 8, x, NULL, NULL, 0));
        ck_assert_int_eq(score_step_apply(st, f.sde, 0.4, 0.5, 8, x, NULL, NULL, 0),
                         SCORE_E_INVAL);
        score_step_free(st);
    }
    /* Brownian noise where the noise is no increment over the step */
    ck_assert_ok(score_step_new(&st, score_step_type_find("restart"), DIM));
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_BROWNIAN, 1));
    ck_assert_int_eq(score_step_apply(st, f.sde, 0.5, 0.4, 8, x, NULL, rng, 0),
                     SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_BROWNIAN, 0));
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_RESTART_SMAX, 0.05));
    ck_assert_int_eq(score_step_apply(st, f.sde, 0.5, 0.4, 8, x, NULL, rng, 0), SCORE_E_RANGE);
    ck_assert_int_eq(score_step_set_f64(st, SCORE_STEP_PARAM_RESTART_SMIN, 0.0), SCORE_E_RANGE);
    ck_assert_int_eq(score_step_set_i64(st, SCORE_STEP_PARAM_RESTART_K, 101), SCORE_E_RANGE);
    ck_assert_int_eq(score_step_set_i64(st, SCORE_STEP_PARAM_RESTART_STEPS, 0), SCORE_E_RANGE);
    score_step_free(st);
    ck_assert_ok(score_step_new(&st, score_step_type_find("heun"), DIM));
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_CHURN, 0.2));
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_BROWNIAN, 1));
    ck_assert_int_eq(score_step_apply(st, f.sde, 0.5, 0.4, 8, x, NULL, rng, 0),
                     SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_CHURN, 0.0));
    ck_assert_ok(score_step_apply(st, f.sde, 0.5, 0.4, 8, x, NULL, rng, 0)); /* no noise */
    score_step_free(st);
    ck_assert_ok(score_step_new(&st, score_step_type_find("langevin"), DIM));
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_BROWNIAN, 1));
    ck_assert_int_eq(score_step_apply(st, f.sde, 0.5, 0.4, 8, x, NULL, rng, 0),
                     SCORE_E_UNSUPPORTED);
    score_step_free(st);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* ---- samplers --------------------------------------------------------------------------- */

static score_sampler *sampler(const char *name, size_t steps, int grid, int denoise)
{
    score_sampler *s;
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(name), NULL, DIM));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)steps));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grid));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, denoise));
    return s;
}

START_TEST(restart_counts_and_marginals)
{
    /* VP, Karras grid of 10 steps with the final denoise: 9 Heun steps (2 evaluations), the
     * denoise (1), and at the first point with s <= 0.1, K = 2 cycles of 9 Heun steps: 55;
     * the samples keep the data's mean and covariance */
    enum { R = 2000 };
    fx_system f;
    score_sampler *s;
    score_rng *rng;
    static float x[R * DIM];
    double m[2] = {0, 0}, c[3] = {0, 0, 0};
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 21));
    s = sampler("restart", 10, SCORE_GRID_KARRAS, 1);
    ck_assert_ok(score_sampler_run(s, f.sde, R, NULL, x, rng, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 55);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_RESTART_K, 0));
    ck_assert_ok(score_sampler_run(s, f.sde, 4, NULL, x, rng, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 19);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_RESTART_K, 3));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_RESTART_STEPS, 4));
    ck_assert_ok(score_sampler_run(s, f.sde, 4, NULL, x, rng, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 19 + 3 * 4 * 2);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_RESTART_K, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_RESTART_STEPS, 9));
    ck_assert_ok(score_sampler_run(s, f.sde, R, NULL, x, rng, NULL, NULL));
    for (size_t r = 0; r < R; r++) {
        m[0] += x[r * DIM] / (double)R;
        m[1] += x[r * DIM + 1] / (double)R;
    }
    for (size_t r = 0; r < R; r++) {
        double a = x[r * DIM] - m[0], b = x[r * DIM + 1] - m[1];
        c[0] += a * a / (double)R;
        c[1] += a * b / (double)R;
        c[2] += b * b / (double)R;
    }
    printf("restart: mean %.4f %.4f cov %.4f %.4f %.4f (data 1 -0.5; 1 0.3 0.5)\n", m[0], m[1],
           c[0], c[1], c[2]);
    ck_assert_double_lt(fabs(m[0] - fx_mean[0]), 4.0 * sqrt(fx_cov[0] / R));
    ck_assert_double_lt(fabs(m[1] - fx_mean[1]), 4.0 * sqrt(fx_cov[3] / R));
    ck_assert_double_lt(fabs(c[0] - fx_cov[0]), 0.1);
    ck_assert_double_lt(fabs(c[1] - fx_cov[1]), 0.1);
    ck_assert_double_lt(fabs(c[2] - fx_cov[3]), 0.1);
    score_sampler_free(s);
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* Runs `name` with Brownian noise (or not) on the VP Gaussian system from t = T to t_eps with
 * N time-uniform steps from the fixed start x0; result in out. */
enum { SR = 48 };
/* em on the uniform-t grid, the exponential integrators on the uniform-lambda grid */
static int grid_of(const char *name)
{
    return strcmp(name, "em") == 0 ? SCORE_GRID_UNIFORM_T : SCORE_GRID_UNIFORM_LAMBDA;
}

static void sde_run(const fx_system *f, const char *name, size_t N, int brownian, uint64_t seed,
                    const float *x0, float *out)
{
    score_sampler *s = sampler(name, N, grid_of(name), 0);
    score_rng *rng;
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_BROWNIAN, brownian));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_sampler_run(s, f->sde, SR, x0, out, rng, NULL, NULL));
    score_rng_free(rng);
    score_sampler_free(s);
}

static double mean_abs_diff(size_t n, const float *a, const float *b)
{
    double e = 0.0;
    for (size_t i = 0; i < n; i++)
        e += fabs((double)a[i] - (double)b[i]);
    return e / (double)n;
}

START_TEST(same_path_at_any_step_count)
{
    /* 20 and 200 steps: with Brownian noise the results differ by the discretisation error
     * only; with independent noise per step by the spread of the distribution */
    fx_system f;
    float x0[SR * DIM], a[SR * DIM], b[SR * DIM];
    static const char *const names[3] = {"em", "dpmpp-2m-sde", "dpmpp-sde"};
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 7, SR, x0);
    for (int k = 0; k < 3; k++) {
        double eb, ei;
        sde_run(&f, names[k], 20, 1, 99, x0, a);
        sde_run(&f, names[k], 200, 1, 99, x0, b);
        eb = mean_abs_diff(SR * DIM, a, b);
        sde_run(&f, names[k], 20, 0, 99, x0, a);
        sde_run(&f, names[k], 200, 0, 99, x0, b);
        ei = mean_abs_diff(SR * DIM, a, b);
        printf("%-13s 20 vs 200 steps: mean |diff| %.4f Brownian, %.4f independent noise\n",
               names[k], eb, ei);
        ck_assert_double_lt(eb, 0.2 * ei);
    }
    fx_free(&f);
}
END_TEST

START_TEST(brownian_batch_split)
{
    /* the path is keyed by the global row: chunks of 7 rows give the same bits */
    fx_system f;
    score_sampler *s;
    score_rng *rng;
    float x0[SR * DIM], a[SR * DIM], b[SR * DIM];
    static const char *const names[2] = {"em", "dpmpp-sde"};
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 7, SR, x0);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    for (int k = 0; k < 2; k++) {
        s = sampler(names[k], 12, SCORE_GRID_UNIFORM_LAMBDA, 1);
        ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_BROWNIAN, 1));
        ck_assert_ok(score_sampler_run(s, f.sde, SR, x0, a, rng, NULL, NULL));
        for (size_t r0 = 0; r0 < SR; r0 += 7) {
            size_t n = SR - r0 < 7 ? SR - r0 : 7;
            ck_assert_ok(score_sampler_run_ex(s, f.sde, r0, n, x0 + r0 * DIM, b + r0 * DIM, rng,
                                              NULL, NULL));
        }
        ck_assert(memcmp(a, b, sizeof a) == 0);
        score_sampler_free(s);
    }
    score_rng_free(rng);
    fx_free(&f);
}
END_TEST

/* Strong order: mean |X_N - X_ref| over SR rows x 2 columns for N = 32 .. 256 against 4096
 * steps on the same path, least-squares slope in log2. */
static const struct {
    const char *name;
    double order;
} strong_cases[] = {
    {"em", 1.0},           {"dpmpp-2m-sde", 1.0},       {"dpmpp-sde", 1.0},
    {"dpmpp-3m-sde", 1.0}, {"dpm-2-ancestral", 1.0}, {"dpmpp-2s-ancestral", 1.0},
};

START_TEST(strong_order)
{
    enum { NN = 4 };
    static const size_t Ns[NN] = {64, 128, 256, 512};
    fx_system f;
    float x0[SR * DIM], ref[SR * DIM], x[SR * DIM];
    double e[NN], sx = 0, sy = 0, sxx = 0, sxy = 0, slope;
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 7, SR, x0);
    sde_run(&f, strong_cases[_i].name, 4096, 1, 31, x0, ref);
    for (int k = 0; k < NN; k++) {
        double lx = log2((double)Ns[k]), ly;
        sde_run(&f, strong_cases[_i].name, Ns[k], 1, 31, x0, x);
        e[k] = mean_abs_diff(SR * DIM, x, ref);
        ly = log2(e[k]);
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
    }
    slope = -(NN * sxy - sx * sy) / (NN * sxx - sx * sx);
    printf("strong %-18s errors %.3e %.3e %.3e %.3e slope %.2f\n", strong_cases[_i].name, e[0],
           e[1], e[2], e[3], slope);
    ck_assert_msg(fabs(slope - strong_cases[_i].order) <= 0.2, "%s: strong slope %.3f",
                  strong_cases[_i].name, slope);
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("step-sde2");
    TCase *tc = tcase_create("sde2");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, path_is_consistent);
    tcase_add_test(tc, path_statistics);
    tcase_add_test(tc, matches_k_diffusion);
    tcase_add_test(tc, eta_zero_reductions);
    tcase_add_test(tc, registry_and_refusals);
    tcase_add_test(tc, restart_counts_and_marginals);
    tcase_add_test(tc, same_path_at_any_step_count);
    tcase_add_test(tc, brownian_batch_split);
    tcase_add_loop_test(tc, strong_order, 0,
                        (int)(sizeof strong_cases / sizeof strong_cases[0]));
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
