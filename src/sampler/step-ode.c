/* Probability-flow ODE solvers in the EDM variables: y = x / alpha as a function of the noise
 * level s = sigma / alpha, dy/ds = (y - D(x, t)) / s. Euler, Heun (EDM Algorithm 2 with
 * optional churn), midpoint, RK4 and Dormand-Prince 5(4) with an error estimate and FSAL. */
#include <math.h>
#include <string.h>

#include "step-real.h"

/* per-row arrays (indices into st->dbl; NDBL - 2 and NDBL - 1 are reserved by step.c) */
enum {
    R_A,
    R_SG,
    R_AN,
    R_SGN,
    R_S,
    R_SN,
    R_H,
    R_TS,
    R_AS,
    R_SGS,
    R_SS,
    R_G,
    R_THAT,
    R_AHAT,
    R_SHAT
};

#ifndef SCORE__STEP_REAL64 /* the tableau is defined once (declared in adapt-priv.h) */
const double score__dp5_c[7] = {0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0};
const double score__dp5_a[7][6] = {
    {0, 0, 0, 0, 0, 0},
    {1.0 / 5.0, 0, 0, 0, 0, 0},
    {3.0 / 40.0, 9.0 / 40.0, 0, 0, 0, 0},
    {44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0, 0, 0},
    {19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0, 0},
    {9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0},
    {35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0},
};
const double score__dp5_b[7] = {35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0,
                                -2187.0 / 6784.0, 11.0 / 84.0, 0.0};
const double score__dp5_e[7] = {71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0,
                                -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0};
#endif

/* alpha, sigma, s at both end points, and h = s' - s. */
static int endpoints(score_step *st, const score__step_call *c)
{
    double *a = st->dbl[R_A], *sg = st->dbl[R_SG], *an = st->dbl[R_AN], *sgn = st->dbl[R_SGN];
    double *s = st->dbl[R_S], *sn = st->dbl[R_SN], *h = st->dbl[R_H];
    int rc = score__step_alpha_sigma(c, c->n, c->t, a, sg);
    if (rc != SCORE_OK)
        return rc;
    rc = score__step_alpha_sigma(c, c->n, c->tn, an, sgn);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++) {
        s[i] = sg[i] / a[i];
        sn[i] = sgn[i] / an[i];
        h[i] = sn[i] - s[i];
    }
    return SCORE_OK;
}

int SCORE__R(score__step_euler)(score_step *st, const score__step_call *c)
{
    size_t dim = c->dim;
    score__real *d = SCORE__BUF(st, 0);
    double *a, *sg, *an, *s, *sn;
    int rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    a = st->dbl[R_A];
    sg = st->dbl[R_SG];
    an = st->dbl[R_AN];
    s = st->dbl[R_S];
    sn = st->dbl[R_SN];
    rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), d);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++) {
        /* y' = (s'/s) y + (1 - s'/s) D, x' = alpha' y' */
        double r = sn[i] / s[i];
        double cx = an[i] * r / a[i], cd = an[i] * (1.0 - r);
        score__real *xr = SCORE__CX(c) + i * dim;
        const score__real *dr = d + i * dim;
        (void)sg;
        for (size_t j = 0; j < dim; j++)
            xr[j] = (score__real)(cx * (double)xr[j] + cd * (double)dr[j]);
    }
    return SCORE_OK;
}

int SCORE__R(score__step_heun)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *k1 = SCORE__BUF(st, 0), *k2 = SCORE__BUF(st, 1), *xh = SCORE__BUF(st, 2),
                *xe = SCORE__BUF(st, 3), *d = SCORE__BUF(st, 4), *z = SCORE__BUF(st, 5);
    double *a, *an, *s, *sn, *that, *ahat, *shat, *sghat = st->dbl[R_SGS];
    double gamma = SCORE__STEP_F64(st, SCORE_STEP_PARAM_CHURN);
    double tmin = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_TMIN);
    double tmax = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_TMAX);
    double snoise = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_NOISE);
    int churn = 0, rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    a = st->dbl[R_A];
    an = st->dbl[R_AN];
    s = st->dbl[R_S];
    sn = st->dbl[R_SN];
    that = st->dbl[R_THAT];
    ahat = st->dbl[R_AHAT];
    shat = st->dbl[R_SHAT];
    /* churn: s_hat = s (1 + gamma), capped at the schedule's s(T) */
    if (gamma > 0.0) {
        double T, aT, sT;
        rc = score_schedule_get_f64(c->sched, SCORE_SCHEDULE_PARAM_T, &T);
        if (rc == SCORE_OK)
            rc = score_schedule_alpha_sigma(c->sched, 1, &T, &aT, &sT);
        if (rc != SCORE_OK)
            return rc;
        for (size_t i = 0; i < n; i++) {
            double sh = s[i];
            if (s[i] >= tmin && s[i] <= tmax && c->tn[i] < c->t[i]) {
                sh = s[i] * (1.0 + gamma);
                if (sh > sT / aT)
                    sh = sT / aT;
                if (sh < s[i])
                    sh = s[i];
            }
            shat[i] = sh;
            if (sh > s[i])
                churn = 1;
        }
    }
    if (churn) {
        if (c->rng == NULL)
            return score__error(SCORE_E_INVAL, "score_step_apply",
                                "heun with churn > 0 draws noise: rng is NULL");
        rc = score__step_t_of_s(c, n, shat, that);
        if (rc != SCORE_OK)
            return rc;
        for (size_t i = 0; i < n; i++)
            if (shat[i] == s[i])
                that[i] = c->t[i];
        rc = score__step_alpha_sigma(c, n, that, ahat, sghat);
        if (rc != SCORE_OK)
            return rc;
        SCORE__R(score__step_noise)(c, 0, z);
        for (size_t i = 0; i < n; i++) {
            double amp = sqrt(fmax(shat[i] * shat[i] - s[i] * s[i], 0.0)) * snoise;
            double ia = 1.0 / a[i];
            const score__real *xr = SCORE__CX(c) + i * dim, *zr = z + i * dim;
            score__real *hr = xh + i * dim;
            for (size_t j = 0; j < dim; j++)
                hr[j] = (score__real)(ahat[i] * ((double)xr[j] * ia + amp * (double)zr[j]));
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            that[i] = c->t[i];
            ahat[i] = a[i];
            shat[i] = s[i];
        }
        memcpy(xh, SCORE__CX(c), n * dim * sizeof(score__real));
    }
    /* Euler predictor from (y_hat, s_hat) to s' */
    rc = SCORE__R(score__step_k)(st, c, that, ahat, shat, xh, d, k1);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double hh = sn[i] - shat[i], ia = 1.0 / ahat[i];
        const score__real *hr = xh + i * dim, *kr = k1 + i * dim;
        score__real *er = xe + i * dim;
        for (size_t j = 0; j < dim; j++)
            er[j] = (score__real)(an[i] * ((double)hr[j] * ia + hh * (double)kr[j]));
    }
    /* trapezoidal corrector */
    rc = SCORE__R(score__step_k)(st, c, c->tn, an, sn, xe, d, k2);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double hh = sn[i] - shat[i], ia = 1.0 / ahat[i];
        const score__real *hr = xh + i * dim, *k1r = k1 + i * dim, *k2r = k2 + i * dim;
        score__real *xr = SCORE__CX(c) + i * dim;
        for (size_t j = 0; j < dim; j++)
            xr[j] = (score__real)(an[i] * ((double)hr[j] * ia +
                                     0.5 * hh * ((double)k1r[j] + (double)k2r[j])));
    }
    return SCORE_OK;
}

/* Explicit Runge-Kutta in s with `ns` stages (tableau cc, A (row j: ns-1 entries), b, e).
 * With fsal, stage ns-1 has cc = 1 and A = b, and its derivative is cached for the next
 * call. */
/* Stage 0 from the FSAL cache: 1 if every row's (t, x) is exactly the start or the end of the
 * last call (k0 then holds the cached derivatives). */
static int fsal_lookup(const score_step *st, const score__step_call *c, score__real *k0)
{
    size_t dim = c->dim;
    if (!st->fsal_valid || st->fsal_n != c->n)
        return 0;
    for (size_t i = 0; i < c->n; i++) {
        const score__real *xr = SCORE__CX(c) + i * dim;
        int hit = 0;
        for (int q = 0; q < 2 && !hit; q++) {
            if (st->fsal_t[q][i] == c->t[i] &&
                memcmp(SCORE__FX(st, q) + i * dim, xr, dim * sizeof(score__real)) == 0) {
                memcpy(k0 + i * dim, SCORE__FK(st, q) + i * dim, dim * sizeof(score__real));
                hit = 1;
            }
        }
        if (!hit)
            return 0;
    }
    return 1;
}

static int runge_kutta(score_step *st, const score__step_call *c, int ns, const double *cc,
                       const double (*A)[6], const double *b, const double *e, int fsal)
{
    size_t n = c->n, dim = c->dim, nd = n * dim;
    score__real *k[7], *xin = SCORE__BUF(st, 7), *d = SCORE__BUF(st, 8);
    double *a, *an, *s, *sn, *h, *ts = st->dbl[R_TS], *as = st->dbl[R_AS],
                                 *sgs = st->dbl[R_SGS], *ss = st->dbl[R_SS];
    int rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    for (int j = 0; j < 7; j++)
        k[j] = SCORE__BUF(st, j);
    a = st->dbl[R_A];
    an = st->dbl[R_AN];
    s = st->dbl[R_S];
    sn = st->dbl[R_SN];
    h = st->dbl[R_H];
    if (!(fsal && fsal_lookup(st, c, k[0]))) {
        rc = SCORE__R(score__step_k)(st, c, c->t, a, s, SCORE__CX(c), d, k[0]);
        if (rc != SCORE_OK)
            return rc;
    }
    for (int q = 1; q < ns; q++) {
        if (cc[q] == 1.0) {
            memcpy(ts, c->tn, n * sizeof(double));
            memcpy(as, an, n * sizeof(double));
            memcpy(ss, sn, n * sizeof(double));
        } else {
            for (size_t i = 0; i < n; i++)
                ss[i] = s[i] + cc[q] * h[i];
            rc = score__step_t_of_s(c, n, ss, ts);
            if (rc == SCORE_OK)
                rc = score__step_alpha_sigma(c, n, ts, as, sgs);
            if (rc != SCORE_OK)
                return rc;
        }
        for (size_t i = 0; i < n; i++) {
            double ia = 1.0 / a[i];
            const score__real *xr = SCORE__CX(c) + i * dim;
            score__real *ir = xin + i * dim;
            for (size_t j = 0; j < dim; j++) {
                double acc = 0.0;
                for (int l = 0; l < q; l++)
                    if (A[q][l] != 0.0)
                        acc += A[q][l] * (double)k[l][i * dim + j];
                ir[j] = (score__real)(as[i] * ((double)xr[j] * ia + h[i] * acc));
            }
        }
        rc = SCORE__R(score__step_k)(st, c, ts, as, ss, xin, d, k[q]);
        if (rc != SCORE_OK)
            return rc;
    }
    if (SCORE__CXERR(c) != NULL && e != NULL) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < dim; j++) {
                double acc = 0.0;
                for (int l = 0; l < ns; l++)
                    if (e[l] != 0.0)
                        acc += e[l] * (double)k[l][i * dim + j];
                SCORE__CXERR(c)[i * dim + j] = (score__real)(an[i] * h[i] * acc);
            }
        }
    }
    if (fsal) {
        /* the last stage's input is the new x, bit for bit */
        memcpy(SCORE__FX(st, 0), SCORE__CX(c), nd * sizeof(score__real));
        memcpy(SCORE__FK(st, 0), k[0], nd * sizeof(score__real));
        memcpy(st->fsal_t[0], c->t, n * sizeof(double));
        memcpy(SCORE__CX(c), xin, nd * sizeof(score__real));
        memcpy(SCORE__FX(st, 1), xin, nd * sizeof(score__real));
        memcpy(SCORE__FK(st, 1), k[ns - 1], nd * sizeof(score__real));
        memcpy(st->fsal_t[1], c->tn, n * sizeof(double));
        st->fsal_n = n;
        st->fsal_valid = 1;
        return SCORE_OK;
    }
    for (size_t i = 0; i < n; i++) {
        double ia = 1.0 / a[i];
        score__real *xr = SCORE__CX(c) + i * dim;
        for (size_t j = 0; j < dim; j++) {
            double acc = 0.0;
            for (int l = 0; l < ns; l++)
                if (b[l] != 0.0)
                    acc += b[l] * (double)k[l][i * dim + j];
            xr[j] = (score__real)(an[i] * ((double)xr[j] * ia + h[i] * acc));
        }
    }
    return SCORE_OK;
}

int SCORE__R(score__step_midpoint)(score_step *st, const score__step_call *c)
{
    static const double cc[2] = {0.0, 0.5};
    static const double A[2][6] = {{0}, {0.5}};
    static const double b[2] = {0.0, 1.0};
    return runge_kutta(st, c, 2, cc, A, b, NULL, 0);
}

int SCORE__R(score__step_rk4)(score_step *st, const score__step_call *c)
{
    static const double cc[4] = {0.0, 0.5, 0.5, 1.0};
    static const double A[4][6] = {{0}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}};
    static const double b[4] = {1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0};
    return runge_kutta(st, c, 4, cc, A, b, NULL, 0);
}

int SCORE__R(score__step_dopri5)(score_step *st, const score__step_call *c)
{
    return runge_kutta(st, c, 7, score__dp5_c, score__dp5_a, score__dp5_b, score__dp5_e, 1);
}
