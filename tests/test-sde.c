/* The parameterization layer: coefficient closed forms, representation round trips for every
 * schedule kind, every output kind reproducing an analytic score, drifts, exact and Hutchinson
 * divergences, the t = 0 rule, NFE, parameters and argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"

/* Coefficients computed two ways in double: a few ulps. */
#define TOL_COEF_REL 1e-12
/* Round trips through six representations in float: each conversion rounds to float (2^-24
 * relative of the values involved) and x0 / score conversions cancel terms of size |x| / sigma^2
 * against |s|, so the error is measured relative to |s| + |x| / sigma (see round_trips). */
#define TOL_ROUND_TRIP 1e-6
/* Output kinds wrapping an analytic score: the callback forms F in float, the sde maps back;
 * rounding of F and of x amplified by |k x| / |s| <~ 10. */
#define TOL_WRAP_REL 2e-5
/* Divergence from dim float Jacobian-vector products vs the exact Laplacian (double). */
#define TOL_DIV_REL 1e-5
/* Divergence vs central differences of the float score with h = 2^-10: round-off
 * 2 * 6e-8 |s| / (2h) ~ 1e-3 for |s| ~ 10. */
#define TOL_DIV_FD 5e-3

static score_schedule *make_sched(int kind)
{
    score_schedule *s;
    ck_assert_ok(score_schedule_new(&s, kind));
    ck_assert_ok(score_schedule_prepare(s));
    return s;
}

static const int cont_kinds[3] = {SCORE_SCHEDULE_VE, SCORE_SCHEDULE_VP, SCORE_SCHEDULE_SUBVP};
static const int all_kinds[7] = {SCORE_SCHEDULE_VE,          SCORE_SCHEDULE_VP,
                                 SCORE_SCHEDULE_SUBVP,       SCORE_SCHEDULE_NCSN,
                                 SCORE_SCHEDULE_DDPM_LINEAR, SCORE_SCHEDULE_DDPM_SCALED_LINEAR,
                                 SCORE_SCHEDULE_DDPM_COSINE};

enum { D = 3, K = 3 };
static const double gw[K] = {0.5, 0.3, 0.2};
static const double gmu[K * D] = {-1.0, 0.5, 0.0, 1.5, -0.5, 1.0, 0.0, 2.0, -1.5};
static const double gvar[K * D] = {0.3, 0.5, 0.4, 0.6, 0.25, 0.35, 0.45, 0.3, 0.5};

/* ---- a callback that presents an analytic score in a chosen output kind --------------- */

typedef struct wrap {
    score_model *an;   /* analytic model: the true score */
    score_sde *coef;   /* same schedule and output kind, COND_T: coefficients only */
    float *buf;        /* scratch */
    float *buf2;
} wrap;

static void wrap_coefs(const wrap *W, double t, double *a, double *k, double *in)
{
    ck_assert_ok(score_sde_coefs(W->coef, 1, &t, a, k, in, NULL));
}

/* F(xin, t) = (s(xin / in, t) - k xin / in) / a */
static int wrap_fn(size_t n, size_t dim, const float *xin, const double *c, float *out, void *ud)
{
    wrap *W = ud;
    for (size_t b = 0; b < n; b++) {
        double a, k, in;
        wrap_coefs(W, c[b], &a, &k, &in);
        for (size_t j = 0; j < dim; j++)
            W->buf[j] = (float)(xin[b * dim + j] / in);
        if (score_model_forward(W->an, 1, W->buf, c + b, W->buf2) != SCORE_OK)
            return -1;
        for (size_t j = 0; j < dim; j++)
            out[b * dim + j] = (float)(((double)W->buf2[j] - k * (double)W->buf[j]) / a);
    }
    return 0;
}

/* J_F v = (H v - k v) / (a in) */
static int wrap_jvp(size_t n, size_t dim, const float *xin, const double *c, size_t kp,
                    const float *v, float *out, void *ud)
{
    wrap *W = ud;
    for (size_t b = 0; b < n; b++) {
        double a, k, in;
        wrap_coefs(W, c[b], &a, &k, &in);
        for (size_t j = 0; j < dim; j++)
            W->buf[j] = (float)(xin[b * dim + j] / in);
        for (size_t p = 0; p < kp; p++) {
            const float *vp = v + (b * kp + p) * dim;
            if (score_model_jvp(W->an, 1, W->buf, c + b, 1, vp, W->buf2, NULL) != SCORE_OK)
                return -1;
            for (size_t j = 0; j < dim; j++)
                out[(b * kp + p) * dim + j] =
                    (float)(((double)W->buf2[j] - k * (double)vp[j]) / (a * in));
        }
    }
    return 0;
}

/* tr J_F = (tr H - k dim) / (a in) */
static int wrap_div(size_t n, size_t dim, const float *xin, const double *c, double *div, void *ud)
{
    wrap *W = ud;
    for (size_t b = 0; b < n; b++) {
        double a, k, in, tr;
        wrap_coefs(W, c[b], &a, &k, &in);
        for (size_t j = 0; j < dim; j++)
            W->buf[j] = (float)(xin[b * dim + j] / in);
        if (score_model_trace(W->an, 1, W->buf, c + b, &tr, NULL) != SCORE_OK)
            return -1;
        div[b] = (tr - k * (double)dim) / (a * in);
    }
    return 0;
}

typedef struct fixture {
    score_schedule *s;
    score_model *an, *cb;
    score_sde *sde, *coef;
    wrap W;
    float buf[D], buf2[D];
} fixture;

static void fixture_init(fixture *f, int sched_kind, int out_kind, int with_jvp, int with_div)
{
    f->s = make_sched(sched_kind);
    ck_assert_ok(score_model_new_gmm(&f->an, f->s, D, K, gw, gmu, gvar));
    ck_assert_ok(score_sde_new(&f->coef, f->s, f->an, out_kind));
    ck_assert_ok(score_sde_set_i64(f->coef, SCORE_SDE_PARAM_COND, SCORE_COND_T));
    f->W.an = f->an;
    f->W.coef = f->coef;
    f->W.buf = f->buf;
    f->W.buf2 = f->buf2;
    ck_assert_ok(score_model_new_callback(&f->cb, D, wrap_fn, &f->W));
    if (with_jvp)
        ck_assert_ok(score_model_callback_set_jvp(f->cb, wrap_jvp, &f->W));
    if (with_div)
        ck_assert_ok(score_model_callback_set_divergence(f->cb, wrap_div, &f->W));
    ck_assert_ok(score_sde_new(&f->sde, f->s, f->cb, out_kind));
    ck_assert_ok(score_sde_set_i64(f->sde, SCORE_SDE_PARAM_COND, SCORE_COND_T));
}

static void fixture_free(fixture *f)
{
    score_sde_free(f->sde);
    score_sde_free(f->coef);
    score_model_free(f->cb);
    score_model_free(f->an);
    score_schedule_free(f->s);
}

enum { NR = 4 };
static const float px[NR * D] = {0.25f, -0.5f, 0.75f, 1.5f, 0.125f, -1.0f,
                                 -2.0f, 1.0f,  0.5f,  0.0f, 2.5f,   -0.25f};
static const double pt[NR] = {0.05, 0.3, 0.6, 0.9};

/* ---- coefficients ------------------------------------------------------------------ */

START_TEST(coefs_closed_forms)
{
    score_schedule *s = make_sched(all_kinds[_i]);
    score_model *m;
    score_sde *sde;
    const double one = 1.0, z = 0.0, v = 1.0;
    double t[3] = {0.1, 0.5, 0.95}, al[3], si[3], T;
    ck_assert_ok(score_schedule_get_f64(s, SCORE_SCHEDULE_PARAM_T, &T));
    for (int i = 0; i < 3; i++) t[i] *= T;
    ck_assert_ok(score_schedule_alpha_sigma(s, 3, t, al, si));
    ck_assert_ok(score_model_new_gmm(&m, s, 1, 1, &one, &z, &v));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_SIGMA_DATA, 0.7));
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_COND_SCALE, 250.0));
    for (int kind = SCORE_OUTPUT_SCORE; kind <= SCORE_OUTPUT_SCORE_OVER_SIGMA; kind++) {
        double a[3], k[3], in[3], c[3];
        ck_assert_ok(score_sde_set_i64(sde, SCORE_SDE_PARAM_OUTPUT, kind));
        ck_assert_ok(score_sde_coefs(sde, 3, t, a, k, in, c));
        for (int i = 0; i < 3; i++) {
            double A = al[i], S = si[i], ea = 1, ek = 0, ein = 1, ec = t[i];
            switch (kind) {
            case SCORE_OUTPUT_EPS: ea = -1 / S; break;
            case SCORE_OUTPUT_X0: ea = A / (S * S); ek = -1 / (S * S); break;
            case SCORE_OUTPUT_V: ea = -A / (S * (A * A + S * S)); ek = -1 / (A * A + S * S); break;
            case SCORE_OUTPUT_EDM: {
                double se = S / A, sd = 0.7, den = se * se + sd * sd;
                double cskip = sd * sd / den, cout = se * sd / sqrt(den), cin = 1 / sqrt(den);
                ea = A * cout / (S * S);
                ek = (cskip - 1) / (S * S);
                ein = cin / A;
                ec = log(se) / 4; /* default conditioning of EDM */
                break;
            }
            case SCORE_OUTPUT_SCORE_OVER_SIGMA: ea = 1 / S; break;
            default: break;
            }
            ck_assert_double_eq_tol(a[i], ea, TOL_COEF_REL * fabs(ea));
            ck_assert_double_eq_tol(k[i], ek, 1e-10 * fabs(ek) + 1e-300);
            ck_assert_double_eq_tol(in[i], ein, TOL_COEF_REL * fabs(ein));
            ck_assert_double_eq_tol(c[i], ec, TOL_COEF_REL * (1 + fabs(ec)));
        }
    }
    /* conditioning kinds */
    for (int ck = SCORE_COND_T; ck <= SCORE_COND_LOG_SIGMA_4; ck++) {
        double c[3];
        ck_assert_ok(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, ck));
        ck_assert_ok(score_sde_coefs(sde, 3, t, NULL, NULL, NULL, c));
        for (int i = 0; i < 3; i++) {
            double e = ck == SCORE_COND_T ? t[i] : ck == SCORE_COND_T_SCALED ? 250.0 * t[i]
                     : ck == SCORE_COND_SIGMA ? si[i] / al[i] : 0.25 * log(si[i] / al[i]);
            ck_assert_double_eq_tol(c[i], e, TOL_COEF_REL * (1 + fabs(e)));
        }
    }
    ck_assert_ok(score_sde_coefs(sde, 3, t, NULL, NULL, NULL, NULL));
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* ---- round trips ------------------------------------------------------------------- */

START_TEST(round_trips_every_schedule)
{
    enum { N = 64 };
    score_schedule *s = make_sched(all_kinds[_i]);
    score_model *m;
    score_sde *sde;
    score_rng *rng;
    const double one = 1.0, z = 0.0, v = 1.0;
    static const int chain[7] = {SCORE_OUTPUT_SCORE, SCORE_OUTPUT_EPS, SCORE_OUTPUT_X0,
                                 SCORE_OUTPUT_V, SCORE_OUTPUT_EDM, SCORE_OUTPUT_SCORE_OVER_SIGMA,
                                 SCORE_OUTPUT_SCORE};
    float x0[N * D], e[N * D], x[N * D], sc[N * D], a[N * D], b[N * D];
    double t[N], al[N], si[N], T, worst = 0.0;
    (void)z;
    (void)v;
    ck_assert_ok(score_schedule_get_f64(s, SCORE_SCHEDULE_PARAM_T, &T));
    ck_assert_ok(score_model_new_gmm(&m, s, D, 1, &one, gmu, gvar));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    ck_assert_ok(score_rng_fill_normal(rng, 0, N, 0, D, x0));
    ck_assert_ok(score_rng_fill_normal(rng, 0, N, D, D, e));
    for (int i = 0; i < N; i++)
        t[i] = T * (0.3 + 0.69 * i / (N - 1.0));
    ck_assert_ok(score_schedule_alpha_sigma(s, N, t, al, si));
    /* consistent (x, s): x = alpha x0 + sigma eps, s = -eps / sigma */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            x[i * D + j] = (float)(al[i] * x0[i * D + j] + si[i] * e[i * D + j]);
            sc[i * D + j] = (float)(-e[i * D + j] / si[i]);
        }
    memcpy(a, sc, sizeof a);
    for (int c = 0; c + 1 < 7; c++) {
        ck_assert_ok(score_sde_convert(sde, chain[c], chain[c + 1], N, t, x, a, b));
        memcpy(a, b, sizeof a);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double scale = fabs(sc[i * D + j]) + fabs(x[i * D + j]) / si[i] + 1.0;
            double err = fabs(a[i * D + j] - sc[i * D + j]) / scale;
            if (err > worst) worst = err;
            ck_assert_msg(err < TOL_ROUND_TRIP, "kind %d t %g: %g vs %g", all_kinds[_i], t[i],
                          a[i * D + j], sc[i * D + j]);
        }
    /* every pair: score -> f -> g -> score, in place */
    for (int f = 1; f <= 6; f++)
        for (int g = 1; g <= 6; g++) {
            memcpy(a, sc, sizeof a);
            ck_assert_ok(score_sde_convert(sde, SCORE_OUTPUT_SCORE, f, N, t, x, a, a));
            ck_assert_ok(score_sde_convert(sde, f, g, N, t, x, a, a));
            ck_assert_ok(score_sde_convert(sde, g, SCORE_OUTPUT_SCORE, N, t, x, a, a));
            for (int i = 0; i < N * D; i++) {
                double scale = fabs(sc[i]) + fabs(x[i]) / si[i / D] + 1.0;
                ck_assert_msg(fabs(a[i] - sc[i]) / scale < TOL_ROUND_TRIP, "pair %d %d", f, g);
            }
        }
    /* eps and x0 are what the notation says: eps = -sigma s, x0 = (x + sigma^2 s) / alpha */
    ck_assert_ok(score_sde_convert(sde, SCORE_OUTPUT_SCORE, SCORE_OUTPUT_EPS, N, t, x, sc, a));
    ck_assert_ok(score_sde_convert(sde, SCORE_OUTPUT_SCORE, SCORE_OUTPUT_X0, N, t, x, sc, b));
    for (int i = 0; i < N * D; i++) {
        ck_assert_float_eq_tol(a[i], e[i], 1e-6 * (1 + fabs(e[i])));
        ck_assert_float_eq_tol(b[i], x0[i], 1e-5 * (1 + fabs(x0[i]) + fabs(x[i]) / al[i / D]));
    }
    printf("sde: round trip score->eps->x0->v->edm->s/sigma->score [schedule %d]: max scaled error %.3g\n",
           all_kinds[_i], worst);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* ---- every output kind reproduces the analytic score --------------------------------- */

START_TEST(output_kinds_reproduce_analytic_score)
{
    int sk = cont_kinds[_i / 6], ok = 1 + _i % 6;
    fixture f;
    float sref[NR * D], out[NR * D];
    double al[NR], si[NR], fc[NR], g[NR], kc[NR], worst = 0.0;
    fixture_init(&f, sk, ok, 0, 0);
    ck_assert_ok(score_sde_coefs(f.sde, NR, pt, NULL, kc, NULL, NULL));
    ck_assert_ok(score_model_forward(f.an, NR, px, pt, sref));
    ck_assert_ok(score_schedule_alpha_sigma(f.s, NR, pt, al, si));
    ck_assert_ok(score_schedule_sde_coefs(f.s, NR, pt, fc, g));
    for (int what = 0; what < 5; what++) {
        int rc;
        switch (what) {
        case 0: rc = score_sde_score(f.sde, NR, pt, px, out); break;
        case 1: rc = score_sde_eps(f.sde, NR, pt, px, out); break;
        case 2: rc = score_sde_x0(f.sde, NR, pt, px, out); break;
        case 3: rc = score_sde_reverse_drift(f.sde, NR, pt, px, out); break;
        default: rc = score_sde_pf_drift(f.sde, NR, pt, px, out); break;
        }
        ck_assert_ok(rc);
        for (int i = 0; i < NR; i++)
            for (int j = 0; j < D; j++) {
                /* out = P s + Q x; the score is a F + k x with F rounded to float, so its
                 * error scales with |a F| + |k x| <= |s| + 2 |k x| (large for x0-type outputs
                 * at small sigma, where s is a difference of two large terms). */
                double s = sref[i * D + j], xv = px[i * D + j], P, Q, e, scale, err;
                double ss = fabs(s) + 2 * fabs(kc[i] * xv);
                switch (what) {
                case 0: P = 1; Q = 0; break;
                case 1: P = -si[i]; Q = 0; break;
                case 2: P = si[i] * si[i] / al[i]; Q = 1 / al[i]; break;
                case 3: P = -g[i] * g[i]; Q = fc[i]; break;
                default: P = -0.5 * g[i] * g[i]; Q = fc[i]; break;
                }
                e = P * s + Q * xv;
                scale = fabs(P) * ss + fabs(Q * xv);
                err = fabs(out[i * D + j] - e) / (scale + 1e-30);
                if (err > worst) worst = err;
                ck_assert_msg(err < TOL_WRAP_REL, "schedule %d output %d quantity %d row %d: %g vs %g",
                              sk, ok, what, i, out[i * D + j], e);
            }
    }
    ck_assert_uint_eq(score_sde_nfe(f.sde), 5);
    printf("sde: schedule %d output kind %d: max rel error vs analytic = %.3g\n", sk, ok, worst);
    fixture_free(&f);
}
END_TEST

START_TEST(edm_default_conditioning_reaches_model)
{
    /* With COND left at 0 (default), an EDM sde passes c = ln(sigma/alpha)/4 to the model. */
    fixture f;
    double c[NR], al[NR], si[NR];
    fixture_init(&f, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EDM, 0, 0);
    ck_assert_ok(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_COND, SCORE_COND_DEFAULT));
    ck_assert_ok(score_sde_coefs(f.sde, NR, pt, NULL, NULL, NULL, c));
    ck_assert_ok(score_schedule_alpha_sigma(f.s, NR, pt, al, si));
    for (int i = 0; i < NR; i++)
        ck_assert_double_eq_tol(c[i], 0.25 * log(si[i] / al[i]), 1e-14);
    ck_assert_ok(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_OUTPUT, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_sde_coefs(f.sde, NR, pt, NULL, NULL, NULL, c));
    for (int i = 0; i < NR; i++)
        ck_assert_double_eq(c[i], pt[i]);
    fixture_free(&f);
}
END_TEST

/* ---- divergences ------------------------------------------------------------------- */

START_TEST(divergence_exact_paths)
{
    int sk = cont_kinds[_i / 6], ok = 1 + _i % 6;
    fixture f, g;
    double trH[NR], div[NR], div2[NR], fc[NR], gg[NR], kc[NR], worst = 0.0;
    float sc[NR * D], sref[NR * D], dr[NR * D], dr2[NR * D];
    fixture_init(&f, sk, ok, 1, 0); /* jvp only: unit-vector fallback */
    fixture_init(&g, sk, ok, 0, 1); /* divergence callback: trace path */
    ck_assert_ok(score_sde_coefs(f.sde, NR, pt, NULL, kc, NULL, NULL));
    ck_assert_ok(score_model_trace(f.an, NR, px, pt, trH, sref));
    ck_assert_ok(score_sde_divergence(f.sde, NR, pt, px, div, sc));
    ck_assert_ok(score_sde_divergence(g.sde, NR, pt, px, div2, NULL));
    for (int i = 0; i < NR; i++) {
        /* a in tr(J_F) is formed from float products and cancels against k dim: the error
         * scales with |tr H| + 2 |k| dim */
        double scale = 1 + fabs(trH[i]) + 2 * fabs(kc[i]) * D;
        double err = fabs(div[i] - trH[i]) / scale;
        if (err > worst) worst = err;
        ck_assert_msg(err < TOL_DIV_REL, "fallback divergence %g vs %g", div[i], trH[i]);
        ck_assert_msg(fabs(div2[i] - trH[i]) < 1e-9 * scale, "trace-path divergence %g vs %g",
                      div2[i], trH[i]);
        for (int j = 0; j < D; j++)
            ck_assert_float_eq_tol(sc[i * D + j], sref[i * D + j],
                                   TOL_WRAP_REL * (1 + fabs(sref[i * D + j]) + 2 * fabs(kc[i] * px[i * D + j])));
    }
    /* probability-flow divergence f dim - g^2/2 div s, and its drift output */
    ck_assert_ok(score_schedule_sde_coefs(f.s, NR, pt, fc, gg));
    ck_assert_ok(score_sde_pf_divergence(g.sde, NR, pt, px, 0, NULL, div, dr));
    ck_assert_ok(score_sde_pf_drift(g.sde, NR, pt, px, dr2));
    for (int i = 0; i < NR; i++) {
        double e = fc[i] * D - 0.5 * gg[i] * gg[i] * trH[i];
        ck_assert_double_eq_tol(div[i], e, 1e-9 * (1 + fabs(e)));
        for (int j = 0; j < D; j++)
            ck_assert_float_eq(dr[i * D + j], dr2[i * D + j]);
    }
    printf("sde: divergence via unit-vector jvps [schedule %d output %d]: max rel error %.3g\n", sk,
           ok, worst);
    fixture_free(&f);
    fixture_free(&g);
}
END_TEST

START_TEST(divergence_matches_fd_of_score)
{
    fixture f;
    const double h = 1.0 / 1024.0;
    double div[NR], worst = 0.0;
    fixture_init(&f, cont_kinds[_i], SCORE_OUTPUT_EPS, 1, 0);
    ck_assert_ok(score_sde_divergence(f.sde, NR, pt, px, div, NULL));
    for (int i = 0; i < NR; i++) {
        double fd = 0.0;
        for (int j = 0; j < D; j++) {
            float xp[D], xm[D], sp[D], sm[D];
            memcpy(xp, px + i * D, sizeof xp);
            memcpy(xm, px + i * D, sizeof xm);
            xp[j] += (float)h;
            xm[j] -= (float)h;
            ck_assert_ok(score_sde_score(f.sde, 1, pt + i, xp, sp));
            ck_assert_ok(score_sde_score(f.sde, 1, pt + i, xm, sm));
            fd += ((double)sp[j] - (double)sm[j]) / (2 * h);
        }
        if (fabs(div[i] - fd) / (1 + fabs(fd)) > worst) worst = fabs(div[i] - fd) / (1 + fabs(fd));
        ck_assert_msg(fabs(div[i] - fd) < TOL_DIV_FD * (1 + fabs(fd)), "div %g vs FD %g", div[i], fd);
    }
    printf("sde: divergence vs FD of score [schedule %d]: max rel error %.3g\n", cont_kinds[_i], worst);
    fixture_free(&f);
}
END_TEST

START_TEST(hutchinson_is_unbiased)
{
    enum { M = 20000 };
    fixture f;
    score_rng *rng;
    float *probes = malloc(sizeof(float) * M * D), *xs = malloc(sizeof(float) * M * D);
    double *ts = malloc(sizeof(double) * M), *est = malloc(sizeof(double) * M), exact, mean;
    ck_assert_ptr_nonnull(probes);
    ck_assert_ptr_nonnull(xs);
    ck_assert_ptr_nonnull(ts);
    ck_assert_ptr_nonnull(est);
    fixture_init(&f, cont_kinds[_i], SCORE_OUTPUT_EPS, 1, 0);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 11));
    for (int r = 0; r < M; r++) {
        memcpy(xs + r * D, px + D, D * sizeof(float)); /* one point, M probes */
        ts[r] = 0.3;
    }
    ck_assert_ok(score_sde_pf_divergence(f.sde, 1, ts, xs, 0, NULL, &exact, NULL));
    for (int gauss = 0; gauss < 2; gauss++) {
        double var = 0.0, se, meank;
        if (gauss)
            ck_assert_ok(score_rng_fill_normal(rng, 0, M, 0, D, probes));
        else
            ck_assert_ok(score_rng_fill_rademacher(rng, 0, M, 0, D, probes));
        /* M rows with one probe each: M independent single-probe estimates */
        ck_assert_ok(score_sde_pf_divergence(f.sde, M, ts, xs, 1, probes, est, NULL));
        mean = 0.0;
        for (int r = 0; r < M; r++) mean += est[r];
        mean /= M;
        for (int r = 0; r < M; r++) var += (est[r] - mean) * (est[r] - mean);
        var /= M - 1;
        se = sqrt(var / M);
        printf("sde: Hutchinson (%s) [schedule %d]: mean %.6g, exact %.6g, |z| = %.2f (se %.3g)\n",
               gauss ? "Gaussian" : "Rademacher", cont_kinds[_i], mean, exact, fabs(mean - exact) / se, se);
        /* 5 standard errors: a false failure has probability < 1e-6 */
        ck_assert_msg(fabs(mean - exact) < 5 * se + 1e-12 * fabs(exact), "mean %g vs exact %g (se %g)",
                      mean, exact, se);
        /* one row with M probes averages them */
        ck_assert_ok(score_sde_pf_divergence(f.sde, 1, ts, xs, M, probes, &meank, NULL));
        ck_assert_double_eq_tol(meank, mean, 1e-9 * (1 + fabs(mean)));
    }
    score_rng_free(rng);
    fixture_free(&f);
    free(probes);
    free(xs);
    free(ts);
    free(est);
}
END_TEST

START_TEST(hutchinson_rademacher_exact_for_diagonal_hessian)
{
    /* A diagonal Gaussian has a diagonal Hessian: v^T H v = tr H for every Rademacher v. */
    score_schedule *s = make_sched(SCORE_SCHEDULE_VP);
    score_model *m;
    score_sde *sde;
    const double mu[D] = {0.1, -0.2, 0.3}, var[D] = {0.5, 1.5, 0.2};
    float pr[2 * D] = {1, -1, 1, -1, -1, 1};
    double t = 0.4, e, h;
    ck_assert_ok(score_model_new_gaussian(&m, s, D, mu, NULL, var));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_pf_divergence(sde, 1, &t, px, 0, NULL, &e, NULL));
    ck_assert_ok(score_sde_pf_divergence(sde, 1, &t, px, 2, pr, &h, NULL));
    ck_assert_double_eq_tol(h, e, 1e-6 * fabs(e));
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(divergence_unsupported_without_derivatives)
{
    fixture f;
    double div[NR];
    float pr[NR * D] = {0};
    fixture_init(&f, SCORE_SCHEDULE_VE, SCORE_OUTPUT_SCORE, 0, 0);
    ck_assert_fails_with(score_sde_divergence(f.sde, NR, pt, px, div, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_pf_divergence(f.sde, NR, pt, px, 1, pr, div, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_pf_divergence(f.sde, NR, pt, px, 0, NULL, div, NULL), SCORE_E_UNSUPPORTED);
    fixture_free(&f);
}
END_TEST

/* ---- times, NFE, batching, model swap -------------------------------------------------- */

START_TEST(time_rules)
{
    fixture f;
    float out[2 * D];
    double div[2];
    const double t0[2] = {0.5, 0.0}, tneg[2] = {0.5, -0.1}, tnan[2] = {NAN, 0.5}, tbig[2] = {0.5, 1.5};
    fixture_init(&f, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, 1, 0);
    ck_assert_fails_with(score_sde_score(f.sde, 2, t0, px, out), SCORE_E_RANGE);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "t[1] = 0"));
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "grid end"));
    ck_assert_fails_with(score_sde_x0(f.sde, 2, t0, px, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_divergence(f.sde, 2, t0, px, div, NULL), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_coefs(f.sde, 2, t0, div, NULL, NULL, NULL), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_convert(f.sde, 1, 2, 2, t0, px, px + D, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_score(f.sde, 2, tneg, px, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_score(f.sde, 2, tbig, px, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_eps(f.sde, 2, tnan, px, out), SCORE_E_NUMERIC);
    ck_assert_fails_with(score_sde_reverse_drift(f.sde, 2, tnan, px, out), SCORE_E_NUMERIC);
    ck_assert_uint_eq(score_sde_nfe(f.sde), 0); /* nothing was evaluated */
    fixture_free(&f);
}
END_TEST

START_TEST(nfe_batching_and_model_swap)
{
    enum { BIG = 50 };
    fixture f;
    score_model *other, *bad;
    const double one = 1.0, z[D] = {0, 0, 0}, v[D] = {1, 1, 1};
    float xb[BIG * D], ob[BIG * D], o1[D];
    double tb[BIG];
    fixture_init(&f, SCORE_SCHEDULE_SUBVP, SCORE_OUTPUT_V, 0, 0);
    for (int i = 0; i < BIG; i++) {
        tb[i] = 0.02 + 0.9 * i / BIG;
        for (int j = 0; j < D; j++) xb[i * D + j] = 0.05f * (float)(i - 25) + 0.5f * (float)j;
    }
    ck_assert_ok(score_sde_score(f.sde, 1, tb + 3, xb + 3 * D, o1));
    ck_assert_ok(score_sde_score(f.sde, BIG, tb, xb, ob));
    for (int j = 0; j < D; j++) /* rows do not depend on the batch */
        ck_assert_float_eq(o1[j], ob[3 * D + j]);
    ck_assert_ok(score_sde_score(f.sde, 0, NULL, NULL, NULL));
    ck_assert_uint_eq(score_sde_nfe(f.sde), 2);
    score_sde_reset_nfe(f.sde);
    ck_assert_uint_eq(score_sde_nfe(f.sde), 0);
    score_sde_reset_nfe(NULL);
    ck_assert_uint_eq(score_sde_nfe(NULL), 0);
    /* accessors */
    ck_assert_ptr_eq(score_sde_model(f.sde), f.cb);
    ck_assert_ptr_nonnull(score_sde_schedule(f.sde));
    ck_assert_ptr_ne(score_sde_schedule(f.sde), f.s); /* its own copy */
    ck_assert_uint_eq(score_sde_dim(f.sde), D);
    ck_assert_ptr_null(score_sde_model(NULL));
    ck_assert_ptr_null(score_sde_schedule(NULL));
    ck_assert_uint_eq(score_sde_dim(NULL), 0);
    /* swap to a different model of the same dimension */
    ck_assert_ok(score_model_new_gmm(&other, f.s, D, 1, &one, z, v));
    ck_assert_ok(score_model_new_gmm(&bad, f.s, 2, 1, &one, z, v));
    ck_assert_fails_with(score_sde_set_model(f.sde, bad), SCORE_E_SHAPE);
    ck_assert_fails_with(score_sde_set_model(f.sde, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_model(NULL, other), SCORE_E_INVAL);
    ck_assert_ok(score_sde_set_model(f.sde, other));
    ck_assert_ok(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_OUTPUT, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_score(f.sde, 1, tb + 3, xb + 3 * D, o1));
    {
        float e[D];
        ck_assert_ok(score_model_forward(other, 1, xb + 3 * D, tb + 3, e));
        for (int j = 0; j < D; j++)
            ck_assert_float_eq(o1[j], e[j]);
    }
    score_model_free(other);
    score_model_free(bad);
    fixture_free(&f);
}
END_TEST

START_TEST(schedule_copied_at_creation)
{
    score_schedule *s = make_sched(SCORE_SCHEDULE_VE);
    score_model *m;
    score_sde *sde;
    const double one = 1.0, z = 0.0, v = 1.0, t = 0.5;
    const float x = 0.5f;
    float a, b;
    ck_assert_ok(score_model_new_gmm(&m, s, 1, 1, &one, &z, &v));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_score(sde, 1, &t, &x, &a));
    score_schedule_free(s);
    ck_assert_ok(score_sde_score(sde, 1, &t, &x, &b));
    ck_assert_float_eq(a, b);
    score_sde_free(sde);
    score_model_free(m);
}
END_TEST

/* ---- parameters and bad arguments ------------------------------------------------------ */

START_TEST(parameters)
{
    fixture f;
    double v;
    int64_t iv;
    int id;
    fixture_init(&f, SCORE_SCHEDULE_VP, SCORE_OUTPUT_X0, 0, 0);
    ck_assert_ok(score_sde_get_i64(f.sde, SCORE_SDE_PARAM_OUTPUT, &iv));
    ck_assert_int_eq(iv, SCORE_OUTPUT_X0);
    ck_assert_ok(score_sde_get_f64(f.sde, SCORE_SDE_PARAM_COND_SCALE, &v));
    ck_assert_double_eq(v, 999.0);
    ck_assert_ok(score_sde_get_f64(f.sde, SCORE_SDE_PARAM_SIGMA_DATA, &v));
    ck_assert_double_eq(v, 0.5);
    ck_assert_fails_with(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_OUTPUT, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_OUTPUT, 7), SCORE_E_RANGE);
    ck_assert_ok(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_OUTPUT, 6));
    ck_assert_fails_with(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_COND, -1), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_COND, 5), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_f64(f.sde, SCORE_SDE_PARAM_SIGMA_DATA, 0.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_f64(f.sde, SCORE_SDE_PARAM_SIGMA_DATA, NAN), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_f64(f.sde, SCORE_SDE_PARAM_COND_SCALE, 1e13), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_f64(f.sde, SCORE_SDE_PARAM_OUTPUT, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_i64(f.sde, SCORE_SDE_PARAM_SIGMA_DATA, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_get_f64(f.sde, SCORE_SDE_PARAM_COND, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_f64(f.sde, 899, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_get_i64(f.sde, 700, &iv), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_set_f64(NULL, SCORE_SDE_PARAM_SIGMA_DATA, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_i64(NULL, SCORE_SDE_PARAM_COND, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_get_f64(NULL, SCORE_SDE_PARAM_SIGMA_DATA, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_get_i64(NULL, SCORE_SDE_PARAM_COND, &iv), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_get_i64(f.sde, SCORE_SDE_PARAM_COND, NULL), SCORE_E_INVAL);
    /* introspection through param.h */
    ck_assert_uint_eq(score_param_count(SCORE_OBJECT_SDE), 9);
    ck_assert_ok(score_param_from_name(SCORE_OBJECT_SDE, "obs_method", &id));
    ck_assert_int_eq(id, SCORE_SDE_PARAM_OBS_METHOD);
    ck_assert_ok(score_param_from_name(SCORE_OBJECT_SDE, "threshold", &id));
    ck_assert_int_eq(id, SCORE_SDE_PARAM_THRESHOLD);
    ck_assert_ok(score_param_from_name(SCORE_OBJECT_SDE, "obs_var", &id));
    ck_assert_int_eq(id, SCORE_SDE_PARAM_OBS_VAR);
    ck_assert_ok(score_param_from_name(SCORE_OBJECT_SDE, "obs_zeta", &id));
    ck_assert_int_eq(id, SCORE_SDE_PARAM_OBS_ZETA);
    ck_assert_ok(score_param_from_name(SCORE_OBJECT_SDE, "guidance", &id));
    ck_assert_int_eq(id, SCORE_SDE_PARAM_GUIDANCE);
    ck_assert_ok(score_param_id_at(SCORE_OBJECT_SDE, 0, &id));
    ck_assert_int_eq(id, SCORE_SDE_PARAM_OUTPUT);
    ck_assert_ok(score_param_from_name(SCORE_OBJECT_SDE, "sigma_data", &id));
    ck_assert_int_eq(id, SCORE_SDE_PARAM_SIGMA_DATA);
    fixture_free(&f);
}
END_TEST

START_TEST(bad_arguments)
{
    score_schedule *s = make_sched(SCORE_SCHEDULE_VP);
    score_model *m;
    score_sde *sde = NULL;
    const double one = 1.0, z[D] = {0}, v[D] = {1, 1, 1}, t = 0.5;
    float out[D], in[D] = {1, 2, 3};
    double d;
    ck_assert_ok(score_model_new_gmm(&m, s, D, 1, &one, z, v));
    ck_assert_fails_with(score_sde_new(NULL, s, m, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_new(&sde, NULL, m, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_new(&sde, s, NULL, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_new(&sde, s, m, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_new(&sde, s, m, 7), SCORE_E_RANGE);
    ck_assert_ptr_null(sde);
    score_sde_free(NULL);
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_fails_with(score_sde_score(NULL, 1, &t, px, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_score(sde, 1, NULL, px, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_score(sde, 1, &t, NULL, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_score(sde, 1, &t, px, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_score(sde, 1, &t, in, in), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_eps(NULL, 1, &t, px, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_x0(sde, 1, &t, NULL, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_reverse_drift(sde, 1, &t, px, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_pf_drift(sde, 1, NULL, px, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_divergence(NULL, 1, &t, px, &d, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_divergence(sde, 1, &t, px, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_divergence(sde, 1, &t, in, &d, in), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_pf_divergence(NULL, 1, &t, px, 0, NULL, &d, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_pf_divergence(sde, 1, &t, px, 0, in, &d, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_pf_divergence(sde, 1, &t, px, 1, in, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_pf_divergence(sde, 1, &t, in, 1, px, &d, in), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_coefs(NULL, 1, &t, &d, NULL, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_coefs(sde, 1, NULL, &d, NULL, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_convert(NULL, 1, 2, 1, &t, px, in, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_convert(sde, 1, 2, 1, &t, px, NULL, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_convert(sde, 1, 2, 1, &t, px, in, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_convert(sde, 1, 2, 1, &t, in, in, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_convert(sde, 0, 2, 1, &t, px, in, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_convert(sde, 1, 7, 1, &t, px, in, out), SCORE_E_RANGE);
    ck_assert_ok(score_sde_divergence(sde, 0, NULL, NULL, NULL, NULL));
    ck_assert_ok(score_sde_pf_divergence(sde, 0, NULL, NULL, 0, NULL, NULL, NULL));
    ck_assert_ok(score_sde_convert(sde, 1, 2, 0, NULL, NULL, NULL, NULL));
    ck_assert_ok(score_sde_coefs(sde, 0, NULL, NULL, NULL, NULL, NULL));
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

static Suite *sde_suite(void)
{
    Suite *s = suite_create("sde");
    TCase *tc = tcase_create("coefficients");
    tcase_add_loop_test(tc, coefs_closed_forms, 0, 7);
    tcase_add_loop_test(tc, round_trips_every_schedule, 0, 7);
    suite_add_tcase(s, tc);
    tc = tcase_create("outputs");
    tcase_add_loop_test(tc, output_kinds_reproduce_analytic_score, 0, 18);
    tcase_add_test(tc, edm_default_conditioning_reaches_model);
    suite_add_tcase(s, tc);
    tc = tcase_create("divergence");
    tcase_add_loop_test(tc, divergence_exact_paths, 0, 18);
    tcase_add_loop_test(tc, divergence_matches_fd_of_score, 0, 3);
    tcase_add_loop_test(tc, hutchinson_is_unbiased, 0, 3);
    tcase_add_test(tc, hutchinson_rademacher_exact_for_diagonal_hessian);
    tcase_add_test(tc, divergence_unsupported_without_derivatives);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, time_rules);
    tcase_add_test(tc, nfe_batching_and_model_swap);
    tcase_add_test(tc, schedule_copied_at_creation);
    tcase_add_test(tc, parameters);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(sde_suite());
}
