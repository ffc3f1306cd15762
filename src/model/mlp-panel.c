/* Evaluation of the MLP kind in row panels aligned to global row numbers (score__model_ws
 * row_n > 0) for the tangent path (jvp, vjp and trace, mlp-tangent.c), whose products still run
 * on the BLAS: a row's result then does not depend on how the rows are split into calls,
 * threads or ranks. (The inference path, mlp-infer.c, needs no panels: its products are the
 * kernel layer's row-invariant GEMM, score__gemm_wt.) *
 * A BLAS rounds a row of a GEMM according to where it falls in the product's row blocking:
 * measured on OpenBLAS 0.3.21 (one thread, Haswell kernels), the rows of complete 12-row groups
 * counted from the first row of the call give the same bits whatever the call's row count,
 * while the rows of the remainder go through narrower kernels with other bits; BLIS 0.9 gives
 * the same bits for every row count except 1 (a matrix-vector product). So every GEMM of a
 * kernel runs on a span of whole panels of SCORE__MLP_PANEL rows (a multiple of the common
 * kernel widths 4, 6, 8, 12 and 16) in which global row r sits at position
 * r % SCORE__MLP_PANEL of its panel; the positions of rows not in the call hold copies of a
 * row of the call. A span holds only the panels that the call's rows touch, one after the
 * other (a row's bits depend on its position in its panel, not on the panel's place).
 * The tangent kernels stack k tangent rows per row (row r's at positions (r % P) k .. + k - 1),
 * so their products are made of whole panels too. The spans lie inside blocks of at most the
 * kernel's nb rows (a multiple of the panel, set by the widths, the budgets and the BLAS's
 * thread count only): with a one-thread BLAS the call's panels cut into about equal runs, one
 * or more per thread; and blocks run on the model's threads (or, for a kernel that keeps its
 * state in the shared workspace, on the calling thread).
 * A multi-threaded BLAS decides by the size of each product whether to split it over its
 * threads, and splits it its own way (OpenBLAS 0.3.21 on 2 threads: products of up to 2^18
 * multiply-adds run on one thread, larger ones on two, with other bits for half of the rows),
 * so with one every span is a whole block of a fixed global grid of nb rows (a fixed shape
 * whatever the call's rows): invariant too, at the price of evaluating a whole block for a
 * small call. */
#include <string.h>

#include "kernel/kernel-priv.h"
#include "mlp-kind-priv.h"

typedef struct panel_job {
    const mlp *p;
    const score__mlp_panels *rq;
    size_t nb, slot;          /* rows per block; floats of one thread's buffers */
    int whole;                /* 1: every span is the whole block (multi-threaded BLAS) */
    size_t n, nblk, k0, row0; /* rows per segment, blocks per segment, first block */
    size_t pan0, npan;        /* one-thread BLAS: the panels of the call's rows (see below) */
    size_t shift;             /* whole blocks subtracted from every global number (see below) */
    const size_t *idx;
    int lab_rows, ctx_rows;
    float *arena;
} panel_job;

/* Global number of row i of a segment, counted from the start of the call's first block:
 * subtracting whole blocks (nb, a multiple of the panel) moves no row to another block or
 * position, and numbers that wrap past SIZE_MAX (row0 near SIZE_MAX) stay increasing in the
 * call, so the block search and the block count stay bounded. Rows on both sides of the wrap
 * cannot have the panel positions of an unwrapped split (2^64 is not a multiple of the panel):
 * there the split invariance ends. */
static size_t p_global(const panel_job *j, size_t i)
{
    return j->row0 + (j->idx != NULL ? j->idx[i] : i) - j->shift;
}

/* First row i of the segment with global row >= g. */
static size_t p_lower(const panel_job *j, size_t g)
{
    size_t lo = 0, hi = j->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p_global(j, mid) < g)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The buffers of one thread's slot: doubles first (c, val: 8-byte aligned as the slot's
 * start is even), then the floats and the labels, then the kernel's scratch. */
static size_t p_layout(const panel_job *j, float *base, score__mlp_span *s, int32_t **lab,
                       size_t **pos)
{
    const score__mlp_panels *rq = j->rq;
    size_t nb = j->nb, off = 0;
#define P_TAKE(ptr, type, count)                                                                  \
    do {                                                                                          \
        if (base != NULL)                                                                         \
            ptr = (type *)(void *)(base + off);                                                   \
        off += (count);                                                                           \
    } while (0)
    P_TAKE(s->c, double, 2 * nb);
    P_TAKE(*pos, size_t, (nb * sizeof(size_t) + sizeof(float) - 1) / sizeof(float));
    off += off & 1;
    P_TAKE(s->val, double, rq->val != NULL ? 2 * nb : 0);
    P_TAKE(s->x, float, nb * rq->dim);
    P_TAKE(s->v, float, nb * rq->vw);
    P_TAKE(s->out, float, nb * rq->ow);
    P_TAKE(s->fx, float, rq->fx != NULL ? nb * rq->fw : 0);
    P_TAKE(s->context, float, j->ctx_rows ? nb * j->p->m : 0);
    P_TAKE(*lab, int32_t, j->lab_rows ? nb : 0);
    off += off & 1;
    P_TAKE(s->scratch, float, rq->scratch);
    off += off & 1;
#undef P_TAKE
    return off;
}

/* Call row i (input, c, extra input, label, context) into position q of the span. */
static void p_put(const panel_job *j, const score__mlp_span *s, int32_t *lab, size_t i,
                  size_t q)
{
    const score__mlp_panels *rq = j->rq;
    const size_t m = j->p->m;
    memcpy(s->x + q * rq->dim, rq->x + i * rq->dim, rq->dim * sizeof(float));
    s->c[q] = rq->c[i];
    if (rq->vw > 0)
        memcpy(s->v + q * rq->vw, rq->v + i * rq->vw, rq->vw * sizeof(float));
    if (j->lab_rows)
        lab[q] = rq->cd.labels[i];
    if (j->ctx_rows)
        memcpy(s->context + q * m, rq->cd.context + i * m, m * sizeof(float));
}

/* Call rows i .. i + cnt - 1 into positions q .. q + cnt - 1: p_put of each row, in one copy
 * per buffer. */
static void p_put_rows(const panel_job *j, const score__mlp_span *s, int32_t *lab, size_t i,
                       size_t q, size_t cnt)
{
    const score__mlp_panels *rq = j->rq;
    const size_t m = j->p->m;
    memcpy(s->x + q * rq->dim, rq->x + i * rq->dim, cnt * rq->dim * sizeof(float));
    memcpy(s->c + q, rq->c + i, cnt * sizeof(double));
    if (rq->vw > 0)
        memcpy(s->v + q * rq->vw, rq->v + i * rq->vw, cnt * rq->vw * sizeof(float));
    if (j->lab_rows)
        memcpy(lab + q, rq->cd.labels + i, cnt * sizeof(int32_t));
    if (j->ctx_rows)
        memcpy(s->context + q * m, rq->cd.context + i * m, cnt * m * sizeof(float));
}

/* First global row of block k (0 .. nblk) of a call on a one-thread BLAS: the call's panels
 * cut into nblk runs of whole panels whose lengths differ by at most one. */
static size_t p_block_start(const panel_job *j, size_t k)
{
    size_t q = j->npan / j->nblk, r = j->npan % j->nblk;
    return (j->pan0 + k * q + k * r / j->nblk) * SCORE__MLP_PANEL;
}

static void p_part(void *ctx, size_t job, size_t thread)
{
    const panel_job *j = ctx;
    const score__mlp_panels *rq = j->rq;
    const size_t P = SCORE__MLP_PANEL;
    size_t seg = job / j->nblk, k = j->k0 + job % j->nblk, lo, hi, off = seg * j->n;
    size_t cnt, q0;
    size_t *pos = NULL;
    int run;
    score__mlp_span s;
    int32_t *lab = NULL;
    memset(&s, 0, sizeof s);
    (void)p_layout(j, j->arena + thread * j->slot, &s, &lab, &pos);
    if (j->whole) {
        lo = p_lower(j, k * j->nb);
        hi = p_lower(j, (k + 1) * j->nb);
    } else {
        lo = p_lower(j, p_block_start(j, k - j->k0));
        hi = p_lower(j, p_block_start(j, k - j->k0 + 1));
    }
    if (lo == hi)
        return;
    /* Positions: with a one-thread BLAS the panels the rows touch, one after the other (the
     * gaps of an adaptive solve's compacted rows are not evaluated), row g at
     * (its panel's rank) * P + g % P; with a multi-threaded one the whole block, g at g - k nb. */
    if (j->whole) {
        for (size_t r = lo; r < hi; r++)
            pos[r - lo] = p_global(j, r) - k * j->nb;
        s.M = j->nb;
    } else {
        size_t panel = p_global(j, lo) / P, rank = 0;
        for (size_t r = lo; r < hi; r++) {
            size_t g = p_global(j, r);
            if (g / P != panel) {
                panel = g / P;
                rank++;
            }
            pos[r - lo] = rank * P + g % P;
        }
        s.M = (rank + 1) * P;
    }
    /* every position not holding a row of the call holds a copy of the first row (padding),
     * each row goes to its position; consecutive positions (the rows of a call without
     * gaps: every sampler step) are copied in one piece, in and out */
    cnt = hi - lo;
    q0 = pos[0];
    run = pos[cnt - 1] - q0 == cnt - 1;
    if (run) {
        for (size_t q = 0; q < q0; q++)
            p_put(j, &s, lab, off + lo, q);
        for (size_t q = q0 + cnt; q < s.M; q++)
            p_put(j, &s, lab, off + lo, q);
        p_put_rows(j, &s, lab, off + lo, q0, cnt);
    } else {
        for (size_t q = 0; q < s.M; q++)
            p_put(j, &s, lab, off + lo, q);
        for (size_t r = lo; r < hi; r++)
            p_put(j, &s, lab, off + r, pos[r - lo]);
    }
    s.cd = rq->cd;
    if (j->lab_rows)
        s.cd.labels = lab;
    if (j->ctx_rows)
        s.cd.context = s.context;
    if (rq->fx == NULL)
        s.fx = NULL;
    if (rq->val == NULL)
        s.val = NULL;
    rq->span(rq->ctx, &s, thread);
    if (run) {
        if (rq->ow > 0)
            memcpy(rq->out + (off + lo) * rq->ow, s.out + q0 * rq->ow,
                   cnt * rq->ow * sizeof(float));
        if (rq->fx != NULL)
            memcpy(rq->fx + (off + lo) * rq->fw, s.fx + q0 * rq->fw,
                   cnt * rq->fw * sizeof(float));
        if (rq->val != NULL)
            memcpy(rq->val + off + lo, s.val + q0, cnt * sizeof(double));
        return;
    }
    for (size_t r = lo; r < hi; r++) {
        size_t q = pos[r - lo];
        if (rq->ow > 0)
            memcpy(rq->out + (off + r) * rq->ow, s.out + q * rq->ow, rq->ow * sizeof(float));
        if (rq->fx != NULL)
            memcpy(rq->fx + (off + r) * rq->fw, s.fx + q * rq->fw, rq->fw * sizeof(float));
        if (rq->val != NULL)
            rq->val[off + r] = s.val[q];
    }
}

int score__mlp_ensure_iarena(mlp_ws *w, size_t need, const char *fn)
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

int score__mlp_panels_aligned(const score__model_ws *ws, size_t n)
{
    return ws->row_n > 0 && n > 0 && n % ws->row_n == 0;
}

int score__mlp_run_panels(const mlp *p, mlp_ws *w, const score__model_ws *ws, size_t ncall,
                          const score__mlp_panels *rq, int64_t threads, const char *fn)
{
    const size_t n = ws->row_n, nseg = ncall / n;
    size_t njobs, nslots, g_first, g_last, need;
    score__pool *pool;
    panel_job job;
    score__mlp_span unused;
    int32_t *lab_unused;
    size_t *pos_unused;
    size_t wide;
    int rc;
    memset(&job, 0, sizeof job);
    job.p = p;
    job.rq = rq;
    job.nb = rq->nb;
    job.whole = score__blas_threads() > 1;
    job.n = n;
    job.row0 = ws->row0;
    job.idx = ws->row_idx;
    job.lab_rows = rq->cd.labels != NULL && rq->cd.labels_per_row && p->K > 0;
    job.ctx_rows = rq->cd.context != NULL && rq->cd.context_per_row && p->m > 0;
    /* the slot's widest terms, checked for overflow (the others are smaller) */
    if (score__mul_size(job.nb, rq->dim + rq->vw + rq->ow + rq->fw + p->m + 8, &wide) != 0 ||
        wide > SIZE_MAX / 4 - rq->scratch)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    job.slot = p_layout(&job, NULL, &unused, &lab_unused, &pos_unused);
    job.shift = 0;
    g_first = p_global(&job, 0);
    job.shift = g_first - g_first % job.nb;
    g_first = p_global(&job, 0);
    g_last = p_global(&job, n - 1);
    job.k0 = g_first / job.nb;
    job.nblk = g_last / job.nb - job.k0 + 1;
    if (!job.whole) {
        /* With a one-thread BLAS a row's bits depend on its position in its panel only, so the
         * blocks need not follow the grid: the call's panels are cut into blocks of at most
         * nb rows and about equal length, as many as the grid needs rounded up to a multiple
         * of the threads, so that each thread gets the same number of panels (the grid's
         * blocks left one thread a short last block: 3% of a 10 000-row call on two). */
        size_t per = job.nb / SCORE__MLP_PANEL;
        size_t t = rq->serial || threads < 2 ? 1 : (size_t)threads, up;
        job.pan0 = g_first / SCORE__MLP_PANEL;
        job.npan = g_last / SCORE__MLP_PANEL - job.pan0 + 1;
        job.nblk = (job.npan + per - 1) / per;
        up = (job.nblk + t - 1) / t * t;
        if (up <= job.npan)
            job.nblk = up;
    }
    njobs = nseg * job.nblk;
    pool = njobs > 1 && !rq->serial ? score__mlp_pool_of(w, threads) : NULL;
    nslots = score__pool_threads(pool);
    nslots = nslots < njobs ? nslots : njobs;
    if (score__mul_size(nslots, job.slot, &need) != 0)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    if ((rc = score__mlp_ensure_iarena(w, need, fn)) != SCORE_OK)
        return rc;
    job.arena = w->iarena;
    score__pool_for_each(pool, njobs, p_part, &job);
    return SCORE_OK;
}
