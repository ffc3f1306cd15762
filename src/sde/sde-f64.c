/* Evaluations of a double-precision sampler state: in double through the model's double
 * evaluation (analytic models and combinations of them), else in float32 from the rounded
 * state (network and callback models, and the extras that are computed in float: guidance on
 * one network, classifier guidance, observations, thresholding, input overlays). */
#include <math.h>
#include <string.h>

#include "model/model-priv.h"
#include "sde-priv.h"

void score__sde_f64_free(score_sde *sde)
{
    score__free(sde->r32_x);
    score__free(sde->r32_out);
    score__free(sde->r64_x);
    score__free(sde->r64_out);
    sde->r32_x = sde->r32_out = NULL;
    sde->r64_x = sde->r64_out = NULL;
    sde->cap_r = 0;
}

static int grow(const char *fn, score_sde *sde, size_t n)
{
    size_t nd;
    if (n <= sde->cap_r)
        return SCORE_OK;
    score__sde_f64_free(sde);
    if (score__mul_size(n, sde->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, fn, "batch of %zu rows is too large", n);
    sde->r32_x = score__calloc(nd, sizeof(float));
    sde->r32_out = score__calloc(nd, sizeof(float));
    sde->r64_x = score__calloc(nd, sizeof(double));
    sde->r64_out = score__calloc(nd, sizeof(double));
    if (sde->r32_x == NULL || sde->r32_out == NULL || sde->r64_x == NULL ||
        sde->r64_out == NULL) {
        score__sde_f64_free(sde);
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation for %zu rows failed", n);
    }
    sde->cap_r = n;
    return SCORE_OK;
}

int score__sde_f64_exact(const score_sde *sde)
{
    return score__model_has_f64(sde->model) && sde->clf == NULL && sde->obs_m == 0 &&
           !score__sde_threshold_active(sde) && sde->input_fn == NULL &&
           score__sde_par_f(sde, SCORE_SDE_PARAM_GUIDANCE) == 0.0;
}

static const char *name_of(int want)
{
    return want == SCORE__SDE_WANT_X0    ? "score_sde_x0"
           : want == SCORE__SDE_WANT_EPS ? "score_sde_eps"
                                         : "score_sde_score";
}

/* The rounded state through the float evaluation, the result widened. */
static int eval_rounded(score_sde *sde, int want, size_t n, const double *t, const double *x,
                        double *out)
{
    size_t nd = n * sde->dim;
    int rc;
    for (size_t q = 0; q < nd; q++)
        sde->r32_x[q] = (float)x[q];
    rc = want == SCORE__SDE_WANT_X0    ? score_sde_x0(sde, n, t, sde->r32_x, sde->r32_out)
         : want == SCORE__SDE_WANT_EPS ? score_sde_eps(sde, n, t, sde->r32_x, sde->r32_out)
                                       : score_sde_score(sde, n, t, sde->r32_x, sde->r32_out);
    if (rc != SCORE_OK)
        return rc;
    for (size_t q = 0; q < nd; q++)
        out[q] = (double)sde->r32_out[q];
    return SCORE_OK;
}

int score__sde_eval_f64(score_sde *sde, int want, size_t n, const double *t, const double *x,
                        double *out)
{
    const char *fn = name_of(want);
    size_t d;
    const float *xm;
    double w;
    int rc = score__sde_check_args(fn, sde, n, t, x, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    d = sde->dim;
    if ((rc = grow(fn, sde, n)) != SCORE_OK)
        return rc;
    if (!score__sde_f64_exact(sde))
        return eval_rounded(sde, want, n, t, x, out);
    for (size_t q = 0; q < n * d; q++)
        sde->r32_x[q] = (float)x[q];
    /* conditions and coefficients (the float input it also builds is not used) */
    rc = score__sde_open_call(fn, sde, n, t, sde->r32_x, 0, &xm, &w);
    if (rc != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++)
        for (size_t j = 0; j < d; j++)
            sde->r64_x[b * d + j] = sde->in[b] * x[b * d + j];
    sde->nfe++;
    rc = score__model_infer_ws_f64(sde->model, sde->mws, n, sde->r64_x, sde->cond, sde->r64_out);
    if (rc != SCORE_OK)
        return score__sde_model_call_failed(fn, rc);
    for (size_t b = 0; b < n; b++) {
        double P, Q, a = sde->a[b], k = sde->k[b];
        score__sde_row_map(sde, want, b, &P, &Q);
        for (size_t j = 0; j < d; j++) {
            double xv = x[b * d + j], F = sde->r64_out[b * d + j];
            double v = P * (a * F + k * xv) + Q * xv;
            if (!isfinite(v))
                return score__error(SCORE_E_NUMERIC, fn,
                                    "non-finite value in row %zu (t = %g, component %zu; model "
                                    "output %g)", b, t[b], j, F);
            out[b * d + j] = v;
        }
    }
    return SCORE_OK;
}
