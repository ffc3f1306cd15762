/* Combination models: F = sum_i w_i F_i over borrowed members (guidance, product of experts).
 *
 * A weighted sum keeps its weights in the impl; a classifier-free-guidance combination reads
 * its weight w from the model parameter SCORE_MODEL_PARAM_GUIDANCE at every call and uses
 * (1 + w, -w). The ops table lives in the impl: an operation exists when every member provided
 * it at construction. Member outputs are accumulated in double in the caller's workspace
 * (score__model_ws), which also holds one workspace per member; it grows with the batch. The
 * combination and its members are only read. The label and context inputs of the rows (the
 * caller's workspace fields) are passed on to every member's workspace. */
#include <math.h>
#include <string.h>

#include "model-priv.h"

#define COMBO_MAX_K 1024

typedef struct combo {
    score__model_ops ops;
    int cfg;
    size_t k;
    score_model **members;
    double *w;
} combo;

/* The combination's part of a workspace. */
typedef struct combo_ws {
    size_t k;
    score__model_ws **mem; /* k member workspaces */
    float *buf;   /* member outputs */
    size_t buf_len;
    double *acc;  /* weighted accumulation */
    size_t acc_len;
    double *tr;   /* member traces */
    size_t tr_len;
    double *dbuf; /* member outputs of the double evaluation */
    size_t dbuf_len;
} combo_ws;

static void co_ws_release(combo_ws *W)
{
    for (size_t i = 0; i < W->k; i++)
        score__model_ws_free(W->mem[i]);
    score__free(W->mem);
    score__free(W->buf);
    score__free(W->acc);
    score__free(W->tr);
    score__free(W->dbuf);
    memset(W, 0, sizeof *W);
}

static int co_ws_new(void **out)
{
    *out = score__calloc(1, sizeof(combo_ws));
    return *out ? SCORE_OK : SCORE_E_NOMEM;
}

static void co_ws_free(void *kind)
{
    if (kind != NULL)
        co_ws_release(kind);
    score__free(kind);
}

/* Grows *p (elements of elem bytes, zeroed) to at least need; the old contents are dropped. */
static int grow(void **p, size_t *len, size_t need, size_t elem)
{
    void *q;
    if (*len >= need)
        return SCORE_OK;
    q = score__calloc(need, elem);
    if (q == NULL)
        return SCORE_E_NOMEM;
    score__free(*p);
    *p = q;
    *len = need;
    return SCORE_OK;
}

static int grow_f(float **p, size_t *len, size_t need)
{
    void *v = *p;
    int rc = grow(&v, len, need, sizeof(float));
    *p = v;
    return rc;
}

static int grow_d(double **p, size_t *len, size_t need)
{
    void *v = *p;
    int rc = grow(&v, len, need, sizeof(double));
    *p = v;
    return rc;
}

static double weight(const score_model *m, const combo *C, size_t i)
{
    if (C->cfg) {
        double g = score__model_f64(m, SCORE_MODEL_PARAM_GUIDANCE);
        return i == 0 ? 1.0 + g : -g;
    }
    return C->w[i];
}

/* The combination's part of ws, with one workspace per member, sized for nout float outputs
 * per call plus ntr traces. */
static int workspace(const char *fn, const combo *C, score__model_ws *ws, size_t nout, size_t ntr,
                     combo_ws **out)
{
    combo_ws *W = ws->kind;
    if (W->k != C->k) {
        co_ws_release(W);
        if ((W->mem = score__calloc(C->k, sizeof *W->mem)) == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
        W->k = C->k;
        for (size_t i = 0; i < C->k; i++)
            if (score__model_ws_new(&W->mem[i]) != SCORE_OK) {
                co_ws_release(W); /* all or nothing: the next call starts again */
                return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
            }
    }
    if (grow_f(&W->buf, &W->buf_len, nout) != SCORE_OK ||
        grow_d(&W->acc, &W->acc_len, nout) != SCORE_OK ||
        (ntr > 0 && grow_d(&W->tr, &W->tr_len, ntr) != SCORE_OK))
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    *out = W;
    return SCORE_OK;
}

/* Member i's workspace for the next call: the combination's thread count (0: the member's
 * own setting) and the label / context inputs of the combination's rows. */
static score__model_ws *member_ws(const score__model_ws *ws, const combo_ws *W, size_t i,
                                  int64_t threads)
{
    score__model_ws *mw = W->mem[i];
    mw->threads = threads;
    mw->labels = ws->labels;
    mw->labels_per_row = ws->labels_per_row;
    mw->context = ws->context;
    mw->context_per_row = ws->context_per_row;
    mw->row_n = ws->row_n;
    mw->row0 = ws->row0;
    mw->row_idx = ws->row_idx;
    return mw;
}

/* Propagates a member's failure; its callback status becomes the combination's. */
static int member_failed(score__model_ws *ws, const combo_ws *W, size_t i, int rc)
{
    ws->cb_status = W->mem[i]->cb_status;
    return rc; /* the member wrote the message */
}

static void acc_add(double *acc, const float *v, size_t len, double w)
{
    for (size_t j = 0; j < len; j++)
        acc[j] += w * (double)v[j];
}

static void acc_store(const double *acc, size_t len, float *out)
{
    for (size_t j = 0; j < len; j++)
        out[j] = (float)acc[j];
}

/* Forward of every member with a nonzero weight; infer = 1 evaluates them without the backward
 * cache (score__model_infer_ws()) with the combination's thread count (through the member
 * workspaces: the members are not touched). */
static int combine_forward(const score_model *m, score__model_ws *ws, int infer, size_t n,
                           const float *x, const double *c, float *out)
{
    const combo *C = m->impl;
    size_t len = n * m->dim;
    combo_ws *W;
    int rc = workspace("score_model_forward", C, ws, len, 0, &W);
    if (rc != SCORE_OK)
        return rc;
    memset(W->acc, 0, len * sizeof *W->acc);
    for (size_t i = 0; i < C->k; i++) {
        double w = weight(m, C, i);
        const score_model *mi = C->members[i];
        if (w == 0.0)
            continue;
        if (infer)
            rc = score__model_infer_ws(mi, member_ws(ws, W, i, score__model_ws_threads(m, ws)),
                                       n, x, c, W->buf);
        else
            rc = score__model_forward_ws(mi, member_ws(ws, W, i, 0), n, x, c, W->buf);
        if (rc != SCORE_OK)
            return member_failed(ws, W, i, rc);
        acc_add(W->acc, W->buf, len, w);
    }
    acc_store(W->acc, len, out);
    ws->cb_status = 0;
    return SCORE_OK;
}

static int co_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, float *out)
{
    return combine_forward(m, ws, 0, n, x, c, out);
}

static int co_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                    const double *c, float *out)
{
    return combine_forward(m, ws, 1, n, x, c, out);
}

/* The double evaluation (members that all evaluate in double): the same weighted sum, kept
 * in double. */
static int co_infer_f64(const score_model *m, score__model_ws *ws, size_t n, const double *x,
                        const double *c, double *out)
{
    static const char fn[] = "score_model_forward";
    const combo *C = m->impl;
    size_t len = n * m->dim;
    combo_ws *W;
    int rc = workspace(fn, C, ws, len, 0, &W);
    if (rc == SCORE_OK && grow_d(&W->dbuf, &W->dbuf_len, len) != SCORE_OK)
        rc = score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    if (rc != SCORE_OK)
        return rc;
    memset(out, 0, len * sizeof *out);
    for (size_t i = 0; i < C->k; i++) {
        double w = weight(m, C, i);
        if (w == 0.0)
            continue;
        rc = score__model_infer_ws_f64(C->members[i],
                                       member_ws(ws, W, i, score__model_ws_threads(m, ws)), n, x,
                                       c, W->dbuf);
        if (rc != SCORE_OK)
            return member_failed(ws, W, i, rc);
        for (size_t j = 0; j < len; j++)
            out[j] += w * W->dbuf[j];
    }
    ws->cb_status = 0;
    return SCORE_OK;
}

/* jvp and vjp share the accumulation: the products are linear in the members. */
static int co_linear(const score_model *m, score__model_ws *ws, int is_vjp, size_t n,
                     const float *x, const double *c, size_t k, const float *v, float *out,
                     float *fx)
{
    const combo *C = m->impl;
    const char *fn = is_vjp ? "score_model_vjp" : "score_model_jvp";
    size_t len = n * k * m->dim, flen = n * m->dim;
    combo_ws *W;
    int rc = workspace(fn, C, ws, len + flen, 0, &W);
    if (rc != SCORE_OK)
        return rc;
    memset(W->acc, 0, (len + flen) * sizeof *W->acc);
    for (size_t i = 0; i < C->k; i++) {
        double w = weight(m, C, i);
        float *fxi = (fx != NULL) ? W->buf + len : NULL;
        score__model_ws *mw = member_ws(ws, W, i, 0);
        if (w == 0.0)
            continue;
        rc = is_vjp ? score__model_vjp_ws(C->members[i], mw, n, x, c, k, v, W->buf)
                    : score__model_jvp_ws(C->members[i], mw, n, x, c, k, v, W->buf, fxi);
        if (rc == SCORE_OK && is_vjp && fx != NULL)
            rc = score__model_forward_ws(C->members[i], mw, n, x, c, fxi);
        if (rc != SCORE_OK)
            return member_failed(ws, W, i, rc);
        acc_add(W->acc, W->buf, len + (fx != NULL ? flen : 0), w);
    }
    acc_store(W->acc, len, out);
    if (fx != NULL)
        acc_store(W->acc + len, flen, fx);
    ws->cb_status = 0;
    return SCORE_OK;
}

static int co_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, size_t k, const float *v, float *out, float *fx)
{
    return co_linear(m, ws, 0, n, x, c, k, v, out, fx);
}

static int co_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, size_t k, const float *u, float *out)
{
    return co_linear(m, ws, 1, n, x, c, k, u, out, NULL);
}

static int co_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                    const double *c, double *tr, float *fx)
{
    const combo *C = m->impl;
    size_t flen = n * m->dim;
    combo_ws *W;
    int rc = workspace("score_model_trace", C, ws, flen, n, &W);
    if (rc != SCORE_OK)
        return rc;
    memset(W->acc, 0, flen * sizeof *W->acc);
    for (size_t b = 0; b < n; b++)
        tr[b] = 0.0;
    for (size_t i = 0; i < C->k; i++) {
        double w = weight(m, C, i);
        if (w == 0.0)
            continue;
        rc = score__model_trace_ws(C->members[i], member_ws(ws, W, i, 0), n, x, c, W->tr,
                                   fx != NULL ? W->buf : NULL);
        if (rc != SCORE_OK)
            return member_failed(ws, W, i, rc);
        for (size_t b = 0; b < n; b++)
            tr[b] += w * W->tr[b];
        if (fx != NULL)
            acc_add(W->acc, W->buf, flen, w);
    }
    if (fx != NULL)
        acc_store(W->acc, flen, fx);
    ws->cb_status = 0;
    return SCORE_OK;
}

/* The energy of a weighted sum: sum_i w_i E_i (the score is sum_i w_i s_i = -grad of it), i.e.
 * the product of experts prod_i p_i^{w_i}: a weight is an inverse temperature. Members' energies
 * in double, summed in member order. */
static int co_energy(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, double *E)
{
    const combo *C = m->impl;
    combo_ws *W;
    int rc = workspace("score_model_energy", C, ws, 0, n, &W);
    if (rc != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++)
        E[b] = 0.0;
    for (size_t i = 0; i < C->k; i++) {
        double w = weight(m, C, i);
        if (w == 0.0)
            continue;
        rc = score__model_energy_ws("score_model_energy", C->members[i],
                                    member_ws(ws, W, i, 0), n, x, c, W->tr);
        if (rc != SCORE_OK)
            return member_failed(ws, W, i, rc);
        for (size_t b = 0; b < n; b++)
            E[b] += w * W->tr[b];
    }
    ws->cb_status = 0;
    return SCORE_OK;
}

static void combo_destroy(combo *C)
{
    if (C == NULL)
        return;
    score__free(C->members);
    score__free(C->w);
    score__free(C);
}

static void co_destroy_impl(score_model *m)
{
    combo_destroy(m->impl);
    m->impl = NULL;
}

static combo *combo_alloc(size_t k)
{
    combo *C = score__calloc(1, sizeof *C);
    if (C == NULL)
        return NULL;
    C->k = k;
    C->members = score__calloc(k, sizeof *C->members);
    C->w = score__calloc(k, sizeof *C->w);
    if (C->members == NULL || C->w == NULL) {
        combo_destroy(C);
        return NULL;
    }
    return C;
}

static int co_clone_impl(score_model *dst, const score_model *src)
{
    const combo *S = src->impl;
    combo *C = combo_alloc(S->k);
    if (C == NULL)
        return SCORE_E_NOMEM;
    C->ops = S->ops;
    C->cfg = S->cfg;
    memcpy(C->members, S->members, S->k * sizeof *C->members);
    memcpy(C->w, S->w, S->k * sizeof *C->w);
    dst->impl = C;
    dst->ops = &C->ops;
    return SCORE_OK;
}

static int co_on_param(score_model *m, int param)
{
    const combo *C = m->impl;
    if (param == SCORE_MODEL_PARAM_GUIDANCE && !C->cfg)
        return score__error(SCORE_E_UNSUPPORTED, "score_model_set_f64",
                            "guidance applies to classifier-free-guidance combinations "
                            "(score_model_new_cfg); set sum weights with "
                            "score_model_combination_set_weight");
    return SCORE_OK;
}

/* The combination's label and context inputs (SCORE_MODEL_PARAM_NUM_CLASSES, _CONTEXT_DIM):
 * the members' common non-zero value (members without the input ignore it), 0 when none has
 * it or two members differ. Read from the members at construction. */
static void inherit_inputs(score_model *m, size_t k, score_model *const *models)
{
    static const int ids[2] = {SCORE_MODEL_PARAM_NUM_CLASSES, SCORE_MODEL_PARAM_CONTEXT_DIM};
    size_t np;
    const score__param_desc *tab = score__model_param_table(&np);
    for (size_t p = 0; p < 2; p++) {
        int64_t v = 0;
        for (size_t i = 0; i < k; i++) {
            int64_t vi = score__model_i64(models[i], ids[p]);
            if (vi != 0 && v != 0 && vi != v) {
                v = 0;
                break;
            }
            if (vi != 0)
                v = vi;
        }
        m->params[score__param_index(tab, np, ids[p])].i = v;
    }
}

/* Builds the combination around members already checked (non-NULL, same dim). */
static int make(const char *fn, score_model **out, size_t k, score_model *const *models,
                const double *weights, int cfg)
{
    combo *C = combo_alloc(k);
    uint32_t caps = ~(uint32_t)0;
    int rc, energy = 1, f64 = 1;
    if (C == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    C->cfg = cfg;
    for (size_t i = 0; i < k; i++) {
        C->members[i] = models[i];
        C->w[i] = weights ? weights[i] : 1.0;
        caps &= score_model_capabilities(models[i]);
        energy = energy && models[i]->ops->energy != NULL;
        f64 = f64 && score__model_has_f64(models[i]);
    }
    C->ops.name = "combination";
    C->ops.forward = co_forward;
    C->ops.infer = co_infer;
    C->ops.infer_f64 = f64 ? co_infer_f64 : NULL;
    C->ops.jvp = (caps & SCORE_MODEL_CAP_JVP) ? co_jvp : NULL;
    C->ops.vjp = (caps & SCORE_MODEL_CAP_VJP) ? co_vjp : NULL;
    C->ops.trace = (caps & SCORE_MODEL_CAP_TRACE) ? co_trace : NULL;
    C->ops.energy = energy ? co_energy : NULL;
    C->ops.ws_new = co_ws_new;
    C->ops.ws_free = co_ws_free;
    C->ops.clone_impl = co_clone_impl;
    C->ops.destroy_impl = co_destroy_impl;
    C->ops.on_param = co_on_param;
    rc = score__model_alloc(out, SCORE_MODEL_COMBINATION, models[0]->dim, &C->ops);
    if (rc != SCORE_OK) {
        combo_destroy(C);
        return score__error(rc, fn, "allocation failed");
    }
    (*out)->impl = C;
    (*out)->prepared = 1;
    inherit_inputs(*out, k, models);
    return SCORE_OK;
}

int score_model_new_sum(score_model **out, size_t k, score_model *const *models,
                        const double *weights)
{
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (models == NULL)
        return score__error(SCORE_E_INVAL, __func__, "models is NULL");
    if (k == 0 || k > COMBO_MAX_K)
        return score__error(SCORE_E_RANGE, __func__, "k %zu not in [1, %d]", k, COMBO_MAX_K);
    for (size_t i = 0; i < k; i++) {
        if (models[i] == NULL)
            return score__error(SCORE_E_INVAL, __func__, "models[%zu] is NULL", i);
        if (models[i]->dim != models[0]->dim)
            return score__error(SCORE_E_SHAPE, __func__, "models[%zu] has dim %zu, models[0] has %zu",
                                i, models[i]->dim, models[0]->dim);
        if (weights != NULL && !isfinite(weights[i]))
            return score__error(SCORE_E_RANGE, __func__, "weights[%zu] = %g is not finite", i, weights[i]);
    }
    return make(__func__, out, k, models, weights, 0);
}

int score_model_new_cfg(score_model **out, score_model *cond, score_model *uncond, double w)
{
    score_model *pair[2];
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (cond == NULL || uncond == NULL)
        return score__error(SCORE_E_INVAL, __func__, "cond or uncond is NULL");
    if (cond->dim != uncond->dim)
        return score__error(SCORE_E_SHAPE, __func__, "cond has dim %zu, uncond has %zu", cond->dim,
                            uncond->dim);
    if (!(w >= -1e6 && w <= 1e6))
        return score__error(SCORE_E_RANGE, __func__, "guidance weight %g not in [-1e6, 1e6]", w);
    pair[0] = cond;
    pair[1] = uncond;
    if ((rc = make(__func__, out, 2, pair, NULL, 1)) != SCORE_OK)
        return rc;
    if ((rc = score_model_set_f64(*out, SCORE_MODEL_PARAM_GUIDANCE, w)) != SCORE_OK) {
        score_model_free(*out);
        *out = NULL;
        return rc;
    }
    return SCORE_OK;
}

int score_model_combination_set_weight(score_model *model, size_t i, double w)
{
    combo *C;
    if (model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model is NULL");
    if (model->kind != SCORE_MODEL_COMBINATION)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "%s models are not combinations",
                            model->ops->name);
    C = model->impl;
    if (C->cfg)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "a guidance combination is weighted through SCORE_MODEL_PARAM_GUIDANCE");
    if (i >= C->k)
        return score__error(SCORE_E_RANGE, __func__, "member %zu of %zu", i, C->k);
    if (!isfinite(w))
        return score__error(SCORE_E_RANGE, __func__, "weight %g is not finite", w);
    C->w[i] = w;
    return SCORE_OK;
}
