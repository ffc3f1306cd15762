/* The classifier kind: a noise-conditional classifier p(y | x_t, t) on the MLP's network
 * (mlp.c, mlp-train.c: the same blocks, embedding and parameter layout, a head of K logits),
 * its log-softmax, the input gradient grad_x log p(y | x_t, t) and the cross-entropy's
 * parameter gradient, both by one cached forward pass and one back-propagation (GEMMs over
 * the batch). See include/libscore/classifier.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "classifier-priv.h"
#include "mlp-kind-priv.h"

struct score__clf_ws {
    score__model_ws *mws; /* the network's workspace (activations of the cached forward) */
    size_t cap;           /* floats of each buffer below */
    float *logits;        /* n * K logits */
    float *glog;          /* n * K cotangents of the logits */
};

int score__clf_ws_new(score__clf_ws **out)
{
    score__clf_ws *cw = score__calloc(1, sizeof *cw);
    *out = NULL;
    if (cw == NULL)
        return SCORE_E_NOMEM;
    if (score__model_ws_new(&cw->mws) != SCORE_OK) {
        score__free(cw);
        return SCORE_E_NOMEM;
    }
    *out = cw;
    return SCORE_OK;
}

void score__clf_ws_free(score__clf_ws *cw)
{
    if (cw == NULL)
        return;
    score__model_ws_free(cw->mws);
    score__free(cw->logits);
    score__free(cw->glog);
    score__free(cw);
}

static int clf_ws_reserve(const char *fn, score__clf_ws *cw, size_t n, size_t K)
{
    size_t need;
    if (score__mul_size(n, K, &need) != 0)
        return score__error(SCORE_E_RANGE, fn, "batch of %zu rows x %zu classes is too large", n, K);
    if (need <= cw->cap)
        return SCORE_OK;
    score__free(cw->logits);
    score__free(cw->glog);
    cw->logits = score__calloc(need, sizeof(float));
    cw->glog = score__calloc(need, sizeof(float));
    if (cw->logits == NULL || cw->glog == NULL) {
        score__free(cw->logits);
        score__free(cw->glog);
        cw->logits = cw->glog = NULL;
        cw->cap = 0;
        return score__error(SCORE_E_NOMEM, fn, "workspace for %zu rows failed", n);
    }
    cw->cap = need;
    return SCORE_OK;
}

size_t score__classifier_classes(const score_model *m)
{
    const mlp *p = impl_of(m);
    return m->prepared ? p->n[p->L] : (size_t)score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES);
}

const score_schedule *score__classifier_schedule_of(const score_model *m)
{
    return impl_of(m)->sched;
}

/* ---- constructor and accessors ---------------------------------------------------------- */

#define SCORE__CLF_MAX_DIM ((size_t)1 << 20)

int score_model_new_classifier(score_model **out, const score_schedule *sched, size_t dim,
                               size_t num_classes)
{
    score_model *m;
    mlp *p;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (sched == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sched is NULL");
    if (dim == 0 || dim > SCORE__CLF_MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, 2^20]", dim);
    if (num_classes < 2 || num_classes > 65535)
        return score__error(SCORE_E_RANGE, __func__, "num_classes %zu not in [2, 65535]",
                            num_classes);
    if (score__model_alloc(&m, SCORE_MODEL_CLASSIFIER, dim, &score__classifier_ops) != SCORE_OK ||
        (p = score__calloc(1, sizeof *p)) == NULL) {
        score_model_free(m);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    m->impl = p;
    rc = score_schedule_clone(&p->sched, sched);
    if (rc == SCORE_OK && (rc = score_schedule_prepare(p->sched)) != SCORE_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", score_last_error_message());
        rc = score__error(rc == SCORE_E_NOMEM ? rc : SCORE_E_INVAL, __func__, "the schedule: %s",
                          msg);
    } else if (rc != SCORE_OK) {
        rc = score__error(rc, __func__, "copying the schedule failed");
    }
    if (rc == SCORE_OK)
        rc = score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, (int64_t)num_classes);
    if (rc != SCORE_OK) {
        score_model_free(m);
        return rc;
    }
    *out = m;
    return SCORE_OK;
}

const score_schedule *score_classifier_schedule(const score_model *clf)
{
    if (clf == NULL || clf->kind != SCORE_MODEL_CLASSIFIER)
        return NULL;
    return score__classifier_schedule_of(clf);
}

/* ---- evaluation ---------------------------------------------------------------------------- */

/* Row-wise log-softmax in double: out = l - log sum exp l. */
static void log_softmax_rows(size_t n, size_t K, const float *l, float *out, double *lse_out)
{
    for (size_t b = 0; b < n; b++) {
        const float *r = l + b * K;
        double mx = (double)r[0], s = 0.0, lse;
        for (size_t k = 1; k < K; k++)
            if ((double)r[k] > mx)
                mx = (double)r[k];
        for (size_t k = 0; k < K; k++)
            s += exp((double)r[k] - mx);
        lse = mx + log(s);
        if (lse_out != NULL)
            lse_out[b] = lse;
        if (out != NULL)
            for (size_t k = 0; k < K; k++)
                out[b * K + k] = (float)((double)r[k] - lse);
    }
}

int score__classifier_eval(const char *fn, const score_model *m, score__clf_ws *cw, size_t n,
                           const float *x, const double *t, const int32_t *labels,
                           int labels_per_row, float *lsm, double *logp, float *gx,
                           double gx_scale, float *grad, double *loss)
{
    const size_t K = score__classifier_classes(m), d = m->dim;
    const int need_labels = logp != NULL || gx != NULL || grad != NULL || loss != NULL;
    const int backprop = gx != NULL || grad != NULL;
    score__model_ws *ws = cw->mws;
    double total = 0.0;
    int rc;
    if (gx != NULL && grad != NULL)
        return score__error(SCORE_E_INVAL, fn, "input and parameter gradients in one call");
    if (need_labels && labels == NULL)
        return score__error(SCORE_E_INVAL, fn, "labels is NULL");
    for (size_t b = 0; need_labels && b < (labels_per_row ? n : 1); b++)
        if (labels[b] < 0 || (size_t)labels[b] >= K)
            return score__error(SCORE_E_RANGE, fn, "label %ld of row %zu is not in [0, %zu]",
                                (long)labels[b], b, K - 1);
    if ((rc = clf_ws_reserve(fn, cw, n, K)) != SCORE_OK ||
        (rc = score__model_ws_bind(fn, m, ws)) != SCORE_OK)
        return rc;
    ws->labels = NULL;
    ws->context = NULL;
    rc = backprop ? score__mlp_forward(m, ws, n, x, t, cw->logits)
                  : score__mlp_infer(m, ws, n, x, t, cw->logits);
    if (rc != SCORE_OK)
        return rc;
    if (!score__all_finite_f32(n * K, cw->logits))
        return score__error(SCORE_E_NUMERIC, fn, "a logit is NaN or infinite (%s inputs)",
                            score__all_finite_f32(n * d, x) ? "from finite" : "from non-finite");
    /* glog holds the log-probabilities, then the cotangents of the logits */
    log_softmax_rows(n, K, cw->logits, cw->glog, NULL);
    if (lsm != NULL)
        memcpy(lsm, cw->glog, n * K * sizeof *lsm);
    for (size_t b = 0; need_labels && b < n; b++) {
        size_t y = (size_t)labels[labels_per_row ? b : 0];
        double lp = (double)cw->glog[b * K + y];
        float *g = cw->glog + b * K;
        if (logp != NULL)
            logp[b] = lp;
        total -= lp;
        if (!backprop)
            continue;
        /* d log p(y) / d l_k = [k = y] - softmax_k; the loss's: (softmax_k - [k = y]) / n */
        for (size_t k = 0; k < K; k++) {
            double sm = exp((double)g[k]), v = (k == y ? 1.0 : 0.0) - sm;
            g[k] = (float)(gx != NULL ? gx_scale * v : -v / (double)n);
        }
    }
    if (loss != NULL)
        *loss = total / (double)n;
    if (backprop) {
        rc = score__mlp_backward(m, ws, n, cw->glog, grad, gx);
        if (rc != SCORE_OK)
            return rc;
        if (gx != NULL && !score__all_finite_f32(n * d, gx))
            return score__error(SCORE_E_NUMERIC, fn, "the input gradient is not finite");
    }
    return SCORE_OK;
}

/* ---- public entry points -------------------------------------------------------------------- */

static int check_call(const char *fn, score_model *clf, size_t n, const double *t,
                      const float *x, const void *out)
{
    double T;
    int rc;
    if (clf == NULL)
        return score__error(SCORE_E_INVAL, fn, "clf is NULL");
    if (clf->kind != SCORE_MODEL_CLASSIFIER)
        return score__error(SCORE_E_UNSUPPORTED, fn, "the model is a %s model, not a classifier",
                            clf->ops->name);
    if (n > 0 && (t == NULL || x == NULL || out == NULL))
        return score__error(SCORE_E_INVAL, fn, "t, x or an output is NULL");
    if (n > SIZE_MAX / 64 / clf->dim)
        return score__error(SCORE_E_RANGE, fn, "batch of %zu rows is too large", n);
    if (!clf->prepared && (rc = score_model_prepare(clf)) != SCORE_OK)
        return rc;
    if (score_schedule_get_f64(score__classifier_schedule_of(clf), SCORE_SCHEDULE_PARAM_T, &T) !=
        SCORE_OK)
        T = INFINITY;
    for (size_t b = 0; b < n; b++) {
        if (!isfinite(t[b]))
            return score__error(SCORE_E_NUMERIC, fn, "t[%zu] is not finite", b);
        if (t[b] < 0.0 || t[b] > T)
            return score__error(SCORE_E_RANGE, fn, "t[%zu] = %g not in [0, %g]", b, t[b], T);
    }
    if (!score__all_finite_f32(n * clf->dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "x contains NaN or infinity");
    return SCORE_OK;
}

/* One call through a workspace of its own. */
static int run(const char *fn, score_model *clf, size_t n, const double *t, const float *x,
               const int32_t *labels, float *logits, float *lsm, double *logp, float *gx,
               float *grad, double *loss)
{
    score__clf_ws *cw;
    int rc;
    if (score__clf_ws_new(&cw) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    rc = score__classifier_eval(fn, clf, cw, n, x, t, labels, 1, lsm, logp, gx, 1.0, grad, loss);
    if (rc == SCORE_OK && logits != NULL)
        memcpy(logits, cw->logits, n * score__classifier_classes(clf) * sizeof *logits);
    score__clf_ws_free(cw);
    return rc;
}

int score_classifier_logits(score_model *clf, size_t n, const double *t, const float *x,
                            float *out)
{
    int rc = check_call(__func__, clf, n, t, x, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run(__func__, clf, n, t, x, NULL, out, NULL, NULL, NULL, NULL, NULL);
}

int score_classifier_log_softmax(score_model *clf, size_t n, const double *t, const float *x,
                                 float *out)
{
    int rc = check_call(__func__, clf, n, t, x, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run(__func__, clf, n, t, x, NULL, NULL, out, NULL, NULL, NULL, NULL);
}

int score_classifier_grad_x(score_model *clf, size_t n, const double *t, const float *x,
                            const int32_t *labels, double *logp_out, float *gx)
{
    int rc = check_call(__func__, clf, n, t, x, gx);
    if (rc == SCORE_OK && n > 0 && labels == NULL)
        rc = score__error(SCORE_E_INVAL, __func__, "labels is NULL");
    if (rc != SCORE_OK || n == 0)
        return rc;
    return run(__func__, clf, n, t, x, labels, NULL, NULL, logp_out, gx, NULL, NULL);
}

int score_classifier_loss_grad(score_model *clf, size_t n, const double *t, const float *x,
                               const int32_t *labels, double *loss_out, float *grad)
{
    double loss = 0.0;
    int rc = check_call(__func__, clf, n, t, x, labels);
    if (rc != SCORE_OK)
        return rc;
    if (n == 0) {
        if (loss_out != NULL)
            *loss_out = 0.0;
        return SCORE_OK;
    }
    rc = run(__func__, clf, n, t, x, labels, NULL, NULL, NULL, NULL, grad, &loss);
    if (loss_out != NULL)
        *loss_out = rc == SCORE_OK ? loss : NAN;
    if (rc == SCORE_OK && grad != NULL &&
        !score__all_finite_f32(score_model_param_count(clf), grad))
        return score__error(SCORE_E_NUMERIC, __func__, "the parameter gradient is not finite");
    return rc;
}

/* ---- the loader's probe ---------------------------------------------------------------------- */

int score__classifier_probe(const char *fn, score_model *m)
{
    enum { ROWS = 3 };
    const size_t d = m->dim;
    double t[ROWS] = {0.0, 0.0, 0.0}, T;
    float *x = score__calloc(ROWS * d, sizeof *x);
    score__clf_ws *cw = NULL;
    int rc;
    if (x == NULL || score__clf_ws_new(&cw) != SCORE_OK) {
        score__free(x);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    if (score_schedule_get_f64(score__classifier_schedule_of(m), SCORE_SCHEDULE_PARAM_T, &T) ==
        SCORE_OK) {
        t[1] = 0.5 * T;
        t[2] = T;
    }
    for (size_t j = 0; j < d; j++) {
        x[d + j] = j % 2 == 0 ? 1.0f : -1.0f;
        x[2 * d + j] = (float)(2.0 * (double)(j + 1) / (double)d - 1.0);
    }
    rc = score__classifier_eval(fn, m, cw, ROWS, x, t, NULL, 1, NULL, NULL, NULL, 0.0, NULL, NULL);
    score__clf_ws_free(cw);
    score__free(x);
    if (rc == SCORE_OK || rc == SCORE_E_NOMEM)
        return rc;
    {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", score_last_error_message());
        return score__error(SCORE_E_FORMAT, fn, "the classifier does not evaluate to finite "
                            "values on the probe batch (doc/model-format.md): %s", msg);
    }
}
