/* The training path of the MLP kind (see mlp.c): the forward pass that keeps the activations
 * for the backward pass, and back-propagation through it, phase by phase on the workspace's
 * threads. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h"
#include "mlp-kind-priv.h"

/* The training path (score_model_forward / score_model_backward with the cache) works on a
 * fixed partition that depends on n and the widths only, never on SCORE_MODEL_PARAM_THREADS:
 * rows in blocks of about SCORE__MLP_TRAIN_ROWS (equal sizes; chosen when every product of a
 * block packed the layer's whole weight again on the BLAS: with 512-wide layers, blocks of 256
 * rows were 5% faster than 128; now the forward and cotangent products run on weights packed
 * once per call and 128, 256 and 512 rows measure alike), and weight gradients in about
 * SCORE__MLP_GRAD_CHUNKS chunks of output units (grad_chunk_rows(); each chunk one GEMM over
 * all rows, bias sums in double in row order; every chunk re-packs the layer input, so fewer
 * chunks cost less: a 512-wide layer in 8 chunks of 64 spent ~10% of a step packing, in 4
 * chunks ~7%, so a layer with a wide input is one chunk). The threads run the blocks / chunks
 * of a phase at the same time (with threads, a
 * layer's weight-gradient chunks and its cotangent's row blocks form one phase, see
 * mixed_phase()), so results are bit-identical for any thread count. Batches of at most
 * SCORE__MLP_TRAIN_ROWS rows are one block. */
#define SCORE__MLP_TRAIN_ROWS 256
#define SCORE__MLP_GRAD_ROWS 64
#define SCORE__MLP_GRAD_CHUNKS 2
#define SCORE__MLP_GRAD_WIDE 256
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
    mlp_cond cd;               /* forward: the call's inputs; backward: the cached labels */
    float *out, *grad, *gx;
    /* the phase */
    size_t l;
    const float *A;            /* accum_grad: the cotangent rows of layer l */
    float *dh, *dhn;           /* hidden-layer cotangents (current, next) */
    float *dz, *dzn;           /* dz of layer l, and where dh_part puts dz_{l-1} (the same
                                * buffer when serial: each block overwrites its own rows) */
    /* Serial backward with a parameter gradient: the dz pass of a hidden layer also sums its
     * columns (in double, blocks and rows in order: the sums of score__col_sum_acc() over all
     * rows, bit for bit), and at layer 1 adds the rows to the label table (the same float
     * additions in the same order as score__mlp_label_grad() over all rows), so the
     * weight-gradient phase does not read dz again for them. csum_l: the layer whose sums csum
     * holds (0: none; its phase takes them itself). */
    double *csum;
    size_t csum_l;
    /* 1: the backward consumes the cache: dz_l overwrites phi'(z_l) in d1[l] (read once, in
     * the pass that makes dz_l), which spares the separate dz buffer's memory traffic (the dz
     * pass was a third of the step outside the GEMMs); ws->cached_n is 0 afterwards, so a
     * second backward is refused. Not through the model's own workspace: the public
     * score_model_backward() may back-propagate several cotangents through one forward. */
    int consume;
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
    mlp_cond cb;
    (void)thread;
    block_range(j, i, &r0, &rows);
    cb = score__mlp_cond_at(j->p, &j->cd, r0);
    score__mlp_forward_block(j->p, j->w, j->dim, r0, rows, j->x + r0 * j->dim, j->c + r0, &cb,
                             j->w->wpk, j->out ? j->out + r0 * j->p->n[j->p->L] : NULL);
}

/* The products of the training path run on score__gemm_wt (row-invariant, the epilogue fused,
 * no BLAS), on weights packed once per call, before the row blocks: the forward's W_l
 * (score__gemm_wt_pack: z = h W_l^T) and the backward's W_l as it is (score__gemm_wt_pack_kn:
 * dh = dz W_l; of the first layer only the x columns, when gx is wanted). OpenBLAS packed both
 * operands of every block's product again (a 512 x 512 weight four times per product of a
 * 1024-row batch, the activations once): ~10% of a DSM step. Per call, not cached: the weights
 * change between a trainer's steps. A phase of its own, one layer per part. */
typedef struct pack_job {
    const mlp *p;
    mlp_ws *w;
    size_t dim;
    int backward, gx;
} pack_job;

/* Floats of the packed weight of layer l (forward or backward form); 0 when the backward does
 * not need it. 16 floats of slack per layer keep every layer's pack 64-byte aligned. */
static size_t pack_floats(const pack_job *pj, size_t l)
{
    const mlp *p = pj->p;
    if (!pj->backward)
        return p->n[l - 1] * score__gemm_wt_ld(p->n[l]) + 16;
    if (l == 1)
        return pj->gx ? p->n[1] * score__gemm_wt_ld(pj->dim) + 16 : 0;
    return p->n[l] * score__gemm_wt_ld(p->n[l - 1]) + 16;
}

static void pack_part(void *ctx, size_t i, size_t thread)
{
    const pack_job *pj = ctx;
    const mlp *p = pj->p;
    size_t l = i + 1;
    float *dst = (float *)pj->w->wpk[l];
    (void)thread;
    if (dst == NULL)
        return;
    if (!pj->backward)
        score__gemm_wt_pack(p->n[l], p->n[l - 1], W(p, l), p->n[l - 1], dst);
    else if (l == 1)
        score__gemm_wt_pack_kn(pj->dim, p->n[1], W(p, 1), p->n[0], dst);
    else
        score__gemm_wt_pack_kn(p->n[l - 1], p->n[l], W(p, l), p->n[l - 1], dst);
}

float *score__mlp_wpack_arena(mlp_ws *w, size_t floats)
{
    size_t need = floats + 16;
    if (need > w->wpcap) {
        float *a = score__calloc(need, sizeof(float));
        if (a == NULL)
            return NULL;
        score__free(w->wparena);
        w->wparena = a;
        w->wpcap = need;
    }
    return w->wparena + (size_t)((64 - (uintptr_t)w->wparena % 64) % 64) / sizeof(float);
}

/* Packs the weights of the forward (backward = 0) or the backward into w->wparena and points
 * w->wpk[1 .. L] at them (NULL: not needed). */
static int pack_weights(const mlp *p, mlp_ws *w, score__pool *pool, size_t dim, int backward,
                        int gx, const char *fn)
{
    pack_job pj = {p, w, dim, backward, gx};
    size_t need = 0, off = 0;
    float *a;
    for (size_t l = 1; l <= p->L; l++)
        need += pack_floats(&pj, l);
    if ((a = score__mlp_wpack_arena(w, need)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    for (size_t l = 1; l <= p->L; l++) {
        size_t f = pack_floats(&pj, l);
        w->wpk[l] = f > 0 ? a + off : NULL;
        off += f;
    }
    score__pool_for_each(pool, p->L, pack_part, &pj);
    return SCORE_OK;
}

int score__mlp_pack_forward(const mlp *p, mlp_ws *w, score__pool *pool, size_t dim,
                            const char *fn)
{
    return pack_weights(p, w, pool, dim, 0, 0, fn);
}

int score__mlp_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                       const double *c, float *out)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    score__pool *pool;
    train_job j;
    int rc = score__mlp_check_inputs("score_model_forward", m, ws, n, c);
    if (rc != SCORE_OK)
        return rc;
    memset(&j, 0, sizeof j);
    j.tp = train_partition(m, ws, n);
    if (score__mlp_ensure_primal(p, w, n) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, "score_model_forward", "workspace allocation failed");
    j.p = p;
    j.w = w;
    j.dim = m->dim;
    j.n = n;
    j.x = x;
    j.c = c;
    j.cd = score__mlp_cond_of(ws);
    j.out = out;
    pool = j.tp.threads > 1 ? score__mlp_pool_of(w, j.tp.threads) : NULL;
    if ((rc = pack_weights(p, w, pool, m->dim, 0, 0, "score_model_forward")) != SCORE_OK)
        return rc;
    score__pool_for_each(pool, j.tp.nblk, forward_part, &j);
    return SCORE_OK;
}

/* Rows j0 .. j1 - 1 of dW_l += A^T h_{l-1} and of db_l += column sums of A, over all n rows
 * (csum != NULL: those sums, already taken). */
static void accum_grad_chunk(const mlp *p, size_t l, size_t n, size_t j0, size_t j1,
                             const float *A, const float *hprev, const double *csum, float *grad)
{
    size_t nl = p->n[l], np = p->n[l - 1];
    score__sgemm(1, 0, j1 - j0, np, n, 1.0f, A + j0, nl, hprev, np, 1.0f,
                 grad + p->woff[l] + j0 * np, np);
    if (csum != NULL)
        for (size_t c = j0; c < j1; c++)
            grad[p->boff[l] + c] += (float)csum[c];
    else
        score__col_sum_acc_ld(n, j1 - j0, nl, A + j0, grad + p->boff[l] + j0);
}

/* Output units per weight-gradient chunk of layer l: the whole layer when its input is at least
 * SCORE__MLP_GRAD_WIDE wide (re-packing that input per chunk is then worth avoiding, and with
 * threads the one chunk shares its phase with the layer's row blocks, about as much work);
 * otherwise about SCORE__MLP_GRAD_CHUNKS chunks (the first layer's gradient has a phase of its
 * own, which two threads share). At least SCORE__MLP_GRAD_ROWS, a multiple of 16. */
static size_t grad_chunk_rows(const mlp *p, size_t l)
{
    size_t nl = p->n[l], chunks = p->n[l - 1] >= SCORE__MLP_GRAD_WIDE ? 1 : SCORE__MLP_GRAD_CHUNKS;
    size_t r = (nl + chunks - 1) / chunks;
    r = (r + 15) / 16 * 16;
    return r > SCORE__MLP_GRAD_ROWS ? r : SCORE__MLP_GRAD_ROWS;
}

static void grad_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    size_t nl = j->p->n[j->l], cr = grad_chunk_rows(j->p, j->l), j0 = i * cr;
    size_t j1 = j0 + cr < nl ? j0 + cr : nl;
    (void)thread;
    accum_grad_chunk(j->p, j->l, j->n, j0, j1, j->A, j->w->h[j->l - 1],
                     j->csum_l == j->l ? j->csum : NULL, j->grad);
    /* the label table: row y += dz_1 of the rows with label y (unless the dz pass did it) */
    if (j->l == 1 && j->csum_l != 1)
        score__mlp_label_grad(j->p, &j->cd, j->n, j->A, j0, j1, j->grad);
}

/* All weight-gradient chunks of layer l from the cotangents A. */
static void accum_grad_phase(score__pool *pool, train_job *j, size_t l, const float *A)
{
    size_t nl = j->p->n[l], cr = grad_chunk_rows(j->p, l);
    j->l = l;
    j->A = A;
    score__pool_for_each(pool, (nl + cr - 1) / cr, grad_part, j);
}

/* dz_l = phi'(z_l) dh_l into dz for rows r0 .. r0 + rows - 1 (and their column sums when the job
 * takes them for layer l); dz may be d1[l] itself (the consuming backward: in place). */
static void dz_rows(const train_job *j, size_t l, size_t r0, size_t rows, const float *dh,
                    float *dz)
{
    size_t nl = j->p->n[l];
    int ip = dz == j->w->d1[l];
    if (j->csum_l == l) {
        if (ip)
            score__mul_col_sum_ip(rows, nl, dh + r0 * nl, dz + r0 * nl, j->csum);
        else
            score__mul_col_sum(rows, nl, dh + r0 * nl, j->w->d1[l] + r0 * nl, dz + r0 * nl,
                               j->csum);
        if (l == 1) { /* and the label table's rows (rows in order, as grad_part would) */
            mlp_cond cb = score__mlp_cond_at(j->p, &j->cd, r0);
            score__mlp_label_grad(j->p, &cb, rows, dz + r0 * nl, 0, nl, j->grad);
        }
    } else if (ip) {
        score__mul_ip(rows * nl, dh + r0 * nl, dz + r0 * nl);
    } else {
        score__mul(rows * nl, dh + r0 * nl, j->w->d1[l] + r0 * nl, dz + r0 * nl);
    }
}

/* dh_{L-1} = gout W_L, per row block (gout: n_L = dim outputs, or a classifier's classes). */
static void out_cotangent_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    const mlp *p = j->p;
    size_t r0, rows, L = p->L;
    (void)thread;
    block_range(j, i, &r0, &rows);
    score__gemm_wt(rows, p->n[L - 1], p->n[L], j->gout + r0 * p->n[L], p->n[L], j->w->wpk[L],
                   j->dh + r0 * p->n[L - 1], 0, NULL, SCORE__ACT_IDENTITY, NULL);
    /* dz_{L-1} of the block while its dh rows are still in cache */
    dz_rows(j, L - 1, r0, rows, j->dh, j->dz);
}

/* dz_l, per row block (when dh_part could not fuse it). */
static void dz_part(void *ctx, size_t i, size_t thread)
{
    const train_job *j = ctx;
    size_t r0, rows;
    (void)thread;
    block_range(j, i, &r0, &rows);
    dz_rows(j, j->l, r0, rows, j->dh, j->dz);
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
    dz = j->dz + r0 * nl;
    if (l > 1 && p->res[l]) /* residual block: dh_{l-1} = dh_l + dz W_l (in place) */
        score__gemm_wt(rows, np, nl, dz, nl, j->w->wpk[l], j->dh + r0 * np, 1, NULL,
                       SCORE__ACT_IDENTITY, NULL);
    else if (l > 1)
        score__gemm_wt(rows, np, nl, dz, nl, j->w->wpk[l], j->dhn + r0 * np, 0, NULL,
                       SCORE__ACT_IDENTITY, NULL);
    else /* only the x part of the first layer's input */
        score__gemm_wt(rows, dim, nl, dz, nl, j->w->wpk[1], j->gx + r0 * dim, 0, NULL,
                       SCORE__ACT_IDENTITY, NULL);
    /* dz_{l-1} of the block while its dh rows are still in cache, into dzn: serially that is
     * dz, where it overwrites this block's dz_l rows (just read), never another block's */
    if (l > 1 && np == nl)
        dz_rows(j, l - 1, r0, rows, p->res[l] ? j->dh : j->dhn, j->dzn);
}

/* With threads: one phase for the weight-gradient chunks of layer j->l together with a loop
 * over row blocks that reads the same inputs and writes elsewhere (the output layer's
 * dh_{L-1} = gout W_L, a hidden layer's dh_{l-1} = dz_l W_l): one barrier instead of two, and
 * the threads take the parts one at a time from a shared counter, the large gradient chunks
 * first, so that a layer of one gradient chunk (a 64-wide output layer) keeps every thread
 * busy and a thread slowed down (by memory traffic, or by another process) takes fewer parts.
 * Every part computes the same values whoever runs it, so results never depend on the split. */
typedef struct mixed_job {
    train_job *j;
    size_t ngrad, nrow;        /* the gradient chunks of layer j->l, then the row blocks */
    score__pool_part_fn row;   /* the row-block part */
    atomic_size_t next;        /* the next part to take */
} mixed_job;

static void mixed_run(void *ctx, size_t t, size_t nt)
{
    mixed_job *mj = ctx;
    size_t parts = mj->ngrad + mj->nrow, i;
    (void)nt;
    while ((i = atomic_fetch_add_explicit(&mj->next, 1, memory_order_relaxed)) < parts) {
        if (i < mj->ngrad)
            grad_part(mj->j, i, t);
        else
            mj->row(mj->j, i - mj->ngrad, t);
    }
}

static void mixed_phase(score__pool *pool, train_job *j, size_t l, const float *A,
                        score__pool_part_fn row)
{
    mixed_job mj;
    size_t nl = j->p->n[l], cr = grad_chunk_rows(j->p, l);
    j->l = l;
    j->A = A;
    mj.j = j;
    mj.ngrad = (nl + cr - 1) / cr;
    mj.nrow = j->tp.nblk;
    mj.row = row;
    atomic_init(&mj.next, 0);
    score__pool_run(pool, mixed_run, &mj);
}

/* Before a phase that computes dz_l: its column sums are taken there when the job sums. */
static void sum_columns_of(train_job *j, size_t l)
{
    if (j->csum == NULL)
        return;
    memset(j->csum, 0, j->p->n[l] * sizeof *j->csum);
    j->csum_l = l;
}

/* Back-propagation through the cached forward of n rows, phase by phase (row blocks, then
 * weight-gradient chunks), each phase on the workspace's threads when it has several. */
int score__mlp_backward(const score_model *m, score__model_ws *ws, size_t n, const float *gout,
                        float *grad, float *gx)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    size_t L = p->L;
    score__pool *pool;
    train_job j;
    int rc;
    memset(&j, 0, sizeof j);
    j.tp = train_partition(m, ws, n);
    pool = j.tp.threads > 1 ? score__mlp_pool_of(w, j.tp.threads) : NULL;
    if ((rc = pack_weights(p, w, pool, m->dim, 1, gx != NULL, "score_model_backward")) !=
        SCORE_OK)
        return rc;
    j.p = p;
    j.w = w;
    j.dim = m->dim;
    j.n = n;
    j.gout = gout;
    j.grad = grad;
    j.gx = gx;
    j.cd.labels = w->lab;
    j.cd.labels_per_row = 1;
    j.dh = w->dha;
    j.dhn = w->dhb;
    /* a loss's (or a classifier's) one backward per forward consumes the cache: dz_l over
     * phi'(z_l) (j.dz, j.dzn set per layer below). Otherwise serially dh_part's dz_{l-1}
     * overwrites dz_l block by block; with threads the weight gradient of layer l (another
     * block's rows) may still be reading dz_l then */
    j.consume = ws != m->own_ws && L > 1;
    j.dz = j.consume ? w->d1[L - 1] : w->dz;
    j.dzn = pool != NULL ? w->dz2 : w->dz;
    /* on one thread the row blocks run in order: the dz passes can take the bias sums */
    j.csum = grad != NULL && pool == NULL ? w->csum : NULL;
    sum_columns_of(&j, L - 1);
    if (grad && pool != NULL) {
        mixed_phase(pool, &j, L, gout, out_cotangent_part);
    } else {
        if (grad)
            accum_grad_phase(pool, &j, L, gout);
        score__pool_for_each(pool, j.tp.nblk, out_cotangent_part, &j); /* and dz_{L-1} */
    }
    for (size_t l = L - 1; l >= 1; l--) {
        int fused = l > 1 && p->n[l - 1] == p->n[l]; /* dh_part computes dz_{l-1} */
        j.l = l;
        if (j.consume) {
            j.dz = w->d1[l];
            j.dzn = l > 1 ? w->d1[l - 1] : NULL;
        }
        if (l < L - 1 && p->n[l] != p->n[l + 1]) { /* not fused into dh_part of layer l + 1 */
            sum_columns_of(&j, l);
            score__pool_for_each(pool, j.tp.nblk, dz_part, &j);
        }
        if (l == 1 && gx == NULL) {
            if (grad)
                accum_grad_phase(pool, &j, l, j.dz);
            break;
        }
        if (grad && pool != NULL) {
            mixed_phase(pool, &j, l, j.dz, dh_part);
        } else {
            if (grad)
                accum_grad_phase(pool, &j, l, j.dz);
            j.l = l;
            if (fused)
                sum_columns_of(&j, l - 1);
            score__pool_for_each(pool, j.tp.nblk, dh_part, &j);
        }
        if (fused) {
            float *t = j.dz;
            j.dz = j.dzn;
            j.dzn = t;
        }
        if (l > 1 && !p->res[l]) {
            float *t = j.dh;
            j.dh = j.dhn;
            j.dhn = t;
        }
    }
    if (j.consume)
        ws->cached_n = 0;
    return SCORE_OK;
}
