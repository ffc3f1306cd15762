/* The sde seen by solvers in the half log-SNR lambda: the time variable and range, the prior
 * density, and the probability-flow ODE per unit of lambda (used by the likelihood). */
#include "sde-ode-priv.h"
#include "sde-priv.h"

int score__sde_lambda(const score_sde *sde, size_t n, const double *t, double *lam)
{
    return score_schedule_lambda(sde->sched, n, t, lam);
}

int score__sde_t_of_lambda(const score_sde *sde, size_t n, const double *lam, double *t)
{
    return score_schedule_t_of_lambda(sde->sched, n, lam, t);
}

int score__sde_time_range(const score_sde *sde, double *t_eps, double *t_end)
{
    int rc = score_schedule_get_f64(sde->sched, SCORE_SCHEDULE_PARAM_T_EPS, t_eps);
    if (rc == SCORE_OK)
        rc = score_schedule_get_f64(sde->sched, SCORE_SCHEDULE_PARAM_T, t_end);
    return rc;
}

int score__sde_prior_logp(const score_sde *sde, size_t n, const float *x, double *out)
{
    return score_schedule_prior_logp(sde->sched, n, sde->dim, x, out);
}

int score__sde_pf_lambda(score_sde *sde, const char *fn, size_t m, const double *lam,
                         const float *x, size_t k, const float *probes,
                         const score__sde_ode_ws *ws, double *dx, double *ddelta, size_t ld)
{
    size_t dim = sde->dim;
    int rc = score_schedule_t_of_lambda(sde->sched, m, lam, ws->t);
    if (rc == SCORE_OK)
        rc = score_schedule_alpha_sigma(sde->sched, m, ws->t, ws->alpha, ws->sigma);
    if (rc == SCORE_OK)
        rc = score_schedule_sde_coefs(sde->sched, m, ws->t, ws->f, ws->g);
    if (rc != SCORE_OK)
        return rc;
    if (ddelta != NULL)
        rc = score_sde_pf_divergence(sde, m, ws->t, x, k, probes, ws->div, ws->drift);
    else
        rc = score_sde_pf_drift(sde, m, ws->t, x, ws->drift);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < m; i++) {
        double g2 = ws->g[i] * ws->g[i], sg = ws->sigma[i], c;
        if (!(g2 > 0.0))
            return score__error(SCORE_E_RANGE, fn,
                                "g(t) = 0 at t = %g: lambda is not a valid time variable there",
                                ws->t[i]);
        c = -2.0 * sg * sg / g2; /* dt / dlambda */
        for (size_t j = 0; j < dim; j++)
            dx[i * ld + j] = c * (double)ws->drift[i * dim + j];
        if (ddelta != NULL)
            ddelta[i * ld] = c * ws->div[i];
    }
    return SCORE_OK;
}
