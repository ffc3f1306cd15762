/* Multistep LMS, DEIS and UniPC step types and the published DPM-Solver++(3M) form: names,
 * convergence orders against the closed-form PF-ODE map of Gaussian data, the updates of the
 * first two steps written out by hand (VE, where y = x and s = sigma), and the UniC corrector's
 * use of the previous state only when x is the state the previous call produced. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/sampler-fixture.h"

enum { NR = 16 };

/* ---- names ----------------------------------------------------------------------------- */

START_TEST(names_and_aliases)
{
    static const struct {
        const char *name;
        int kind, order;
    } rows[] = {
        {"lms", SCORE_STEP_LMS, 4},         {"deis", SCORE_STEP_DEIS, 3},
        {"unipc", SCORE_STEP_UNIPC, 3},     {"unipc-bh1", SCORE_STEP_UNIPC_BH1, 3},
        {"unipc_bh1", SCORE_STEP_UNIPC_BH1, 3}, {"uni_pc", SCORE_STEP_UNIPC_BH1, 3},
        {"uni_pc_bh2", SCORE_STEP_UNIPC, 3}, {"unipc_bh2", SCORE_STEP_UNIPC, 3},
        {"dpmpp_3m", SCORE_STEP_DPMPP_3M, 3}, {"dpmpp_2m", SCORE_STEP_DPMPP_2M, 2},
        {"euler_a", SCORE_STEP_EULER_ANCESTRAL, 1}, {"ddim", SCORE_STEP_DDIM, 1},
        {"heun", SCORE_STEP_HEUN, 2},
        /* k-diffusion / web-UI / ComfyUI spellings */
        {"euler_ancestral", SCORE_STEP_EULER_ANCESTRAL, 1}, {"euler", SCORE_STEP_EULER, 1},
        {"dpmpp_2m_sde", SCORE_STEP_DPMPP_2M_SDE, 2}, {"dpm_2", SCORE_STEP_DPM_SOLVER_2, 2},
        {"dpm_2_ancestral", SCORE_STEP_DPM2_ANCESTRAL, 2},
        {"dpm_2_a", SCORE_STEP_DPM2_ANCESTRAL, 2},
        {"dpmpp_3m_sde", SCORE_STEP_DPMPP_3M_SDE, 2}, {"dpmpp_sde", SCORE_STEP_DPMPP_SDE, 2},
        {"dpmpp_2s_ancestral", SCORE_STEP_DPMPP_2S_ANCESTRAL, 2},
        {"dpmpp_2s_a", SCORE_STEP_DPMPP_2S_ANCESTRAL, 2}, {"dpmpp_2s", SCORE_STEP_DPMPP_2S, 2},
        {"dpmpp_3s", SCORE_STEP_DPMPP_3S, 3},
        {"dpm_solver_3", SCORE_STEP_DPM_SOLVER_3, 3},
        {"reverse_diffusion", SCORE_STEP_REVERSE_DIFFUSION, 1},
        {"euler_maruyama", SCORE_STEP_EULER_MARUYAMA, 1}, {"restart", SCORE_STEP_RESTART, 2},
        /* the k_ prefix of Stable Diffusion's scripts */
        {"k_lms", SCORE_STEP_LMS, 4}, {"k_euler", SCORE_STEP_EULER, 1},
        {"k_euler_a", SCORE_STEP_EULER_ANCESTRAL, 1}, {"k_heun", SCORE_STEP_HEUN, 2},
        {"k_dpm_2", SCORE_STEP_DPM_SOLVER_2, 2}, {"k_dpm_2_a", SCORE_STEP_DPM2_ANCESTRAL, 2},
        {"k_dpmpp_2m", SCORE_STEP_DPMPP_2M, 2}, {"k_dpmpp_2s_a", SCORE_STEP_DPMPP_2S_ANCESTRAL, 2},
        {"k_dpmpp_sde", SCORE_STEP_DPMPP_SDE, 2},
        /* diffusers' scheduler classes (their default configurations) */
        {"EulerDiscreteScheduler", SCORE_STEP_EULER, 1},
        {"EulerAncestralDiscreteScheduler", SCORE_STEP_EULER_ANCESTRAL, 1},
        {"HeunDiscreteScheduler", SCORE_STEP_HEUN, 2}, {"LMSDiscreteScheduler", SCORE_STEP_LMS, 4},
        {"DDIMScheduler", SCORE_STEP_DDIM, 1}, {"DEISMultistepScheduler", SCORE_STEP_DEIS, 3},
        {"UniPCMultistepScheduler", SCORE_STEP_UNIPC, 3},
        {"KDPM2DiscreteScheduler", SCORE_STEP_DPM_SOLVER_2, 2},
        {"KDPM2AncestralDiscreteScheduler", SCORE_STEP_DPM2_ANCESTRAL, 2},
        {"DPMSolverMultistepScheduler", SCORE_STEP_DPMPP_2M, 2},
        {"DPMSolverSDEScheduler", SCORE_STEP_DPMPP_SDE, 2},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const score_step_type *t = score_step_type_find(rows[i].name);
        ck_assert_msg(t != NULL, "%s not found", rows[i].name);
        ck_assert_int_eq(score_step_type_kind(t), rows[i].kind);
        ck_assert_int_eq(score_step_type_order(t), rows[i].order);
        ck_assert_uint_eq(score_step_type_flags(t) & SCORE_STEP_FLAG_ERROR_ESTIMATE, 0u);
        ck_assert_ptr_eq(score_step_type_get(rows[i].kind), t);
    }
    ck_assert_ptr_null(score_step_type_find("UniPC"));
    ck_assert_ptr_null(score_step_type_find("lms4"));
    ck_assert_ptr_null(score_step_type_find("k_"));
    ck_assert_ptr_null(score_step_type_find("k_UniPC"));
    ck_assert_ptr_null(score_step_type_find("lms_karras"));
    ck_assert_ptr_null(score_step_type_find("dpm_fast")); /* ::SCORE_SAMPLER_PARAM_ORDER_SEQUENCE */
    ck_assert_str_eq(score_param_name(SCORE_OBJECT_STEP, SCORE_STEP_PARAM_DPMPP_3M_FORM),
                     "dpmpp_3m_form");
    ck_assert_str_eq(score_param_name(SCORE_OBJECT_SAMPLER, SCORE_SAMPLER_PARAM_DPMPP_3M_FORM),
                     "dpmpp_3m_form");
}
END_TEST

/* ---- convergence orders ---------------------------------------------------------------- */

/* Global error of LMS-4 and DEIS-3 on Karras grids with a small exponent rho: with the default
 * rho = 7 their pre-asymptotic range reaches the float32 floor of the state (LMS-4: slopes 3.6 -
 * 3.8 over 40 - 160 steps; DEIS-3 on VP 2.8), on grids with rho = 2 or 3 the leading error
 * term dominates from about 20 steps while the error is still 10 - 1000 times the floor. The
 * grid is the schedule's Karras grid with that rho, computed from a copy of the schedule. */
static double run_error_rho(const fx_system *f, const char *name, double rho, size_t N,
                            const float *x0, const float *exact)
{
    score_schedule *sc;
    score_sampler *s;
    double grid[161];
    float x[2 * NR];
    ck_assert_uint_le(N + 1, sizeof grid / sizeof grid[0]);
    ck_assert_ok(score_schedule_clone(&sc, f->sched));
    ck_assert_ok(score_schedule_set_f64(sc, SCORE_SCHEDULE_PARAM_RHO, rho));
    ck_assert_ok(score_schedule_time_grid(sc, SCORE_GRID_KARRAS, N + 1, 0, grid));
    score_schedule_free(sc);
    ck_assert_double_eq(grid[0], f->T);
    ck_assert_double_eq_tol(grid[N], f->t_eps, 1e-12);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(name), NULL, 2));
    ck_assert_ok(score_sampler_set_grid(s, N + 1, grid));
    ck_assert_ok(score_sampler_run(s, f->sde, NR, x0, x, NULL, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), (uint64_t)N);
    score_sampler_free(s);
    return fx_max_abs_diff(2 * NR, x, exact);
}

static const struct {
    const char *name;
    int kind;
    double rho, slope;
    size_t n0;
} global_cases[] = {
    {"lms", SCORE_SCHEDULE_VE, 2.0, 4.0, 30},
    {"deis", SCORE_SCHEDULE_VE, 3.0, 3.0, 20},
    {"deis", SCORE_SCHEDULE_VP, 3.0, 3.0, 40},
};

START_TEST(global_order_lms4_deis3)
{
    /* slope of log2(error) over N = n0, 2 n0, 4 n0 (closed-form endpoint, T -> t_eps = 1e-3,
     * no final denoise) within 0.2 of the order, with the smallest error at least 10 times
     * the float32 floor of the state (~1e-6) */
    fx_system f;
    float x0[2 * NR], exact[2 * NR];
    double e[3], slope;
    const char *name = global_cases[_i].name;
    size_t n0 = global_cases[_i].n0;
    fx_make(&f, global_cases[_i].kind, 0, 1e-3);
    fx_prior(&f, 1, NR, x0);
    ck_assert_ok(score_model_analytic_pf_map(f.model, f.T, f.t_eps, NR, x0, exact));
    for (int k = 0; k < 3; k++)
        e[k] = run_error_rho(&f, name, global_cases[_i].rho, n0 << k, x0, exact);
    slope = (log2(e[0]) - log2(e[2])) / 2.0;
    printf("global %-5s %s karras rho %.0f: errors %.3e %.3e %.3e slope %.2f\n", name,
           global_cases[_i].kind == SCORE_SCHEDULE_VE ? "VE" : "VP", global_cases[_i].rho, e[0],
           e[1], e[2], slope);
    ck_assert_msg(fabs(slope - global_cases[_i].slope) <= 0.2, "%s: global slope %.3f", name,
                  slope);
    ck_assert_msg(e[2] < e[1] && e[1] < e[0] && e[2] > 1e-5, "%s: errors %g %g %g", name, e[0],
                  e[1], e[2]);
    fx_free(&f);
}
END_TEST

/* LMS-4 on VP with a double state: with the float state its slope stays at 3.5 - 3.7 above
 * the float32 floor on every grid tried; with a double state (the model analytic, so the whole
 * solve is double) the floor is gone and the asymptotic slope appears: Karras grid with rho =
 * 2, N = 320, 640, 1280 (measured errors 2.8e-5, 1.7e-6, 1.05e-7: slope 4.03; rho 3: 3.94,
 * rho 7: 3.92 over the same N). */
START_TEST(global_order_lms4_vp_double)
{
    static const double mean[2] = {1.0, -0.5}, var[2] = {1.0, 0.25};
    score_schedule *sc, *sk;
    score_model *m;
    score_sde *sde;
    score_sampler *s;
    score_rng *r;
    float x0f[2 * NR];
    double x0[2 * NR], exact[2 * NR], x[2 * NR], e[3], slope, grid[1281], T, te, a, sg, an, sn;
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_set_f64(sc, SCORE_SCHEDULE_PARAM_T_EPS, 1e-3));
    ck_assert_ok(score_schedule_prepare(sc));
    ck_assert_ok(score_model_new_gaussian(&m, sc, 2, mean, NULL, var));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_schedule_get_f64(sc, SCORE_SCHEDULE_PARAM_T, &T));
    ck_assert_ok(score_schedule_get_f64(sc, SCORE_SCHEDULE_PARAM_T_EPS, &te));
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 7));
    ck_assert_ok(score_schedule_prior_sample(sc, r, NR, 2, x0f));
    score_rng_free(r);
    ck_assert_ok(score_schedule_alpha_sigma(sc, 1, &T, &a, &sg));
    ck_assert_ok(score_schedule_alpha_sigma(sc, 1, &te, &an, &sn));
    /* the exact map of diagonal Gaussian data in double, per coordinate */
    for (size_t q = 0; q < 2 * NR; q++) {
        double v = var[q % 2], mu = mean[q % 2];
        x0[q] = x0f[q];
        exact[q] =
            an * mu + sqrt((an * an * v + sn * sn) / (a * a * v + sg * sg)) * (x0[q] - a * mu);
    }
    ck_assert_ok(score_schedule_clone(&sk, sc));
    ck_assert_ok(score_schedule_set_f64(sk, SCORE_SCHEDULE_PARAM_RHO, 2.0));
    for (int k = 0; k < 3; k++) {
        size_t N = (size_t)320 << k;
        ck_assert_ok(score_schedule_time_grid(sk, SCORE_GRID_KARRAS, N + 1, 0, grid));
        ck_assert_ok(score_sampler_new(&s, score_step_type_find("lms"), NULL, 2));
        ck_assert_ok(score_sampler_set_grid(s, N + 1, grid));
        ck_assert_ok(score_sampler_run_f64(s, sde, NR, x0, x, NULL, NULL, NULL));
        ck_assert_uint_eq(score_sampler_get_nfe(s), (uint64_t)N);
        score_sampler_free(s);
        e[k] = 0.0;
        for (size_t q = 0; q < 2 * NR; q++)
            e[k] = fmax(e[k], fabs(x[q] - exact[q]));
    }
    slope = (log2(e[0]) - log2(e[2])) / 2.0;
    printf("global lms VP karras rho 2, double state: errors %.3e %.3e %.3e slope %.2f\n", e[0],
           e[1], e[2], slope);
    ck_assert_msg(fabs(slope - 4.0) <= 0.2, "lms VP double: global slope %.3f", slope);
    ck_assert_msg(e[2] < e[1] && e[1] < e[0], "errors %g %g %g", e[0], e[1], e[2]);
    score_schedule_free(sk);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* Error (max over NR rows of |x - exact|) of a fixed-grid run with N steps. */
static double run_error(const fx_system *f, const char *name, int64_t order, int64_t form,
                        int grid, size_t N, const float *x0, const float *exact)
{
    score_sampler *s;
    float x[2 * NR];
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(name), NULL, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)N));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grid));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER, order));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_DPMPP_3M_FORM, form));
    ck_assert_ok(score_sampler_run(s, f->sde, NR, x0, x, NULL, NULL, NULL));
    score_sampler_free(s);
    return fx_max_abs_diff(2 * NR, x, exact);
}

static const struct {
    const char *name;
    int64_t order, form;
    double slope;     /* the published global order */
    size_t n0[2];     /* VP / VE: step counts n0, 2 n0, 4 n0 in the asymptotic range and above
                         the float32 floor of the state (0: not measurable there, see below) */
} order_cases[] = {
    {"lms", 1, 0, 1.0, {20, 20}},       {"lms", 2, 0, 2.0, {40, 40}},
    {"lms", 3, 0, 3.0, {80, 40}},       {"deis", 1, 0, 1.0, {20, 20}},
    {"deis", 2, 0, 2.0, {20, 20}},      {"unipc", 1, 0, 2.0, {20, 20}},
    {"unipc", 2, 0, 3.0, {20, 20}},     {"unipc", 0, 0, 4.0, {0, 20}},
    {"unipc-bh1", 1, 0, 2.0, {20, 20}}, {"unipc-bh1", 2, 0, 3.0, {40, 40}},
    {"unipc-bh1", 0, 0, 4.0, {0, 20}},  {"dpmpp-3m", 0, 1, 2.0, {80, 80}},
};
#define NCASES (sizeof order_cases / sizeof order_cases[0])

START_TEST(convergence_order)
{
    /* Global error at t_eps: VP on the uniform-lambda grid and VE (sigma 0.01 .. 20) on the
     * Karras grid, T -> t_eps = 1e-3, no final denoise: slope of log2(error) over N = n0, 2 n0,
     * 4 n0 within 0.2 of the order. UniPC with the corrector gains one order (order 2 and 3
     * from UniP-1 and UniP-2, 4 from UniP-3; on VP its error changes sign near 40 steps, so it
     * is measured on VE only). LMS-4 and DEIS-3 reach their global slopes on these grids only
     * where the float32 floor of the state (~1e-6) begins: their global orders are checked on
     * Karras grids with rho = 2 or 3 (global_order_lms4_deis3) and by the local error below. */
    int ve = _i >= (int)NCASES;
    size_t c = (size_t)_i % NCASES, n0 = order_cases[c].n0[ve];
    fx_system f;
    float x0[2 * NR], exact[2 * NR];
    double e[3], slope;
    if (n0 == 0)
        return;
    fx_make(&f, ve ? SCORE_SCHEDULE_VE : SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 1, NR, x0);
    ck_assert_ok(score_model_analytic_pf_map(f.model, f.T, f.t_eps, NR, x0, exact));
    for (int k = 0; k < 3; k++)
        e[k] = run_error(&f, order_cases[c].name, order_cases[c].order, order_cases[c].form,
                         ve ? SCORE_GRID_KARRAS : SCORE_GRID_UNIFORM_LAMBDA, n0 << k, x0, exact);
    slope = (log2(e[0]) - log2(e[2])) / 2.0;
    printf("order %-10s cap %d form %d %s: errors %.3e %.3e %.3e slope %.2f\n",
           order_cases[c].name, (int)order_cases[c].order, (int)order_cases[c].form,
           ve ? "VE/karras" : "VP/lambda", e[0], e[1], e[2], slope);
    ck_assert_msg(fabs(slope - order_cases[c].slope) <= 0.2, "%s cap %d: slope %.3f, order %.0f",
                  order_cases[c].name, (int)order_cases[c].order, slope, order_cases[c].slope);
    ck_assert_msg(e[2] < e[1] && e[1] < e[0], "%s: errors do not decrease", order_cases[c].name);
    fx_free(&f);
}
END_TEST

/* One step of order p from exact states: the step is fed the exact state at lambda_0 + m h,
 * m = 0 .. p - 1 (building its history of model outputs at exact states; UniPC's corrector is
 * skipped because x is not the state it produced), then the exact state at lambda_0 + p h;
 * returns the error of the result at lambda_0 + (p + 1) h (VP, Gaussian data, t0 = 0.5). */
static double local_error(const fx_system *f, const char *name, int64_t order, double h,
                          float *out)
{
    score_step *st;
    float x0[2 * NR], xs[2 * NR], ex[2 * NR];
    double lam0, t[6], t0 = 0.5;
    int p = order > 0 ? (int)order : 4;
    fx_prior(f, 1, NR, x0);
    ck_assert_ok(score_schedule_lambda(f->sched, 1, &t0, &lam0));
    for (int m = 0; m <= p + 1; m++) {
        double l = lam0 + m * h;
        ck_assert_ok(score_schedule_t_of_lambda(f->sched, 1, &l, &t[m]));
    }
    ck_assert_ok(score_step_new(&st, score_step_type_find(name), 2));
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_ORDER, order));
    for (int m = 0; m <= p; m++) {
        ck_assert_ok(score_model_analytic_pf_map(f->model, f->T, t[m], NR, x0, xs));
        ck_assert_ok(score_step_apply(st, f->sde, t[m], t[m + 1], NR, xs, NULL, NULL, 0));
    }
    ck_assert_uint_eq(score_step_nfe(st), (uint64_t)p + 1);
    ck_assert_ok(score_model_analytic_pf_map(f->model, f->T, t[p + 1], NR, x0, ex));
    score_step_free(st);
    if (out != NULL)
        memcpy(out, xs, sizeof xs);
    return fx_max_abs_diff(2 * NR, xs, ex);
}

static const struct {
    const char *name;
    int64_t order;
} local_cases[] = {
    {"lms", 2}, {"lms", 3}, {"lms", 0}, {"deis", 2}, {"deis", 0}, {"unipc", 2}, {"unipc-bh1", 2},
};

START_TEST(local_order)
{
    /* local error of order p + 1 for h = h0, h0 / 2, h0 / 4 in lambda (slope within 0.2);
     * h0 = 0.24 (0.12 for p = 2, still pre-asymptotic by 0.22 at 0.24) */
    fx_system f;
    double e[3], slope;
    const char *name = local_cases[_i].name;
    int64_t order = local_cases[_i].order;
    int p = order > 0 ? (int)order : score_step_type_order(score_step_type_find(name));
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    for (int k = 0; k < 3; k++)
        e[k] = local_error(&f, name, order, (p == 2 ? 0.12 : 0.24) / (double)(1 << k), NULL);
    slope = (log2(e[0]) - log2(e[2])) / 2.0;
    printf("local %-10s order %d: errors %.3e %.3e %.3e slope %.2f\n", name, p, e[0], e[1], e[2],
           slope);
    ck_assert_msg(fabs(slope - (p + 1)) <= 0.2, "%s order %d: local slope %.3f", name, p, slope);
    fx_free(&f);
}
END_TEST

START_TEST(unip3_is_dpmpp_3m)
{
    /* with three nodes the UniP weights integrate the quadratic interpolant exactly, whatever
     * B(h): UniP-3 is libscore's third-order DPM-Solver++(3M) */
    fx_system f;
    float a[2 * NR], b[2 * NR], c[2 * NR];
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    local_error(&f, "unipc", 3, 0.3, a);
    local_error(&f, "unipc-bh1", 3, 0.3, b);
    local_error(&f, "dpmpp-3m", 3, 0.3, c);
    ck_assert_double_le(fx_max_abs_diff(2 * NR, a, c), 5e-7);
    ck_assert_double_le(fx_max_abs_diff(2 * NR, b, c), 5e-7);
    fx_free(&f);
}
END_TEST

/* ---- the first two steps by hand --------------------------------------------------------- */

/* Relative tolerance of a float32 step against the same formula in double. */
#define TOL_REF 2e-5

static double t_of_sigma(const fx_system *f, double sigma)
{
    double lam = -log(sigma), t;
    ck_assert_ok(score_schedule_t_of_lambda(f->sched, 1, &lam, &t));
    return t;
}

/* Runs two steps of a type from sigma 8 through 3 to 1.2 (VE), with the data predictions D0 at
 * the start and D1 after the first step; x2 is the result, xs the start. */
static void two_steps(fx_system *f, const char *name, float *xs, float *d0, float *x1, float *d1,
                      float *x2, int keep_x)
{
    static const double sig[3] = {8.0, 3.0, 1.2};
    score_step *st;
    double t[3], tt[4];
    for (int k = 0; k < 3; k++)
        t[k] = t_of_sigma(f, sig[k]);
    ck_assert_ok(score_step_new(&st, score_step_type_find(name), 2));
    fx_prior(f, 9, 4, xs);
    memcpy(x2, xs, 8 * sizeof(float));
    for (int i = 0; i < 4; i++)
        tt[i] = t[0];
    ck_assert_ok(score_sde_x0(f->sde, 4, tt, xs, d0));
    ck_assert_ok(score_step_apply(st, f->sde, t[0], t[1], 4, x2, NULL, NULL, 0));
    if (!keep_x) /* a change between the calls (one ulp in one value) */
        x2[3] = nextafterf(x2[3], 1e30f);
    memcpy(x1, x2, 8 * sizeof(float));
    for (int i = 0; i < 4; i++)
        tt[i] = t[1];
    ck_assert_ok(score_sde_x0(f->sde, 4, tt, x1, d1));
    ck_assert_ok(score_step_apply(st, f->sde, t[1], t[2], 4, x2, NULL, NULL, 0));
    ck_assert_uint_eq(score_step_nfe(st), 2);
    score_step_free(st);
}

START_TEST(first_steps_by_hand)
{
    /* VE: y = x, s = sigma, lambda = -log sigma, eps = (x - D) / s.
     * lms: step 1 Euler y1 = y0 + (s1 - s0) e0; step 2 with the linear interpolant of eps in s:
     *   y2 = y1 + c1 e1 + c0 e0, c1 = ((s2 - s0)^2 - (s1 - s0)^2) / (2 (s1 - s0)),
     *   c0 = (s2 - s1)^2 / (2 (s0 - s1)).
     * deis: y2 = y1 - s1 (J0 e1 + J1 (e1 - e0) / h0), J0 = 1 - e^-h, J1 = 1 - e^-h (1 + h).
     * unipc (bh2) / unipc-bh1: step 1 DDIM in data prediction y1 = e^-h0 y0 + (1 - e^-h0) D0;
     *   step 2 corrects y1 with UniC-1, y1c = e^-h0 y0 + (1 - e^-h0) D0 - B(-h0) (D1 - D0) / 2,
     *   then UniP-2 with r = -h0 / h, y2 = e^-h y1c + (1 - e^-h) D1 - B(-h) (D0 - D1) / (2 r);
     *   B(z) = expm1(z) or z. With x changed between the calls, no correction: y1c = y1. */
    static const double s[3] = {8.0, 3.0, 1.2};
    static const char *const names[4] = {"lms", "deis", "unipc", "unipc-bh1"};
    double h0 = log(s[0] / s[1]), h = log(s[1] / s[2]);
    fx_system f;
    fx_make(&f, SCORE_SCHEDULE_VE, 0, 1e-3);
    for (int v = 0; v < 6; v++) {
        const char *name = names[v < 4 ? v : v - 2];
        int keep = v < 4;
        float xs[8], d0[8], x1[8], d1[8], x2[8];
        two_steps(&f, name, xs, d0, x1, d1, x2, keep);
        for (int q = 0; q < 8; q++) {
            double e0 = ((double)xs[q] - d0[q]) / s[0], e1 = ((double)x1[q] - d1[q]) / s[1];
            double ref;
            if (v == 0) {
                double c1 = ((s[2] - s[0]) * (s[2] - s[0]) - (s[1] - s[0]) * (s[1] - s[0])) /
                            (2.0 * (s[1] - s[0]));
                double c0 = (s[2] - s[1]) * (s[2] - s[1]) / (2.0 * (s[0] - s[1]));
                ref = x1[q] + c1 * e1 + c0 * e0;
            } else if (v == 1) {
                double j0 = -expm1(-h), j1 = 1.0 - exp(-h) * (1.0 + h);
                ref = x1[q] - s[1] * (j0 * e1 + j1 * (e1 - e0) / h0);
            } else {
                int bh2 = v == 2 || v == 4;
                double Bp = bh2 ? expm1(-h0) : -h0, B = bh2 ? expm1(-h) : -h, r = -h0 / h;
                double y1c = x1[q];
                if (keep)
                    y1c = exp(-h0) * xs[q] - expm1(-h0) * d0[q] - Bp * 0.5 * ((double)d1[q] - d0[q]);
                ref = exp(-h) * y1c - expm1(-h) * d1[q] - B * 0.5 * ((double)d0[q] - d1[q]) / r;
            }
            ck_assert_msg(fabs(x2[q] - ref) <= TOL_REF * (1.0 + fabs(ref)),
                          "%s (x %s): %.9g vs %.9g", name, keep ? "kept" : "changed",
                          (double)x2[q], ref);
        }
    }
    fx_free(&f);
}
END_TEST

START_TEST(published_3m_form)
{
    /* third step of dpmpp-3m with the published form (k-diffusion's dpmpp_3m_sde, eta = 0):
     * y3 = e^-h y2 + (1 - e^-h) D2 + phi2 d1 - phi3 d2, r0 = h1 / h, r1 = h0 / h,
     * d1_0 = (D2 - D1) / r0, d1_1 = (D1 - D0) / r1, d1 = d1_0 + (d1_0 - d1_1) r0 / (r0 + r1),
     * d2 = (d1_0 - d1_1) / (r0 + r1), phi2 = expm1(-h) / h + 1, phi3 = phi2 / h - 1/2 */
    static const double sig[4] = {8.0, 3.0, 1.2, 0.4};
    fx_system f;
    score_step *st;
    float x[8], d[3][8], xs[8];
    double t[4], tt[4];
    fx_make(&f, SCORE_SCHEDULE_VE, 0, 1e-3);
    for (int k = 0; k < 4; k++)
        t[k] = t_of_sigma(&f, sig[k]);
    ck_assert_ok(score_step_new(&st, score_step_type_get(SCORE_STEP_DPMPP_3M), 2));
    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_DPMPP_3M_FORM, 1));
    fx_prior(&f, 3, 4, x);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 4; i++)
            tt[i] = t[k];
        ck_assert_ok(score_sde_x0(f.sde, 4, tt, x, d[k]));
        memcpy(xs, x, sizeof x);
        ck_assert_ok(score_step_apply(st, f.sde, t[k], t[k + 1], 4, x, NULL, NULL, 0));
    }
    {
        double h0 = log(sig[0] / sig[1]), h1 = log(sig[1] / sig[2]), h = log(sig[2] / sig[3]);
        double r0 = h1 / h, r1 = h0 / h, phi2 = expm1(-h) / h + 1.0, phi3 = phi2 / h - 0.5;
        for (int q = 0; q < 8; q++) {
            double d10 = ((double)d[2][q] - d[1][q]) / r0, d11 = ((double)d[1][q] - d[0][q]) / r1;
            double dd1 = d10 + (d10 - d11) * r0 / (r0 + r1), dd2 = (d10 - d11) / (r0 + r1);
            double ref = exp(-h) * xs[q] - expm1(-h) * d[2][q] + phi2 * dd1 - phi3 * dd2;
            ck_assert_double_eq_tol(x[q], ref, TOL_REF * (1.0 + fabs(ref)));
        }
    }
    score_step_free(st);
    fx_free(&f);
}
END_TEST

START_TEST(lower_order_final_multistep)
{
    /* the driver's lower-order final steps cover the new multistep types: with 5 steps the run
     * equals stepping by hand with the caps min(order, steps left); 10 steps: no effect */
    static const char *const names[4] = {"lms", "deis", "unipc", "unipc-bh1"};
    const char *name = names[_i];
    fx_system f;
    score_sampler *s;
    score_step *st;
    float x0[2 * 8], a[2 * 8], b[2 * 8];
    double g[6];
    size_t ng;
    int order = score_step_type_order(score_step_type_find(name));
    fx_make(&f, SCORE_SCHEDULE_VE, 0, 1e-3);
    fx_prior(&f, 3, 8, x0);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(name), NULL, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
    ck_assert_ok(score_sampler_run(s, f.sde, 8, x0, a, NULL, NULL, NULL));
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 6, g, &ng));
    ck_assert_uint_eq(ng, 6);
    ck_assert_ok(score_step_new(&st, score_step_type_find(name), 2));
    memcpy(b, x0, sizeof b);
    for (int k = 0; k < 5; k++) {
        int cap = 5 - k < order ? 5 - k : order;
        ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_ORDER, cap >= 4 ? 0 : cap));
        ck_assert_ok(score_step_apply(st, f.sde, g[k], g[k + 1], 8, b, NULL, NULL, 0));
    }
    for (size_t q = 0; q < 16; q++)
        ck_assert_float_eq(a[q], b[q]);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, 0));
    ck_assert_ok(score_sampler_run(s, f.sde, 8, x0, b, NULL, NULL, NULL));
    ck_assert_double_gt(fx_max_abs_diff(16, a, b), 1e-4);
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

/* ---- DPM-Solver's order sequence for a budget ------------------------------------------- */

/* The reference's orders for a budget of B evaluations and a singlestep solver of order k,
 * written out: k = 3: 3, ..., 3 then 2, 1 (B = 0 mod 3), 1 (B = 1) or 2 (B = 2), with
 * floor(B / 3) + 1 steps; k = 2: 2, ..., 2 and a last 1 for odd B; k = 1: B ones. */
static size_t ref_orders(int k, int B, int *ord)
{
    size_t K = 0;
    if (k == 3) {
        for (int i = 0; i < B / 3 - (B % 3 == 0 ? 1 : 0); i++)
            ord[K++] = 3;
        if (B % 3 == 0) {
            ord[K++] = 2;
            ord[K++] = 1;
        } else {
            ord[K++] = B % 3;
        }
    } else if (k == 2) {
        for (int i = 0; i < B / 2; i++)
            ord[K++] = 2;
        if (B % 2 != 0)
            ord[K++] = 1;
    } else {
        for (int i = 0; i < B; i++)
            ord[K++] = 1;
    }
    return K;
}

/* A sampler run with SCORE_SAMPLER_PARAM_ORDER_SEQUENCE = 1 / 2 equals stepping by hand with
 * the reference's orders over the grid of K steps / the points of the grid of B steps at the
 * cumulative orders, bit for bit; its NFE are the budget; score_sampler_get_grid() returns the
 * step ends. On the mixture, uniform-lambda and uniform-t grids, budgets 1 - 12 and 20. */
START_TEST(order_sequence_equals_hand_stepping)
{
    static const char *const names[] = {"dpm-solver-3", "dpmpp-3s", "dpm-solver-2", "dpmpp-2s",
                                        "dpm-solver-1"};
    static const int grids[] = {SCORE_GRID_UNIFORM_LAMBDA, SCORE_GRID_UNIFORM_T};
    const char *name = names[_i];
    int k = score_step_type_order(score_step_type_find(name));
    fx_system f;
    float x0[2 * NR], x[2 * NR], y[2 * NR];
    fx_make(&f, SCORE_SCHEDULE_VP, 1, 1e-3);
    fx_prior(&f, 3, NR, x0);
    for (int mode = 1; mode <= 2; mode++)
        for (size_t g = 0; g < 2; g++)
            for (int B = 1; B <= 20; B += B < 12 ? 1 : 8) {
                int ord[32];
                size_t K = ref_orders(k, B, ord), n_grid = 0;
                double tg[33], fine[33], got[33];
                score_sampler *s;
                score_step *st;
                ck_assert_ok(score_sampler_new(&s, score_step_type_find(name), NULL, 2));
                ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, B));
                ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grids[g]));
                ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, mode));
                ck_assert_ok(score_sampler_run(s, f.sde, NR, x0, x, NULL, NULL, NULL));
                ck_assert_uint_eq(score_sampler_get_nfe(s), (uint64_t)B);
                ck_assert_uint_eq(score_sampler_get_steps(s), (uint64_t)K);
                if (mode == 1) {
                    ck_assert_ok(score_schedule_time_grid(f.sched, grids[g], K + 1, 0, tg));
                } else {
                    int c = 0;
                    ck_assert_ok(score_schedule_time_grid(f.sched, grids[g], (size_t)B + 1, 0,
                                                          fine));
                    tg[0] = fine[0];
                    for (size_t j = 0; j < K; j++) {
                        c += ord[j];
                        tg[j + 1] = fine[c];
                    }
                }
                ck_assert_ok(score_sampler_get_grid(s, f.sde, 33, got, &n_grid));
                ck_assert_uint_eq(n_grid, K + 1);
                ck_assert_int_eq(memcmp(got, tg, (K + 1) * sizeof(double)), 0);
                memcpy(y, x0, sizeof y);
                ck_assert_ok(score_step_new(&st, score_step_type_find(name), 2));
                for (size_t j = 0; j < K; j++) {
                    ck_assert_ok(score_step_set_i64(st, SCORE_STEP_PARAM_ORDER, ord[j]));
                    ck_assert_ok(score_step_apply(st, f.sde, tg[j], tg[j + 1], NR, y, NULL, NULL,
                                                  0));
                }
                ck_assert_uint_eq(score_step_nfe(st), (uint64_t)B);
                ck_assert_msg(memcmp(x, y, sizeof x) == 0, "%s mode %d grid %d budget %d", name,
                              mode, grids[g], B);
                score_step_free(st);
                score_sampler_free(s);
            }
    fx_free(&f);
}
END_TEST

/* The parameter's bounds, the order cap, the final denoise and the refusals. */
START_TEST(order_sequence_api)
{
    fx_system f;
    float x0[2 * NR], x[2 * NR];
    double grid[8], g[8];
    size_t n = 0;
    int64_t v = -1;
    score_sampler *s;
    fx_make(&f, SCORE_SCHEDULE_VP, 0, 1e-3);
    fx_prior(&f, 3, NR, x0);
    ck_assert_str_eq(score_param_name(SCORE_OBJECT_SAMPLER, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE),
                     "order_sequence");
    /* a multistep predictor refuses it, naming itself; the old value stays */
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("dpmpp-2m"), NULL, 2));
    ck_assert_int_eq(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, 1),
                     SCORE_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "dpmpp-2m"));
    ck_assert_ok(score_sampler_get_i64(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, &v));
    ck_assert_int_eq(v, 0);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, 0));
    score_sampler_free(s);
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("dpm-solver-3"), NULL, 2));
    ck_assert_int_eq(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, 3),
                     SCORE_E_RANGE);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, 1));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, SCORE_GRID_UNIFORM_LAMBDA));
    /* budget 10, order 3: 3, 3, 3, 1 on the grid of 4 steps, then the step to 0 */
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 10));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 8, g, &n));
    ck_assert_uint_eq(n, 6);
    ck_assert_ok(score_schedule_time_grid(f.sched, SCORE_GRID_UNIFORM_LAMBDA, 5, 0, grid));
    ck_assert_int_eq(memcmp(g, grid, 5 * sizeof(double)), 0);
    ck_assert_double_eq(g[5], 0.0);
    ck_assert_ok(score_sampler_run(s, f.sde, NR, x0, x, NULL, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 11u);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 0));
    /* the order cap 2 gives the order-2 sequence: 5 steps of order 2 */
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER, 2));
    ck_assert_ok(score_sampler_get_grid(s, f.sde, 8, g, &n));
    ck_assert_uint_eq(n, 6);
    ck_assert_ok(score_sampler_run(s, f.sde, NR, x0, x, NULL, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 10u);
    ck_assert_uint_eq(score_sampler_get_steps(s), 5u);
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER, 0));
    /* a user grid and partial sampling are refused */
    ck_assert_ok(score_sampler_set_grid(s, 5, grid));
    ck_assert_int_eq(score_sampler_run(s, f.sde, NR, x0, x, NULL, NULL, NULL),
                     SCORE_E_UNSUPPORTED);
    ck_assert_int_eq(score_sampler_get_grid(s, f.sde, 8, g, &n), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_sampler_set_grid(s, 0, NULL));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_STRENGTH, 0.5));
    ck_assert_int_eq(score_sampler_run(s, f.sde, NR, x0, x, NULL, NULL, NULL),
                     SCORE_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "strength"));
    score_sampler_free(s);
    fx_free(&f);
}
END_TEST

/* ---- the start correction of dpmpp-2m / dpmpp-3m --------------------------------------- */

/* SCORE_STEP_PARAM_START_CORRECTION: no extra evaluation; the sampler's parameter equals
 * setting the step's by hand; the second call corrects only rows whose x is bit for bit the
 * first call's result (a row changed in between is stepped as without the correction); the
 * correction changes the result; the third call onwards is the plain update. */
START_TEST(start_correction_rule)
{
    static const char *const names[] = {"dpmpp-3m", "dpmpp-2m"};
    fx_system f;
    float x0[2 * NR], xa[2 * NR], xb[2 * NR], xs[2 * NR];
    double grid[6];
    score_step *a, *b;
    score_sampler *s;
    fx_make(&f, SCORE_SCHEDULE_VP, 1, 1e-3);
    fx_prior(&f, 5, NR, x0);
    ck_assert_ok(score_schedule_time_grid(f.sched, SCORE_GRID_UNIFORM_LAMBDA, 6, 0, grid));
    ck_assert_str_eq(score_param_name(SCORE_OBJECT_STEP, SCORE_STEP_PARAM_START_CORRECTION),
                     "start_correction");
    ck_assert_str_eq(score_param_name(SCORE_OBJECT_SAMPLER, SCORE_SAMPLER_PARAM_START_CORRECTION),
                     "start_correction");
    ck_assert_ok(score_step_new(&a, score_step_type_find(names[_i]), 2));
    ck_assert_ok(score_step_new(&b, score_step_type_find(names[_i]), 2));
    ck_assert_int_eq(score_step_set_i64(a, SCORE_STEP_PARAM_START_CORRECTION, 2), SCORE_E_RANGE);
    ck_assert_ok(score_step_set_i64(a, SCORE_STEP_PARAM_START_CORRECTION, 1));
    memcpy(xa, x0, sizeof xa);
    memcpy(xb, x0, sizeof xb);
    ck_assert_ok(score_step_apply(a, f.sde, grid[0], grid[1], NR, xa, NULL, NULL, 0));
    ck_assert_ok(score_step_apply(b, f.sde, grid[0], grid[1], NR, xb, NULL, NULL, 0));
    ck_assert_int_eq(memcmp(xa, xb, sizeof xa), 0); /* the first step is the plain one */
    /* row 3 changed between the calls (in both): not corrected */
    xa[6] = nextafterf(xa[6], 10.0f);
    xb[6] = xa[6];
    ck_assert_ok(score_step_apply(a, f.sde, grid[1], grid[2], NR, xa, NULL, NULL, 0));
    ck_assert_ok(score_step_apply(b, f.sde, grid[1], grid[2], NR, xb, NULL, NULL, 0));
    for (size_t i = 0; i < NR; i++) {
        int same = memcmp(xa + 2 * i, xb + 2 * i, 2 * sizeof(float)) == 0;
        ck_assert_msg(same == (i == 3), "%s row %zu: corrected %d", names[_i], i, !same);
    }
    ck_assert_uint_eq(score_step_nfe(a), 2u);
    for (int k = 2; k < 5; k++) {
        ck_assert_ok(score_step_apply(a, f.sde, grid[k], grid[k + 1], NR, xa, NULL, NULL, 0));
        ck_assert_ok(score_step_apply(b, f.sde, grid[k], grid[k + 1], NR, xb, NULL, NULL, 0));
    }
    ck_assert_uint_eq(score_step_nfe(a), 5u);
    /* the sampler's parameter is the step's (x unchanged between the calls: every row) */
    ck_assert_ok(score_step_reset(a));
    memcpy(xa, x0, sizeof xa);
    for (int k = 0; k < 5; k++) {
        if (k == 4) /* the sampler's lower_order_final for 5 steps */
            ck_assert_ok(score_step_set_i64(a, SCORE_STEP_PARAM_ORDER, 1));
        else if (k >= 2)
            ck_assert_ok(score_step_set_i64(a, SCORE_STEP_PARAM_ORDER, 5 - k < 3 ? 5 - k : 3));
        ck_assert_ok(score_step_apply(a, f.sde, grid[k], grid[k + 1], NR, xa, NULL, NULL, 0));
    }
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(names[_i]), NULL, 2));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, SCORE_GRID_UNIFORM_LAMBDA));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_START_CORRECTION, 1));
    ck_assert_ok(score_sampler_run(s, f.sde, NR, x0, xs, NULL, NULL, NULL));
    ck_assert_uint_eq(score_sampler_get_nfe(s), 5u);
    ck_assert_int_eq(memcmp(xs, xa, sizeof xs), 0);
    score_sampler_free(s);
    score_step_free(a);
    score_step_free(b);
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("step-multi");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, names_and_aliases);
    tcase_add_loop_test(tc, convergence_order, 0, 2 * (int)NCASES);
    tcase_add_loop_test(tc, local_order, 0, (int)(sizeof local_cases / sizeof local_cases[0]));
    tcase_add_loop_test(tc, global_order_lms4_deis3, 0,
                        (int)(sizeof global_cases / sizeof global_cases[0]));
    tcase_add_test(tc, global_order_lms4_vp_double);
    tcase_add_test(tc, unip3_is_dpmpp_3m);
    tcase_add_test(tc, first_steps_by_hand);
    tcase_add_test(tc, published_3m_form);
    tcase_add_loop_test(tc, lower_order_final_multistep, 0, 4);
    tcase_add_loop_test(tc, order_sequence_equals_hand_stepping, 0, 5);
    tcase_add_test(tc, order_sequence_api);
    tcase_add_loop_test(tc, start_correction_rule, 0, 2);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
