/* Exponential moving average of the weights, with score_sde's (1 + n) / (10 + n) warm-up. */
#include <math.h>
#include <string.h>

#include "kernel/kernel-priv.h" /* SCORE__VEC_CLONES */
#include "train-priv.h"

static const score__param_desc ema_params[SCORE__EMA_NPARAMS] = {
    {SCORE_EMA_PARAM_DECAY, "decay", SCORE_PARAM_F64, 0.0, 1.0, 0.999, "EMA decay rate"},
    {SCORE_EMA_PARAM_WARMUP, "warmup", SCORE_PARAM_I64, 0, 1, 1,
     "1: decay min(decay, (1 + n) / (10 + n)) after n updates; 0: constant decay"},
};

const score__param_desc *score__ema_param_table(size_t *n_out)
{
    *n_out = SCORE__EMA_NPARAMS;
    return ema_params;
}

int score_ema_new(score_ema **out, size_t n_params, const float *init)
{
    score_ema *e;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (init == NULL)
        return score__error(SCORE_E_INVAL, __func__, "init is NULL");
    if (n_params == 0)
        return score__error(SCORE_E_RANGE, __func__, "n_params is 0");
    if (!score__all_finite_f32(n_params, init))
        return score__error(SCORE_E_NUMERIC, __func__, "init contains NaN or infinity");
    e = score__calloc(1, sizeof *e);
    if (e == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    e->shadow = score__calloc(n_params, sizeof(float));
    if (e->shadow == NULL) {
        score__free(e);
        return score__error(SCORE_E_NOMEM, __func__, "allocation of %zu floats failed", n_params);
    }
    e->n = n_params;
    score__param_defaults(ema_params, SCORE__EMA_NPARAMS, e->params);
    memcpy(e->shadow, init, n_params * sizeof(float));
    *out = e;
    return SCORE_OK;
}

void score_ema_free(score_ema *ema)
{
    if (ema == NULL)
        return;
    score__free(ema->shadow);
    score__free(ema);
}

int score_ema_clone(score_ema **out, const score_ema *ema)
{
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (ema == NULL)
        return score__error(SCORE_E_INVAL, __func__, "ema is NULL");
    rc = score_ema_new(out, ema->n, ema->shadow);
    if (rc != SCORE_OK)
        return rc;
    memcpy((*out)->params, ema->params, sizeof ema->params);
    (*out)->num_updates = ema->num_updates;
    return SCORE_OK;
}

size_t score_ema_size(const score_ema *ema)
{
    return ema ? ema->n : 0;
}

SCORE__DEFINE_PARAM_ACCESSORS(score_ema, score_ema, "ema", ema_params, SCORE__EMA_NPARAMS)

/* The arguments of score_ema_update / score_ema_reset: n finite parameters for this EMA. */
static int check_params(const char *fn, const score_ema *ema, size_t n, const float *params)
{
    if (ema == NULL || params == NULL)
        return score__error(SCORE_E_INVAL, fn, "ema or params is NULL");
    if (n != ema->n)
        return score__error(SCORE_E_SHAPE, fn, "n = %zu, the EMA has %zu parameters", n, ema->n);
    if (!score__all_finite_f32(n, params))
        return score__error(SCORE_E_NUMERIC, fn, "params contain NaN or infinity");
    return SCORE_OK;
}

int score_ema_update(score_ema *ema, size_t n, const float *params)
{
    int rc = check_params(__func__, ema, n, params);
    if (rc != SCORE_OK)
        return rc;
    score__ema_update_finite(ema, params);
    return SCORE_OK;
}

SCORE__VEC_CLONES
static void ema_sweep(size_t n, float *restrict shadow, const float *restrict params, double w)
{
    for (size_t i = 0; i < n; i++) {
        double s = shadow[i];
        shadow[i] = (float)(s - w * (s - (double)params[i]));
    }
}

double score__ema_next_weight(const score_ema *ema)
{
    uint64_t k = ema->num_updates + 1;
    double d = ema->params[0].f;
    if (ema->params[1].i != 0) {
        double warm = (1.0 + (double)k) / (10.0 + (double)k);
        if (warm < d)
            d = warm;
    }
    return 1.0 - d;
}

void score__ema_update_finite(score_ema *ema, const float *params)
{
    ema_sweep(ema->n, ema->shadow, params, score__ema_next_weight(ema));
    ema->num_updates++;
}

int score_ema_get(const score_ema *ema, float *out, size_t n)
{
    if (ema == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "ema or out is NULL");
    if (n != ema->n)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu, the EMA has %zu parameters", n, ema->n);
    memcpy(out, ema->shadow, n * sizeof(float));
    return SCORE_OK;
}

int score_ema_copy_to_model(const score_ema *ema, score_model *model)
{
    size_t np;
    if (ema == NULL || model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "ema or model is NULL");
    if (!(score_model_capabilities(model) & SCORE_MODEL_CAP_PARAMS))
        return score__error(SCORE_E_UNSUPPORTED, __func__, "the model has no parameters");
    np = score_model_param_count(model);
    if (np != ema->n)
        return score__error(SCORE_E_SHAPE, __func__, "the model has %zu parameters, the EMA %zu",
                            np, ema->n);
    return score_model_params_set(model, ema->shadow, ema->n);
}

int score_ema_reset(score_ema *ema, size_t n, const float *params)
{
    int rc = check_params(__func__, ema, n, params);
    if (rc != SCORE_OK)
        return rc;
    memcpy(ema->shadow, params, n * sizeof(float));
    ema->num_updates = 0;
    return SCORE_OK;
}

int score_ema_get_num_updates(const score_ema *ema, uint64_t *out)
{
    if (ema == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "ema or out is NULL");
    *out = ema->num_updates;
    return SCORE_OK;
}

/* ---- state: "SCOREEMA" magic, u32 version, u32 reserved (0), u64 n, u64 num_updates, then the
 * shadow as little-endian float32. ---- */
#define EMA_MAGIC "SCOREEMA"
#define EMA_VERSION 1u
#define EMA_HEADER 32u

size_t score_ema_state_size(const score_ema *ema)
{
    return ema ? EMA_HEADER + 4u * ema->n : 0;
}

int score_ema_state_get(const score_ema *ema, void *buf, size_t len)
{
    unsigned char *p = buf;
    if (ema == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "ema or buf is NULL");
    if (len < score_ema_state_size(ema))
        return score__error(SCORE_E_SHAPE, __func__, "buffer of %zu bytes, %zu needed", len,
                            score_ema_state_size(ema));
    memcpy(p, EMA_MAGIC, 8);
    score__put_u32le(p + 8, EMA_VERSION);
    score__put_u32le(p + 12, 0);
    score__put_u64le(p + 16, (uint64_t)ema->n);
    score__put_u64le(p + 24, ema->num_updates);
    for (size_t i = 0; i < ema->n; i++) {
        uint32_t u;
        memcpy(&u, &ema->shadow[i], 4);
        score__put_u32le(p + EMA_HEADER + 4 * i, u);
    }
    return SCORE_OK;
}

int score_ema_state_set(score_ema *ema, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (ema == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "ema or buf is NULL");
    if (len != score_ema_state_size(ema))
        return score__error(SCORE_E_SHAPE, __func__, "state of %zu bytes, %zu expected", len,
                            score_ema_state_size(ema));
    if (memcmp(p, EMA_MAGIC, 8) != 0 || score__get_u32le(p + 8) != EMA_VERSION)
        return score__error(SCORE_E_FORMAT, __func__, "not an EMA state (bad magic or version)");
    if (score__get_u64le(p + 16) != (uint64_t)ema->n)
        return score__error(SCORE_E_FORMAT, __func__, "state for %llu parameters, this EMA has %zu",
                            (unsigned long long)score__get_u64le(p + 16), ema->n);
    for (size_t i = 0; i < ema->n; i++) {
        uint32_t u = score__get_u32le(p + EMA_HEADER + 4 * i);
        float f;
        memcpy(&f, &u, 4);
        if (!isfinite(f))
            return score__error(SCORE_E_FORMAT, __func__, "the state holds a non-finite value");
    }
    for (size_t i = 0; i < ema->n; i++) {
        uint32_t u = score__get_u32le(p + EMA_HEADER + 4 * i);
        memcpy(&ema->shadow[i], &u, 4);
    }
    ema->num_updates = score__get_u64le(p + 24);
    return SCORE_OK;
}
