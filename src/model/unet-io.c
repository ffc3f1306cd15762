/* U-Net save/load hooks (score_model_save() / score_model_load(), kind "unet"): one safetensors
 * tensor per PyTorch parameter, named after a PyTorch module tree of the same network
 * (examples/python/unet_torch.py builds it) and in PyTorch's shapes. doc/unet.md ("Files")
 * lists every name; doc/model-format.md the container.
 *
 * Metadata (all strings): dim, channels, height, width, unet_base_width, unet_mults ("1,2,2":
 * one multiplier per level), unet_blocks, unet_groups, unet_attention ("0"/"1"),
 * unet_temb_dim (the width T in use, never 0), embedding ("fourier", "sinusoidal"), embed_dim,
 * fourier_scale (a JSON number), num_classes, seed.
 *
 * Tensors (F32), in the order of the flat parameter layout of doc/unet.md:
 *   temb.0.weight [T, E], temb.0.bias [T], temb.1.weight [T, T], temb.1.bias [T]
 *   label_emb.weight [K + 1, T]                                  (num_classes K > 0)
 *   conv_in.weight [ch_0, C, 3, 3], conv_in.bias [ch_0]
 *   down.<l>.res.<k>.*                                           l < L, k < B
 *   mid.res.0.*, mid.attn.* (attention), mid.res.1.*
 *   up.<l>.res.<k>.* (k <= B), then up.<l>.conv.weight [ch_l, ch_l, 3, 3], .bias (l > 0),
 *                                                                l = L-1 .. 0
 *   norm_out.weight [ch_0], norm_out.bias, conv_out.weight [C, ch_0, 3, 3], conv_out.bias [C]
 *   embed.W [E / 2]                                              (Fourier embedding; not a
 *                                                                 trainable parameter)
 * A residual block ci -> co: norm1.weight, norm1.bias [ci]; conv1.weight [co, ci, 3, 3],
 * conv1.bias [co]; temb_proj.weight [co, T], temb_proj.bias [co]; norm2.weight, norm2.bias
 * [co]; conv2.weight [co, co, 3, 3], conv2.bias [co]; skip.weight [co, ci, 1, 1], skip.bias
 * [co] when ci != co. Attention of c channels: norm.weight, norm.bias [c]; q, k, v, proj
 * .weight [c, c, 1, 1] and .bias [c].
 *
 * The loader checks the metadata, then every tensor (name, F32, exact shape; none missing,
 * none extra) against the architecture before it allocates the network, so that a small
 * hostile file cannot make it allocate a large one. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/safetensors-priv.h"
#include "libscore/unet.h"
#include "model-priv.h"
#include "unet-priv.h"

#define NAME_MAX_LEN 64
#define MAX_WIDTH 4096 /* the widths score_model_prepare() accepts */

static const char *const embed_names[] = {"none", "fourier", "sinusoidal"};

/* The architecture of a file (or of a prepared model). */
typedef struct uarch {
    size_t dim, C, H, W, L, mult[SCORE__UNET_MAX_LEVELS], base, blocks, groups, T, E, K;
    int attention, emb;
    uint64_t seed;
    double fourier_scale;
} uarch;

/* One tensor of the layout: its name, shape and offset in the flat parameters. */
typedef struct tref {
    char name[NAME_MAX_LEN];
    size_t ndim;
    uint64_t shape[4];
    size_t off, count;
} tref;

/* Called for every tensor in layout order; a non-zero return stops the walk. */
typedef int (*visit_fn)(void *ctx, const tref *t);

typedef struct walker {
    visit_fn f;
    void *ctx;
    size_t off; /* next flat offset */
    int rc;
} walker;

static void emit(walker *wk, const char *prefix, const char *suffix, size_t ndim, size_t d0,
                 size_t d1, size_t d2, size_t d3)
{
    tref t;
    const size_t d[4] = {d0, d1, d2, d3};
    if (wk->rc != 0)
        return;
    snprintf(t.name, sizeof t.name, "%s%s", prefix, suffix);
    t.ndim = ndim;
    t.count = 1;
    for (size_t i = 0; i < 4; i++) {
        t.shape[i] = i < ndim ? (uint64_t)d[i] : 0;
        if (i < ndim)
            t.count *= d[i];
    }
    t.off = wk->off;
    wk->off += t.count;
    wk->rc = wk->f(wk->ctx, &t);
}

/* A tensor whose offset the block layout gives (checked against the running offset). */
static void emit_at(walker *wk, size_t at, const char *prefix, const char *suffix, size_t ndim,
                    size_t d0, size_t d1, size_t d2, size_t d3)
{
    if (wk->rc == 0 && at != wk->off)
        wk->rc = -1; /* the layout of unet-blocks.c and this walk disagree */
    emit(wk, prefix, suffix, ndim, d0, d1, d2, d3);
}

static void conv3(walker *wk, const char *prefix, size_t ci, size_t co)
{
    emit(wk, prefix, ".weight", 4, co, ci, 3, 3);
    emit(wk, prefix, ".bias", 1, co, 0, 0, 0);
}

static void res_block(walker *wk, const uarch *a, const char *prefix, size_t ci, size_t co)
{
    score__unet_res r;
    /* offsets only: sizes and groups do not move them */
    (void)score__unet_res_layout(&r, ci, co, 1, 1, a->T, 1, 1, wk->off);
    emit_at(wk, r.gn1_g, prefix, ".norm1.weight", 1, ci, 0, 0, 0);
    emit_at(wk, r.gn1_b, prefix, ".norm1.bias", 1, ci, 0, 0, 0);
    emit_at(wk, r.c1_w, prefix, ".conv1.weight", 4, co, ci, 3, 3);
    emit_at(wk, r.c1_b, prefix, ".conv1.bias", 1, co, 0, 0, 0);
    emit_at(wk, r.d_w, prefix, ".temb_proj.weight", 2, co, a->T, 0, 0);
    emit_at(wk, r.d_b, prefix, ".temb_proj.bias", 1, co, 0, 0, 0);
    emit_at(wk, r.gn2_g, prefix, ".norm2.weight", 1, co, 0, 0, 0);
    emit_at(wk, r.gn2_b, prefix, ".norm2.bias", 1, co, 0, 0, 0);
    emit_at(wk, r.c2_w, prefix, ".conv2.weight", 4, co, co, 3, 3);
    emit_at(wk, r.c2_b, prefix, ".conv2.bias", 1, co, 0, 0, 0);
    if (ci != co) {
        emit_at(wk, r.sk_w, prefix, ".skip.weight", 4, co, ci, 1, 1);
        emit_at(wk, r.sk_b, prefix, ".skip.bias", 1, co, 0, 0, 0);
    }
}

static void attn_block(walker *wk, const char *prefix, size_t c)
{
    score__unet_attn at;
    (void)score__unet_attn_layout(&at, c, 1, 1, wk->off);
    emit_at(wk, at.gn_g, prefix, ".norm.weight", 1, c, 0, 0, 0);
    emit_at(wk, at.gn_b, prefix, ".norm.bias", 1, c, 0, 0, 0);
    emit_at(wk, at.q_w, prefix, ".q.weight", 4, c, c, 1, 1);
    emit_at(wk, at.q_b, prefix, ".q.bias", 1, c, 0, 0, 0);
    emit_at(wk, at.k_w, prefix, ".k.weight", 4, c, c, 1, 1);
    emit_at(wk, at.k_b, prefix, ".k.bias", 1, c, 0, 0, 0);
    emit_at(wk, at.v_w, prefix, ".v.weight", 4, c, c, 1, 1);
    emit_at(wk, at.v_b, prefix, ".v.bias", 1, c, 0, 0, 0);
    emit_at(wk, at.o_w, prefix, ".proj.weight", 4, c, c, 1, 1);
    emit_at(wk, at.o_b, prefix, ".proj.bias", 1, c, 0, 0, 0);
}

/* Every tensor of the architecture in the order of the flat layout (the graph of unet.c):
 * returns 0, the visitor's non-zero status, or -1 when a block layout disagrees. *n_params
 * receives the flat parameter count. embed.W (not a parameter) comes last. */
static int walk(const uarch *a, visit_fn f, void *ctx, size_t *n_params)
{
    walker wk = {f, ctx, 0, 0};
    size_t stack[4 * SCORE__UNET_MAX_LEVELS * 9 + 2], top = 0, ch;
    char pre[NAME_MAX_LEN];
    emit(&wk, "temb.0", ".weight", 2, a->T, a->E, 0, 0);
    emit(&wk, "temb.0", ".bias", 1, a->T, 0, 0, 0);
    emit(&wk, "temb.1", ".weight", 2, a->T, a->T, 0, 0);
    emit(&wk, "temb.1", ".bias", 1, a->T, 0, 0, 0);
    if (a->K > 0)
        emit(&wk, "label_emb", ".weight", 2, a->K + 1, a->T, 0, 0);
    ch = a->base * a->mult[0];
    conv3(&wk, "conv_in", a->C, ch);
    stack[top++] = ch;
    for (size_t l = 0; l < a->L; l++) {
        size_t co = a->base * a->mult[l];
        for (size_t k = 0; k < a->blocks; k++) {
            snprintf(pre, sizeof pre, "down.%zu.res.%zu", l, k);
            res_block(&wk, a, pre, ch, co);
            ch = co;
            stack[top++] = ch;
        }
        if (l + 1 < a->L)
            stack[top++] = ch; /* the pooled features */
    }
    res_block(&wk, a, "mid.res.0", ch, ch);
    if (a->attention)
        attn_block(&wk, "mid.attn", ch);
    res_block(&wk, a, "mid.res.1", ch, ch);
    for (size_t l = a->L; l-- > 0;) {
        size_t co = a->base * a->mult[l];
        for (size_t k = 0; k <= a->blocks; k++) {
            size_t sc = stack[--top];
            snprintf(pre, sizeof pre, "up.%zu.res.%zu", l, k);
            res_block(&wk, a, pre, ch + sc, co);
            ch = co;
        }
        if (l > 0) {
            snprintf(pre, sizeof pre, "up.%zu.conv", l);
            conv3(&wk, pre, ch, ch);
        }
    }
    emit(&wk, "norm_out", ".weight", 1, ch, 0, 0, 0);
    emit(&wk, "norm_out", ".bias", 1, ch, 0, 0, 0);
    conv3(&wk, "conv_out", ch, a->C);
    *n_params = wk.off;
    if (wk.rc == 0 && a->emb == SCORE_EMBED_FOURIER) {
        emit(&wk, "embed.W", "", 1, a->E / 2, 0, 0, 0);
        wk.off = *n_params;
    }
    return wk.rc;
}

/* The architecture of a prepared U-Net. */
static int arch_of(const score_model *m, uarch *a)
{
    size_t T;
    memset(a, 0, sizeof *a);
    a->dim = m->dim;
    score__unet_image_shape(m, &a->C, &a->H, &a->W);
    if (score_model_get_unet_widths(m, &a->L, a->mult, SCORE__UNET_MAX_LEVELS) != SCORE_OK)
        return SCORE_E_GENERIC;
    a->base = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH);
    a->blocks = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS);
    a->groups = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS);
    a->attention = (int)score__model_i64(m, SCORE_MODEL_PARAM_UNET_ATTENTION);
    T = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_UNET_TEMB_DIM);
    a->T = T > 0 ? T : 4 * a->base; /* unet.c's rule */
    a->E = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_EMBED_DIM);
    a->K = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES);
    a->emb = (int)score__model_i64(m, SCORE_MODEL_PARAM_EMBEDDING);
    a->seed = (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_SEED);
    a->fourier_scale = score__model_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE);
    return SCORE_OK;
}

/* ---- save ---------------------------------------------------------------------------------- */

typedef struct save_ctx {
    const char *fn;
    score__st_writer *w;
    const float *theta, *fourier;
    int rc;
} save_ctx;

static int save_one(void *ctx, const tref *t)
{
    save_ctx *s = ctx;
    const float *src = strcmp(t->name, "embed.W") == 0 ? s->fourier : s->theta + t->off;
    s->rc = score__st_writer_add_f32(s->fn, s->w, t->name, t->ndim, t->shape, src);
    return s->rc != SCORE_OK;
}

static int save_meta(const char *fn, const uarch *a, score__st_writer *w)
{
    char mults[8 * SCORE__UNET_MAX_LEVELS + 1], *num;
    size_t pos = 0;
    cJSON *jn;
    int rc;
    for (size_t l = 0; l < a->L; l++)
        pos += (size_t)snprintf(mults + pos, sizeof mults - pos, l ? ",%zu" : "%zu", a->mult[l]);
    jn = cJSON_CreateNumber(a->fourier_scale);
    num = jn ? cJSON_PrintUnformatted(jn) : NULL;
    cJSON_Delete(jn);
    if (num == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    rc = score__st_writer_meta_u64(fn, w, "dim", a->dim);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "channels", a->C);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "height", a->H);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "width", a->W);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "unet_base_width", a->base);
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "unet_mults", mults);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "unet_blocks", a->blocks);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "unet_groups", a->groups);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "unet_attention", (uint64_t)a->attention);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "unet_temb_dim", a->T);
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "embedding", embed_names[a->emb]);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "embed_dim", a->E);
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "fourier_scale", num);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "num_classes", a->K);
    if (rc == SCORE_OK) rc = score__st_writer_meta_u64(fn, w, "seed", a->seed);
    cJSON_free(num);
    return rc;
}

int score__unet_save(const score_model *m, struct score__st_writer *w)
{
    static const char fn[] = "score_model_save";
    uarch a;
    save_ctx s;
    size_t np, n_walk = 0;
    float *theta;
    int rc;
    if (!m->prepared || arch_of(m, &a) != SCORE_OK)
        return score__error(SCORE_E_STAGE, fn, "the model is not prepared");
    np = m->ops->param_count(m);
    if ((rc = save_meta(fn, &a, w)) != SCORE_OK)
        return rc;
    theta = score__calloc(np ? np : 1, sizeof *theta);
    if (theta == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed (%zu parameters)", np);
    m->ops->params_get(m, theta);
    s.fn = fn;
    s.w = w;
    s.theta = theta;
    s.fourier = score__unet_fourier(m);
    s.rc = SCORE_OK;
    if (a.emb == SCORE_EMBED_FOURIER && s.fourier == NULL)
        rc = score__error(SCORE_E_GENERIC, fn, "the Fourier projection is missing");
    else if (walk(&a, save_one, &s, &n_walk) != 0)
        rc = s.rc != SCORE_OK ? s.rc
                              : score__error(SCORE_E_GENERIC, fn, "internal: tensor layout "
                                             "mismatch");
    else if (n_walk != np)
        rc = score__error(SCORE_E_GENERIC, fn, "internal: the tensors hold %zu parameters, the "
                          "model %zu", n_walk, np);
    score__free(theta);
    return rc;
}

/* ---- load ---------------------------------------------------------------------------------- */

static int meta_size(const char *fn, const score__st_reader *r, const char *key, uint64_t min,
                     uint64_t max, size_t *out)
{
    uint64_t v = 0;
    int rc = score__st_meta_u64(fn, r, key, min, max, &v);
    if (rc == SCORE_OK)
        *out = (size_t)v;
    return rc;
}

static int parse_scale(const char *fn, const score__st_reader *r, double *out)
{
    const char *s = score__st_meta(r, "fourier_scale");
    cJSON *num;
    int ok;
    if (s == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'fourier_scale' is missing");
    if (!score__st_is_json_number(s))
        return score__error(SCORE_E_FORMAT, fn, "metadata 'fourier_scale' is not a number in "
                            "(0, 1e4]");
    /* the grammar is checked first: NULL from cJSON on a valid number is a failed allocation */
    if ((num = cJSON_ParseWithOpts(s, NULL, 1)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    ok = cJSON_IsNumber(num) && num->valuedouble > 0.0 && num->valuedouble <= 1e4;
    *out = num->valuedouble;
    cJSON_Delete(num);
    if (!ok)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'fourier_scale' is not a number in "
                            "(0, 1e4]");
    return SCORE_OK;
}

/* unet_mults: 1..SCORE__UNET_MAX_LEVELS comma-separated integers in [1, 64]. */
static int parse_mults(const char *fn, const score__st_reader *r, uarch *a)
{
    const char *s = score__st_meta(r, "unet_mults");
    if (s == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'unet_mults' is missing");
    a->L = 0;
    for (;;) {
        char tok[8];
        size_t len = strcspn(s, ",");
        uint64_t v = 0;
        int ok = len > 0 && len < sizeof tok && a->L < SCORE__UNET_MAX_LEVELS;
        if (ok) {
            memcpy(tok, s, len);
            tok[len] = '\0';
            ok = score__st_parse_u64(tok, 64, &v) == 0 && v > 0;
        }
        if (!ok)
            return score__error(SCORE_E_FORMAT, fn, "metadata 'unet_mults' = '%.40s' is not 1 "
                                "to %d comma-separated multipliers in [1, 64]",
                                score__st_meta(r, "unet_mults"), SCORE__UNET_MAX_LEVELS);
        a->mult[a->L++] = (size_t)v;
        if (s[len] == '\0')
            return SCORE_OK;
        s += len + 1;
    }
}

static int parse_arch(const char *fn, const score__st_reader *r, uarch *a)
{
    size_t att = 0, seed = 0;
    const char *emb = score__st_meta(r, "embedding");
    int rc;
    memset(a, 0, sizeof *a);
    if ((rc = meta_size(fn, r, "dim", 1, (uint64_t)1 << 20, &a->dim)) != SCORE_OK ||
        (rc = meta_size(fn, r, "channels", 1, 4096, &a->C)) != SCORE_OK ||
        (rc = meta_size(fn, r, "height", 1, 4096, &a->H)) != SCORE_OK ||
        (rc = meta_size(fn, r, "width", 1, 4096, &a->W)) != SCORE_OK ||
        (rc = meta_size(fn, r, "unet_base_width", 1, MAX_WIDTH, &a->base)) != SCORE_OK ||
        (rc = parse_mults(fn, r, a)) != SCORE_OK ||
        (rc = meta_size(fn, r, "unet_blocks", 1, 8, &a->blocks)) != SCORE_OK ||
        (rc = meta_size(fn, r, "unet_groups", 1, 1024, &a->groups)) != SCORE_OK ||
        (rc = meta_size(fn, r, "unet_attention", 0, 1, &att)) != SCORE_OK ||
        (rc = meta_size(fn, r, "unet_temb_dim", 1, 65536, &a->T)) != SCORE_OK ||
        (rc = meta_size(fn, r, "embed_dim", 2, 4096, &a->E)) != SCORE_OK ||
        (rc = parse_scale(fn, r, &a->fourier_scale)) != SCORE_OK ||
        (rc = meta_size(fn, r, "num_classes", 0, 65535, &a->K)) != SCORE_OK ||
        (rc = meta_size(fn, r, "seed", 0, (uint64_t)1 << 62, &seed)) != SCORE_OK)
        return rc;
    a->attention = (int)att;
    a->seed = (uint64_t)seed;
    if (a->C * a->H * a->W != a->dim)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'dim' = %zu is not channels x height "
                            "x width = %zu x %zu x %zu", a->dim, a->C, a->H, a->W);
    a->emb = -1;
    for (int i = SCORE_EMBED_FOURIER; i <= SCORE_EMBED_SINUSOIDAL; i++)
        if (emb != NULL && strcmp(emb, embed_names[i]) == 0)
            a->emb = i;
    if (a->emb < 0)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'embedding' is missing or not "
                            "'fourier' or 'sinusoidal'");
    if (a->E % 2 != 0)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'embed_dim' must be even");
    for (size_t l = 0; l < a->L; l++)
        if (a->base * a->mult[l] > MAX_WIDTH)
            return score__error(SCORE_E_FORMAT, fn, "level %zu has unet_base_width x "
                                "multiplier = %zu channels, more than %d", l,
                                a->base * a->mult[l], MAX_WIDTH);
    return SCORE_OK;
}

typedef struct check_ctx {
    const char *fn;
    const score__st_reader *r;
    size_t n;
    int rc;
} check_ctx;

static int check_one(void *ctx, const tref *t)
{
    check_ctx *c = ctx;
    const score__st_tensor *st = score__st_find(c->r, t->name);
    int ok = st != NULL && st->dtype == SCORE__ST_F32 && st->ndim == t->ndim;
    char want[96];
    for (size_t i = 0; ok && i < t->ndim; i++)
        ok = st->shape[i] == t->shape[i];
    c->n++;
    if (ok)
        return 0;
    if (t->ndim == 1)
        snprintf(want, sizeof want, "[%llu]", (unsigned long long)t->shape[0]);
    else if (t->ndim == 2)
        snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long)t->shape[0],
                 (unsigned long long)t->shape[1]);
    else
        snprintf(want, sizeof want, "[%llu, %llu, %llu, %llu]", (unsigned long long)t->shape[0],
                 (unsigned long long)t->shape[1], (unsigned long long)t->shape[2],
                 (unsigned long long)t->shape[3]);
    if (st == NULL)
        c->rc = score__error(SCORE_E_FORMAT, c->fn, "tensor '%s' (F32 %s) is missing", t->name,
                             want);
    else
        c->rc = score__error(SCORE_E_FORMAT, c->fn, "tensor '%s' must be F32 of shape %s for "
                             "the architecture in the metadata", t->name, want);
    return 1;
}

/* Stops the walk at the tensor named ctx. */
static int is_named(void *ctx, const tref *t)
{
    return strcmp(t->name, (const char *)ctx) == 0;
}

typedef struct read_ctx {
    const char *fn;
    const score__st_reader *r;
    float *theta, *fourier;
    int rc;
} read_ctx;

static int read_one(void *ctx, const tref *t)
{
    read_ctx *c = ctx;
    float *dst = strcmp(t->name, "embed.W") == 0 ? c->fourier : c->theta + t->off;
    c->rc = score__st_get_f32(c->fn, c->r, t->name, t->ndim, t->shape, dst, 1);
    return c->rc != SCORE_OK;
}

/* The model of the architecture, prepared (its parameters still the initial ones). */
static int build_model(const char *fn, const uarch *a, score_model **out)
{
    score_model *m = NULL;
    int rc = score_model_new_unet(&m, a->C, a->H, a->W);
    if (rc == SCORE_OK) rc = score_model_set_unet_widths(m, a->L, a->mult);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, (int64_t)a->base);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, (int64_t)a->blocks);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, (int64_t)a->groups);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_ATTENTION, a->attention);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_TEMB_DIM, (int64_t)a->T);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, a->emb);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, (int64_t)a->E);
    if (rc == SCORE_OK) rc = score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, a->fourier_scale);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, (int64_t)a->K);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, (int64_t)a->seed);
    if (rc == SCORE_OK) rc = score_model_prepare(m);
    if (rc != SCORE_OK)
        return score__st_arch_refused(fn, m, rc);
    *out = m;
    return SCORE_OK;
}

int score__unet_load(score_model **out, const struct score__st_reader *r)
{
    static const char fn[] = "score_model_load";
    uarch a;
    check_ctx cc = {fn, r, 0, SCORE_OK};
    read_ctx rd = {fn, r, NULL, NULL, SCORE_OK};
    score_model *m = NULL;
    size_t np = 0, np_model;
    int rc;
    *out = NULL;
    if ((rc = parse_arch(fn, r, &a)) != SCORE_OK)
        return rc;
    /* every tensor, before anything is allocated */
    if (walk(&a, check_one, &cc, &np) != 0)
        return cc.rc != SCORE_OK ? cc.rc
                                 : score__error(SCORE_E_GENERIC, fn, "internal: tensor layout "
                                                "mismatch");
    if (score__st_count(r) != cc.n) {
        /* every expected tensor is there: name the first one that is not expected */
        const char *extra = "";
        for (size_t i = 0; i < score__st_count(r) && extra[0] == '\0'; i++) {
            size_t unused;
            const char *name = score__st_tensor_at(r, i)->name;
            if (walk(&a, is_named, (void *)name, &unused) == 0)
                extra = name;
        }
        return score__error(SCORE_E_FORMAT, fn, "unexpected tensor '%.80s': %zu tensors, the "
                            "architecture has %zu", extra, score__st_count(r), cc.n);
    }
    if ((rc = build_model(fn, &a, &m)) != SCORE_OK)
        return rc;
    np_model = score_model_param_count(m);
    if (np_model != np) {
        score_model_free(m);
        return score__error(SCORE_E_GENERIC, fn, "internal: the tensors hold %zu parameters, "
                            "the model %zu", np, np_model);
    }
    rd.theta = score__calloc(np + a.E / 2 + 1, sizeof *rd.theta);
    if (rd.theta == NULL) {
        score_model_free(m);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed (%zu parameters)", np);
    }
    rd.fourier = rd.theta + np;
    if (walk(&a, read_one, &rd, &np) != 0)
        rc = rd.rc != SCORE_OK ? rd.rc
                               : score__error(SCORE_E_GENERIC, fn, "internal: tensor layout "
                                              "mismatch");
    if (rc == SCORE_OK)
        rc = score_model_params_set(m, rd.theta, np);
    if (rc == SCORE_OK && a.emb == SCORE_EMBED_FOURIER)
        score__unet_set_fourier(m, rd.fourier);
    score__free(rd.theta);
    if (rc != SCORE_OK) {
        score_model_free(m);
        return rc;
    }
    *out = m;
    return SCORE_OK;
}
