/* The MLP's inference path (score__mlp_infer()): the forward pass without the backward cache,
 * in blocks of rows run on the model's threads, and for sampler calls in row panels aligned to
 * the global row number, so that a row's result does not depend on how the rows are split. */
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

/* Grows the workspace's inference arena to need floats (contents not kept). */
static int ensure_arena(mlp_ws *w, size_t need, const char *fn)
{
    float *a;
    if (need <= w->icap)
        return SCORE_OK;
    if ((a = score__calloc(need, sizeof(float))) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    score__free(w->iarena);
    w->iarena = a;
    w->icap = need;
    return SCORE_OK;
}

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
    score__bias_act_forward_res(rows, n1, cur, NULL, p->act, NULL, cur, NULL, NULL);
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
        score__bias_act_forward_res(rows, nl, cur, B(p, l), p->act, p->res[l] ? prev : NULL,
                                    cur, NULL, NULL);
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

/* Evaluation aligned to global row numbers (score__model_ws row_n > 0: the samplers). A BLAS
 * rounds a row of a GEMM according to where it falls in the product's row blocking: measured
 * on OpenBLAS 0.3.21 (one thread, Haswell kernels), the rows of complete 12-row groups counted
 * from the first row of the call give the same bits whatever the call's row count, while the
 * rows of the remainder go through narrower kernels with other bits; BLIS 0.9 gives the same
 * bits for every row count except 1 (a matrix-vector product). So here every GEMM runs on a
 * span of whole panels of SCORE__MLP_PANEL rows (a multiple of the common kernel widths 4, 6,
 * 8, 12 and 16) in which global row r sits at position r % SCORE__MLP_PANEL; the positions of
 * rows not in the call hold copies of a row of the call. The spans lie inside blocks of a
 * fixed global grid (nb rows, a multiple of the panel, set by the widths and the BLAS's thread
 * count only), and blocks run on the model's threads as in mlp_infer. A row's result then
 * depends on its own values only, not on the split of the rows into calls or threads.
 * A multi-threaded BLAS decides by the size of each product whether to split it over its
 * threads, and splits it its own way (OpenBLAS 0.3.21 on 2 threads: products of up to 2^18
 * multiply-adds run on one thread, larger ones on two, with other bits for half of the rows),
 * so with one every GEMM runs on the whole block (a fixed shape whatever the call's rows):
 * invariant too, at the price of evaluating a whole block for a small call. */
#define SCORE__MLP_PANEL 48

typedef struct ainfer_job {
    const mlp *p;
    size_t dim, nb, per, slot;       /* slot: floats of one thread's workspace */
    int whole;                       /* 1: every span is the whole block (multi-threaded BLAS) */
    size_t n, nblk, k0, row0;        /* rows per segment, blocks per segment, first block */
    const size_t *idx;
    const float *x;
    const double *c;
    mlp_cond cd;
    float *out, *arena;
} ainfer_job;

static size_t a_global(const ainfer_job *j, size_t i)
{
    return j->row0 + (j->idx != NULL ? j->idx[i] : i);
}

/* First row i of the segment with global row >= g. */
static size_t a_lower(const ainfer_job *j, size_t g)
{
    size_t lo = 0, hi = j->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a_global(j, mid) < g)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Call row i (input, c, label, context) into slot q of the panel buffers. */
static void put_row(const ainfer_job *j, const mlp_cond *cd, int lab_rows, int ctx_rows,
                    size_t i, size_t q, float *xs, double *cs, int32_t *lab, float *ctx_s)
{
    const size_t dim = j->dim, m = j->p->m;
    memcpy(xs + q * dim, j->x + i * dim, dim * sizeof *xs);
    cs[q] = j->c[i];
    if (lab_rows)
        lab[q] = cd->labels[i];
    if (ctx_rows)
        memcpy(ctx_s + q * m, cd->context + i * m, m * sizeof *ctx_s);
}

static void ainfer_part(void *ctx, size_t job, size_t thread)
{
    const ainfer_job *j = ctx;
    const mlp *p = j->p;
    const size_t P = SCORE__MLP_PANEL, dim = j->dim, nb = j->nb, m = p->m;
    size_t seg = job / j->nblk, k = j->k0 + job % j->nblk, lo, hi, s0, M;
    size_t off = seg * j->n; /* first call row of the segment */
    float *slot = j->arena + thread * j->slot;
    double *cs = (double *)(void *)slot;
    float *xs = slot + 2 * nb, *os = xs + nb * dim, *ctx_s = os + nb * dim;
    int32_t *lab = (int32_t *)(void *)(ctx_s + nb * m);
    float *ws = (float *)(void *)(lab + nb);
    mlp_cond cd = j->cd;
    int lab_rows = cd.labels != NULL && cd.labels_per_row && p->K > 0;
    int ctx_rows = cd.context != NULL && cd.context_per_row && m > 0;
    lo = a_lower(j, k * nb);
    hi = a_lower(j, (k + 1) * nb);
    if (lo == hi)
        return;
    s0 = j->whole ? k * nb : a_global(j, lo) / P * P;
    M = j->whole ? nb : (a_global(j, hi - 1) / P + 1) * P - s0;
    /* every panel slot first holds a copy of the first row (padding), then each row goes to
     * the slot of its global number */
    for (size_t q = 0; q < M; q++)
        put_row(j, &cd, lab_rows, ctx_rows, off + lo, q, xs, cs, lab, ctx_s);
    for (size_t r = lo; r < hi; r++)
        put_row(j, &cd, lab_rows, ctx_rows, off + r, a_global(j, r) - s0, xs, cs, lab, ctx_s);
    if (lab_rows)
        cd.labels = lab;
    if (ctx_rows)
        cd.context = ctx_s;
    infer_block(p, dim, nb, 0, M, xs, cs, &cd, os, ws, 1);
    for (size_t r = lo; r < hi; r++)
        memcpy(j->out + (off + r) * dim, os + (a_global(j, r) - s0) * dim, dim * sizeof *os);
}

static int mlp_infer_aligned(const mlp *p, mlp_ws *w, size_t dim, size_t nseg, size_t n,
                             size_t row0, const size_t *idx, int64_t threads, const float *x,
                             const double *c, const mlp_cond *cd, float *out)
{
    int rc;
    static const char fn[] = "score_model_forward";
    const size_t P = SCORE__MLP_PANEL;
    size_t per = p->n[0] + 2 * p->maxh, nb, slot, njobs, nslots, need, g_first, g_last;
    score__pool *pool;
    ainfer_job job;
    /* the single-thread budget also with a multi-threaded BLAS: a small call pays a whole
     * block there */
    nb = SCORE__MLP_INFER_BYTES / (per * sizeof(float)) / P * P;
    nb = nb < P ? P : nb;
    /* doubles c first (8-byte aligned slot starts: slot is even), then x, out, context, labels,
     * the activations */
    slot = nb * (2 + 2 * dim + p->m + 1 + per);
    slot += slot & 1;
    g_first = row0 + (idx != NULL ? idx[0] : 0);
    g_last = row0 + (idx != NULL ? idx[n - 1] : n - 1);
    job.p = p;
    job.dim = dim;
    job.nb = nb;
    job.per = per;
    job.slot = slot;
    job.whole = score__blas_threads() > 1;
    job.n = n;
    job.k0 = g_first / nb;
    job.nblk = g_last / nb - job.k0 + 1;
    job.row0 = row0;
    job.idx = idx;
    job.x = x;
    job.c = c;
    job.cd = *cd;
    job.out = out;
    njobs = nseg * job.nblk;
    pool = njobs > 1 ? score__mlp_pool_of(w, threads) : NULL;
    nslots = score__pool_threads(pool);
    nslots = nslots < njobs ? nslots : njobs;
    need = nslots * slot;
    if ((rc = ensure_arena(w, need, fn)) != SCORE_OK)
        return rc;
    job.arena = w->iarena;
    score__pool_for_each(pool, njobs, ainfer_part, &job);
    return SCORE_OK;
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
    if (ws->row_n > 0 && n % ws->row_n == 0) {
        job.cd = score__mlp_cond_of(ws);
        return mlp_infer_aligned(p, w, dim, n / ws->row_n, ws->row_n, ws->row0, ws->row_idx,
                                 score__model_ws_threads(m, ws), x, c, &job.cd, out);
    }
    nb = (score__blas_threads() > 1 ? SCORE__MLP_INFER_BYTES_MT : SCORE__MLP_INFER_BYTES) /
         (per * sizeof(float));
    nb = nb < 16 ? 16 : nb;
    nblocks = (n + nb - 1) / nb;
    nb = (n + nblocks - 1) / nblocks;
    pool = nblocks > 1 ? score__mlp_pool_of(w, score__model_ws_threads(m, ws)) : NULL;
    nslots = score__pool_threads(pool);
    nslots = nslots < nblocks ? nslots : nblocks;
    need = nslots * nb * per;
    if ((rc = ensure_arena(w, need, fn)) != SCORE_OK)
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
