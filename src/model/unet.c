/* The U-Net kind of score_model (SCORE_MODEL_UNET): an image score network in the DDPM /
 * DDPM++ family over the layers of unet-layers.c and unet-blocks.c. doc/unet.md describes the
 * architecture, the sources of each choice and the flat parameter layout.
 *
 * Network (one row = one image of C x H x W values in NCHW order; L levels of widths
 * ch_l = base * mult[l], B residual blocks per level, T = embedding width):
 *   embedding: f = features(c) (E values: Fourier or sinusoidal, as the MLP's)
 *              t = Dense_1(silu(Dense_0(f))) + A[y]     (A: (K + 1) x T label table)
 *              e = silu(t)                              (fed to every residual block)
 *   h = conv3x3(x) (C -> ch_0); skips = [h]
 *   level l = 0 .. L-1: B blocks h = Res(h -> ch_l), each pushed on skips;
 *                       l < L-1: h = avgpool2x2(h), pushed
 *   middle: h = Res(h); h = Attn(h) (optional); h = Res(h)
 *   level l = L-1 .. 0: B + 1 blocks h = Res(concat(h, skips.pop()) -> ch_l);
 *                       l > 0: h = conv3x3(nearest2x(h))
 *   out = conv3x3(silu(GN(h))) (ch_0 -> C)
 * The graph is a list of nodes over activation slots; the backward walks it in reverse, the
 * first producer of each activation gradient writes it and the others add into it
 * (mark_producers()), so the skip connections need no copies and few clears.
 *
 * Initialisation: weights and biases of convolutions and dense layers uniform in
 * (-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default), drawn from Philox (model seed, stream
 * 5, counter = tensor index); GroupNorm scales 1 and shifts 0; the label table uniform in
 * (-1, 1); the last convolution of every residual block, the attention's output projection and
 * the final convolution start at zero (score_sde's init_scale = 0): the initial network is 0
 * and every block starts as a rescaled identity.
 *
 * Not provided: Jacobian-vector products, the exact trace and their gradients (the Hyvärinen
 * and sliced losses refuse the model with SCORE_E_UNSUPPORTED), the context input (files:
 * unet-io.c).
 *
 * Threads (SCORE_MODEL_PARAM_THREADS): the forward, the samplers' forward and the backward run
 * fixed blocks of images on the workspace's threads (see "Workspace" below); results are
 * bit-identical for any thread count. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h"
#include "model-priv.h"
#include "libscore/unet.h"
#include "rng/rng-priv.h"
#include "unet-priv.h"

#define TWO_PI 6.283185307179586476925
#define LN_10000 9.2103403719761827360719658
#define RNG_STREAM_UNET 5
#define RNG_STREAM_FOURIER 3
/* Rows evaluated at a time by the cache-free forward of the samplers. */
#define INFER_BLOCK 8

enum { N_CONV3, N_RES, N_DOWN, N_UP, N_CAT, N_ATTN, N_GN, N_SILU };

typedef struct node {
    int type;
    size_t in, in2, out; /* activation slots (floats per image from the start of an image's
                          * part of the arena: the slot of n images is at n * offset) */
    size_t ci, co, h, w; /* input / output channels and the input's size */
    size_t pw, pb;       /* parameter offsets (convolution, GroupNorm) */
    size_t g;            /* groups (GN) */
    size_t p0, p1;       /* the parameters of the node: [p0, p1) of the flat array */
    /* The backward's input gradients (mark_producers()): acc (acc2: of in2) 1 when a node
     * later in the graph has already produced part of it (the layer adds), 0 when this node is
     * the first and writes it; zero_in 1 when it is first but its layer only adds (3x3
     * convolution, GroupNorm): the slot is zeroed before. acc_e: a residual block adds to the
     * embedding's gradient (0: the last block of the graph, which writes it). */
    int acc, acc2, zero_in, acc_e;
    score__unet_res res;
    score__unet_attn attn;
} node;

typedef struct unet {
    /* configuration */
    size_t C, H, W;
    size_t n_levels, mult[SCORE__UNET_MAX_LEVELS];
    /* prepared architecture */
    size_t base, blocks, groups, T, E, half, K;
    int attention, emb;
    double *freq; /* half frequencies of the embedding */
    float *fourier; /* the Fourier projection W (FOURIER), else NULL */
    node *nodes;
    size_t n_nodes, act_floats, slot_out;
    size_t d0_w, d0_b, d1_w, d1_b, lab, emb_end; /* embedding parameters: [d0_w, emb_end) */
    int ref_backward; /* score__unet_set_reference_backward() */
    float *theta;
    size_t n_params;
} unet;

/* ---- Workspace --------------------------------------------------------------------------- *
 * Rows are evaluated in fixed blocks of images: TRAIN_BLOCK rows for the training forward and
 * backward (counted from the call's first row), INFER_BLOCK rows for the samplers' cache-free
 * forward. Every layer's forward gives an image the values it gets alone (the convolutions
 * use the kernel layer's column-invariant products, several images per call; the
 * dense layers of the embedding are one matrix-vector product per row), so a row's output
 * does not depend on the other rows of its block or call, nor on the thread that evaluates
 * it. The backward's convolutions sum over the block's images (unet-layers.c). A block's
 * backward writes its parameter gradient into a zeroed buffer of its own; the buffers are
 * added to the gradient in block order (score__pool_for_each, see unet_backward(); on one
 * thread layer by layer inside graph_backward()) and cleared, so the gradient depends on n
 * only, never on SCORE_MODEL_PARAM_THREADS, which decides how many blocks run at the same
 * time.
 *
 * Memory: a "region" holds one block's forward (activations, layer caches, statistics,
 * embedding, labels): the training forward keeps one region per block for the backward, the
 * cache-free forward one per thread. Per thread: the convolution scratch and, for training,
 * the backward's activation gradients, layer scratch, embedding gradients and one
 * parameter-gradient buffer. Per call of the cache-free forward, shared read-only by its
 * threads: the weights of the convolutions the kernel packs (score__conv3_packed_floats > 0:
 * planes below 16 pixels, and with the vector versions the 8 x 8 and 4 x 4 ones of 16 channels
 * and more), packed once for all its blocks (the kernel's pack, which each block's convolution
 * would otherwise redo; the model's parameters may change between calls, so the pack is redone
 * at the start of every call). The training forward does the same, and the backward packs the
 * input gradients' weights (score__conv3_igrad_pack) once per call for all its blocks. */

#define TRAIN_BLOCK 16

typedef struct unet_ws {
    /* regions */
    float *act, *cache, *emb;
    double *dbl;
    int32_t *lab;
    size_t n_act, n_cache, n_emb, n_dbl, n_lab;
    size_t r_act, r_cache, r_emb, r_dbl, r_lab; /* per region */
    /* per thread */
    float *col, *gact, *scratch, *gemb, *gpart;
    size_t n_col, n_gact, n_scratch, n_gemb, n_gpart;
    size_t t_col, t_gact, t_scratch, t_gemb; /* per thread */
    float *gparams; /* the gradient of a backward without one (grad NULL) */
    size_t n_gparams;
    float *pack; /* the packed weights (from a 64-byte boundary inside it) */
    size_t n_pack;
    float *bpack; /* the backward's packed weights (the same) */
    size_t n_bpack;
    /* the cached training forward: rows per block and threads its buffers serve */
    size_t nb, nthr;
    score__pool *pool;
    size_t pool_failed;
} unet_ws;

/* One block's view of the workspace. */
typedef struct blk {
    float *act, *cache, *emb, *col, *gact, *scratch, *gemb;
    const float *pk; /* the call's packed weights (forward), else NULL */
    const float *pkb; /* the backward's (input gradients), else NULL */
    double *dbl;
    int32_t *lab;
} blk;

static int unet_ws_new(void **out)
{
    *out = score__calloc(1, sizeof(unet_ws));
    return *out ? SCORE_OK : SCORE_E_NOMEM;
}

static void unet_ws_free(void *kind)
{
    unet_ws *w = kind;
    if (w == NULL)
        return;
    score__pool_free(w->pool);
    score__free(w->act);
    score__free(w->cache);
    score__free(w->emb);
    score__free(w->dbl);
    score__free(w->lab);
    score__free(w->col);
    score__free(w->gact);
    score__free(w->scratch);
    score__free(w->gemb);
    score__free(w->gpart);
    score__free(w->gparams);
    score__free(w->pack);
    score__free(w->bpack);
    score__free(w);
}

/* Grows *buf to at least `count` elements of `per` * `size` bytes each; SCORE_E_NOMEM on
 * overflow or allocation failure. */
static int grow(void **buf, size_t *have, size_t count, size_t per, size_t sz)
{
    size_t need;
    void *b;
    if (score__mul_size(count, per, &need) != 0 || need > SIZE_MAX / sz)
        return SCORE_E_NOMEM;
    if (need <= *have && *buf != NULL)
        return SCORE_OK;
    b = score__calloc(need ? need : 1, sz);
    if (b == NULL)
        return SCORE_E_NOMEM;
    score__free(*buf);
    *buf = b;
    *have = need;
    return SCORE_OK;
}

/* Sizes of the buffers for n rows (per node kinds, see unet-priv.h). */
typedef struct sizes {
    size_t cache, dbl, scratch, col, dsum, pack, bpack;
} sizes;

static sizes need_of(const unet *p, size_t n)
{
    sizes s = {0, 0, 0, 0, 0, 0, 0};
    size_t dsum = 0;
    for (size_t i = 0; i < p->n_nodes; i++) {
        const node *d = &p->nodes[i];
        size_t sc = 0, col = 0;
        switch (d->type) {
        case N_RES:
            s.cache += score__unet_res_cache_floats(&d->res, n);
            s.dbl += score__unet_res_dbl(&d->res, n);
            sc = score__unet_res_scratch_floats(&d->res, n);
            col = score__unet_res_col_floats(&d->res);
            s.pack += score__unet_res_packed_floats(&d->res, 0);
            s.bpack += score__unet_res_packed_floats(&d->res, 1);
            break;
        case N_ATTN:
            s.cache += score__unet_attn_cache_floats(&d->attn, n);
            s.dbl += score__unet_attn_dbl(&d->attn, n);
            sc = score__unet_attn_scratch_floats(&d->attn, n);
            col = score__unet_attn_col_floats(&d->attn);
            break;
        case N_GN:
            s.dbl += 2 * n * d->g;
            break;
        case N_CONV3:
            col = score__unet_conv3_scratch_floats(d->ci, d->co, d->h * d->w);
            s.pack += score__unet_conv3_packed_floats(d->ci, d->co, d->h, d->w);
            s.bpack += score__unet_conv3_igrad_packed_floats(d->ci, d->co, d->h, d->w);
            dsum = d->co > dsum ? d->co : dsum;
            break;
        default:
            break;
        }
        s.scratch = sc > s.scratch ? sc : s.scratch;
        s.col = col > s.col ? col : s.col;
    }
    s.dbl += dsum;
    s.dsum = dsum;
    return s;
}

/* Sizes w for blocks of nb rows: nreg regions and nthr threads (train: with the backward's
 * buffers). Nothing is allocated when w is already large enough. */
static int ws_fit(const char *fn, const unet *p, unet_ws *w, size_t nb, size_t nreg, size_t nthr,
                  int train)
{
    sizes s = need_of(p, nb);
    int rc = SCORE_OK;
    w->r_act = nb * p->act_floats;
    w->r_cache = s.cache;
    w->r_dbl = s.dbl;
    w->r_emb = nb * (p->E + 4 * p->T); /* f (E), t1, s1, t2, e (T each) */
    w->r_lab = nb;
    w->t_col = s.col;
    w->t_gact = train ? nb * p->act_floats : 0;
    w->t_scratch = train ? s.scratch : 0;
    w->t_gemb = train ? nb * 3 * p->T : 0;
    rc = grow((void **)&w->act, &w->n_act, nreg, w->r_act, sizeof(float));
    if (rc == SCORE_OK && s.pack > 0) /* + 15 floats to reach a 64-byte boundary */
        rc = grow((void **)&w->pack, &w->n_pack, 1, s.pack + 15, sizeof(float));
    if (rc == SCORE_OK && train && s.bpack > 0)
        rc = grow((void **)&w->bpack, &w->n_bpack, 1, s.bpack + 15, sizeof(float));
    if (rc == SCORE_OK) rc = grow((void **)&w->cache, &w->n_cache, nreg, w->r_cache, sizeof(float));
    if (rc == SCORE_OK) rc = grow((void **)&w->dbl, &w->n_dbl, nreg, w->r_dbl, sizeof(double));
    if (rc == SCORE_OK) rc = grow((void **)&w->emb, &w->n_emb, nreg, w->r_emb, sizeof(float));
    if (rc == SCORE_OK) rc = grow((void **)&w->lab, &w->n_lab, nreg, w->r_lab, sizeof(int32_t));
    if (rc == SCORE_OK) rc = grow((void **)&w->col, &w->n_col, nthr, w->t_col, sizeof(float));
    if (train) {
        if (rc == SCORE_OK) rc = grow((void **)&w->gact, &w->n_gact, nthr, w->t_gact, sizeof(float));
        if (rc == SCORE_OK) rc = grow((void **)&w->scratch, &w->n_scratch, nthr, w->t_scratch, sizeof(float));
        if (rc == SCORE_OK) rc = grow((void **)&w->gemb, &w->n_gemb, nthr, w->t_gemb, sizeof(float));
        if (rc == SCORE_OK) rc = grow((void **)&w->gpart, &w->n_gpart, nthr, p->n_params, sizeof(float));
        if (rc == SCORE_OK) rc = grow((void **)&w->gparams, &w->n_gparams, 1, p->n_params, sizeof(float));
        w->nb = nb;
        w->nthr = nthr;
    }
    if (rc != SCORE_OK)
        return score__error(rc, fn, "workspace allocation failed (%zu blocks of %zu rows)", nreg,
                            nb);
    return SCORE_OK;
}

/* The view of region `reg` and of thread `thread`'s scratch. */
static blk view(const unet_ws *w, size_t reg, size_t thread)
{
    blk v;
    v.act = w->act + reg * w->r_act;
    v.cache = w->cache + reg * w->r_cache;
    v.dbl = w->dbl + reg * w->r_dbl;
    v.emb = w->emb + reg * w->r_emb;
    v.lab = w->lab + reg * w->r_lab;
    v.col = w->col + thread * w->t_col;
    v.gact = w->gact != NULL ? w->gact + thread * w->t_gact : NULL;
    v.scratch = w->scratch != NULL ? w->scratch + thread * w->t_scratch : NULL;
    v.gemb = w->gemb != NULL ? w->gemb + thread * w->t_gemb : NULL;
    v.pk = NULL;
    v.pkb = NULL;
    return v;
}

/* The first 64-byte boundary in a pack buffer (NULL: none allocated). */
static float *aligned64(float *buf)
{
    if (buf == NULL)
        return NULL;
    return buf + (64 - (uintptr_t)buf % 64) % 64 / sizeof(float);
}

/* The first 64-byte boundary in w's pack buffer (NULL: none allocated). */
static float *pack_base(const unet_ws *w)
{
    return aligned64(w->pack);
}

/* Packs the weights of every convolution the kernel packs into pk, in node order: for the
 * forward (igrad = 0: the workspace plan's pack entry, in the order in which graph_forward reads
 * them) or for the input gradients (igrad = 1: its bpack entry, walked back by graph_backward). */
static void pack_weights(const unet *p, float *pk, int igrad)
{
    for (size_t i = 0; i < p->n_nodes; i++) {
        const node *d = &p->nodes[i];
        if (d->type == N_CONV3 && !igrad) {
            score__unet_conv3_pack(d->ci, d->co, d->h, d->w, p->theta + d->pw, pk);
            pk += score__unet_conv3_packed_floats(d->ci, d->co, d->h, d->w);
        } else if (d->type == N_CONV3) {
            score__unet_conv3_igrad_pack(d->ci, d->co, d->h, d->w, p->theta + d->pw, pk);
            pk += score__unet_conv3_igrad_packed_floats(d->ci, d->co, d->h, d->w);
        } else if (d->type == N_RES) {
            score__unet_res_pack(&d->res, p->theta, pk, igrad);
            pk += score__unet_res_packed_floats(&d->res, igrad);
        }
    }
}

/* ---- Configuration ----------------------------------------------------------------------- */

int score_model_new_unet(score_model **out, size_t channels, size_t height, size_t width)
{
    score_model *m;
    unet *p;
    size_t dim;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (channels == 0 || height == 0 || width == 0 || channels > 4096 || height > 4096 ||
        width > 4096)
        return score__error(SCORE_E_RANGE, __func__,
                            "image shape %zu x %zu x %zu: each size must be in [1, 4096]", channels,
                            height, width);
    dim = channels * height * width;
    if (dim > ((size_t)1 << 20))
        return score__error(SCORE_E_RANGE, __func__,
                            "image of %zu values: models take at most 2^20 inputs", dim);
    rc = score__model_alloc(&m, SCORE_MODEL_UNET, dim, &score__unet_ops);
    if (rc != SCORE_OK)
        return score__error(rc, __func__, "allocation failed");
    p = score__calloc(1, sizeof *p);
    if (p == NULL) {
        score_model_free(m);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    p->C = channels;
    p->H = height;
    p->W = width;
    p->n_levels = 3;
    p->mult[0] = 1;
    p->mult[1] = 2;
    p->mult[2] = 2;
    m->impl = p;
    *out = m;
    return SCORE_OK;
}

int score_model_set_unet_widths(score_model *model, size_t n_levels, const size_t *mults)
{
    unet *p;
    if (model == NULL || mults == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model or mults is NULL");
    if (model->kind != SCORE_MODEL_UNET)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "%s models are not U-Nets",
                            model->ops->name);
    if (model->prepared)
        return score__error(SCORE_E_STAGE, __func__,
                            "the architecture is fixed once the model is prepared");
    if (n_levels == 0 || n_levels > SCORE__UNET_MAX_LEVELS)
        return score__error(SCORE_E_RANGE, __func__, "n_levels %zu not in [1, %d]", n_levels,
                            SCORE__UNET_MAX_LEVELS);
    for (size_t l = 0; l < n_levels; l++)
        if (mults[l] == 0 || mults[l] > 64)
            return score__error(SCORE_E_RANGE, __func__,
                                "width multiplier %zu of level %zu not in [1, 64]", mults[l], l);
    p = model->impl;
    p->n_levels = n_levels;
    memcpy(p->mult, mults, n_levels * sizeof *mults);
    return SCORE_OK;
}

int score_model_get_unet_widths(const score_model *model, size_t *n_levels, size_t *mults,
                                size_t cap)
{
    const unet *p;
    if (model == NULL || n_levels == NULL || (mults == NULL && cap > 0))
        return score__error(SCORE_E_INVAL, __func__, "model, n_levels or mults is NULL");
    if (model->kind != SCORE_MODEL_UNET)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "%s models are not U-Nets",
                            model->ops->name);
    p = model->impl;
    *n_levels = p->n_levels;
    for (size_t l = 0; l < p->n_levels && l < cap; l++)
        mults[l] = p->mult[l];
    return SCORE_OK;
}

static int unet_on_param(score_model *m, int param)
{
    if (param == SCORE_MODEL_PARAM_EMBED_DIM &&
        score__model_i64(m, SCORE_MODEL_PARAM_EMBED_DIM) % 2 != 0)
        return score__error(SCORE_E_RANGE, "score_model_set_i64", "embed_dim must be even");
    return SCORE_OK;
}

/* ---- Prepare: the graph, the parameter layout, the initial values ------------------------ */

typedef struct builder {
    unet *p;
    size_t off;   /* next parameter offset */
    size_t slot;  /* next activation slot offset (floats per image) */
    node *nodes;  /* NULL: counting pass */
    size_t n;
} builder;

static size_t new_slot(builder *b, size_t c, size_t h, size_t w)
{
    size_t s = b->slot;
    b->slot += c * h * w;
    return s;
}

static void add(builder *b, const node *d)
{
    if (b->nodes != NULL)
        b->nodes[b->n] = *d;
    b->n++;
}

static size_t groups_for(const unet *p, size_t c)
{
    return p->groups < c ? p->groups : c;
}

static size_t add_conv3(builder *b, size_t in, size_t ci, size_t co, size_t h, size_t w)
{
    node d;
    memset(&d, 0, sizeof d);
    d.type = N_CONV3;
    d.in = in;
    d.ci = ci;
    d.co = co;
    d.h = h;
    d.w = w;
    d.pw = b->off;
    d.pb = b->off + co * ci * 9;
    b->off += co * ci * 9 + co;
    d.p0 = d.pw;
    d.p1 = b->off;
    d.out = new_slot(b, co, h, w);
    add(b, &d);
    return d.out;
}

static size_t add_res(builder *b, size_t in, size_t ci, size_t co, size_t h, size_t w)
{
    node d;
    memset(&d, 0, sizeof d);
    d.type = N_RES;
    d.in = in;
    d.ci = ci;
    d.co = co;
    d.h = h;
    d.w = w;
    d.p0 = b->off;
    b->off = score__unet_res_layout(&d.res, ci, co, h, w, b->p->T, groups_for(b->p, ci),
                                    groups_for(b->p, co), b->off);
    d.p1 = b->off;
    d.out = new_slot(b, co, h, w);
    add(b, &d);
    return d.out;
}

static size_t add_simple(builder *b, int type, size_t in, size_t in2, size_t ci, size_t co,
                         size_t h, size_t w, size_t oh, size_t ow)
{
    node d;
    memset(&d, 0, sizeof d);
    d.type = type;
    d.in = in;
    d.in2 = in2;
    d.ci = ci;
    d.co = co;
    d.h = h;
    d.w = w;
    d.p0 = b->off;
    if (type == N_GN) {
        d.g = groups_for(b->p, ci);
        d.pw = b->off;
        d.pb = b->off + ci;
        b->off += 2 * ci;
    }
    if (type == N_ATTN)
        b->off = score__unet_attn_layout(&d.attn, ci, h * w, groups_for(b->p, ci), b->off);
    d.p1 = b->off;
    d.out = new_slot(b, co, oh, ow);
    add(b, &d);
    return d.out;
}

/* The graph of the docstring at the top (the parameter order of doc/unet.md). */
static void build(builder *b)
{
    unet *p = b->p;
    size_t L = p->n_levels, h = p->H, w = p->W, stack[4 * SCORE__UNET_MAX_LEVELS * 9 + 2];
    size_t stack_c[sizeof stack / sizeof stack[0]], top = 0;
    size_t x, ch;
    p->d0_w = b->off;
    p->d0_b = p->d0_w + p->T * p->E;
    p->d1_w = p->d0_b + p->T;
    p->d1_b = p->d1_w + p->T * p->T;
    p->lab = p->d1_b + p->T;
    b->off = p->lab + (p->K > 0 ? (p->K + 1) * p->T : 0);
    p->emb_end = b->off;
    b->slot = 0;
    x = new_slot(b, p->C, h, w); /* slot 0: the input */
    ch = p->base * p->mult[0];
    x = add_conv3(b, x, p->C, ch, h, w);
    stack[top] = x;
    stack_c[top++] = ch;
    for (size_t l = 0; l < L; l++) {
        size_t co = p->base * p->mult[l];
        for (size_t k = 0; k < p->blocks; k++) {
            x = add_res(b, x, ch, co, h, w);
            ch = co;
            stack[top] = x;
            stack_c[top++] = ch;
        }
        if (l + 1 < L) {
            x = add_simple(b, N_DOWN, x, 0, ch, ch, h, w, h / 2, w / 2);
            h /= 2;
            w /= 2;
            stack[top] = x;
            stack_c[top++] = ch;
        }
    }
    x = add_res(b, x, ch, ch, h, w);
    if (p->attention)
        x = add_simple(b, N_ATTN, x, 0, ch, ch, h, w, h, w);
    x = add_res(b, x, ch, ch, h, w);
    for (size_t l = L; l-- > 0;) {
        size_t co = p->base * p->mult[l];
        for (size_t k = 0; k <= p->blocks; k++) {
            size_t s = stack[--top], sc = stack_c[top];
            x = add_simple(b, N_CAT, x, s, ch, ch + sc, h, w, h, w);
            x = add_res(b, x, ch + sc, co, h, w);
            ch = co;
        }
        if (l > 0) {
            x = add_simple(b, N_UP, x, 0, ch, ch, h, w, 2 * h, 2 * w);
            h *= 2;
            w *= 2;
            x = add_conv3(b, x, ch, ch, h, w);
        }
    }
    x = add_simple(b, N_GN, x, 0, ch, ch, h, w, h, w);
    x = add_simple(b, N_SILU, x, 0, ch, ch, h, w, h, w);
    x = add_conv3(b, x, ch, p->C, h, w);
    p->slot_out = x;
    p->act_floats = b->slot;
}

/* Whether slot s is among the k slots of seen; added when not. */
static int seen_before(size_t *seen, size_t *k, size_t s)
{
    for (size_t i = 0; i < *k; i++)
        if (seen[i] == s)
            return 1;
    seen[(*k)++] = s;
    return 0;
}

/* Decides statically who writes each activation gradient (node.acc, acc2, zero_in, acc_e):
 * the backward walks the nodes in reverse, so the first producer of the gradient of a slot is
 * its last consumer in node order (a skip connection's concatenation comes after the block
 * whose output it reads: it writes, the block adds). seen: room for 2 * n_nodes slots. */
static void mark_producers(unet *p, size_t *seen)
{
    size_t k = 0;
    int res_seen = 0;
    for (size_t i = p->n_nodes; i-- > 0;) {
        node *d = &p->nodes[i];
        int first = !seen_before(seen, &k, d->in);
        int adds_only = d->type == N_CONV3 || d->type == N_GN;
        d->acc = adds_only || !first;
        d->zero_in = adds_only && first;
        d->acc2 = d->type == N_CAT ? seen_before(seen, &k, d->in2) : 1;
        d->acc_e = d->type == N_RES ? res_seen : 1;
        res_seen |= d->type == N_RES;
    }
}

/* Uniform(-bound, bound) into n floats of tensor `tensor`. */
static void init_uniform(uint64_t seed, uint32_t tensor, double bound, size_t n, float *out,
                         double *tmp, size_t tmp_n)
{
    score_rng r = {SCORE_RNG_PHILOX4X32_10, seed, RNG_STREAM_UNET, 0};
    for (size_t i0 = 0; i0 < n; i0 += tmp_n) {
        size_t k = n - i0 < tmp_n ? n - i0 : tmp_n;
        score__rng_uniform_f64_at(&r, tensor, 0, 1, i0, k, tmp);
        for (size_t i = 0; i < k; i++)
            out[i0 + i] = (float)(bound * (2.0 * tmp[i] - 1.0));
    }
}

static void init_params(const unet *p, uint64_t seed, float *th, double *tmp, size_t tmp_n)
{
    uint32_t t = 0;
    double b0 = 1.0 / sqrt((double)p->E), b1 = 1.0 / sqrt((double)p->T);
    init_uniform(seed, t++, b0, p->T * p->E, th + p->d0_w, tmp, tmp_n);
    init_uniform(seed, t++, b0, p->T, th + p->d0_b, tmp, tmp_n);
    init_uniform(seed, t++, b1, p->T * p->T, th + p->d1_w, tmp, tmp_n);
    init_uniform(seed, t++, b1, p->T, th + p->d1_b, tmp, tmp_n);
    if (p->K > 0)
        init_uniform(seed, t++, 1.0, (p->K + 1) * p->T, th + p->lab, tmp, tmp_n);
    for (size_t i = 0; i < p->n_nodes; i++) {
        const node *d = &p->nodes[i];
        if (d->type == N_CONV3) {
            double bd = 1.0 / sqrt((double)(d->ci * 9));
            int last = i + 1 == p->n_nodes;
            if (!last) {
                init_uniform(seed, t++, bd, d->co * d->ci * 9, th + d->pw, tmp, tmp_n);
                init_uniform(seed, t++, bd, d->co, th + d->pb, tmp, tmp_n);
            }
        } else if (d->type == N_GN) {
            for (size_t k = 0; k < d->ci; k++)
                th[d->pw + k] = 1.0f;
        } else if (d->type == N_RES) {
            const score__unet_res *r = &d->res;
            double bc1 = 1.0 / sqrt((double)(r->ci * 9)), bd = 1.0 / sqrt((double)r->ne);
            double bsk = 1.0 / sqrt((double)r->ci);
            for (size_t k = 0; k < r->ci; k++)
                th[r->gn1_g + k] = 1.0f;
            for (size_t k = 0; k < r->co; k++)
                th[r->gn2_g + k] = 1.0f;
            init_uniform(seed, t++, bc1, r->co * r->ci * 9, th + r->c1_w, tmp, tmp_n);
            init_uniform(seed, t++, bc1, r->co, th + r->c1_b, tmp, tmp_n);
            init_uniform(seed, t++, bd, r->co * r->ne, th + r->d_w, tmp, tmp_n);
            init_uniform(seed, t++, bd, r->co, th + r->d_b, tmp, tmp_n);
            if (r->ci != r->co) {
                init_uniform(seed, t++, bsk, r->co * r->ci, th + r->sk_w, tmp, tmp_n);
                init_uniform(seed, t++, bsk, r->co, th + r->sk_b, tmp, tmp_n);
            }
        } else if (d->type == N_ATTN) {
            const score__unet_attn *a = &d->attn;
            double bq = 1.0 / sqrt((double)a->c);
            for (size_t k = 0; k < a->c; k++)
                th[a->gn_g + k] = 1.0f;
            init_uniform(seed, t++, bq, a->c * a->c, th + a->q_w, tmp, tmp_n);
            init_uniform(seed, t++, bq, a->c, th + a->q_b, tmp, tmp_n);
            init_uniform(seed, t++, bq, a->c * a->c, th + a->k_w, tmp, tmp_n);
            init_uniform(seed, t++, bq, a->c, th + a->k_b, tmp, tmp_n);
            init_uniform(seed, t++, bq, a->c * a->c, th + a->v_w, tmp, tmp_n);
            init_uniform(seed, t++, bq, a->c, th + a->v_b, tmp, tmp_n);
        }
    }
}

static void unet_release(unet *p)
{
    score__free(p->freq);
    score__free(p->fourier);
    score__free(p->nodes);
    score__free(p->theta);
    p->freq = NULL;
    p->fourier = NULL;
    p->nodes = NULL;
    p->theta = NULL;
}

/* Every normalised width divisible by its groups (SCORE_E_SHAPE otherwise). */
static int check_groups(const char *fn, const unet *p)
{
    for (size_t i = 0; i < p->n_nodes; i++) {
        const node *d = &p->nodes[i];
        size_t c = 0, g = 1;
        if (d->type == N_RES && d->res.ci % d->res.g1 != 0)
            c = d->res.ci, g = d->res.g1;
        else if (d->type == N_RES && d->res.co % d->res.g2 != 0)
            c = d->res.co, g = d->res.g2;
        else if (d->type == N_ATTN && d->attn.c % d->attn.g != 0)
            c = d->attn.c, g = d->attn.g;
        else if (d->type == N_GN && d->ci % d->g != 0)
            c = d->ci, g = d->g;
        if (c != 0)
            return score__error(SCORE_E_SHAPE, fn,
                                "a layer of %zu channels cannot be split into %zu GroupNorm "
                                "groups (unet_groups must divide every width and every "
                                "concatenated width of the up path)", c, g);
    }
    return SCORE_OK;
}

static int unet_prepare(score_model *m)
{
    static const char fn[] = "score_model_prepare";
    unet *p = m->impl;
    builder b;
    int64_t emb = score__model_i64(m, SCORE_MODEL_PARAM_EMBEDDING);
    int64_t temb = score__model_i64(m, SCORE_MODEL_PARAM_UNET_TEMB_DIM);
    uint64_t seed = (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_SEED);
    size_t tmp_n = 4096, maxw = 0, *seen;
    double *tmp;
    int rc;

    if (emb == SCORE_EMBED_NONE)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "U-Net models need a Fourier or sinusoidal embedding of c");
    if (score__model_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM) != 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "U-Net models take no context vector");
    p->base = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH);
    p->blocks = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS);
    p->groups = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS);
    p->attention = (int)score__model_i64(m, SCORE_MODEL_PARAM_UNET_ATTENTION);
    p->T = temb > 0 ? (size_t)temb : 4 * p->base;
    p->E = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_EMBED_DIM);
    p->half = p->E / 2;
    p->emb = (int)emb;
    p->K = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES);
    if (p->H % ((size_t)1 << (p->n_levels - 1)) != 0 || p->W % ((size_t)1 << (p->n_levels - 1)) != 0)
        return score__error(SCORE_E_SHAPE, fn,
                            "image of %zu x %zu pixels: %zu levels need sizes divisible by %zu",
                            p->H, p->W, p->n_levels, (size_t)1 << (p->n_levels - 1));
    for (size_t l = 0; l < p->n_levels; l++)
        maxw = p->base * p->mult[l] > maxw ? p->base * p->mult[l] : maxw;
    if (maxw > 4096)
        return score__error(SCORE_E_RANGE, fn, "width %zu above 4096", maxw);
    unet_release(p);
    memset(&b, 0, sizeof b);
    b.p = p;
    build(&b); /* counting pass */
    p->n_nodes = b.n;
    p->nodes = score__calloc(b.n, sizeof *p->nodes);
    p->freq = score__calloc(p->half, sizeof *p->freq);
    tmp = score__calloc(tmp_n, sizeof *tmp);
    seen = score__calloc(2 * b.n, sizeof *seen);
    if (p->nodes == NULL || p->freq == NULL || tmp == NULL || seen == NULL) {
        score__free(seen);
        score__free(tmp);
        unet_release(p);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    memset(&b, 0, sizeof b);
    b.p = p;
    b.nodes = p->nodes;
    build(&b);
    p->n_params = b.off;
    mark_producers(p, seen);
    score__free(seen);
    if ((rc = check_groups(fn, p)) != SCORE_OK) {
        score__free(tmp);
        unet_release(p);
        return rc;
    }
    p->theta = score__calloc(p->n_params, sizeof *p->theta);
    if (p->emb == SCORE_EMBED_FOURIER)
        p->fourier = score__calloc(p->half, sizeof *p->fourier);
    if (p->theta == NULL || (p->emb == SCORE_EMBED_FOURIER && p->fourier == NULL)) {
        score__free(tmp);
        unet_release(p);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed (%zu parameters)",
                            p->n_params);
    }
    if (p->emb == SCORE_EMBED_FOURIER) {
        /* the MLP's projection: W_i = scale * N(0, 1), f_i = 2 pi W_i */
        score_rng rf = {SCORE_RNG_PHILOX4X32_10, seed, RNG_STREAM_FOURIER, 0};
        double scale = score__model_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE);
        score__rng_normal_at(&rf, 0, 0, 1, 0, p->half, p->fourier);
        for (size_t i = 0; i < p->half; i++) {
            p->fourier[i] = (float)(scale * (double)p->fourier[i]);
            p->freq[i] = TWO_PI * (double)p->fourier[i];
        }
    } else {
        double den = p->half > 1 ? (double)(p->half - 1) : 1.0;
        for (size_t i = 0; i < p->half; i++)
            p->freq[i] = exp(-LN_10000 * (double)i / den);
    }
    init_params(p, seed, p->theta, tmp, tmp_n);
    score__free(tmp);
    return SCORE_OK;
}

/* ---- Forward and backward ---------------------------------------------------------------- */

/* The label of row b of a call (K without a label input or labels). */
static int32_t label_of(const unet *p, const score__model_ws *ws, size_t b)
{
    if (p->K == 0 || ws->labels == NULL)
        return (int32_t)p->K;
    return ws->labels[ws->labels_per_row ? b : 0];
}

static int check_labels(const char *fn, const unet *p, const score__model_ws *ws, size_t n)
{
    for (size_t b = 0; p->K > 0 && ws->labels != NULL && b < (ws->labels_per_row ? n : 1); b++)
        if (ws->labels[b] < 0 || (size_t)ws->labels[b] > p->K)
            return score__error(SCORE_E_RANGE, fn, "label %ld of row %zu is not in [0, %zu]",
                                (long)ws->labels[b], b, p->K);
    return SCORE_OK;
}

/* The embedding of the n rows of a block (c, labels v->lab) into v->emb: f [n, E], t1, s1, t2,
 * e [n, T]. The dense layers run row by row (score__unet_dense_forward), so a row's embedding
 * is a function of its own c and label. */
static void embed_forward(const unet *p, const blk *v, size_t n, const double *c)
{
    const float *th = p->theta;
    size_t T = p->T, E = p->E;
    float *f = v->emb, *t1 = f + n * E, *s1 = t1 + n * T, *t2 = s1 + n * T, *e = t2 + n * T;
    for (size_t b = 0; b < n; b++) {
        if (b > 0 && memcmp(&c[b], &c[b - 1], sizeof *c) == 0) /* a sampler step: one c */
            memcpy(f + b * E, f + (b - 1) * E, E * sizeof *f);
        else
            score__sincos_features(p->half, p->freq, c[b], f + b * E, f + b * E + p->half);
    }
    score__unet_dense_forward(n, E, T, th + p->d0_w, th + p->d0_b, f, t1, 0);
    score__unet_silu_forward(n * T, t1, s1);
    score__unet_dense_forward(n, T, T, th + p->d1_w, th + p->d1_b, s1, t2, 0);
    if (p->K > 0)
        for (size_t b = 0; b < n; b++)
            score__saxpy(T, 1.0f, th + p->lab + (size_t)v->lab[b] * T, t2 + b * T);
    score__unet_silu_forward(n * T, t2, e);
}

static float *slot(float *arena, size_t n, size_t off)
{
    return arena + n * off;
}

/* The forward of the n rows of a block through the graph; with train = 1 the activations,
 * caches and statistics stay in the block's region for the backward; with train = 0 (no
 * backward follows) what only the backward reads is not computed and a GroupNorm followed by
 * its SiLU runs as one layer (the same output bits). */
static void graph_forward(const unet *p, const blk *v, size_t n, const float *x, float *out,
                          int train)
{
    const float *th = p->theta;
    const float *e = v->emb + n * (p->E + 3 * p->T);
    const float *pk = v->pk; /* NULL, or the packed weights in node order */
    float *cache = v->cache;
    double *dbl = v->dbl;
    memcpy(v->act, x, n * p->C * p->H * p->W * sizeof *x);
    for (size_t i = 0; i < p->n_nodes; i++) {
        const node *d = &p->nodes[i];
        float *in = slot(v->act, n, d->in), *y = slot(v->act, n, d->out);
        switch (d->type) {
        case N_CONV3:
            score__unet_conv3_forward_packed(n, d->ci, d->co, d->h, d->w, th + d->pw, pk,
                                             th + d->pb, in, y, 0, v->col);
            if (pk != NULL)
                pk += score__unet_conv3_packed_floats(d->ci, d->co, d->h, d->w);
            break;
        case N_RES:
            if (train)
                score__unet_res_forward_packed(&d->res, n, th, in, e, y, cache, dbl, v->col, pk);
            else
                score__unet_res_infer(&d->res, n, th, in, e, y, cache, dbl, v->col, pk);
            if (pk != NULL)
                pk += score__unet_res_packed_floats(&d->res, 0);
            cache += score__unet_res_cache_floats(&d->res, n);
            dbl += score__unet_res_dbl(&d->res, n);
            break;
        case N_ATTN:
            score__unet_attn_forward(&d->attn, n, th, in, y, cache, dbl);
            cache += score__unet_attn_cache_floats(&d->attn, n);
            dbl += score__unet_attn_dbl(&d->attn, n);
            break;
        case N_DOWN:
            score__unet_down_forward(n * d->ci, d->h, d->w, in, y);
            break;
        case N_UP:
            score__unet_up_forward(n * d->ci, d->h, d->w, in, y);
            break;
        case N_CAT:
            score__unet_concat_forward(n, d->ci, d->co - d->ci, d->h * d->w, in,
                                       slot(v->act, n, d->in2), y);
            break;
        case N_GN:
            if (!train && i + 1 < p->n_nodes && p->nodes[i + 1].type == N_SILU &&
                p->nodes[i + 1].in == d->out && p->nodes[i + 1].out != d->in) {
                /* the SiLU's output directly; the GroupNorm's own is not needed */
                score__unet_gn_silu_forward(n, d->ci, d->h * d->w, d->g, th + d->pw, th + d->pb,
                                            in, slot(v->act, n, p->nodes[i + 1].out), NULL, dbl);
                dbl += 2 * n * d->g;
                i++;
                break;
            }
            score__unet_gn_forward(n, d->ci, d->h * d->w, d->g, th + d->pw, th + d->pb, in, y,
                                   dbl);
            dbl += 2 * n * d->g;
            break;
        case N_SILU:
            score__unet_silu_forward(n * d->ci * d->h * d->w, in, y);
            break;
        default:
            break;
        }
    }
    memcpy(out, slot(v->act, n, p->slot_out), n * p->C * p->H * p->W * sizeof *out);
}

/* One pass over the blocks of a call on the workspace's threads. */
typedef struct fwd_job {
    const unet *p;
    const unet_ws *w;
    const score__model_ws *ws;
    size_t n, nb, d;
    int per_thread; /* 1: region = thread (cache-free); 0: region = block (training) */
    const float *x;
    const double *c;
    float *out;
} fwd_job;

static void fwd_part(void *ctx, size_t b, size_t thread)
{
    const fwd_job *j = ctx;
    size_t r0 = b * j->nb, rows = j->n - r0 < j->nb ? j->n - r0 : j->nb;
    blk v = view(j->w, j->per_thread ? thread : b, thread);
    v.pk = pack_base(j->w);
    for (size_t i = 0; i < rows; i++)
        v.lab[i] = label_of(j->p, j->ws, r0 + i);
    embed_forward(j->p, &v, rows, j->c + r0);
    graph_forward(j->p, &v, rows, j->x + r0 * j->d, j->out + r0 * j->d, !j->per_thread);
}

/* Threads for nblk blocks (1 without a pool: the same results). */
static score__pool *pool_of(const score_model *m, const score__model_ws *ws, unet_ws *w,
                            size_t nblk, size_t *nthr)
{
    score__pool *pool;
    int t = score__par_threads(score__model_ws_threads(m, ws), nblk);
    pool = t > 1 ? score__pool_for(&w->pool, &w->pool_failed, (size_t)t) : NULL;
    *nthr = score__pool_threads(pool);
    return pool;
}

static int run_blocks(const char *fn, const score_model *m, score__model_ws *ws, size_t n,
                      const float *x, const double *c, float *out, int train)
{
    const unet *p = m->impl;
    unet_ws *w = ws->kind;
    size_t nb = train ? TRAIN_BLOCK : INFER_BLOCK, nblk = (n + nb - 1) / nb, nthr;
    score__pool *pool;
    fwd_job j;
    int rc = check_labels(fn, p, ws, n);
    if (rc != SCORE_OK)
        return rc;
    pool = pool_of(m, ws, w, nblk, &nthr);
    nb = n < nb ? n : nb;
    if ((rc = ws_fit(fn, p, w, nb, train ? nblk : nthr, nthr, train)) != SCORE_OK)
        return rc;
    if (pack_base(w) != NULL) /* before the blocks: their threads read it */
        pack_weights(p, pack_base(w), 0);
    memset(&j, 0, sizeof j);
    j.p = p;
    j.w = w;
    j.ws = ws;
    j.n = n;
    j.nb = nb;
    j.d = m->dim;
    j.per_thread = !train;
    j.x = x;
    j.c = c;
    j.out = out;
    score__pool_for_each(pool, nblk, fwd_part, &j);
    return SCORE_OK;
}

static int unet_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, float *out)
{
    return run_blocks("score_model_forward", m, ws, n, x, c, out, 1);
}

/* The samplers' forward: blocks of INFER_BLOCK rows, one region per thread. */
static int unet_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, float *out)
{
    return run_blocks("score_model_forward", m, ws, n, x, c, out, 0);
}

/* The embedding's backward from its gradient v->gemb (written by the blocks): grad += . ref:
 * score__unet_set_reference_backward()'s way (zeroed buffers added to). */
static void embed_backward(const unet *p, const blk *v, size_t n, float *grad, int ref)
{
    const float *th = p->theta;
    size_t T = p->T, E = p->E;
    const float *f = v->emb, *t1 = f + n * E, *s1 = t1 + n * T, *t2 = s1 + n * T;
    float *ge = v->gemb, *gt2 = ge + n * T, *gs1 = gt2 + n * T;
    float *gt1 = ge; /* ge is consumed by then */
    if (ref)
        memset(gt2, 0, 2 * n * T * sizeof *gt2);
    score__unet_silu_backward_to(n * T, t2, ge, gt2, ref);
    if (p->K > 0)
        for (size_t b = 0; b < n; b++)
            score__saxpy(T, 1.0f, gt2 + b * T, grad + p->lab + (size_t)v->lab[b] * T);
    score__unet_dense_backward_to(n, T, T, th + p->d1_w, s1, gt2, grad + p->d1_w,
                                  grad + p->d1_b, gs1, ref);
    if (ref)
        memset(gt1, 0, n * T * sizeof *gt1);
    score__unet_silu_backward_to(n * T, t1, gs1, gt1, ref);
    score__unet_dense_backward(n, E, T, th + p->d0_w, f, gt1, grad + p->d0_w, grad + p->d0_b,
                               NULL);
}

/* The parameters [lo, hi) of a block's gradient g added to sum and cleared (sum NULL: none). */
static void reduce_range(float *g, float *sum, size_t lo, size_t hi)
{
    if (sum != NULL && hi > lo)
        score__add_clear(hi - lo, g + lo, sum + lo);
}

/* The backward of one block of n rows from its region: g += its parameter gradient, gx (NULL:
 * none) = its input gradient. Every activation gradient is written by its first producer
 * (mark_producers()), so nothing is cleared beforehand but the slots of the layers that only
 * add. sum (NULL: none): the blocks run one after the other in block order, and each layer's
 * part of g is added to sum and cleared right after the layer (while it is in cache): the
 * bits of adding the whole of g after the block. */
static void graph_backward(const unet *p, const blk *v, size_t n, const float *gout, float *g,
                           float *gx, float *sum)
{
    const float *th = p->theta;
    const float *e = v->emb + n * (p->E + 3 * p->T);
    sizes s = need_of(p, n);
    float *cache = v->cache + s.cache; /* the forward's areas, walked back */
    double *dbl = v->dbl + s.dbl - s.dsum;
    double *dsum = dbl; /* the bias sums of the convolutions: the last s.dsum doubles */
    const float *pkb = v->pkb != NULL ? v->pkb + s.bpack : NULL; /* walked back too */
    size_t d = p->C * p->H * p->W;
    int ref = p->ref_backward;
    if (ref) {
        memset(v->gact, 0, n * p->act_floats * sizeof *v->gact);
        memset(v->gemb, 0, n * p->T * sizeof *v->gemb);
        memcpy(slot(v->gact, n, p->slot_out), gout, n * d * sizeof *gout);
    }
    for (size_t i = p->n_nodes; i-- > 0;) {
        const node *nd = &p->nodes[i];
        float *in = slot(v->act, n, nd->in), *gin = slot(v->gact, n, nd->in);
        const float *gy = nd->out == p->slot_out && !ref ? gout : slot(v->gact, n, nd->out);
        int acc = nd->acc || ref, acc2 = nd->acc2 || ref, acc_e = nd->acc_e || ref;
        if (nd->zero_in && !ref && nd->type != N_CONV3) /* the convolution writes instead */
            memset(gin, 0, n * nd->ci * nd->h * nd->w * sizeof *gin);
        switch (nd->type) {
        case N_CONV3:
            if (pkb != NULL)
                pkb -= score__unet_conv3_igrad_packed_floats(nd->ci, nd->co, nd->h, nd->w);
            score__unet_conv3_backward_packed(n, nd->ci, nd->co, nd->h, nd->w, th + nd->pw, pkb,
                                              in, gy, g + nd->pw, g + nd->pb, gin, v->col, dsum,
                                              !(nd->zero_in && !ref));
            break;
        case N_RES:
            cache -= score__unet_res_cache_floats(&nd->res, n);
            dbl -= score__unet_res_dbl(&nd->res, n);
            if (pkb != NULL)
                pkb -= score__unet_res_packed_floats(&nd->res, 1);
            score__unet_res_backward_to(&nd->res, n, th, in, e, cache, dbl, gy, g, gin, v->gemb,
                                        v->scratch, v->col, acc, acc_e, pkb);
            break;
        case N_ATTN:
            cache -= score__unet_attn_cache_floats(&nd->attn, n);
            dbl -= score__unet_attn_dbl(&nd->attn, n);
            score__unet_attn_backward_to(&nd->attn, n, th, in, cache, dbl, gy, g, gin,
                                         v->scratch, v->col, acc);
            break;
        case N_DOWN:
            score__unet_down_backward_to(n * nd->ci, nd->h, nd->w, gy, gin, acc);
            break;
        case N_UP:
            score__unet_up_backward_to(n * nd->ci, nd->h, nd->w, gy, gin, acc);
            break;
        case N_CAT:
            score__unet_concat_backward_to(n, nd->ci, nd->co - nd->ci, nd->h * nd->w, gy, gin,
                                           slot(v->gact, n, nd->in2), acc, acc2);
            break;
        case N_GN:
            dbl -= 2 * n * nd->g;
            score__unet_gn_backward(n, nd->ci, nd->h * nd->w, nd->g, th + nd->pw, in, dbl, gy,
                                    g + nd->pw, g + nd->pb, gin);
            break;
        case N_SILU:
            score__unet_silu_backward_to(n * nd->ci * nd->h * nd->w, in, gy, gin, acc);
            break;
        default:
            break;
        }
        reduce_range(g, sum, nd->p0, nd->p1);
    }
    embed_backward(p, v, n, g, ref);
    reduce_range(g, sum, p->d0_w, p->emb_end);
    if (gx != NULL)
        memcpy(gx, v->gact, n * d * sizeof *gx);
}

/* A round of the backward: blocks first .. first + k - 1 (k <= threads), block first + i into
 * the i-th gradient buffer; then the buffers added to the gradient in block order. */
typedef struct bwd_job {
    const unet *p;
    const unet_ws *w;
    size_t n, nb, d, first, k, nchunk;
    int fused; /* one thread: graph_backward adds each layer's part to grad (no sum_part) */
    const float *gout;
    float *grad, *gx;
} bwd_job;

static void bwd_part(void *ctx, size_t i, size_t thread)
{
    const bwd_job *j = ctx;
    size_t b = j->first + i, r0 = b * j->nb, rows = j->n - r0 < j->nb ? j->n - r0 : j->nb;
    float *gp = j->w->gpart + i * j->p->n_params; /* zero: cleared by the previous round */
    blk v = view(j->w, b, thread);
    v.pkb = aligned64(j->w->bpack);
    graph_backward(j->p, &v, rows, j->gout + r0 * j->d, gp, j->gx ? j->gx + r0 * j->d : NULL,
                   j->fused ? j->grad : NULL);
}

static void sum_part(void *ctx, size_t c, size_t thread)
{
    const bwd_job *j = ctx;
    size_t np = j->p->n_params, per = (np + j->nchunk - 1) / j->nchunk;
    size_t lo = c * per < np ? c * per : np, hi = lo + per < np ? lo + per : np;
    (void)thread;
    for (size_t i = 0; i < j->k; i++) /* and cleared for the next round */
        score__add_clear(hi - lo, j->w->gpart + i * np + lo, j->grad + lo);
}

static int unet_backward(const score_model *m, score__model_ws *ws, size_t n, const float *gout,
                         float *grad, float *gx)
{
    const unet *p = m->impl;
    unet_ws *w = ws->kind;
    size_t nblk = (n + w->nb - 1) / w->nb, nthr = w->nthr;
    score__pool *pool = nthr > 1 ? score__pool_for(&w->pool, &w->pool_failed, nthr) : NULL;
    bwd_job j;
    nthr = score__pool_threads(pool) < nthr ? score__pool_threads(pool) : nthr;
    if (grad == NULL) {
        grad = w->gparams;
        memset(grad, 0, p->n_params * sizeof *grad);
    }
    memset(&j, 0, sizeof j);
    j.p = p;
    j.w = w;
    j.n = n;
    j.nb = w->nb;
    j.d = m->dim;
    j.gout = gout;
    j.grad = grad;
    j.gx = gx;
    j.nchunk = nthr;
    /* The gradient buffers are zero between calls (calloc'ed, then cleared by every
     * reduction); the reference way clears them all the same. */
    if (p->ref_backward)
        memset(w->gpart, 0, (nblk < nthr ? nblk : nthr) * p->n_params * sizeof *w->gpart);
    j.fused = nthr == 1 && !p->ref_backward;
    if (aligned64(w->bpack) != NULL) /* before the blocks: their threads read it */
        pack_weights(p, aligned64(w->bpack), 1);
    for (j.first = 0; j.first < nblk; j.first += j.k) {
        j.k = nblk - j.first < nthr ? nblk - j.first : nthr;
        score__pool_for_each(pool, j.k, bwd_part, &j);
        if (!j.fused)
            score__pool_for_each(pool, j.nchunk, sum_part, &j);
    }
    return SCORE_OK;
}

/* ---- Parameters and lifecycle ------------------------------------------------------------ */

static size_t unet_param_count(const score_model *m)
{
    return ((const unet *)m->impl)->n_params;
}

static void unet_params_get(const score_model *m, float *buf)
{
    const unet *p = m->impl;
    memcpy(buf, p->theta, p->n_params * sizeof *buf);
}

static void unet_params_set(score_model *m, const float *buf)
{
    unet *p = m->impl;
    memcpy(p->theta, buf, p->n_params * sizeof *buf);
}

static float **unet_params_slot(score_model *m)
{
    return &((unet *)m->impl)->theta;
}

static void *dup(const void *src, size_t bytes)
{
    void *d;
    if (src == NULL)
        return NULL;
    d = score__calloc(bytes ? bytes : 1, 1);
    if (d != NULL)
        memcpy(d, src, bytes);
    return d;
}

static int unet_clone(score_model *dst, const score_model *src)
{
    const unet *s = src->impl;
    unet *d = score__calloc(1, sizeof *d);
    if (d == NULL)
        return SCORE_E_NOMEM;
    *d = *s;
    d->freq = dup(s->freq, s->half * sizeof *s->freq);
    d->fourier = dup(s->fourier, s->half * sizeof *s->fourier);
    d->nodes = dup(s->nodes, s->n_nodes * sizeof *s->nodes);
    d->theta = dup(s->theta, s->n_params * sizeof *s->theta);
    if ((s->freq && !d->freq) || (s->fourier && !d->fourier) || (s->nodes && !d->nodes) ||
        (s->theta && !d->theta)) {
        unet_release(d);
        score__free(d);
        return SCORE_E_NOMEM;
    }
    dst->impl = d;
    return SCORE_OK;
}

static void unet_destroy(score_model *m)
{
    unet *p = m->impl;
    if (p == NULL)
        return;
    unet_release(p);
    score__free(p);
    m->impl = NULL;
}

static int unet_same_arch(const score_model *a, const score_model *b)
{
    const unet *p = a->impl, *q = b->impl;
    if (p->C != q->C || p->H != q->H || p->W != q->W || p->n_levels != q->n_levels ||
        p->base != q->base || p->blocks != q->blocks || p->groups != q->groups ||
        p->T != q->T || p->E != q->E || p->K != q->K || p->attention != q->attention ||
        p->emb != q->emb || p->n_params != q->n_params)
        return 0;
    if (memcmp(p->mult, q->mult, p->n_levels * sizeof *p->mult) != 0)
        return 0;
    if (p->fourier != NULL && memcmp(p->fourier, q->fourier, p->half * sizeof *p->fourier) != 0)
        return 0;
    return 1;
}

/* ---- Accessors for the files (unet-io.c) ------------------------------------------------- */

void score__unet_image_shape(const score_model *m, size_t *c, size_t *h, size_t *w)
{
    const unet *p = m->impl;
    *c = p->C;
    *h = p->H;
    *w = p->W;
}

void score__unet_set_reference_backward(score_model *m, int on)
{
    ((unet *)m->impl)->ref_backward = on != 0;
}

const float *score__unet_fourier(const score_model *m)
{
    return ((const unet *)m->impl)->fourier;
}

void score__unet_set_fourier(score_model *m, const float *w)
{
    unet *p = m->impl;
    for (size_t i = 0; p->fourier != NULL && i < p->half; i++) {
        p->fourier[i] = w[i];
        p->freq[i] = TWO_PI * (double)p->fourier[i];
    }
}

const score__model_ops score__unet_ops = {
    .name = "unet",
    .prepare = unet_prepare,
    .forward = unet_forward,
    .infer = unet_infer,
    .backward = unet_backward,
    .ws_new = unet_ws_new,
    .ws_free = unet_ws_free,
    .param_count = unet_param_count,
    .params_get = unet_params_get,
    .params_set = unet_params_set,
    .params_slot = unet_params_slot,
    .clone_impl = unet_clone,
    .destroy_impl = unet_destroy,
    .on_param = unet_on_param,
    .same_arch = unet_same_arch,
    .save = score__unet_save,
    .load = score__unet_load,
};
