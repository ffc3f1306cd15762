/* Callback models: F(x, c) computed by user functions (an external network), optionally with a
 * parameter vector the library holds (score_model_new_callback_params(): trainable).
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
    /* trainable kind: theta (np floats, score__calloc: the trainer may exchange it), the
     * forward and the vector-Jacobian products; fn == NULL then */
    score_model_param_fn pfn;
    score_model_param_vjp_fn pvjp;
    float *params;
    size_t np;
} callback_impl;

/* Workspace part of the trainable kind: the rows of the last forward (for backward) and the
 * gathered probes of a multi-probe VJP; grown on demand. */
typedef struct {
    float *x, *g, *o;
    double *c;
    size_t cap_x, cap_c, cap_g, cap_o;
} cbp_ws;

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

/* ---- trainable kind -------------------------------------------------------------------- */

#define CALLBACK_MAX_PARAMS ((size_t)1 << 31)

static int cbp_ws_new(void **out)
{
    *out = score__calloc(1, sizeof(cbp_ws));
    return *out ? SCORE_OK : SCORE_E_NOMEM;
}

static void cbp_ws_free(void *kind)
{
    cbp_ws *W = kind;
    if (W == NULL)
        return;
    score__free(W->x);
    score__free(W->c);
    score__free(W->g);
    score__free(W->o);
    score__free(W);
}

/* Grows *buf to hold `need` elements of `size` bytes (contents not kept). */
static int grow(void **buf, size_t *cap, size_t need, size_t size)
{
    void *p;
    if (need <= *cap)
        return SCORE_OK;
    p = score__calloc(need, size);
    if (p == NULL)
        return SCORE_E_NOMEM;
    score__free(*buf);
    *buf = p;
    *cap = need;
    return SCORE_OK;
}

static int cbp_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, float *out)
{
    const callback_impl *I = m->impl;
    return user_status(ws, "score_model_forward", "model",
                       I->pfn(n, m->dim, x, c, I->params, I->np, out, I->fn_data));
}

/* The forward of a training step: keeps x and c for backward. */
static int cbp_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                       const double *c, float *out)
{
    cbp_ws *W = ws->kind;
    size_t nd = n * m->dim;
    if (grow((void **)&W->c, &W->cap_c, n, sizeof *W->c) != SCORE_OK ||
        grow((void **)&W->x, &W->cap_x, nd, sizeof *W->x) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, "score_model_forward",
                            "no memory to keep %zu rows for backward", n);
    memcpy(W->x, x, nd * sizeof *x);
    memcpy(W->c, c, n * sizeof *c);
    return cbp_infer(m, ws, n, x, c, out);
}

static int cbp_backward(const score_model *m, score__model_ws *ws, size_t n, const float *gout,
                        float *grad, float *gx)
{
    const callback_impl *I = m->impl;
    const cbp_ws *W = ws->kind;
    if (grad == NULL && gx == NULL)
        return SCORE_OK;
    return user_status(ws, "score_model_backward", "vjp",
                       I->pvjp(n, m->dim, W->x, W->c, I->params, I->np, gout, grad, gx,
                               I->fn_data));
}

/* out[b, p] = u[b, p]^T dF/dx_b: one user call per probe (probes gathered row-contiguous). */
static int cbp_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, size_t k, const float *u, float *out)
{
    const callback_impl *I = m->impl;
    cbp_ws *W = ws->kind;
    size_t d = m->dim;
    if (k == 1)
        return user_status(ws, "score_model_vjp", "vjp",
                           I->pvjp(n, d, x, c, I->params, I->np, u, NULL, out, I->fn_data));
    if (grow((void **)&W->o, &W->cap_o, n * d, sizeof *W->o) != SCORE_OK ||
        grow((void **)&W->g, &W->cap_g, n * d, sizeof *W->g) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, "score_model_vjp", "no memory for %zu probe rows", n);
    for (size_t p = 0; p < k; p++) {
        int rc;
        for (size_t b = 0; b < n; b++)
            memcpy(W->g + b * d, u + (b * k + p) * d, d * sizeof *u);
        rc = user_status(ws, "score_model_vjp", "vjp",
                         I->pvjp(n, d, x, c, I->params, I->np, W->g, NULL, W->o, I->fn_data));
        if (rc != SCORE_OK)
            return rc;
        for (size_t b = 0; b < n; b++)
            memcpy(out + (b * k + p) * d, W->o + b * d, d * sizeof *out);
    }
    return SCORE_OK;
}

static size_t cbp_param_count(const score_model *m)
{
    return ((const callback_impl *)m->impl)->np;
}

static void cbp_params_get(const score_model *m, float *buf)
{
    const callback_impl *I = m->impl;
    memcpy(buf, I->params, I->np * sizeof *buf);
}

static void cbp_params_set(score_model *m, const float *buf)
{
    callback_impl *I = m->impl;
    memcpy(I->params, buf, I->np * sizeof *buf);
}

static float **cbp_params_slot(score_model *m)
{
    return &((callback_impl *)m->impl)->params;
}

/* Same user network: the same functions and parameter count (user_data may differ). */
static int cbp_same_arch(const score_model *a, const score_model *b)
{
    const callback_impl *A = a->impl, *B = b->impl;
    return A->pfn == B->pfn && A->pvjp == B->pvjp && A->np == B->np;
}

static void cb_update_ops(callback_impl *I)
{
    I->ops.jvp = I->jvp ? cb_jvp : NULL;
    I->ops.trace = I->div ? cb_trace : NULL;
}

static void cb_destroy_impl(score_model *m)
{
    callback_impl *I = m->impl;
    if (I != NULL)
        score__free(I->params);
    score__free(I);
    m->impl = NULL;
}

static int cb_clone_impl(score_model *dst, const score_model *src)
{
    const callback_impl *S = src->impl;
    callback_impl *I = score__calloc(1, sizeof *I);
    if (I == NULL)
        return SCORE_E_NOMEM;
    *I = *S;
    if (S->params != NULL) {
        I->params = score__calloc(S->np, sizeof *I->params);
        if (I->params == NULL) {
            score__free(I);
            return SCORE_E_NOMEM;
        }
        memcpy(I->params, S->params, S->np * sizeof *I->params);
    }
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

int score_model_new_callback_params(score_model **out, size_t dim, size_t n_params,
                                    score_model_param_fn fn, score_model_param_vjp_fn vjp,
                                    void *user_data)
{
    callback_impl *I;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (fn == NULL || vjp == NULL)
        return score__error(SCORE_E_INVAL, __func__, "fn or vjp is NULL");
    if (dim == 0 || dim > CALLBACK_MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, 2^20]", dim);
    if (n_params == 0 || n_params > CALLBACK_MAX_PARAMS)
        return score__error(SCORE_E_RANGE, __func__, "n_params %zu not in [1, 2^31]", n_params);
    I = score__calloc(1, sizeof *I);
    if (I == NULL || (I->params = score__calloc(n_params, sizeof *I->params)) == NULL) {
        score__free(I);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    I->ops.name = "callback";
    I->ops.forward = cbp_forward;
    I->ops.infer = cbp_infer;
    I->ops.backward = cbp_backward;
    I->ops.vjp = cbp_vjp;
    I->ops.ws_new = cbp_ws_new;
    I->ops.ws_free = cbp_ws_free;
    I->ops.param_count = cbp_param_count;
    I->ops.params_get = cbp_params_get;
    I->ops.params_set = cbp_params_set;
    I->ops.params_slot = cbp_params_slot;
    I->ops.same_arch = cbp_same_arch;
    I->ops.clone_impl = cb_clone_impl;
    I->ops.destroy_impl = cb_destroy_impl;
    I->pfn = fn;
    I->pvjp = vjp;
    I->fn_data = user_data;
    I->np = n_params;
    rc = score__model_alloc(out, SCORE_MODEL_CALLBACK, dim, &I->ops);
    if (rc != SCORE_OK) {
        score__free(I->params);
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
    if (((callback_impl *)m->impl)->pfn != NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "a callback model with parameters takes its input derivatives "
                            "from its vjp function (score_model_new_callback_params())");
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
