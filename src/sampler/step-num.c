/* Numerics shared by the built-in step implementations: schedule coefficients at the call's
 * times, model evaluations, the noise draw, the effective eta, and the phi-type functions of
 * the exponential integrators. */
#include <math.h>
#include <string.h>

#include "rng/brownian-priv.h"
#include "rng/rng-priv.h"
#include "sde/sde-priv.h"
#include "step-priv.h"

double score__step_eta(const score_step *st)
{
    double eta = SCORE__STEP_F64(st, SCORE_STEP_PARAM_ETA);
    if (eta >= 0.0)
        return eta;
    return st->type.kind == SCORE_STEP_DDIM ? 0.0 : 1.0;
}

int score__step_needs_noise(const score_step *st)
{
    switch (st->type.kind) {
    case SCORE_STEP_HEUN:
        return SCORE__STEP_F64(st, SCORE_STEP_PARAM_CHURN) > 0.0;
    case SCORE_STEP_DDIM:
    case SCORE_STEP_EULER_ANCESTRAL:
    case SCORE_STEP_DPMPP_2M_SDE:
    case SCORE_STEP_DPM2_ANCESTRAL:
    case SCORE_STEP_DPMPP_2S_ANCESTRAL:
    case SCORE_STEP_DPMPP_SDE:
    case SCORE_STEP_DPMPP_3M_SDE:
        return score__step_eta(st) > 0.0;
    case SCORE_STEP_RESTART:
        return SCORE__STEP_I64(st, SCORE_STEP_PARAM_RESTART_K) > 0;
    default:
        return (st->type.flags & SCORE_STEP_FLAG_STOCHASTIC) != 0;
    }
}

int score__step_brownian_ok(int kind)
{
    switch (kind) {
    case SCORE_STEP_EULER_MARUYAMA:
    case SCORE_STEP_REVERSE_DIFFUSION:
    case SCORE_STEP_ANCESTRAL:
    case SCORE_STEP_EULER_ANCESTRAL:
    case SCORE_STEP_DDIM:
    case SCORE_STEP_DPMPP_2M_SDE:
    case SCORE_STEP_DPM2_ANCESTRAL:
    case SCORE_STEP_DPMPP_2S_ANCESTRAL:
    case SCORE_STEP_DPMPP_SDE:
    case SCORE_STEP_DPMPP_3M_SDE: return 1;
    default: return 0;
    }
}

size_t score__step_noise_blocks(const score_step *st)
{
    if (st->type.kind == SCORE_STEP_RESTART) {
        int64_t k = SCORE__STEP_I64(st, SCORE_STEP_PARAM_RESTART_K);
        return k > 2 ? (size_t)k : 2;
    }
    return 2;
}

void score__step_noise_iv(const score__step_call *c, size_t block, const double *t0,
                          const double *t1, float *out)
{
    if (!c->brown) {
        score__rng_normal_at(c->rng, (uint32_t)(c->rng->counter + c->counter), c->row0, c->n,
                             block * c->dim, c->dim, out);
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        size_t row = c->row0 + (c->idx != NULL ? c->idx[i] : i);
        score__brownian_increment(c->rng, c->brown_T, row, c->dim, t0[i], t1[i],
                                  out + i * c->dim, c->brown_ws);
    }
}

void score__step_noise(const score__step_call *c, size_t block, float *out)
{
    score__step_noise_iv(c, block, c->t, c->tn, out);
}

/* ---- helpers --------------------------------------------------------------------------- */

/* 1 when the n times are all equal (the common case of a driver): the schedule is then
 * evaluated once and the result broadcast. */
static int all_equal(size_t n, const double *t)
{
    for (size_t i = 1; i < n; i++)
        if (t[i] != t[0])
            return 0;
    return 1;
}

int score__step_alpha_sigma(const score__step_call *c, size_t n, const double *t, double *alpha,
                            double *sigma)
{
    int rc;
    if (n > 1 && all_equal(n, t)) {
        rc = score__step_alpha_sigma(c, 1, t, alpha, sigma);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++) {
            alpha[i] = alpha[0];
            sigma[i] = sigma[0];
        }
        return rc;
    }
    rc = score_schedule_alpha_sigma(c->sched, n, t, alpha, sigma);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == 0.0) {
            alpha[i] = 1.0;
            sigma[i] = 0.0;
        }
    }
    return SCORE_OK;
}

int score__step_t_of_s(const score__step_call *c, size_t n, const double *s, double *t_out)
{
    int rc;
    if (n > 1 && all_equal(n, s)) {
        rc = score__step_t_of_s(c, 1, s, t_out);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++)
            t_out[i] = t_out[0];
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        t_out[i] = -log(s[i]);
    return score_schedule_t_of_lambda(c->sched, n, t_out, t_out);
}

int score__step_t_of_lambda(const score__step_call *c, size_t n, const double *lam,
                            double *t_out)
{
    int rc;
    if (n > 1 && all_equal(n, lam)) {
        rc = score_schedule_t_of_lambda(c->sched, 1, lam, t_out);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++)
            t_out[i] = t_out[0];
        return rc;
    }
    return score_schedule_t_of_lambda(c->sched, n, lam, t_out);
}

int score__step_sde_coefs(const score__step_call *c, size_t n, const double *t, double *f,
                          double *g)
{
    int rc;
    if (n > 1 && all_equal(n, t)) {
        rc = score_schedule_sde_coefs(c->sched, 1, t, f, g);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++) {
            f[i] = f[0];
            g[i] = g[0];
        }
        return rc;
    }
    return score_schedule_sde_coefs(c->sched, n, t, f, g);
}

/* Series sum_{k >= k0} sgn^k... helpers: exp-integrator weights, stable for small |h|. */
double score__expint_i0(double h)
{
    return -expm1(-h);
}

double score__expint_i1(double h)
{
    if (fabs(h) < 0.5) {
        /* sum_{k >= 2} (-h)^k / k! */
        double term = h * h / 2.0, sum = 0.0;
        for (int k = 2; k < 30; k++) {
            sum += term;
            term *= -h / (double)(k + 1);
        }
        return sum;
    }
    return h + expm1(-h);
}

double score__expint_i2(double h)
{
    if (fabs(h) < 0.5) {
        /* -sum_{k >= 3} (-h)^k / k! */
        double term = h * h * h / 6.0, sum = 0.0;
        for (int k = 3; k < 30; k++) {
            sum += term;
            term *= -h / (double)(k + 1);
        }
        return sum;
    }
    return 0.5 * h * h - h - expm1(-h);
}

double score__phi1m1(double z)
{
    if (fabs(z) < 0.5) {
        /* sum_{k >= 1} z^k / (k + 1)! */
        double term = z / 2.0, sum = 0.0;
        for (int k = 1; k < 30; k++) {
            sum += term;
            term *= z / (double)(k + 2);
        }
        return sum;
    }
    return expm1(z) / z - 1.0;
}

int score__step_endpoints(score_step *st, const score__step_call *c)
{
    int rc = score__step_alpha_sigma(c, c->n, c->t, st->dbl[SCORE__EP_A], st->dbl[SCORE__EP_SG]);
    if (rc == SCORE_OK)
        rc = score__step_alpha_sigma(c, c->n, c->tn, st->dbl[SCORE__EP_AN], st->dbl[SCORE__EP_SGN]);
    if (rc != SCORE_OK)
        return rc;
    {
        score__step_memo_slot ls, lsn; /* log s, log sn: shared by rows at the same times */
        score__step_memo_init(&ls, log);
        score__step_memo_init(&lsn, log);
        for (size_t i = 0; i < c->n; i++) {
            double s = st->dbl[SCORE__EP_SG][i] / st->dbl[SCORE__EP_A][i];
            double sn = st->dbl[SCORE__EP_SGN][i] / st->dbl[SCORE__EP_AN][i];
            double l = score__step_memo(&ls, s);
            st->dbl[SCORE__EP_S][i] = s;
            st->dbl[SCORE__EP_SN][i] = sn;
            st->dbl[SCORE__EP_LAM][i] = -l;
            st->dbl[SCORE__EP_H][i] = l - score__step_memo(&lsn, sn);
        }
    }
    return SCORE_OK;
}

/* Number of previous model outputs this call may use: the history counts only when the call
 * continues the last one (same rows, each row starting where it ended). */
int score__step_history_avail(const score_step *st, const score__step_call *c)
{
    if (st->hist_count == 0 || st->hist_n != c->n || st->hist_row0 != c->row0)
        return 0;
    for (size_t i = 0; i < c->n; i++)
        if (st->hist_tend[i] != c->t[i])
            return 0;
    return st->hist_count;
}
