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

int score_model_energy(score_model *model, size_t n, const float *x, const double *c,
                       double *E_out)
{
    score__model_ws *ws;
    int rc;
    if (model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model is NULL");
    if (n > 0 && (x == NULL || c == NULL || E_out == NULL))
        return score__error(SCORE_E_INVAL, __func__, "x, c or E_out is NULL");
    if (n > SIZE_MAX / 64 / model->dim)
        return score__error(SCORE_E_RANGE, __func__, "batch of %zu rows is too large", n);
    if (model->ops->energy == NULL)
        return score__model_energy_ws(__func__, model, NULL, n, x, c, E_out);
    if (n == 0)
        return SCORE_OK;
    if (score__model_ws_new(&ws) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, __func__, "workspace allocation failed");
    rc = score__model_energy_ws(__func__, model, ws, n, x, c, E_out);
    score__model_ws_free(ws);
    return rc;
}
