/* Callback models: F(x, c) computed by user functions (an external network).
 *
 * The ops table lives inside the impl so that the capabilities follow what the user registered
 * (jvp, divergence); clone_impl re-points the copy's ops at its own table. */
#include <string.h>

#include "model-priv.h"

#define CALLBACK_MAX_DIM ((size_t)1 << 20)

typedef struct callback_impl {
    score__model_ops ops;
    score_model_fn fn;
    void *fn_data;
    score_model_jvp_fn jvp;
    void *jvp_data;
    score_model_divergence_fn div;
    void *div_data;
} callback_impl;

/* Records the user's status in the caller's workspace (the generic layer publishes it as the
 * model's) and turns a failure into SCORE_E_CALLBACK. */
static int user_status(score__model_ws *ws, const char *fn, const char *what, int st)
{
    ws->cb_status = st;
    if (st == 0)
        return SCORE_OK;
    return score__error(SCORE_E_CALLBACK, fn, "the user %s function returned %d (%s)", what, st,
                        st > 0 ? "recoverable" : "fatal");
}

static int cb_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, float *out)
{
    const callback_impl *I = m->impl;
    return user_status(ws, "score_model_forward", "model",
                       I->fn(n, m->dim, x, c, out, I->fn_data));
}

static int cb_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, size_t k, const float *v, float *out, float *fx)
{
    const callback_impl *I = m->impl;
    int rc;
    if (fx != NULL) {
        rc = user_status(ws, "score_model_jvp", "model", I->fn(n, m->dim, x, c, fx, I->fn_data));
        if (rc != SCORE_OK)
            return rc;
    }
    return user_status(ws, "score_model_jvp", "jvp",
                       I->jvp(n, m->dim, x, c, k, v, out, I->jvp_data));
}

static int cb_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                    const double *c, double *tr, float *fx)
{
    const callback_impl *I = m->impl;
    int rc;
    if (fx != NULL) {
        rc = user_status(ws, "score_model_trace", "model",
                         I->fn(n, m->dim, x, c, fx, I->fn_data));
        if (rc != SCORE_OK)
            return rc;
    }
    return user_status(ws, "score_model_trace", "divergence",
                       I->div(n, m->dim, x, c, tr, I->div_data));
}

static void cb_update_ops(callback_impl *I)
{
    I->ops.jvp = I->jvp ? cb_jvp : NULL;
    I->ops.trace = I->div ? cb_trace : NULL;
}

static void cb_destroy_impl(score_model *m)
{
    score__free(m->impl);
    m->impl = NULL;
}

static int cb_clone_impl(score_model *dst, const score_model *src)
{
    callback_impl *I = score__calloc(1, sizeof *I);
    if (I == NULL)
        return SCORE_E_NOMEM;
    *I = *(const callback_impl *)src->impl;
    dst->impl = I;
    dst->ops = &I->ops;
    return SCORE_OK;
}

int score_model_new_callback(score_model **out, size_t dim, score_model_fn fn, void *user_data)
{
    callback_impl *I;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (fn == NULL)
        return score__error(SCORE_E_INVAL, __func__, "fn is NULL");
    if (dim == 0 || dim > CALLBACK_MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, 2^20]", dim);
    I = score__calloc(1, sizeof *I);
    if (I == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    I->ops.name = "callback";
    I->ops.forward = cb_forward;
    I->ops.clone_impl = cb_clone_impl;
    I->ops.destroy_impl = cb_destroy_impl;
    I->fn = fn;
    I->fn_data = user_data;
    cb_update_ops(I);
    rc = score__model_alloc(out, SCORE_MODEL_CALLBACK, dim, &I->ops);
    if (rc != SCORE_OK) {
        score__free(I);
        return score__error(rc, __func__, "allocation failed");
    }
    (*out)->impl = I;
    (*out)->prepared = 1;
    return SCORE_OK;
}

static int get_callback(const char *fn, score_model *m, callback_impl **out)
{
    if (m == NULL)
        return score__error(SCORE_E_INVAL, fn, "model is NULL");
    if (m->kind != SCORE_MODEL_CALLBACK)
        return score__error(SCORE_E_UNSUPPORTED, fn, "%s models are not callback models", m->ops->name);
    *out = m->impl;
    return SCORE_OK;
}

int score_model_callback_set_jvp(score_model *model, score_model_jvp_fn fn, void *user_data)
{
    callback_impl *I = NULL;
    int rc = get_callback(__func__, model, &I);
    if (rc != SCORE_OK)
        return rc;
    I->jvp = fn;
    I->jvp_data = fn ? user_data : NULL;
    cb_update_ops(I);
    return SCORE_OK;
}

int score_model_callback_set_divergence(score_model *model, score_model_divergence_fn fn,
                                        void *user_data)
{
    callback_impl *I = NULL;
    int rc = get_callback(__func__, model, &I);
    if (rc != SCORE_OK)
        return rc;
    I->div = fn;
    I->div_data = fn ? user_data : NULL;
    cb_update_ops(I);
    return SCORE_OK;
}

int score_model_last_callback_status(const score_model *model)
{
    return model ? atomic_load_explicit(&model->last_callback_status, memory_order_relaxed) : 0;
}
