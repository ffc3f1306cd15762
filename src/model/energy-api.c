/* The public entry points of energies (include/libscore/energy.h): the constructor of the
 * energy kind and score_model_energy() for every kind with an energy op. */
#include "libscore/energy.h"
#include <math.h>

#include "model-priv.h"

int score_model_new_energy(score_model **out, size_t dim)
{
    return score_model_new(out, SCORE_MODEL_ENERGY, dim);
}

int score_model_has_energy(const score_model *model)
{
    return model != NULL && model->ops->energy != NULL;
}

int score__model_energy_ws(const char *fn, const score_model *m, score__model_ws *ws, size_t n,
                           const float *x, const double *c, double *E)
{
    int rc;
    if (m->ops->energy == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "%s models have no energy (energy models, the analytic models and "
                            "weighted sums of them have one)", m->ops->name);
    if (!m->prepared && (rc = score_model_prepare((score_model *)m)) != SCORE_OK)
        return rc;
    if ((rc = score__model_ws_bind(fn, m, ws)) != SCORE_OK)
        return rc;
    if ((rc = m->ops->energy(m, ws, n, x, c, E)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++)
        if (!isfinite(E[b]))
            return score__error(SCORE_E_NUMERIC, fn, "the energy of row %zu is %g%s", b, E[b],
                                score__all_finite_f32(m->dim, x + b * m->dim)
                                    ? "" : " (the row holds NaN or infinity)");
    return SCORE_OK;
}

/* score_model_energy() and score_model_energy_cond(): the checks, then the energy through a
 * workspace of the call holding the rows' labels and context (cond: 0 for score_model_energy,
 * whose model must then have no context input). */
static int energy_public(const char *fn, score_model *model, size_t n, const float *x,
                         const double *c, int cond, const int32_t *labels, const float *context,
                         double *E_out)
{
    score__model_ws *ws;
    int rc;
    if (model == NULL)
        return score__error(SCORE_E_INVAL, fn, "model is NULL");
    if (n > 0 && (x == NULL || c == NULL || E_out == NULL))
        return score__error(SCORE_E_INVAL, fn, "x, c or E_out is NULL");
    if (n > SIZE_MAX / 64 / model->dim)
        return score__error(SCORE_E_RANGE, fn, "batch of %zu rows is too large", n);
    if (model->ops->energy == NULL)
        return score__model_energy_ws(fn, model, NULL, n, x, c, E_out);
    if (n == 0)
        return SCORE_OK;
    if (cond && (rc = score__model_check_cond(fn, model, n, labels, context)) != SCORE_OK)
        return rc;
    if (score__model_ws_new(&ws) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    ws->labels = labels;
    ws->labels_per_row = 1;
    ws->context = context;
    ws->context_per_row = 1;
    rc = score__model_energy_ws(fn, model, ws, n, x, c, E_out);
    score__model_ws_free(ws);
    return rc;
}

int score_model_energy(score_model *model, size_t n, const float *x, const double *c,
                       double *E_out)
{
    return energy_public(__func__, model, n, x, c, 0, NULL, NULL, E_out);
}

int score_model_energy_cond(score_model *model, size_t n, const float *x, const double *c,
                            const int32_t *labels, const float *context, double *E_out)
{
    return energy_public(__func__, model, n, x, c, 1, labels, context, E_out);
}
