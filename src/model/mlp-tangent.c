/* The tangent operations of the MLP kind (see mlp.c): JVP, VJP, the exact trace of the
 * Jacobian and the parameter gradients of the trace and of v^T J v, by forward-mode tangents
 * through cached primal rows, in blocks of rows within the tangent workspace budget; JVP, VJP
 * and the trace in row panels aligned to the global row numbers when the caller gives them
 * (mlp-panel.c). */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "core/pool-priv.h"
#include "kernel/kernel-priv.h"
#include "mlp-kind-priv.h"

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

static int nomem(const char *fn)
{
    return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
}

/* The start of jvp, vjp and trace: the entry check (score__mlp_check_inputs()), then the
 * primal rows of a block of nb rows and a tangent arena of nb * k * per + extra floats in the
 * kind part of ws (its forward cache is reused: no backward after these). */
static int tangent_begin(const char *fn, const score_model *m, score__model_ws *ws, size_t n,
                         const double *c, size_t nb, size_t k, size_t per, size_t extra)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    int rc = score__mlp_check_inputs(fn, m, ws, n, c);
    if (rc != SCORE_OK)
        return rc;
    ws->cached_n = 0;
    w->tz_len = 0; /* the blocks write the arena */
    if (score__mlp_ensure_primal(p, w, nb) != SCORE_OK ||
        ensure_tangent_rows(w, nb, k, per, extra) != SCORE_OK)
        return nomem(fn);
    return SCORE_OK;
}

/* ---- jvp, vjp, trace: one block of rows, then the unaligned and the aligned drivers ----- */

/* JVP of nb rows through the primal cache and the tangent arena (sized for nbmax rows):
 * out = nb x k x dim, fx (NULL: not wanted) = nb x dim. */
static void jvp_block(const mlp *p, mlp_ws *w, const float *const *wp, size_t dim, size_t nbmax,
                      size_t nb, const float *x, const double *c, const mlp_cond *cd, size_t k,
                      const float *v, float *out, float *fx)
{
    size_t L = p->L;
    float *A = w->tarena, *Bf = w->tarena + nbmax * k * p->maxh, *t;
    score__mlp_forward_block(p, w, dim, 0, nb, x, c, cd, wp, fx);
    t = tangent_forward(p, w, dim, nb, k, v, NULL, NULL, NULL, A, Bf);
    score__sgemm(0, 1, nb * k, dim, p->n[L - 1], 1.0f, t, p->n[L - 1], W(p, L), p->n[L - 1],
                 0.0f, out, dim);
}

/* VJP of nb rows (arena of 3 nbmax k maxh floats): out = nb x k x dim. */
static void vjp_block(const mlp *p, mlp_ws *w, const float *const *wp, size_t dim, size_t nbmax,
                      size_t nb, const float *x, const double *c, const mlp_cond *cd, size_t k,
                      const float *u, float *out)
{
    size_t L = p->L, R = nb * k, stride = nbmax * k * p->maxh;
    float *G = w->tarena, *GU = G + stride, *Gn = GU + stride;
    score__mlp_forward_block(p, w, dim, 0, nb, x, c, cd, wp, NULL);
    score__sgemm(0, 0, R, p->n[L - 1], dim, 1.0f, u, dim, W(p, L), p->n[L - 1], 0.0f, G,
                 p->n[L - 1]);
    for (size_t l = L - 1; l >= 1; l--) {
        size_t nl = p->n[l], np = p->n[l - 1];
        bcast_mul(nb, k, nl, w->d1[l], G, GU);
        if (l > 1 && p->res[l]) {
            score__sgemm(0, 0, R, np, nl, 1.0f, GU, nl, W(p, l), np, 1.0f, G, np);
        } else if (l > 1) {
            float *t;
            score__sgemm(0, 0, R, np, nl, 1.0f, GU, nl, W(p, l), np, 0.0f, Gn, np);
            t = G; G = Gn; Gn = t;
        } else {
            score__sgemm(0, 0, R, dim, nl, 1.0f, GU, nl, W(p, 1), np, 0.0f, out, dim);
        }
    }
}

/* Exact trace of nb rows (arena of 2 nbmax dim maxh floats, then wt = W_1x^T): tr = nb
 * values, fx as in jvp_block. */
static void trace_block(const mlp *p, mlp_ws *w, const float *const *wp, size_t dim,
                        size_t nbmax, size_t nb, const float *x, const double *c,
                        const mlp_cond *cd, double *tr, float *fx)
{
    size_t L = p->L, nL1 = p->n[L - 1];
    float *A = w->tarena, *Bf = w->tarena + nbmax * dim * p->maxh, *t;
    const float *wt = w->tarena + nbmax * dim * 2 * p->maxh, *wl = W(p, L);
    score__mlp_forward_block(p, w, dim, 0, nb, x, c, cd, wp, fx);
    t = tangent_forward(p, w, dim, nb, dim, NULL, wt, NULL, NULL, A, Bf);
    /* tr_b = sum_j W_L[j, :] . T[(b, j), :] */
    for (size_t b = 0; b < nb; b++) {
        double s = 0.0;
        for (size_t j = 0; j < dim; j++) {
            const float *tj = t + (b * dim + j) * nL1, *wj = wl + j * nL1;
            for (size_t i = 0; i < nL1; i++)
                s += (double)wj[i] * (double)tj[i];
        }
        tr[b] = s;
    }
}

enum { TAN_JVP, TAN_VJP, TAN_TRACE };

/* Bytes of the tangents of one aligned block (see tangent_run). */
#define SCORE__MLP_TANGENT_PANEL_BYTES ((size_t)1 << 20)

/* One of the three operations on n rows. Unaligned: blocks of rows within the tangent budget
 * from the call's first row. Aligned (score__mlp_panels_aligned(): the rows' global numbers
 * are known): spans of whole panels of mlp-panel.c within blocks of a fixed global grid, on
 * the calling thread (the kernels use the workspace's primal cache and tangent arena), so
 * that a row's result does not depend on how the rows are split. */
typedef struct tan_call {
    int op;
    const mlp *p;
    mlp_ws *w;
    size_t dim, k, nb;
} tan_call;

static void tan_span(void *ctx, const score__mlp_span *s, size_t thread)
{
    const tan_call *t = ctx;
    (void)thread;
    if (t->op == TAN_JVP)
        jvp_block(t->p, t->w, NULL, t->dim, t->nb, s->M, s->x, s->c, &s->cd, t->k, s->v, s->out,
                  s->fx);
    else if (t->op == TAN_VJP)
        vjp_block(t->p, t->w, NULL, t->dim, t->nb, s->M, s->x, s->c, &s->cd, t->k, s->v,
                  s->out);
    else
        trace_block(t->p, t->w, NULL, t->dim, t->nb, s->M, s->x, s->c, &s->cd, s->val, s->fx);
}

static int tangent_run(const char *fn, int op, const score_model *m, score__model_ws *ws,
                       size_t n, const float *x, const double *c, size_t k, const float *v,
                       float *out, double *tr, float *fx)
{
    const mlp *p = impl_of(m);
    mlp_ws *w = score__mlp_ws_of(p, ws);
    const size_t P = SCORE__MLP_PANEL, dim = m->dim;
    const int aligned = score__mlp_panels_aligned(ws, n);
    size_t per = (op == TAN_VJP ? 3 : 2) * p->maxh, extra = op == TAN_TRACE ? dim * p->n[1] : 0;
    size_t nb = block_rows(p, aligned ? SIZE_MAX : n, k, per);
    mlp_cond cd = score__mlp_cond_of(ws), cb;
    tan_call tc;
    int rc;
    if (aligned) {
        /* whole panels, within SCORE__MLP_TANGENT_PANEL_BYTES of tangents too, at least one
         * panel. With a multi-threaded BLAS every span is a whole block: one panel there, so
         * that a small call (the last active rows of an adaptive solve) pays one panel too. */
        size_t row_bytes, cap = 0;
        if (score__mul_size(k, per * sizeof(float), &row_bytes) == 0 && row_bytes > 0)
            cap = SCORE__MLP_TANGENT_PANEL_BYTES / row_bytes;
        nb = (nb < cap ? nb : cap) / P * P;
        nb = nb < P || score__blas_threads() > 1 ? P : nb;
    }
    if ((rc = tangent_begin(fn, m, ws, n, c, nb, k, per, extra)) != SCORE_OK)
        return rc;
    if (op == TAN_TRACE)
        w1x_transposed(p, dim, w->tarena + nb * dim * 2 * p->maxh);
    tc.op = op;
    tc.p = p;
    tc.w = w;
    tc.dim = dim;
    tc.k = k;
    tc.nb = nb;
    if (aligned) {
        score__mlp_panels rq;
        memset(&rq, 0, sizeof rq);
        rq.nb = nb;
        rq.dim = dim;
        rq.x = x;
        rq.c = c;
        rq.cd = cd;
        rq.vw = op == TAN_TRACE ? 0 : k * dim;
        rq.v = v;
        rq.ow = op == TAN_TRACE ? 0 : k * dim;
        rq.out = out;
        rq.fw = dim;
        rq.fx = fx;
        rq.val = tr;
        rq.serial = 1;
        rq.span = tan_span;
        rq.ctx = &tc;
        return score__mlp_run_panels(p, w, ws, n, &rq, 1, fn);
    }
    /* the primal pass as score_model_forward's (its products on score__gemm_wt), so that the
     * outputs fx are its values bit for bit; the aligned panels above keep the BLAS products
     * of mlp-panel.c (the samplers' and likelihoods' recorded values) */
    if ((rc = score__mlp_pack_forward(p, w, NULL, dim, fn)) != SCORE_OK)
        return rc;
    for (size_t b0 = 0; b0 < n; b0 += nb) {
        size_t rows = n - b0 < nb ? n - b0 : nb;
        cb = score__mlp_cond_at(p, &cd, b0);
        if (op == TAN_JVP)
            jvp_block(p, w, w->wpk, dim, nb, rows, x + b0 * dim, c + b0, &cb, k,
                      v + b0 * k * dim, out + b0 * k * dim, fx ? fx + b0 * dim : NULL);
        else if (op == TAN_VJP)
            vjp_block(p, w, w->wpk, dim, nb, rows, x + b0 * dim, c + b0, &cb, k,
                      v + b0 * k * dim, out + b0 * k * dim);
        else
            trace_block(p, w, w->wpk, dim, nb, rows, x + b0 * dim, c + b0, &cb, tr + b0,
                        fx ? fx + b0 * dim : NULL);
    }
    return SCORE_OK;
}

int score__mlp_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, size_t k, const float *v, float *out, float *fx)
{
    return tangent_run("score_model_jvp", TAN_JVP, m, ws, n, x, c, k, v, out, NULL, fx);
}

int score__mlp_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, size_t k, const float *u, float *out)
{
    return tangent_run("score_model_vjp", TAN_VJP, m, ws, n, x, c, k, u, out, NULL, NULL);
}

int score__mlp_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, double *tr, float *fx)
{
    return tangent_run("score_model_trace", TAN_TRACE, m, ws, n, x, c, m->dim, NULL, NULL, tr,
                       fx);
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

/* Lanes of tangent_grad on the model's threads (SCORE_MODEL_PARAM_THREADS). The blocks of a
 * call are cut into lanes of consecutive blocks; a lane runs its blocks in order, exactly as
 * the serial path does, adding their parameter gradient to a buffer of its own (the first lane
 * to the caller's grad), and the other lanes' buffers are then added to grad in lane order.
 * The lanes run on the threads at the same time (any thread any lane); their number depends
 * on the work of the call only (about one per SCORE__MLP_TANGENT_LANE_FLOPS, 2 ..
 * SCORE__MLP_TANGENT_LANES, and one below SCORE__MLP_TANGENT_PAR_FLOPS, where waking the
 * threads and adding a buffer cost more than they save), never on the thread count: results
 * are bit-identical for every thread count. A call of one block (the sliced loss: 2 stacked
 * rows per row) is cut into blocks of n / lanes rows when it has several lanes. Each thread
 * has a block workspace (within the tangent budget), and each lane but the first a buffer of
 * n_params floats: beyond the budget (cleared part by part right after its sum, so that the
 * next call with the same layout finds it zero). On one thread, 4 lanes of the Hyvärinen step (d = 64,
 * width 256, 256 rows) cost no measurable time; 8 cost ~4%. */
#define SCORE__MLP_TANGENT_LANES 8
#define SCORE__MLP_TANGENT_LANE_FLOPS 4e9
#define SCORE__MLP_TANGENT_PAR_FLOPS 1e8

/* One call of tangent_grad: its arguments, its blocks and lanes, and the buffers. */
typedef struct tg_job {
    const mlp *p;
    size_t dim, n, k, nb, nblocks, nlanes;
    int unit, need_f;
    const float *x, *V;
    const double *c, *w;
    const gout_src *gsrc;
    mlp_cond cd;
    float *grad, *fx;
    double *val;
    size_t wsf;         /* floats of one thread's block workspace (tg_layout) */
    float *arena;       /* one block workspace per thread */
    float *lanebuf;     /* lanes 1 .. nlanes - 1: a parameter gradient each (n_params floats) */
    /* the weights packed for score__gemm_wt once per call (tg_pack): fw[l] W_l for h W_l^T
     * (l < L; fw[L] when the outputs are needed), w1x W_1's x columns (probes), bw[l] W_l for
     * D W_l (l >= 2) */
    const float *fw[MAXL + 1], *bw[MAXL + 1], *w1x;
    int lanebuf_zero;   /* the lane buffers are zero already (cleared by the last call's sum) */
    atomic_size_t next; /* the next lane to take */
} tg_job;

/* One block of rows b0 .. b0 + rows - 1 in the workspace ws: its forward pass of the stacked
 * primal and tangent rows (the outputs F and, from them, gout), then its reverse pass through
 * both, including the phi'' terms; adds the block's parameter gradient to grad (but the tangent
 * part of dW_1's x columns with unit tangents, summed in ws->sgu) and writes its values and
 * outputs. Long (about 170 lines) by design: the forward and reverse passes share a dozen
 * matrices laid out by tg_layout() and the per-layer indices, and are read against each other
 * (each reverse product undoes one forward product); split into functions they would pass
 * that whole state along. */
static void tg_block(const tg_job *jb, const tg_ws *wsp, size_t b0, size_t rows, float *grad)
{
    const mlp *p = jb->p;
    const tg_ws ws = *wsp;
    const int unit = jb->unit, fold = fold_last(p, unit), need_f = jb->need_f;
    const size_t dim = jb->dim, k = jb->k, L = p->L, nL1 = p->n[L - 1], n1 = p->n[1],
                 n0 = p->n[0];
    const float *x = jb->x, *V = jb->V, *wl = W(p, L);
    const double *c = jb->c, *w = jb->w;
    const gout_src *gsrc = jb->gsrc;
    const mlp_cond cd = jb->cd;
    float *fx = jb->fx;
    double *val = jb->val;
    mlp_cond cb;
    size_t R = rows * k, S = R + rows;
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
    cb = score__mlp_cond_at(p, &cd, b0);
    score__mlp_embed_rows(p, dim, rows, x + b0 * dim, c + b0, &cb, ws.h0);
    score__gemm_wt(rows, n1, n0, ws.h0, n0, jb->fw[1], Zp[1], 0, NULL, SCORE__ACT_IDENTITY, NULL);
    score__mlp_add_labels(p, &cb, rows, Zp[1], NULL);
    score__bias_act_forward_res(rows, n1, Zp[1], B(p, 1), p->act, NULL, H[1], ws.d1[1],
                                ws.d2[1]);
    if (unit) {
        for (size_t b = 0; b < rows; b++)
            for (size_t j = 0; j < k; j++)
                score__mul(n1, ws.d1[1] + b * n1, ws.wt + j * n1, T[1] + (b * k + j) * n1);
    } else {
        score__gemm_wt(R, n1, dim, Vb, dim, jb->w1x, U[1], 0, NULL, SCORE__ACT_IDENTITY, NULL);
        bcast_mul(rows, k, n1, ws.d1[1], U[1], T[1]);
    }
    /* ---- hidden layers 2 .. L-1: one GEMM over [T ; h] */
    for (size_t l = 2; l < L; l++) {
        size_t nl = p->n[l], np = p->n[l - 1];
        score__gemm_wt(S, nl, np, ws.X[l - 1], np, jb->fw[l], ws.Z[l], 0, NULL,
                       SCORE__ACT_IDENTITY, NULL);
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
    if (need_f)
        score__gemm_wt(rows, dim, nL1, H[L - 1], nL1, jb->fw[L], Fb, 0, B(p, L),
                       SCORE__ACT_IDENTITY, NULL);
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
        score__gemm_wt(rows, nL1, dim, gout, dim, jb->bw[L], G + R * nL1, 0, NULL,
                       SCORE__ACT_IDENTITY, NULL);
        score__sgemm(1, 0, dim, nL1, rows, 1.0f, gout, dim, H[L - 1], nL1, 1.0f,
                     grad + p->woff[L], nL1);
    } else {
        /* Y = [V ; gout]: G = Y W_L (tangent rows P = V W_L, value = T . P), then the
         * weights on the tangent rows of G and Y; dW_L += Y^T [T ; h]. */
        memcpy(ws.Y, Vb, R * dim * sizeof *ws.Y);
        score__gemm_wt(S, nL1, dim, ws.Y, dim, jb->bw[L], G, 0, NULL, SCORE__ACT_IDENTITY,
                       NULL);
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
                score__gemm_wt(S, np, nl, ws.D, nl, jb->bw[l], G, 1, NULL, SCORE__ACT_IDENTITY,
                               NULL);
            } else {
                float *tmp;
                score__gemm_wt(S, np, nl, ws.D, nl, jb->bw[l], Gn, 0, NULL, SCORE__ACT_IDENTITY,
                               NULL);
                tmp = G; G = Gn; Gn = tmp;
            }
            continue;
        }
        /* layer 1: dW_1 += dz^T h_0 (context columns included), the label table, and the
         * tangent part on the x columns */
        score__sgemm(1, 0, n1, n0, rows, 1.0f, dz, n1, ws.h0, n0, 1.0f, grad + p->woff[1], n0);
        score__mlp_label_grad(p, &cb, rows, dz, 0, n1, grad);
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

/* Lane `lane` of the call on thread `thread` (its block workspace): the lane's blocks in
 * order into its gradient buffer, then its sum of GU_1 into dW_1's x columns. */
static void tg_lane(tg_job *jb, size_t lane, size_t thread)
{
    const mlp *p = jb->p;
    const size_t b_first = lane * jb->nblocks / jb->nlanes;
    const size_t b_end = (lane + 1) * jb->nblocks / jb->nlanes, dim = jb->dim, n1 = p->n[1];
    float *target = lane == 0 ? jb->grad : jb->lanebuf + (lane - 1) * p->n_params;
    int ovf = 0;
    tg_ws ws;
    (void)tg_layout(p, dim, jb->nb, jb->k, jb->unit, jb->arena + thread * jb->wsf, &ws, &ovf);
    if (lane > 0 && !jb->lanebuf_zero)
        memset(target, 0, p->n_params * sizeof *target);
    if (jb->unit) {
        w1x_transposed(p, dim, ws.wt);
        memset(ws.sgu, 0, dim * n1 * sizeof *ws.sgu);
    }
    for (size_t bi = b_first; bi < b_end; bi++) {
        size_t b0 = bi * jb->nb, rows = jb->n - b0 < jb->nb ? jb->n - b0 : jb->nb;
        tg_block(jb, &ws, b0, rows, target);
    }
    if (jb->unit) {
        float *g1 = target + p->woff[1];
        for (size_t i = 0; i < n1; i++)
            for (size_t j = 0; j < dim; j++)
                g1[i * p->n[0] + j] += ws.sgu[j * n1 + i];
    }
}

/* Takes lanes from the shared counter until none is left (thread t: its own workspace). */
static void tg_lanes_run(void *ctx, size_t t, size_t nt)
{
    tg_job *jb = ctx;
    size_t lane;
    (void)nt;
    while ((lane = atomic_fetch_add_explicit(&jb->next, 1, memory_order_relaxed)) < jb->nlanes)
        tg_lane(jb, lane, t);
}

/* Parameters of one part of the final sum of the lanes' buffers. */
#define SCORE__MLP_TANGENT_SUM_FLOATS ((size_t)16384)

/* Part `part` of grad += lane buffers 1, 2, ... in lane order (the same additions for every
 * split of the parameters); then that part of the buffers is cleared while in cache, so that
 * the next call with the same layout need not clear them (mlp_ws.tz_off / tz_len). */
static void tg_sum_part(void *ctx, size_t part, size_t thread)
{
    const tg_job *jb = ctx;
    size_t np = jb->p->n_params, i0 = part * SCORE__MLP_TANGENT_SUM_FLOATS;
    size_t cnt = np - i0 < SCORE__MLP_TANGENT_SUM_FLOATS ? np - i0 : SCORE__MLP_TANGENT_SUM_FLOATS;
    (void)thread;
    for (size_t l = 1; l < jb->nlanes; l++) {
        float *buf = jb->lanebuf + (l - 1) * np + i0;
        score__saxpy(cnt, 1.0f, buf, jb->grad + i0);
        memset(buf, 0, cnt * sizeof *buf);
    }
}

/* Shared engine of trace_grad (V == NULL: unit tangents, k = dim, w per row) and vjv_grad
 * (probes V, w per tangent row or NULL = 1). Accumulates the parameter gradient of
 * sum_r w_r v_r^T J v_r + sum_b gout_b . F_b; writes the values (tr or vjv) and fx; blocks of
 * rows (tg_block()) in lanes (see SCORE__MLP_TANGENT_LANES). With gsrc->fn, that function is
 * called for each block's rows, from the model's threads when there are lanes (several at a
 * time, each row once). */
/* The weights of one tangent_grad call packed for score__gemm_wt (see tg_job), into the
 * workspace's arena for packed weights; once per call, read by every lane. Returns 0 when out
 * of memory. */
static int tg_pack(const mlp *p, mlp_ws *kw, size_t dim, tg_job *jb)
{
    const size_t L = p->L;
    size_t need = 0, off = 0;
    float *a;
#define TG_PACK_SIZE(N, K) (need += (K) * score__gemm_wt_ld(N) + 16)
    for (size_t l = 1; l < L; l++)
        TG_PACK_SIZE(p->n[l], p->n[l - 1]);
    if (jb->need_f)
        TG_PACK_SIZE(dim, p->n[L - 1]);
    if (!jb->unit)
        TG_PACK_SIZE(p->n[1], dim);
    for (size_t l = 2; l <= L; l++)
        TG_PACK_SIZE(p->n[l - 1], p->n[l]);
#undef TG_PACK_SIZE
    if ((a = score__mlp_wpack_arena(kw, need)) == NULL)
        return 0;
    for (size_t l = 1; l < L; l++) {
        float *d = a + off;
        score__gemm_wt_pack(p->n[l], p->n[l - 1], W(p, l), p->n[l - 1], d);
        jb->fw[l] = d;
        off += p->n[l - 1] * score__gemm_wt_ld(p->n[l]) + 16;
    }
    jb->fw[L] = NULL;
    if (jb->need_f) {
        float *d = a + off;
        score__gemm_wt_pack(dim, p->n[L - 1], W(p, L), p->n[L - 1], d);
        jb->fw[L] = d;
        off += p->n[L - 1] * score__gemm_wt_ld(dim) + 16;
    }
    jb->w1x = NULL;
    if (!jb->unit) {
        float *d = a + off;
        score__gemm_wt_pack(p->n[1], dim, W(p, 1), p->n[0], d);
        jb->w1x = d;
        off += dim * score__gemm_wt_ld(p->n[1]) + 16;
    }
    jb->bw[1] = NULL;
    for (size_t l = 2; l <= L; l++) {
        float *d = a + off;
        score__gemm_wt_pack_kn(p->n[l - 1], p->n[l], W(p, l), p->n[l - 1], d);
        jb->bw[l] = d;
        off += p->n[l] * score__gemm_wt_ld(p->n[l - 1]) + 16;
    }
    return 1;
}

static int tangent_grad(const score_model *m, score__model_ws *mws, const char *fn, size_t n,
                        const float *x, const double *c, size_t k, const float *V,
                        const double *w, const gout_src *gsrc, float *grad, double *val,
                        float *fx)
{
    const mlp *p = impl_of(m);
    mlp_ws *kw = score__mlp_ws_of(p, mws);
    const int unit = V == NULL;
    size_t dim = m->dim, fixed, per_row, nb, nb_cache, nblocks, lanes, T, total;
    size_t avail = p->budget / sizeof(float);
    double flops = 0.0;
    int ovf = 0;
    score__pool *pool = NULL;
    tg_job jb;
    int rc = score__mlp_check_inputs(fn, m, mws, n, c);
    if (rc != SCORE_OK)
        return rc;
    /* Lanes from the work (about 6 n (k + 1) sum_l n_{l-1} n_l flops). */
    for (size_t l = 1; l <= p->L; l++)
        flops += 6.0 * (double)n * (double)(k + 1) * (double)p->n[l - 1] * (double)p->n[l];
    lanes = 1;
    if (flops >= SCORE__MLP_TANGENT_PAR_FLOPS) {
        double f = flops / (p->lane_flops > 0.0 ? p->lane_flops : SCORE__MLP_TANGENT_LANE_FLOPS);
        lanes = f >= (double)SCORE__MLP_TANGENT_LANES ? SCORE__MLP_TANGENT_LANES
                : f < 2.0                             ? 2
                                                      : (size_t)f;
    }
    lanes = lanes < n ? lanes : n;
    /* Rows per block: within the tangent budget, and stacked matrices of about
     * SCORE__MLP_TANGENT_BLOCK bytes (at least one row); at most n / lanes rows; then blocks
     * of equal size. */
    fixed = tg_layout(p, dim, 0, k, unit, NULL, NULL, &ovf);
    per_row = tg_layout(p, dim, 1, k, unit, NULL, NULL, &ovf) - fixed;
    nb = avail > fixed && per_row > 0 ? (avail - fixed) / per_row : 1;
    nb_cache = SCORE__MLP_TANGENT_BLOCK / (sizeof(float) * p->maxh) / (k + 1);
    nb = nb_cache < nb ? nb_cache : nb;
    nb = nb < 1 ? 1 : nb > n ? n : nb;
    nblocks = (n + nb - 1) / nb;
    if (nblocks < lanes)
        nblocks = lanes;
    nb = (n + nblocks - 1) / nblocks;
    nblocks = (n + nb - 1) / nb;
    lanes = lanes < nblocks ? lanes : nblocks;
    T = (size_t)score__par_threads(score__model_ws_threads(m, mws), lanes);
    if (T > 1 && (pool = score__mlp_pool_of(kw, (int64_t)T)) == NULL)
        T = 1;
    memset(&jb, 0, sizeof jb);
    jb.p = p;
    jb.dim = dim;
    jb.n = n;
    jb.k = k;
    jb.nb = nb;
    jb.nblocks = nblocks;
    jb.nlanes = lanes;
    jb.unit = unit;
    jb.need_f = fx != NULL || gsrc->fn != NULL;
    jb.x = x;
    jb.V = V;
    jb.c = c;
    jb.w = w;
    jb.gsrc = gsrc;
    jb.cd = score__mlp_cond_of(mws);
    jb.grad = grad;
    jb.fx = fx;
    jb.val = val;
    jb.wsf = tg_layout(p, dim, nb, k, unit, NULL, NULL, &ovf);
    jb.wsf += (16 - jb.wsf % 16) % 16; /* each workspace on a 64-byte boundary of the arena */
    total = mul_ovf(T, jb.wsf, &ovf);
    if (total > SIZE_MAX / 2 - mul_ovf(lanes - 1, p->n_params, &ovf))
        ovf = 1;
    else
        total += (lanes - 1) * p->n_params;
    if (ovf || ensure_tangent(kw, total) != SCORE_OK || !tg_pack(p, kw, dim, &jb))
        return nomem(fn);
    jb.arena = kw->tarena;
    jb.lanebuf = kw->tarena + T * jb.wsf;
    jb.lanebuf_zero = kw->tz_off == T * jb.wsf && kw->tz_len >= (lanes - 1) * p->n_params;
    /* this call writes the block workspaces; its lane buffers are zero again after the sum */
    kw->tz_off = T * jb.wsf;
    kw->tz_len = lanes > 1 ? (lanes - 1) * p->n_params : 0;
    if (pool == NULL) {
        for (size_t l = 0; l < lanes; l++)
            tg_lane(&jb, l, 0);
    } else {
        atomic_init(&jb.next, 0);
        score__pool_run(pool, tg_lanes_run, &jb);
    }
    if (lanes > 1)
        score__pool_for_each(pool, (p->n_params + SCORE__MLP_TANGENT_SUM_FLOATS - 1) /
                                       SCORE__MLP_TANGENT_SUM_FLOATS,
                             tg_sum_part, &jb);
    return SCORE_OK;
}

void score__mlp_set_tangent_lane_flops(score_model *m, double flops)
{
    mlp *p = impl_of(m);
    if (p != NULL)
        p->lane_flops = flops;
}

int score__mlp_trace_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, const double *w, const float *gout, float *grad,
                          double *tr, float *fx)
{
    gout_src g = {gout, NULL, NULL};
    return tangent_grad(m, ws, "score_model_trace_grad", n, x, c, m->dim, NULL, w, &g, grad, tr,
                        fx);
}

int score__mlp_vjv_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, size_t k, const float *v, const double *w,
                        const float *gout, float *grad, double *vjv, float *fx)
{
    gout_src g = {gout, NULL, NULL};
    return tangent_grad(m, ws, "score_model_vjv_grad", n, x, c, k, v, w, &g, grad, vjv, fx);
}

int score__mlp_trace_grad_fn(const score_model *m, score__model_ws *ws, size_t n,
                             const float *x, const double *c, const double *w,
                             score__gout_fn gfn, void *gctx, float *grad, double *tr, float *fx)
{
    gout_src g = {NULL, gfn, gctx};
    return tangent_grad(m, ws, "score_model_trace_grad", n, x, c, m->dim, NULL, w, &g, grad, tr,
                        fx);
}

int score__mlp_vjv_grad_fn(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                           const double *c, size_t k, const float *v, const double *w,
                           score__gout_fn gfn, void *gctx, float *grad, double *vjv, float *fx)
{
    gout_src g = {NULL, gfn, gctx};
    return tangent_grad(m, ws, "score_model_vjv_grad", n, x, c, k, v, w, &g, grad, vjv, fx);
}
