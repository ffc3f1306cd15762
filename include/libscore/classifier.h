/**
 * @file classifier.h
 * @brief Noise-conditional classifiers p(y | x_t, t) and the pieces classifier guidance needs.
 *
 * A classifier is a ::score_model of kind ::SCORE_MODEL_CLASSIFIER: the MLP of model.h (same
 * hidden blocks, activations, residual rule, time embedding, initialisation and flat parameter
 * layout) whose output layer has K = ::SCORE_MODEL_PARAM_NUM_CLASSES logits instead of dim
 * values, and which takes no label or context input. For one row
 *
 *     h_0 = [x ; e(t)],  ...,  l = W_L h_{L-1} + b_L  (K logits),
 *     log p(y | x, t) = l_y - log sum_k exp(l_k)
 *
 * with the time t itself as the conditioning value c (whatever the sde's conditioning kind:
 * the classifier sees x_t and t, nothing else). It carries the schedule it is trained under;
 * score_sde_set_classifier() refuses a classifier whose schedule differs from the sde's.
 *
 * Training: ::SCORE_LOSS_CLASSIFIER (loss.h) is the cross-entropy on
 * x_t = alpha(t) x0 + sigma(t) eps at random times, usable with score_loss_compute() and the
 * trainer; score_classifier_loss_grad() is the same objective on given times and noised rows.
 *
 * Guidance: score_sde_set_classifier() adds w grad_x log p(y | x_t, t) to the sde's score for
 * the sde's label y (converted to the model's parameterization by the sde), so every sampler
 * uses it.
 *
 * The generic compute calls of model.h (score_model_forward() and the rest), which read and
 * write dim values per row, answer ::SCORE_E_UNSUPPORTED for a classifier; parameters
 * (score_model_param_count(), score_model_params_get() / _set()), clone, save and load
 * (kind "classifier", doc/model-format.md) work as for an MLP, and so do the architecture
 * setters of model.h (HIDDEN, DEPTH, ACTIVATION, EMBEDDING, EMBED_DIM, FOURIER_SCALE,
 * RESIDUAL, SEED; NUM_CLASSES changes the head, at least 2; a non-zero CONTEXT_DIM is refused).
 *
 * Times: each compute call takes one time per row, finite (otherwise ::SCORE_E_NUMERIC) and in
 * [0, T] of the classifier's schedule (otherwise ::SCORE_E_RANGE).
 *
 * Threads: the compute calls below only read the prepared classifier and use a workspace of
 * their own call, so one prepared classifier may be shared by any number of threads.
 */
#ifndef LIBSCORE_CLASSIFIER_H
#define LIBSCORE_CLASSIFIER_H

#include "common.h"
#include "model.h"
#include "schedule.h"

SCORE_BEGIN_DECLS

/**
 * @brief Creates a noise-conditional classifier of @p dim inputs and @p num_classes classes,
 * in the configuring phase with the MLP's default architecture (see model.h).
 * @param[out] out the new model (kind ::SCORE_MODEL_CLASSIFIER); NULL on failure.
 * @param[in] sched the schedule the classifier is trained under; copied.
 * @param[in] dim data dimension, 1..2^20.
 * @param[in] num_classes number of classes K, 2..65535.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out or @p sched, or an inconsistent schedule);
 *         ::SCORE_E_RANGE (@p dim or @p num_classes); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model; free it with score_model_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_classifier(score_model **out,
                                                           const score_schedule *sched,
                                                           size_t dim, size_t num_classes);

/**
 * @brief The schedule a classifier was made with (its own copy).
 * @param[in] clf the classifier.
 * @return the schedule, owned by @p clf and valid while it lives; NULL for NULL or a model of
 *         another kind.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const score_schedule *score_classifier_schedule(const score_model *clf);

/**
 * @brief The logits l(x_b, t_b) of n rows.
 * @param[in] clf a classifier (prepared by the call if needed).
 * @param[in] n rows (0 is a no-op). @param[in] t n times. @param[in] x n * dim inputs x_t.
 * @param[out] out n * K logits, row-major.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (not a
 *         classifier); ::SCORE_E_NUMERIC (a non-finite time or input, or a non-finite logit);
 *         ::SCORE_E_RANGE (a time outside [0, T]); ::SCORE_E_NOMEM.
 * Thread-safety: safe for concurrent readers of a prepared @p clf.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_classifier_logits(score_model *clf, size_t n,
                                                        const double *t, const float *x,
                                                        float *out);

/**
 * @brief The log-probabilities log p(k | x_b, t_b) of every class k for n rows (a log-softmax
 * of the logits, computed in double).
 * @param[in] clf a classifier. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim inputs. @param[out] out n * K log-probabilities.
 * @return as score_classifier_logits().
 * Thread-safety: safe for concurrent readers of a prepared @p clf.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_classifier_log_softmax(score_model *clf, size_t n,
                                                             const double *t, const float *x,
                                                             float *out);

/**
 * @brief The input gradient grad_x log p(y_b | x_b, t_b) of n rows, each for its own label:
 * one cached forward pass and one back-propagation through the network (GEMMs over the batch).
 * @param[in] clf a classifier. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim inputs. @param[in] labels n labels, each in 0..K-1.
 * @param[out] logp_out n values log p(y_b | x_b, t_b), or NULL.
 * @param[out] gx n * dim gradients.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (not a
 *         classifier); ::SCORE_E_RANGE (a time outside [0, T], a label outside 0..K-1: the
 *         message names the row); ::SCORE_E_NUMERIC (non-finite time, input or result);
 *         ::SCORE_E_NOMEM.
 * Thread-safety: safe for concurrent readers of a prepared @p clf.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_classifier_grad_x(score_model *clf, size_t n,
                                                        const double *t, const float *x,
                                                        const int32_t *labels, double *logp_out,
                                                        float *gx);

/**
 * @brief The mean cross-entropy -(1/n) sum_b log p(y_b | x_b, t_b) of n rows and its parameter
 * gradient, *accumulated* into @p grad (the flat layout of score_model_params_get()).
 * @param[in] clf a classifier. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim inputs (already noised). @param[in] labels n labels, each in 0..K-1.
 * @param[out] loss_out the mean cross-entropy, or NULL.
 * @param[in,out] grad score_model_param_count() floats to add the gradient to, or NULL.
 * @return as score_classifier_grad_x().
 * Thread-safety: safe for concurrent readers of a prepared @p clf.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_classifier_loss_grad(score_model *clf, size_t n,
                                                           const double *t, const float *x,
                                                           const int32_t *labels,
                                                           double *loss_out, float *grad);

SCORE_END_DECLS

#endif /* LIBSCORE_CLASSIFIER_H */
