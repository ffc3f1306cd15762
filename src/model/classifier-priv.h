/* Internal interface of the classifier kind (classifier.c) for the sde (guidance) and the loss
 * (training). Never installed. */
#ifndef LIBSCORE_CLASSIFIER_PRIV_H
#define LIBSCORE_CLASSIFIER_PRIV_H

#include "libscore/classifier.h"
#include "model-priv.h"

/* What one caller's classifier evaluations write: the network's workspace and the logits and
 * their cotangents, grown to the largest batch seen. */
typedef struct score__clf_ws score__clf_ws;

int score__clf_ws_new(score__clf_ws **out); /* SCORE_E_NOMEM without a message */
void score__clf_ws_free(score__clf_ws *cw);

/* Number of classes K of a classifier. */
size_t score__classifier_classes(const score_model *m);

/* Evaluates the prepared classifier m on n rows (x: n * dim, t: n finite times, already
 * checked by the caller) through cw. labels: n labels (labels_per_row = 1) or one for every
 * row (0), each in 0..K-1 (checked here: SCORE_E_RANGE), required when logp, gx or grad is
 * wanted. Outputs (each may be NULL): lsm, n * K log-probabilities; logp, n values
 * log p(y_b | x_b, t_b); gx, n * dim values gx_scale * grad_x log p(y_b | x_b, t_b); grad,
 * += the parameter gradient of the mean cross-entropy -(1/n) sum_b log p(y_b | x_b, t_b);
 * loss, that mean. gx and grad are not both computed in one call (SCORE_E_INVAL). Non-finite
 * results are SCORE_E_NUMERIC. Messages name fn. */
int score__classifier_eval(const char *fn, const score_model *m, score__clf_ws *cw, size_t n,
                           const float *x, const double *t, const int32_t *labels,
                           int labels_per_row, float *lsm, double *logp, float *gx,
                           double gx_scale, float *grad, double *loss);

/* The loader's probe of a classifier (model-io.c): finite logits on a fixed batch. */
int score__classifier_probe(const char *fn, score_model *m);

#endif
