/* Analytic Gaussian and Gaussian-mixture models: score, Hessian-vector products and Laplacian
 * against finite differences of their own log-density, full vs diagonal covariance, closed
 * forms, exact sampling moments, the probability-flow map, and argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"

/* Finite-difference step: a power of two, and test points on a 1/64 grid, so that x +- h is
 * exactly representable in float and the differences see exactly the intended displacement. */
#define FD_H (1.0 / 1024.0)
/* First derivatives of log p (double) by central differences: truncation h^2/6 |f'''| with
 * |f'''| <~ 1/var^(3/2) ~ 30 for the variances below gives ~2e-5; round-off
 * 1e-16 |log p| / h ~ 1e-12. The score itself is returned in float (relative 6e-8). */
#define TOL_SCORE_FD 1e-4
/* Second derivatives of log p by second differences: truncation h^2/12 |f''''| ~ 1e-5 and
 * round-off 4e-16 |log p| / h^2 ~ 1e-9. */
#define TOL_HESS_FD 2e-4
/* Derivatives of the float score by central differences: round-off 2 * 6e-8 |s| / (2h) with
 * |s| <~ 10 gives ~6e-4 absolute. */
#define TOL_FLOAT_FD 3e-3
/* Two exact computations in double that differ only by float rounding of inputs/outputs. */
#define TOL_F32_REL 2e-6

static const int kinds[3] = {SCORE_SCHEDULE_VE, SCORE_SCHEDULE_VP, SCORE_SCHEDULE_SUBVP};
static const double times[3] = {0.05, 0.3, 0.8};

static score_schedule *make_sched(int kind)
{
    score_schedule *s;
    ck_assert_ok(score_schedule_new(&s, kind));
    ck_assert_ok(score_schedule_prepare(s));
    return s;
}

/* A 3-component mixture in 3 dimensions with different scales. */
enum { GD = 3, GK = 3 };
static const double gw[GK] = {0.5, 0.3, 0.2};
static const double gmu[GK * GD] = {-1.0, 0.5, 0.0, 1.5, -0.5, 1.0, 0.0, 2.0, -1.5};
static const double gvar[GK * GD] = {0.3, 0.5, 0.4, 0.6, 0.25, 0.35, 0.45, 0.3, 0.5};

static score_model *make_gmm(const score_schedule *s)
{
    score_model *m;
    ck_assert_ok(score_model_new_gmm(&m, s, GD, GK, gw, gmu, gvar));
    return m;
}

static double logp1(score_model *m, double t, const float *x)
{
    double lp;
    ck_assert_ok(score_model_analytic_logp(m, 1, &t, x, &lp));
    return lp;
}

/* Test points on the 1/64 grid. */
static void point(int i, float *x)
{
    static const float pts[4][GD] = {
        {0.25f, -0.5f, 0.75f}, {1.5f, 0.125f, -1.0f}, {-2.0f, 1.0f, 0.5f}, {0.0f, 2.5f, -0.25f}};
    for (int j = 0; j < GD; j++)
        x[j] = pts[i][j];
}

static double max_err_score, max_err_hess, max_err_trace;

START_TEST(gmm_score_matches_fd_of_logp)
{
    score_schedule *s = make_sched(kinds[_i]);
    score_model *m = make_gmm(s);
    for (int ti = 0; ti < 3; ti++) {
        double t = times[ti];
        for (int p = 0; p < 4; p++) {
            float x[GD], sc[GD];
            point(p, x);
            ck_assert_ok(score_model_forward(m, 1, x, &t, sc));
            for (int j = 0; j < GD; j++) {
                float xp[GD], xm[GD];
                double fd, err;
                point(p, xp);
                point(p, xm);
                xp[j] += (float)FD_H;
                xm[j] -= (float)FD_H;
                fd = (logp1(m, t, xp) - logp1(m, t, xm)) / (2.0 * FD_H);
                err = fabs(fd - sc[j]) / (1.0 + fabs(fd));
                if (err > max_err_score) max_err_score = err;
                ck_assert_msg(err < TOL_SCORE_FD, "kind %d t %g point %d comp %d: score %g fd %g",
                              kinds[_i], t, p, j, sc[j], fd);
            }
        }
    }
    printf("analytic: max rel error score vs FD(logp) [kind %d] = %.3g\n", kinds[_i], max_err_score);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* Hessian of log p by second differences of logp (double), at x on the grid. */
static void fd_hessian(score_model *m, double t, const float *x0, double H[GD][GD])
{
    double f0 = logp1(m, t, x0);
    for (int i = 0; i < GD; i++) {
        for (int j = 0; j < GD; j++) {
            float x[GD];
            if (i == j) {
                double fp, fm;
                for (int q = 0; q < GD; q++) x[q] = x0[q];
                x[i] += (float)FD_H;
                fp = logp1(m, t, x);
                x[i] -= (float)(2 * FD_H);
                fm = logp1(m, t, x);
                H[i][i] = (fp - 2 * f0 + fm) / (FD_H * FD_H);
            } else {
                double f[4];
                int sgn[4][2] = {{1, 1}, {1, -1}, {-1, 1}, {-1, -1}};
                for (int c = 0; c < 4; c++) {
                    for (int q = 0; q < GD; q++) x[q] = x0[q];
                    x[i] += (float)(sgn[c][0] * FD_H);
                    x[j] += (float)(sgn[c][1] * FD_H);
                    f[c] = logp1(m, t, x);
                }
                H[i][j] = (f[0] - f[1] - f[2] + f[3]) / (4 * FD_H * FD_H);
            }
        }
    }
}

START_TEST(gmm_jvp_vjp_trace_match_fd_hessian)
{
    score_schedule *s = make_sched(kinds[_i]);
    score_model *m = make_gmm(s);
    const float v[2 * GD] = {1.0f, -0.5f, 0.25f, 0.0f, 2.0f, -1.0f};
    for (int ti = 0; ti < 3; ti++) {
        double t = times[ti];
        for (int p = 0; p < 4; p++) {
            float x[GD], jv[2 * GD], uj[2 * GD], fx[GD], sc[GD];
            double H[GD][GD], tr, trfd = 0.0;
            point(p, x);
            fd_hessian(m, t, x, H);
            ck_assert_ok(score_model_jvp(m, 1, x, &t, 2, v, jv, fx));
            ck_assert_ok(score_model_vjp(m, 1, x, &t, 2, v, uj));
            ck_assert_ok(score_model_trace(m, 1, x, &t, &tr, NULL));
            ck_assert_ok(score_model_forward(m, 1, x, &t, sc));
            for (int j = 0; j < GD; j++)
                ck_assert_float_eq(fx[j], sc[j]);
            for (int q = 0; q < 2; q++) {
                for (int i = 0; i < GD; i++) {
                    double hv = 0.0, err;
                    for (int j = 0; j < GD; j++)
                        hv += H[i][j] * v[q * GD + j];
                    err = fabs(hv - jv[q * GD + i]) / (1.0 + fabs(hv));
                    if (err > max_err_hess) max_err_hess = err;
                    ck_assert_msg(err < TOL_HESS_FD, "jvp: kind %d t %g: %g vs fd %g", kinds[_i], t,
                                  jv[q * GD + i], hv);
                    /* the Jacobian of a score is symmetric: vjp == jvp */
                    ck_assert_float_eq_tol(uj[q * GD + i], jv[q * GD + i],
                                           1e-6 * (1.0 + fabs(jv[q * GD + i])));
                }
            }
            for (int i = 0; i < GD; i++)
                trfd += H[i][i];
            {
                double err = fabs(tr - trfd) / (1.0 + fabs(trfd));
                if (err > max_err_trace) max_err_trace = err;
                ck_assert_msg(err < TOL_HESS_FD, "trace: kind %d t %g: %g vs fd %g", kinds[_i], t, tr, trfd);
            }
        }
    }
    printf("analytic: max rel error jvp vs FD Hessian = %.3g, trace vs FD Laplacian = %.3g\n",
           max_err_hess, max_err_trace);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(trace_matches_fd_of_float_score)
{
    score_schedule *s = make_sched(kinds[_i]);
    score_model *m = make_gmm(s);
    double t = 0.3, maxe = 0.0;
    for (int p = 0; p < 4; p++) {
        float x[GD];
        double tr, fd = 0.0;
        point(p, x);
        ck_assert_ok(score_model_trace(m, 1, x, &t, &tr, NULL));
        for (int j = 0; j < GD; j++) {
            float xp[GD], xm[GD], sp[GD], sm[GD];
            point(p, xp);
            point(p, xm);
            xp[j] += (float)FD_H;
            xm[j] -= (float)FD_H;
            ck_assert_ok(score_model_forward(m, 1, xp, &t, sp));
            ck_assert_ok(score_model_forward(m, 1, xm, &t, sm));
            fd += ((double)sp[j] - (double)sm[j]) / (2 * FD_H);
        }
        if (fabs(tr - fd) / (1 + fabs(fd)) > maxe) maxe = fabs(tr - fd) / (1 + fabs(fd));
        ck_assert_msg(fabs(tr - fd) < TOL_FLOAT_FD * (1 + fabs(fd)), "trace %g vs FD of score %g", tr, fd);
    }
    printf("analytic: max rel error trace vs FD(float score) [kind %d] = %.3g\n", kinds[_i], maxe);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* Solves C y = b for a small SPD C by Gaussian elimination (test reference only). */
static void solve(int n, const double *C, const double *b, double *y)
{
    double A[8][9];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) A[i][j] = C[i * n + j];
        A[i][n] = b[i];
    }
    for (int c = 0; c < n; c++)
        for (int r = c + 1; r < n; r++) {
            double f = A[r][c] / A[c][c];
            for (int j = c; j <= n; j++) A[r][j] -= f * A[c][j];
        }
    for (int r = n - 1; r >= 0; r--) {
        double acc = A[r][n];
        for (int j = r + 1; j < n; j++) acc -= A[r][j] * y[j];
        y[r] = acc / A[r][r];
    }
}

enum { FD4 = 4 };
static const double fmean[FD4] = {0.5, -1.0, 0.25, 2.0};
/* Sigma = B B^T + 0.1 I with a fixed B: symmetric positive definite, strongly non-diagonal. */
static void full_cov(double *C)
{
    static const double B[FD4][FD4] = {
        {1.0, 0.2, -0.3, 0.0}, {0.5, 0.8, 0.1, -0.2}, {-0.4, 0.3, 0.9, 0.1}, {0.2, -0.6, 0.4, 0.7}};
    for (int i = 0; i < FD4; i++)
        for (int j = 0; j < FD4; j++) {
            double acc = (i == j) ? 0.1 : 0.0;
            for (int k = 0; k < FD4; k++) acc += B[i][k] * B[j][k];
            C[i * FD4 + j] = acc;
        }
}

START_TEST(full_covariance_matches_closed_form)
{
    score_schedule *s = make_sched(kinds[_i]);
    score_model *m;
    double C[FD4 * FD4], maxe = 0.0;
    full_cov(C);
    ck_assert_ok(score_model_new_gaussian(&m, s, FD4, fmean, C, NULL));
    ck_assert_int_eq(score_model_kind(m), SCORE_MODEL_GAUSSIAN);
    for (int ti = 0; ti < 3; ti++) {
        double t = times[ti], al, si, Ct[FD4 * FD4], r[FD4], y[FD4], lp, lpref, tr;
        const float x[FD4] = {0.3f, -0.7f, 1.1f, 0.4f};
        float sc[FD4], v[FD4] = {1, 0, 0, 0}, hv[FD4];
        ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t, &al, &si));
        for (int i = 0; i < FD4 * FD4; i++)
            Ct[i] = al * al * C[i] + ((i % (FD4 + 1)) == 0 ? si * si : 0.0);
        for (int i = 0; i < FD4; i++)
            r[i] = x[i] - al * fmean[i];
        solve(FD4, Ct, r, y);
        ck_assert_ok(score_model_forward(m, 1, x, &t, sc));
        for (int i = 0; i < FD4; i++) {
            double e = fabs(sc[i] + y[i]) / (1 + fabs(y[i]));
            if (e > maxe) maxe = e;
            ck_assert_msg(e < TOL_F32_REL * 10, "score %g vs closed form %g", sc[i], -y[i]);
        }
        /* log p: -1/2 r^T C^-1 r - 1/2 log det(2 pi C); det from the elimination pivots */
        {
            double A[FD4 * FD4], logdet = 0.0, q = 0.0;
            for (int i = 0; i < FD4 * FD4; i++) A[i] = Ct[i];
            for (int c = 0; c < FD4; c++) {
                for (int rr = c + 1; rr < FD4; rr++) {
                    double f = A[rr * FD4 + c] / A[c * FD4 + c];
                    for (int j = c; j < FD4; j++) A[rr * FD4 + j] -= f * A[c * FD4 + j];
                }
                logdet += log(A[c * FD4 + c]);
            }
            for (int i = 0; i < FD4; i++) q += r[i] * y[i];
            lpref = -0.5 * q - 0.5 * logdet - 0.5 * FD4 * log(2 * 3.14159265358979323846);
        }
        ck_assert_ok(score_model_analytic_logp(m, 1, &t, x, &lp));
        ck_assert_double_eq_tol(lp, lpref, 1e-9 * (1 + fabs(lpref)));
        /* Hessian column 0 = -(C^-1) e_0; trace = -tr(C^-1) */
        {
            double e0[FD4] = {1, 0, 0, 0}, col[FD4], trref = 0.0;
            solve(FD4, Ct, e0, col);
            ck_assert_ok(score_model_jvp(m, 1, x, &t, 1, v, hv, NULL));
            for (int i = 0; i < FD4; i++)
                ck_assert_double_eq_tol(hv[i], -col[i], 1e-5 * (1 + fabs(col[i])));
            for (int i = 0; i < FD4; i++) {
                double ei[FD4] = {0, 0, 0, 0}, ci[FD4];
                ei[i] = 1;
                solve(FD4, Ct, ei, ci);
                trref -= ci[i];
            }
            ck_assert_ok(score_model_trace(m, 1, x, &t, &tr, NULL));
            ck_assert_double_eq_tol(tr, trref, 1e-10 * (1 + fabs(trref)));
        }
    }
    printf("analytic: full-covariance score vs closed form, max rel error = %.3g\n", maxe);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(full_cov_larger_dimension)
{
    /* dim 40, Sigma = B B^T / 40 + 0.05 I with B uniform in [-1, 1]: the score must satisfy
     * C_t s = -(x - alpha mu) with C_t = alpha^2 Sigma + sigma^2 I (checked by a mat-vec). */
    enum { N = 40 };
    score_schedule *s = make_sched(SCORE_SCHEDULE_VP);
    score_model *m;
    score_rng *rng;
    double *B = malloc(sizeof(double) * N * N), *C = malloc(sizeof(double) * N * N);
    double mu[N], t = 0.1, al, si, worst = 0.0, tr, trref = 0.0;
    float x[N], sc[N];
    ck_assert_ptr_nonnull(B);
    ck_assert_ptr_nonnull(C);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    ck_assert_ok(score_rng_fill_uniform_f64(rng, 0, N, 0, N, B));
    ck_assert_ok(score_rng_fill_normal(rng, N, 1, 0, N, x));
    for (int i = 0; i < N; i++) mu[i] = 0.1 * i - 2.0;
    for (int i = 0; i < N * N; i++) B[i] = 2 * B[i] - 1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double acc = (i == j) ? 0.05 : 0.0;
            for (int k = 0; k < N; k++) acc += B[i * N + k] * B[j * N + k] / N;
            C[i * N + j] = acc;
        }
    ck_assert_ok(score_model_new_gaussian(&m, s, N, mu, C, NULL));
    ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t, &al, &si));
    ck_assert_ok(score_model_forward(m, 1, x, &t, sc));
    for (int i = 0; i < N; i++) {
        double cs = 0.0, r = x[i] - al * mu[i], e;
        for (int j = 0; j < N; j++)
            cs += (al * al * C[i * N + j] + (i == j ? si * si : 0.0)) * sc[j];
        e = fabs(cs + r) / (1 + fabs(r));
        if (e > worst) worst = e;
        /* float rounding of s (2^-24 relative) times the condition of C_t (~1e2 here) */
        ck_assert_msg(e < 1e-5, "row %d: C s = %g, -(x - alpha mu) = %g", i, cs, -r);
    }
    /* trace = -tr(C_t^-1): check the unit-vector jvps sum to it */
    ck_assert_ok(score_model_trace(m, 1, x, &t, &tr, NULL));
    for (int i = 0; i < N; i++) {
        float v[N] = {0}, hv[N];
        v[i] = 1.0f;
        ck_assert_ok(score_model_jvp(m, 1, x, &t, 1, v, hv, NULL));
        trref += hv[i];
    }
    ck_assert_double_eq_tol(tr, trref, 1e-5 * fabs(tr));
    printf("analytic: dim-40 full covariance, max |C s + (x - alpha mu)| (rel) = %.3g\n", worst);
    free(B);
    free(C);
    score_rng_free(rng);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(diagonal_cov_equals_var_diag_and_gmm)
{
    score_schedule *s = make_sched(kinds[_i]);
    const double var[GD] = {0.3, 1.7, 0.05};
    double cov[GD * GD] = {0};
    score_model *mf, *md, *mg;
    const double one = 1.0;
    const float x[2 * GD] = {0.1f, -2.0f, 0.7f, 3.0f, 0.0f, -0.2f};
    const float v[2 * GD] = {1.0f, 2.0f, -1.0f, 0.5f, 0.5f, 0.5f};
    const double t[2] = {0.2, 0.7};
    for (int i = 0; i < GD; i++) cov[i * GD + i] = var[i];
    ck_assert_ok(score_model_new_gaussian(&mf, s, GD, gmu, cov, NULL));
    ck_assert_ok(score_model_new_gaussian(&md, s, GD, gmu, NULL, var));
    ck_assert_ok(score_model_new_gmm(&mg, s, GD, 1, &one, gmu, var));
    {
        float a[2 * GD], b[2 * GD], c[2 * GD];
        double ta[2], tb[2], tc[2], la[2], lb[2], lc[2];
        ck_assert_ok(score_model_forward(mf, 2, x, t, a));
        ck_assert_ok(score_model_forward(md, 2, x, t, b));
        ck_assert_ok(score_model_forward(mg, 2, x, t, c));
        for (int i = 0; i < 2 * GD; i++) {
            ck_assert_float_eq_tol(a[i], b[i], TOL_F32_REL * (1 + fabs(b[i])));
            ck_assert_float_eq(b[i], c[i]);
        }
        ck_assert_ok(score_model_jvp(mf, 2, x, t, 1, v, a, NULL));
        ck_assert_ok(score_model_jvp(md, 2, x, t, 1, v, b, NULL));
        for (int i = 0; i < 2 * GD; i++)
            ck_assert_float_eq_tol(a[i], b[i], TOL_F32_REL * (1 + fabs(b[i])));
        ck_assert_ok(score_model_trace(mf, 2, x, t, ta, NULL));
        ck_assert_ok(score_model_trace(md, 2, x, t, tb, NULL));
        ck_assert_ok(score_model_trace(mg, 2, x, t, tc, NULL));
        ck_assert_ok(score_model_analytic_logp(mf, 2, t, x, la));
        ck_assert_ok(score_model_analytic_logp(md, 2, t, x, lb));
        ck_assert_ok(score_model_analytic_logp(mg, 2, t, x, lc));
        for (int i = 0; i < 2; i++) {
            ck_assert_double_eq_tol(ta[i], tb[i], 1e-12 * fabs(tb[i]));
            ck_assert_double_eq_tol(tb[i], tc[i], 1e-12 * fabs(tb[i]));
            ck_assert_double_eq_tol(la[i], lb[i], 1e-12 * (1 + fabs(lb[i])));
            ck_assert_double_eq_tol(lb[i], lc[i], 1e-12 * (1 + fabs(lb[i])));
        }
    }
    score_model_free(mf);
    score_model_free(md);
    score_model_free(mg);
    score_schedule_free(s);
}
END_TEST

START_TEST(far_points_are_stable)
{
    /* 1e4 away from every component: the densities underflow, the log-sum-exp must not. */
    score_schedule *s = make_sched(SCORE_SCHEDULE_VP);
    score_model *m = make_gmm(s);
    const float x[GD] = {1e4f, -1e4f, 5e3f};
    double t = 0.01, lp, tr;
    float sc[GD];
    ck_assert_ok(score_model_forward(m, 1, x, &t, sc));
    ck_assert_ok(score_model_trace(m, 1, x, &t, &tr, NULL));
    ck_assert_ok(score_model_analytic_logp(m, 1, &t, x, &lp));
    ck_assert(isfinite(lp) && isfinite(tr));
    for (int j = 0; j < GD; j++)
        ck_assert(isfinite(sc[j]) && fabs(sc[j]) > 1e3);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* Mixture moments of p_t: mean alpha sum pi mu, variance sum pi (alpha^2 (v + mu^2) + sigma^2) - mean^2. */
START_TEST(sample_moments_and_batch_invariance)
{
    enum { N = 40000 };
    score_schedule *s = make_sched(kinds[_i]);
    score_model *m = make_gmm(s);
    score_rng *rng;
    float *x = malloc(sizeof(float) * N * GD), y[10 * GD];
    double t = 0.3, al, si, maxz = 0.0;
    ck_assert_ptr_nonnull(x);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 42));
    ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t, &al, &si));
    ck_assert_ok(score_model_analytic_sample(m, rng, t, N, x));
    for (int j = 0; j < GD; j++) {
        double mean = 0, m2 = 0, em = 0, e2 = 0, var, se_mean, se_var, m4 = 0;
        for (int k = 0; k < GK; k++) {
            em += gw[k] * al * gmu[k * GD + j];
            e2 += gw[k] * (al * al * (gvar[k * GD + j] + gmu[k * GD + j] * gmu[k * GD + j]) + si * si);
        }
        var = e2 - em * em;
        for (int i = 0; i < N; i++) mean += x[i * GD + j];
        mean /= N;
        for (int i = 0; i < N; i++) {
            double d = x[i * GD + j] - mean;
            m2 += d * d;
            m4 += d * d * d * d;
        }
        m2 /= N - 1;
        m4 /= N;
        /* Monte-Carlo standard errors: sqrt(var / N) for the mean, sqrt((m4 - var^2) / N) for
         * the variance; 5 standard errors make a false failure < 1e-6. */
        se_mean = sqrt(var / N);
        se_var = sqrt((m4 - var * var) / N);
        ck_assert_msg(fabs(mean - em) < 5 * se_mean, "mean %g vs %g (se %g)", mean, em, se_mean);
        ck_assert_msg(fabs(m2 - var) < 5 * se_var, "var %g vs %g (se %g)", m2, var, se_var);
        if (fabs(mean - em) / se_mean > maxz) maxz = fabs(mean - em) / se_mean;
        if (fabs(m2 - var) / se_var > maxz) maxz = fabs(m2 - var) / se_var;
    }
    printf("analytic: sample moments [kind %d], worst |z| = %.2f\n", kinds[_i], maxz);
    /* row i depends only on rng row i */
    ck_assert_ok(score_model_analytic_sample(m, rng, t, 10, y));
    for (int i = 0; i < 10 * GD; i++)
        ck_assert_float_eq(y[i], x[i]);
    free(x);
    score_rng_free(rng);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(full_cov_sample_covariance)
{
    enum { N = 40000 };
    score_schedule *s = make_sched(SCORE_SCHEDULE_VP);
    score_model *m;
    score_rng *rng;
    double C[FD4 * FD4], t = 0.2, al, si;
    float *x = malloc(sizeof(float) * N * FD4);
    ck_assert_ptr_nonnull(x);
    full_cov(C);
    ck_assert_ok(score_model_new_gaussian(&m, s, FD4, fmean, C, NULL));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 7));
    ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t, &al, &si));
    ck_assert_ok(score_model_analytic_sample(m, rng, t, N, x));
    for (int i = 0; i < FD4; i++) {
        for (int j = 0; j < FD4; j++) {
            double ci = 0, cj = 0, cij = 0, ref = al * al * C[i * FD4 + j] + (i == j ? si * si : 0);
            double vi = al * al * C[i * FD4 + i] + si * si, vj = al * al * C[j * FD4 + j] + si * si;
            for (int r = 0; r < N; r++) { ci += x[r * FD4 + i]; cj += x[r * FD4 + j]; }
            ci /= N;
            cj /= N;
            for (int r = 0; r < N; r++) cij += (x[r * FD4 + i] - ci) * (x[r * FD4 + j] - cj);
            cij /= N - 1;
            /* standard error of a Gaussian sample covariance: sqrt((ref^2 + vi vj) / N) */
            ck_assert_msg(fabs(cij - ref) < 5 * sqrt((ref * ref + vi * vj) / N),
                          "cov[%d][%d] %g vs %g", i, j, cij, ref);
        }
    }
    free(x);
    score_rng_free(rng);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(pf_map_properties)
{
    score_schedule *s = make_sched(kinds[_i]);
    score_model *m;
    double C[FD4 * FD4];
    const float x[2 * FD4] = {0.3f, -0.7f, 1.1f, 0.4f, -2.0f, 0.5f, 0.0f, 1.0f};
    float y[2 * FD4], z[2 * FD4], w[2 * FD4];
    double t0 = 0.6, t1 = 0.25, t2 = 0.05, maxe = 0.0;
    full_cov(C);
    ck_assert_ok(score_model_new_gaussian(&m, s, FD4, fmean, C, NULL));
    /* identity */
    ck_assert_ok(score_model_analytic_pf_map(m, t0, t0, 2, x, y));
    for (int i = 0; i < 2 * FD4; i++)
        ck_assert_float_eq_tol(y[i], x[i], 1e-6 * (1 + fabs(x[i])));
    /* composition t0 -> t1 -> t2 == t0 -> t2, and inverse t2 -> t0 */
    ck_assert_ok(score_model_analytic_pf_map(m, t0, t1, 2, x, y));
    ck_assert_ok(score_model_analytic_pf_map(m, t1, t2, 2, y, z));
    ck_assert_ok(score_model_analytic_pf_map(m, t0, t2, 2, x, w));
    for (int i = 0; i < 2 * FD4; i++) {
        if (fabs(z[i] - w[i]) / (1 + fabs(w[i])) > maxe) maxe = fabs(z[i] - w[i]) / (1 + fabs(w[i]));
        ck_assert_float_eq_tol(z[i], w[i], 1e-5 * (1 + fabs(w[i])));
    }
    ck_assert_ok(score_model_analytic_pf_map(m, t2, t0, 2, w, w)); /* in place */
    for (int i = 0; i < 2 * FD4; i++)
        ck_assert_float_eq_tol(w[i], x[i], 1e-4 * (1 + fabs(x[i])));
    /* the map is affine x -> alpha1 mu + M (x - alpha0 mu) with M C0 M^T = C1 */
    {
        double a0, s0, a1, s1, M[FD4][FD4], C0[FD4 * FD4], C1[FD4 * FD4];
        float base[FD4], img[FD4], b2[FD4];
        ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t0, &a0, &s0));
        ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t1, &a1, &s1));
        for (int i = 0; i < FD4; i++) base[i] = (float)(a0 * fmean[i]);
        ck_assert_ok(score_model_analytic_pf_map(m, t0, t1, 1, base, img));
        for (int i = 0; i < FD4; i++)
            ck_assert_double_eq_tol(img[i], a1 * fmean[i], 1e-5);
        for (int j = 0; j < FD4; j++) {
            float out[FD4];
            for (int i = 0; i < FD4; i++) b2[i] = base[i] + (i == j ? 1.0f : 0.0f);
            ck_assert_ok(score_model_analytic_pf_map(m, t0, t1, 1, b2, out));
            for (int i = 0; i < FD4; i++) M[i][j] = (double)out[i] - (double)img[i];
        }
        for (int i = 0; i < FD4 * FD4; i++) {
            C0[i] = a0 * a0 * C[i] + ((i % (FD4 + 1)) == 0 ? s0 * s0 : 0.0);
            C1[i] = a1 * a1 * C[i] + ((i % (FD4 + 1)) == 0 ? s1 * s1 : 0.0);
        }
        for (int i = 0; i < FD4; i++)
            for (int j = 0; j < FD4; j++) {
                double acc = 0.0;
                for (int p = 0; p < FD4; p++)
                    for (int q = 0; q < FD4; q++)
                        acc += M[i][p] * C0[p * FD4 + q] * M[j][q];
                ck_assert_double_eq_tol(acc, C1[i * FD4 + j], 1e-4 * (1 + fabs(C1[i * FD4 + j])));
            }
    }
    /* d/dt of the map at t0 is the probability-flow drift f x - g^2/2 s (central difference in t,
     * h_t = 1e-3: truncation ~1e-7 relative, float round-off 6e-8 / 1e-3 ~ 1e-4 of |x|). */
    {
        double ht = 1e-3, tp = t1 + ht, tm = t1 - ht, f, g;
        float xp[FD4], xm[FD4], sc[FD4];
        ck_assert_ok(score_model_analytic_pf_map(m, t1, tp, 1, x, xp));
        ck_assert_ok(score_model_analytic_pf_map(m, t1, tm, 1, x, xm));
        ck_assert_ok(score_model_forward(m, 1, x, &t1, sc));
        ck_assert_ok(score_schedule_sde_coefs(s, 1, &t1, &f, &g));
        for (int i = 0; i < FD4; i++) {
            double drift = f * x[i] - 0.5 * g * g * sc[i];
            double fd = ((double)xp[i] - (double)xm[i]) / (2 * ht);
            ck_assert_msg(fabs(fd - drift) < 2e-3 * (1 + fabs(drift)), "pf drift %g vs map FD %g",
                          drift, fd);
        }
    }
    printf("analytic: pf_map composition max rel error [kind %d] = %.3g\n", kinds[_i], maxe);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(clone_and_capabilities)
{
    score_schedule *s = make_sched(SCORE_SCHEDULE_VE);
    score_model *m = make_gmm(s), *c;
    float x[GD] = {0.5f, 0.5f, 0.5f}, a[GD], b[GD];
    double t = 0.4;
    uint32_t caps = score_model_capabilities(m);
    ck_assert(caps & SCORE_MODEL_CAP_JVP);
    ck_assert(caps & SCORE_MODEL_CAP_VJP);
    ck_assert(caps & SCORE_MODEL_CAP_TRACE);
    ck_assert(!(caps & SCORE_MODEL_CAP_PARAMS));
    ck_assert(!(caps & SCORE_MODEL_CAP_BACKWARD));
    ck_assert_int_eq(score_model_kind(m), SCORE_MODEL_GMM);
    ck_assert_uint_eq(score_model_dim(m), GD);
    ck_assert_uint_eq(score_model_param_count(m), 0);
    ck_assert_ok(score_model_forward(m, 1, x, &t, a));
    ck_assert_ok(score_model_clone(&c, m));
    score_model_free(m);
    score_schedule_free(s); /* the clone owns its own schedule copy */
    ck_assert_ok(score_model_forward(c, 1, x, &t, b));
    for (int i = 0; i < GD; i++)
        ck_assert_float_eq(a[i], b[i]);
    ck_assert_fails_with(score_model_backward(c, 1, a, NULL, b), SCORE_E_UNSUPPORTED);
    score_model_free(c);
}
END_TEST

START_TEST(bad_arguments)
{
    score_schedule *s = make_sched(SCORE_SCHEDULE_VP);
    score_model *m = NULL, *g, *cb;
    const double mean[2] = {0, 0}, var[2] = {1, 1}, cov[4] = {1, 0.5, 0.5, 1};
    const double badcov[4] = {1, 0.5, 0.4, 1}, notpd[4] = {1, 2, 2, 1}, w[2] = {1, 1};
    const double negv[2] = {1, -1}, nanm[2] = {NAN, 0}, zerow[2] = {0, 1};
    float x[4] = {0}, out[4];
    double t = 0.5, tn = NAN, tbig = 2.0, lp[2];
    score_rng *rng;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1));

    ck_assert_fails_with(score_model_new_gaussian(NULL, s, 2, mean, NULL, var), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gaussian(&m, NULL, 2, mean, NULL, var), SCORE_E_INVAL);
    ck_assert_ptr_null(m);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 2, NULL, NULL, var), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 2, mean, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 2, mean, cov, var), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 0, mean, NULL, var), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 5000, mean, NULL, var), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 2, nanm, NULL, var), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 2, mean, NULL, negv), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 2, mean, badcov, NULL), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gaussian(&m, s, 2, mean, notpd, NULL), SCORE_E_RANGE);
    ck_assert_ptr_null(m);

    ck_assert_fails_with(score_model_new_gmm(NULL, s, 2, 2, w, (double[4]){0}, (double[4]){1, 1, 1, 1}), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 2, 2, NULL, (double[4]){0}, (double[4]){1, 1, 1, 1}), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 2, 2, w, NULL, (double[4]){1, 1, 1, 1}), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 2, 2, w, (double[4]){0}, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gmm(&m, NULL, 2, 2, w, (double[4]){0}, (double[4]){1, 1, 1, 1}), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 2, 0, w, (double[4]){0}, (double[4]){1, 1, 1, 1}), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 0, 2, w, (double[4]){0}, (double[4]){1, 1, 1, 1}), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 2, 2, zerow, (double[4]){0}, (double[4]){1, 1, 1, 1}), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 2, 2, w, (double[4]){0, INFINITY, 0, 0}, (double[4]){1, 1, 1, 1}), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_gmm(&m, s, 2, 2, w, (double[4]){0}, (double[4]){1, 0, 1, 1}), SCORE_E_RANGE);
    ck_assert_ptr_null(m);

    ck_assert_ok(score_model_new_gaussian(&g, s, 2, mean, cov, NULL));
    /* times */
    ck_assert_fails_with(score_model_forward(g, 1, x, &tn, out), SCORE_E_NUMERIC);
    ck_assert_fails_with(score_model_forward(g, 1, x, &tbig, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_jvp(g, 1, x, &tbig, 1, x, out, NULL), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_trace(g, 1, x, &tbig, lp, NULL), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_analytic_logp(g, 1, &tbig, x, lp), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_analytic_sample(g, rng, tn, 1, out), SCORE_E_NUMERIC);
    ck_assert_fails_with(score_model_analytic_pf_map(g, 0.5, tbig, 1, x, out), SCORE_E_RANGE);
    {
        double t0 = 0.0; /* t = 0 is valid for the analytic model: the data score */
        ck_assert_ok(score_model_forward(g, 1, x, &t0, out));
    }
    /* NULLs */
    ck_assert_fails_with(score_model_analytic_logp(NULL, 1, &t, x, lp), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_logp(g, 1, NULL, x, lp), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_logp(g, 1, &t, NULL, lp), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_logp(g, 1, &t, x, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_model_analytic_logp(g, 0, NULL, NULL, NULL));
    ck_assert_fails_with(score_model_analytic_sample(NULL, rng, t, 1, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_sample(g, NULL, t, 1, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_sample(g, rng, t, 1, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_pf_map(NULL, t, t, 1, x, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_pf_map(g, t, t, 1, NULL, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_analytic_pf_map(g, t, t, 1, x, NULL), SCORE_E_INVAL);
    /* kinds */
    ck_assert_ok(score_model_new_gmm(&m, s, 2, 2, w, (double[4]){0}, (double[4]){1, 1, 1, 1}));
    ck_assert_fails_with(score_model_analytic_pf_map(m, t, t, 1, x, out), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_set_f64(m, SCORE_MODEL_PARAM_GUIDANCE, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 8), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_model_new_sum(&cb, 1, &m, NULL));
    ck_assert_fails_with(score_model_analytic_logp(cb, 1, &t, x, lp), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_analytic_sample(cb, rng, t, 1, out), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_analytic_pf_map(cb, t, t, 1, x, out), SCORE_E_UNSUPPORTED);
    score_model_free(cb);
    score_model_free(m);
    score_model_free(g);
    score_rng_free(rng);
    score_schedule_free(s);
}
END_TEST

static Suite *analytic_suite(void)
{
    Suite *s = suite_create("model-analytic");
    TCase *tc = tcase_create("numerics");
    tcase_add_loop_test(tc, gmm_score_matches_fd_of_logp, 0, 3);
    tcase_add_loop_test(tc, gmm_jvp_vjp_trace_match_fd_hessian, 0, 3);
    tcase_add_loop_test(tc, trace_matches_fd_of_float_score, 0, 3);
    tcase_add_loop_test(tc, full_covariance_matches_closed_form, 0, 3);
    tcase_add_test(tc, full_cov_larger_dimension);
    tcase_add_loop_test(tc, diagonal_cov_equals_var_diag_and_gmm, 0, 3);
    tcase_add_test(tc, far_points_are_stable);
    suite_add_tcase(s, tc);
    tc = tcase_create("sampling");
    tcase_add_loop_test(tc, sample_moments_and_batch_invariance, 0, 3);
    tcase_add_test(tc, full_cov_sample_covariance);
    tcase_add_loop_test(tc, pf_map_properties, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, clone_and_capabilities);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(analytic_suite());
}
