/* Internals of the generative model (genmodel.c: the object, units, sampling, likelihood,
 * compatibility; genmodel-io.c: its file). Never installed. */
#ifndef LIBSCORE_GENMODEL_PRIV_H
#define LIBSCORE_GENMODEL_PRIV_H

#include "core/core-priv.h"
#include "libscore/genmodel.h"

#define SCORE__GENMODEL_NAME_MAX 256 /* bytes of one column / label / context name */
#define SCORE__GENMODEL_LISTS 3      /* columns, labels, context (score_genmodel_names - 1) */

struct score_genmodel {
    size_t dim;
    score_model *model;       /* owned: the network, or the guidance combination */
    score_model *members[2];  /* owned copies of a guidance combination's networks, else NULL */
    score_schedule *sched;    /* owned, prepared */
    int output, cond;         /* score_output_kind, score_cond_kind */
    double cond_scale, sigma_data;
    double fixed_t;           /* 0, or the one time of a one-noise-level model */
    double *shift, *scale;    /* dim each; NULL = identity */
    int dequant;              /* score_genmodel_dequant */
    double bin;
    size_t num_classes, context_dim;
    char **names[SCORE__GENMODEL_LISTS];   /* NULL or n_names[i] strings */
    size_t n_names[SCORE__GENMODEL_LISTS];
};

/* An empty generative model owning model and sched (freed on failure): settings at their
 * defaults, the condition spec read from the model. */
int score__genmodel_wrap(const char *fn, score_model *model, score_schedule *sched, int output,
                         score_genmodel **out);
/* Checks one name (1..SCORE__GENMODEL_NAME_MAX bytes, valid UTF-8, no control character):
 * SCORE_OK or `status` with a message naming `what` and the index. */
int score__genmodel_check_name(const char *fn, int status, const char *what, size_t i,
                               const char *name);
/* score_genmodel_set_names() with the status of a bad name chosen by the caller. */
int score__genmodel_set_names(const char *fn, int bad_status, score_genmodel *gm, int which,
                              size_t n, const char *const *names);
/* Sets the transform (copied) after the checks of score_genmodel_set_transform(), failing
 * with `status` and a message. */
int score__genmodel_set_transform(const char *fn, int status, score_genmodel *gm,
                                  const double *shift, const double *scale);

#endif
