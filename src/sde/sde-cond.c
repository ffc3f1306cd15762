/* Conditions of an sde's evaluations: the class label, the context vector and classifier-free
 * guidance on one network (sde.h, "Conditions"), bound to the model's workspace per call. */
#include <math.h>
#include <string.h>

#include "model/model-priv.h"
#include "sde-priv.h"

/* ---- conditions: label, context, guidance ----------------------------------------------- */

int score_sde_set_label(score_sde *sde, int64_t label)
{
    int64_t K;
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde is NULL");
    if (label == SCORE_LABEL_NULL) {
        sde->label = SCORE_LABEL_NULL;
        return SCORE_OK;
    }
    /* with a classifier attached its classes are the labels (a conditional model then has as
     * many, checked by score_sde_set_classifier()) */
    K = sde->clf != NULL ? score__sde_classifier_classes(sde)
                         : score__model_i64(sde->model, SCORE_MODEL_PARAM_NUM_CLASSES);
    if (K == 0)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "the model takes no labels (SCORE_MODEL_PARAM_NUM_CLASSES = 0) and "
                            "no classifier is set");
    if (label < 0 || label >= K)
        return score__error(SCORE_E_RANGE, __func__,
                            "label %lld not in [0, %lld] (SCORE_LABEL_NULL for the null label)",
                            (long long)label, (long long)(K - 1));
    sde->label = label;
    sde->label32 = (int32_t)label;
    return SCORE_OK;
}

int score_sde_set_context(score_sde *sde, size_t m, const float *values)
{
    int64_t M;
    float *copy;
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde is NULL");
    if (values == NULL) {
        score__free(sde->ctx);
        sde->ctx = NULL;
        sde->ctx_m = 0;
        return SCORE_OK;
    }
    M = score__model_i64(sde->model, SCORE_MODEL_PARAM_CONTEXT_DIM);
    if (M == 0)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "the model takes no context vector (SCORE_MODEL_PARAM_CONTEXT_DIM = 0)");
    if (m != (size_t)M)
        return score__error(SCORE_E_SHAPE, __func__, "context of %zu values, the model takes %lld",
                            m, (long long)M);
    if (!score__all_finite_f32(m, values))
        return score__error(SCORE_E_NUMERIC, __func__, "the context contains NaN or infinity");
    if ((copy = score__calloc(m, sizeof(float))) == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    memcpy(copy, values, m * sizeof(float));
    score__free(sde->ctx);
    sde->ctx = copy;
    sde->ctx_m = m;
    return SCORE_OK;
}

/* The context of the next evaluation into the model workspace, checked against the current
 * model (which may have been replaced since the context was set). */
int score__sde_bind_context(const char *fn, score_sde *sde)
{
    int64_t M = score__model_i64(sde->model, SCORE_MODEL_PARAM_CONTEXT_DIM);
    if ((size_t)M != sde->ctx_m && sde->ctx == NULL)
        return score__error(SCORE_E_INVAL, fn,
                            "the model takes a context vector of %lld values: set it with "
                            "score_sde_set_context()", (long long)M);
    if ((size_t)M != sde->ctx_m)
        return score__error(SCORE_E_SHAPE, fn, "a context of %zu values is set, the model takes "
                            "%lld", sde->ctx_m, (long long)M);
    sde->mws->context = sde->ctx;
    sde->mws->context_per_row = 0;
    return SCORE_OK;
}

/* The label(s) of the next evaluation of n rows into the model workspace, checked against the
 * current model; *w receives the guidance weight in effect: 0, or w != 0 for a guided batch of
 * 2n rows (the label for rows 0..n-1, the null label K for rows n..2n-1, in sde->glab). */
int score__sde_bind_labels(const char *fn, score_sde *sde, size_t n, double *w)
{
    int64_t K = score__model_i64(sde->model, SCORE_MODEL_PARAM_NUM_CLASSES);
    score__model_ws *ws = sde->mws;
    *w = score__sde_par_f(sde, SCORE_SDE_PARAM_GUIDANCE);
    if (sde->clf != NULL) {
        int64_t Kc = score__sde_classifier_classes(sde);
        if (sde->label != SCORE_LABEL_NULL && sde->label >= Kc)
            return score__error(SCORE_E_RANGE, fn, "label %lld is set, the classifier has %lld "
                                "classes", (long long)sde->label, (long long)Kc);
        if (sde->clf_w != 0.0 && sde->label == SCORE_LABEL_NULL)
            return score__error(SCORE_E_INVAL, fn,
                                "classifier guidance weight %g needs a class label: set one "
                                "with score_sde_set_label()", sde->clf_w);
        if (K != 0 && K != Kc)
            return score__error(SCORE_E_INVAL, fn, "the model takes %lld classes, the "
                                "classifier has %lld (the model was replaced?)", (long long)K,
                                (long long)Kc);
        if (K == 0) { /* the label is the classifier's alone */
            if (*w != 0.0)
                return score__error(SCORE_E_INVAL, fn,
                                    "classifier-free guidance weight %g needs a model that "
                                    "takes labels (the label goes to the classifier only)", *w);
            ws->labels_per_row = 0;
            ws->labels = NULL;
            return SCORE_OK;
        }
    }
    if (sde->label != SCORE_LABEL_NULL && sde->label >= K)
        return score__error(K == 0 ? SCORE_E_UNSUPPORTED : SCORE_E_RANGE, fn,
                            "label %lld is set, the model takes %lld classes (it was replaced?)",
                            (long long)sde->label, (long long)K);
    if (*w != 0.0 && sde->label == SCORE_LABEL_NULL)
        return score__error(SCORE_E_INVAL, fn,
                            "guidance weight %g needs a class label: set one with "
                            "score_sde_set_label() (the model must take labels)", *w);
    ws->labels_per_row = 0;
    ws->labels = sde->label == SCORE_LABEL_NULL ? NULL : &sde->label32;
    if (*w == 0.0)
        return SCORE_OK;
    if (n > SIZE_MAX / 2 / sizeof(int32_t))
        return score__error(SCORE_E_NOMEM, fn, "batch of %zu rows is too large", n);
    if (2 * n > sde->cap_g) {
        int32_t *g = score__calloc(2 * n, sizeof(int32_t));
        if (g == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation for %zu rows failed", n);
        score__free(sde->glab);
        sde->glab = g;
        sde->cap_g = 2 * n;
    }
    for (size_t b = 0; b < n; b++) {
        sde->glab[b] = sde->label32;
        sde->glab[n + b] = (int32_t)K;
    }
    ws->labels = sde->glab;
    ws->labels_per_row = 1;
    return SCORE_OK;
}
