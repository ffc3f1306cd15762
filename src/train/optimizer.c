/* Optimizers: SGD with momentum, Adam, AdamW; linear warm-up, gradient-norm clipping,
 * non-finite guard, state serialisation. */
#include <math.h>
#include <string.h>

#include "train-priv.h"

#define ONE_MINUS_ULP 0x1.fffffffffffffp-1 /* largest double below 1 */

static const score__param_desc opt_params[SCORE__OPT_NPARAMS] = {
    {SCORE_OPTIMIZER_PARAM_LR, "lr", SCORE_PARAM_F64, 0.0, 1e6, 1e-3, "base learning rate"},
    {SCORE_OPTIMIZER_PARAM_MOMENTUM, "momentum", SCORE_PARAM_F64, 0.0, ONE_MINUS_ULP, 0.9,
     "SGD momentum"},
    {SCORE_OPTIMIZER_PARAM_NESTEROV, "nesterov", SCORE_PARAM_I64, 0, 1, 0,
     "1: Nesterov momentum (SGD)"},
    {SCORE_OPTIMIZER_PARAM_BETA1, "beta1", SCORE_PARAM_F64, 0.0, ONE_MINUS_ULP, 0.9,
     "Adam first-moment decay"},
    {SCORE_OPTIMIZER_PARAM_BETA2, "beta2", SCORE_PARAM_F64, 0.0, ONE_MINUS_ULP, 0.999,
     "Adam second-moment decay"},
    {SCORE_OPTIMIZER_PARAM_EPS, "eps", SCORE_PARAM_F64, 1e-30, 1.0, 1e-8,
     "Adam denominator offset"},
    {SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY, "weight_decay", SCORE_PARAM_F64, 0.0, 1e6, 0.0,
     "weight decay (L2 for SGD/Adam, decoupled for AdamW)"},
    {SCORE_OPTIMIZER_PARAM_WARMUP, "warmup", SCORE_PARAM_I64, 0, 1099511627776.0, 0,
     "linear warm-up length in updates: lr_k = lr min(1, (k+1)/W); 0 = none"},
    {SCORE_OPTIMIZER_PARAM_GRAD_CLIP, "grad_clip", SCORE_PARAM_F64, 0.0, 1e30, 0.0,
     "maximum gradient 2-norm (PyTorch clip_grad_norm_); 0 = off"},
};

const score__param_desc *score__optimizer_param_table(size_t *n_out)
{
    *n_out = SCORE__OPT_NPARAMS;
    return opt_params;
}

static double pf(const score_optimizer *o, int id)
{
    return o->params[score__param_index(opt_params, SCORE__OPT_NPARAMS, id)].f;
}

static int64_t pi(const score_optimizer *o, int id)
{
    return o->params[score__param_index(opt_params, SCORE__OPT_NPARAMS, id)].i;
}

int score__optimizer_nbuf(int kind)
{
    return kind == SCORE_OPTIMIZER_SGD ? 1 : 2;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case SCORE_OPTIMIZER_SGD: return "sgd";
    case SCORE_OPTIMIZER_ADAM: return "adam";
    case SCORE_OPTIMIZER_ADAMW: return "adamw";
    default: return NULL;
    }
}

int score_optimizer_new(score_optimizer **out, int kind, size_t n_params)
{
    score_optimizer *o;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (kind_name(kind) == NULL)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "unknown optimizer kind %d (1 sgd, 2 adam, 3 adamw)", kind);
    if (n_params == 0)
        return score__error(SCORE_E_RANGE, __func__, "n_params is 0");
    o = score__calloc(1, sizeof *o);
    if (o == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    o->kind = kind;
    o->n = n_params;
    score__param_defaults(opt_params, SCORE__OPT_NPARAMS, o->params);
    o->m = score__calloc(n_params, sizeof(float));
    if (score__optimizer_nbuf(kind) == 2)
        o->v = score__calloc(n_params, sizeof(float));
    if (o->m == NULL || (score__optimizer_nbuf(kind) == 2 && o->v == NULL)) {
        score_optimizer_free(o);
        return score__error(SCORE_E_NOMEM, __func__, "allocation of %zu moments failed", n_params);
    }
    *out = o;
    return SCORE_OK;
}

void score_optimizer_free(score_optimizer *opt)
{
    if (opt == NULL)
        return;
    score__free(opt->m);
    score__free(opt->v);
    score__free(opt);
}

int score_optimizer_clone(score_optimizer **out, const score_optimizer *opt)
{
    score_optimizer *o;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (opt == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt is NULL");
    rc = score_optimizer_new(&o, opt->kind, opt->n);
    if (rc != SCORE_OK)
        return rc;
    memcpy(o->params, opt->params, sizeof o->params);
    o->step = opt->step;
    o->skipped = opt->skipped;
    o->last_norm = opt->last_norm;
    o->last_lr = opt->last_lr;
    memcpy(o->m, opt->m, opt->n * sizeof(float));
    if (opt->v)
        memcpy(o->v, opt->v, opt->n * sizeof(float));
    *out = o;
    return SCORE_OK;
}

int score_optimizer_kind(const score_optimizer *opt)
{
    return opt ? opt->kind : 0;
}

const char *score_optimizer_name(const score_optimizer *opt)
{
    return opt ? kind_name(opt->kind) : "(null)";
}

size_t score_optimizer_size(const score_optimizer *opt)
{
    return opt ? opt->n : 0;
}

SCORE__DEFINE_PARAM_ACCESSORS(score_optimizer, score_optimizer, "opt", opt_params, SCORE__OPT_NPARAMS)

/* Learning rate of the update with 0-based index k. */
static double lr_at(const score_optimizer *o, uint64_t k)
{
    double lr = pf(o, SCORE_OPTIMIZER_PARAM_LR);
    int64_t w = pi(o, SCORE_OPTIMIZER_PARAM_WARMUP);
    if (w > 0 && k + 1 < (uint64_t)w)
        lr *= ((double)k + 1.0) / (double)w;
    return lr;
}

static double grad_norm(size_t n, const float *g)
{
    /* Four partial sums in a fixed order: deterministic and a little faster than one chain. */
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s[0] += (double)g[i] * g[i];
        s[1] += (double)g[i + 1] * g[i + 1];
        s[2] += (double)g[i + 2] * g[i + 2];
        s[3] += (double)g[i + 3] * g[i + 3];
    }
    for (; i < n; i++)
        s[0] += (double)g[i] * g[i];
    return sqrt((s[0] + s[1]) + (s[2] + s[3]));
}

static void sgd_update(score_optimizer *o, float *p, const float *g, double lr, float scale)
{
    const float mom = (float)pf(o, SCORE_OPTIMIZER_PARAM_MOMENTUM);
    const float wd = (float)pf(o, SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY);
    const int nesterov = pi(o, SCORE_OPTIMIZER_PARAM_NESTEROV) != 0;
    const float flr = (float)lr;
    const int first = o->step == 0;
    float *b = o->m;
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i] * scale;
        if (wd != 0.0f)
            gi += wd * p[i];
        if (mom != 0.0f) {
            b[i] = first ? gi : mom * b[i] + gi;
            gi = nesterov ? gi + mom * b[i] : b[i];
        }
        p[i] -= flr * gi;
    }
}

static void adam_update(score_optimizer *o, float *restrict p, const float *restrict g, double lr,
                        float scale)
{
    const double b1 = pf(o, SCORE_OPTIMIZER_PARAM_BETA1), b2 = pf(o, SCORE_OPTIMIZER_PARAM_BETA2);
    const float eps = (float)pf(o, SCORE_OPTIMIZER_PARAM_EPS);
    const double wd = pf(o, SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY);
    const double k = (double)(o->step + 1);
    const double bc1 = -expm1(k * log(b1)); /* 1 - b1^k (b1 = 0 gives 1) */
    const double bc2 = -expm1(k * log(b2)); /* 1 - b2^k */
    const float step_size = (float)(lr / bc1);
    const float inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    const float fb1 = (float)b1, fb2 = (float)b2;
    const float c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    const float fwd = o->kind == SCORE_OPTIMIZER_ADAMW ? 0.0f : (float)wd;
    float *restrict m = o->m, *restrict v = o->v;
    const size_t n = o->n;
    if (o->kind == SCORE_OPTIMIZER_ADAMW && wd != 0.0) {
        const float decay = (float)(1.0 - lr * wd);
        for (size_t i = 0; i < n; i++)
            p[i] *= decay;
    }
    /* one branch-free loop: the compiler vectorises it */
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * scale + fwd * p[i];
        float mi = fb1 * m[i] + c1 * gi;
        float vi = fb2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
    }
}

int score_optimizer_step(score_optimizer *opt, size_t n, float *params, const float *grad)
{
    double norm, lr, clip;
    float scale = 1.0f;
    if (opt == NULL || params == NULL || grad == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt, params or grad is NULL");
    if (n != opt->n)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu, the optimizer has %zu parameters",
                            n, opt->n);
    if (params == grad)
        return score__error(SCORE_E_INVAL, __func__, "params and grad alias");
    norm = grad_norm(n, grad);
    opt->last_norm = norm;
    if (!isfinite(norm)) {
        opt->skipped++;
        return score__error(SCORE_E_NUMERIC, __func__,
                            "the gradient is not finite (norm %g): step skipped", norm);
    }
    clip = pf(opt, SCORE_OPTIMIZER_PARAM_GRAD_CLIP);
    if (clip > 0.0 && norm > clip)
        scale = (float)(clip / (norm + 1e-6));
    lr = lr_at(opt, opt->step);
    if (opt->kind == SCORE_OPTIMIZER_SGD)
        sgd_update(opt, params, grad, lr, scale);
    else
        adam_update(opt, params, grad, lr, scale);
    opt->last_lr = lr;
    opt->step++;
    return SCORE_OK;
}

int score_optimizer_get_step(const score_optimizer *opt, uint64_t *out)
{
    if (opt == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or out is NULL");
    *out = opt->step;
    return SCORE_OK;
}

int score_optimizer_get_skipped(const score_optimizer *opt, uint64_t *out)
{
    if (opt == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or out is NULL");
    *out = opt->skipped;
    return SCORE_OK;
}

int score_optimizer_current_lr(const score_optimizer *opt, double *out)
{
    if (opt == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or out is NULL");
    *out = lr_at(opt, opt->step);
    return SCORE_OK;
}

int score_optimizer_last_grad_norm(const score_optimizer *opt, double *out)
{
    if (opt == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or out is NULL");
    *out = opt->last_norm;
    return SCORE_OK;
}

int score_optimizer_reset(score_optimizer *opt)
{
    if (opt == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt is NULL");
    opt->step = 0;
    opt->skipped = 0;
    opt->last_norm = 0.0;
    opt->last_lr = 0.0;
    memset(opt->m, 0, opt->n * sizeof(float));
    if (opt->v)
        memset(opt->v, 0, opt->n * sizeof(float));
    return SCORE_OK;
}

/* ---- state: "SCOREOPT" magic, u32 version, u32 kind, u64 n, u64 step, u64 skipped, then the
 * moment buffers (m, then v for Adam) as little-endian float32. ---- */
#define OPT_MAGIC "SCOREOPT"
#define OPT_VERSION 1u
#define OPT_HEADER 40u

size_t score_optimizer_state_size(const score_optimizer *opt)
{
    if (opt == NULL)
        return 0;
    return OPT_HEADER + (size_t)score__optimizer_nbuf(opt->kind) * opt->n * 4u;
}

static void put_f32s(unsigned char *p, size_t n, const float *x)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        score__put_u32le(p + 4 * i, u);
    }
}

static int get_f32s(const unsigned char *p, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = score__get_u32le(p + 4 * i);
        memcpy(&x[i], &u, 4);
        if (!isfinite(x[i]))
            return -1;
    }
    return 0;
}

int score_optimizer_state_get(const score_optimizer *opt, void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t need;
    if (opt == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or buf is NULL");
    need = score_optimizer_state_size(opt);
    if (len < need)
        return score__error(SCORE_E_SHAPE, __func__, "buffer of %zu bytes, %zu needed", len, need);
    memcpy(p, OPT_MAGIC, 8);
    score__put_u32le(p + 8, OPT_VERSION);
    score__put_u32le(p + 12, (uint32_t)opt->kind);
    score__put_u64le(p + 16, (uint64_t)opt->n);
    score__put_u64le(p + 24, opt->step);
    score__put_u64le(p + 32, opt->skipped);
    put_f32s(p + OPT_HEADER, opt->n, opt->m);
    if (opt->v)
        put_f32s(p + OPT_HEADER + 4 * opt->n, opt->n, opt->v);
    return SCORE_OK;
}

int score_optimizer_state_set(score_optimizer *opt, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t need;
    float *m, *v = NULL;
    if (opt == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt or buf is NULL");
    need = score_optimizer_state_size(opt);
    if (len != need)
        return score__error(SCORE_E_SHAPE, __func__, "state of %zu bytes, %zu expected", len, need);
    if (memcmp(p, OPT_MAGIC, 8) != 0 || score__get_u32le(p + 8) != OPT_VERSION)
        return score__error(SCORE_E_FORMAT, __func__, "not an optimizer state (bad magic or version)");
    if (score__get_u32le(p + 12) != (uint32_t)opt->kind)
        return score__error(SCORE_E_FORMAT, __func__, "state of optimizer kind %u, this one is %d",
                            (unsigned)score__get_u32le(p + 12), opt->kind);
    if (score__get_u64le(p + 16) != (uint64_t)opt->n)
        return score__error(SCORE_E_FORMAT, __func__, "state for %llu parameters, this one has %zu",
                            (unsigned long long)score__get_u64le(p + 16), opt->n);
    m = score__calloc(opt->n, sizeof(float));
    if (opt->v)
        v = score__calloc(opt->n, sizeof(float));
    if (m == NULL || (opt->v && v == NULL)) {
        score__free(m);
        score__free(v);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    if (get_f32s(p + OPT_HEADER, opt->n, m) != 0 ||
        (v && get_f32s(p + OPT_HEADER + 4 * opt->n, opt->n, v) != 0)) {
        score__free(m);
        score__free(v);
        return score__error(SCORE_E_FORMAT, __func__, "the state holds non-finite moments");
    }
    score__free(opt->m);
    score__free(opt->v);
    opt->m = m;
    opt->v = v;
    opt->step = score__get_u64le(p + 24);
    opt->skipped = score__get_u64le(p + 32);
    return SCORE_OK;
}
