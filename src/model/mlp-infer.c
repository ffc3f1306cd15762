/* The MLP's inference path (score__mlp_infer()): the forward pass without the backward cache,
 * in blocks of rows run on the model's threads, and for sampler calls in row panels aligned to
 * the global row number (mlp-panel.c), so that a row's result does not depend on how the rows
 * are split. */
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h"
#include "mlp-kind-priv.h"

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

/* The first layer of infer_block with the embedding folded into the bias: for each run of rows
 * with the same c (the whole block in a sampler step), the embedding's share of the first layer
 * is one vector, folded into the bias once per run (with the context's share when one context
 * vector serves every row), and the first GEMM only multiplies the x columns (K = dim instead
 * of dim + E), then the context columns when the context is per row. A row's folded bias is a
 * function of its own c only. h0 is free: it holds [e(c) ; context] and the folded bias. */
static void infer_first_folded(const mlp *p, size_t dim, size_t rows, const float *x,
                               const double *c, const mlp_cond *cd, float *h0, float *cur)
{
    size_t n0 = p->n[0], n1 = p->n[1], nfold = p->E + (cd->context_per_row ? 0 : p->m);
    float *e = h0, *beff = h0 + p->E + p->m;
    const float *w1 = W(p, 1), *b1 = B(p, 1);
    for (size_t r0 = 0, r1; r0 < rows; r0 = r1) {
        for (r1 = r0 + 1; r1 < rows && c[r1] == c[r0];)
            r1++;
        if (p->emb == SCORE_EMBED_NONE)
            e[0] = (float)c[r0];
        else
            score__sincos_features(p->half, p->freq, c[r0], e, e + p->half);
        if (p->m > 0 && !cd->context_per_row)
            memcpy(e + p->E, cd->context, p->m * sizeof *e);
        for (size_t j = 0; j < n1; j++) {
            const float *wr = w1 + j * n0 + dim;
            double acc = (double)b1[j];
            for (size_t i = 0; i < nfold; i++)
                acc += (double)wr[i] * (double)e[i];
            beff[j] = (float)acc;
        }
        for (size_t b = r0; b < r1; b++)
            memcpy(cur + b * n1, beff, n1 * sizeof *cur);
    }
    score__mlp_add_labels(p, cd, rows, cur, NULL);
    score__sgemm(0, 1, rows, n1, dim, 1.0f, x, dim, w1, n0, 1.0f, cur, n1);
    if (p->m > 0 && cd->context_per_row)
        score__sgemm(0, 1, rows, n1, p->m, 1.0f, cd->context, p->m, w1 + dim + p->E, n0, 1.0f,
                     cur, n1);
    score__bias_act_inplace(rows, n1, cur, NULL, p->act, NULL, NULL);
}

/* One block of mlp_infer: rows [b0, b0 + rows) through the workspace ws (nb * per floats).
 * runs = 1: the embedding is folded by runs of equal c whatever the rows (the aligned path);
 * 0: only when every row has the same c. */
static void infer_block(const mlp *p, size_t dim, size_t nb, size_t b0, size_t rows,
                        const float *x, const double *c, const mlp_cond *cd, float *out,
                        float *ws, int runs)
{
    size_t L = p->L, n0 = p->n[0], l = 1;
    const float *bl = B(p, L);
    float *h0 = ws, *cur = h0 + nb * n0, *nxt = cur + nb * p->maxh;
    const float *prev = h0;
    mlp_cond cb = score__mlp_cond_at(p, cd, b0);
    if (!p->res[1] && nb * n0 >= p->E + p->m + p->n[1] && (runs || same_c(rows, c + b0))) {
        infer_first_folded(p, dim, rows, x + b0 * dim, c + b0, &cb, h0, cur);
        prev = cur;
        cur = nxt;
        l = 2;
    } else {
        score__mlp_embed_rows(p, dim, rows, x + b0 * dim, c + b0, &cb, h0);
    }
    for (; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        float *t;
        score__sgemm(0, 1, rows, nl, np, 1.0f, prev, np, W(p, l), np, 0.0f, cur, nl);
        if (l == 1)
            score__mlp_add_labels(p, &cb, rows, cur, NULL);
        score__bias_act_inplace(rows, nl, cur, B(p, l), p->act, p->res[l] ? prev : NULL, NULL);
        prev = cur;
        t = cur == h0 + nb * n0 ? nxt : h0 + nb * n0;
        cur = t;
    }
    size_t no = p->n[L]; /* dim, or the classes of a classifier */
    for (size_t b = 0; b < rows; b++)
        memcpy(out + (b0 + b) * no, bl, no * sizeof *out);
    score__sgemm(0, 1, rows, no, p->n[L - 1], 1.0f, prev, p->n[L - 1], W(p, L), p->n[L - 1],
                 1.0f, out + b0 * no, no);
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
    mlp_cond cd;
    float *out, *arena;
} infer_job;

static void infer_part(void *ctx, size_t i, size_t thread)
{
    const infer_job *j = ctx;
    size_t b0 = i * j->nb;
    infer_block(j->p, j->dim, j->nb, b0, j->n - b0 < j->nb ? j->n - b0 : j->nb, j->x, j->c,
                &j->cd, j->out, j->arena + thread * j->nb * j->per, 0);
}

/* Evaluation aligned to global row numbers (score__model_ws row_n > 0: the samplers) in the
 * panels of mlp-panel.c: infer_block on each span, spans on the model's threads. */
typedef struct ainfer_ctx {
    const mlp *p;
    size_t dim, nb;
} ainfer_ctx;

static void ainfer_span(void *ctx, const score__mlp_span *s, size_t thread)
{
    const ainfer_ctx *a = ctx;
    (void)thread;
    infer_block(a->p, a->dim, a->nb, 0, s->M, s->x, s->c, &s->cd, s->out, s->scratch, 1);
}

static int mlp_infer_aligned(const mlp *p, mlp_ws *w, const score__model_ws *ws, size_t dim,
                             size_t n, int64_t threads, const float *x, const double *c,
                             float *out)
{
    const size_t P = SCORE__MLP_PANEL, per = p->n[0] + 2 * p->maxh;
    score__mlp_panels rq;
    ainfer_ctx a;
    memset(&rq, 0, sizeof rq);
    /* the single-thread budget also with a multi-threaded BLAS: a small call pays a whole
     * block there */
    a.nb = SCORE__MLP_INFER_BYTES / (per * sizeof(float)) / P * P;
    a.nb = a.nb < P ? P : a.nb;
    a.p = p;
    a.dim = dim;
    rq.nb = a.nb;
    rq.dim = dim;
    rq.x = x;
    rq.c = c;
    rq.cd = score__mlp_cond_of(ws);
    rq.ow = p->n[p->L];
    rq.out = out;
    rq.scratch = a.nb * per;
    rq.span = ainfer_span;
    rq.ctx = &a;
    return score__mlp_run_panels(p, w, ws, n, &rq, threads, "score_model_forward");
}

int score__mlp_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, float *out)
{
    static const char fn[] = "score_model_forward";
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    size_t dim = m->dim, per = p->n[0] + 2 * p->maxh;
    size_t nb, nblocks, nslots, need;
    score__pool *pool;
    infer_job job;
    int rc = score__mlp_check_inputs(fn, m, ws, n, c);
    if (rc != SCORE_OK)
        return rc;
    if (score__mlp_panels_aligned(ws, n))
        return mlp_infer_aligned(p, w, ws, dim, n, score__model_ws_threads(m, ws), x, c, out);
    nb = (score__blas_threads() > 1 ? SCORE__MLP_INFER_BYTES_MT : SCORE__MLP_INFER_BYTES) /
         (per * sizeof(float));
    nb = nb < 16 ? 16 : nb;
    nblocks = (n + nb - 1) / nb;
    nb = (n + nblocks - 1) / nblocks;
    pool = nblocks > 1 ? score__mlp_pool_of(w, score__model_ws_threads(m, ws)) : NULL;
    nslots = score__pool_threads(pool);
    nslots = nslots < nblocks ? nslots : nblocks;
    need = nslots * nb * per;
    if ((rc = score__mlp_ensure_iarena(w, need, fn)) != SCORE_OK)
        return rc;
    job.p = p;
    job.dim = dim;
    job.n = n;
    job.nb = nb;
    job.per = per;
    job.x = x;
    job.c = c;
    job.cd = score__mlp_cond_of(ws);
    job.out = out;
    job.arena = w->iarena;
    score__pool_for_each(pool, nblocks, infer_part, &job);
    return SCORE_OK;
}
