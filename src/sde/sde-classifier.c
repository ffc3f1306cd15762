/* Classifier guidance on the sde (score_sde_set_classifier()): the score of every evaluation
 * becomes s(x, t) + w grad_x log p(y | x_t, t) for the sde's label y, computed in one cached
 * forward pass and one back-propagation of the classifier over the batch. The term is added
 * in score units before the map to eps / x0 / drifts (score__sde_combine), so every output
 * kind and every sampler sees the guided score. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/classifier-priv.h"
#include "schedule/schedule-priv.h"
#include "sde-priv.h"

int64_t score__sde_classifier_classes(const score_sde *sde)
{
    return sde->clf != NULL ? (int64_t)score__classifier_classes(sde->clf) : 0;
}

void score__sde_classifier_free(score_sde *sde)
{
    score__clf_ws_free(sde->cws);
    score__free(sde->cgx);
    sde->cws = NULL;
    sde->cgx = NULL;
    sde->cap_cg = 0;
    sde->clf = NULL;
}

int score_sde_set_classifier(score_sde *sde, score_model *clf, double w)
{
    int64_t K;
    size_t Kc;
    int rc;
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde is NULL");
    if (clf == NULL) {
        sde->clf = NULL;
        sde->clf_w = 0.0;
        return SCORE_OK;
    }
    if (!(w >= -1e6 && w <= 1e6))
        return score__error(SCORE_E_RANGE, __func__, "weight %g not in [-1e6, 1e6]", w);
    if (score_model_kind(clf) != SCORE_MODEL_CLASSIFIER)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "the model (kind %d) is not a "
                            "classifier (SCORE_MODEL_CLASSIFIER)", score_model_kind(clf));
    if ((rc = score_model_prepare(clf)) != SCORE_OK)
        return rc;
    if (score_model_dim(clf) != sde->dim)
        return score__error(SCORE_E_SHAPE, __func__, "the classifier has dimension %zu, the sde "
                            "%zu", score_model_dim(clf), sde->dim);
    if ((rc = score__schedule_compare("the classifier's schedule and the sde's",
                                      score_classifier_schedule(clf), sde->sched)) != SCORE_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", score_last_error_message());
        return score__error(rc, __func__, "%s", msg);
    }
    Kc = score__classifier_classes(clf);
    K = score_model_get_i64(sde->model, SCORE_MODEL_PARAM_NUM_CLASSES, &K) == SCORE_OK ? K : 0;
    if (K != 0 && (size_t)K != Kc)
        return score__error(SCORE_E_INVAL, __func__, "the classifier has %zu classes, the model "
                            "takes %lld labels", Kc, (long long)K);
    if (sde->cws == NULL && score__clf_ws_new(&sde->cws) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    sde->clf = clf;
    sde->clf_w = w;
    return SCORE_OK;
}

int score__sde_refuse_classifier(const char *fn, const score_sde *sde)
{
    if (sde->clf != NULL && sde->clf_w != 0.0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the divergence of a classifier-guided score needs the classifier's "
                            "Hessian, which is not provided (remove the classifier, or set its "
                            "weight to 0, for likelihoods)");
    return SCORE_OK;
}

int score__sde_classifier_term(const char *fn, score_sde *sde, size_t n, const double *t,
                               const float *x)
{
    size_t nd;
    sde->cg = NULL;
    if (sde->clf == NULL || sde->clf_w == 0.0)
        return SCORE_OK;
    if (score__mul_size(n, sde->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, fn, "batch of %zu rows is too large", n);
    if (nd > sde->cap_cg) {
        float *g = score__calloc(nd, sizeof *g);
        if (g == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation for %zu rows failed", n);
        score__free(sde->cgx);
        sde->cgx = g;
        sde->cap_cg = nd;
    }
    /* the label was checked by the call's label binding; x is x_t, t the time itself */
    {
        int rc = score__classifier_eval(fn, sde->clf, sde->cws, n, x, t, &sde->label32, 0, NULL,
                                        NULL, sde->cgx, 1.0, NULL, NULL);
        if (rc != SCORE_OK) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", score_last_error_message());
            return score__error(rc, fn, "the classifier evaluation: %s", msg);
        }
    }
    sde->cg = sde->cgx;
    return SCORE_OK;
}
