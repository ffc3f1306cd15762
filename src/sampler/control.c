/* Step-size control: scaled RMS error per row and the standard proposal
 * h' = h min(fac_max, max(fac_min, safety err^(-1/(q+1)))). */
#include <math.h>

#include "adapt-priv.h"

#define NPARAMS 8
/* Value of a parameter in a value array laid out like control_params. */
#define PF(vals, id) SCORE__PARAM_F64(vals, SCORE_CONTROL_PARAM_RTOL, id)

struct score_control {
    score__param_val params[NPARAMS];
};

static const score__param_desc control_params[NPARAMS] = {
    SCORE__PARAM_ROW_RTOL(SCORE_CONTROL_PARAM_RTOL, "relative tolerance"),
    SCORE__PARAM_ROW_ATOL(SCORE_CONTROL_PARAM_ATOL, "absolute tolerance"),
    {SCORE_CONTROL_PARAM_SAFETY, "safety", SCORE_PARAM_F64, 0.01, 1, 0.9, "safety factor"},
    {SCORE_CONTROL_PARAM_FAC_MIN, "fac_min", SCORE_PARAM_F64, 1e-4, 1, 0.2,
     "smallest step-size factor"},
    {SCORE_CONTROL_PARAM_FAC_MAX, "fac_max", SCORE_PARAM_F64, 1, 1000, 10,
     "largest step-size factor"},
    {SCORE_CONTROL_PARAM_H_MIN, "h_min", SCORE_PARAM_F64, 0, 1e6, 1e-10,
     "smallest step size (below: SCORE_E_NOPROGRESS)"},
    {SCORE_CONTROL_PARAM_H_MAX, "h_max", SCORE_PARAM_F64, 0, 1e6, 0,
     "largest step size; 0 = unlimited"},
    SCORE__PARAM_ROW_NORM(SCORE_CONTROL_PARAM_NORM),
};

const score__param_desc *score__control_param_table(size_t *n_out);
const score__param_desc *score__control_param_table(size_t *n_out)
{
    *n_out = NPARAMS;
    return control_params;
}

static void vals_from(const score__param_val *p, score__control_vals *v)
{
    v->rtol = PF(p, SCORE_CONTROL_PARAM_RTOL);
    v->atol = PF(p, SCORE_CONTROL_PARAM_ATOL);
    v->safety = PF(p, SCORE_CONTROL_PARAM_SAFETY);
    v->fac_min = PF(p, SCORE_CONTROL_PARAM_FAC_MIN);
    v->fac_max = PF(p, SCORE_CONTROL_PARAM_FAC_MAX);
    v->h_min = PF(p, SCORE_CONTROL_PARAM_H_MIN);
    v->h_max = PF(p, SCORE_CONTROL_PARAM_H_MAX);
    v->batch_norm = SCORE__PARAM_I64(p, SCORE_CONTROL_PARAM_RTOL, SCORE_CONTROL_PARAM_NORM) ==
                    SCORE_CONTROL_NORM_BATCH;
}

void score__control_defaults(score__control_vals *v)
{
    score__param_val p[NPARAMS];
    score__param_defaults(control_params, NPARAMS, p);
    vals_from(p, v);
}

void score__control_get(const score_control *c, score__control_vals *v)
{
    vals_from(c->params, v);
}

double score__control_norm(double acc, size_t width)
{
    return isfinite(acc) ? sqrt(acc / (double)width) : INFINITY;
}

int score__control_propose(const score__control_vals *v, int error_order, double err,
                           double *h)
{
    double fac;
    int accept = err <= 1.0;
    if (!(err >= 0.0) || isinf(err)) {
        *h *= v->fac_min;
        return 0;
    }
    fac = err > 0.0 ? v->safety * pow(err, -1.0 / ((double)error_order + 1.0)) : v->fac_max;
    if (fac > v->fac_max)
        fac = v->fac_max;
    if (fac < v->fac_min)
        fac = v->fac_min;
    if (!accept && fac > 1.0)
        fac = 1.0;
    *h *= fac;
    if (v->h_max > 0.0 && *h > v->h_max)
        *h = v->h_max;
    return accept;
}

int score_control_new(score_control **out)
{
    score_control *c;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    c = score__calloc(1, sizeof *c);
    if (c == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    score__param_defaults(control_params, NPARAMS, c->params);
    *out = c;
    return SCORE_OK;
}

int score_control_new_tol(score_control **out, double atol, double rtol)
{
    score_control *c;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    rc = score_control_new(&c);
    if (rc != SCORE_OK)
        return rc;
    rc = score_control_set_f64(c, SCORE_CONTROL_PARAM_ATOL, atol);
    if (rc == SCORE_OK)
        rc = score_control_set_f64(c, SCORE_CONTROL_PARAM_RTOL, rtol);
    if (rc != SCORE_OK) {
        score_control_free(c);
        return rc;
    }
    *out = c;
    return SCORE_OK;
}

void score_control_free(score_control *c)
{
    score__free(c);
}

int score_control_set_f64(score_control *c, int param, double value)
{
    score__param_val saved[NPARAMS];
    int rc;
    if (c == NULL)
        return score__error(SCORE_E_INVAL, __func__, "control is NULL");
    for (int i = 0; i < NPARAMS; i++)
        saved[i] = c->params[i];
    rc = score__param_set_f64(__func__, control_params, NPARAMS, c->params, param, value);
    if (rc != SCORE_OK)
        return rc;
    if (!(PF(c->params, SCORE_CONTROL_PARAM_RTOL) + PF(c->params, SCORE_CONTROL_PARAM_ATOL) >
          0.0)) {
        for (int i = 0; i < NPARAMS; i++)
            c->params[i] = saved[i];
        return score__error(SCORE_E_RANGE, __func__, "rtol and atol cannot both be 0");
    }
    return SCORE_OK;
}

int score_control_get_f64(const score_control *c, int param, double *out)
{
    if (c == NULL)
        return score__error(SCORE_E_INVAL, __func__, "control is NULL");
    return score__param_get_f64(__func__, control_params, NPARAMS, c->params, param, out);
}

int score_control_set_i64(score_control *c, int param, int64_t value)
{
    if (c == NULL)
        return score__error(SCORE_E_INVAL, __func__, "control is NULL");
    return score__param_set_i64(__func__, control_params, NPARAMS, c->params, param, value);
}

int score_control_get_i64(const score_control *c, int param, int64_t *out)
{
    if (c == NULL)
        return score__error(SCORE_E_INVAL, __func__, "control is NULL");
    return score__param_get_i64(__func__, control_params, NPARAMS, c->params, param, out);
}

int score_control_error(const score_control *c, size_t n, size_t dim, const float *x,
                        const float *x_new, const float *xerr, double *err)
{
    score__control_vals v;
    if (c == NULL || err == NULL || (n > 0 && (x == NULL || x_new == NULL || xerr == NULL)))
        return score__error(SCORE_E_INVAL, __func__, "NULL argument");
    if (dim == 0)
        return score__error(SCORE_E_INVAL, __func__, "dim is 0");
    if (n > SIZE_MAX / dim)
        return score__error(SCORE_E_RANGE, __func__, "%zu rows of %zu values is too large", n, dim);
    score__control_get(c, &v);
    for (size_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            acc += score__control_term(&v, (double)x[q], (double)x_new[q], (double)xerr[q]);
        }
        err[i] = score__control_norm(acc, dim);
    }
    return SCORE_OK;
}

int score_control_hadjust(const score_control *c, int error_order, double err, double *h,
                          int *decision_out)
{
    score__control_vals v;
    double h0;
    int acc;
    if (c == NULL || h == NULL)
        return score__error(SCORE_E_INVAL, __func__, "control or h is NULL");
    if (!isfinite(*h) || !(*h > 0.0))
        return score__error(SCORE_E_INVAL, __func__, "h = %g must be finite and > 0", *h);
    if (error_order < 1)
        return score__error(SCORE_E_RANGE, __func__, "error order %d < 1", error_order);
    score__control_get(c, &v);
    h0 = *h;
    acc = score__control_propose(&v, error_order, err, h);
    if (decision_out != NULL)
        *decision_out = !acc ? SCORE_CONTROL_HADJ_DEC
                             : (*h > h0 ? SCORE_CONTROL_HADJ_INC : SCORE_CONTROL_HADJ_NIL);
    return SCORE_OK;
}
