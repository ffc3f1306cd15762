/* Divergences of the parameterization layer (split from sde.c): the exact trace of the model's
 * Jacobian (or its unit-probe fallback), Hutchinson's estimate with the caller's probes, and
 * their maps to the divergence of the score and of the probability-flow drift. Under guidance
 * the traces of the two halves of the 2n-row batch are combined like the outputs. */
#include <math.h>
#include <string.h>

#include "model/model-priv.h"
#include "sde-priv.h"

static int grow_probes(const char *fn, score_sde *sde, size_t n, size_t k)
{
    size_t nk, len;
    if (score__mul_size(n, k, &nk) != 0 || score__mul_size(nk, sde->dim, &len) != 0)
        return score__error(SCORE_E_NOMEM, fn, "%zu rows x %zu probes is too large", n, k);
    if (len <= sde->cap_p)
        return SCORE_OK;
    score__free(sde->pout);
    score__free(sde->basis);
    sde->basis = NULL;
    sde->basis_rows = 0;
    sde->cap_p = 0;
    sde->pout = score__calloc(len, sizeof(float));
    if (sde->pout == NULL)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    sde->cap_p = len;
    return SCORE_OK;
}

/* Unit-vector probes e_0..e_{dim-1} for n rows (in a buffer of cap_p floats). */
static int basis_probes(const char *fn, score_sde *sde, size_t n)
{
    size_t d = sde->dim;
    int rc = grow_probes(fn, sde, n, d);
    if (rc != SCORE_OK)
        return rc;
    if (sde->basis == NULL) {
        sde->basis = score__calloc(sde->cap_p, sizeof(float));
        if (sde->basis == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
        sde->basis_rows = 0;
    }
    for (size_t b = sde->basis_rows; b < n; b++)
        for (size_t p = 0; p < d; p++)
            sde->basis[(b * d + p) * d + p] = 1.0f;
    if (n > sde->basis_rows)
        sde->basis_rows = n;
    return SCORE_OK;
}

/* ---- divergences -------------------------------------------------------------------- */

/* The products J v_p of the k probes per row into sde->pout (by jvp, or by vjp, which gives
 * J^T v_p: only their diagonal / quadratic forms are used), and with want_f the model's
 * output into sde->fout. Counts the evaluations. */
static int model_probe_products(const char *fn, score_sde *sde, size_t n, const float *xm,
                                size_t k, const float *probes, int want_f)
{
    const score_model *m = sde->model;
    uint32_t caps = score_model_capabilities(m);
    int rc;
    sde->nfe++;
    if (caps & SCORE_MODEL_CAP_JVP) {
        rc = score__model_jvp_ws(m, sde->mws, n, xm, sde->cond, k, probes, sde->pout,
                                 want_f ? sde->fout : NULL);
    } else {
        rc = score__model_vjp_ws(m, sde->mws, n, xm, sde->cond, k, probes, sde->pout);
        if (rc == SCORE_OK && want_f) {
            sde->nfe++;
            rc = score__model_forward_ws(m, sde->mws, n, xm, sde->cond, sde->fout);
        }
    }
    if (rc != SCORE_OK)
        return score__sde_model_call_failed(fn, rc);
    return SCORE_OK;
}

/* tr(dF/dx) per row into sde->tr (and F into sde->fout when want_f), exactly: the model's
 * trace, or dim products with unit vectors. */
static int model_trace(const char *fn, score_sde *sde, size_t n, const float *xm, int want_f)
{
    const score_model *m = sde->model;
    uint32_t caps = score_model_capabilities(m);
    size_t d = sde->dim;
    int rc;
    if (caps & SCORE_MODEL_CAP_TRACE) {
        sde->nfe++;
        rc = score__model_trace_ws(m, sde->mws, n, xm, sde->cond, sde->tr,
                                   want_f ? sde->fout : NULL);
        if (rc != SCORE_OK)
            return score__sde_model_call_failed(fn, rc);
        return SCORE_OK;
    }
    if (!(caps & (SCORE_MODEL_CAP_JVP | SCORE_MODEL_CAP_VJP)))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the model provides neither trace, jvp nor vjp: no divergence");
    if ((rc = basis_probes(fn, sde, n)) != SCORE_OK)
        return rc;
    if ((rc = model_probe_products(fn, sde, n, xm, d, sde->basis, want_f)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double acc = 0.0;
        for (size_t p = 0; p < d; p++)
            acc += (double)sde->pout[(b * d + p) * d + p];
        sde->tr[b] = acc;
    }
    return SCORE_OK;
}

/* Hutchinson: (1/k) sum_p v_p^T (dF/dx) v_p per row into sde->tr. */
static int model_hutchinson(const char *fn, score_sde *sde, size_t n, const float *xm, size_t k,
                            const float *probes, int want_f)
{
    const score_model *m = sde->model;
    uint32_t caps = score_model_capabilities(m);
    size_t d = sde->dim;
    int rc;
    if (!(caps & (SCORE_MODEL_CAP_JVP | SCORE_MODEL_CAP_VJP)))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "Hutchinson's estimator needs a model with jvp or vjp");
    if ((rc = grow_probes(fn, sde, n, k)) != SCORE_OK)
        return rc;
    if ((rc = model_probe_products(fn, sde, n, xm, k, probes, want_f)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double acc = 0.0;
        for (size_t p = 0; p < k; p++) {
            const float *v = probes + (b * k + p) * d, *jv = sde->pout + (b * k + p) * d;
            for (size_t j = 0; j < d; j++)
                acc += (double)v[j] * (double)jv[j];
        }
        sde->tr[b] = acc / (double)k;
    }
    return SCORE_OK;
}

/* The traces of a guided call combined like the scores: tr = (1 + w) tr_y - w tr_null (the
 * k dim term of the divergence is the same in both halves, so this is the divergence of
 * the guided score). */
static void fold_traces(score_sde *sde, size_t n, double w)
{
    if (w == 0.0)
        return;
    for (size_t b = 0; b < n; b++)
        sde->tr[b] = (1.0 + w) * sde->tr[b] - w * sde->tr[n + b];
}

/* The caller's n * k * dim Hutchinson probes twice (for the 2n rows of a guided call). */
static int guided_probes(const char *fn, score_sde *sde, size_t n, size_t k, const float **probes)
{
    size_t nk, len;
    if (score__mul_size(n, k, &nk) != 0 || score__mul_size(nk, sde->dim, &len) != 0 ||
        len > SIZE_MAX / 2 / sizeof(float))
        return score__error(SCORE_E_NOMEM, fn, "%zu rows x %zu probes is too large", n, k);
    if (2 * len > sde->cap_gp) {
        float *g = score__calloc(2 * len, sizeof(float));
        if (g == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
        score__free(sde->gprobes);
        sde->gprobes = g;
        sde->cap_gp = 2 * len;
    }
    memcpy(sde->gprobes, *probes, len * sizeof(float));
    memcpy(sde->gprobes + len, *probes, len * sizeof(float));
    *probes = sde->gprobes;
    return SCORE_OK;
}

/* div s = a in tr + k dim, with a finiteness check. */
static int score_div(const char *fn, const score_sde *sde, size_t n, const double *t, double *div,
                     int pf)
{
    for (size_t b = 0; b < n; b++) {
        double v = sde->a[b] * sde->in[b] * sde->tr[b] + sde->k[b] * (double)sde->dim;
        if (pf)
            v = sde->fc[b] * (double)sde->dim - 0.5 * sde->g2[b] * v;
        if (!isfinite(v))
            return score__error(SCORE_E_NUMERIC, fn, "non-finite divergence in row %zu (t = %g)", b, t[b]);
        div[b] = v;
    }
    return SCORE_OK;
}

int score_sde_divergence(score_sde *sde, size_t n, const double *t, const float *x, double *div,
                         float *score_out)
{
    const float *xm;
    double w;
    int rc = score__sde_check_args(__func__, sde, n, t, x, div);
    if (rc == SCORE_OK)
        rc = score__sde_refuse_classifier(__func__, sde);
    if (rc == SCORE_OK)
        rc = score__sde_refuse_extras(__func__, sde);
    if (rc != SCORE_OK || n == 0)
        return rc;
    if (score_out == x)
        return score__error(SCORE_E_INVAL, __func__, "score_out must not alias x");
    if ((rc = score__sde_open_call(__func__, sde, n, t, x, 0, &xm, &w)) != SCORE_OK)
        return rc;
    if ((rc = model_trace(__func__, sde, score__sde_model_rows(n, w), xm, score_out != NULL)) != SCORE_OK)
        return rc;
    fold_traces(sde, n, w);
    if (score_out != NULL &&
        (rc = score__sde_combine(__func__, sde, SCORE__SDE_WANT_SCORE, n, t, x, sde->fout, w, score_out)) != SCORE_OK)
        return rc;
    return score_div(__func__, sde, n, t, div, 0);
}

int score_sde_pf_divergence(score_sde *sde, size_t n, const double *t, const float *x, size_t k,
                            const float *probes, double *div, float *drift_out)
{
    const float *xm;
    double w;
    int rc = score__sde_check_args(__func__, sde, n, t, x, div);
    if (rc == SCORE_OK)
        rc = score__sde_refuse_classifier(__func__, sde);
    if (rc == SCORE_OK)
        rc = score__sde_refuse_extras(__func__, sde);
    if (rc != SCORE_OK)
        return rc;
    if (probes != NULL && k == 0)
        return score__error(SCORE_E_INVAL, __func__, "k is 0 with probes given");
    if (n == 0)
        return SCORE_OK;
    if (drift_out == x)
        return score__error(SCORE_E_INVAL, __func__, "drift_out must not alias x");
    if ((rc = score__sde_open_call(__func__, sde, n, t, x, 1, &xm, &w)) != SCORE_OK)
        return rc;
    if (probes != NULL && w != 0.0 && (rc = guided_probes(__func__, sde, n, k, &probes)) != SCORE_OK)
        return rc;
    if (probes == NULL)
        rc = model_trace(__func__, sde, score__sde_model_rows(n, w), xm, drift_out != NULL);
    else
        rc = model_hutchinson(__func__, sde, score__sde_model_rows(n, w), xm, k, probes, drift_out != NULL);
    if (rc != SCORE_OK)
        return rc;
    fold_traces(sde, n, w);
    if (drift_out != NULL &&
        (rc = score__sde_combine(__func__, sde, SCORE__SDE_WANT_PF, n, t, x, sde->fout, w, drift_out)) != SCORE_OK)
        return rc;
    return score_div(__func__, sde, n, t, div, 1);
}

