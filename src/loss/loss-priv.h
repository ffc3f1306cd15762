/* Internal structure of score_loss. Never installed. */
#ifndef LIBSCORE_LOSS_PRIV_H
#define LIBSCORE_LOSS_PRIV_H

#include "core/core-priv.h"
#include "libscore/loss.h"

#define SCORE__LOSS_NPARAMS 10

/* Indices into the loss's parameter table (sorted by id). */
enum {
    IX_SIGMA, IX_ANNEAL, IX_PROJ, IX_PROBE, IX_WEIGHT, IX_REDUCE, IX_TEPS, IX_IMPORT, IX_COND,
    IX_TIME
};

/* Sets of loss kinds as bit masks. */
#define K(kind) (1u << (kind))
#define TIME_FREE (K(SCORE_LOSS_HYVARINEN) | K(SCORE_LOSS_SSM) | K(SCORE_LOSS_SSM_VR) | K(SCORE_LOSS_DSM))
#define SLICED (K(SCORE_LOSS_SSM) | K(SCORE_LOSS_SSM_VR))
#define DENOISING (K(SCORE_LOSS_DSM) | K(SCORE_LOSS_NCSN) | K(SCORE_LOSS_DDPM) | K(SCORE_LOSS_SDE))

struct score__model_ws; /* model/model-priv.h */

struct score_loss {
    int kind;
    /* what the model's evaluations write (made with the loss): the model is only read */
    struct score__model_ws *mws;
    score__param_val params[SCORE__LOSS_NPARAMS];
    /* workspace, grown to the largest batch (rows, probes) seen */
    size_t cap_n, cap_dim, cap_nk;
    double *t, *al, *si, *a, *k, *in, *c, *w, *u; /* per row */
    size_t *idx;                                   /* per row: level draw */
    double *vw, *vjv;                              /* per row and probe */
    double *pvs, *pv2; /* per row and probe: v . s and |v|^2 of the sliced losses */
    float *xt, *xm, *z, *f, *gout;                 /* rows x dim */
    float *v, *jv;                                 /* rows x probes x dim */
    /* per-row conditions of the next compute calls (score_loss_set_labels / _set_context) */
    int32_t *labels;     /* lab_n labels as given (SCORE_LABEL_NULL allowed), or NULL */
    int32_t *mlabels;    /* lab_n labels as the model reads them (null label -> K) */
    size_t lab_n, lab_cap;
    float *ctx;          /* ctx_n * ctx_m values, or NULL */
    size_t ctx_n, ctx_m, ctx_cap;
    /* SCORE_LOSS_CLASSIFIER (loss-classifier.c): the classifier's workspace, made on first use */
    struct score__clf_ws *cws;
    /* A block of a larger batch (set by the trainer's distributed step, else 0): the n rows of a
     * compute call are the rows row0 .. row0 + n - 1 of a batch of n_norm rows, so their draws
     * are those rows' and the value and gradient are their share of the batch mean (summed over
     * the blocks in block order by the caller). Not supported by the classifier kind. */
    size_t row0, n_norm;
};

/* Checks that each of the n labels is SCORE_LABEL_NULL or in 0..k-1; SCORE_E_RANGE with a
 * message naming fn and the first bad row. Shared by the loss and the trainer. */
int score__loss_labels_check(const char *fn, size_t n, const int32_t *labels, int64_t k);

/* Binds the loss's labels / context to the model's workspace for a compute call on n rows
 * (loss-cond.c): checks them against the model (label count, context width) and n. */
struct score_model;
int score__loss_bind_labels(const char *fn, score_loss *L, const struct score_model *m, size_t n);
int score__loss_bind_context(const char *fn, score_loss *L, const struct score_model *m, size_t n);

/* loss-classifier.c: the value and gradient of SCORE_LOSS_CLASSIFIER (after the common checks
 * of score_loss_compute()); the classifier part of the loss freed. */
int score__loss_classifier(const char *fn, score_loss *L, const score_sde *sde,
                           struct score_model *m, const score_rng *rng, size_t n, const float *x,
                           double *loss_out, float *grad);
void score__loss_classifier_free(score_loss *L);
/* loss.c: makes room for n rows of dim values in the per-row buffers (t, al, si, u, ... and xt,
 * z, ...: n * dim floats). */
int score__loss_reserve(const char *fn, score_loss *L, size_t n, size_t dim);

/* The value of parameter ix (an IX_ index) of L, as a double / an integer. */
#define score__loss_f(L, ix) ((L)->params[(ix)].f)
#define score__loss_i(L, ix) ((L)->params[(ix)].i)

/* d rounded up to a multiple of 4: the noise-counter columns a row reserves. */
static inline size_t score__loss_round4(size_t d)
{
    return (d + 3u) / 4u * 4u;
}

/* loss.c: the kind's name ("dsm", ...), or NULL for an unknown kind. */
const char *score__loss_kind_name(int kind);
/* loss.c: re-raises the failure rc of a lower-level call under the public function's name fn. */
int score__loss_wrap(const char *fn, int rc, const char *what);
/* loss-setup.c: the times / levels, coefficients and weights of the n rows of a compute call. */
int score__loss_setup_rows(const char *fn, score_loss *L, const score_sde *sde,
                           const score_rng *rng, size_t n, size_t dim);

/* Parameter table of the loss kind (registered in core/param-registry.h). */
const score__param_desc *score__loss_param_table(size_t *n_out);

#endif
