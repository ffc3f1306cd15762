/* What the sde supplies to solvers that work in the half log-SNR lambda (the adaptive engine
 * and the likelihood): the time variable, the time range, the prior density and the
 * probability-flow ODE with its divergence per unit of lambda. Never installed. */
#ifndef LIBSCORE_SDE_ODE_PRIV_H
#define LIBSCORE_SDE_ODE_PRIV_H

#include <stddef.h>

#include "libscore/sde.h"

/* lambda(t) and t(lambda) of the sde's schedule (n values; in and out may alias). */
int score__sde_lambda(const score_sde *sde, size_t n, const double *t, double *lam);
int score__sde_t_of_lambda(const score_sde *sde, size_t n, const double *lam, double *t);
/* The schedule's t_eps and T. */
int score__sde_time_range(const score_sde *sde, double *t_eps, double *t_end);
/* log-density of the prior at n rows. */
int score__sde_prior_logp(const score_sde *sde, size_t n, const float *x, double *out);

/* Caller scratch of score__sde_pf_lambda for m rows: t, alpha, sigma, f, g and div hold m
 * doubles, drift m * dim floats. */
typedef struct score__sde_ode_ws {
    double *t, *alpha, *sigma, *f, *g, *div;
    float *drift;
} score__sde_ode_ws;

/* The probability-flow ODE in lambda at m rows x (m * dim) with half log-SNR lam: with
 * c = dt/dlambda = -2 sigma^2 / g^2, dx[i * ld + j] = c * pf_drift and
 * ddelta[i * ld] = c * divergence (exact for k = 0, else the Hutchinson estimate with the k
 * probes per row in probes; ddelta NULL: the drift alone, no divergence). ws->t receives the
 * times. SCORE_E_RANGE where g(t) = 0 (lambda
 * is no time variable there); errors of score_sde_pf_divergence(). fn names the caller. */
int score__sde_pf_lambda(score_sde *sde, const char *fn, size_t m, const double *lam,
                         const float *x, size_t k, const float *probes,
                         const score__sde_ode_ws *ws, double *dx, double *ddelta, size_t ld);

/* Global row numbers of the rows of the next evaluations (see row_n in score__model_ws):
 * n rows, row i is row0 + i (idx NULL) or row0 + idx[i]; n = 0 clears them. The arrays
 * belong to the caller and must live until they are cleared. */
void score__sde_set_rows(score_sde *sde, size_t n, size_t row0, const size_t *idx);

/* SCORE_E_UNSUPPORTED for fn (a map through the probability-flow ODE alone, such as the latent
 * maps) when the sde's drift is not the model's own: an observation or a threshold is set. */
int score__sde_refuse_altered_pf(const char *fn, const score_sde *sde);

#endif /* LIBSCORE_SDE_ODE_PRIV_H */
