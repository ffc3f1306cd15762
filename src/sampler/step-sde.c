/* Stochastic steps: reverse-SDE predictors (Euler-Maruyama, reverse diffusion, ancestral),
 * Euler ancestral, Langevin and annealed-Langevin correctors, DDIM, and the identity. Written
 * over the state type of step-real.h: compiled for a float state and, from step-sde-f64.c, for
 * a double state (the noise is the float state's normals, widened). */
#include <math.h>
#include <string.h>

#include "step-real.h"

/* per-row arrays (indices into st->dbl; NDBL - 2 and NDBL - 1 are reserved by step.c) */
enum { R_A, R_SG, R_AN, R_SGN, R_F, R_G, R_EPS, R_N1, R_N2 };

static int ends(score_step *st, const score__step_call *c)
{
    int rc = score__step_alpha_sigma(c, c->n, c->t, st->dbl[R_A], st->dbl[R_SG]);
    if (rc == SCORE_OK)
        rc = score__step_alpha_sigma(c, c->n, c->tn, st->dbl[R_AN], st->dbl[R_SGN]);
    return rc;
}

/* The score at (t, x) into sc, then the step's noise into z: what every score-driven
 * stochastic step does after computing its coefficients. */
static int score_and_noise(score_step *st, const score__step_call *c, score__real *sc,
                           score__real *z)
{
    int rc = SCORE__R(score__step_score)(st, c, c->t, SCORE__CX(c), sc);
    if (rc == SCORE_OK)
        SCORE__R(score__step_noise)(c, 0, z);
    return rc;
}

int SCORE__R(score__step_em)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *sc = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double *f = st->dbl[R_F], *g = st->dbl[R_G];
    int rc = score__step_sde_coefs(c, n, c->t, f, g);
    if (rc == SCORE_OK)
        rc = score_and_noise(st, c, sc, z);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double dt = c->tn[i] - c->t[i], g2 = g[i] * g[i], amp = g[i] * sqrt(-dt);
        score__real *xr = SCORE__CX(c) + i * dim;
        const score__real *sr = sc + i * dim, *zr = z + i * dim;
        for (size_t j = 0; j < dim; j++) {
            double xv = xr[j];
            xr[j] = (score__real)(xv + (f[i] * xv - g2 * (double)sr[j]) * dt + amp * (double)zr[j]);
        }
    }
    return SCORE_OK;
}

/* (f_i, G_i) of the reverse-diffusion and ancestral steps: the schedule's discretization with
 * N = DISC_N, or the exact forward transition from t' to t. */
static int transition(score_step *st, const score__step_call *c)
{
    double *f = st->dbl[R_F], *G = st->dbl[R_G];
    int64_t N = SCORE__STEP_I64(st, SCORE_STEP_PARAM_DISC_N);
    int rc = ends(st, c);
    if (rc != SCORE_OK)
        return rc;
    if (N > 0)
        return score_schedule_discretize(c->sched, (size_t)N, c->n, c->t, f, G);
    for (size_t i = 0; i < c->n; i++) {
        double a = st->dbl[R_A][i], sg = st->dbl[R_SG][i];
        double an = st->dbl[R_AN][i], sgn = st->dbl[R_SGN][i];
        double r = a / an, g2 = sg * sg - r * r * sgn * sgn;
        f[i] = r - 1.0;
        G[i] = sqrt(fmax(g2, 0.0));
    }
    return SCORE_OK;
}

int SCORE__R(score__step_reverse_diffusion)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *sc = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double *f = st->dbl[R_F], *G = st->dbl[R_G];
    int rc = transition(st, c);
    if (rc == SCORE_OK)
        rc = score_and_noise(st, c, sc, z);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double g2 = G[i] * G[i];
        score__real *xr = SCORE__CX(c) + i * dim;
        const score__real *sr = sc + i * dim, *zr = z + i * dim;
        for (size_t j = 0; j < dim; j++) {
            double xv = xr[j];
            xr[j] = (score__real)(xv - f[i] * xv + g2 * (double)sr[j] + G[i] * (double)zr[j]);
        }
    }
    return SCORE_OK;
}

int SCORE__R(score__step_ancestral)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *sc = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double *f = st->dbl[R_F], *G = st->dbl[R_G], *sg = st->dbl[R_SG];
    int ve = score_schedule_is_variance_exploding(c->sched) == 1;
    int rc = transition(st, c);
    if (rc == SCORE_OK)
        rc = score_and_noise(st, c, sc, z);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double g2 = G[i] * G[i], scale, amp;
        score__real *xr = SCORE__CX(c) + i * dim;
        const score__real *sr = sc + i * dim, *zr = z + i * dim;
        if (ve) {
            /* x + (sigma_i^2 - sigma_{i-1}^2) s, std sqrt(sigma_{i-1}^2 G^2 / sigma_i^2) */
            double prev2 = fmax(sg[i] * sg[i] - g2, 0.0);
            scale = 1.0;
            amp = sqrt(prev2 * g2) / sg[i];
        } else {
            /* (x + beta_i s) / sqrt(1 - beta_i), std sqrt(beta_i) */
            scale = 1.0 / (1.0 + f[i]);
            amp = G[i];
        }
        for (size_t j = 0; j < dim; j++)
            xr[j] = (score__real)(scale * ((double)xr[j] + g2 * (double)sr[j]) +
                                  amp * (double)zr[j]);
    }
    return SCORE_OK;
}

/* Shared start of the eta-controlled steps (Euler-ancestral, DDIM): the end-point
 * coefficients, the data prediction d at t, and the noise z when eta > 0. */
static int x0_and_noise(score_step *st, const score__step_call *c, double eta, score__real *d,
                        score__real *z)
{
    int rc = ends(st, c);
    if (rc != SCORE_OK)
        return rc;
    rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), d);
    if (rc != SCORE_OK)
        return rc;
    if (eta > 0.0)
        SCORE__R(score__step_noise)(c, 0, z);
    return SCORE_OK;
}

int SCORE__R(score__step_euler_ancestral)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *d = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double eta = score__step_eta(st);
    int rc = x0_and_noise(st, c, eta, d, z);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double a = st->dbl[R_A][i], an = st->dbl[R_AN][i];
        double s = st->dbl[R_SG][i] / a, sn = st->dbl[R_SGN][i] / an;
        double up = 0.0, down, r;
        score__real *xr = SCORE__CX(c) + i * dim;
        const score__real *dr = d + i * dim, *zr = z + i * dim;
        if (eta > 0.0) {
            up = eta * sqrt(fmax(sn * sn * (s * s - sn * sn), 0.0)) / s;
            if (up > sn)
                up = sn;
        }
        down = sqrt(fmax(sn * sn - up * up, 0.0));
        r = down / s;
        for (size_t j = 0; j < dim; j++) {
            double y = r * (double)xr[j] / a + (1.0 - r) * (double)dr[j];
            if (eta > 0.0)
                y += up * (double)zr[j];
            xr[j] = (score__real)(an * y);
        }
    }
    return SCORE_OK;
}

/* Langevin update x + e s + sqrt(2 e) z with per-row step sizes in R_EPS. */
static void langevin_update(score_step *st, const score__step_call *c, const score__real *sc,
                            const score__real *z)
{
    size_t dim = c->dim;
    const double *eps = st->dbl[R_EPS];
    for (size_t i = 0; i < c->n; i++) {
        double e = eps[i], amp = sqrt(2.0 * e);
        score__real *xr = SCORE__CX(c) + i * dim;
        const score__real *sr = sc + i * dim, *zr = z + i * dim;
        for (size_t j = 0; j < dim; j++)
            xr[j] = (score__real)((double)xr[j] + e * (double)sr[j] + amp * (double)zr[j]);
    }
}

/* alpha_i = alpha(t)^2 / alpha(t')^2 of score_sde's discrete table, 1 when t' >= t or t' = 0. */
static double alpha_i(const score_step *st, const score__step_call *c, size_t i)
{
    if (c->tn[i] > 0.0 && c->tn[i] < c->t[i]) {
        double r = st->dbl[R_A][i] / st->dbl[R_AN][i];
        return r * r;
    }
    return 1.0;
}

int SCORE__R(score__step_langevin)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *sc = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double *eps = st->dbl[R_EPS], *nz = st->dbl[R_N1], *ns = st->dbl[R_N2];
    double fixed = SCORE__STEP_F64(st, SCORE_STEP_PARAM_STEP_SIZE);
    double snr = SCORE__STEP_F64(st, SCORE_STEP_PARAM_SNR);
    int64_t rule = SCORE__STEP_I64(st, SCORE_STEP_PARAM_SNR_NORM);
    int batch = rule == 0;
    int rc = ends(st, c);
    if (rc == SCORE_OK)
        rc = score_and_noise(st, c, sc, z);
    if (rc != SCORE_OK)
        return rc;
    if (fixed > 0.0) {
        for (size_t i = 0; i < n; i++)
            eps[i] = fixed;
    } else if (rule == 2) {
        /* the ratio of the norms replaced by its noise-level estimate
         * E norm(z)^2 / E norm(score)^2 = sigma(t)^2 (exact where the data's spread is small
         * against the noise): a function of the row's time only, whatever the other rows */
        for (size_t i = 0; i < n; i++) {
            double q = snr * st->dbl[R_SG][i];
            eps[i] = 2.0 * alpha_i(st, c, i) * q * q;
        }
    } else {
        double mz = 0.0, ms = 0.0;
        for (size_t i = 0; i < n; i++) {
            double az = 0.0, as = 0.0;
            for (size_t j = 0; j < dim; j++) {
                az += (double)z[i * dim + j] * z[i * dim + j];
                as += (double)sc[i * dim + j] * sc[i * dim + j];
            }
            nz[i] = sqrt(az);
            ns[i] = sqrt(as);
            mz += nz[i];
            ms += ns[i];
        }
        mz /= (double)n;
        ms /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double num = batch ? mz : nz[i], den = batch ? ms : ns[i];
            double q = den > 0.0 ? snr * num / den : 0.0;
            eps[i] = 2.0 * alpha_i(st, c, i) * q * q;
        }
    }
    langevin_update(st, c, sc, z);
    return SCORE_OK;
}

int SCORE__R(score__step_ald)(score_step *st, const score__step_call *c)
{
    size_t n = c->n;
    score__real *sc = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double *eps = st->dbl[R_EPS], *sg = st->dbl[R_SG];
    double lr = SCORE__STEP_F64(st, SCORE_STEP_PARAM_STEP_LR);
    double ref = SCORE__STEP_F64(st, SCORE_STEP_PARAM_SIGMA_REF);
    double snr = SCORE__STEP_F64(st, SCORE_STEP_PARAM_SNR);
    int rc = ends(st, c);
    if (rc != SCORE_OK)
        return rc;
    if (lr > 0.0 && !(ref > 0.0)) {
        double teps, aeps;
        rc = score_schedule_get_f64(c->sched, SCORE_SCHEDULE_PARAM_T_EPS, &teps);
        if (rc == SCORE_OK)
            rc = score_schedule_alpha_sigma(c->sched, 1, &teps, &aeps, &ref);
        if (rc != SCORE_OK)
            return rc;
    }
    rc = score_and_noise(st, c, sc, z);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (lr > 0.0) {
            double r = sg[i] / ref;
            eps[i] = lr * r * r;
        } else {
            double q = snr * sg[i];
            eps[i] = 2.0 * alpha_i(st, c, i) * q * q;
        }
    }
    langevin_update(st, c, sc, z);
    return SCORE_OK;
}

int SCORE__R(score__step_ddim)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *d = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double eta = score__step_eta(st);
    int rc = x0_and_noise(st, c, eta, d, z);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double a = st->dbl[R_A][i], sg = st->dbl[R_SG][i];
        double an = st->dbl[R_AN][i], sgn = st->dbl[R_SGN][i];
        double s = sg / a, sn = sgn / an, se = 0.0, ce;
        score__real *xr = SCORE__CX(c) + i * dim;
        const score__real *dr = d + i * dim, *zr = z + i * dim;
        if (eta > 0.0) {
            double q = sn / s;
            se = eta * sgn * sqrt(fmax(1.0 - q * q, 0.0));
            if (se > sgn)
                se = sgn;
        }
        ce = sqrt(fmax(sgn * sgn - se * se, 0.0)) / sg; /* coefficient of eps_hat / sigma */
        for (size_t j = 0; j < dim; j++) {
            double dv = dr[j], ehat_sg = (double)xr[j] - a * dv; /* sigma * eps_hat */
            double v = an * dv + ce * ehat_sg;
            if (eta > 0.0)
                v += se * (double)zr[j];
            xr[j] = (score__real)v;
        }
    }
    return SCORE_OK;
}

#ifndef SCORE__STEP_REAL64 /* the double-state identity is in step-eval.c */
int score__step_none(score_step *st, const score__step_call *c)
{
    (void)st;
    (void)c;
    return SCORE_OK;
}
#endif
