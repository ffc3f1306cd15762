/* Score-matching losses: parameters and errors, parameter gradients against finite
 * differences for every kind and parameterization, the documented formulas and noise layout
 * recomputed independently, and closed forms (Hyvärinen and DSM on Gaussian data). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"

/* Finite-difference check of a float32 network: Richardson-extrapolated central differences
 * (steps h and h/2 on the float parameters, with the step actually taken after rounding) have
 * truncation error O(h^4) and round-off ~ eps_f32 |L| / h ~ 1e-5 |L| for h = 1e-2; gradients
 * are O(|L|). Measured: 6e-6 .. 8e-5 of the largest gradient component over all cases, so
 * 1e-3 leaves a margin of 12 while a wrong term (a missing factor, coefficient or
 * second-order term) gives errors of 1e-2 .. 1. */
#define TOL_GRAD_REL 1e-3
/* Value of the same loss through two code paths (trace vs trace_grad, jvp vs vjv_grad): both
 * evaluate the same float32 network, the sums are in double: agreement to float round-off. */
#define TOL_PATH_REL 1e-5
/* Independent recomputation of a loss from the documented formulas and noise layout: the test
 * reproduces the float32 roundings of the noised input, so only summation order differs. */
#define TOL_FORMULA_REL 1e-9

static score_rng *new_rng(uint64_t seed)
{
    score_rng *r;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, seed));
    return r;
}

static float *normal_data(size_t n, size_t dim, uint64_t seed, double scale)
{
    float *x = malloc(n * dim * sizeof *x);
    score_rng *r = new_rng(seed);
    ck_assert_ok(score_rng_fill_normal(r, 0, n, 0, dim, x));
    for (size_t i = 0; i < n * dim; i++)
        x[i] = (float)(scale * x[i]);
    score_rng_free(r);
    return x;
}

static score_model *tiny_mlp(size_t dim, int act, uint64_t seed)
{
    score_model *m;
    ck_assert_ok(score_model_new_mlp(&m, dim, 8, 2, act, seed));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    ck_assert_ok(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 1.0));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

static score_schedule *sched(int kind)
{
    score_schedule *s;
    ck_assert_ok(score_schedule_new(&s, kind));
    return s;
}

static score_sde *make_sde(score_schedule *s, score_model *m, int output, int cond)
{
    score_sde *sde;
    ck_assert_ok(score_sde_new(&sde, s, m, output));
    if (cond)
        ck_assert_ok(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, cond));
    return sde;
}

/* The handles of one loss set-up (schedule, model, sde, loss, generator, data rows), freed
 * together by fx_free(); NULL members are allowed. */
typedef struct loss_fx {
    score_schedule *s;
    score_model *m;
    score_sde *sde;
    score_loss *l;
    score_rng *r;
    float *x;
} loss_fx;

static void fx_free(loss_fx *f)
{
    score_loss_free(f->l);
    score_sde_free(f->sde);
    score_model_free(f->m);
    score_schedule_free(f->s);
    score_rng_free(f->r);
    free(f->x);
}

/* The analytic model of N(0, var I) data (dim d) under VE through a score sde conditioned on
 * t, a loss of the given kind at time t, a generator (rng_seed) and n data rows (data_seed). */
static loss_fx gaussian_fx(size_t n, size_t d, const double *mean, const double *var,
                           int loss_kind, double t, uint64_t rng_seed, uint64_t data_seed)
{
    loss_fx f = {0};
    f.s = sched(SCORE_SCHEDULE_VE);
    f.r = new_rng(rng_seed);
    f.x = normal_data(n, d, data_seed, sqrt(var[0]));
    ck_assert_ok(score_model_new_gaussian(&f.m, f.s, d, mean, NULL, var));
    f.sde = make_sde(f.s, f.m, SCORE_OUTPUT_SCORE, SCORE_COND_T);
    ck_assert_ok(score_loss_new(&f.l, loss_kind));
    ck_assert_ok(score_loss_set_f64(f.l, SCORE_LOSS_PARAM_TIME, t));
    return f;
}

static double loss_value(score_loss *l, const score_sde *sde, score_model *m, const score_rng *r,
                         size_t n, const float *x)
{
    double v;
    ck_assert_ok(score_loss_compute(l, sde, m, r, n, x, &v, NULL));
    return v;
}

/* Returns max_i |g_i - fd_i| / max_i |g_i| over all parameters. */
static double grad_check(score_loss *l, const score_sde *sde, score_model *m, const score_rng *r,
                         size_t n, const float *x, double *value_gap)
{
    size_t np = score_model_param_count(m);
    float *p0 = malloc(np * sizeof *p0), *p = malloc(np * sizeof *p), *g = calloc(np, sizeof *g);
    double lv, gmax = 0.0, emax = 0.0;
    ck_assert_ok(score_model_params_get(m, p0, np));
    ck_assert_ok(score_loss_compute(l, sde, m, r, n, x, &lv, g));
    *value_gap = fabs(lv - loss_value(l, sde, m, r, n, x)) / fmax(fabs(lv), 1e-30);
    for (size_t i = 0; i < np; i++)
        gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < np; i++) {
        double fd[2];
        for (int s = 0; s < 2; s++) {
            double h = s == 0 ? 1e-2 : 5e-3, lp, lm;
            float up = (float)(p0[i] + h), dn = (float)(p0[i] - h);
            memcpy(p, p0, np * sizeof *p);
            p[i] = up;
            ck_assert_ok(score_model_params_set(m, p, np));
            lp = loss_value(l, sde, m, r, n, x);
            p[i] = dn;
            ck_assert_ok(score_model_params_set(m, p, np));
            lm = loss_value(l, sde, m, r, n, x);
            fd[s] = (lp - lm) / ((double)up - (double)dn);
        }
        emax = fmax(emax, fabs((4.0 * fd[1] - fd[0]) / 3.0 - g[i]));
    }
    ck_assert_ok(score_model_params_set(m, p0, np));
    ck_assert_double_gt(gmax, 0.0);
    free(p0);
    free(p);
    free(g);
    return emax / gmax;
}

/* ---- gradient checks: one loop index per configuration ------------------------------- */

enum { GC_N = 12, GC_DIM = 3 };

typedef struct {
    const char *name;
    int loss_kind;
    int sched_kind;      /* 0 = bare model */
    int output, cond;    /* sde configuration */
    double time;         /* TIME of time-free kinds through an sde */
    int act;
} gc_case;

static const gc_case gc_cases[] = {
    {"hyvarinen bare", SCORE_LOSS_HYVARINEN, 0, 0, 0, 0, SCORE_ACT_TANH},
    {"hyvarinen edm/ve", SCORE_LOSS_HYVARINEN, SCORE_SCHEDULE_VE, SCORE_OUTPUT_EDM, 0, 0.5, SCORE_ACT_SILU},
    {"ssm bare rademacher M=2", SCORE_LOSS_SSM, 0, 0, 0, 0, SCORE_ACT_SILU},
    {"ssm-vr bare gaussian M=3", SCORE_LOSS_SSM_VR, 0, 0, 0, 0, SCORE_ACT_SOFTPLUS},
    {"ssm x0/vp sphere M=2", SCORE_LOSS_SSM, SCORE_SCHEDULE_VP, SCORE_OUTPUT_X0, 0, 0.3, SCORE_ACT_TANH},
    {"dsm bare", SCORE_LOSS_DSM, 0, 0, 0, 0, SCORE_ACT_SILU},
    {"dsm v/vp", SCORE_LOSS_DSM, SCORE_SCHEDULE_VP, SCORE_OUTPUT_V, 0, 0.4, SCORE_ACT_GELU},
    {"ncsn score/sigma", SCORE_LOSS_NCSN, SCORE_SCHEDULE_NCSN, SCORE_OUTPUT_SCORE_OVER_SIGMA, SCORE_COND_SIGMA, 0, SCORE_ACT_ELU},
    {"ddpm eps", SCORE_LOSS_DDPM, SCORE_SCHEDULE_DDPM_LINEAR, SCORE_OUTPUT_EPS, SCORE_COND_T_SCALED, 0, SCORE_ACT_SILU},
    {"sde ve sigma^2", SCORE_LOSS_SDE, SCORE_SCHEDULE_VE, SCORE_OUTPUT_SCORE, 0, 0, SCORE_ACT_SILU},
    {"sde vp likelihood mean eps", SCORE_LOSS_SDE, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, 0, 0, SCORE_ACT_TANH},
    {"sde subvp importance", SCORE_LOSS_SDE, SCORE_SCHEDULE_SUBVP, SCORE_OUTPUT_SCORE, 0, 0, SCORE_ACT_SILU},
    {"sde ve edm", SCORE_LOSS_SDE, SCORE_SCHEDULE_VE, SCORE_OUTPUT_EDM, 0, 0, SCORE_ACT_SILU},
};

START_TEST(gradient_vs_finite_differences)
{
    const gc_case *gc = &gc_cases[_i];
    score_model *m = tiny_mlp(GC_DIM, gc->act, 7 + (uint64_t)_i);
    score_schedule *s = NULL;
    score_sde *sde = NULL;
    score_loss *l;
    score_rng *r = new_rng(100 + (uint64_t)_i);
    float *x = normal_data(GC_N, GC_DIM, 200 + (uint64_t)_i, 1.0);
    double err, gap;
    ck_assert_ok(score_rng_set_counter(r, 3));
    ck_assert_ok(score_loss_new(&l, gc->loss_kind));
    if (gc->sched_kind) {
        s = sched(gc->sched_kind);
        if (gc->sched_kind == SCORE_SCHEDULE_NCSN) {
            ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 1.0));
            ck_assert_ok(score_schedule_set_i64(s, SCORE_SCHEDULE_PARAM_NUM_LEVELS, 10));
        }
        sde = make_sde(s, m, gc->output, gc->cond);
        if (gc->cond == SCORE_COND_T_SCALED)
            ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_COND_SCALE, 1.0));
        if (gc->time > 0)
            ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_TIME, gc->time));
    } else if (gc->loss_kind != SCORE_LOSS_DSM) {
        ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_COND, 0.3));
    } else {
        ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, 0.5));
    }
    switch (_i) {
    case 2: ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 2)); break;
    case 3:
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 3));
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROBE, SCORE_LOSS_PROBE_GAUSSIAN));
        break;
    case 4:
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 2));
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROBE, SCORE_LOSS_PROBE_SPHERE));
        break;
    case 10:
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_WEIGHTING, SCORE_LOSS_WEIGHT_LIKELIHOOD));
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_REDUCE, SCORE_LOSS_REDUCE_MEAN));
        break;
    case 11: ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_IMPORTANCE, 1)); break;
    default: break;
    }
    err = grad_check(l, sde, m, r, GC_N, x, &gap);
    printf("gradient check %-28s max |g - fd| / max |g| = %.2e, value paths differ by %.1e\n",
           gc->name, err, gap);
    ck_assert_double_le(err, TOL_GRAD_REL);
    ck_assert_double_le(gap, TOL_PATH_REL);
    fx_free(&(loss_fx){s, m, sde, l, r, x});
}
END_TEST

/* ---- callback models with known Jacobians ---------------------------------------------- */

/* F(x, c) = -a x + 0.1 c (1, 2, 3, ...): Jacobian -a I. */
typedef struct { double a; } lin_ctx;

static int lin_fn(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    const lin_ctx *L = ud;
    for (size_t b = 0; b < n; b++)
        for (size_t j = 0; j < dim; j++)
            out[b * dim + j] = (float)(-L->a * x[b * dim + j] + 0.1 * c[b] * (double)(j + 1));
    return 0;
}

static int lin_jvp(size_t n, size_t dim, const float *x, const double *c, size_t k,
                   const float *v, float *out, void *ud)
{
    const lin_ctx *L = ud;
    for (size_t i = 0; i < n * k * dim; i++)
        out[i] = (float)(-L->a * v[i]);
    return 0;
}

static int lin_div(size_t n, size_t dim, const float *x, const double *c, double *div, void *ud)
{
    const lin_ctx *L = ud;
    for (size_t b = 0; b < n; b++)
        div[b] = -L->a * (double)dim;
    return 0;
}

static score_model *lin_model(size_t dim, lin_ctx *ctx, int with_jvp, int with_div)
{
    score_model *m;
    ck_assert_ok(score_model_new_callback(&m, dim, lin_fn, ctx));
    if (with_jvp)
        ck_assert_ok(score_model_callback_set_jvp(m, lin_jvp, ctx));
    if (with_div)
        ck_assert_ok(score_model_callback_set_divergence(m, lin_div, ctx));
    return m;
}

START_TEST(hyvarinen_known_score)
{
    /* s(x) = -a x on N(0, 1) data: J = E[a^2 x^2 / 2 - a] = (1 - a)^2 / 2 - 1/2. */
    enum { N = 20000 };
    const double as[] = {0.5, 1.0, 1.7};
    float *x = normal_data(N, 1, 11, 1.0);
    score_rng *r = new_rng(1);
    score_loss *l;
    double m2 = 0.0;
    for (size_t i = 0; i < N; i++)
        m2 += (double)x[i] * x[i];
    m2 /= N;
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_HYVARINEN));
    for (size_t q = 0; q < 3; q++) {
        lin_ctx ctx = {as[q]};
        score_model *m = lin_model(1, &ctx, 0, 1);
        double v = loss_value(l, NULL, m, r, N, x), a = as[q];
        /* on this sample, up to the float32 rounding of the callback's output (~6e-8 relative,
         * squared: 1.2e-7) */
        ck_assert_double_eq_tol(v, 0.5 * a * a * m2 - a, 1e-6 * a * a * m2);
        /* the population value: sd of a^2 x^2 / 2 is a^2 / sqrt(2); 5 standard errors */
        ck_assert_double_eq_tol(v, 0.5 * (1 - a) * (1 - a) - 0.5, 5.0 * a * a / sqrt(2.0 * N));
        score_model_free(m);
    }
    score_loss_free(l);
    score_rng_free(r);
    free(x);
}
END_TEST

START_TEST(hyvarinen_analytic_gaussian)
{
    /* The analytic model of N(0, v I) data under VE at time t has s = -x / (v + sigma(t)^2);
     * on data x ~ N(0, v I): J = d (v / (2 (v + s2)^2) - 1 / (v + s2)), s2 = sigma(t)^2. */
    enum { N = 20000, D = 2 };
    const double var[D] = {2.0, 2.0}, mean[D] = {0.0, 0.0}, t = 0.2;
    loss_fx f = gaussian_fx(N, D, mean, var, SCORE_LOSS_HYVARINEN, t, 2, 12);
    double sig, v, s2, expect;
    ck_assert_ok(score_schedule_alpha_sigma(f.s, 1, &t, NULL, &sig));
    s2 = sig * sig;
    v = loss_value(f.l, f.sde, f.m, f.r, N, f.x);
    expect = D * (var[0] / (2.0 * (var[0] + s2) * (var[0] + s2)) - 1.0 / (var[0] + s2));
    /* |s|^2/2 has sd d^(1/2) v / (v + s2)^2 / sqrt(2)-ish < 1: 5 / sqrt(N) covers it */
    ck_assert_double_eq_tol(v, expect, 5.0 / sqrt((double)N));
    fx_free(&f);
}
END_TEST

START_TEST(dsm_at_the_true_score)
{
    /* DSM with the exact noised score of N(0, v) data: E |s(x~) + z / sigma|^2 / 2 per
     * coordinate = (1 / sigma^2 - 1 / (v + sigma^2)) / 2. Through a VE sde at time t. */
    enum { N = 40000, D = 2 };
    const double var[D] = {0.5, 0.5}, mean[D] = {0.0, 0.0}, t = 0.3;
    loss_fx f = gaussian_fx(N, D, mean, var, SCORE_LOSS_DSM, t, 3, 13);
    double sig, v, expect;
    ck_assert_ok(score_schedule_alpha_sigma(f.s, 1, &t, NULL, &sig));
    v = loss_value(f.l, f.sde, f.m, f.r, N, f.x);
    expect = 0.5 * D * (1.0 / (sig * sig) - 1.0 / (var[0] + sig * sig));
    /* per-row loss has sd ~ expect; 5 standard errors */
    ck_assert_double_eq_tol(v, expect, 5.0 * expect * 2.0 / sqrt((double)N));
    fx_free(&f);
}
END_TEST

/* ---- the documented formulas and noise layout, recomputed -------------------------------- */

static size_t round4(size_t d)
{
    return (d + 3) / 4 * 4;
}

/* Per-row reference of the denoising kinds with the linear callback (a, c-term):
 * s = -a x~ + 0.1 c (j + 1) with c = t (COND_T) or c = the bare COND. */
static double ref_denoise(size_t n, size_t dim, const float *x, const score_rng *r, double a,
                          const double *al, const double *si, const double *c, const double *w,
                          double rho)
{
    float *z = malloc(n * dim * sizeof *z);
    double tot = 0.0;
    ck_assert_ok(score_rng_fill_normal(r, 0, n, 0, dim, z));
    for (size_t b = 0; b < n; b++) {
        double acc = 0.0;
        for (size_t j = 0; j < dim; j++) {
            float xt = (float)(al[b] * x[b * dim + j] + si[b] * (double)z[b * dim + j]);
            float F = (float)(-a * xt + 0.1 * c[b] * (double)(j + 1));
            double rr = si[b] * (double)F + z[b * dim + j];
            acc += rr * rr;
        }
        tot += w[b] * rho * acc;
    }
    free(z);
    return tot / (double)n;
}

enum { FN = 64, FD = 3 };

START_TEST(formula_dsm_bare)
{
    lin_ctx ctx = {0.8};
    score_model *m = lin_model(FD, &ctx, 0, 0);
    score_rng *r = new_rng(21);
    float *x = normal_data(FN, FD, 22, 1.0);
    score_loss *l;
    double al[FN], si[FN], c[FN], w[FN], sigma = 0.3, cv = 0.7;
    ck_assert_ok(score_rng_set_counter(r, 5));
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_DSM));
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, sigma));
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_COND, cv));
    for (size_t b = 0; b < FN; b++) {
        al[b] = 1.0;
        si[b] = sigma;
        c[b] = cv;
        w[b] = 1.0 / (sigma * sigma);
    }
    ck_assert_double_eq_tol(loss_value(l, NULL, m, r, FN, x),
                            ref_denoise(FN, FD, x, r, ctx.a, al, si, c, w, 0.5),
                            TOL_FORMULA_REL * 10.0);
    ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_REDUCE, SCORE_LOSS_REDUCE_MEAN));
    ck_assert_double_eq_tol(loss_value(l, NULL, m, r, FN, x),
                            ref_denoise(FN, FD, x, r, ctx.a, al, si, c, w, 1.0 / FD),
                            TOL_FORMULA_REL * 10.0);
    score_loss_free(l);
    score_model_free(m);
    score_rng_free(r);
    free(x);
}
END_TEST

START_TEST(formula_sde_weightings)
{
    /* VE, VP and sub-VP; sigma^2, likelihood and importance-sampled likelihood weighting. */
    const int kinds[3] = {SCORE_SCHEDULE_VE, SCORE_SCHEDULE_VP, SCORE_SCHEDULE_SUBVP};
    lin_ctx ctx = {0.6};
    score_model *m = lin_model(FD, &ctx, 0, 0);
    score_rng *r = new_rng(31);
    float *x = normal_data(FN, FD, 32, 1.0);
    for (int q = 0; q < 3; q++) {
        score_schedule *s = sched(kinds[q]);
        score_sde *sde = make_sde(s, m, SCORE_OUTPUT_SCORE, SCORE_COND_T);
        double u[FN], t[FN], al[FN], si[FN], g[FN], w[FN], te = 1e-5, T = 1.0;
        for (int mode = 0; mode < 3; mode++) {
            score_loss *l;
            double lam[2], ends[2] = {T, te}, got, want;
            ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SDE));
            ck_assert_ok(score_rng_fill_uniform_f64(r, 0, FN, round4(FD), 1, u));
            for (size_t b = 0; b < FN; b++)
                t[b] = te + u[b] * (T - te);
            if (mode == 1)
                ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_WEIGHTING, SCORE_LOSS_WEIGHT_LIKELIHOOD));
            if (mode == 2) {
                ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_IMPORTANCE, 1));
                ck_assert_ok(score_schedule_lambda(s, 2, ends, lam));
                for (size_t b = 0; b < FN; b++)
                    t[b] = lam[1] - u[b] * (lam[1] - lam[0]);
                ck_assert_ok(score_schedule_t_of_lambda(s, FN, t, t));
            }
            ck_assert_ok(score_schedule_alpha_sigma(s, FN, t, al, si));
            ck_assert_ok(score_schedule_sde_coefs(s, FN, t, NULL, g));
            for (size_t b = 0; b < FN; b++)
                w[b] = mode == 0 ? 1.0 : mode == 1 ? g[b] * g[b] / (si[b] * si[b])
                                              : 2.0 * (lam[1] - lam[0]) / (T - te);
            got = loss_value(l, sde, m, r, FN, x);
            want = ref_denoise(FN, FD, x, r, ctx.a, al, si, t, w, 0.5);
            ck_assert_double_eq_tol(got, want, TOL_FORMULA_REL * fabs(want) + 1e-12);
            score_loss_free(l);
        }
        score_sde_free(sde);
        score_schedule_free(s);
    }
    score_model_free(m);
    score_rng_free(r);
    free(x);
}
END_TEST

START_TEST(formula_ncsn_and_ddpm_levels)
{
    lin_ctx ctx = {0.9};
    score_model *m = lin_model(FD, &ctx, 0, 0);
    score_rng *r = new_rng(41);
    float *x = normal_data(FN, FD, 42, 1.0);
    for (int q = 0; q < 2; q++) {
        score_schedule *s = sched(q == 0 ? SCORE_SCHEDULE_NCSN : SCORE_SCHEDULE_DDPM_LINEAR);
        score_sde *sde = make_sde(s, m, SCORE_OUTPUT_SCORE, SCORE_COND_T);
        score_loss *l;
        size_t L, idx[FN];
        double t[FN], al[FN], si[FN], w[FN], sig[1000], alp[1000], p = 1.5;
        ck_assert_ok(score_schedule_prepare(s));
        L = score_schedule_num_levels(s);
        ck_assert_uint_le(L, 1000);
        ck_assert_ok(score_schedule_levels(s, L, sig, alp));
        ck_assert_ok(score_loss_new(&l, q == 0 ? SCORE_LOSS_NCSN : SCORE_LOSS_DDPM));
        if (q == 0)
            ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_ANNEAL_POWER, p));
        ck_assert_ok(score_rng_fill_index(r, 0, FN, round4(FD), 1, L, idx));
        for (size_t b = 0; b < FN; b++)
            t[b] = (double)(idx[b] + 1) / (double)L;
        ck_assert_ok(score_schedule_alpha_sigma(s, FN, t, al, si));
        for (size_t b = 0; b < FN; b++) {
            /* the continuous-time view at the level time is the table itself */
            ck_assert_double_eq_tol(si[b], sig[idx[b]], 1e-12 * sig[idx[b]]);
            ck_assert_double_eq_tol(al[b], alp[idx[b]], 1e-12);
            w[b] = q == 0 ? pow(si[b], p - 2.0) : 1.0;
        }
        ck_assert_double_eq_tol(loss_value(l, sde, m, r, FN, x),
                                ref_denoise(FN, FD, x, r, ctx.a, al, si, t, w, q == 0 ? 0.5 : 1.0 / FD),
                                1e-8);
        score_loss_free(l);
        score_sde_free(sde);
        score_schedule_free(s);
    }
    score_model_free(m);
    score_rng_free(r);
    free(x);
}
END_TEST

START_TEST(formula_sliced_probes)
{
    /* F = -a x + const: v^T J v = -a |v|^2, so SSM = mean_p(-a |v_p|^2 + (v_p . s)^2 / 2) and
     * SSM-VR = mean_p(-a |v_p|^2) + |s|^2 / 2, with the documented probe columns. */
    enum { M = 3 };
    lin_ctx ctx = {0.4};
    score_model *m = lin_model(FD, &ctx, 1, 0);
    score_rng *r = new_rng(51);
    float *x = normal_data(FN, FD, 52, 1.0), *v = malloc(FN * M * FD * sizeof *v);
    for (int probe = 1; probe <= 3; probe++) {
        for (int vr = 0; vr < 2; vr++) {
            score_loss *l;
            double tot = 0.0, cv = -0.2;
            ck_assert_ok(score_loss_new(&l, vr ? SCORE_LOSS_SSM_VR : SCORE_LOSS_SSM));
            ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, M));
            ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROBE, probe));
            ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_COND, cv));
            if (probe == SCORE_LOSS_PROBE_RADEMACHER)
                ck_assert_ok(score_rng_fill_rademacher(r, 0, FN, round4(FD) + 4, M * FD, v));
            else
                ck_assert_ok(score_rng_fill_normal(r, 0, FN, round4(FD) + 4, M * FD, v));
            for (size_t b = 0; b < FN; b++) {
                double s[FD], s2 = 0.0, row = 0.0;
                for (size_t j = 0; j < FD; j++) {
                    s[j] = (float)(-ctx.a * x[b * FD + j] + 0.1 * cv * (double)(j + 1));
                    s2 += s[j] * s[j];
                }
                for (size_t p = 0; p < M; p++) {
                    float *vp = v + (b * M + p) * FD;
                    double v2 = 0.0, vs = 0.0;
                    if (probe == SCORE_LOSS_PROBE_SPHERE) {
                        double nn = 0.0;
                        for (size_t j = 0; j < FD; j++)
                            nn += (double)vp[j] * vp[j];
                        for (size_t j = 0; j < FD; j++)
                            vp[j] = (float)(sqrt((double)FD / nn) * vp[j]);
                    }
                    for (size_t j = 0; j < FD; j++) {
                        v2 += (double)vp[j] * vp[j];
                        vs += (double)vp[j] * s[j];
                    }
                    if (probe == SCORE_LOSS_PROBE_SPHERE)
                        ck_assert_double_eq_tol(v2, FD, 1e-5);
                    row += -ctx.a * v2 + (vr ? 0.0 : 0.5 * vs * vs);
                }
                tot += row / M + (vr ? 0.5 * s2 : 0.0);
            }
            ck_assert_double_eq_tol(loss_value(l, NULL, m, r, FN, x), tot / FN, 1e-6 * fabs(tot / FN));
            score_loss_free(l);
        }
    }
    score_model_free(m);
    score_rng_free(r);
    free(x);
    free(v);
}
END_TEST

START_TEST(noise_independent_of_batch_size)
{
    /* Row b's noise depends on (seed, stream, counter, b) only: the loss of the first row alone
     * equals the first row's share computed in a batch of one row; and a batch that repeats the
     * first row keeps that row's value. */
    score_model *m = tiny_mlp(2, SCORE_ACT_SILU, 3);
    score_schedule *s = sched(SCORE_SCHEDULE_VE);
    score_sde *sde = make_sde(s, m, SCORE_OUTPUT_SCORE, 0);
    score_loss *l;
    score_rng *r = new_rng(61);
    float *x = normal_data(8, 2, 62, 1.0);
    double one, two, again;
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SDE));
    one = loss_value(l, sde, m, r, 1, x);
    two = loss_value(l, sde, m, r, 8, x);
    again = loss_value(l, sde, m, r, 1, x);
    ck_assert_double_eq(one, again); /* bitwise: same inputs, workspace reuse does not matter */
    ck_assert_double_ne(one, two);
    ck_assert_ok(score_rng_advance(r, 1));
    ck_assert_double_ne(loss_value(l, sde, m, r, 1, x), one);
    fx_free(&(loss_fx){s, m, sde, l, r, x});
}
END_TEST

/* ---- lifecycle, parameters, errors --------------------------------------------------------- */

START_TEST(lifecycle_and_params)
{
    score_loss *l, *c;
    double v;
    int64_t i;
    const char *names[] = {"hyvarinen", "ssm", "ssm-vr", "dsm", "ncsn", "ddpm", "sde",
                           "classifier"};
    for (int k = 1; k <= 8; k++) {
        ck_assert_ok(score_loss_new(&l, k));
        ck_assert_int_eq(score_loss_kind(l), k);
        ck_assert_str_eq(score_loss_name(l), names[k - 1]);
        score_loss_free(l);
    }
    ck_assert_str_eq(score_loss_name(NULL), "(null)");
    ck_assert_int_eq(score_loss_kind(NULL), 0);
    score_loss_free(NULL);
    ck_assert_fails_with(score_loss_new(NULL, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_new(&l, 0), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_null(l);
    ck_assert_fails_with(score_loss_new(&l, 9), SCORE_E_UNSUPPORTED);

    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SDE));
    ck_assert_ok(score_loss_get_f64(l, SCORE_LOSS_PARAM_T_EPS, &v));
    ck_assert_double_eq(v, 1e-5);
    ck_assert_ok(score_loss_get_i64(l, SCORE_LOSS_PARAM_WEIGHTING, &i));
    ck_assert_int_eq(i, SCORE_LOSS_WEIGHT_SIGMA2);
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_T_EPS, 1e-3));
    ck_assert_fails_with(score_loss_set_f64(l, SCORE_LOSS_PARAM_T_EPS, 0.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_set_f64(l, SCORE_LOSS_PARAM_T_EPS, nextafter(1e-12, 0)), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_set_f64(l, SCORE_LOSS_PARAM_T_EPS, NAN), SCORE_E_RANGE);
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_T_EPS, 1e-12));
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_WEIGHTING, 3), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_WEIGHTING, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_set_f64(l, SCORE_LOSS_PARAM_WEIGHTING, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_T_EPS, 1), SCORE_E_INVAL);
    /* parameters of other kinds */
    ck_assert_fails_with(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, 0.1), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_loss_get_f64(l, SCORE_LOSS_PARAM_TIME, &v), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 2), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_loss_set_i64(l, 499, 2), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_loss_set_f64(NULL, SCORE_LOSS_PARAM_T_EPS, 1e-3), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_set_i64(NULL, SCORE_LOSS_PARAM_IMPORTANCE, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_get_f64(NULL, SCORE_LOSS_PARAM_T_EPS, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_get_i64(NULL, SCORE_LOSS_PARAM_IMPORTANCE, &i), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_get_f64(l, SCORE_LOSS_PARAM_T_EPS, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_loss_clone(&c, l));
    ck_assert_ok(score_loss_get_f64(c, SCORE_LOSS_PARAM_T_EPS, &v));
    ck_assert_double_eq(v, 1e-12);
    score_loss_free(c);
    ck_assert_fails_with(score_loss_clone(NULL, l), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_clone(&c, NULL), SCORE_E_INVAL);
    ck_assert_ptr_null(c);
    score_loss_free(l);

    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SSM));
    ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 4096));
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 4097), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROBE, 4), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_set_i64(l, SCORE_LOSS_PARAM_REDUCE, 1), SCORE_E_UNSUPPORTED);
    score_loss_free(l);
    /* introspection through param.h */
    ck_assert_uint_eq(score_param_count(SCORE_OBJECT_LOSS), 10);
    ck_assert_str_eq(score_param_name(SCORE_OBJECT_LOSS, SCORE_LOSS_PARAM_ANNEAL_POWER), "anneal_power");
}
END_TEST

START_TEST(compute_errors)
{
    lin_ctx ctx = {1.0};
    score_model *cb = lin_model(2, &ctx, 0, 0), *mlp = tiny_mlp(2, SCORE_ACT_SILU, 1), *m3 = tiny_mlp(3, SCORE_ACT_SILU, 1);
    score_schedule *ve = sched(SCORE_SCHEDULE_VE);
    score_sde *sde = make_sde(ve, mlp, SCORE_OUTPUT_SCORE, 0);
    score_loss *l;
    score_rng *r = new_rng(1);
    float x[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    float *g = calloc(score_model_param_count(mlp), sizeof *g);
    double v;
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SDE));
    ck_assert_fails_with(score_loss_compute(NULL, sde, mlp, r, 4, x, &v, g), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_compute(l, sde, NULL, r, 4, x, &v, g), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_compute(l, sde, mlp, NULL, 4, x, &v, g), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_compute(l, sde, mlp, r, 4, NULL, &v, g), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_compute(l, sde, mlp, r, 0, x, &v, g), SCORE_E_RANGE);
    ck_assert_fails_with(score_loss_compute(l, NULL, mlp, r, 4, x, &v, g), SCORE_E_INVAL);
    ck_assert_fails_with(score_loss_compute(l, sde, m3, r, 2, x, &v, NULL), SCORE_E_SHAPE);
    /* a callback has no parameters and no backward */
    ck_assert_fails_with(score_loss_compute(l, sde, cb, r, 4, x, &v, g), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_loss_compute(l, sde, cb, r, 4, x, &v, NULL));
    /* t_eps not below T */
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_T_EPS, 1.0));
    ck_assert_fails_with(score_loss_compute(l, sde, mlp, r, 4, x, &v, g), SCORE_E_INVAL);
    score_loss_free(l);
    /* non-finite data */
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_DSM));
    x[3] = NAN;
    ck_assert_fails_with(score_loss_compute(l, NULL, mlp, r, 4, x, &v, g), SCORE_E_NUMERIC);
    x[3] = 0.4f;
    /* time-free kinds through an sde need TIME */
    ck_assert_fails_with(score_loss_compute(l, sde, mlp, r, 4, x, &v, g), SCORE_E_INVAL);
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_TIME, 2.0)); /* beyond T */
    ck_assert_fails_with(score_loss_compute(l, sde, mlp, r, 4, x, &v, g), SCORE_E_RANGE);
    score_loss_free(l);
    /* NCSN / DDPM need a discrete schedule */
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_NCSN));
    ck_assert_fails_with(score_loss_compute(l, sde, mlp, r, 4, x, &v, g), SCORE_E_UNSUPPORTED);
    score_loss_free(l);
    /* derivatives the callback lacks */
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_HYVARINEN));
    ck_assert_fails_with(score_loss_compute(l, NULL, cb, r, 4, x, &v, NULL), SCORE_E_UNSUPPORTED);
    score_loss_free(l);
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SSM));
    ck_assert_fails_with(score_loss_compute(l, NULL, cb, r, 4, x, &v, NULL), SCORE_E_UNSUPPORTED);
    ck_assert(strstr(score_last_error_message(), "jvp") != NULL);
    score_loss_free(l);
    /* a non-finite loss is reported and its value still written */
    {
        size_t np = score_model_param_count(mlp);
        float *p = malloc(np * sizeof *p);
        for (size_t i = 0; i < np; i++)
            p[i] = 1e20f;
        ck_assert_ok(score_model_params_set(mlp, p, np));
        ck_assert_ok(score_loss_new(&l, SCORE_LOSS_DSM));
        v = 0.0;
        ck_assert_fails_with(score_loss_compute(l, NULL, mlp, r, 4, x, &v, NULL), SCORE_E_NUMERIC);
        ck_assert(!isfinite(v));
        score_loss_free(l);
        free(p);
    }
    free(g);
    score_rng_free(r);
    score_sde_free(sde);
    score_schedule_free(ve);
    score_model_free(cb);
    score_model_free(mlp);
    score_model_free(m3);
}
END_TEST

START_TEST(workspace_grows_then_reuses)
{
    /* Larger, then smaller, then equal batches give the same values as fresh losses. */
    score_model *m = tiny_mlp(2, SCORE_ACT_SILU, 2);
    score_schedule *s = sched(SCORE_SCHEDULE_VP);
    score_sde *sde = make_sde(s, m, SCORE_OUTPUT_EPS, 0);
    score_rng *r = new_rng(9);
    float *x = normal_data(64, 2, 10, 1.0);
    score_loss *l, *fresh;
    double a, b;
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SDE));
    (void)loss_value(l, sde, m, r, 64, x);
    a = loss_value(l, sde, m, r, 5, x);
    ck_assert_ok(score_loss_new(&fresh, SCORE_LOSS_SDE));
    b = loss_value(fresh, sde, m, r, 5, x);
    ck_assert_double_eq(a, b);
    score_loss_free(l);
    score_loss_free(fresh);
    score_sde_free(sde);
    score_schedule_free(s);
    score_model_free(m);
    score_rng_free(r);
    free(x);
}
END_TEST

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* measured values reach the log even if a check fails */
    Suite *s = suite_create("loss");
    TCase *tc;
    tc = tcase_create("lifecycle");
    tcase_add_test(tc, lifecycle_and_params);
    tcase_add_test(tc, compute_errors);
    tcase_add_test(tc, workspace_grows_then_reuses);
    suite_add_tcase(s, tc);
    tc = tcase_create("gradients");
    tcase_add_loop_test(tc, gradient_vs_finite_differences, 0,
                        (int)(sizeof gc_cases / sizeof gc_cases[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("formulas");
    tcase_add_test(tc, formula_dsm_bare);
    tcase_add_test(tc, formula_sde_weightings);
    tcase_add_test(tc, formula_ncsn_and_ddpm_levels);
    tcase_add_test(tc, formula_sliced_probes);
    tcase_add_test(tc, noise_independent_of_batch_size);
    suite_add_tcase(s, tc);
    tc = tcase_create("closed_forms");
    tcase_add_test(tc, hyvarinen_known_score);
    tcase_add_test(tc, hyvarinen_analytic_gaussian);
    tcase_add_test(tc, dsm_at_the_true_score);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
