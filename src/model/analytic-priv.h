/* Internal interface between the files of the analytic kinds (analytic.c, analytic-new.c,
 * analytic-io.c): the model's representation and the helpers they share. Never installed. */
#ifndef LIBSCORE_ANALYTIC_PRIV_H
#define LIBSCORE_ANALYTIC_PRIV_H

#include "model-priv.h"

#define ANALYTIC_MAX_DIM 4096
#define ANALYTIC_MAX_K 65536
#define LOG_2PI 1.8378770664093454835606594728112

typedef struct analytic {
    score_schedule *sched;
    size_t dim, k;
    double *q;     /* dim * dim row-major (column m = eigenvector m), or NULL = identity */
    double *mu;    /* k * dim means in the basis */
    double *lam;   /* k * dim variances in the basis */
    double *logw;  /* k normalised log weights */
    double *cumw;  /* k cumulative normalised weights (sampling) */
} analytic;

/* A zeroed analytic model for dim and k (with a dim x dim basis when full), or NULL. */
analytic *score__analytic_alloc(size_t dim, size_t k, int full);
/* Frees A and everything it owns (NULL is allowed). */
void score__analytic_destroy(analytic *A);
/* out = Q^T in (or a copy when Q is the identity); in and out must differ. */
void score__analytic_to_basis(const analytic *A, const double *in, double *out);

/* The largest k whose components a GMM takes as labels (SCORE_MODEL_PARAM_NUM_CLASSES = k;
 * the parameter's range): a mixture of more components reports 0 and takes no labels. */
#define ANALYTIC_MAX_CLASSES 65535

/* Installs A (owned from now on) as m's prepared impl; a GMM of k <= ANALYTIC_MAX_CLASSES
 * components reports SCORE_MODEL_PARAM_NUM_CLASSES = k (label y: component y alone). */
void score__analytic_attach(score_model *m, analytic *A);

/* analytic-io.c: the save/load hooks of score__gaussian_ops and score__gmm_ops. */
int score__analytic_save(const score_model *m, struct score__st_writer *w);
int score__gaussian_load(score_model **out, const struct score__st_reader *r);
int score__gmm_load(score_model **out, const struct score__st_reader *r);

#endif /* LIBSCORE_ANALYTIC_PRIV_H */
