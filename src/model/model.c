/* Generic score_model: lifecycle, phases, parameters (model-compute.c: the workspaces and the
 * compute calls, with their argument validation and the dispatch to the kind). */
#include <math.h>
#include <string.h>

#include "model-priv.h"

static const score__param_desc model_params[SCORE__MODEL_NPARAMS] = {
    {SCORE_MODEL_PARAM_HIDDEN, "hidden", SCORE_PARAM_I64, 1, 65536, 128, "width of every hidden layer (MLP)"},
    {SCORE_MODEL_PARAM_DEPTH, "depth", SCORE_PARAM_I64, 1, 64, 3, "number of hidden layers (MLP)"},
    {SCORE_MODEL_PARAM_ACTIVATION, "activation", SCORE_PARAM_I64, 1, 5, SCORE_ACT_SILU,
     "activation: 1 silu, 2 softplus, 3 tanh, 4 elu, 5 gelu (MLP)"},
    {SCORE_MODEL_PARAM_EMBEDDING, "embedding", SCORE_PARAM_I64, 0, 2, SCORE_EMBED_FOURIER,
     "conditioning embedding: 0 none (raw c), 1 Gaussian Fourier, 2 sinusoidal (MLP)"},
    {SCORE_MODEL_PARAM_EMBED_DIM, "embed_dim", SCORE_PARAM_I64, 2, 4096, 32, "embedding size, even (MLP)"},
    {SCORE_MODEL_PARAM_FOURIER_SCALE, "fourier_scale", SCORE_PARAM_F64, 1e-300, 1e4, 16.0,
     "standard deviation of the Gaussian Fourier projection (MLP)"},
    {SCORE_MODEL_PARAM_RESIDUAL, "residual", SCORE_PARAM_I64, 0, 1, 1,
     "1: hidden blocks h + phi(W h + b) where widths match (MLP)"},
    {SCORE_MODEL_PARAM_SEED, "seed", SCORE_PARAM_I64, 0, 4611686018427387904.0, 0,
     "seed of the initialisation and the Fourier projection (MLP)"},
    {SCORE_MODEL_PARAM_GUIDANCE, "guidance", SCORE_PARAM_F64, -1e6, 1e6, 0.0,
     "guidance weight w of a classifier-free-guidance combination: (1 + w) s_cond - w s_uncond"},
    {SCORE_MODEL_PARAM_THREADS, "threads", SCORE_PARAM_I64, 1, 1024, 1,
     "threads for row-parallel evaluation (blocks of rows at a time); results do not depend on it"},
    {SCORE_MODEL_PARAM_NUM_CLASSES, "num_classes", SCORE_PARAM_I64, 0, 65535, 0,
     "number of classes of the label input, 0 = none; label K is the null label (MLP)"},
    {SCORE_MODEL_PARAM_CONTEXT_DIM, "context_dim", SCORE_PARAM_I64, 0, 4096, 0,
     "width of the per-row context vector input, 0 = none (MLP)"},
    {SCORE_MODEL_PARAM_UNET_BASE_WIDTH, "unet_base_width", SCORE_PARAM_I64, 1, 4096, 32,
     "channels of the first level; level l has base * mult[l] (U-Net)"},
    {SCORE_MODEL_PARAM_UNET_BLOCKS, "unet_blocks", SCORE_PARAM_I64, 1, 8, 2,
     "residual blocks per level of the down path; the up path has one more (U-Net)"},
    {SCORE_MODEL_PARAM_UNET_GROUPS, "unet_groups", SCORE_PARAM_I64, 1, 1024, 8,
     "GroupNorm groups (at most one per channel) (U-Net)"},
    {SCORE_MODEL_PARAM_UNET_ATTENTION, "unet_attention", SCORE_PARAM_I64, 0, 1, 1,
     "1: self-attention at the lowest resolution (U-Net)"},
    {SCORE_MODEL_PARAM_UNET_TEMB_DIM, "unet_temb_dim", SCORE_PARAM_I64, 0, 65536, 0,
     "width of the time and class embedding, 0 = 4 * base width (U-Net)"},
};

const score__param_desc *score__model_param_table(size_t *n_out)
{
    *n_out = SCORE__MODEL_NPARAMS;
    return model_params;
}

int64_t score__model_i64(const score_model *m, int param)
{
    return m->params[score__param_index(model_params, SCORE__MODEL_NPARAMS, param)].i;
}

double score__model_f64(const score_model *m, int param)
{
    return m->params[score__param_index(model_params, SCORE__MODEL_NPARAMS, param)].f;
}

int score__model_alloc(score_model **out, int kind, size_t dim, const score__model_ops *ops)
{
    score_model *m = score__calloc(1, sizeof *m);
    *out = NULL;
    if (m == NULL)
        return SCORE_E_NOMEM;
    m->ops = ops;
    m->kind = kind;
    m->dim = dim;
    score__param_defaults(model_params, SCORE__MODEL_NPARAMS, m->params);
    *out = m;
    return SCORE_OK;
}

/* Models take at most 2^20 inputs, below the 2^24 of the objects that only hold rows
 * (SCORE__MAX_DIM): the limit is part of the model API (model.h, and the file reader in
 * mlp-io.c), and an MLP's first and last layers hold dim x width weights each. */
#define SCORE__MODEL_MAX_DIM ((size_t)1 << 20)

int score_model_new(score_model **out, int kind, size_t dim)
{
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (kind != SCORE_MODEL_MLP && kind != SCORE_MODEL_ENERGY)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "kind %d cannot be created here (MLP = 1, energy = 7; U-Net "
                            "models: score_model_new_unet(); analytic, callback and "
                            "combination models have their own constructors)", kind);
    if (dim == 0 || dim > SCORE__MODEL_MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, 2^20]", dim);
    rc = score__model_alloc(out, kind, dim,
                            kind == SCORE_MODEL_ENERGY ? &score__energy_ops : &score__mlp_ops);
    if (rc != SCORE_OK)
        return score__error(rc, __func__, "allocation failed");
    return SCORE_OK;
}

int score_model_new_mlp(score_model **out, size_t dim, size_t hidden, size_t depth,
                        int activation, uint64_t seed)
{
    score_model *m;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    rc = score_model_new(&m, SCORE_MODEL_MLP, dim);
    if (rc != SCORE_OK)
        return rc;
    if ((rc = score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, (int64_t)(hidden > INT64_MAX ? 0 : hidden))) != SCORE_OK ||
        (rc = score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, (int64_t)(depth > INT64_MAX ? 0 : depth))) != SCORE_OK ||
        (rc = score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, activation)) != SCORE_OK ||
        (rc = score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, (int64_t)(seed > ((uint64_t)1 << 62) ? -1 : (int64_t)seed))) != SCORE_OK) {
        score_model_free(m);
        return rc;
    }
    *out = m;
    return SCORE_OK;
}

void score_model_free(score_model *model)
{
    if (model == NULL)
        return;
    score__model_ws_free(model->own_ws); /* before the impl: its kind part may refer to it */
    if (model->ops && model->ops->destroy_impl)
        model->ops->destroy_impl(model);
    score__model_meta_free(model);
    score__free(model);
}

int score_model_clone(score_model **out, const score_model *model)
{
    score_model *m;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model is NULL");
    m = score__calloc(1, sizeof *m);
    if (m == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    *m = *model;
    m->impl = NULL;
    m->own_ws = NULL;
    atomic_init(&m->cached_n, (size_t)0);
    atomic_init(&m->last_callback_status, 0);
    if (score__model_meta_copy(m, model) != SCORE_OK) {
        score__free(m);
        return score__error(SCORE_E_NOMEM, __func__, "copying the metadata failed");
    }
    if (model->ops->clone_impl) {
        rc = model->ops->clone_impl(m, model);
        if (rc != SCORE_OK) {
            score__model_meta_free(m);
            score__free(m);
            return score__error(rc, __func__, "copying the %s model failed", model->ops->name);
        }
    }
    *out = m;
    return SCORE_OK;
}

int score_model_prepare(score_model *model)
{
    int rc;
    if (model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model is NULL");
    if (model->prepared)
        return SCORE_OK;
    if (model->ops->prepare) {
        rc = model->ops->prepare(model);
        if (rc != SCORE_OK)
            return rc; /* the kind wrote the message */
    }
    model->prepared = 1;
    return SCORE_OK;
}

int score_model_kind(const score_model *model)
{
    return model ? model->kind : 0;
}

size_t score_model_dim(const score_model *model)
{
    return model ? model->dim : 0;
}

uint32_t score_model_capabilities(const score_model *model)
{
    uint32_t caps = 0;
    const score__model_ops *o;
    if (model == NULL)
        return 0;
    o = model->ops;
    if (o->param_count && o->params_get && o->params_set) caps |= SCORE_MODEL_CAP_PARAMS;
    if (o->backward) caps |= SCORE_MODEL_CAP_BACKWARD;
    if (o->jvp) caps |= SCORE_MODEL_CAP_JVP;
    if (o->vjp) caps |= SCORE_MODEL_CAP_VJP;
    if (o->trace) caps |= SCORE_MODEL_CAP_TRACE;
    if (o->trace_grad) caps |= SCORE_MODEL_CAP_TRACE_GRAD;
    if (o->vjv_grad) caps |= SCORE_MODEL_CAP_VJV_GRAD;
    if (o->save) caps |= SCORE_MODEL_CAP_SAVE;
    return caps;
}

/* Architecture parameters (everything but GUIDANCE) are MLP-only and fixed after prepare. */
static int check_param_target(const char *fn, score_model *m, int param)
{
    if (param == SCORE_MODEL_PARAM_GUIDANCE) {
        if (m->kind != SCORE_MODEL_COMBINATION)
            return score__error(SCORE_E_UNSUPPORTED, fn, "guidance applies to combination models only");
        return SCORE_OK;
    }
    if (param == SCORE_MODEL_PARAM_THREADS)
        return SCORE_OK; /* any kind, at any time: a run-time setting, not architecture */
    if (score__param_index(model_params, SCORE__MODEL_NPARAMS, param) < 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "unknown model parameter %d", param);
    if (m->kind == SCORE_MODEL_UNET) {
        if (param < SCORE_MODEL_PARAM_UNET_BASE_WIDTH && param != SCORE_MODEL_PARAM_EMBEDDING &&
            param != SCORE_MODEL_PARAM_EMBED_DIM && param != SCORE_MODEL_PARAM_FOURIER_SCALE &&
            param != SCORE_MODEL_PARAM_SEED && param != SCORE_MODEL_PARAM_NUM_CLASSES)
            return score__error(SCORE_E_UNSUPPORTED, fn, "parameter %d does not apply to U-Net models", param);
    } else if (param >= SCORE_MODEL_PARAM_UNET_BASE_WIDTH) {
        return score__error(SCORE_E_UNSUPPORTED, fn, "parameter %d applies to U-Net models only", param);
    } else if (m->kind != SCORE_MODEL_MLP && m->kind != SCORE_MODEL_CLASSIFIER &&
               m->kind != SCORE_MODEL_ENERGY) {
        return score__error(SCORE_E_UNSUPPORTED, fn, "parameter %d applies to MLP models only", param);
    }
    if (m->prepared)
        return score__error(SCORE_E_STAGE, fn, "the architecture is fixed once the model is prepared");
    return SCORE_OK;
}

/* score_model_set_f64 / _i64: the value through the table, then the kind's hook, which may
 * refuse it (the parameters are then restored). */
static int set_param(const char *fn, score_model *model, int param, int is_f64, double f,
                     int64_t i)
{
    int rc;
    score__param_val saved[SCORE__MODEL_NPARAMS];
    if (model == NULL)
        return score__error(SCORE_E_INVAL, fn, "model is NULL");
    if ((rc = check_param_target(fn, model, param)) != SCORE_OK)
        return rc;
    memcpy(saved, model->params, sizeof saved);
    rc = is_f64 ? score__param_set_f64(fn, model_params, SCORE__MODEL_NPARAMS, model->params, param, f)
                : score__param_set_i64(fn, model_params, SCORE__MODEL_NPARAMS, model->params, param, i);
    if (rc == SCORE_OK && model->ops->on_param && (rc = model->ops->on_param(model, param)) != SCORE_OK)
        memcpy(model->params, saved, sizeof saved);
    return rc;
}

int score_model_set_f64(score_model *model, int param, double value)
{
    return set_param(__func__, model, param, 1, value, 0);
}

int score_model_set_i64(score_model *model, int param, int64_t value)
{
    return set_param(__func__, model, param, 0, 0.0, value);
}

int score_model_get_f64(const score_model *model, int param, double *out)
{
    if (model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model is NULL");
    return score__param_get_f64(__func__, model_params, SCORE__MODEL_NPARAMS, model->params, param, out);
}

int score_model_get_i64(const score_model *model, int param, int64_t *out)
{
    if (model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model is NULL");
    return score__param_get_i64(__func__, model_params, SCORE__MODEL_NPARAMS, model->params, param, out);
}

size_t score_model_param_count(score_model *model)
{
    if (model == NULL || model->ops->param_count == NULL)
        return 0;
    if (score_model_prepare(model) != SCORE_OK)
        return 0;
    return model->ops->param_count(model);
}

static int check_params_buf(const char *fn, score_model *m, const void *buf, size_t len)
{
    int rc;
    size_t np;
    if (m == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, fn, "model or buf is NULL");
    if (m->ops->param_count == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn, "%s models have no trainable parameters", m->ops->name);
    if ((rc = score_model_prepare(m)) != SCORE_OK)
        return rc;
    np = m->ops->param_count(m);
    if (len != np)
        return score__error(SCORE_E_SHAPE, fn, "buffer of %zu floats, the model has %zu parameters", len, np);
    return SCORE_OK;
}

int score_model_params_get(score_model *model, float *buf, size_t len)
{
    int rc = check_params_buf(__func__, model, buf, len);
    if (rc == SCORE_OK)
        model->ops->params_get(model, buf);
    return rc;
}

int score_model_params_set(score_model *model, const float *buf, size_t len)
{
    int rc = check_params_buf(__func__, model, buf, len);
    if (rc != SCORE_OK)
        return rc;
    if (!score__all_finite_f32(len, buf))
        return score__error(SCORE_E_NUMERIC, __func__, "parameters contain NaN or infinity");
    model->ops->params_set(model, buf);
    atomic_store(&model->cached_n, (size_t)0);
    return SCORE_OK;
}

float *score__model_params_data(score_model *m)
{
    if (m == NULL || !m->prepared || m->ops->params_slot == NULL)
        return NULL;
    return *m->ops->params_slot(m);
}

float *score__model_params_exchange(score_model *m, float *buf)
{
    float **slot = m->ops->params_slot(m), *old = *slot;
    *slot = buf;
    atomic_store(&m->cached_n, (size_t)0);
    return old;
}

void score__model_params_changed(score_model *m)
{
    atomic_store(&m->cached_n, (size_t)0);
}

int score__model_same_architecture(const score_model *a, const score_model *b)
{
    if (a->kind != b->kind)
        return 0;
    return a->ops->same_arch == NULL || a->ops->same_arch(a, b);
}
