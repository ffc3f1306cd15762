/* The MLP kind of score_model: forward, backward, forward-mode tangents (JVP, exact trace),
 * reverse-mode cotangents (VJP) and the parameter gradients of the trace and of v^T J v,
 * all batched as GEMMs with the batch (times the number of tangents) as the row count.
 *
 * Network (one row; see model.h for the flat parameter layout):
 *   h_0 = [x ; e(c) ; u]                           n_0 = dim + E + m (u: context vector)
 *   z_1 = W_1 h_0 + b_1 + A[y]                       (y: label, A: (K + 1) x n_1 label table)
 *   z_l = W_l h_{l-1} + b_l,  h_l = phi(z_l)         l = 1 .. L-1 (hidden layers)
 *         residual block (l >= 2, n_l == n_{l-1}): h_l = h_{l-1} + phi(z_l)
 *   F   = W_L h_{L-1} + b_L                            n_L = dim
 * Embedding e(c), with half = E / 2 frequencies f_i:
 *   Fourier:    f_i = 2 pi W_i, W_i = scale * N(0, 1) (Philox: model seed, stream 3, counter 0,
 *               row 0, column i), e = [sin(f c), cos(f c)];
 *   sinusoidal: f_i = exp(-ln(10000) i / max(half - 1, 1)), e = [sin(f c), cos(f c)];
 *   none:       e = c (E = 1).
 * Initialisation (PyTorch nn.Linear-like): W_l[i, j] and b_l[i] uniform in
 * (-1/sqrt(n_{l-1}), 1/sqrt(n_{l-1})): u = Philox uniform of (seed, stream 1, counter l,
 * row i, column j) for weights and (seed, stream 2, counter l, row 0, column i) for biases,
 * value = bound * (2u - 1).
 *
 * Conditions. A class label y in 0 .. K-1, or the null label K (the unconditional model of
 * classifier-free guidance, trained like the other rows), adds the learned row A[y] to the
 * first hidden layer's pre-activation: exactly a one-hot label input [h_0 ; onehot(y)] with the
 * columns of W_1 that multiply it stored as A^T. This rather than a vector added to the time
 * embedding e(c): it works with every embedding, SCORE_EMBED_NONE included (whose e(c) is the
 * single value c), gives each label the full width n_1 instead of the E directions W_1 maps the
 * embedding to, and costs no GEMM (a row lookup forward, a row sum backward, like a bias).
 * A[y][i] = bound_1 * (2u - 1) with bound_1 = 1/sqrt(n_0) of the first layer and u the Philox
 * uniform of (seed, stream 4, counter 0, row y, column i). A context vector u of width m is
 * concatenated to the first layer's input, its weights the last m columns of W_1 (initialised
 * with them): unlike FiLM (a per-channel scale and shift computed from u), concatenation keeps
 * the network affine in h_0 at the first layer, so the tangent machinery, whose derivatives
 * are over x only, is unchanged (U_1 = W_1x V); u only enters the primal rows. Neither input
 * depends on x: JVP, VJP and the trace see them through phi'(z_l) alone.
 *
 * Derivatives by forward-mode propagation: tangents T_l of every hidden
 * layer are (rows * k) x n_l matrices (row (b, p) = tangent p of batch row b), propagated by
 * one GEMM per layer; the reverse pass through primal and tangents includes the phi'' terms.
 * Batches are cut into blocks so that the tangent matrices stay within a memory budget. The
 * parameter gradients of the trace and of v^T J v keep each block's primal rows in the same
 * matrices as its tangent rows, so that one GEMM per product serves both, and take the output
 * cotangent either as an array or from a function of the block's outputs (the losses).
 *
 * This file holds the configuration, parameters, lifecycle, workspaces and the forward pass
 * of one block; mlp-infer.c the inference path of samplers (blocks, threads, the kernel
 * layer's row-invariant GEMM); mlp-train.c the training path (cached forward,
 * back-propagation) and mlp-tangent.c the tangent and cotangent operations and their
 * parameter gradients.
 */
#include <math.h>
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h"
#include "mlp-kind-priv.h"
#include "rng/rng-priv.h"

#define SCORE__TWO_PI 6.283185307179586476925
#define LN_10000 9.2103403719761827360719658

enum { RNG_STREAM_WEIGHT = 1, RNG_STREAM_BIAS = 2, RNG_STREAM_FOURIER = 3, RNG_STREAM_LABEL = 4 };

/* The impl is created lazily: by score_model_set_hidden_widths() or prepare. */
static mlp *impl_get(score_model *m)
{
    if (m->impl == NULL)
        m->impl = score__calloc(1, sizeof(mlp));
    return m->impl;
}

/* ======================================================================================== */
/* configuration, prepare, parameters, lifecycle                                            */

int score_model_set_hidden_widths(score_model *model, size_t n_layers, const size_t *widths)
{
    const score__param_desc *tab;
    size_t ntab, maxw = 0;
    mlp *p;
    if (model == NULL || widths == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model or widths is NULL");
    if (model->kind != SCORE_MODEL_MLP && model->kind != SCORE_MODEL_CLASSIFIER &&
        model->kind != SCORE_MODEL_ENERGY)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "%s models have no hidden layers",
                            model->ops->name);
    if (model->prepared)
        return score__error(SCORE_E_STAGE, __func__, "the architecture is fixed once the model is prepared");
    if (n_layers == 0 || n_layers > SCORE__MLP_MAX_HIDDEN)
        return score__error(SCORE_E_RANGE, __func__, "n_layers %zu not in [1, %d]", n_layers,
                            SCORE__MLP_MAX_HIDDEN);
    for (size_t i = 0; i < n_layers; i++) {
        if (widths[i] == 0 || widths[i] > SCORE__MLP_MAX_WIDTH)
            return score__error(SCORE_E_RANGE, __func__, "width %zu of layer %zu not in [1, %d]",
                                widths[i], i, SCORE__MLP_MAX_WIDTH);
        if (widths[i] > maxw)
            maxw = widths[i];
    }
    if ((p = impl_get(model)) == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    p->n_custom = n_layers;
    memcpy(p->custom, widths, n_layers * sizeof *widths);
    /* Keep DEPTH and HIDDEN (the largest width) informative for getters. */
    tab = score__model_param_table(&ntab);
    (void)score__param_set_i64(__func__, tab, ntab, model->params, SCORE_MODEL_PARAM_DEPTH,
                               (int64_t)n_layers);
    (void)score__param_set_i64(__func__, tab, ntab, model->params, SCORE_MODEL_PARAM_HIDDEN,
                               (int64_t)maxw);
    return SCORE_OK;
}

static int mlp_on_param(score_model *m, int param)
{
    mlp *p = impl_of(m);
    if (param == SCORE_MODEL_PARAM_EMBED_DIM &&
        score__model_i64(m, SCORE_MODEL_PARAM_EMBED_DIM) % 2 != 0)
        return score__error(SCORE_E_RANGE, "score_model_set_i64", "embed_dim must be even");
    /* HIDDEN / DEPTH set after score_model_set_hidden_widths(): the latest call wins. */
    if ((param == SCORE_MODEL_PARAM_HIDDEN || param == SCORE_MODEL_PARAM_DEPTH) && p != NULL)
        p->n_custom = 0;
    return SCORE_OK;
}

static void free_arenas(mlp_ws *w)
{
    score__free(w->parena);
    score__free(w->lab);
    score__free(w->csum);
    w->lab = NULL;
    w->csum = NULL;
    score__free(w->tarena);
    score__free(w->iarena);
    score__free(w->earena);
    score__free(w->wparena);
    w->wparena = NULL;
    w->wpcap = 0;
    score__free(w->ecx);
    score__free(w->ecc);
    w->earena = NULL;
    w->ecx = NULL;
    w->ecc = NULL;
    w->ecap = 0;
    w->ecn = 0;
    w->parena = NULL;
    w->tarena = NULL;
    w->iarena = NULL;
    w->pcap = 0;
    w->tcap = 0;
    w->icap = 0;
}

static int mlp_ws_new(void **out)
{
    *out = score__calloc(1, sizeof(mlp_ws));
    return *out ? SCORE_OK : SCORE_E_NOMEM;
}

static void mlp_ws_free(void *kind)
{
    mlp_ws *w = kind;
    if (w == NULL)
        return;
    free_arenas(w);
    score__pool_free(w->pool);
    score__free(w);
}

/* The kind part of ws, its buffers dropped when they were laid out for another architecture. */
mlp_ws *score__mlp_ws_of(const mlp *p, score__model_ws *ws)
{
    mlp_ws *w = ws->kind;
    if (w->L != p->L || memcmp(w->n, p->n, (p->L + 1) * sizeof *p->n) != 0) {
        free_arenas(w);
        ws->cached_n = 0;
        w->L = p->L;
        memset(w->n, 0, sizeof w->n);
        memcpy(w->n, p->n, (p->L + 1) * sizeof *p->n);
    }
    return w;
}

/* The pool for `threads` threads (NULL: run on the calling thread; also when the threads
 * cannot be had, which gives the same results). */
score__pool *score__mlp_pool_of(mlp_ws *w, int64_t threads)
{
    return score__pool_for(&w->pool, &w->pool_failed, (size_t)threads);
}

score__pool *score__model_ws_pool(score__model_ws *ws)
{
    if (ws == NULL || ws->kind == NULL || ws->kind_free != mlp_ws_free)
        return NULL;
    return ((mlp_ws *)ws->kind)->pool;
}

static void mlp_destroy(score_model *m)
{
    mlp *p = impl_of(m);
    if (p == NULL)
        return;
    score_schedule_free(p->sched);
    score__free(p->theta);
    score__free(p->fourier);
    score__free(p->freq);
    score__free(p);
    m->impl = NULL;
}

static void init_params(mlp *p, uint64_t seed, double *tmp)
{
    score_rng rw = {SCORE_RNG_PHILOX4X32_10, seed, RNG_STREAM_WEIGHT, 0};
    score_rng rb = {SCORE_RNG_PHILOX4X32_10, seed, RNG_STREAM_BIAS, 0};
    for (size_t l = 1; l <= p->L; l++) {
        size_t in = p->n[l - 1], out = p->n[l];
        double bound = 1.0 / sqrt((double)in);
        float *w = W(p, l), *b = B(p, l);
        for (size_t i = 0; i < out; i++) {
            score__rng_uniform_f64_at(&rw, (uint32_t)l, i, 1, 0, in, tmp);
            for (size_t j = 0; j < in; j++)
                w[i * in + j] = (float)(bound * (2.0 * tmp[j] - 1.0));
        }
        score__rng_uniform_f64_at(&rb, (uint32_t)l, 0, 1, 0, out, tmp);
        for (size_t i = 0; i < out; i++)
            b[i] = (float)(bound * (2.0 * tmp[i] - 1.0));
    }
}

/* The label table: bound of the first layer, stream RNG_STREAM_LABEL (see the top). */
static void init_labels(mlp *p, uint64_t seed, double *tmp)
{
    score_rng r = {SCORE_RNG_PHILOX4X32_10, seed, RNG_STREAM_LABEL, 0};
    size_t n1 = p->n[1];
    double bound = 1.0 / sqrt((double)p->n[0]);
    for (size_t y = 0; p->K > 0 && y <= p->K; y++) {
        float *a = LAB(p, y);
        score__rng_uniform_f64_at(&r, 0, y, 1, 0, n1, tmp);
        for (size_t i = 0; i < n1; i++)
            a[i] = (float)(bound * (2.0 * tmp[i] - 1.0));
    }
}

static void set_freq_from_fourier(mlp *p)
{
    for (size_t i = 0; i < p->half; i++)
        p->freq[i] = SCORE__TWO_PI * (double)p->fourier[i];
}

/* Offsets of every layer's weights and biases and of the label table in the flat parameter
 * vector (n[] and K set); *maxin: the widest layer input or output. */
static int layout_params(const char *fn, mlp *p, size_t *maxin)
{
    size_t off = 0;
    for (size_t l = 1; l <= p->L; l++) {
        size_t wsz;
        if (score__mul_size(p->n[l], p->n[l - 1], &wsz) != 0 || wsz > SIZE_MAX - off ||
            p->n[l] > SIZE_MAX - off - wsz)
            return score__error(SCORE_E_NOMEM, fn, "the network is too large");
        p->woff[l] = off;
        p->boff[l] = off + wsz;
        off += wsz + p->n[l];
        if (p->n[l - 1] > *maxin)
            *maxin = p->n[l - 1];
    }
    p->loff = off;
    if (p->K > 0) { /* (K + 1) x n_1 <= 65536 * 65536: no overflow */
        if ((p->K + 1) * p->n[1] > SIZE_MAX - off)
            return score__error(SCORE_E_NOMEM, fn, "the network is too large");
        off += (p->K + 1) * p->n[1];
    }
    p->n_params = off;
    if (p->n[p->L] > *maxin)
        *maxin = p->n[p->L];
    return SCORE_OK;
}

/* The frequencies of the conditioning embedding: a Gaussian Fourier projection drawn from the
 * model's seed, or the fixed sinusoidal ladder. */
static int init_embedding(const char *fn, const score_model *m, mlp *p)
{
    if (p->half == 0)
        return SCORE_OK;
    p->freq = score__calloc(p->half, sizeof(double));
    if (p->freq == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    if (p->emb == SCORE_EMBED_FOURIER) {
        score_rng rf = {SCORE_RNG_PHILOX4X32_10,
                        (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_SEED),
                        RNG_STREAM_FOURIER, 0};
        double scale = score__model_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE);
        p->fourier = score__calloc(p->half, sizeof(float));
        if (p->fourier == NULL)
            return score__error(SCORE_E_NOMEM, fn, "allocation failed");
        score__rng_normal_at(&rf, 0, 0, 1, 0, p->half, p->fourier);
        for (size_t i = 0; i < p->half; i++)
            p->fourier[i] = (float)(scale * (double)p->fourier[i]);
        set_freq_from_fourier(p);
    } else {
        double den = p->half > 1 ? (double)(p->half - 1) : 1.0;
        for (size_t i = 0; i < p->half; i++)
            p->freq[i] = exp(-LN_10000 * (double)i / den);
    }
    return SCORE_OK;
}

static int mlp_prepare(score_model *m)
{
    static const char fn[] = "score_model_prepare";
    mlp *p = impl_get(m);
    size_t dim = m->dim, nh, maxin = 0;
    int64_t emb_dim;
    double *tmp;
    int rc;
    if (p == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    p->act = (int)score__model_i64(m, SCORE_MODEL_PARAM_ACTIVATION);
    p->emb = (int)score__model_i64(m, SCORE_MODEL_PARAM_EMBEDDING);
    emb_dim = score__model_i64(m, SCORE_MODEL_PARAM_EMBED_DIM);
    if (p->emb == SCORE_EMBED_NONE) {
        p->E = 1;
        p->half = 0;
    } else {
        if (emb_dim % 2 != 0)
            return score__error(SCORE_E_INVAL, fn, "embed_dim %lld must be even", (long long)emb_dim);
        p->E = (size_t)emb_dim;
        p->half = p->E / 2;
    }
    nh = p->n_custom;
    if (nh == 0) {
        nh = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_DEPTH);
        for (size_t i = 0; i < nh; i++)
            p->custom[i] = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_HIDDEN);
    }
    p->L = nh + 1;
    p->K = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES);
    if (m->kind == SCORE_MODEL_CLASSIFIER) {
        /* NUM_CLASSES is the width of the head, not a label input */
        if (p->K < 2)
            return score__error(SCORE_E_INVAL, fn, "a classifier needs at least 2 classes (%zu)",
                                p->K);
        dim = p->K;
        p->K = 0;
    } else if (m->kind == SCORE_MODEL_ENERGY) {
        dim = 1; /* the scalar energy E(x, c) */
    }
    p->m = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM);
    p->n[0] = m->dim + p->E + p->m;
    p->maxh = 0;
    for (size_t l = 1; l < p->L; l++) {
        p->n[l] = p->custom[l - 1];
        if (p->n[l] > p->maxh)
            p->maxh = p->n[l];
    }
    p->n[p->L] = dim;
    for (size_t l = 0; l <= p->L; l++)
        p->res[l] = score__model_i64(m, SCORE_MODEL_PARAM_RESIDUAL) != 0 && l >= 2 &&
                    l < p->L && p->n[l] == p->n[l - 1];
    if ((rc = layout_params(fn, p, &maxin)) != SCORE_OK)
        return rc;
    score__free(p->theta);
    score__free(p->fourier);
    score__free(p->freq);
    p->fourier = NULL;
    p->freq = NULL;
    p->theta = score__calloc(p->n_params, sizeof(float));
    tmp = score__calloc(maxin, sizeof(double));
    if (p->theta == NULL || tmp == NULL) {
        score__free(tmp);
        return score__error(SCORE_E_NOMEM, fn, "cannot allocate %zu parameters", p->n_params);
    }
    init_params(p, (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_SEED), tmp);
    init_labels(p, (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_SEED), tmp);
    score__free(tmp);
    if ((rc = init_embedding(fn, m, p)) != SCORE_OK)
        return rc;
    if (p->budget == 0)
        p->budget = SCORE__MLP_TANGENT_BUDGET;
    return SCORE_OK;
}

static size_t mlp_param_count(const score_model *m)
{
    return impl_of(m)->n_params;
}

static void mlp_params_get(const score_model *m, float *buf)
{
    const mlp *p = impl_of(m);
    memcpy(buf, p->theta, p->n_params * sizeof *buf);
}

static void mlp_params_set(score_model *m, const float *buf)
{
    mlp *p = impl_of(m);
    memcpy(p->theta, buf, p->n_params * sizeof *buf);
}

static float **mlp_params_slot(score_model *m)
{
    return &impl_of(m)->theta;
}

static float *dup_f32(const float *src, size_t n)
{
    float *d = score__calloc(n, sizeof *d);
    if (d != NULL)
        memcpy(d, src, n * sizeof *d);
    return d;
}

static int mlp_clone(score_model *dst, const score_model *src)
{
    const mlp *s = impl_of(src);
    mlp *d;
    if (s == NULL)
        return SCORE_OK;
    d = score__calloc(1, sizeof *d);
    if (d == NULL)
        return SCORE_E_NOMEM;
    *d = *s;
    d->theta = NULL;
    d->fourier = NULL;
    d->freq = NULL;
    d->sched = NULL;
    dst->impl = d;
    if ((s->sched && score_schedule_clone(&d->sched, s->sched) != SCORE_OK) ||
        (s->theta && (d->theta = dup_f32(s->theta, s->n_params)) == NULL) ||
        (s->fourier && (d->fourier = dup_f32(s->fourier, s->half)) == NULL) ||
        (s->freq && (d->freq = score__calloc(s->half, sizeof(double))) == NULL)) {
        mlp_destroy(dst);
        return SCORE_E_NOMEM;
    }
    if (s->freq)
        memcpy(d->freq, s->freq, s->half * sizeof(double));
    return SCORE_OK;
}

int score__mlp_info_get(const score_model *m, score__mlp_info *out)
{
    const mlp *p;
    if (m == NULL ||
        (m->kind != SCORE_MODEL_MLP && m->kind != SCORE_MODEL_CLASSIFIER &&
         m->kind != SCORE_MODEL_ENERGY) ||
        !m->prepared || (p = impl_of(m)) == NULL)
        return SCORE_E_INVAL;
    out->n_layers = p->L;
    out->width = p->n;
    out->residual = p->res;
    out->embed_in = p->E;
    out->activation = p->act;
    out->embedding = p->emb;
    out->fourier = p->fourier;
    out->params = p->theta;
    out->n_params = p->n_params;
    out->num_classes = p->K;
    out->context_dim = p->m;
    out->label_offset = p->loff;
    return SCORE_OK;
}

void score__mlp_set_fourier(score_model *m, const float *w)
{
    mlp *p = impl_of(m);
    if (p == NULL || p->fourier == NULL)
        return;
    memcpy(p->fourier, w, p->half * sizeof *w);
    set_freq_from_fourier(p);
}

void score__mlp_set_tangent_budget(score_model *m, size_t bytes)
{
    mlp *p = impl_get(m);
    if (p != NULL)
        p->budget = bytes ? bytes : SCORE__MLP_TANGENT_BUDGET;
}

/* ======================================================================================== */
/* workspaces                                                                               */

/* Primal cache for `rows` rows: h0, then per hidden layer h and phi', then four n x maxh
 * scratch matrices for the reverse pass; the labels of the rows and maxh column sums. */
int score__mlp_ensure_primal(const mlp *p, mlp_ws *w, size_t rows)
{
    size_t per = p->n[0] + 4 * p->maxh, total;
    float *a;
    int32_t *lab;
    double *csum;
    if (rows <= w->pcap)
        return SCORE_OK;
    for (size_t l = 1; l < p->L; l++)
        per += 2 * p->n[l];
    if (score__mul_size(rows, per, &total) != 0 || (a = score__calloc(total, sizeof(float))) == NULL)
        return SCORE_E_NOMEM;
    lab = score__calloc(rows, sizeof *lab);
    csum = score__calloc(p->maxh > 0 ? p->maxh : 1, sizeof *csum);
    if (lab == NULL || csum == NULL) {
        score__free(a);
        score__free(lab);
        score__free(csum);
        return SCORE_E_NOMEM;
    }
    score__free(w->parena);
    score__free(w->lab);
    score__free(w->csum);
    w->parena = a;
    w->lab = lab;
    w->csum = csum;
    w->pcap = rows;
    w->h0 = a;
    a += rows * p->n[0];
    for (size_t l = 1; l < p->L; l++) {
        size_t sz = rows * p->n[l];
        w->h[l] = a; a += sz;
        w->d1[l] = a; a += sz;
    }
    w->h[0] = w->h0;
    w->dz = a; a += rows * p->maxh;
    w->dha = a; a += rows * p->maxh;
    w->dhb = a; a += rows * p->maxh;
    w->dz2 = a;
    return SCORE_OK;
}


/* ======================================================================================== */
/* primal pass                                                                              */

/* Input rows [x ; e(c) ; context] into h0 (nb x n_0). Samplers evaluate a whole batch at one
 * time, so a row whose c equals the previous row's copies that row's features instead of
 * recomputing them (same values: the features are a function of c alone). */
void score__mlp_embed_rows(const mlp *p, size_t dim, size_t nb, const float *x, const double *c,
                           const mlp_cond *cd, float *h0)
{
    size_t n0 = p->n[0];
    for (size_t b = 0; b < nb; b++) {
        float *row = h0 + b * n0;
        float *e = row + dim;
        memcpy(row, x + b * dim, dim * sizeof *row);
        if (p->m > 0)
            memcpy(e + p->E, cd->context + (cd->context_per_row ? b * p->m : 0),
                   p->m * sizeof *row);
        if (p->emb == SCORE_EMBED_NONE) {
            e[0] = (float)c[b];
        } else if (b > 0 && c[b] == c[b - 1]) {
            memcpy(e, e - n0, p->E * sizeof *e);
        } else {
            /* e_i = (float)sin(f_i c), e_{half+i} = (float)cos(f_i c) */
            score__sincos_features(p->half, p->freq, c[b], e, e + p->half);
        }
    }
}

void score__mlp_add_labels(const mlp *p, const mlp_cond *cd, size_t nb, float *z1,
                           int32_t *keep)
{
    size_t n1 = p->n[1];
    for (size_t b = 0; p->K > 0 && b < nb; b++) {
        size_t y = score__mlp_label(p, cd, b);
        if (keep != NULL)
            keep[b] = (int32_t)y;
        score__saxpy(n1, 1.0f, LAB(p, y), z1 + b * n1);
    }
}

void score__mlp_label_grad(const mlp *p, const mlp_cond *cd, size_t nb, const float *dz,
                           size_t j0, size_t j1, float *grad)
{
    size_t n1 = p->n[1];
    for (size_t b = 0; p->K > 0 && b < nb; b++)
        score__saxpy(j1 - j0, 1.0f, dz + b * n1 + j0,
                     grad + p->loff + score__mlp_label(p, cd, b) * n1 + j0);
}

/* Forward pass of nb rows into rows r0 .. r0 + nb - 1 of the primal cache (which must hold
 * them; x, c and out point at the block's first row): h and phi'. The output layer runs only
 * when out != NULL. */
void score__mlp_forward_block(const mlp *p, const mlp_ws *w, size_t dim, size_t r0, size_t nb,
                              const float *x, const double *c, const mlp_cond *cd,
                              const float *const *wp, float *out)
{
    size_t L = p->L;
    score__mlp_embed_rows(p, dim, nb, x, c, cd, w->h0 + r0 * p->n[0]);
    for (size_t l = 1; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        const float *hp = w->h[l - 1] + r0 * np;
        float *h = w->h[l] + r0 * nl;
        const float *res = p->res[l] ? hp : NULL;
        float *d1 = w->d1[l] + r0 * nl;
        /* z_l goes to h_l's rows, which the activation then overwrites (nothing reads z_l
         * again: the backward needs phi'(z_l) only); with the label table's rows added to
         * z_1 before the activation, the epilogue is a pass of its own there */
        if (wp != NULL && !(l == 1 && p->K > 0)) {
            score__gemm_wt_d1(nb, nl, np, hp, np, wp[l], h, 0, B(p, l), p->act, res, d1);
            continue;
        }
        if (wp != NULL)
            score__gemm_wt(nb, nl, np, hp, np, wp[l], h, 0, NULL, SCORE__ACT_IDENTITY, NULL);
        else
            score__sgemm(0, 1, nb, nl, np, 1.0f, hp, np, W(p, l), np, 0.0f, h, nl);
        if (l == 1)
            score__mlp_add_labels(p, cd, nb, h, w->lab + r0);
        score__bias_act_inplace(nb, nl, h, B(p, l), p->act, res, d1);
    }
    if (out != NULL) {
        const float *bl = B(p, L);
        size_t no = p->n[L]; /* dim, or the classes of a classifier */
        if (wp != NULL) {
            score__gemm_wt(nb, no, p->n[L - 1], w->h[L - 1] + r0 * p->n[L - 1], p->n[L - 1],
                           wp[L], out, 0, bl, SCORE__ACT_IDENTITY, NULL);
            return;
        }
        for (size_t b = 0; b < nb; b++)
            memcpy(out + b * no, bl, no * sizeof *out);
        score__sgemm(0, 1, nb, no, p->n[L - 1], 1.0f, w->h[L - 1] + r0 * p->n[L - 1],
                     p->n[L - 1], W(p, L), p->n[L - 1], 1.0f, out, no);
    }
}

/* The conditioning values must be finite (like the analytic kinds: SCORE_E_NUMERIC), and so
 * must a context; labels in 0 .. K (the callers validate them; checked again here, as a label
 * is an index). */
int score__mlp_check_inputs(const char *fn, const score_model *m, const score__model_ws *ws,
                            size_t n, const double *c)
{
    const mlp *p = impl_of(m);
    if (!score__all_finite_f64(n, c))
        return score__error(SCORE_E_NUMERIC, fn, "c contains NaN or infinity");
    if (p->m > 0) {
        if (ws->context == NULL)
            return score__error(SCORE_E_INVAL, fn,
                                "the model takes a context vector of %zu values per row "
                                "(context_dim) and none was given", p->m);
        if (!score__all_finite_f32((ws->context_per_row ? n : 1) * p->m, ws->context))
            return score__error(SCORE_E_NUMERIC, fn, "the context contains NaN or infinity");
    }
    for (size_t b = 0; p->K > 0 && ws->labels != NULL && b < (ws->labels_per_row ? n : 1); b++)
        if (ws->labels[b] < 0 || (size_t)ws->labels[b] > p->K)
            return score__error(SCORE_E_RANGE, fn, "label %ld of row %zu is not in [0, %zu]",
                                (long)ws->labels[b], b, p->K);
    return SCORE_OK;
}

/* Same architecture: widths, residual flags, activation, embedding, label classes, context
 * width, parameter count and the Fourier projection (fixed by the model's seed, not a
 * trainable parameter). Models that are not prepared yet are not compared. */
static int mlp_same_arch(const score_model *a, const score_model *b)
{
    score__mlp_info ia, ib;
    int same;
    if (score__mlp_info_get(a, &ia) != SCORE_OK || score__mlp_info_get(b, &ib) != SCORE_OK)
        return 1;
    same = ia.n_layers == ib.n_layers && ia.activation == ib.activation &&
           ia.embedding == ib.embedding && ia.embed_in == ib.embed_in &&
           ia.num_classes == ib.num_classes && ia.context_dim == ib.context_dim &&
           ia.n_params == ib.n_params;
    for (size_t l = 0; same && l <= ia.n_layers; l++)
        same = ia.width[l] == ib.width[l] && ia.residual[l] == ib.residual[l];
    if (same && ia.fourier != NULL && ib.fourier != NULL)
        same = memcmp(ia.fourier, ib.fourier, ia.embed_in / 2 * sizeof(float)) == 0;
    return same;
}

const score__model_ops score__mlp_ops = {
    .name = "mlp",
    .prepare = mlp_prepare,
    .forward = score__mlp_forward,
    .infer = score__mlp_infer,
    .backward = score__mlp_backward,
    .jvp = score__mlp_jvp,
    .vjp = score__mlp_vjp,
    .trace = score__mlp_trace,
    .trace_grad = score__mlp_trace_grad,
    .vjv_grad = score__mlp_vjv_grad,
    .trace_grad_fn = score__mlp_trace_grad_fn,
    .vjv_grad_fn = score__mlp_vjv_grad_fn,
    .ws_new = mlp_ws_new,
    .ws_free = mlp_ws_free,
    .param_count = mlp_param_count,
    .params_get = mlp_params_get,
    .params_set = mlp_params_set,
    .params_slot = mlp_params_slot,
    .clone_impl = mlp_clone,
    .destroy_impl = mlp_destroy,
    .on_param = mlp_on_param,
    .save = score__mlp_save,
    .load = score__mlp_load,
    .same_arch = mlp_same_arch,
};

/* The classifier kind (classifier.c): the same network with a head of NUM_CLASSES logits, no
 * label or context input. Only its own entry points compute with it (score_classifier_*()):
 * the generic compute calls, which read and write dim values per row, are not in its table. */
static int classifier_on_param(score_model *m, int param)
{
    if (param == SCORE_MODEL_PARAM_CONTEXT_DIM &&
        score__model_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM) != 0)
        return score__error(SCORE_E_UNSUPPORTED, "score_model_set_i64",
                            "a classifier takes no context vector");
    if (param == SCORE_MODEL_PARAM_NUM_CLASSES &&
        score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES) < 2)
        return score__error(SCORE_E_RANGE, "score_model_set_i64",
                            "a classifier needs at least 2 classes");
    return mlp_on_param(m, param);
}

const score__model_ops score__classifier_ops = {
    .name = "classifier",
    .prepare = mlp_prepare,
    .ws_new = mlp_ws_new,
    .ws_free = mlp_ws_free,
    .param_count = mlp_param_count,
    .params_get = mlp_params_get,
    .params_set = mlp_params_set,
    .params_slot = mlp_params_slot,
    .clone_impl = mlp_clone,
    .destroy_impl = mlp_destroy,
    .on_param = classifier_on_param,
    .save = score__classifier_save,
    .load = score__classifier_load,
    .same_arch = mlp_same_arch,
};

/* The energy kind (energy.c): the same network with one output E(x, c); its output as a score
 * model is -grad_x E, by reverse mode through the network. */
const score__model_ops score__energy_ops = {
    .name = "energy",
    .prepare = mlp_prepare,
    .forward = score__energy_forward,
    .infer = score__energy_infer,
    .backward = score__energy_backward,
    .jvp = score__energy_jvp,
    .vjp = score__energy_vjp,
    .trace = score__energy_trace,
    .energy = score__energy_energy,
    .trace_grad = score__energy_trace_grad,
    .vjv_grad = score__energy_vjv_grad,
    .ws_new = mlp_ws_new,
    .ws_free = mlp_ws_free,
    .param_count = mlp_param_count,
    .params_get = mlp_params_get,
    .params_set = mlp_params_set,
    .params_slot = mlp_params_slot,
    .clone_impl = mlp_clone,
    .destroy_impl = mlp_destroy,
    .on_param = mlp_on_param,
    .save = score__energy_save,
    .load = score__energy_load,
    .same_arch = mlp_same_arch,
};
