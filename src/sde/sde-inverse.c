/* Posterior sampling for a linear observation y = A x0 + n, n ~ N(0, sigma_n^2 I) (see
 * "Inverse problems" in sde.h): every evaluation adds grad_x log p(y | x_t) to the score, with
 * p(y | x_t) = N(y; A x0_hat(x_t), sigma_n^2 I + r_t^2 A A^T).
 *
 * With s = a F(in x, c) + k x and x0_hat = (x + sigma^2 s) / alpha, the Jacobian of x0_hat is
 * (I (1 + sigma^2 k) + sigma^2 a in J_F) / alpha, so the gradient is
 *     ((1 + sigma^2 k) g + sigma^2 a in J_F^T g) / alpha,   g = A^T C^{-1} (y - A x0_hat),
 * one input VJP of the model with the cotangent g per row. C = sigma_n^2 I + r_t^2 A A^T is
 * inverted through the eigen-decomposition of A A^T made once when the observation is set.
 * The moment method (SCORE_OBS_METHOD_MOMENT, sde-moment.c) replaces r_t^2 A A^T by A C_t A^T with
 * the Tweedie covariance C_t = (sigma^2 / alpha) dx0_hat/dx, for an observation or for the
 * known coordinates of a sampling run. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model/model-priv.h"
#include "sde-priv.h"

void score__sde_observation_free(score_sde *sde)
{
    score__free(sde->obs_A);
    score__free(sde->obs_y);
    score__free(sde->obs_U);
    score__free(sde->obs_ev);
    score__free(sde->obs_r);
    score__free(sde->ogx);
    score__free(sde->ogv);
    score__free(sde->mu);
    score__free(sde->mv);
    score__free(sde->mrow);
    score__free(sde->midx);
    sde->obs_A = sde->obs_y = sde->obs_U = sde->obs_ev = sde->obs_r = NULL;
    sde->ogx = sde->ogv = sde->mu = sde->mv = NULL;
    sde->mrow = NULL;
    sde->midx = NULL;
    sde->cap_og = sde->cap_mu = sde->cap_mrow = 0;
    sde->obs_m = 0;
    sde->og = NULL;
}

/* Eigen-decomposition of the symmetric m x m matrix S (destroyed) by cyclic Jacobi rotations:
 * S = U diag(ev) U^T, U's columns the eigenvectors. */
static void jacobi_eigen(size_t m, double *S, double *U, double *ev)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++)
            U[i * m + j] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, tot = 0.0;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < m; j++) {
                tot += S[i * m + j] * S[i * m + j];
                if (i != j)
                    off += S[i * m + j] * S[i * m + j];
            }
        if (off <= 1e-30 * tot || off == 0.0)
            break;
        for (size_t p = 0; p + 1 < m; p++)
            for (size_t q = p + 1; q < m; q++) {
                double apq = S[p * m + q], th, t, c, s;
                if (apq == 0.0)
                    continue;
                th = (S[q * m + q] - S[p * m + p]) / (2.0 * apq);
                t = (th >= 0.0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1.0));
                c = 1.0 / sqrt(t * t + 1.0);
                s = t * c;
                for (size_t k = 0; k < m; k++) { /* columns p, q */
                    double skp = S[k * m + p], skq = S[k * m + q];
                    S[k * m + p] = c * skp - s * skq;
                    S[k * m + q] = s * skp + c * skq;
                }
                for (size_t k = 0; k < m; k++) { /* rows p, q */
                    double spk = S[p * m + k], sqk = S[q * m + k];
                    S[p * m + k] = c * spk - s * sqk;
                    S[q * m + k] = s * spk + c * sqk;
                }
                for (size_t k = 0; k < m; k++) {
                    double ukp = U[k * m + p], ukq = U[k * m + q];
                    U[k * m + p] = c * ukp - s * ukq;
                    U[k * m + q] = s * ukp + c * ukq;
                }
            }
    }
    for (size_t i = 0; i < m; i++)
        ev[i] = fmax(S[i * m + i], 0.0); /* A A^T is positive semi-definite */
}

int score_sde_set_observation(score_sde *sde, size_t m, const float *A, const float *y,
                              double sigma_n)
{
    size_t d, md, mm;
    double *nA = NULL, *ny = NULL, *U = NULL, *ev = NULL, *r = NULL, *S = NULL;
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde is NULL");
    if (A == NULL) {
        score__sde_observation_free(sde);
        return SCORE_OK;
    }
    if (y == NULL || m == 0)
        return score__error(SCORE_E_INVAL, __func__, "y is NULL or m = 0");
    if (!isfinite(sigma_n) || !(sigma_n > 0.0))
        return score__error(SCORE_E_RANGE, __func__, "sigma_n = %g: need a finite value > 0",
                            sigma_n);
    if (!(score_model_capabilities(sde->model) & SCORE_MODEL_CAP_VJP))
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "the model (kind %d) provides no input vector-Jacobian product "
                            "(SCORE_MODEL_CAP_VJP), which the likelihood gradient needs (a "
                            "callback model: give it a VJP)", score_model_kind(sde->model));
    d = sde->dim;
    if (score__mul_size(m, d, &md) != 0 || score__mul_size(m, m, &mm) != 0)
        return score__error(SCORE_E_RANGE, __func__, "m = %zu: m * dim values overflow the "
                            "address space", m);
    for (size_t i = 0; i < md; i++)
        if (!isfinite(A[i]))
            return score__error(SCORE_E_NUMERIC, __func__, "A[%zu][%zu] is not finite", i / d,
                                i % d);
    for (size_t i = 0; i < m; i++)
        if (!isfinite(y[i]))
            return score__error(SCORE_E_NUMERIC, __func__, "y[%zu] is not finite", i);
    nA = score__calloc(md, sizeof *nA);
    ny = score__calloc(m, sizeof *ny);
    U = score__calloc(mm, sizeof *U);
    S = score__calloc(mm, sizeof *S);
    ev = score__calloc(m, sizeof *ev);
    r = score__calloc(2 * m, sizeof *r);
    if (nA == NULL || ny == NULL || U == NULL || S == NULL || ev == NULL || r == NULL) {
        score__free(nA);
        score__free(ny);
        score__free(U);
        score__free(S);
        score__free(ev);
        score__free(r);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    for (size_t i = 0; i < md; i++)
        nA[i] = (double)A[i];
    for (size_t i = 0; i < m; i++)
        ny[i] = (double)y[i];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j <= i; j++) {
            double acc = 0.0;
            for (size_t l = 0; l < d; l++)
                acc += nA[i * d + l] * nA[j * d + l];
            S[i * m + j] = S[j * m + i] = acc;
        }
    jacobi_eigen(m, S, U, ev);
    score__free(S);
    {
        float *keep_x = sde->ogx, *keep_v = sde->ogv;
        size_t keep_cap = sde->cap_og;
        sde->ogx = sde->ogv = NULL;
        score__sde_observation_free(sde);
        sde->ogx = keep_x;
        sde->ogv = keep_v;
        sde->cap_og = keep_cap;
    }
    sde->obs_m = m;
    sde->obs_A = nA;
    sde->obs_y = ny;
    sde->obs_U = U;
    sde->obs_ev = ev;
    sde->obs_r = r;
    sde->obs_sn = sigma_n;
    return SCORE_OK;
}

int score__sde_obs_grow(const char *fn, score_sde *sde, size_t n)
{
    size_t nd;
    float *gx, *gv;
    if (score__mul_size(n, sde->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, fn, "batch of %zu rows is too large", n);
    if (nd <= sde->cap_og)
        return SCORE_OK;
    gx = score__calloc(nd, sizeof *gx);
    gv = score__calloc(nd, sizeof *gv);
    if (gx == NULL || gv == NULL) {
        score__free(gx);
        score__free(gv);
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation for %zu rows failed", n);
    }
    score__free(sde->ogx);
    score__free(sde->ogv);
    sde->ogx = gx;
    sde->ogv = gv;
    sde->cap_og = nd;
    return SCORE_OK;
}

/* The cotangent g = A^T C^{-1} r of row b (r = y - A x0_hat) into ogx[b]. */
static void row_cotangent(score_sde *sde, size_t b, const float *x, const float *F)
{
    size_t d = sde->dim, m = sde->obs_m;
    double al = sde->al[b], s2 = sde->si[b] * sde->si[b], a = sde->a[b], k = sde->k[b];
    double v = score__sde_par_f(sde, SCORE_SDE_PARAM_OBS_VAR);
    double zeta = score__sde_par_f(sde, SCORE_SDE_PARAM_OBS_ZETA);
    double sn2 = sde->obs_sn * sde->obs_sn, *r = sde->obs_r, *c = sde->obs_r + m;
    const double *A = sde->obs_A, *U = sde->obs_U;
    float *g = sde->ogx + b * d;
    for (size_t i = 0; i < m; i++) {
        double ax = 0.0;
        for (size_t j = 0; j < d; j++) {
            double xv = (double)x[b * d + j];
            double s = a * (double)F[b * d + j] + k * xv;
            ax += A[i * d + j] * ((xv + s2 * s) / al);
        }
        r[i] = sde->obs_y[i] - ax;
    }
    if (zeta > 0.0) {
        double nr = 0.0;
        for (size_t i = 0; i < m; i++)
            nr += r[i] * r[i];
        nr = sqrt(nr);
        for (size_t i = 0; i < m; i++)
            c[i] = nr > 0.0 ? zeta * r[i] / nr : 0.0;
        if (sde->tw_log != NULL)
            sde->tw_log[b] = NAN; /* a step, not a likelihood */
    } else {
        /* C^{-1} r = U diag(1 / (sn^2 + r_t^2 ev)) U^T r */
        double rt2 = v > 0.0 ? v * s2 / (al * al * v + s2) : 0.0, quad = 0.0, logdet = 0.0;
        for (size_t i = 0; i < m; i++) {
            double acc = 0.0, lam = sn2 + rt2 * sde->obs_ev[i];
            for (size_t l = 0; l < m; l++)
                acc += U[l * m + i] * r[l];
            c[i] = acc / lam;
            quad += acc * c[i];
            logdet += log(lam);
        }
        /* log N(y; A x0_hat, C) in the eigenbasis of C */
        if (sde->tw_log != NULL)
            sde->tw_log[b] = -0.5 * (quad + logdet + (double)m * 1.8378770664093454836);
        for (size_t i = 0; i < m; i++)
            r[i] = c[i];
        for (size_t i = 0; i < m; i++) {
            double acc = 0.0;
            for (size_t l = 0; l < m; l++)
                acc += U[i * m + l] * r[l];
            c[i] = acc;
        }
    }
    for (size_t j = 0; j < d; j++) {
        double acc = 0.0;
        for (size_t i = 0; i < m; i++)
            acc += A[i * d + j] * c[i];
        g[j] = (float)acc;
    }
}

int score__sde_observation_term(const char *fn, score_sde *sde, size_t n, const double *t,
                                const float *x, const float *xm, double w)
{
    size_t d = sde->dim;
    int rc, moment = score__sde_par_i(sde, SCORE_SDE_PARAM_OBS_METHOD) == SCORE_OBS_METHOD_MOMENT;
    sde->og = NULL;
    if (sde->kmask != NULL && sde->obs_m != 0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "known coordinates with the moment method and an observation "
                            "(score_sde_set_observation()) at once are not supported: fold the "
                            "known coordinates into the observation's A and y");
    if (sde->obs_m == 0 && sde->kmask == NULL)
        return SCORE_OK;
    if (w != 0.0 || (sde->clf != NULL && sde->clf_w != 0.0))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "an observation term (score_sde_set_observation(), or known "
                            "coordinates with the moment method) together with guidance is not "
                            "supported: set the guidance weights to 0 or clear the observation");
    if (!(score_model_capabilities(sde->model) & SCORE_MODEL_CAP_VJP))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the model (kind %d) provides no input vector-Jacobian product, "
                            "which the observation's likelihood gradient needs (the model was "
                            "replaced, or known coordinates use the moment method?)",
                            score_model_kind(sde->model));
    if (moment || sde->kmask != NULL)
        return score__sde_moment_term(fn, sde, n, t, x, xm);
    if ((rc = score__sde_obs_grow(fn, sde, n)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++)
        row_cotangent(sde, b, x, sde->fout);
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(sde->ogx[i]))
            return score__error(SCORE_E_NUMERIC, fn, "the likelihood gradient of row %zu "
                                "(t = %g) is not finite", i / d, t[i / d]);
    sde->nfe++;
    rc = score__model_vjp_ws(sde->model, sde->mws, n, xm, sde->cond, 1, sde->ogx, sde->ogv);
    if (rc != SCORE_OK)
        return score__sde_model_call_failed(fn, rc);
    for (size_t b = 0; b < n; b++) {
        double al = sde->al[b], s2 = sde->si[b] * sde->si[b];
        double cg = (1.0 + s2 * sde->k[b]) / al, cv = s2 * sde->a[b] * sde->in[b] / al;
        for (size_t j = 0; j < d; j++) {
            size_t i = b * d + j;
            sde->ogx[i] = (float)(cg * (double)sde->ogx[i] + cv * (double)sde->ogv[i]);
        }
    }
    if (sde->tw_grad != NULL)
        memcpy(sde->tw_grad, sde->ogx, n * d * sizeof *sde->tw_grad);
    sde->og = sde->ogx;
    return SCORE_OK;
}

void score__sde_set_twist(score_sde *sde, double *log_out, float *grad_out)
{
    sde->tw_log = log_out;
    sde->tw_grad = grad_out;
}

int score__sde_refuse_extras(const char *fn, const score_sde *sde)
{
    if (sde->obs_m != 0 || sde->kmask != NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the divergence of a score with an observation term needs the "
                            "model's second derivatives, which are not computed (clear the "
                            "observation for likelihoods)");
    if (score__sde_threshold_active(sde))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the divergence of a thresholded score is not computed (clear the "
                            "clip box and set SCORE_SDE_PARAM_THRESHOLD to 0 for likelihoods)");
    return SCORE_OK;
}

int score__sde_refuse_altered_pf(const char *fn, const score_sde *sde)
{
    if (sde->obs_m != 0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the sde has an observation (score_sde_set_observation()): its "
                            "probability-flow drift is the posterior's, not the model's, so the "
                            "map would not be the model's PF-ODE map; clear the observation");
    if (score__sde_threshold_active(sde))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the sde thresholds its data prediction (score_sde_set_clip() or "
                            "SCORE_SDE_PARAM_THRESHOLD): its probability-flow drift is not the "
                            "model's, so the map would not be the model's PF-ODE map (nor "
                            "invertible); clear the clip box and set the threshold to 0");
    return SCORE_OK;
}
