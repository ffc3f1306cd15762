/* Optimizers: SGD with momentum, Adam, AdamW; linear warm-up, gradient-norm clipping,
 * non-finite guard (state serialisation: optimizer-state.c). */
#include <math.h>
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h" /* SCORE__VEC_CLONES */
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
    score__free(opt->m_next);
    score__free(opt->v_next);
    score__pool_free(opt->pool);
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
    o->bound_m = opt->bound_m;
    o->bound_v = opt->bound_v;
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

/* ---- the update ------------------------------------------------------------------------
 * Every loop below is one branch-free sweep compiled for several x86-64 levels
 * (SCORE__VEC_CLONES) with the same arithmetic in every version. The gradient norm is
 * accumulated in double in NORM_LANES interleaved partial sums (element i goes to sum i mod
 * NORM_LANES, in index order), added up in lane order at the end: one fixed order whatever the
 * vector width. */

enum { NORM_LANES = 16 };

/* |x| as an integer: for finite floats the integer order of these bits is the order of |x|. */
SCORE__INLINE uint32_t abs_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x7fffffffu;
}

SCORE__INLINE uint32_t umax(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

/* The sweep before an update: the squared norm of g (lanes acc) and, with p != NULL, the
 * largest |p| as abs_bits (lanes mx). */
SCORE__INLINE void scan_body(size_t n, const float *g, const float *p, double *acc, uint32_t *mx,
                             int want_max)
{
    size_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (size_t j = 0; j < NORM_LANES; j++) {
            acc[j] += (double)g[i + j] * (double)g[i + j];
            if (want_max)
                mx[j] = umax(mx[j], abs_bits(p[i + j]));
        }
    for (; i < n; i++) {
        acc[i % NORM_LANES] += (double)g[i] * (double)g[i];
        if (want_max)
            mx[0] = umax(mx[0], abs_bits(p[i]));
    }
}

SCORE__VEC_CLONES
static void scan_norm(size_t n, const float *restrict g, double *restrict acc)
{
    scan_body(n, g, NULL, acc, NULL, 0);
}

SCORE__VEC_CLONES
static void scan_norm_max(size_t n, const float *restrict g, const float *restrict p,
                          double *restrict acc, uint32_t *restrict mx)
{
    scan_body(n, g, p, acc, mx, 1);
}

/* Largest |x| as abs_bits, in lanes mx. */
SCORE__VEC_CLONES
static void scan_max(size_t n, const float *restrict x, uint32_t *restrict mx)
{
    size_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (size_t j = 0; j < NORM_LANES; j++)
            mx[j] = umax(mx[j], abs_bits(x[i + j]));
    for (; i < n; i++)
        mx[0] = umax(mx[0], abs_bits(x[i]));
}

static double lanes_norm(const double *acc)
{
    double s = 0.0;
    for (size_t j = 0; j < NORM_LANES; j++)
        s += acc[j];
    return sqrt(s);
}

/* The gradient norm from the lane sums into opt->last_norm and *norm; a non-finite norm counts
 * a skipped step and fails with SCORE_E_NUMERIC (nothing else has been touched yet). */
static int take_norm(score_optimizer *opt, const char *fn, const double *acc, double *norm)
{
    *norm = lanes_norm(acc);
    opt->last_norm = *norm;
    if (isfinite(*norm))
        return SCORE_OK;
    opt->skipped++;
    return score__error(SCORE_E_NUMERIC, fn, "the gradient is not finite (norm %g): step skipped",
                        *norm);
}

/* The float whose abs_bits are the largest of the lane maxima mx (finite inputs; a NaN or an
 * infinity gives an infinity or NaN here). */
static double lanes_max(const uint32_t *mx)
{
    uint32_t u = 0;
    float f;
    for (size_t j = 0; j < NORM_LANES; j++)
        u = umax(u, mx[j]);
    memcpy(&f, &u, sizeof f);
    return (double)f;
}

/* Constants of one update. */
typedef struct {
    int kind;
    float scale;                 /* clipping factor of the gradient (1 = none) */
    /* SGD */
    float lr, mom, wd;
    int nesterov, first;
    /* Adam / AdamW */
    int decoupled;               /* AdamW with weight decay: p *= decay first */
    float decay, step_size, inv_bc2_sqrt, fb1, fb2, c1, c2, eps, fwd;
} upd_k;

/* 1 when x is NaN or an infinity (exponent bits all ones); vectorizes as integer ops. */
SCORE__INLINE unsigned nonfinite(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* The EMA of the new weight pn: shadow s -= w (s - pn) in double, the arithmetic of ema.c's
 * sweep (bit for bit). */
SCORE__INLINE float ema_of(float s, float pn, double w)
{
    double sd = (double)s;
    return (float)(sd - w * (sd - (double)pn));
}

/* One Adam / AdamW sweep from (p, m, v) into (po, mo, vo), which are either the same arrays
 * (in place) or arrays that overlap none of the inputs. With check, returns nonzero when a new
 * value is not finite. With ema (in place only), the EMA shadow of the new weights follows in
 * the same sweep, weight ew. Inlined into the callers below, which carry the restrict
 * qualifiers. */
SCORE__INLINE unsigned adam_body(size_t n, const float *p, float *g, const float *m,
                                 const float *v, float *po, float *mo, float *vo, const upd_k *k,
                                 int decoupled, int check, float *shadow, double ew, int ema,
                                 int clear)
{
    const float scale = k->scale, fwd = k->fwd, fb1 = k->fb1, fb2 = k->fb2, c1 = k->c1,
                c2 = k->c2, eps = k->eps, step_size = k->step_size,
                inv_bc2_sqrt = k->inv_bc2_sqrt, decay = k->decay;
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        float pi = decoupled ? p[i] * decay : p[i];
        float gi = g[i] * scale + fwd * pi;
        float mi = fb1 * m[i] + c1 * gi;
        float vi = fb2 * v[i] + c2 * gi * gi;
        float pn = pi - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
        mo[i] = mi;
        vo[i] = vi;
        po[i] = pn;
        if (clear)
            g[i] = 0.0f;
        if (ema)
            shadow[i] = ema_of(shadow[i], pn, ew);
        if (check)
            bad |= nonfinite(pn) | nonfinite(mi) | nonfinite(vi);
    }
    return bad;
}

/* In place; shadow: the EMA to update with the new weights (weight ew), or NULL; clear: g[i] = 0
 * once read (g is only read otherwise). */
SCORE__VEC_CLONES
static void adam_inplace(size_t n, float *restrict p, float *restrict g, float *restrict m,
                         float *restrict v, const upd_k *k, float *restrict shadow, double ew,
                         int clear)
{
    if (shadow != NULL) {
        if (k->decoupled)
            (void)adam_body(n, p, g, m, v, p, m, v, k, 1, 0, shadow, ew, 1, clear);
        else
            (void)adam_body(n, p, g, m, v, p, m, v, k, 0, 0, shadow, ew, 1, clear);
    } else if (clear) {
        if (k->decoupled)
            (void)adam_body(n, p, g, m, v, p, m, v, k, 1, 0, NULL, 0.0, 0, 1);
        else
            (void)adam_body(n, p, g, m, v, p, m, v, k, 0, 0, NULL, 0.0, 0, 1);
    } else {
        if (k->decoupled)
            (void)adam_body(n, p, g, m, v, p, m, v, k, 1, 0, NULL, 0.0, 0, 0);
        else
            (void)adam_body(n, p, g, m, v, p, m, v, k, 0, 0, NULL, 0.0, 0, 0);
    }
}

SCORE__VEC_CLONES
static unsigned adam_out(size_t n, const float *restrict p, const float *restrict g,
                         const float *restrict m, const float *restrict v, float *restrict po,
                         float *restrict mo, float *restrict vo, const upd_k *k)
{
    float *gr = (float *)(uintptr_t)g; /* read only: clear is 0 */
    return k->decoupled ? adam_body(n, p, gr, m, v, po, mo, vo, k, 1, 1, NULL, 0.0, 0, 0)
                        : adam_body(n, p, gr, m, v, po, mo, vo, k, 0, 1, NULL, 0.0, 0, 0);
}

/* SGD with optional L2 decay and (Nesterov) momentum; b / bo: the momentum buffer. shadow, ew,
 * ema as adam_body. */
SCORE__INLINE unsigned sgd_body(size_t n, const float *p, float *g, const float *b,
                                float *po, float *bo, const upd_k *k, int check, float *shadow,
                                double ew, int ema, int clear)
{
    const float scale = k->scale, wd = k->wd, mom = k->mom, flr = k->lr;
    const int first = k->first, nesterov = k->nesterov;
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * scale, bi = b[i], pn;
        if (wd != 0.0f)
            gi += wd * p[i];
        if (mom != 0.0f) {
            bi = first ? gi : mom * bi + gi;
            gi = nesterov ? gi + mom * bi : bi;
        }
        pn = p[i] - flr * gi;
        bo[i] = bi;
        po[i] = pn;
        if (clear)
            g[i] = 0.0f;
        if (ema)
            shadow[i] = ema_of(shadow[i], pn, ew);
        if (check)
            bad |= nonfinite(pn) | nonfinite(bi);
    }
    return bad;
}

SCORE__VEC_CLONES
static void sgd_inplace(size_t n, float *restrict p, float *restrict g, float *restrict b,
                        const upd_k *k, float *restrict shadow, double ew, int clear)
{
    if (shadow != NULL)
        (void)sgd_body(n, p, g, b, p, b, k, 0, shadow, ew, 1, clear);
    else if (clear)
        (void)sgd_body(n, p, g, b, p, b, k, 0, NULL, 0.0, 0, 1);
    else
        (void)sgd_body(n, p, g, b, p, b, k, 0, NULL, 0.0, 0, 0);
}

SCORE__VEC_CLONES
static unsigned sgd_out(size_t n, const float *restrict p, const float *restrict g,
                        const float *restrict b, float *restrict po, float *restrict bo,
                        const upd_k *k)
{
    return sgd_body(n, p, (float *)(uintptr_t)g, b, po, bo, k, 1, NULL, 0.0, 0, 0); /* read only */
}

/* The constants of update number o->step at learning rate lr. */
static void update_consts(const score_optimizer *o, double lr, float scale, upd_k *k)
{
    memset(k, 0, sizeof *k);
    k->kind = o->kind;
    k->scale = scale;
    if (o->kind == SCORE_OPTIMIZER_SGD) {
        k->lr = (float)lr;
        k->mom = (float)pf(o, SCORE_OPTIMIZER_PARAM_MOMENTUM);
        k->wd = (float)pf(o, SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY);
        k->nesterov = pi(o, SCORE_OPTIMIZER_PARAM_NESTEROV) != 0;
        k->first = o->step == 0;
    } else {
        const double b1 = pf(o, SCORE_OPTIMIZER_PARAM_BETA1), b2 = pf(o, SCORE_OPTIMIZER_PARAM_BETA2);
        const double wd = pf(o, SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY);
        const double kk = (double)(o->step + 1);
        const double bc1 = -expm1(kk * log(b1)); /* 1 - b1^k (b1 = 0 gives 1) */
        const double bc2 = -expm1(kk * log(b2)); /* 1 - b2^k */
        k->step_size = (float)(lr / bc1);
        k->inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
        k->fb1 = (float)b1;
        k->fb2 = (float)b2;
        k->c1 = (float)(1.0 - b1);
        k->c2 = (float)(1.0 - b2);
        k->eps = (float)pf(o, SCORE_OPTIMIZER_PARAM_EPS);
        k->fwd = o->kind == SCORE_OPTIMIZER_ADAMW ? 0.0f : (float)wd;
        k->decoupled = o->kind == SCORE_OPTIMIZER_ADAMW && wd != 0.0;
        k->decay = (float)(1.0 - lr * wd);
    }
}

/* Clipping factor for gradient norm `norm`. */
static float clip_scale(const score_optimizer *o, double norm)
{
    double clip = pf(o, SCORE_OPTIMIZER_PARAM_GRAD_CLIP);
    return clip > 0.0 && norm > clip ? (float)(clip / (norm + 1e-6)) : 1.0f;
}

/* 1 when no value of the update with constants k can overflow, given bounds on the largest
 * |g|, |p|, |m|, |v| (G, P, M, V; finite): a bound on every intermediate, with ample margin for
 * float rounding, below a quarter of the float range. False positives only cost the slower,
 * checked update. M_out, V_out: bounds on the new moments (valid when the update is made). */
static int update_is_safe(const upd_k *k, double G, double P, double M, double V, double *M_out,
                          double *V_out)
{
    const double lim = 0.25 * 3.4028234663852886e38, up = 1.0 + 1e-6;
    double gmax, worst;
    if (!(G < lim && P < lim && M < lim && V < lim))
        return 0;
    if (k->kind == SCORE_OPTIMIZER_SGD) {
        double mom = fabs((double)k->mom), b, step;
        gmax = up * (G * (double)k->scale + fabs((double)k->wd) * P);
        b = k->mom != 0.0f ? up * (mom * M + gmax) : M;   /* the new momentum buffer */
        step = up * (gmax + mom * b + b);                 /* the (Nesterov) step direction */
        worst = up * (P + fabs((double)k->lr) * step);    /* lr step and the new weight */
        *M_out = b;
        *V_out = 0.0;
        return gmax < lim && b < lim && step < lim && worst < lim;
    } else {
        double Pd = k->decoupled ? P * fabs((double)k->decay) : P, mmax, vmax, q;
        gmax = up * (G * (double)k->scale + fabs((double)k->fwd) * Pd);
        if (!(gmax < 1e18) || !(Pd < lim))
            return 0;
        mmax = up * ((double)k->fb1 * M + (double)k->c1 * gmax);
        vmax = up * ((double)k->fb2 * V + (double)k->c2 * gmax * gmax);
        q = (double)k->step_size * mmax;                  /* step_size m, then / (... + eps) */
        worst = up * (Pd + q / (double)k->eps);
        if (sqrt(vmax) * (double)k->inv_bc2_sqrt > worst)
            worst = sqrt(vmax) * (double)k->inv_bc2_sqrt;
        *M_out = mmax;
        *V_out = vmax;
        return mmax < lim && vmax < lim && q < lim && worst < lim;
    }
}

/* Exact largest |m| and |v| into the tracked bounds. */
static void exact_moment_bounds(score_optimizer *o)
{
    uint32_t mx[NORM_LANES];
    memset(mx, 0, sizeof mx);
    scan_max(o->n, o->m, mx);
    o->bound_m = lanes_max(mx);
    o->bound_v = 0.0;
    if (o->v) {
        memset(mx, 0, sizeof mx);
        scan_max(o->n, o->v, mx);
        o->bound_v = lanes_max(mx);
    }
}

void score__optimizer_moments_changed(score_optimizer *opt)
{
    opt->bound_m = opt->bound_v = -1.0;
}

int score_optimizer_step(score_optimizer *opt, size_t n, float *params, const float *grad)
{
    double acc[NORM_LANES] = {0}, norm, lr;
    upd_k k;
    int rc;
    if (opt == NULL || params == NULL || grad == NULL)
        return score__error(SCORE_E_INVAL, __func__, "opt, params or grad is NULL");
    if (n != opt->n)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu, the optimizer has %zu parameters",
                            n, opt->n);
    if (params == grad)
        return score__error(SCORE_E_INVAL, __func__, "params and grad alias");
    scan_norm(n, grad, acc);
    if ((rc = take_norm(opt, __func__, acc, &norm)) != SCORE_OK)
        return rc;
    lr = lr_at(opt, opt->step);
    update_consts(opt, lr, clip_scale(opt, norm), &k);
    if (opt->kind == SCORE_OPTIMIZER_SGD) /* clear = 0: grad is only read */
        sgd_inplace(n, params, (float *)(uintptr_t)grad, opt->m, &k, NULL, 0.0, 0);
    else
        adam_inplace(n, params, (float *)(uintptr_t)grad, opt->m, opt->v, &k, NULL, 0.0, 0);
    score__optimizer_moments_changed(opt); /* unchecked: the moments may have overflowed */
    opt->last_lr = lr;
    opt->step++;
    return SCORE_OK;
}

/* The in-place update of the guarded step in fixed chunks, several at a time with
 * opt->threads > 1 (on the model's pool when the trainer lends it, else on the optimizer's
 * own, made on first use; without threads the chunks run on the calling thread). Every
 * element's update depends on that element alone, so the result is the same for any thread
 * count. */
#define SCORE__OPT_CHUNK ((size_t)1 << 15)
typedef struct sweep_job {
    const score_optimizer *opt;
    int adam;
    float *params;
    float *grad;
    const upd_k *k;
    float *shadow; /* EMA shadow or NULL */
    double ew;     /* its weight */
    int clear;     /* grad[i] = 0 once read */
} sweep_job;

static void sweep_part(void *ctx, size_t i, size_t thread)
{
    const sweep_job *j = ctx;
    const score_optimizer *opt = j->opt;
    size_t n = opt->n, o = i * SCORE__OPT_CHUNK;
    size_t len = n - o < SCORE__OPT_CHUNK ? n - o : SCORE__OPT_CHUNK;
    float *sh = j->shadow != NULL ? j->shadow + o : NULL;
    (void)thread;
    if (j->adam)
        adam_inplace(len, j->params + o, j->grad + o, opt->m + o, opt->v + o, j->k, sh, j->ew,
                     j->clear);
    else
        sgd_inplace(len, j->params + o, j->grad + o, opt->m + o, j->k, sh, j->ew, j->clear);
}

static void inplace_sweep(score_optimizer *opt, int adam, float *params, float *grad,
                          const upd_k *k, float *shadow, double ew, int clear)
{
    size_t n = opt->n, nch = (n + SCORE__OPT_CHUNK - 1) / SCORE__OPT_CHUNK;
    int threads = score__par_threads(opt->threads, nch);
    score__pool *pool;
    sweep_job j = {opt, adam, params, grad, k, shadow, ew, clear};
    if (threads > 1 && opt->lent != NULL && score__pool_threads(opt->lent) == (size_t)threads)
        pool = opt->lent; /* the threads that just ran the model (awake, caches warm) */
    else
        pool = NULL;
    if (threads == 1 || n < ((size_t)1 << 18) ||
        (pool == NULL &&
         (pool = score__pool_for(&opt->pool, &opt->pool_failed, (size_t)threads)) == NULL)) {
        /* small (not worth waking threads), or no threads to be had: the same bits */
        if (adam)
            adam_inplace(n, params, grad, opt->m, opt->v, k, shadow, ew, clear);
        else
            sgd_inplace(n, params, grad, opt->m, k, shadow, ew, clear);
        return;
    }
    score__pool_for_each(pool, nch, sweep_part, &j);
}

int score__optimizer_step_guarded(score_optimizer *opt, const char *fn, float *params,
                                  float *grad, float *spare, int *in_spare, score_ema *ema,
                                  int *cleared)
{
    const size_t n = opt->n;
    const int adam = opt->kind != SCORE_OPTIMIZER_SGD;
    double acc[NORM_LANES] = {0}, norm, lr = lr_at(opt, opt->step), P, M_new = 0.0, V_new = 0.0;
    uint32_t mx[NORM_LANES];
    int safe, rc;
    upd_k k;
    *in_spare = 0;
    if (cleared != NULL)
        *cleared = 0;
    memset(mx, 0, sizeof mx);
    /* sweep 1: the norm (which also bounds every |g_i|) and the largest |p_i| */
    scan_norm_max(n, grad, params, acc, mx);
    if ((rc = take_norm(opt, fn, acc, &norm)) != SCORE_OK)
        return rc;
    P = lanes_max(mx);
    update_consts(opt, lr, clip_scale(opt, norm), &k);
    /* the moments' magnitudes are tracked from update to update; measured when unknown or
     * when the tracked bounds are too loose to decide */
    if (opt->bound_m < 0.0)
        exact_moment_bounds(opt);
    safe = update_is_safe(&k, norm, P, opt->bound_m, opt->bound_v, &M_new, &V_new);
    if (!safe) {
        exact_moment_bounds(opt);
        safe = update_is_safe(&k, norm, P, opt->bound_m, opt->bound_v, &M_new, &V_new);
    }
    if (safe) {
        /* sweep 2, in place: nothing can overflow (the EMA follows in the same sweep) */
        inplace_sweep(opt, adam, params, grad, &k, ema != NULL ? ema->shadow : NULL,
                      ema != NULL ? score__ema_next_weight(ema) : 0.0, cleared != NULL);
        if (cleared != NULL)
            *cleared = 1;
        if (ema != NULL)
            ema->num_updates++;
        opt->bound_m = M_new;
        opt->bound_v = V_new;
    } else {
        /* sweep 2 into other buffers, checked; committed only when everything is finite */
        unsigned bad;
        if (opt->m_next == NULL && (opt->m_next = score__calloc(n, sizeof(float))) == NULL)
            return score__error(SCORE_E_NOMEM, fn, "optimizer workspace of %zu floats", n);
        if (adam && opt->v_next == NULL && (opt->v_next = score__calloc(n, sizeof(float))) == NULL)
            return score__error(SCORE_E_NOMEM, fn, "optimizer workspace of %zu floats", n);
        bad = adam ? adam_out(n, params, grad, opt->m, opt->v, spare, opt->m_next, opt->v_next, &k)
                   : sgd_out(n, params, grad, opt->m, spare, opt->m_next, &k);
        if (bad) {
            opt->skipped++;
            return score__error(SCORE_E_NUMERIC, fn,
                                "the update overflowed (a new weight or moment is not finite): "
                                "step skipped");
        }
        {
            float *t = opt->m;
            opt->m = opt->m_next;
            opt->m_next = t;
            if (adam) {
                t = opt->v;
                opt->v = opt->v_next;
                opt->v_next = t;
            }
        }
        score__optimizer_moments_changed(opt);
        *in_spare = 1;
        if (ema != NULL)
            score__ema_update_finite(ema, spare);
    }
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
    opt->bound_m = opt->bound_v = 0.0;
    return SCORE_OK;
}
