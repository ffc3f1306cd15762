/* The MLP's inference path (score__mlp_infer()): the forward pass without the backward cache,
 * in blocks of rows run on the model's threads, every product on the row-invariant GEMM of the
 * kernel layer (score__gemm_wt: one fma chain per element, bias, residual and activation fused)
 * and the embedding always folded into the first layer's bias by runs of equal c, so that a
 * row's result is a function of that row's inputs only: it does not depend on how the rows
 * are split into calls, blocks or threads, with no row panels (the tangent path still runs on
 * the BLAS in the aligned panels of mlp-panel.c) and no BLAS. */
#include <stdint.h>
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h"
#include "mlp-kind-priv.h"

/* Rows per block of mlp_infer: about SCORE__MLP_INFER_BYTES of activations per block (h0 and
 * two hidden-width buffers), so that a layer's output mostly stays in a core's second-level
 * cache for the next layer's product, while a block is long enough for the packed weight's
 * reads to be a small share (a 512-wide layer's 1 MiB weight is read once per block: with
 * 256 KiB blocks of 56 rows that made 512-wide layers 15% slower). The products are
 * libscore's own row-invariant GEMM (score__gemm_wt, no BLAS), so a row's bits do not depend
 * on the block size, the number of rows, the row's position or the thread: the blocks only
 * decide how the work is split over SCORE_MODEL_PARAM_THREADS threads. */
#define SCORE__MLP_INFER_BYTES ((size_t)1 << 20)

/* One product's weight: W (N x K, row stride ldw) and its packed copy p, or p NULL for a call
 * of at most SCORE__GEMM_WT_SMALL rows on a processor where score__gemm_wt_small() runs (packing
 * would cost more than such a product). */
typedef struct infer_w {
    const float *p, *w;
    size_t ldw;
} infer_w;

/* The weights of one call: w[l] for the hidden and output layers; for the first layer either
 * w[1] (the whole weight, when layer 1 is residual and not folded) or wx (its x columns) and
 * wc (its context columns, when the context is per row; otherwise wc.w is NULL). */
typedef struct infer_pack {
    infer_w w[MAXL];
    infer_w wx, wc;
    int fold;
} infer_pack;

/* Floats of the packed weights of a call (dst NULL) or packs them at dst; with small, packs
 * nothing. The weights are packed per call, not cached: a trainer changes a model's weights
 * between its steps while a workspace may outlive them, and a cached copy would need a check
 * about as costly as the copy. */
static size_t infer_pack_all(const mlp *p, size_t dim, int ctx_rows, int small, float *dst,
                             infer_pack *pk)
{
    size_t n0 = p->n[0], n1 = p->n[1], off = 0;
#define PACK_ONE(slot, N, K, Wsrc, ldw_)                                                          \
    do {                                                                                          \
        (slot).w = (Wsrc);                                                                        \
        (slot).ldw = (ldw_);                                                                      \
        (slot).p = NULL;                                                                          \
        if (!small) {                                                                             \
            if (dst != NULL) {                                                                    \
                score__gemm_wt_pack(N, K, Wsrc, ldw_, dst + off);                                 \
                (slot).p = dst + off;                                                             \
            }                                                                                     \
            off += (K) * score__gemm_wt_ld(N);                                                    \
        }                                                                                         \
    } while (0)
    memset(pk, 0, sizeof *pk);
    pk->fold = !p->res[1];
    if (!p->res[1]) {
        PACK_ONE(pk->wx, n1, dim, W(p, 1), n0);
        if (p->m > 0 && ctx_rows)
            PACK_ONE(pk->wc, n1, p->m, W(p, 1) + dim + p->E, n0);
    } else {
        PACK_ONE(pk->w[1], n1, n0, W(p, 1), n0);
    }
    for (size_t l = 2; l <= p->L; l++)
        PACK_ONE(pk->w[l], p->n[l], p->n[l - 1], W(p, l), p->n[l - 1]);
#undef PACK_ONE
    return off;
}

/* score__gemm_wt (or score__gemm_wt_small when the weight is not packed) with iw's weight. */
static void infer_gemm(const infer_w *iw, size_t rows, size_t N, size_t K, const float *A,
                       size_t lda, float *C, int acc, const float *bias, int act,
                       const float *res)
{
    if (iw->p == NULL &&
        score__gemm_wt_small(rows, N, K, A, lda, iw->w, iw->ldw, C, acc, bias, act, res))
        return;
    score__gemm_wt(rows, N, K, A, lda, iw->p, C, acc, bias, act, res);
}

/* Rows of the shortest run of rows with the same c (and label, for a conditional model) that
 * infer_first_folded starts the product from the folded bias for: shorter runs fill their rows
 * with it and share one product of the block (the same bits), where a product per run of a
 * few rows would cost more than the fill. */
#define SCORE__MLP_FOLD_RUN 16

/* End of the run of rows starting at r0 with the same c and label (rows of the block). */
static size_t fold_run_end(const mlp *p, const mlp_cond *cd, size_t rows, const double *c,
                           size_t r0)
{
    size_t r1 = r0 + 1, y = p->K > 0 ? score__mlp_label(p, cd, r0) : 0;
    while (r1 < rows && c[r1] == c[r0] && (p->K == 0 || score__mlp_label(p, cd, r1) == y))
        r1++;
    return r1;
}

/* The first layer's folded bias for c (and the label vector of label y when the model has
 * labels, added as score__mlp_add_labels adds it) into out; e: E + m floats of scratch. */
static void fold_first(const mlp *p, size_t dim, double c, const mlp_cond *cd, size_t y,
                       float *e, float *beff, int fold, float *out)
{
    size_t n0 = p->n[0], n1 = p->n[1], nfold = p->E + (cd->context_per_row ? 0 : p->m);
    if (fold) {
        if (p->emb == SCORE_EMBED_NONE)
            e[0] = (float)c;
        else
            score__sincos_features(p->half, p->freq, c, e, e + p->half);
        if (p->m > 0 && !cd->context_per_row)
            memcpy(e + p->E, cd->context, p->m * sizeof *e);
        score__fold_bias(n1, nfold, W(p, 1) + dim, n0, B(p, 1), e, beff);
    }
    if (out == beff)
        return;
    for (size_t j = 0; j < n1; j++)
        out[j] = beff[j] + LAB(p, y)[j];
}

/* The first layer of infer_block with the embedding folded into the bias: for each run of rows
 * with the same c (the whole block in a sampler step), the embedding's share of the first layer
 * is one vector, folded into the bias once per run (with the context's share when one context
 * vector serves every row), and the first product only multiplies the x columns (K = dim
 * instead of dim + E), then the context columns when the context is per row; each starts from
 * the row's folded bias (and label vector), the activation fused into the last. A row's folded
 * bias is a function of its own c only. With the packed weight and runs of at least
 * SCORE__MLP_FOLD_RUN rows, each run's product starts its chains from that vector itself
 * (score__gemm_wt_from: no pass that copies it into every row first; the same bits). h0
 * (E + m + 2 n_1 floats) holds [e(c) ; context], the folded bias and a run's start vector. */
static void infer_first_folded(const mlp *p, const infer_pack *pk, size_t dim, size_t rows,
                               const float *x, const double *c, const mlp_cond *cd, float *h0,
                               float *cur)
{
    size_t n1 = p->n[1];
    float *e = h0, *beff = h0 + p->E + p->m, *start = p->K > 0 ? beff + n1 : beff;
    int ctx = pk->wc.w != NULL, act = ctx ? SCORE__ACT_IDENTITY : p->act, runs = pk->wx.p != NULL;
    for (size_t r0 = 0, r1; runs && r0 < rows; r0 = r1)
        if ((r1 = fold_run_end(p, cd, rows, c, r0)) - r0 < SCORE__MLP_FOLD_RUN)
            runs = 0;
    for (size_t r0 = 0, r1; r0 < rows; r0 = r1) {
        r1 = fold_run_end(p, cd, rows, c, r0);
        fold_first(p, dim, c[r0], cd, p->K > 0 ? score__mlp_label(p, cd, r0) : 0, e, beff,
                   r0 == 0 || c[r0] != c[r0 - 1], runs ? start : beff);
        if (runs)
            score__gemm_wt_from(r1 - r0, n1, dim, x + r0 * dim, dim, pk->wx.p, cur + r0 * n1,
                                start, 0, NULL, act, NULL);
        else
            for (size_t b = r0; b < r1; b++)
                memcpy(cur + b * n1, beff, n1 * sizeof *cur);
    }
    if (!runs) {
        score__mlp_add_labels(p, cd, rows, cur, NULL);
        infer_gemm(&pk->wx, rows, n1, dim, x, dim, cur, 1, NULL, act, NULL);
    }
    if (ctx)
        infer_gemm(&pk->wc, rows, n1, p->m, cd->context, p->m, cur, 1, NULL, p->act, NULL);
}

/* Floats of h0 in a block of nb rows: the inputs [x ; e(c) ; context] of the unfolded first
 * layer, or the folded one's e(c), context, bias and a run's start vector. */
static size_t infer_h0(const mlp *p, size_t nb)
{
    size_t a = nb * p->n[0], f = p->E + p->m + 2 * p->n[1];
    return a > f ? a : f;
}

/* One block of mlp_infer: rows [b0, b0 + rows) through the workspace ws (infer_h0 + 2 nb maxh
 * floats). */
static void infer_block(const mlp *p, const infer_pack *pk, size_t dim, size_t nb, size_t b0,
                        size_t rows, const float *x, const double *c, const mlp_cond *cd,
                        float *out, float *ws)
{
    size_t L = p->L, l = 1;
    float *h0 = ws, *bufa = h0 + infer_h0(p, nb), *bufb = bufa + nb * p->maxh, *cur = bufa;
    const float *prev = h0;
    mlp_cond cb = score__mlp_cond_at(p, cd, b0);
    if (pk->fold) {
        infer_first_folded(p, pk, dim, rows, x + b0 * dim, c + b0, &cb, h0, cur);
        prev = cur;
        cur = bufb;
        l = 2;
    } else {
        score__mlp_embed_rows(p, dim, rows, x + b0 * dim, c + b0, &cb, h0);
    }
    for (; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        int acc = 0;
        if (l == 1 && p->K > 0) { /* the label vectors first, the product added to them */
            memset(cur, 0, rows * nl * sizeof *cur);
            score__mlp_add_labels(p, &cb, rows, cur, NULL);
            acc = 1;
        }
        infer_gemm(&pk->w[l], rows, nl, np, prev, np, cur, acc, B(p, l), p->act,
                   p->res[l] ? prev : NULL);
        prev = cur;
        cur = cur == bufa ? bufb : bufa;
    }
    /* the output layer: dim, or the classes of a classifier */
    infer_gemm(&pk->w[L], rows, p->n[L], p->n[L - 1], prev, p->n[L - 1], out + b0 * p->n[L], 0,
               B(p, L), SCORE__ACT_IDENTITY, NULL);
}

/* Forward pass without the backward cache (score__model_infer_ws(): samplers, the sde), in
 * blocks of rows through a small workspace per thread: bounded memory whatever n, cache-resident
 * blocks, and with SCORE_MODEL_PARAM_THREADS > 1 several blocks at a time (the workspace's
 * thread pool; thread t uses scratch slot t). */
typedef struct infer_job {
    const mlp *p;
    const infer_pack *pk;
    size_t dim, n, nb, slot;
    const float *x;
    const double *c;
    mlp_cond cd;
    float *out, *arena;
} infer_job;

static void infer_part(void *ctx, size_t i, size_t thread)
{
    const infer_job *j = ctx;
    size_t b0 = i * j->nb;
    infer_block(j->p, j->pk, j->dim, j->nb, b0, j->n - b0 < j->nb ? j->n - b0 : j->nb, j->x,
                j->c, &j->cd, j->out, j->arena + thread * j->slot);
}

int score__mlp_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    size_t dim = m->dim, per = p->n[0] + 2 * p->maxh;
    size_t nb, nblocks, nslots, need, npack, slot, lead;
    int small, ctx_rows;
    score__pool *pool;
    infer_job job;
    infer_pack pk;
    int rc = score__mlp_check_inputs(fn, m, ws, n, c);
    if (rc != SCORE_OK)
        return rc;
    if (n == 0)
        return SCORE_OK;
    job.cd = score__mlp_cond_of(ws);
    nb = SCORE__MLP_INFER_BYTES / (per * sizeof(float));
    nb = nb < 16 ? 16 : nb;
    nblocks = (n + nb - 1) / nb;
    nb = (n + nblocks - 1) / nblocks;
    pool = nblocks > 1 ? score__mlp_pool_of(w, score__model_ws_threads(m, ws)) : NULL;
    nslots = score__pool_threads(pool);
    nslots = nslots < nblocks ? nslots : nblocks;
    /* the arena: up to 16 floats of lead to a 64-byte boundary, the packed weights (whole
     * cache lines each), then one slot of buffers per thread */
    /* the condition under which score__gemm_wt_small() computes (it never declines then) */
    small = n <= SCORE__GEMM_WT_SMALL && score__gemm_wt_level() >= 2;
    ctx_rows = job.cd.context != NULL && job.cd.context_per_row;
    npack = infer_pack_all(p, dim, ctx_rows, small, NULL, &pk);
    slot = (infer_h0(p, nb) + 2 * nb * p->maxh + 15) / 16 * 16;
    need = 16 + npack + nslots * slot;
    if ((rc = score__mlp_ensure_iarena(w, need, fn)) != SCORE_OK)
        return rc;
    lead = (size_t)((64 - (uintptr_t)w->iarena % 64) % 64) / sizeof(float);
    (void)infer_pack_all(p, dim, ctx_rows, small, w->iarena + lead, &pk);
    job.p = p;
    job.pk = &pk;
    job.dim = dim;
    job.n = n;
    job.nb = nb;
    job.slot = slot;
    job.x = x;
    job.c = c;
    job.out = out;
    job.arena = w->iarena + lead + npack;
    score__pool_for_each(pool, nblocks, infer_part, &job);
    return SCORE_OK;
}
