/**
 * @file loss.h
 * @brief Score-matching losses: Hyvärinen explicit score matching with the exact Jacobian
 * trace, sliced score matching (SSM, SSM-VR), denoising score matching at one noise level,
 * NCSN multi-noise DSM, the DDPM noise-prediction loss and the continuous-time SDE loss of
 * score_sde (sigma^2 or likelihood weighting, optional importance-sampled time).
 *
 * A loss is evaluated either on a bare model (`sde` = NULL: the score is s(x) = F(x, c) with a
 * fixed conditioning value c = ::SCORE_LOSS_PARAM_COND) or through an sde (sde.h), where the
 * score is the universal form s(x, t) = a(t) F(in_scale(t) x, cond(t)) + k(t) x of the sde's
 * output kind. The losses act on s; their parameter gradients follow from dL/dF = a dL/ds, the
 * trace tr(ds/dx) = a in_scale tr(dF/dx) + k dim and v^T (ds/dx) v = a in_scale v^T (dF/dx) v +
 * k |v|^2. The time-free kinds (Hyvärinen, SSM, SSM-VR, DSM) evaluated through an sde use the
 * fixed time ::SCORE_LOSS_PARAM_TIME.
 *
 * Per-row losses l_b are averaged over the n rows of the batch: the value returned is
 * (1/n) sum_b l_b (accumulated in double) and the gradient is that of this mean. Per kind
 * (x a data row, z ~ N(0, I) of dim values, "red" the reduction over the dim coordinates:
 * half-sum red(u) = sum_j u_j / 2 or mean red(u) = sum_j u_j / dim, ::SCORE_LOSS_PARAM_REDUCE):
 * - ::SCORE_LOSS_HYVARINEN: l = |s(x)|^2 / 2 + tr(ds/dx) (sliced_score_matching's
 *   exact_score_matching; the trace is exact, from one forward-mode pass of the model).
 * - ::SCORE_LOSS_SSM: l = (1/M) sum_p [ v_p^T (ds/dx) v_p + (v_p^T s)^2 / 2 ] with M probes v_p
 *   (sliced_score_estimation). ::SCORE_LOSS_SSM_VR: l = (1/M) sum_p v_p^T (ds/dx) v_p +
 *   |s|^2 / 2 (sliced_score_estimation_vr).
 * - ::SCORE_LOSS_DSM: x~ = alpha x + sigma z; l = red((s(x~) + z / sigma)^2) (ncsn's
 *   dsm_score_estimation with the default half-sum: |s + z/sigma|^2 / 2). On a bare model
 *   alpha = 1 and sigma = ::SCORE_LOSS_PARAM_SIGMA; through an sde (alpha, sigma) are the
 *   schedule's at ::SCORE_LOSS_PARAM_TIME.
 * - ::SCORE_LOSS_NCSN: a level i uniform in {0 .. L-1} per row of a discrete schedule (its
 *   table (alpha_i, sigma_i), time t_i = T (i + 1) / L); x~ = alpha_i x + sigma_i z;
 *   l = sigma_i^p red((s(x~, t_i) + z / sigma_i)^2), p = ::SCORE_LOSS_PARAM_ANNEAL_POWER
 *   (ncsnv2's anneal_dsm_score_estimation; with p = 2 this is red((sigma_i s + z)^2)).
 * - ::SCORE_LOSS_DDPM: the same draw of a level; l = red'((eps_hat - z)^2) with
 *   eps_hat = -sigma_i s(x~, t_i) and red' the mean (default, score_sde's reduce_mean = True) or
 *   the half-sum. Through an sde of output kind ::SCORE_OUTPUT_EPS, eps_hat is the model's output.
 * - ::SCORE_LOSS_SDE: t = t_eps + u (T - t_eps), u ~ U(0, 1), per row (t_eps =
 *   ::SCORE_LOSS_PARAM_T_EPS, T the schedule's); x_t = alpha(t) x + sigma(t) z;
 *   sigma^2 weighting: l = red((sigma s(x_t, t) + z)^2); likelihood weighting:
 *   l = g(t)^2 red((s + z / sigma)^2) (score_sde's get_sde_loss_fn). With IMPORTANCE = 1 (any
 *   weighting setting is then ignored), t is drawn with density proportional to g^2 / sigma^2 =
 *   -2 dlambda/dt, i.e. lambda uniform on [lambda(T), lambda(t_eps)] mapped back by
 *   score_schedule_t_of_lambda(), and l = (Z / (T - t_eps)) red((sigma s + z)^2) with
 *   Z = 2 (lambda(t_eps) - lambda(T)): an unbiased, lower-variance estimate of the
 *   likelihood-weighted loss (score_flow's training loss is the same without the constant
 *   factor Z / (T - t_eps)).
 * - ::SCORE_LOSS_CLASSIFIER: the cross-entropy of a noise-conditional classifier
 *   (classifier.h): t = t_eps + u (T - t_eps) and x_t = alpha(t) x + sigma(t) z as for
 *   ::SCORE_LOSS_SDE (same draws), with the classifier's own schedule;
 *   l = -log p(y | x_t, t) for the row's label y (score_loss_set_labels(), each in 0..K-1:
 *   the null label is refused; a trainer does no label dropout for this kind). The model must
 *   be a ::SCORE_MODEL_CLASSIFIER; the sde may be NULL, and when given its schedule must equal
 *   the classifier's (the message names the first difference).
 *
 * Random numbers: for row b (the position in the batch) every draw comes from the generator
 * @p rng given to score_loss_compute() at its current counter, row b: the noise z in columns
 * 0 .. dim-1; the time or level draw (uniform, or an index for a level) in column D4 =
 * 4 ceil(dim / 4); the probes of the sliced kinds in columns D4 + 4 + p dim + j (probe p,
 * coordinate j), Rademacher, standard normal, or normal rescaled to length sqrt(dim) (sphere).
 * A row's noise therefore depends only on (seed, stream, counter, row), never on the batch
 * size; a trainer advances the counter once per step.
 *
 * Requirements on the model: the denoising kinds need score_model_forward() (value) and
 * score_model_backward() (gradient); Hyvärinen needs score_model_trace() /
 * score_model_trace_grad(); the sliced kinds need score_model_jvp() / score_model_vjv_grad().
 * A model that lacks one (e.g. a callback without JVP) is refused with ::SCORE_E_UNSUPPORTED
 * and a message naming the missing operation.
 *
 * Conditions: a model with a label input (::SCORE_MODEL_PARAM_NUM_CLASSES = K > 0) or a
 * context-vector input (::SCORE_MODEL_PARAM_CONTEXT_DIM = m > 0) is trained on per-row labels
 * and context vectors given with the batch: score_loss_set_labels() and
 * score_loss_set_context() copy them into the loss, and every later score_loss_compute() on a
 * batch of the same n rows uses them (row b of the labels goes with row b of x), until they are
 * replaced or cleared. Without labels every row gets the null label K (the unconditional
 * model); a model that takes a context needs one. The sde's own label
 * (score_sde_set_label()) plays no part in a loss. The random draws do not depend on the
 * labels. A trainer sets its loss's labels and context at each step (score_trainer_set_labels()).
 *
 * Workspace: a loss keeps buffers that grow to the largest batch seen; later calls with a
 * batch no larger never allocate. A loss is therefore object-exclusive.
 */
#ifndef LIBSCORE_LOSS_H
#define LIBSCORE_LOSS_H

#include "common.h"
#include "model.h"
#include "rng.h"
#include "sde.h"

SCORE_BEGIN_DECLS

/** @brief Opaque loss handle. */
typedef struct score_loss score_loss;

/** @brief Loss kinds (pinned values); definitions in loss.h. */
enum score_loss_kind {
    SCORE_LOSS_HYVARINEN = 1, /**< Explicit (Hyvärinen) score matching with the exact trace. */
    SCORE_LOSS_SSM = 2,       /**< Sliced score matching. */
    SCORE_LOSS_SSM_VR = 3,    /**< Sliced score matching, variance-reduced (|s|^2 / 2 in closed form). */
    SCORE_LOSS_DSM = 4,       /**< Denoising score matching at one noise level. */
    SCORE_LOSS_NCSN = 5,      /**< Multi-noise DSM over the levels of a discrete schedule, weight sigma^p. */
    SCORE_LOSS_DDPM = 6,      /**< DDPM noise-prediction MSE over the levels of a discrete schedule. */
    SCORE_LOSS_SDE = 7,       /**< Continuous-time DSM, t ~ U(t_eps, T), sigma^2 or likelihood weighting. */
    SCORE_LOSS_CLASSIFIER = 8 /**< Cross-entropy of a noise-conditional classifier on x_t, t ~ U(t_eps, T). */
};

/** @brief Probe distributions of the sliced kinds (pinned values). */
enum score_loss_probe {
    SCORE_LOSS_PROBE_RADEMACHER = 1, /**< Independent +1 / -1 coordinates. */
    SCORE_LOSS_PROBE_GAUSSIAN = 2,   /**< Standard normal coordinates. */
    SCORE_LOSS_PROBE_SPHERE = 3      /**< Uniform on the sphere of radius sqrt(dim) (a normalised Gaussian). */
};

/** @brief Weightings of ::SCORE_LOSS_SDE (pinned values). */
enum score_loss_weighting {
    SCORE_LOSS_WEIGHT_SIGMA2 = 1,    /**< lambda(t) = sigma(t)^2: red((sigma s + z)^2) (score_sde's default). */
    SCORE_LOSS_WEIGHT_LIKELIHOOD = 2 /**< lambda(t) = g(t)^2: g^2 red((s + z / sigma)^2) (Song et al. 2021b). */
};

/** @brief Reductions over the data coordinates (pinned values). */
enum score_loss_reduce {
    SCORE_LOSS_REDUCE_DEFAULT = 0,  /**< The reference's choice for the kind: mean for ::SCORE_LOSS_DDPM, half-sum otherwise. */
    SCORE_LOSS_REDUCE_HALF_SUM = 1, /**< sum_j u_j / 2 (score_sde's reduce_mean = False). */
    SCORE_LOSS_REDUCE_MEAN = 2      /**< sum_j u_j / dim (score_sde's reduce_mean = True). */
};

/** @brief Loss parameter ids (pinned; object kind ::SCORE_OBJECT_LOSS, ids 400-499). A
 *  parameter that does not apply to the loss's kind is refused with ::SCORE_E_UNSUPPORTED. */
enum score_loss_param {
    SCORE_LOSS_PARAM_SIGMA = 400,         /**< f64: noise level of ::SCORE_LOSS_DSM on a bare model, [1e-6, 1e6], default 0.1. */
    SCORE_LOSS_PARAM_ANNEAL_POWER = 401,  /**< f64: exponent p of the NCSN weight sigma^p, [-8, 8], default 2. */
    SCORE_LOSS_PARAM_PROJECTIONS = 402,   /**< i64: number M of probes per row of the sliced kinds, [1, 4096], default 1. */
    SCORE_LOSS_PARAM_PROBE = 403,         /**< i64: a ::score_loss_probe, default ::SCORE_LOSS_PROBE_RADEMACHER. */
    SCORE_LOSS_PARAM_WEIGHTING = 404,     /**< i64: a ::score_loss_weighting of ::SCORE_LOSS_SDE, default ::SCORE_LOSS_WEIGHT_SIGMA2. */
    SCORE_LOSS_PARAM_REDUCE = 405,        /**< i64: a ::score_loss_reduce of the denoising kinds (DSM, NCSN, DDPM, SDE), default 0 (the reference's). */
    SCORE_LOSS_PARAM_T_EPS = 406,         /**< f64: smallest training time t_eps of ::SCORE_LOSS_SDE, [1e-12, 1e6], default 1e-5; must be below the schedule's T (also of ::SCORE_LOSS_CLASSIFIER). */
    SCORE_LOSS_PARAM_IMPORTANCE = 407,    /**< i64: 1 = importance-sampled time for the likelihood weighting (::SCORE_LOSS_SDE), 0..1, default 0. */
    SCORE_LOSS_PARAM_COND = 408,          /**< f64: conditioning value c of a bare model for the time-free kinds, [-1e12, 1e12], default 0. */
    SCORE_LOSS_PARAM_TIME = 409           /**< f64: time t at which the time-free kinds (Hyvärinen, SSM, SSM-VR, DSM) are evaluated through an sde, [0, 1e6], default 0 = unset (such a call then fails with ::SCORE_E_INVAL). */
};

/**
 * @brief Creates a loss of the given kind with default parameters.
 * @param[out] out the new loss; NULL on failure.
 * @param[in] kind a ::score_loss_kind.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_UNSUPPORTED (unknown kind);
 *         ::SCORE_E_NOMEM.
 * Ownership: the caller owns the loss; free it with score_loss_free().
 * Thread-safety: safe.
 * @since 0.1
 * @see score_loss_compute
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_new(score_loss **out, int kind);

/**
 * @brief Frees a loss. NULL is a no-op.
 * @param[in] loss the loss.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_loss_free(score_loss *loss);

/**
 * @brief Copies a loss's kind and parameters (not its workspace).
 * @param[out] out the copy; NULL on failure. @param[in] loss the loss.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the copy.
 * Thread-safety: safe for concurrent readers of @p loss.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_clone(score_loss **out, const score_loss *loss);

/**
 * @brief Kind of a loss (a ::score_loss_kind), or 0 for NULL.
 * @param[in] loss the loss.
 * @return the kind.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_loss_kind(const score_loss *loss);

/**
 * @brief Short name of a loss kind: `"hyvarinen"`, `"ssm"`, `"ssm-vr"`, `"dsm"`, `"ncsn"`,
 * `"ddpm"` or `"sde"` (`"(null)"` for NULL).
 * @param[in] loss the loss.
 * @return a static string; never NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_loss_name(const score_loss *loss);

/**
 * @brief Sets a floating-point parameter (see ::score_loss_param).
 * @param[in,out] loss the loss. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_RANGE
 *         (outside the bounds or NaN); ::SCORE_E_UNSUPPORTED (unknown id, or not for this kind).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_set_f64(score_loss *loss, int param, double value);

/**
 * @brief Sets an integer parameter (see ::score_loss_param).
 * @param[in,out] loss the loss. @param[in] param the id. @param[in] value the value.
 * @return as score_loss_set_f64().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_set_i64(score_loss *loss, int param, int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] loss the loss. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_get_f64(const score_loss *loss, int param, double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] loss the loss. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_get_i64(const score_loss *loss, int param, int64_t *out);

/**
 * @brief Gives the per-row class labels of the batches of the next score_loss_compute() calls
 * (see "Conditions" in loss.h).
 * @param[in,out] loss the loss.
 * @param[in] n rows, 1 .. 2^32 - 1; a compute call must then have the same n (ignored when
 *            @p labels is NULL).
 * @param[in] labels n labels, each in 0..K-1 for the model's K classes or ::SCORE_LABEL_NULL
 *            (the null label); copied. NULL clears the labels (every row then gets the null
 *            label).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p loss); ::SCORE_E_RANGE (@p n, or a label
 *         negative and not ::SCORE_LABEL_NULL, or above 65534: the message names the row);
 *         ::SCORE_E_NOMEM. The labels are checked against the model by score_loss_compute():
 *         ::SCORE_E_UNSUPPORTED (the model takes no labels), ::SCORE_E_RANGE (a label >= K),
 *         ::SCORE_E_SHAPE (a batch of another n).
 * Ownership: copied; a score_loss_clone() copy starts without labels.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_set_labels(score_loss *loss, size_t n,
                                                      const int32_t *labels);

/**
 * @brief Gives the per-row context vectors of the batches of the next score_loss_compute()
 * calls (see "Conditions" in loss.h).
 * @param[in,out] loss the loss.
 * @param[in] n rows, 1 .. 2^32 - 1; a compute call must then have the same n.
 * @param[in] m values per row, 1..4096; must equal the model's ::SCORE_MODEL_PARAM_CONTEXT_DIM.
 * @param[in] values n * m finite values, row-major (row b for data row b); copied. NULL
 *            clears the context (@p n and @p m are then ignored).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p loss); ::SCORE_E_RANGE (@p n or @p m);
 *         ::SCORE_E_NUMERIC (a non-finite value); ::SCORE_E_NOMEM. Checked against the model
 *         by score_loss_compute(): ::SCORE_E_UNSUPPORTED (the model takes no context),
 *         ::SCORE_E_SHAPE (another n or m), ::SCORE_E_INVAL (no context for a model that needs
 *         one).
 * Ownership: copied; a score_loss_clone() copy starts without context.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_set_context(score_loss *loss, size_t n, size_t m,
                                                       const float *values);

/**
 * @brief Evaluates the loss on a batch and accumulates the gradient of its value with respect
 * to the model's parameters.
 * @param[in,out] loss the loss (workspace).
 * @param[in] sde the parameterization (schedule and output kind), or NULL for a bare model; only
 *            its coefficients and schedule are used (the model evaluated is @p model, whatever
 *            model the sde holds). ::SCORE_LOSS_NCSN and ::SCORE_LOSS_DDPM need an sde with a
 *            discrete schedule, ::SCORE_LOSS_SDE an sde.
 * @param[in] model the model, only read (the loss's own workspace holds what the evaluation
 *            writes); dimension equal to the sde's.
 * @param[in] rng the generator of the noise, the times and the probes, read at its current
 *            counter (see loss.h; not advanced).
 * @param[in] n rows, 1 .. 2^32 - 1.
 * @param[in] x n * dim data rows (finite).
 * @param[out] loss_out the batch-mean loss (double), or NULL.
 * @param[in,out] grad_params score_model_param_count() floats to which the gradient is added,
 *            or NULL for the value only.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p loss, @p model, @p rng or @p x; missing sde
 *         or TIME for the kind; t_eps not below T; no context for a model that takes one);
 *         ::SCORE_E_RANGE (n = 0 or too large; a label >= the model's K);
 *         ::SCORE_E_SHAPE (sde and model dimensions differ; labels or context set for another
 *         n, or a context of another width); ::SCORE_E_UNSUPPORTED (the model
 *         lacks a needed operation or parameters; a continuous schedule for NCSN / DDPM;
 *         labels or a context for a model without that input);
 *         ::SCORE_E_NUMERIC (non-finite @p x, or a non-finite loss: *@p loss_out is still
 *         written and @p grad_params may hold non-finite values); ::SCORE_E_CALLBACK (the
 *         model's callback failed; see score_loss_last_callback_status()); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive for @p loss; @p model, @p sde and @p rng are only read, so
 *         they may be shared with concurrent readers (other losses, sdes, samplers), but not
 *         with a call that changes them (setting parameters, a trainer step on @p model).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_loss_compute(score_loss *loss, const score_sde *sde,
                                                   score_model *model, const score_rng *rng,
                                                   size_t n, const float *x, double *loss_out,
                                                   float *grad_params);

/**
 * @brief Status returned by the user function of a callback model in the last model
 *        evaluation this loss made (0 when it succeeded, when the model has no callback,
 *        before the first evaluation and for NULL); see score_model_last_callback_status() for
 *        the model's own value, which is that of whichever caller evaluated it last.
 * @param[in] loss the loss.
 * @return the user status.
 * Thread-safety: safe for concurrent readers of @p loss.
 * @since 0.1
 */
SCORE_API int score_loss_last_callback_status(const score_loss *loss);

SCORE_END_DECLS

#endif /* LIBSCORE_LOSS_H */
