/* The MLP kind of score_model: forward, backward, forward-mode tangents (JVP, exact trace),
 * reverse-mode cotangents (VJP) and the parameter gradients of the trace and of v^T J v,
 * all batched as GEMMs with the batch (times the number of tangents) as the row count.
 *
 * Network (one row; see model.h for the flat parameter layout):
 *   h_0 = [x ; e(c)]                               n_0 = dim + E
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
 * Derivatives by forward-mode propagation: tangents T_l of every hidden
 * layer are (rows * k) x n_l matrices (row (b, p) = tangent p of batch row b), propagated by
 * one GEMM per layer; the reverse pass through primal and tangents includes the phi'' terms.
 * Batches are cut into blocks so that the tangent matrices stay within a memory budget. The
 * parameter gradients of the trace and of v^T J v keep each block's primal rows in the same
 * matrices as its tangent rows, so that one GEMM per product serves both, and take the output
 * cotangent either as an array or from a function of the block's outputs (the losses).
 */
#include <math.h>
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h"
#include "mlp-priv.h"
#include "rng/rng-priv.h"

#define MAXL (SCORE__MLP_MAX_HIDDEN + 2)
#define SCORE__TWO_PI 6.283185307179586476925
#define LN_10000 9.2103403719761827360719658

enum { RNG_STREAM_WEIGHT = 1, RNG_STREAM_BIAS = 2, RNG_STREAM_FOURIER = 3 };

typedef struct mlp {
    /* configuration (before prepare) */
    size_t n_custom;
    size_t custom[SCORE__MLP_MAX_HIDDEN];
    /* architecture (after prepare) */
    size_t L;          /* linear layers */
    size_t n[MAXL];    /* widths n[0..L] */
    int res[MAXL];     /* residual flags */
    size_t woff[MAXL]; /* offsets of W_l and b_l in theta (l = 1..L) */
    size_t boff[MAXL];
    size_t n_params;
    size_t E;          /* embedding inputs */
    size_t half;       /* number of frequencies (E / 2), 0 for NONE */
    size_t maxh;       /* largest hidden width */
    int act, emb;
    float *theta;
    float *fourier;    /* half values (Fourier kind) */
    double *freq;      /* half angular frequencies */
    size_t budget;     /* tangent workspace bound (bytes) */
} mlp;

/* The MLP's part of a workspace (score__model_ws): everything the compute operations write.
 * Laid out for the architecture in L, n (remade when a call brings a model of another one). */
typedef struct mlp_ws {
    size_t L, n[MAXL];
    /* primal workspace: rows of the cached batch */
    size_t pcap;
    float *parena;
    float *h0;
    float *z[MAXL], *h[MAXL], *d1[MAXL];
    float *dz, *dha, *dhb;
    /* tangent workspace */
    size_t tcap; /* floats */
    float *tarena;
    /* inference workspace (mlp_infer): one block of rows per thread, no cache */
    size_t icap; /* floats */
    float *iarena;
    /* threads of SCORE_MODEL_PARAM_THREADS > 1 (made on first use) */
    score__pool *pool;
    size_t pool_failed;
} mlp_ws;

static int check_c(const char *fn, size_t n, const double *c);

static mlp *impl_of(const score_model *m)
{
    return (mlp *)m->impl;
}

/* The impl is created lazily: by score_model_set_hidden_widths() or prepare. */
static mlp *impl_get(score_model *m)
{
    if (m->impl == NULL)
        m->impl = score__calloc(1, sizeof(mlp));
    return m->impl;
}

static float *W(const mlp *p, size_t l) { return p->theta + p->woff[l]; }
static float *B(const mlp *p, size_t l) { return p->theta + p->boff[l]; }

/* ======================================================================================== */
/* configuration, prepare, parameters, lifecycle                                            */

int score_model_set_hidden_widths(score_model *model, size_t n_layers, const size_t *widths)
{
    const score__param_desc *tab;
    size_t ntab, maxw = 0;
    mlp *p;
    if (model == NULL || widths == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model or widths is NULL");
    if (model->kind != SCORE_MODEL_MLP)
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
    score__free(w->tarena);
    score__free(w->iarena);
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
static mlp_ws *ws_of(const mlp *p, score__model_ws *ws)
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
static score__pool *pool_of(mlp_ws *w, int64_t threads)
{
    return score__pool_for(&w->pool, &w->pool_failed, (size_t)threads);
}

static void mlp_destroy(score_model *m)
{
    mlp *p = impl_of(m);
    if (p == NULL)
        return;
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

static void set_freq_from_fourier(mlp *p)
{
    for (size_t i = 0; i < p->half; i++)
        p->freq[i] = SCORE__TWO_PI * (double)p->fourier[i];
}

static int mlp_prepare(score_model *m)
{
    static const char fn[] = "score_model_prepare";
    mlp *p = impl_get(m);
    size_t dim = m->dim, nh, off = 0, maxin = 0;
    int64_t emb_dim;
    double *tmp;
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
    p->n[0] = dim + p->E;
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
    for (size_t l = 1; l <= p->L; l++) {
        size_t wsz;
        if (score__mul_size(p->n[l], p->n[l - 1], &wsz) != 0 || wsz > SIZE_MAX - off ||
            p->n[l] > SIZE_MAX - off - wsz)
            return score__error(SCORE_E_NOMEM, fn, "the network is too large");
        p->woff[l] = off;
        p->boff[l] = off + wsz;
        off += wsz + p->n[l];
        if (p->n[l - 1] > maxin)
            maxin = p->n[l - 1];
    }
    p->n_params = off;
    if (p->n[p->L] > maxin)
        maxin = p->n[p->L];
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
    score__free(tmp);
    if (p->half > 0) {
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
    }
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
    dst->impl = d;
    if ((s->theta && (d->theta = dup_f32(s->theta, s->n_params)) == NULL) ||
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
    if (m == NULL || m->kind != SCORE_MODEL_MLP || !m->prepared || (p = impl_of(m)) == NULL)
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

/* Primal cache for `rows` rows: h0, then per hidden layer z, h, phi', then three n x maxh
 * scratch matrices for the reverse pass. */
static int ensure_primal(const mlp *p, mlp_ws *w, size_t rows)
{
    size_t per = p->n[0] + 3 * p->maxh, total;
    float *a;
    if (rows <= w->pcap)
        return SCORE_OK;
    for (size_t l = 1; l < p->L; l++)
        per += 3 * p->n[l];
    if (score__mul_size(rows, per, &total) != 0 || (a = score__calloc(total, sizeof(float))) == NULL)
        return SCORE_E_NOMEM;
    score__free(w->parena);
    w->parena = a;
    w->pcap = rows;
    w->h0 = a;
    a += rows * p->n[0];
    for (size_t l = 1; l < p->L; l++) {
        size_t sz = rows * p->n[l];
        w->z[l] = a; a += sz;
        w->h[l] = a; a += sz;
        w->d1[l] = a; a += sz;
    }
    w->h[0] = w->h0;
    w->dz = a; a += rows * p->maxh;
    w->dha = a; a += rows * p->maxh;
    w->dhb = a;
    return SCORE_OK;
}

static int ensure_tangent(mlp_ws *w, size_t floats)
{
    float *a;
    if (floats <= w->tcap)
        return SCORE_OK;
    if ((a = score__calloc(floats, sizeof(float))) == NULL)
        return SCORE_E_NOMEM;
    score__free(w->tarena);
    w->tarena = a;
    w->tcap = floats;
    return SCORE_OK;
}

/* Rows per block so that k tangents per row of `per_tangent` floats each fit the budget. */
static size_t block_rows(const mlp *p, size_t n, size_t k, size_t per_tangent)
{
    size_t per_row, nb;
    if (score__mul_size(k, per_tangent, &per_row) != 0 ||
        score__mul_size(per_row, sizeof(float), &per_row) != 0 || per_row == 0)
        return 1;
    nb = p->budget / per_row;
    if (nb < 1)
        nb = 1;
    return nb < n ? nb : n;
}

/* Sizes the tangent arena for nb rows * k tangents * per_tangent floats + extra floats. */
static int ensure_tangent_rows(mlp_ws *w, size_t nb, size_t k, size_t per_tangent, size_t extra)
{
    size_t r, f;
    if (score__mul_size(nb, k, &r) != 0 || score__mul_size(r, per_tangent, &f) != 0 ||
        f > SIZE_MAX - extra)
        return SCORE_E_NOMEM;
    return ensure_tangent(w, f + extra);
}

/* ======================================================================================== */
/* primal pass                                                                              */

/* Input rows [x ; e(c)] into h0 (nb x n_0). Samplers evaluate a whole batch at one time, so a
 * row whose c equals the previous row's copies that row's features instead of recomputing
 * them (same values: the features are a function of c alone). */
static void embed_rows(const mlp *p, size_t dim, size_t nb, const float *x, const double *c,
                       float *h0)
{
    size_t n0 = p->n[0];
    for (size_t b = 0; b < nb; b++) {
        float *row = h0 + b * n0;
        float *e = row + dim;
        memcpy(row, x + b * dim, dim * sizeof *row);
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

/* Forward pass of nb rows into rows r0 .. r0 + nb - 1 of the primal cache (which must hold
 * them; x, c and out point at the block's first row): z, h and phi'. The
 * output layer runs only when out != NULL. */
static void forward_block(const mlp *p, const mlp_ws *w, size_t dim, size_t r0, size_t nb,
                          const float *x, const double *c, float *out)
{
    size_t L = p->L;
    embed_rows(p, dim, nb, x, c, w->h0 + r0 * p->n[0]);
    for (size_t l = 1; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        const float *hp = w->h[l - 1] + r0 * np;
        float *z = w->z[l] + r0 * nl;
        score__sgemm(0, 1, nb, nl, np, 1.0f, hp, np, W(p, l), np, 0.0f, z, nl);
        score__bias_act_forward_res(nb, nl, z, B(p, l), p->act, p->res[l] ? hp : NULL,
                                    w->h[l] + r0 * nl, w->d1[l] + r0 * nl, NULL);
    }
    if (out != NULL) {
        const float *bl = B(p, L);
        for (size_t b = 0; b < nb; b++)
            memcpy(out + b * dim, bl, dim * sizeof *out);
        score__sgemm(0, 1, nb, dim, p->n[L - 1], 1.0f, w->h[L - 1] + r0 * p->n[L - 1],
                     p->n[L - 1], W(p, L), p->n[L - 1], 1.0f, out, dim);
    }
}

/* Rows per block of mlp_infer: with a single-threaded BLAS the block's activations (h0 and two
 * hidden-width buffers) stay within about 1 MiB, i.e. in a core's L2 cache, between the GEMM
 * that writes them and the activation kernel that reads them. A multi-threaded BLAS needs
 * larger GEMMs to split them profitably (OpenBLAS on 2 threads runs a 900 x 128 x 128 product
 * no faster than on one), so blocks then grow to about 8 MiB. Blocks are of equal size (no
 * small remainder block). Rows are independent; as for any batch size (model.h), the last
 * bits of a row may depend on the number of rows in its GEMM. The blocks depend on n and the
 * BLAS's thread count only, never on SCORE_MODEL_PARAM_THREADS, which only decides how many
 * blocks run at the same time: results are bit-identical for any value of it. */
#define SCORE__MLP_INFER_BYTES ((size_t)1 << 20)
#define SCORE__MLP_INFER_BYTES_MT ((size_t)8 << 20)

static int same_c(size_t rows, const double *c)
{
    for (size_t b = 1; b < rows; b++)
        if (c[b] != c[0])
            return 0;
    return 1;
}

/* One block of mlp_infer: rows [b0, b0 + rows) through the workspace ws (nb * per floats). */
static void infer_block(const mlp *p, size_t dim, size_t nb, size_t b0, size_t rows,
                        const float *x, const double *c, float *out, float *ws)
{
    size_t L = p->L, n0 = p->n[0], n1 = p->n[1], l = 1;
    const float *bl = B(p, L);
    float *h0 = ws, *cur = h0 + nb * n0, *nxt = cur + nb * p->maxh;
    const float *prev = h0;
    if (!p->res[1] && nb * n0 >= p->E + n1 && same_c(rows, c + b0)) {
        /* Every row has the same c (every sampler step): the embedding's share of the first
         * layer is one vector, folded into the bias once per block, and the first GEMM only
         * multiplies the x columns (K = dim instead of dim + E). h0 is free: it holds the
         * features and the folded bias. */
        float *e = h0, *beff = h0 + p->E;
        const float *w1 = W(p, 1), *b1 = B(p, 1);
        if (p->emb == SCORE_EMBED_NONE)
            e[0] = (float)c[b0];
        else
            score__sincos_features(p->half, p->freq, c[b0], e, e + p->half);
        for (size_t j = 0; j < n1; j++) {
            const float *wr = w1 + j * n0 + dim;
            double acc = (double)b1[j];
            for (size_t i = 0; i < p->E; i++)
                acc += (double)wr[i] * (double)e[i];
            beff[j] = (float)acc;
        }
        for (size_t b = 0; b < rows; b++)
            memcpy(cur + b * n1, beff, n1 * sizeof *cur);
        score__sgemm(0, 1, rows, n1, dim, 1.0f, x + b0 * dim, dim, w1, n0, 1.0f, cur, n1);
        score__bias_act_forward_res(rows, n1, cur, NULL, p->act, NULL, cur, NULL, NULL);
        prev = cur;
        cur = nxt;
        l = 2;
    } else {
        embed_rows(p, dim, rows, x + b0 * dim, c + b0, h0);
    }
    for (; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        float *t;
        score__sgemm(0, 1, rows, nl, np, 1.0f, prev, np, W(p, l), np, 0.0f, cur, nl);
        score__bias_act_forward_res(rows, nl, cur, B(p, l), p->act, p->res[l] ? prev : NULL,
                                    cur, NULL, NULL);
        prev = cur;
        t = cur == h0 + nb * n0 ? nxt : h0 + nb * n0;
        cur = t;
    }
    for (size_t b = 0; b < rows; b++)
        memcpy(out + (b0 + b) * dim, bl, dim * sizeof *out);
    score__sgemm(0, 1, rows, dim, p->n[L - 1], 1.0f, prev, p->n[L - 1], W(p, L), p->n[L - 1],
                 1.0f, out + b0 * dim, dim);
}

/* Forward pass without the backward cache (score__model_infer_ws(): samplers, the sde), in
 * blocks of rows through a small workspace per thread: bounded memory whatever n, cache-resident
 * blocks, and with SCORE_MODEL_PARAM_THREADS > 1 several blocks at a time (the workspace's
 * thread pool; thread t uses scratch slot t). */
typedef struct infer_job {
    const mlp *p;
    size_t dim, n, nb, per;
    const float *x;
    const double *c;
    float *out, *arena;
} infer_job;

static void infer_part(void *ctx, size_t i, size_t thread)
{
    const infer_job *j = ctx;
    size_t b0 = i * j->nb;
    infer_block(j->p, j->dim, j->nb, b0, j->n - b0 < j->nb ? j->n - b0 : j->nb, j->x, j->c,
                j->out, j->arena + thread * j->nb * j->per);
}

static int mlp_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    const mlp *p = impl_of(m);
    mlp_ws *w = ws_of(p, ws);
    size_t dim = m->dim, per = p->n[0] + 2 * p->maxh;
    size_t nb, nblocks, nslots, need;
    score__pool *pool;
    infer_job job;
    if (check_c(fn, n, c) != SCORE_OK)
        return SCORE_E_NUMERIC;
    nb = (score__blas_threads() > 1 ? SCORE__MLP_INFER_BYTES_MT : SCORE__MLP_INFER_BYTES) /
         (per * sizeof(float));
    nb = nb < 16 ? 16 : nb;
    nblocks = (n + nb - 1) / nb;
    nb = (n + nblocks - 1) / nblocks;
    pool = nblocks > 1 ? pool_of(w, score__model_ws_threads(m, ws)) : NULL;
    nslots = score__pool_threads(pool);
    nslots = nslots < nblocks ? nslots : nblocks;
    need = nslots * nb * per;
    if (need > w->icap) {
        float *a = score__calloc(need, sizeof(float));
        if (a == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
        score__free(w->iarena);
        w->iarena = a;
        w->icap = need;
    }
    job.p = p;
    job.dim = dim;
    job.n = n;
    job.nb = nb;
    job.per = per;
    job.x = x;
    job.c = c;
    job.out = out;
    job.arena = w->iarena;
    score__pool_for_each(pool, nblocks, infer_part, &job);
    return SCORE_OK;
}

/* The training path (score_model_forward / score_model_backward with the cache) works on a
 * fixed partition that depends on n and the widths only, never on SCORE_MODEL_PARAM_THREADS:
 * rows in blocks of about SCORE__MLP_TRAIN_ROWS (equal sizes; small blocks also keep a block's
 * activations in L2 between its GEMM and its activation kernel), and weight gradients in about
 * SCORE__MLP_GRAD_CHUNKS chunks of output units (at least SCORE__MLP_GRAD_ROWS; each chunk one
 * GEMM over all rows, bias sums in double in row order; every chunk re-packs the layer input,
 * so fewer chunks cost less: a 512-wide layer in 8 chunks of 64 spent ~10% of a step packing). The threads run the blocks / chunks of a phase at the same time, so results are
 * bit-identical for any thread count. Batches of at most SCORE__MLP_TRAIN_ROWS rows are one
 * block. */
#define SCORE__MLP_TRAIN_ROWS 128
#define SCORE__MLP_GRAD_ROWS 64
#define SCORE__MLP_GRAD_CHUNKS 4
#define SCORE__MLP_PAR_FLOPS 4e7

typedef struct train_part {
    size_t nblk, nb;  /* row blocks of nb rows (the last may be shorter) */
    int threads;      /* threads for the phases (1 = serial) */
} train_part;

static train_part train_partition(const score_model *m, const score__model_ws *ws, size_t n)
{
    train_part tp;
    tp.nblk = (n + SCORE__MLP_TRAIN_ROWS - 1) / SCORE__MLP_TRAIN_ROWS;
    tp.nblk = tp.nblk ? tp.nblk : 1;
    tp.nb = (n + tp.nblk - 1) / tp.nblk;
    /* no phase has more than 64 pieces of work worth a thread of its own */
    tp.threads = score__par_threads(score__model_ws_threads(m, ws), 64);
    {
        /* Threads only pay off when each has enough work between the synchronisation points
         * (about 10 per backward; each costs microseconds when the workers spin, tens of
         * microseconds when they sleep): below SCORE__MLP_PAR_FLOPS of forward work the
         * phases run on the calling thread. Results are the same either way. */
        const mlp *p = impl_of(m);
        double flops = 0.0;
        for (size_t l = 1; l <= p->L; l++)
            flops += 2.0 * (double)n * (double)p->n[l - 1] * (double)p->n[l];
        if (flops < SCORE__MLP_PAR_FLOPS)
            tp.threads = 1;
    }
    return tp;
}

/* One phase of the training path: part i of a loop over row blocks or gradient chunks. */
typedef struct train_job {
    const mlp *p;
    const mlp_ws *w;
    size_t dim, n;
    train_part tp;
    const float *x, *gout;
    const double *c;
    float *out, *grad, *gx;
    /* the phase */
    size_t l;
    const float *A;            /* accum_grad: the cotangent rows of layer l */
    float *dh, *dhn;           /* hidden-layer cotangents (current, next) */
} train_job;

static void block_range(const train_job *j, size_t i, size_t *r0, size_t *rows)
{
    *r0 = i * j->tp.nb;
    *rows = j->n - *r0 < j->tp.nb ? j->n - *r0 : j->tp.nb;
}

static void forward_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    size_t r0, rows;
    (void)thread;
    block_range(j, i, &r0, &rows);
    forward_block(j->p, j->w, j->dim, r0, rows, j->x + r0 * j->dim, j->c + r0,
                  j->out ? j->out + r0 * j->dim : NULL);
}

static int mlp_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                       const double *c, float *out)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = ws_of(p, ws);
    train_job j;
    memset(&j, 0, sizeof j);
    j.tp = train_partition(m, ws, n);
    if (check_c("score_model_forward", n, c) != SCORE_OK)
        return SCORE_E_NUMERIC;
    if (ensure_primal(p, w, n) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, "score_model_forward", "workspace allocation failed");
    j.p = p;
    j.w = w;
    j.dim = m->dim;
    j.n = n;
    j.x = x;
    j.c = c;
    j.out = out;
    score__pool_for_each(j.tp.threads > 1 ? pool_of(w, j.tp.threads) : NULL, j.tp.nblk,
                         forward_part, &j);
    return SCORE_OK;
}

/* Rows j0 .. j1 - 1 of dW_l += A^T h_{l-1} and of db_l += column sums of A, over all n rows. */
static void accum_grad_chunk(const mlp *p, size_t l, size_t n, size_t j0, size_t j1,
                             const float *A, const float *hprev, float *grad)
{
    size_t nl = p->n[l], np = p->n[l - 1];
    score__sgemm(1, 0, j1 - j0, np, n, 1.0f, A + j0, nl, hprev, np, 1.0f,
                 grad + p->woff[l] + j0 * np, np);
    score__col_sum_acc_ld(n, j1 - j0, nl, A + j0, grad + p->boff[l] + j0);
}

static size_t grad_chunk_rows(size_t nl)
{
    size_t r = (nl + SCORE__MLP_GRAD_CHUNKS - 1) / SCORE__MLP_GRAD_CHUNKS;
    r = (r + 15) / 16 * 16;
    return r > SCORE__MLP_GRAD_ROWS ? r : SCORE__MLP_GRAD_ROWS;
}

static void grad_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    size_t nl = j->p->n[j->l], cr = grad_chunk_rows(nl), j0 = i * cr;
    size_t j1 = j0 + cr < nl ? j0 + cr : nl;
    (void)thread;
    accum_grad_chunk(j->p, j->l, j->n, j0, j1, j->A, j->w->h[j->l - 1], j->grad);
}

/* All weight-gradient chunks of layer l from the cotangents A. */
static void accum_grad_phase(score__pool *pool, train_job *j, size_t l, const float *A)
{
    size_t nl = j->p->n[l], cr = grad_chunk_rows(nl);
    j->l = l;
    j->A = A;
    score__pool_for_each(pool, (nl + cr - 1) / cr, grad_part, j);
}

/* dh_{L-1} = gout W_L, per row block. */
static void out_cotangent_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    const mlp *p = j->p;
    size_t r0, rows, L = p->L;
    (void)thread;
    block_range(j, i, &r0, &rows);
    score__sgemm(0, 0, rows, p->n[L - 1], j->dim, 1.0f, j->gout + r0 * j->dim, j->dim, W(p, L),
                 p->n[L - 1], 0.0f, j->dh + r0 * p->n[L - 1], p->n[L - 1]);
}

/* dz_l = phi'(z_l) dh_l, per row block. */
static void dz_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    size_t r0, rows, nl = j->p->n[j->l];
    (void)thread;
    block_range(j, i, &r0, &rows);
    score__mul(rows * nl, j->dh + r0 * nl, j->w->d1[j->l] + r0 * nl, j->w->dz + r0 * nl);
}

/* dh_{l-1} from dz_l (or gx at the first layer), per row block. */
static void dh_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    const mlp *p = j->p;
    size_t r0, rows, l = j->l, nl = p->n[l], np = p->n[l - 1], dim = j->dim;
    const float *dz;
    (void)thread;
    block_range(j, i, &r0, &rows);
    dz = j->w->dz + r0 * nl;
    if (l > 1 && p->res[l]) /* residual block: dh_{l-1} = dh_l + dz W_l (in place) */
        score__sgemm(0, 0, rows, np, nl, 1.0f, dz, nl, W(p, l), np, 1.0f, j->dh + r0 * np, np);
    else if (l > 1)
        score__sgemm(0, 0, rows, np, nl, 1.0f, dz, nl, W(p, l), np, 0.0f, j->dhn + r0 * np, np);
    else /* only the x part of the first layer's input */
        score__sgemm(0, 0, rows, dim, nl, 1.0f, dz, nl, W(p, 1), np, 0.0f, j->gx + r0 * dim, dim);
}

/* Back-propagation through the cached forward of n rows, phase by phase (row blocks, then
 * weight-gradient chunks), each phase on the workspace's threads when it has several. */
static int mlp_backward(const score_model *m, score__model_ws *ws, size_t n, const float *gout,
                        float *grad, float *gx)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = ws_of(p, ws);
    size_t L = p->L;
    score__pool *pool;
    train_job j;
    memset(&j, 0, sizeof j);
    j.tp = train_partition(m, ws, n);
    pool = j.tp.threads > 1 ? pool_of(w, j.tp.threads) : NULL;
    j.p = p;
    j.w = w;
    j.dim = m->dim;
    j.n = n;
    j.gout = gout;
    j.grad = grad;
    j.gx = gx;
    j.dh = w->dha;
    j.dhn = w->dhb;
    if (grad)
        accum_grad_phase(pool, &j, L, gout);
    score__pool_for_each(pool, j.tp.nblk, out_cotangent_part, &j);
    for (size_t l = L - 1; l >= 1; l--) {
        j.l = l;
        score__pool_for_each(pool, j.tp.nblk, dz_part, &j);
        if (grad)
            accum_grad_phase(pool, &j, l, w->dz);
        if (l == 1 && gx == NULL)
            break;
        j.l = l;
        score__pool_for_each(pool, j.tp.nblk, dh_part, &j);
        if (l > 1 && !p->res[l]) {
            float *t = j.dh;
            j.dh = j.dhn;
            j.dhn = t;
        }
    }
    return SCORE_OK;
}

/* ======================================================================================== */
/* tangents                                                                                 */

/* out[(b, q), :] = d[b, :] * in[(b, q), :] for nb rows of k tangents of width w (out may be in). */
static void bcast_mul(size_t nb, size_t k, size_t w, const float *d, const float *in, float *out)
{
    for (size_t b = 0; b < nb; b++)
        for (size_t q = 0; q < k; q++) {
            size_t r = (b * k + q) * w;
            score__mul(w, in + r, d + b * w, out + r);
        }
}

/* out[(b, q), :] = d[b, :] * in[(b, q), :] + add[(b, q), :] (out may be in, not add). */
static void bcast_mul_add(size_t nb, size_t k, size_t w, const float *d, const float *in,
                          const float *add, float *out)
{
    for (size_t b = 0; b < nb; b++)
        for (size_t q = 0; q < k; q++) {
            size_t r = (b * k + q) * w;
            score__mul_add(w, in + r, d + b * w, add + r, out + r);
        }
}

/* W_1 restricted to its x columns, transposed: wt[j, i] = W_1[i, j] (dim x n_1). */
static void w1x_transposed(const mlp *p, size_t dim, float *wt)
{
    size_t n1 = p->n[1], n0 = p->n[0];
    const float *w = W(p, 1);
    for (size_t i = 0; i < n1; i++)
        for (size_t j = 0; j < dim; j++)
            wt[j * n1 + i] = w[i * n0 + j];
}

/* Forward tangents of nb cached rows, k per row (R = nb * k tangent rows).
 * V: R x dim probes, or NULL for the dim unit vectors (k == dim; wt = W_1x^T).
 * Storing mode (T and U arrays given, indexed 1..L-1): T_l and U_l are kept (U_1 only for
 * probes). Otherwise A and B are ping-pong buffers of R x maxh floats.
 * Returns T_{L-1}. */
static float *tangent_forward(const mlp *p, const mlp_ws *w, size_t dim, size_t nb, size_t k,
                              const float *V, const float *wt, float **T, float **U, float *A,
                              float *Bf)
{
    size_t R = nb * k, L = p->L, n1 = p->n[1], n0 = p->n[0];
    float *cur = T ? T[1] : A;
    if (V == NULL) {
        for (size_t b = 0; b < nb; b++)
            for (size_t j = 0; j < k; j++)
                score__mul(n1, w->d1[1] + b * n1, wt + j * n1, cur + (b * k + j) * n1);
    } else {
        float *u1 = T ? U[1] : cur;
        score__sgemm(0, 1, R, n1, dim, 1.0f, V, dim, W(p, 1), n0, 0.0f, u1, n1);
        bcast_mul(nb, k, n1, w->d1[1], u1, cur);
    }
    for (size_t l = 2; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        float *u = T ? U[l] : (cur == A ? Bf : A);
        float *next = T ? T[l] : u;
        score__sgemm(0, 1, R, nl, np, 1.0f, cur, np, W(p, l), np, 0.0f, u, nl);
        if (p->res[l])
            bcast_mul_add(nb, k, nl, w->d1[l], u, cur, next); /* next = phi' u + cur */
        else
            bcast_mul(nb, k, nl, w->d1[l], u, next);
        cur = next;
    }
    return cur;
}

/* The conditioning values must be finite (like the analytic kinds: SCORE_E_NUMERIC). */
static int check_c(const char *fn, size_t n, const double *c)
{
    if (!score__all_finite_f64(n, c))
        return score__error(SCORE_E_NUMERIC, fn, "c contains NaN or infinity");
    return SCORE_OK;
}

static int nomem(const char *fn)
{
    return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
}

static int mlp_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, size_t k, const float *v, float *out, float *fx)
{
    static const char fn[] = "score_model_jvp";
    const mlp *p = impl_of(m);
    mlp_ws *w = ws_of(p, ws);
    size_t dim = m->dim, L = p->L, nb = block_rows(p, n, k, 2 * p->maxh);
    if (check_c(fn, n, c) != SCORE_OK)
        return SCORE_E_NUMERIC;
    ws->cached_n = 0; /* the primal rows are reused below */
    if (ensure_primal(p, w, nb) != SCORE_OK ||
        ensure_tangent_rows(w, nb, k, 2 * p->maxh, 0) != SCORE_OK)
        return nomem(fn);
    for (size_t b0 = 0; b0 < n; b0 += nb) {
        size_t rows = n - b0 < nb ? n - b0 : nb, R = rows * k;
        float *A = w->tarena, *Bf = w->tarena + nb * k * p->maxh, *t;
        forward_block(p, w, dim, 0, rows, x + b0 * dim, c + b0, fx ? fx + b0 * dim : NULL);
        t = tangent_forward(p, w, dim, rows, k, v + b0 * k * dim, NULL, NULL, NULL, A, Bf);
        score__sgemm(0, 1, R, dim, p->n[L - 1], 1.0f, t, p->n[L - 1], W(p, L), p->n[L - 1], 0.0f,
                     out + b0 * k * dim, dim);
    }
    return SCORE_OK;
}

static int mlp_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, size_t k, const float *u, float *out)
{
    static const char fn[] = "score_model_vjp";
    const mlp *p = impl_of(m);
    mlp_ws *w = ws_of(p, ws);
    size_t dim = m->dim, L = p->L, nb = block_rows(p, n, k, 3 * p->maxh);
    if (check_c(fn, n, c) != SCORE_OK)
        return SCORE_E_NUMERIC;
    ws->cached_n = 0; /* the primal rows are reused below */
    if (ensure_primal(p, w, nb) != SCORE_OK ||
        ensure_tangent_rows(w, nb, k, 3 * p->maxh, 0) != SCORE_OK)
        return nomem(fn);
    for (size_t b0 = 0; b0 < n; b0 += nb) {
        size_t rows = n - b0 < nb ? n - b0 : nb, R = rows * k, stride = nb * k * p->maxh;
        float *G = w->tarena, *GU = G + stride, *Gn = GU + stride;
        forward_block(p, w, dim, 0, rows, x + b0 * dim, c + b0, NULL);
        score__sgemm(0, 0, R, p->n[L - 1], dim, 1.0f, u + b0 * k * dim, dim, W(p, L),
                     p->n[L - 1], 0.0f, G, p->n[L - 1]);
        for (size_t l = L - 1; l >= 1; l--) {
            size_t nl = p->n[l], np = p->n[l - 1];
            bcast_mul(rows, k, nl, w->d1[l], G, GU);
            if (l > 1 && p->res[l]) {
                score__sgemm(0, 0, R, np, nl, 1.0f, GU, nl, W(p, l), np, 1.0f, G, np);
            } else if (l > 1) {
                float *t;
                score__sgemm(0, 0, R, np, nl, 1.0f, GU, nl, W(p, l), np, 0.0f, Gn, np);
                t = G; G = Gn; Gn = t;
            } else {
                score__sgemm(0, 0, R, dim, nl, 1.0f, GU, nl, W(p, 1), np, 0.0f,
                             out + b0 * k * dim, dim);
            }
        }
    }
    return SCORE_OK;
}

static int mlp_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, double *tr, float *fx)
{
    static const char fn[] = "score_model_trace";
    const mlp *p = impl_of(m);
    mlp_ws *w = ws_of(p, ws);
    size_t dim = m->dim, L = p->L, nL1 = p->n[L - 1];
    size_t nb = block_rows(p, n, dim, 2 * p->maxh), extra = dim * p->n[1];
    float *wt;
    if (check_c(fn, n, c) != SCORE_OK)
        return SCORE_E_NUMERIC;
    ws->cached_n = 0; /* the primal rows are reused below */
    if (ensure_primal(p, w, nb) != SCORE_OK ||
        ensure_tangent_rows(w, nb, dim, 2 * p->maxh, extra) != SCORE_OK)
        return nomem(fn);
    wt = w->tarena + nb * dim * 2 * p->maxh;
    w1x_transposed(p, dim, wt);
    for (size_t b0 = 0; b0 < n; b0 += nb) {
        size_t rows = n - b0 < nb ? n - b0 : nb;
        float *A = w->tarena, *Bf = w->tarena + nb * dim * p->maxh, *t;
        const float *wl = W(p, L);
        forward_block(p, w, dim, 0, rows, x + b0 * dim, c + b0, fx ? fx + b0 * dim : NULL);
        t = tangent_forward(p, w, dim, rows, dim, NULL, wt, NULL, NULL, A, Bf);
        /* tr_b = sum_j W_L[j, :] . T[(b, j), :] */
        for (size_t b = 0; b < rows; b++) {
            double s = 0.0;
            for (size_t j = 0; j < dim; j++) {
                const float *tj = t + (b * dim + j) * nL1, *wj = wl + j * nL1;
                for (size_t i = 0; i < nL1; i++)
                    s += (double)wj[i] * (double)tj[i];
            }
            tr[b0 + b] = s;
        }
    }
    return SCORE_OK;
}

/* ---- parameter gradients of the trace and of v^T J v -------------------------------------- */

/* Where tangent_grad's output cotangent comes from: an array (score_model_trace_grad /
 * score_model_vjv_grad; NULL = 0) or a function of each block's outputs (the losses, through
 * score__model_trace_grad_fn / score__model_vjv_grad_fn). */
typedef struct gout_src {
    const float *arr;
    score__gout_fn fn;
    void *ctx;
} gout_src;

/* Workspace of one block of tangent_grad: nb rows, R = nb * k tangent rows, S = R + nb stacked
 * rows. Each hidden layer keeps its tangent rows and its primal rows in one matrix (the R
 * tangent rows of the block first, its primal rows right after them), so that every product
 * of a layer's forward and reverse passes is a single GEMM over both: X_l = [T_l ; h_l],
 * Z_l = [U_l ; z_l] (U_l = W_l T_{l-1}, the pre-activation tangents), and in the reverse pass
 * Gs = [G_l ; dh_l] (cotangents of T_l and h_l) and D = [GU_l ; dz_l]. */
typedef struct tg_ws {
    float *X[MAXL], *Z[MAXL]; /* S x n_l; Z_1 with unit tangents: z_1 only (nb x n_1) */
    float *d1[MAXL], *d2[MAXL]; /* nb x n_l: phi', phi'' */
    float *h0;                /* nb x n_0 */
    float *Gs, *Gs2, *D;      /* S x maxh (Gs2 only with non-residual layers after the first) */
    float *Y;                 /* probes: S x dim [V ; gout]; unit tangents: nb x dim gout */
    float *F;                 /* nb x dim outputs when the caller's fx is NULL */
    float *wt;                /* unit tangents: W_1x^T (dim x n_1) and dW_1x partial sums */
    float *sgu;
    float *trow;              /* unit tangents: one row of T_{L-1} (n_{L-1}) */
} tg_ws;

/* With unit tangents the last hidden layer's tangents T_{L-1} are needed only by the output
 * step (trace and dW_L), which forms them row by row from U_{L-1} (and T_{L-2}) instead of
 * storing them: X_{L-1} then holds h_{L-1} only. Not for a single hidden layer (T_1 = phi' W_1x
 * needs no product). */
static int fold_last(const mlp *p, int unit)
{
    return unit && p->L >= 3;
}

/* a * b, with *ovf set on overflow. */
static size_t mul_ovf(size_t a, size_t b, int *ovf)
{
    size_t r;
    if (score__mul_size(a, b, &r) != 0) {
        *ovf = 1;
        return 0;
    }
    return r;
}

/* Floats of the tangent_grad workspace for blocks of nb rows; with base, also sets the
 * pointers of *ws into base. */
static size_t tg_layout(const mlp *p, size_t dim, size_t nb, size_t k, int unit, float *base,
                        tg_ws *ws, int *ovf)
{
    size_t S = mul_ovf(nb, k + 1, ovf), off = 0;
    int gs2 = 0;
#define TG_TAKE(field, count)                                                                      \
    do {                                                                                           \
        size_t cnt_ = (count);                                                                     \
        if (base != NULL)                                                                          \
            ws->field = base + off;                                                                \
        if (cnt_ > SIZE_MAX / 2 - off)                                                             \
            *ovf = 1;                                                                              \
        else                                                                                       \
            off += cnt_;                                                                           \
    } while (0)
    for (size_t l = 1; l < p->L; l++) {
        size_t nl = p->n[l];
        TG_TAKE(X[l], mul_ovf(l == p->L - 1 && fold_last(p, unit) ? nb : S, nl, ovf));
        TG_TAKE(Z[l], mul_ovf(l == 1 && unit ? nb : S, nl, ovf));
        TG_TAKE(d1[l], mul_ovf(nb, nl, ovf));
        TG_TAKE(d2[l], mul_ovf(nb, nl, ovf));
        if (l >= 2 && !p->res[l])
            gs2 = 1;
    }
    TG_TAKE(h0, mul_ovf(nb, p->n[0], ovf));
    TG_TAKE(Gs, mul_ovf(S, p->maxh, ovf));
    TG_TAKE(Gs2, gs2 ? mul_ovf(S, p->maxh, ovf) : 0);
    TG_TAKE(D, mul_ovf(S, p->maxh, ovf));
    TG_TAKE(Y, mul_ovf(unit ? nb : S, dim, ovf));
    TG_TAKE(F, mul_ovf(nb, dim, ovf));
    TG_TAKE(wt, unit ? mul_ovf(dim, p->n[1], ovf) : 0);
    TG_TAKE(sgu, unit ? mul_ovf(dim, p->n[1], ovf) : 0);
    TG_TAKE(trow, unit ? p->n[p->L - 1] : 0);
#undef TG_TAKE
    return off;
}

/* Target size of one stacked (rows * (k + 1)) x maxh matrix of tangent_grad: the elementwise
 * passes between the GEMMs (and the GEMMs' packing of their operands) then find a layer's
 * matrices in a core's L2 cache, while the GEMMs keep a few hundred rows (OpenBLAS runs
 * 256..1024 x 256 x 256 products at full speed on one thread). Measured on the Hyvärinen step
 * with d = 64, width 256: blocks of 7 rows (455 stacked rows) were ~15% faster than blocks of
 * 53 (32 MiB). The blocks do not depend on the BLAS's thread count. */
#define SCORE__MLP_TANGENT_BLOCK ((size_t)512 << 10)

/* Shared engine of trace_grad (V == NULL: unit tangents, k = dim, w per row) and vjv_grad
 * (probes V, w per tangent row or NULL = 1). Accumulates the parameter gradient of
 * sum_r w_r v_r^T J v_r + sum_b gout_b . F_b; writes the values (tr or vjv) and fx.
 * Per block: one forward pass of the stacked primal and tangent rows (the outputs F and, from
 * them, gout), then one reverse pass through both, including the phi'' terms. */
static int tangent_grad(const score_model *m, score__model_ws *mws, const char *fn, size_t n,
                        const float *x, const double *c, size_t k, const float *V,
                        const double *w, const gout_src *gsrc, float *grad, double *val,
                        float *fx)
{
    const mlp *p = impl_of(m);
    mlp_ws *kw = ws_of(p, mws);
    const int unit = V == NULL;
    const int need_f = fx != NULL || gsrc->fn != NULL, fold = fold_last(p, unit);
    size_t dim = m->dim, L = p->L, nL1 = p->n[L - 1], n1 = p->n[1], n0 = p->n[0];
    size_t fixed, per_row, nb, nb_cache, nblocks, total, avail = p->budget / sizeof(float);
    int ovf = 0;
    tg_ws ws;
    const float *wl = W(p, L);
    if (check_c(fn, n, c) != SCORE_OK)
        return SCORE_E_NUMERIC;
    /* Rows per block: within the tangent budget, and stacked matrices of about
     * SCORE__MLP_TANGENT_BLOCK bytes (at least one row); then blocks of equal size. */
    fixed = tg_layout(p, dim, 0, k, unit, NULL, NULL, &ovf);
    per_row = tg_layout(p, dim, 1, k, unit, NULL, NULL, &ovf) - fixed;
    nb = avail > fixed && per_row > 0 ? (avail - fixed) / per_row : 1;
    nb_cache = SCORE__MLP_TANGENT_BLOCK / (sizeof(float) * p->maxh) / (k + 1);
    nb = nb_cache < nb ? nb_cache : nb;
    nb = nb < 1 ? 1 : nb > n ? n : nb;
    nblocks = (n + nb - 1) / nb;
    nb = (n + nblocks - 1) / nblocks;
    total = tg_layout(p, dim, nb, k, unit, NULL, NULL, &ovf);
    if (ovf || ensure_tangent(kw, total) != SCORE_OK)
        return nomem(fn);
    (void)tg_layout(p, dim, nb, k, unit, kw->tarena, &ws, &ovf);
    if (unit) {
        w1x_transposed(p, dim, ws.wt);
        memset(ws.sgu, 0, dim * n1 * sizeof *ws.sgu);
    }

    for (size_t b0 = 0; b0 < n; b0 += nb) {
        size_t rows = n - b0 < nb ? n - b0 : nb, R = rows * k, S = R + rows;
        const float *Vb = unit ? NULL : V + b0 * k * dim;
        float *T[MAXL], *H[MAXL], *U[MAXL], *Zp[MAXL];
        float *Fb = fx ? fx + b0 * dim : ws.F, *gout = unit ? ws.Y : ws.Y + R * dim;
        float *G = ws.Gs, *Gn = ws.Gs2;
        for (size_t l = 1; l < L; l++) {
            T[l] = ws.X[l];
            H[l] = l == L - 1 && fold ? ws.X[l] : ws.X[l] + R * p->n[l];
            U[l] = ws.Z[l];
            Zp[l] = l == 1 && unit ? ws.Z[1] : ws.Z[l] + R * p->n[l];
        }

        /* ---- forward: layer 1 (primal from [x ; e(c)], tangents from the x columns) */
        embed_rows(p, dim, rows, x + b0 * dim, c + b0, ws.h0);
        score__sgemm(0, 1, rows, n1, n0, 1.0f, ws.h0, n0, W(p, 1), n0, 0.0f, Zp[1], n1);
        score__bias_act_forward_res(rows, n1, Zp[1], B(p, 1), p->act, NULL, H[1], ws.d1[1],
                                    ws.d2[1]);
        if (unit) {
            for (size_t b = 0; b < rows; b++)
                for (size_t j = 0; j < k; j++)
                    score__mul(n1, ws.d1[1] + b * n1, ws.wt + j * n1, T[1] + (b * k + j) * n1);
        } else {
            score__sgemm(0, 1, R, n1, dim, 1.0f, Vb, dim, W(p, 1), n0, 0.0f, U[1], n1);
            bcast_mul(rows, k, n1, ws.d1[1], U[1], T[1]);
        }
        /* ---- hidden layers 2 .. L-1: one GEMM over [T ; h] */
        for (size_t l = 2; l < L; l++) {
            size_t nl = p->n[l], np = p->n[l - 1];
            score__sgemm(0, 1, S, nl, np, 1.0f, ws.X[l - 1], np, W(p, l), np, 0.0f, ws.Z[l], nl);
            score__bias_act_forward_res(rows, nl, Zp[l], B(p, l), p->act,
                                        p->res[l] ? H[l - 1] : NULL, H[l], ws.d1[l], ws.d2[l]);
            if (l == L - 1 && fold)
                continue;
            if (p->res[l])
                bcast_mul_add(rows, k, nl, ws.d1[l], U[l], T[l - 1], T[l]); /* phi' U + T */
            else
                bcast_mul(rows, k, nl, ws.d1[l], U[l], T[l]);
        }
        /* ---- outputs and their cotangent */
        if (need_f) {
            const float *bl = B(p, L);
            for (size_t b = 0; b < rows; b++)
                memcpy(Fb + b * dim, bl, dim * sizeof *Fb);
            score__sgemm(0, 1, rows, dim, nL1, 1.0f, H[L - 1], nL1, wl, nL1, 1.0f, Fb, dim);
        }
        if (gsrc->fn != NULL)
            gsrc->fn(gsrc->ctx, b0, rows, Fb, gout);
        else if (gsrc->arr != NULL)
            memcpy(gout, gsrc->arr + b0 * dim, rows * dim * sizeof *gout);
        else
            memset(gout, 0, rows * dim * sizeof *gout);

        /* ---- reverse: output layer. G = [G_{L-1} ; dh_{L-1}] */
        if (unit) {
            /* G[(b, j), :] = w_b W_L[j, :]; tr_b = sum_j W_L[j, :] . T[(b, j), :];
             * dW_L[j, :] += w_b T[(b, j), :], with T[(b, j), :] formed here when folded */
            for (size_t b = 0; b < rows; b++) {
                float wb = (float)w[b0 + b];
                double tr = 0.0;
                for (size_t j = 0; j < dim; j++) {
                    size_t r = (b * dim + j) * nL1;
                    float *gj = G + r;
                    const float *wj = wl + j * nL1, *tj = ws.trow;
                    if (!fold)
                        tj = T[L - 1] + r;
                    else if (p->res[L - 1])
                        score__mul_add(nL1, U[L - 1] + r, ws.d1[L - 1] + b * nL1, T[L - 2] + r,
                                       ws.trow);
                    else
                        score__mul(nL1, U[L - 1] + r, ws.d1[L - 1] + b * nL1, ws.trow);
                    for (size_t i = 0; i < nL1; i++)
                        gj[i] = wb * wj[i];
                    score__saxpy(nL1, wb, tj, grad + p->woff[L] + j * nL1);
                    if (val) {
                        double dj;
                        score__row_dot_lanes(1, nL1, tj, wj, &dj);
                        tr += dj;
                    }
                }
                if (val)
                    val[b0 + b] = tr;
            }
            score__sgemm(0, 0, rows, nL1, dim, 1.0f, gout, dim, wl, nL1, 0.0f, G + R * nL1, nL1);
            score__sgemm(1, 0, dim, nL1, rows, 1.0f, gout, dim, H[L - 1], nL1, 1.0f,
                         grad + p->woff[L], nL1);
        } else {
            /* Y = [V ; gout]: G = Y W_L (tangent rows P = V W_L, value = T . P), then the
             * weights on the tangent rows of G and Y; dW_L += Y^T [T ; h]. */
            memcpy(ws.Y, Vb, R * dim * sizeof *ws.Y);
            score__sgemm(0, 0, S, nL1, dim, 1.0f, ws.Y, dim, wl, nL1, 0.0f, G, nL1);
            if (val)
                score__row_dot_lanes(R, nL1, T[L - 1], G, val + b0 * k);
            if (w) {
                for (size_t r = 0; r < R; r++) {
                    float wr = (float)w[b0 * k + r];
                    for (size_t i = 0; i < nL1; i++)
                        G[r * nL1 + i] *= wr;
                    for (size_t j = 0; j < dim; j++)
                        ws.Y[r * dim + j] *= wr;
                }
            }
            score__sgemm(1, 0, dim, nL1, S, 1.0f, ws.Y, dim, ws.X[L - 1], nL1, 1.0f,
                         grad + p->woff[L], nL1);
        }
        score__col_sum_acc(rows, dim, gout, grad + p->boff[L]);

        /* ---- reverse: hidden layers. D = [GU ; dz] (GU = phi' G, dz = phi' dh + phi'' S with
         * S = sum_q U_q G_q); dW_l += D^T [T_{l-1} ; h_{l-1}]; [G ; dh] <- (res) + D W_l */
        for (size_t l = L - 1; l >= 1; l--) {
            size_t nl = p->n[l], np = p->n[l - 1];
            float *dz = ws.D + R * nl;
            if (l == 1 && unit)
                score__tangent_reverse(rows, k, nl, G, ws.wt, 0, ws.d1[1], ws.d2[1], G + R * nl,
                                       ws.D, dz);
            else
                score__tangent_reverse(rows, k, nl, G, U[l], k * nl, ws.d1[l], ws.d2[l],
                                       G + R * nl, ws.D, dz);
            score__col_sum_acc(rows, nl, dz, grad + p->boff[l]);
            if (l > 1) {
                score__sgemm(1, 0, nl, np, S, 1.0f, ws.D, nl, ws.X[l - 1], np, 1.0f,
                             grad + p->woff[l], np);
                if (p->res[l]) {
                    score__sgemm(0, 0, S, np, nl, 1.0f, ws.D, nl, W(p, l), np, 1.0f, G, np);
                } else {
                    float *tmp;
                    score__sgemm(0, 0, S, np, nl, 1.0f, ws.D, nl, W(p, l), np, 0.0f, Gn, np);
                    tmp = G; G = Gn; Gn = tmp;
                }
                continue;
            }
            /* layer 1: dW_1 += dz^T h_0, and the tangent part on the x columns */
            score__sgemm(1, 0, n1, n0, rows, 1.0f, dz, n1, ws.h0, n0, 1.0f, grad + p->woff[1], n0);
            if (!unit) {
                score__sgemm(1, 0, n1, dim, R, 1.0f, ws.D, n1, Vb, dim, 1.0f, grad + p->woff[1],
                             n0);
            } else {
                /* sgu[j, i] += sum_b GU[(b, j), i], added to dW_1[i, j] after the last block */
                for (size_t b = 0; b < rows; b++)
                    score__saxpy(dim * n1, 1.0f, ws.D + b * dim * n1, ws.sgu);
            }
        }
    }
    if (unit) {
        float *g1 = grad + p->woff[1];
        for (size_t i = 0; i < n1; i++)
            for (size_t j = 0; j < dim; j++)
                g1[i * n0 + j] += ws.sgu[j * n1 + i];
    }
    return SCORE_OK;
}

static int mlp_trace_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, const double *w, const float *gout, float *grad,
                          double *tr, float *fx)
{
    gout_src g = {gout, NULL, NULL};
    return tangent_grad(m, ws, "score_model_trace_grad", n, x, c, m->dim, NULL, w, &g, grad, tr,
                        fx);
}

static int mlp_vjv_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, size_t k, const float *v, const double *w,
                        const float *gout, float *grad, double *vjv, float *fx)
{
    gout_src g = {gout, NULL, NULL};
    return tangent_grad(m, ws, "score_model_vjv_grad", n, x, c, k, v, w, &g, grad, vjv, fx);
}

static int mlp_trace_grad_fn(const score_model *m, score__model_ws *ws, size_t n,
                             const float *x, const double *c, const double *w,
                             score__gout_fn gfn, void *gctx, float *grad, double *tr, float *fx)
{
    gout_src g = {NULL, gfn, gctx};
    return tangent_grad(m, ws, "score_model_trace_grad", n, x, c, m->dim, NULL, w, &g, grad, tr,
                        fx);
}

static int mlp_vjv_grad_fn(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                           const double *c, size_t k, const float *v, const double *w,
                           score__gout_fn gfn, void *gctx, float *grad, double *vjv, float *fx)
{
    gout_src g = {NULL, gfn, gctx};
    return tangent_grad(m, ws, "score_model_vjv_grad", n, x, c, k, v, w, &g, grad, vjv, fx);
}

const score__model_ops score__mlp_ops = {
    .name = "mlp",
    .prepare = mlp_prepare,
    .forward = mlp_forward,
    .infer = mlp_infer,
    .backward = mlp_backward,
    .jvp = mlp_jvp,
    .vjp = mlp_vjp,
    .trace = mlp_trace,
    .trace_grad = mlp_trace_grad,
    .vjv_grad = mlp_vjv_grad,
    .trace_grad_fn = mlp_trace_grad_fn,
    .vjv_grad_fn = mlp_vjv_grad_fn,
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
};
