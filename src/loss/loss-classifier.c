/* SCORE_LOSS_CLASSIFIER: the cross-entropy of a noise-conditional classifier on noised rows
 * x_t = alpha(t) x + sigma(t) z at times t ~ U(t_eps, T), drawn with the keys of the SDE loss
 * (loss.h), under the classifier's own schedule. */
#include <math.h>

#include "libscore/schedule.h"
#include "loss-priv.h"
#include "model/classifier-priv.h"
#include "schedule/schedule-priv.h"

void score__loss_classifier_free(score_loss *L)
{
    score__clf_ws_free(L->cws);
    L->cws = NULL;
}

int score__loss_classifier(const char *fn, score_loss *L, const score_sde *sde, score_model *m,
                           const score_rng *rng, size_t n, const float *x, double *loss_out,
                           float *grad)
{
    const size_t dim = score_model_dim(m), d4 = (dim + 3u) / 4u * 4u;
    const score_schedule *sch;
    double T, te = 0.0;
    size_t K;
    double loss = 0.0;
    int rc;
    if (score_model_kind(m) != SCORE_MODEL_CLASSIFIER)
        return score__error(SCORE_E_UNSUPPORTED, fn, "a classifier loss needs a classifier model "
                            "(SCORE_MODEL_CLASSIFIER), not kind %d", score_model_kind(m));
    if ((rc = score_model_prepare(m)) != SCORE_OK)
        return rc;
    sch = score_classifier_schedule(m);
    if (sde != NULL && (rc = score__schedule_compare("the classifier's schedule and the sde's",
                                                     sch, score_sde_schedule(sde))) != SCORE_OK)
        return score__loss_wrap(fn, rc, "the schedules differ");
    K = score__classifier_classes(m);
    if (L->lab_n == 0)
        return score__error(SCORE_E_INVAL, fn, "a classifier loss needs the labels of the rows "
                            "(score_loss_set_labels())");
    if (L->lab_n != n)
        return score__error(SCORE_E_SHAPE, fn, "labels for %zu rows are set, the batch has %zu",
                            L->lab_n, n);
    for (size_t b = 0; b < n; b++)
        if (L->labels[b] < 0 || (size_t)L->labels[b] >= K)
            return score__error(SCORE_E_RANGE, fn, "label %ld of row %zu not in [0, %zu] (a "
                                "classifier is not trained on the null label)",
                                (long)L->labels[b], b, K - 1);
    if ((rc = score_loss_get_f64(L, SCORE_LOSS_PARAM_T_EPS, &te)) != SCORE_OK ||
        (rc = score_schedule_get_f64(sch, SCORE_SCHEDULE_PARAM_T, &T)) != SCORE_OK)
        return score__loss_wrap(fn, rc, "t_eps and the schedule's T");
    if (!(te < T))
        return score__error(SCORE_E_INVAL, fn, "t_eps = %g is not below the schedule's T = %g", te, T);
    if ((rc = score__loss_reserve(fn, L, n, dim)) != SCORE_OK)
        return rc;
    if (L->cws == NULL && score__clf_ws_new(&L->cws) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    if ((rc = score_rng_fill_uniform_f64(rng, 0, n, d4, 1, L->u)) != SCORE_OK)
        return score__loss_wrap(fn, rc, "time draw");
    if ((rc = score_rng_fill_normal(rng, 0, n, 0, dim, L->z)) != SCORE_OK)
        return score__loss_wrap(fn, rc, "noise draw");
    for (size_t b = 0; b < n; b++) {
        double t = te + L->u[b] * (T - te);
        L->t[b] = t > T ? T : t;
    }
    if ((rc = score_schedule_alpha_sigma(sch, n, L->t, L->al, L->si)) != SCORE_OK)
        return score__loss_wrap(fn, rc, "schedule at the drawn times");
    for (size_t b = 0; b < n; b++)
        for (size_t j = 0; j < dim; j++)
            L->xt[b * dim + j] = (float)(L->al[b] * (double)x[b * dim + j] +
                                         L->si[b] * (double)L->z[b * dim + j]);
    rc = score__classifier_eval(fn, m, L->cws, n, L->xt, L->t, L->labels, 1, NULL, NULL, NULL,
                                0.0, grad, &loss);
    if (rc != SCORE_OK) {
        if (rc == SCORE_E_NUMERIC && loss_out != NULL)
            *loss_out = NAN;
        return rc;
    }
    if (loss_out != NULL)
        *loss_out = loss;
    if (!isfinite(loss))
        return score__error(SCORE_E_NUMERIC, fn, "the classifier loss is not finite (%g)", loss);
    return SCORE_OK;
}
