/* Generic score_model: the per-caller workspaces and the compute calls (argument validation,
 * dispatch to the kind, checks of the outputs); model.c holds the lifecycle and parameters. */
#include <math.h>
#include <string.h>

#include "model-priv.h"

/* Largest row count such that rows * dim * per_row doubles fit in memory arithmetic. */
#define SCORE__MAX_ROWS(dim, per_row) (SIZE_MAX / 64 / ((dim) * (per_row)))

/* ---- workspaces ---------------------------------------------------------------------- */

int score__model_ws_new(score__model_ws **out)
{
    *out = score__calloc(1, sizeof **out);
    return *out ? SCORE_OK : SCORE_E_NOMEM;
}

static void ws_drop_kind(score__model_ws *ws)
{
    if (ws->kind != NULL && ws->kind_free != NULL)
        ws->kind_free(ws->kind);
    ws->kind = NULL;
    ws->kind_free = NULL;
    ws->cached_n = 0;
}

void score__model_ws_free(score__model_ws *ws)
{
    if (ws == NULL)
        return;
    ws_drop_kind(ws);
    score__free(ws);
}

int64_t score__model_ws_threads(const score_model *m, const score__model_ws *ws)
{
    int64_t t = ws->threads > 0 ? ws->threads : score__model_i64(m, SCORE_MODEL_PARAM_THREADS);
    return t > 1 ? t : 1;
}

/* Makes ws's kind part the one of m's kind (a workspace last used with another kind gets a new,
 * empty one; the kind's operations size it). */
int score__model_ws_bind(const char *fn, const score_model *m, score__model_ws *ws)
{
    if (ws->kind_free == m->ops->ws_free && (ws->kind != NULL || m->ops->ws_new == NULL))
        return SCORE_OK;
    ws_drop_kind(ws);
    if (m->ops->ws_new == NULL)
        return SCORE_OK;
    if (m->ops->ws_new(&ws->kind) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    ws->kind_free = m->ops->ws_free;
    return SCORE_OK;
}

/* End of a compute call: the callback status becomes the model's too (for
 * score_model_last_callback_status()); stored only when it changes, so that readers of a
 * shared model that never calls back do not write to it. */
static int ws_done(const score_model *m, const score__model_ws *ws, int rc)
{
    score_model *mm = (score_model *)m; /* only the atomic status field is written */
    if (atomic_load_explicit(&mm->last_callback_status, memory_order_relaxed) != ws->cb_status)
        atomic_store_explicit(&mm->last_callback_status, ws->cb_status, memory_order_relaxed);
    return rc;
}


/* ---- compute calls ---------------------------------------------------------------------
 * Each operation has a check (handle, pointers, sizes, preparation, capability), a run through
 * a workspace (bind, the kind's op, publish the callback status) and two entry points: the
 * internal one with the caller's workspace, and the public one, which runs through the model's
 * own workspace (forward / backward: the cache of the pair) or through a workspace of its own
 * call (the read-only operations, which may then run concurrently on one model). */

/* Common checks: handle, pointers, preparation, capability. Preparing writes the model: a
 * model is shared between threads once prepared (every constructor but score_model_new
 * returns a prepared model; see model.h). */
static int begin(const char *fn, const score_model *m, int has_op, size_t n, const void *x,
                 const double *c, const void *out)
{
    int rc;
    if (m == NULL)
        return score__error(SCORE_E_INVAL, fn, "model is NULL");
    if (!has_op)
        return score__error(SCORE_E_UNSUPPORTED, fn, "%s models do not provide this operation", m->ops->name);
    if (n > 0 && (x == NULL || c == NULL || out == NULL))
        return score__error(SCORE_E_INVAL, fn, "x, c or output is NULL");
    /* No buffer of n rows can exist beyond this: refuse before any size arithmetic wraps. */
    if (n > SCORE__MAX_ROWS(m->dim, 1))
        return score__error(SCORE_E_RANGE, fn, "batch of %zu rows of %zu values is too large", n, m->dim);
    if (!m->prepared && (rc = score_model_prepare((score_model *)m)) != SCORE_OK)
        return rc;
    return SCORE_OK;
}

/* Probe arrays hold n * k * dim floats: bound k as well. */
static int check_probes(const char *fn, const score_model *m, size_t n, size_t k)
{
    if (k > SCORE__MAX_ROWS(m->dim, n == 0 ? 1 : n))
        return score__error(SCORE_E_RANGE, fn, "%zu probes per row for %zu rows is too large", k, n);
    return SCORE_OK;
}

/* Output checks of the public compute calls: a non-finite value in what a call wrote is
 * SCORE_E_NUMERIC, never a silent SCORE_OK. The message names the first bad output row and
 * says whether the inputs were finite (then the model itself overflowed, e.g. huge weights).
 * The scans are linear in the output size, small next to the evaluation they follow. */
typedef struct out_check {
    const char *what;   /* "out", "gx", ... */
    size_t n;           /* values */
    size_t row;         /* values per row, for the message (0: no rows, e.g. parameters) */
    const float *f;     /* float output or NULL */
    const double *d;    /* double output or NULL */
} out_check;

static size_t first_bad(const out_check *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->f ? !isfinite(o->f[i]) : !isfinite(o->d[i]))
            return i;
    return o->n;
}

static int all_finite(const out_check *o)
{
    if ((o->f == NULL && o->d == NULL) || o->n == 0)
        return 1;
    return o->f != NULL ? score__all_finite_f32(o->n, o->f) : score__all_finite_f64(o->n, o->d);
}

/* Checks outs[0..n_outs-1]; the inputs ins[0..n_ins-1] (same descriptors) are scanned only to
 * word the message. */
static int check_outputs(const char *fn, const out_check *outs, size_t n_outs,
                         const out_check *ins, size_t n_ins)
{
    for (size_t k = 0; k < n_outs; k++) {
        const out_check *o = &outs[k];
        const char *why = "from finite inputs (the model overflows there)";
        size_t i;
        if (all_finite(o))
            continue;
        i = first_bad(o);
        for (size_t j = 0; j < n_ins; j++)
            if (!all_finite(&ins[j]))
                why = "(the inputs hold NaN or infinity)";
        if (o->row > 0)
            return score__error(SCORE_E_NUMERIC, fn, "%s holds NaN or infinity at row %zu %s",
                                o->what, i / o->row, why);
        return score__error(SCORE_E_NUMERIC, fn, "%s holds NaN or infinity at entry %zu %s",
                            o->what, i, why);
    }
    return SCORE_OK;
}

/* Shorthands for the descriptors. */
#define OUT_F(name, cnt, per_row, p) {name, (cnt), (per_row), (p), NULL}
#define OUT_D(name, cnt, per_row, p) {name, (cnt), (per_row), NULL, (p)}

/* A public read-only call ends the forward / backward pair (model.h); cleared atomically and
 * only when set, so that concurrent readers do not write to a shared model. */
static void invalidate_cache(score_model *m)
{
    if (atomic_load_explicit(&m->cached_n, memory_order_relaxed) != 0)
        atomic_store_explicit(&m->cached_n, (size_t)0, memory_order_relaxed);
}

static int own_ws(const char *fn, score_model *m)
{
    if (m->own_ws == NULL && score__model_ws_new(&m->own_ws) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    return SCORE_OK;
}

/* ---- forward, infer, backward ---- */

static int check_forward(const char *fn, const score_model *m, size_t n, const float *x,
                         const double *c, const float *out)
{
    return begin(fn, m, m && m->ops->forward != NULL, n, x, c, out);
}

static int run_forward(const char *fn, const score_model *m, score__model_ws *ws, int cache,
                       size_t n, const float *x, const double *c, float *out)
{
    int rc = score__model_ws_bind(fn, m, ws);
    if (rc != SCORE_OK)
        return rc;
    ws->cached_n = 0;
    ws->cb_status = 0;
    if (!cache && m->ops->infer != NULL)
        rc = m->ops->infer(m, ws, n, x, c, out);
    else
        rc = m->ops->forward(m, ws, n, x, c, out);
    if (rc == SCORE_OK && cache)
        ws->cached_n = n;
    return ws_done(m, ws, rc);
}

/* The label and context arguments of score_model_forward_cond() (score_model_forward(): both
 * NULL) against the model's inputs. */
int score__model_check_cond(const char *fn, const score_model *m, size_t n,
                            const int32_t *labels, const float *context)
{
    const int64_t K = score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES);
    const int64_t mc = score__model_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM);
    if (labels != NULL && K == 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "the model has no label input (num_classes = 0)");
    if (context != NULL && mc == 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "the model has no context input (context_dim = 0)");
    if (context == NULL && mc > 0)
        return score__error(SCORE_E_INVAL, fn,
                            "the model takes a context vector of %lld values per row: context is "
                            "NULL (score_model_forward_cond() passes one)", (long long)mc);
    if (context != NULL && n > SIZE_MAX / sizeof(float) / (size_t)mc)
        return score__error(SCORE_E_RANGE, fn, "batch of %zu rows of %lld context values is too large",
                            n, (long long)mc);
    for (size_t b = 0; labels != NULL && b < n; b++)
        if (labels[b] < 0 || labels[b] > K)
            return score__error(SCORE_E_RANGE, fn, "label %ld of row %zu is not in [0, %lld]",
                                (long)labels[b], b, (long long)K);
    if (context != NULL && !score__all_finite_f32(n * (size_t)mc, context))
        return score__error(SCORE_E_NUMERIC, fn, "context contains NaN or infinity");
    return SCORE_OK;
}

/* score_model_forward() and score_model_forward_cond(): the training forward through the
 * model's own workspace, with the inputs set there for this call only. */
static int forward_public(const char *fn, score_model *model, size_t n, const float *x,
                          const double *c, const int32_t *labels, const float *context,
                          float *out)
{
    int rc = check_forward(fn, model, n, x, c, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    atomic_store(&model->cached_n, (size_t)0);
    if ((rc = score__model_check_cond(fn, model, n, labels, context)) != SCORE_OK)
        return rc;
    if ((rc = own_ws(fn, model)) != SCORE_OK)
        return rc;
    model->own_ws->labels = labels;
    model->own_ws->labels_per_row = 1;
    model->own_ws->context = context;
    model->own_ws->context_per_row = 1;
    rc = run_forward(fn, model, model->own_ws, 1, n, x, c, out);
    model->own_ws->labels = NULL; /* the caller's arrays: not kept past the call */
    model->own_ws->context = NULL;
    if (rc == SCORE_OK) {
        const size_t d = model->dim;
        const out_check o[] = {OUT_F("out", n * d, d, out)};
        const out_check in[] = {OUT_F("x", n * d, d, x), OUT_D("c", n, 1, c)};
        rc = check_outputs(fn, o, sizeof o / sizeof o[0], in, sizeof in / sizeof in[0]);
    }
    if (rc == SCORE_OK)
        atomic_store(&model->cached_n, n);
    return rc;
}

int score_model_forward(score_model *model, size_t n, const float *x, const double *c, float *out)
{
    return forward_public(__func__, model, n, x, c, NULL, NULL, out);
}

int score_model_forward_cond(score_model *model, size_t n, const float *x, const double *c,
                             const int32_t *labels, const float *context, float *out)
{
    return forward_public(__func__, model, n, x, c, labels, context, out);
}

int score__model_forward_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                            const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    int rc = check_forward(fn, m, n, x, c, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run_forward(fn, m, ws, 1, n, x, c, out);
}

int score__model_infer_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    int rc = check_forward(fn, m, n, x, c, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run_forward(fn, m, ws, 0, n, x, c, out);
}

int score__model_has_f64(const score_model *m)
{
    return m != NULL && m->ops->infer_f64 != NULL;
}

int score__model_infer_ws_f64(const score_model *m, score__model_ws *ws, size_t n,
                              const double *x, const double *c, double *out)
{
    static const char fn[] = "score_model_forward";
    int rc = begin(fn, m, m && m->ops->infer_f64 != NULL, n, x, c, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    rc = score__model_ws_bind(fn, m, ws);
    if (rc != SCORE_OK)
        return rc;
    ws->cached_n = 0;
    ws->cb_status = 0;
    rc = m->ops->infer_f64(m, ws, n, x, c, out);
    return ws_done(m, ws, rc);
}

int score__model_infer(score_model *m, size_t n, const float *x, const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    score__model_ws *ws;
    int rc = check_forward(fn, m, n, x, c, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    invalidate_cache(m);
    if (score__model_ws_new(&ws) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    rc = run_forward(fn, m, ws, 0, n, x, c, out);
    score__model_ws_free(ws);
    return rc;
}

static int check_backward(const char *fn, const score_model *m, const float *gout,
                          float *grad_params, float *gx)
{
    if (m == NULL || gout == NULL)
        return score__error(SCORE_E_INVAL, fn, "model or gout is NULL");
    if (m->ops->backward == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn, "%s models do not provide backward", m->ops->name);
    if (grad_params == NULL && gx == NULL)
        return score__error(SCORE_E_INVAL, fn, "grad_params and gx are both NULL");
    if (grad_params != NULL && m->ops->param_count == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn, "%s models have no parameters", m->ops->name);
    return SCORE_OK;
}

static int backward_misuse(const char *fn, size_t n)
{
    return score__error(SCORE_E_MISUSE, fn,
                        "backward needs a preceding score_model_forward with the same n (%zu)", n);
}

int score_model_backward(score_model *model, size_t n, const float *gout, float *grad_params,
                         float *gx)
{
    int rc = check_backward(__func__, model, gout, grad_params, gx);
    if (rc != SCORE_OK)
        return rc;
    if (n == 0 || atomic_load(&model->cached_n) != n || model->own_ws == NULL ||
        model->own_ws->cached_n != n)
        return backward_misuse(__func__, n);
    rc = model->ops->backward(model, model->own_ws, n, gout, grad_params, gx);
    if (rc == SCORE_OK) {
        const size_t d = model->dim;
        const size_t np = grad_params != NULL ? model->ops->param_count(model) : 0;
        const out_check o[] = {OUT_F("gx", gx ? n * d : 0, d, gx),
                               OUT_F("grad_params", np, 0, grad_params)};
        const out_check in[] = {OUT_F("gout", n * d, d, gout)};
        rc = check_outputs(__func__, o, 2, in, 1);
    }
    return rc;
}

int score__model_backward_ws(const score_model *m, score__model_ws *ws, size_t n,
                             const float *gout, float *grad, float *gx)
{
    static const char fn[] = "score_model_backward";
    int rc = check_backward(fn, m, gout, grad, gx);
    if (rc != SCORE_OK)
        return rc;
    if (n == 0 || ws->cached_n != n || ws->kind_free != m->ops->ws_free)
        return backward_misuse(fn, n);
    return m->ops->backward(m, ws, n, gout, grad, gx);
}

/* ---- jvp, vjp, trace ---- */

static int check_tangent(const char *fn, const score_model *m, int has_op, size_t n,
                         const float *x, const double *c, size_t k, const float *v, float *out)
{
    int rc = begin(fn, m, has_op, n, x, c, out);
    if (rc != SCORE_OK)
        return rc;
    if (k == 0 || (n > 0 && v == NULL))
        return score__error(SCORE_E_INVAL, fn, "k is 0 or %s is NULL",
                            strstr(fn, "vjp") ? "u" : "v");
    return check_probes(fn, m, n, k);
}

static int run_jvp(const char *fn, const score_model *m, score__model_ws *ws, int vjp, size_t n,
                   const float *x, const double *c, size_t k, const float *v, float *out,
                   float *fx)
{
    int rc = score__model_ws_bind(fn, m, ws);
    if (rc != SCORE_OK)
        return rc;
    ws->cb_status = 0;
    rc = vjp ? m->ops->vjp(m, ws, n, x, c, k, v, out) : m->ops->jvp(m, ws, n, x, c, k, v, out, fx);
    return ws_done(m, ws, rc);
}

static int run_trace(const char *fn, const score_model *m, score__model_ws *ws, size_t n,
                     const float *x, const double *c, double *tr, float *fx)
{
    int rc = score__model_ws_bind(fn, m, ws);
    if (rc != SCORE_OK)
        return rc;
    ws->cb_status = 0;
    return ws_done(m, ws, m->ops->trace(m, ws, n, x, c, tr, fx));
}

int score__model_jvp_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, size_t k, const float *v, float *out, float *fx)
{
    static const char fn[] = "score_model_jvp";
    int rc = check_tangent(fn, m, m && m->ops->jvp != NULL, n, x, c, k, v, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run_jvp(fn, m, ws, 0, n, x, c, k, v, out, fx);
}

int score__model_vjp_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, size_t k, const float *u, float *out)
{
    static const char fn[] = "score_model_vjp";
    int rc = check_tangent(fn, m, m && m->ops->vjp != NULL, n, x, c, k, u, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run_jvp(fn, m, ws, 1, n, x, c, k, u, out, NULL);
}

int score__model_trace_ws(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, double *tr, float *fx)
{
    static const char fn[] = "score_model_trace";
    int rc = begin(fn, m, m && m->ops->trace != NULL, n, x, c, tr);
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run_trace(fn, m, ws, n, x, c, tr, fx);
}

/* The public read-only calls: a workspace for this call only. */
#define LOCAL_WS(fn, ws)                                                                       \
    do {                                                                                       \
        if (score__model_ws_new(&(ws)) != SCORE_OK)                                            \
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");             \
    } while (0)

int score_model_jvp(score_model *model, size_t n, const float *x, const double *c, size_t k,
                    const float *v, float *out, float *fx)
{
    score__model_ws *ws;
    int rc = check_tangent(__func__, model, model && model->ops->jvp != NULL, n, x, c, k, v, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    invalidate_cache(model);
    LOCAL_WS(__func__, ws);
    rc = run_jvp(__func__, model, ws, 0, n, x, c, k, v, out, fx);
    score__model_ws_free(ws);
    if (rc == SCORE_OK) {
        const size_t d = model->dim;
        const out_check o[] = {OUT_F("out", n * k * d, k * d, out), OUT_F("fx", fx ? n * d : 0, d, fx)};
        const out_check in[] = {OUT_F("x", n * d, d, x), OUT_D("c", n, 1, c),
                                OUT_F("v", n * k * d, k * d, v)};
        rc = check_outputs(__func__, o, sizeof o / sizeof o[0], in, sizeof in / sizeof in[0]);
    }
    return rc;
}

int score_model_vjp(score_model *model, size_t n, const float *x, const double *c, size_t k,
                    const float *u, float *out)
{
    score__model_ws *ws;
    int rc = check_tangent(__func__, model, model && model->ops->vjp != NULL, n, x, c, k, u, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    invalidate_cache(model);
    LOCAL_WS(__func__, ws);
    rc = run_jvp(__func__, model, ws, 1, n, x, c, k, u, out, NULL);
    score__model_ws_free(ws);
    if (rc == SCORE_OK) {
        const size_t d = model->dim;
        const out_check o[] = {OUT_F("out", n * k * d, k * d, out)};
        const out_check in[] = {OUT_F("x", n * d, d, x), OUT_D("c", n, 1, c),
                                OUT_F("u", n * k * d, k * d, u)};
        rc = check_outputs(__func__, o, sizeof o / sizeof o[0], in, sizeof in / sizeof in[0]);
    }
    return rc;
}

int score_model_trace(score_model *model, size_t n, const float *x, const double *c, double *tr,
                      float *fx)
{
    score__model_ws *ws;
    int rc = begin(__func__, model, model && model->ops->trace != NULL, n, x, c, tr);
    if (rc != SCORE_OK || n == 0)
        return rc;
    invalidate_cache(model);
    LOCAL_WS(__func__, ws);
    rc = run_trace(__func__, model, ws, n, x, c, tr, fx);
    score__model_ws_free(ws);
    if (rc == SCORE_OK) {
        const size_t d = model->dim;
        const out_check o[] = {OUT_D("tr", n, 1, tr), OUT_F("fx", fx ? n * d : 0, d, fx)};
        const out_check in[] = {OUT_F("x", n * d, d, x), OUT_D("c", n, 1, c)};
        rc = check_outputs(__func__, o, sizeof o / sizeof o[0], in, sizeof in / sizeof in[0]);
    }
    return rc;
}

/* ---- parameter gradients of the trace and of v^T J v ---- */

int score_model_trace_grad(score_model *model, size_t n, const float *x, const double *c,
                           const double *w, const float *gout, float *grad_params, double *tr,
                           float *fx)
{
    score__model_ws *ws;
    int rc = begin(__func__, model, model && model->ops->trace_grad != NULL, n, x, c,
                   grad_params);
    if (rc != SCORE_OK)
        return rc;
    if (n > 0 && w == NULL)
        return score__error(SCORE_E_INVAL, __func__, "w is NULL");
    if (n == 0)
        return SCORE_OK;
    invalidate_cache(model);
    LOCAL_WS(__func__, ws);
    if ((rc = score__model_ws_bind(__func__, model, ws)) == SCORE_OK)
        rc = ws_done(model, ws,
                     model->ops->trace_grad(model, ws, n, x, c, w, gout, grad_params, tr, fx));
    score__model_ws_free(ws);
    if (rc == SCORE_OK) {
        const size_t d = model->dim;
        const size_t np = grad_params != NULL ? model->ops->param_count(model) : 0;
        const out_check o[] = {OUT_F("grad_params", np, 0, grad_params), OUT_D("tr", tr ? n : 0, 1, tr),
                               OUT_F("fx", fx ? n * d : 0, d, fx)};
        const out_check in[] = {OUT_F("x", n * d, d, x), OUT_D("c", n, 1, c), OUT_D("w", n, 1, w),
                                OUT_F("gout", gout ? n * d : 0, d, gout)};
        rc = check_outputs(__func__, o, sizeof o / sizeof o[0], in, sizeof in / sizeof in[0]);
    }
    return rc;
}

int score_model_vjv_grad(score_model *model, size_t n, const float *x, const double *c, size_t k,
                         const float *v, const double *w, const float *gout, float *grad_params,
                         double *vjv, float *fx)
{
    score__model_ws *ws;
    int rc = check_tangent(__func__, model, model && model->ops->vjv_grad != NULL, n, x, c, k, v,
                           grad_params);
    if (rc != SCORE_OK || n == 0)
        return rc;
    invalidate_cache(model);
    LOCAL_WS(__func__, ws);
    if ((rc = score__model_ws_bind(__func__, model, ws)) == SCORE_OK)
        rc = ws_done(model, ws, model->ops->vjv_grad(model, ws, n, x, c, k, v, w, gout,
                                                     grad_params, vjv, fx));
    score__model_ws_free(ws);
    if (rc == SCORE_OK) {
        const size_t d = model->dim;
        const size_t np = grad_params != NULL ? model->ops->param_count(model) : 0;
        const out_check o[] = {OUT_F("grad_params", np, 0, grad_params),
                               OUT_D("vjv", vjv ? n * k : 0, k, vjv),
                               OUT_F("fx", fx ? n * d : 0, d, fx)};
        const out_check in[] = {OUT_F("x", n * d, d, x), OUT_D("c", n, 1, c),
                                OUT_F("v", n * k * d, k * d, v), OUT_D("w", w ? n * k : 0, k, w),
                                OUT_F("gout", gout ? n * d : 0, d, gout)};
        rc = check_outputs(__func__, o, sizeof o / sizeof o[0], in, sizeof in / sizeof in[0]);
    }
    return rc;
}

int score__model_trace_grad_fn_ws(const score_model *m, score__model_ws *ws, size_t n,
                                  const float *x, const double *c, const double *w,
                                  score__gout_fn gfn, void *gctx, float *gout_ws, float *grad,
                                  double *tr, float *fx)
{
    static const char fn[] = "score_model_trace_grad";
    int rc = begin(fn, m, m && m->ops->trace_grad != NULL, n, x, c, grad);
    if (rc != SCORE_OK)
        return rc;
    if (n > 0 && (w == NULL || gfn == NULL || gout_ws == NULL || fx == NULL))
        return score__error(SCORE_E_INVAL, fn, "w, gfn, gout_ws or fx is NULL");
    if (n == 0)
        return SCORE_OK;
    if ((rc = score__model_ws_bind(fn, m, ws)) != SCORE_OK)
        return rc;
    ws->cb_status = 0;
    if (m->ops->trace_grad_fn != NULL)
        return ws_done(m, ws, m->ops->trace_grad_fn(m, ws, n, x, c, w, gfn, gctx, grad, tr, fx));
    if ((rc = run_forward(fn, m, ws, 0, n, x, c, fx)) != SCORE_OK)
        return rc;
    gfn(gctx, 0, n, fx, gout_ws);
    return ws_done(m, ws, m->ops->trace_grad(m, ws, n, x, c, w, gout_ws, grad, tr, NULL));
}

int score__model_vjv_grad_fn_ws(const score_model *m, score__model_ws *ws, size_t n,
                                const float *x, const double *c, size_t k, const float *v,
                                const double *w, score__gout_fn gfn, void *gctx,
                                float *gout_ws, float *grad, double *vjv, float *fx)
{
    static const char fn[] = "score_model_vjv_grad";
    int rc = begin(fn, m, m && m->ops->vjv_grad != NULL, n, x, c, grad);
    if (rc != SCORE_OK)
        return rc;
    if (k == 0 || (n > 0 && (v == NULL || gfn == NULL || gout_ws == NULL || fx == NULL)))
        return score__error(SCORE_E_INVAL, fn, "k is 0 or v, gfn, gout_ws or fx is NULL");
    if ((rc = check_probes(fn, m, n, k)) != SCORE_OK)
        return rc;
    if (n == 0)
        return SCORE_OK;
    if ((rc = score__model_ws_bind(fn, m, ws)) != SCORE_OK)
        return rc;
    ws->cb_status = 0;
    if (m->ops->vjv_grad_fn != NULL)
        return ws_done(m, ws, m->ops->vjv_grad_fn(m, ws, n, x, c, k, v, w, gfn, gctx, grad, vjv,
                                                  fx));
    if ((rc = run_forward(fn, m, ws, 0, n, x, c, fx)) != SCORE_OK)
        return rc;
    gfn(gctx, 0, n, fx, gout_ws);
    return ws_done(m, ws, m->ops->vjv_grad(m, ws, n, x, c, k, v, w, gout_ws, grad, vjv, NULL));
}

int score__model_trace_grad_fn(score_model *m, size_t n, const float *x, const double *c,
                               const double *w, score__gout_fn gfn, void *gctx, float *gout_ws,
                               float *grad, double *tr, float *fx)
{
    score__model_ws *ws;
    int rc;
    if (m == NULL)
        return score__error(SCORE_E_INVAL, "score_model_trace_grad", "model is NULL");
    invalidate_cache(m);
    LOCAL_WS("score_model_trace_grad", ws);
    rc = score__model_trace_grad_fn_ws(m, ws, n, x, c, w, gfn, gctx, gout_ws, grad, tr, fx);
    score__model_ws_free(ws);
    return rc;
}

int score__model_vjv_grad_fn(score_model *m, size_t n, const float *x, const double *c, size_t k,
                             const float *v, const double *w, score__gout_fn gfn, void *gctx,
                             float *gout_ws, float *grad, double *vjv, float *fx)
{
    score__model_ws *ws;
    int rc;
    if (m == NULL)
        return score__error(SCORE_E_INVAL, "score_model_vjv_grad", "model is NULL");
    invalidate_cache(m);
    LOCAL_WS("score_model_vjv_grad", ws);
    rc = score__model_vjv_grad_fn_ws(m, ws, n, x, c, k, v, w, gfn, gctx, gout_ws, grad, vjv, fx);
    score__model_ws_free(ws);
    return rc;
}
