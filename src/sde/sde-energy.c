/* The energy of an sde's score (score_sde_energy(), energy.h): with the universal form
 * s = a F(in x, cond) + k x of sde.c and a model whose output is F = -grad_u E(u, cond),
 * s = -grad_x U with U(x) = (a / in) E(in x, cond) - k |x|^2 / 2. */
#include <math.h>

#include "libscore/energy.h"
#include "model/model-priv.h"
#include "sde-priv.h"

int score_sde_energy(score_sde *sde, size_t n, const double *t, const float *x, double *E_out)
{
    const float *xm;
    double w = 0.0;
    int rc = score__sde_check_args(__func__, sde, n, t, x, E_out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    if (!score_model_has_energy(sde->model))
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "the sde's %s model has no energy (energy models, the analytic models "
                            "and weighted sums of them have one)", sde->model->ops->name);
    if (sde->clf != NULL && sde->clf_w != 0.0)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "classifier guidance has no energy (its score is not the gradient of "
                            "the model's)");
    rc = score__sde_open_call(__func__, sde, n, t, x, 0, &xm, &w);
    if (rc != SCORE_OK)
        return rc;
    if (w != 0.0)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "a guided sde (SCORE_SDE_PARAM_GUIDANCE != 0) has no energy: build a "
                            "weighted sum of energy models instead");
    sde->nfe++;
    rc = score__model_energy_ws(__func__, sde->model, sde->mws, n, xm, sde->cond, E_out);
    if (rc != SCORE_OK)
        return score__sde_model_call_failed(__func__, rc);
    for (size_t b = 0; b < n; b++) {
        double q = 0.0;
        for (size_t j = 0; j < sde->dim; j++)
            q += (double)x[b * sde->dim + j] * (double)x[b * sde->dim + j];
        E_out[b] = sde->a[b] / sde->in[b] * E_out[b] - 0.5 * sde->k[b] * q;
        if (!isfinite(E_out[b]))
            return score__error(SCORE_E_NUMERIC, __func__, "the energy of row %zu is not finite", b);
    }
    return SCORE_OK;
}
