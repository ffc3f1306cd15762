/* Per-row conditions of a loss (split from loss.c): the labels and context vectors given with
 * score_loss_set_labels() / score_loss_set_context(), checked, copied, and bound to the model's
 * workspace for each compute call. */
#include <math.h>
#include <string.h>

#include "loss-priv.h"
#include "model/model-priv.h"

/* ---- per-row conditions ------------------------------------------------------------------ */

/* The largest number of classes a model takes (SCORE_MODEL_PARAM_NUM_CLASSES). */
#define MAX_CLASSES 65535
#define MAX_CONTEXT 4096

int score__loss_labels_check(const char *fn, size_t n, const int32_t *labels, int64_t k)
{
    for (size_t b = 0; b < n; b++)
        if (labels[b] != SCORE_LABEL_NULL && (labels[b] < 0 || labels[b] >= k))
            return score__error(SCORE_E_RANGE, fn, "labels[%zu] = %ld not in [0, %lld] and not "
                                "SCORE_LABEL_NULL", b, (long)labels[b], (long long)(k - 1));
    return SCORE_OK;
}

/* Grows the two label buffers to n entries (contents dropped). */
static int grow_labels(score_loss *L, size_t n)
{
    int32_t *a, *b;
    if (n <= L->lab_cap)
        return SCORE_OK;
    a = score__calloc(n, sizeof(int32_t));
    b = score__calloc(n, sizeof(int32_t));
    if (a == NULL || b == NULL) {
        score__free(a);
        score__free(b);
        return SCORE_E_NOMEM;
    }
    score__free(L->labels);
    score__free(L->mlabels);
    L->labels = a;
    L->mlabels = b;
    L->lab_cap = n;
    return SCORE_OK;
}

int score_loss_set_labels(score_loss *loss, size_t n, const int32_t *labels)
{
    int rc;
    if (loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "loss is NULL");
    if (labels == NULL) {
        loss->lab_n = 0;
        return SCORE_OK;
    }
    if (n == 0 || (uint64_t)n >= ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, __func__, "n = %zu not in [1, 2^32 - 1]", n);
    if ((rc = score__loss_labels_check(__func__, n, labels, MAX_CLASSES)) != SCORE_OK)
        return rc;
    if (grow_labels(loss, n) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, __func__, "copy of %zu labels failed", n);
    memcpy(loss->labels, labels, n * sizeof(int32_t));
    loss->lab_n = n;
    return SCORE_OK;
}

int score_loss_set_context(score_loss *loss, size_t n, size_t m, const float *values)
{
    size_t nm;
    if (loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "loss is NULL");
    if (values == NULL) {
        loss->ctx_n = 0;
        return SCORE_OK;
    }
    if (n == 0 || (uint64_t)n >= ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, __func__, "n = %zu not in [1, 2^32 - 1]", n);
    if (m == 0 || m > MAX_CONTEXT)
        return score__error(SCORE_E_RANGE, __func__, "m = %zu not in [1, %d]", m, MAX_CONTEXT);
    if (score__mul_size(n, m, &nm) != 0)
        return score__error(SCORE_E_RANGE, __func__, "n * m overflows");
    if (!score__all_finite_f32(nm, values))
        return score__error(SCORE_E_NUMERIC, __func__, "the context contains NaN or infinity");
    if (nm > loss->ctx_cap) {
        float *c = score__calloc(nm, sizeof(float));
        if (c == NULL)
            return score__error(SCORE_E_NOMEM, __func__, "copy of %zu x %zu values failed", n, m);
        score__free(loss->ctx);
        loss->ctx = c;
        loss->ctx_cap = nm;
    }
    memcpy(loss->ctx, values, nm * sizeof(float));
    loss->ctx_n = n;
    loss->ctx_m = m;
    return SCORE_OK;
}

/* The labels of the n rows of a compute call into the model workspace, checked against the
 * model (labels NULL: every row gets the null label K). */
int score__loss_bind_labels(const char *fn, score_loss *L, const score_model *m, size_t n)
{
    int64_t K = score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES);
    L->mws->labels = NULL;
    L->mws->labels_per_row = 1;
    if (L->lab_n == 0)
        return SCORE_OK;
    if (K == 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "labels are set (score_loss_set_labels) but "
                            "the model takes none (SCORE_MODEL_PARAM_NUM_CLASSES = 0)");
    if (L->lab_n != n)
        return score__error(SCORE_E_SHAPE, fn, "labels for %zu rows are set, the batch has %zu",
                            L->lab_n, n);
    for (size_t b = 0; b < n; b++) {
        int32_t y = L->labels[b];
        if (y >= K)
            return score__error(SCORE_E_RANGE, fn, "label %ld of row %zu not below the model's "
                                "%lld classes", (long)y, b, (long long)K);
        L->mlabels[b] = y == SCORE_LABEL_NULL ? (int32_t)K : y;
    }
    L->mws->labels = L->mlabels;
    return SCORE_OK;
}

/* The context vectors of the n rows of a compute call into the model workspace, checked
 * against the model. */
int score__loss_bind_context(const char *fn, score_loss *L, const score_model *m, size_t n)
{
    int64_t M = score__model_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM);
    L->mws->context = NULL;
    L->mws->context_per_row = 1;
    if (L->ctx_n == 0 && M == 0)
        return SCORE_OK;
    if (L->ctx_n == 0)
        return score__error(SCORE_E_INVAL, fn, "the model takes a context vector of %lld values "
                            "per row: set them with score_loss_set_context()", (long long)M);
    if (M == 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "a context is set (score_loss_set_context) "
                            "but the model takes none (SCORE_MODEL_PARAM_CONTEXT_DIM = 0)");
    if (L->ctx_n != n || L->ctx_m != (size_t)M)
        return score__error(SCORE_E_SHAPE, fn, "a context of %zu rows x %zu values is set, the "
                            "batch has %zu rows and the model takes %lld values", L->ctx_n,
                            L->ctx_m, n, (long long)M);
    L->mws->context = L->ctx;
    return SCORE_OK;
}
