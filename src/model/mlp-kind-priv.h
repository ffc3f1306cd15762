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

static inline mlp *impl_of(const score_model *m)
{
    return (mlp *)m->impl;
}

static inline float *W(const mlp *p, size_t l) { return p->theta + p->woff[l]; }
static inline float *B(const mlp *p, size_t l) { return p->theta + p->boff[l]; }

/* mlp.c: the kind part of ws, its buffers dropped when they were laid out for another
 * architecture. */
mlp_ws *score__mlp_ws_of(const mlp *p, score__model_ws *ws);
/* mlp.c: the pool for `threads` threads (NULL: run on the calling thread). */
score__pool *score__mlp_pool_of(mlp_ws *w, int64_t threads);
/* mlp.c: sizes the primal cache for `rows` rows. */
int score__mlp_ensure_primal(const mlp *p, mlp_ws *w, size_t rows);
/* mlp.c: input rows [x ; e(c)] into h0 (nb x n_0). */
void score__mlp_embed_rows(const mlp *p, size_t dim, size_t nb, const float *x, const double *c,
                           float *h0);
/* mlp.c: forward pass of nb rows into rows r0 .. of the primal cache (output layer when out). */
void score__mlp_forward_block(const mlp *p, const mlp_ws *w, size_t dim, size_t r0, size_t nb,
                              const float *x, const double *c, float *out);
/* mlp.c: SCORE_E_NUMERIC with a message when c holds a NaN or an infinity. */
int score__mlp_check_c(const char *fn, size_t n, const double *c);

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

#endif /* LIBSCORE_MLP_KIND_PRIV_H */
