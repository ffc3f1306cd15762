/* Internal interface between the files of the MLP kind (mlp.c, mlp-train.c, mlp-tangent.c):
 * the prepared network, its workspace and the primal helpers they share. Never installed;
 * other layers use mlp-priv.h or the kind-neutral operations of model-priv.h. */
#ifndef LIBSCORE_MLP_KIND_PRIV_H
#define LIBSCORE_MLP_KIND_PRIV_H

#include "core/pool-priv.h"
#include "mlp-priv.h"

#define MAXL (SCORE__MLP_MAX_HIDDEN + 2)

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
    size_t K;          /* classes of the label input (0: none); label K is the null label */
    size_t m;          /* width of the context input (0: none) */
    size_t loff;       /* offset of the label table ((K + 1) x n_1) in theta, after layer L */
    int act, emb;
    float *theta;
    float *fourier;    /* half values (Fourier kind) */
    double *freq;      /* half angular frequencies */
    size_t budget;     /* tangent workspace bound (bytes) */
    double lane_flops; /* work per lane of the tangent training calls (mlp-tangent.c; 0: the
                        * default SCORE__MLP_TANGENT_LANE_FLOPS): a test hook */
    /* a classifier (SCORE_MODEL_CLASSIFIER, classifier.c): the schedule it is trained under
     * (owned copy); n[L] is then its number of classes (NUM_CLASSES) and K is 0 */
    score_schedule *sched;
} mlp;

/* The MLP's part of a workspace (score__model_ws): everything the compute operations write.
 * Laid out for the architecture in L, n (remade when a call brings a model of another one). */
typedef struct mlp_ws {
    size_t L, n[MAXL];
    /* primal workspace: rows of the cached batch */
    size_t pcap;
    float *parena;
    float *h0;
    float *h[MAXL], *d1[MAXL];
    float *dz, *dha, *dhb;
    float *dz2;    /* a second dz: the threaded backward's next layer's dz (see mlp-train.c) */
    int32_t *lab;  /* the label of every cached row (0 .. K; all K without a label input) */
    double *csum;  /* maxh: a hidden layer's bias-gradient sums in the serial backward */
    /* tangent workspace */
    size_t tcap; /* floats */
    float *tarena;
    /* floats tz_off .. tz_off + tz_len - 1 of tarena are zero (mlp-tangent.c: the lane
     * buffers of the last trace / vjv gradient, cleared after their sum); a new arena is
     * all zero (calloc) */
    size_t tz_off, tz_len;
    /* inference workspace (mlp_infer): one block of rows per thread, no cache */
    size_t icap; /* floats */
    float *iarena;
    /* the training path (mlp-train.c): the weights packed for score__gemm_wt, per call
     * (the forward's W_l, the backward's dh = dz W_l operands); wpk[l] points into wparena.
     * The energy kind (energy.c, which never runs mlp-train.c) packs its weights per
     * operation into wparena too (its own layout, en_pack; wpk unused) */
    size_t wpcap; /* floats */
    float *wparena;
    const float *wpk[MAXL + 1];
    /* the energy kind (energy.c): panel arena, and x (with the context and labels after it)
     * and c of the rows of the cached forward */
    size_t ecap, ecn; /* floats of earena; rows of ecx / ecc */
    float *earena, *ecx;
    double *ecc;
    /* threads of SCORE_MODEL_PARAM_THREADS > 1 (made on first use) */
    score__pool *pool;
    size_t pool_failed;
} mlp_ws;

/* The label and context inputs of a call as the MLP reads them (see score__model_ws): pointers
 * at the entry of the first row of a block (score__mlp_cond_at()). A model without a label
 * input (K = 0) ignores labels, one without a context input (m = 0) ignores a context; the
 * entry checks (score__mlp_check_inputs()) refuse a missing context and bad values. */
typedef struct mlp_cond {
    const int32_t *labels; /* NULL: every row has the null label K */
    const float *context;  /* NULL: none */
    int labels_per_row, context_per_row;
} mlp_cond;

static inline mlp_cond score__mlp_cond_of(const score__model_ws *ws)
{
    mlp_cond cd = {ws->labels, ws->context, ws->labels_per_row, ws->context_per_row};
    return cd;
}

/* The inputs seen from row b0 on. */
static inline mlp_cond score__mlp_cond_at(const mlp *p, const mlp_cond *cd, size_t b0)
{
    mlp_cond r = *cd;
    if (r.labels != NULL && r.labels_per_row)
        r.labels += b0;
    if (r.context != NULL && r.context_per_row)
        r.context += b0 * p->m;
    return r;
}

/* The label of row b (0 .. K). */
static inline size_t score__mlp_label(const mlp *p, const mlp_cond *cd, size_t b)
{
    return cd->labels != NULL ? (size_t)cd->labels[cd->labels_per_row ? b : 0] : p->K;
}

static inline mlp *impl_of(const score_model *m)
{
    return (mlp *)m->impl;
}

static inline float *W(const mlp *p, size_t l) { return p->theta + p->woff[l]; }
static inline float *B(const mlp *p, size_t l) { return p->theta + p->boff[l]; }
/* Row y of the label table: the vector added to z_1 for label y. */
static inline float *LAB(const mlp *p, size_t y) { return p->theta + p->loff + y * p->n[1]; }

/* mlp.c: the kind part of ws, its buffers dropped when they were laid out for another
 * architecture. */
mlp_ws *score__mlp_ws_of(const mlp *p, score__model_ws *ws);
/* mlp.c: the pool for `threads` threads (NULL: run on the calling thread). */
score__pool *score__mlp_pool_of(mlp_ws *w, int64_t threads);
/* mlp.c: sizes the primal cache for `rows` rows. */
int score__mlp_ensure_primal(const mlp *p, mlp_ws *w, size_t rows);
/* mlp.c: input rows [x ; e(c) ; context] into h0 (nb x n_0); cd at the first row. */
void score__mlp_embed_rows(const mlp *p, size_t dim, size_t nb, const float *x, const double *c,
                           const mlp_cond *cd, float *h0);
/* mlp.c: z_1 += the label table's row of each of nb rows (no-op without a label input); the
 * labels are also written to keep when it is not NULL. */
void score__mlp_add_labels(const mlp *p, const mlp_cond *cd, size_t nb, float *z1,
                           int32_t *keep);
/* mlp.c: the label table's gradient, columns j0 .. j1 - 1: row y += dz_1 of every row with
 * label y, rows in order (no-op without a label input). dz: nb x n_1. */
void score__mlp_label_grad(const mlp *p, const mlp_cond *cd, size_t nb, const float *dz,
                           size_t j0, size_t j1, float *grad);
/* mlp.c: forward pass of nb rows into rows r0 .. of the primal cache (output layer when out);
 * x, c, cd and out at the block's first row. wp: NULL (every product on the BLAS), or wp[l]
 * the packed W_l (score__gemm_wt_pack) for l = 1 .. L: the products on score__gemm_wt with the
 * bias, activation, residual and phi' fused. */
void score__mlp_forward_block(const mlp *p, const mlp_ws *w, size_t dim, size_t r0, size_t nb,
                              const float *x, const double *c, const mlp_cond *cd,
                              const float *const *wp, float *out);
/* mlp-train.c: the workspace's arena for packed weights (score__gemm_wt_pack), grown to at
 * least `floats` floats from a 64-byte boundary (the pointer returned); NULL when out of
 * memory. One call's packs at a time: the training forward's, the backward's or the tangent
 * gradients' (each packs at its start). */
float *score__mlp_wpack_arena(mlp_ws *w, size_t floats);
/* mlp-train.c: w->wpk[1 .. L] = the weights packed for score__mlp_forward_block (its wp), in
 * that arena, on the pool's threads (NULL: the calling thread); SCORE_E_NOMEM (with a message
 * for fn) when out of memory. */
int score__mlp_pack_forward(const mlp *p, mlp_ws *w, score__pool *pool, size_t dim,
                            const char *fn);
/* mlp.c: the entry check of every operation on n rows: SCORE_E_NUMERIC when c (or a context
 * vector) holds a NaN or an infinity, SCORE_E_INVAL when the model has a context input and
 * ws->context is NULL, SCORE_E_RANGE for a label outside 0 .. K; with a message for fn. */
int score__mlp_check_inputs(const char *fn, const score_model *m, const score__model_ws *ws,
                            size_t n, const double *c);

/* mlp-panel.c: evaluation in row panels aligned to the global row numbers of
 * score__model_ws for the tangent path (see the file's comment). Global row r sits at position
 * r % SCORE__MLP_PANEL of a span of whole panels. */
#define SCORE__MLP_PANEL 48

/* One span handed to a kernel: M rows (whole panels), every per-row buffer at its first row.
 * Positions of rows not in the call hold copies of a call row; the kernel computes all M. */
typedef struct score__mlp_span {
    size_t M;
    float *x;        /* M x dim inputs */
    double *c;       /* M conditioning values */
    mlp_cond cd;     /* labels and context of the M rows */
    float *v;        /* M x vw extra inputs (NULL when vw = 0) */
    float *context;  /* the buffer behind cd.context when the context is per row */
    float *out;      /* M x ow outputs */
    float *fx;       /* M x fw second outputs, or NULL when the call wants none */
    double *val;     /* M values, or NULL when the call wants none */
    float *scratch;  /* the kernel's scratch (scratch floats), one per thread */
} score__mlp_span;

/* A call through score__mlp_run_panels(): its per-row buffers, indexed by call row, and the
 * kernel that evaluates a span. */
typedef struct score__mlp_panels {
    size_t nb;           /* most rows of a block (with a multi-threaded BLAS: the rows of a
                          * block of the global grid): a multiple of SCORE__MLP_PANEL, a
                          * function of the architecture, budgets and BLAS threads only */
    size_t dim;          /* floats of an input row */
    const float *x;
    const double *c;
    mlp_cond cd;         /* at the call's first row */
    size_t vw;           /* floats of a row of v (0: no extra input) */
    const float *v;
    size_t ow;           /* floats of a row of out (0: no output) */
    float *out;
    size_t fw;           /* floats of a row of fx */
    float *fx;           /* NULL: none */
    double *val;         /* NULL: none */
    size_t scratch;      /* floats of scratch per thread */
    int serial;          /* 1: every span on the calling thread (the kernel writes state of
                          * the shared workspace) */
    void (*span)(void *ctx, const score__mlp_span *s, size_t thread);
    void *ctx;
} score__mlp_panels;

/* 1 when a call of n rows through ws is to be evaluated in aligned panels (ws describes the
 * rows' global numbers and n is a whole number of segments). */
int score__mlp_panels_aligned(const score__model_ws *ws, size_t n);
/* Runs rq over the n call rows described by ws (score__mlp_panels_aligned() holds), spans on
 * the pool of `threads` threads unless rq->serial. SCORE_E_NOMEM with a message for fn. */
int score__mlp_run_panels(const mlp *p, mlp_ws *w, const score__model_ws *ws, size_t n,
                          const score__mlp_panels *rq, int64_t threads, const char *fn);
/* Grows the workspace's panel / inference arena to need floats (contents not kept);
 * SCORE_E_NOMEM with a message for fn. */
int score__mlp_ensure_iarena(mlp_ws *w, size_t need, const char *fn);

/* mlp.c: the forward pass without a backward cache (the ops' infer). */
int score__mlp_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, float *out);

/* mlp-train.c */
int score__mlp_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                       const double *c, float *out);
int score__mlp_backward(const score_model *m, score__model_ws *ws, size_t n, const float *gout,
                        float *grad, float *gx);

/* mlp-tangent.c */
int score__mlp_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, size_t k, const float *v, float *out, float *fx);
int score__mlp_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                   const double *c, size_t k, const float *u, float *out);
int score__mlp_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, double *tr, float *fx);
int score__mlp_trace_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, const double *w, const float *gout, float *grad,
                          double *tr, float *fx);
int score__mlp_vjv_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, size_t k, const float *v, const double *w,
                        const float *gout, float *grad, double *vjv, float *fx);
int score__mlp_trace_grad_fn(const score_model *m, score__model_ws *ws, size_t n,
                             const float *x, const double *c, const double *w,
                             score__gout_fn gfn, void *gctx, float *grad, double *tr, float *fx);
int score__mlp_vjv_grad_fn(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                           const double *c, size_t k, const float *v, const double *w,
                           score__gout_fn gfn, void *gctx, float *grad, double *vjv, float *fx);

/* energy.c: the compute operations of the energy kind (score__energy_ops in mlp.c: the MLP's
 * network with one output E, the model's output the score -grad_x E). */
int score__energy_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                          const double *c, float *out);
int score__energy_infer(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, float *out);
int score__energy_backward(const score_model *m, score__model_ws *ws, size_t n,
                           const float *gout, float *grad, float *gx);
int score__energy_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, size_t k, const float *v, float *out, float *fx);
int score__energy_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, size_t k, const float *u, float *out);
int score__energy_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                        const double *c, double *tr, float *fx);
int score__energy_energy(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                         const double *c, double *E);
int score__energy_trace_grad(const score_model *m, score__model_ws *ws, size_t n,
                             const float *x, const double *c, const double *w,
                             const float *gout, float *grad, double *tr, float *fx);
int score__energy_vjv_grad(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                           const double *c, size_t k, const float *v, const double *w,
                           const float *gout, float *grad, double *vjv, float *fx);
/* phi''' of activation act at z (double): the third derivative the second-order passes use. */
double score__energy_act_d3(int act, double z);

#endif /* LIBSCORE_MLP_KIND_PRIV_H */
