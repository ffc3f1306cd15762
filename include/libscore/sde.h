/**
 * @file sde.h
 * @brief The parameterization layer: a noise schedule and a score model tied together into the
 * score s(x, t), the noise and data predictions and the drifts of the reverse-time SDE and of
 * the probability-flow ODE.
 *
 * A network may be trained to output a score, a noise prediction eps, a data prediction x0, a
 * velocity v, an EDM-preconditioned output or an NCSNv2-style score times sigma. Whatever its
 * output kind, the score reduces to one universal affine form
 *
 *     s(x, t) = a(t) * F(in_scale(t) * x, c(t)) + k(t) * x
 *
 * with per-time scalars a, k, in_scale and the conditioning value c fed to the model. With
 * (alpha, sigma) = score_schedule_alpha_sigma(t) (sigma is the marginal standard deviation):
 *
 * | output kind                      | a                                  | k                        | in_scale    |
 * |----------------------------------|------------------------------------|--------------------------|-------------|
 * | ::SCORE_OUTPUT_SCORE             | 1                                  | 0                        | 1           |
 * | ::SCORE_OUTPUT_EPS               | -1 / sigma                         | 0                        | 1           |
 * | ::SCORE_OUTPUT_X0                | alpha / sigma^2                    | -1 / sigma^2             | 1           |
 * | ::SCORE_OUTPUT_V                 | -alpha / (sigma (alpha^2+sigma^2)) | -1 / (alpha^2+sigma^2)   | 1           |
 * | ::SCORE_OUTPUT_EDM               | alpha c_out / sigma^2              | (c_skip - 1) / sigma^2   | c_in / alpha|
 * | ::SCORE_OUTPUT_SCORE_OVER_SIGMA  | 1 / sigma                          | 0                        | 1           |
 *
 * where for EDM s_e = sigma / alpha, sd = SIGMA_DATA, c_skip = sd^2 / (s_e^2 + sd^2),
 * c_out = s_e sd / sqrt(s_e^2 + sd^2), c_in = 1 / sqrt(s_e^2 + sd^2) (the EDM denoiser acts on
 * x / alpha). Consequences used by the losses and samplers:
 * - the Jacobian trace is tr(ds/dx) = a * in_scale * tr(dF/dx) + k * dim;
 * - a score target s* becomes a raw-output target F* = (s* - k x) / a.
 *
 * Notation: eps = -sigma s, x0 = (x + sigma^2 s) / alpha, v = alpha eps - sigma x0; the SDE is
 * dx = f_coef(t) x dt + g(t) dw (score_schedule_sde_coefs()), the reverse-time SDE drift is
 * f - g^2 s and the probability-flow ODE drift is f - g^2 s / 2.
 *
 * Times: every compute call takes one time per row (n doubles). A time must be finite
 * (otherwise ::SCORE_E_NUMERIC) and in (0, T] with sigma(t) > 0: the grid end t = 0
 * ("sigma = 0, the data") is not a point where the model can be evaluated, and samplers must
 * take their last step to 0 with the data prediction instead; such a time fails with
 * ::SCORE_E_RANGE (the message names the row).
 *
 * Precision: the per-time coefficients are computed in double; bulk arrays are float32 and the
 * affine combination is evaluated in double per element before rounding to float.
 *
 * Workspace: the sde keeps buffers (scaled model input, conditioning, model output,
 * coefficients) that grow to the largest batch seen; calls with a batch no larger never
 * allocate. An sde is therefore object-exclusive, like its model.
 *
 * Conditions: a model with a label input (::SCORE_MODEL_PARAM_NUM_CLASSES = K > 0: a
 * conditional network, or an analytic Gaussian mixture whose components are the classes) or
 * a context-vector input (::SCORE_MODEL_PARAM_CONTEXT_DIM = m > 0) is evaluated with the
 * sde's label (score_sde_set_label()) and context (score_sde_set_context()). They apply to
 * every later evaluation through the sde — all score_sde_* calls, hence every sampler, step,
 * evolve and likelihood that uses it — and to all rows of a call: the label is one per sde.
 * To sample several classes, run the sampler once per class with score_sde_set_label()
 * between runs, or make one sde per class (sdes are small and may share one model, each used
 * by its own thread). Without a label every row gets the null label K (the unconditional model
 * a network learns with label dropout).
 *
 * Classifier-free guidance on one network: with ::SCORE_SDE_PARAM_GUIDANCE = w != 0 the score
 * is s = (1 + w) s(x, y) - w s(x, null) for the sde's label y. Each call evaluates its n rows
 * with label y and the same n rows with the null label as ONE batch of 2n rows through the
 * model (one pass, e.g. one GEMM per layer), then combines the two halves per element in
 * double before the map to eps / x0 / drifts (so eps, x0 and the drifts are those of the
 * guided score); the divergences are the same combination of the two traces,
 * (1 + w) tr_y - w tr_null. The workspace then holds 2n rows and the NFE counter counts one
 * evaluation per call. w != 0 without a label (or on a model without labels) is refused with
 * ::SCORE_E_INVAL: there is nothing to guide towards.
 *
 * Classifier guidance: score_sde_set_classifier() attaches a noise-conditional classifier
 * (classifier.h) with a weight w; every evaluation then uses s(x, t) + w grad_x log p(y | x, t)
 * for the sde's label y. The library computes the gradient (one forward pass and one
 * back-propagation of the classifier over the batch, on x_t and t as given to the call) and
 * adds it in score units before the map to eps / x0 / drifts, so every output kind of the model
 * and every sampler (fixed grid, adaptive, predictor-corrector) uses the guided score. The label
 * goes to the classifier, and to the model too when the model takes labels (then both must
 * have the same K, and classifier-free guidance may be combined with it); a model without
 * labels is evaluated unconditionally. The divergences (hence likelihoods) are refused with
 * ::SCORE_E_UNSUPPORTED while a classifier with w != 0 is set.
 *
 * Thresholding: every evaluation may threshold the data prediction x0 = (x + sigma^2 s) / alpha
 * (after all guidance terms) and then use the score implied by the thresholded x0',
 * s' = (alpha x0' - x) / sigma^2, so that score_sde_x0() returns x0' exactly and the score,
 * the noise prediction eps' = (x - alpha x0') / sigma and both drifts are those of x0'. Hence
 * every sampler works with x0': the types that form their update from the data prediction
 * (ddim, the dpm-solver and dpmpp families, euler, heun, midpoint, rk4, dopri5,
 * euler-ancestral, and the final step to t = 0 of every type, which is x0' itself) through
 * score_sde_x0(), the score-based ones (em, reverse-diffusion, ancestral, the Langevin and
 * ALD correctors) through the implied score. Two forms, in model units (the units of x):
 * - static clipping to a box [lo, hi] per dimension (score_sde_set_clip()):
 *   x0'_j = min(max(x0_j, lo_j), hi_j);
 * - dynamic thresholding (Saharia et al. 2022, "Imagen") with percentile p =
 *   ::SCORE_SDE_PARAM_THRESHOLD in (0, 1]: per row, with the box's centre c_j = (lo_j + hi_j) / 2
 *   and half-width h_j = (hi_j - lo_j) / 2 (the box [-1, 1] when none is set: Imagen's
 *   definition), z_j = (x0_j - c_j) / h_j, q = the p-quantile of |z_1| .. |z_dim| (linear
 *   interpolation between order statistics, numpy's default), s = max(1, q), and
 *   x0'_j = c_j + h_j clip(z_j, -s, s) / s. Rows whose values are all within the box are
 *   unchanged (s = 1); the result always lies within the box.
 * The divergences (hence likelihoods) are refused with ::SCORE_E_UNSUPPORTED while a threshold
 * is set: the map is not differentiable everywhere and its Jacobian is not computed.
 *
 * Inverse problems: score_sde_set_observation() sets a linear observation y = A x0 + n,
 * n ~ N(0, sigma_n^2 I) (A dense, m x dim, in model units); every evaluation then uses the
 * posterior score s(x_t) + grad_x log p(y | x_t) with p(y | x_t) approximated by
 * N(y; A x0_hat(x_t), sigma_n^2 I + r_t^2 A A^T), x0_hat the model's data prediction. The
 * gradient, (dx0_hat/dx)^T A^T (sigma_n^2 I + r_t^2 A A^T)^{-1} (y - A x0_hat), goes through the
 * model's input vector-Jacobian product (one extra model pass per evaluation). Forms:
 * - DPS (Chung et al. 2023, Gaussian likelihood), ::SCORE_SDE_PARAM_OBS_VAR = 0: r_t = 0;
 * - PiGDM (Song et al. 2023), ::SCORE_SDE_PARAM_OBS_VAR = v > 0:
 *   r_t^2 = v sigma^2 / (alpha^2 v + sigma^2), the variance of x0 given x_t under a prior
 *   N(mu, v I); for that prior (and only then, up to the sampler's discretisation) the
 *   posterior score is exact, so the samples follow the exact posterior;
 * - DPS's step-size form, ::SCORE_SDE_PARAM_OBS_ZETA = zeta > 0: the gradient becomes
 *   zeta (dx0_hat/dx)^T A^T r / ||r||, r = y - A x0_hat (sigma_n and v are not used).
 * Everything else is an approximation (p(x0 | x_t) is not Gaussian, or has another
 * covariance); see doc/controllable-generation.md.
 *
 * The moment method, ::SCORE_SDE_PARAM_OBS_METHOD = ::SCORE_OBS_METHOD_MOMENT, replaces
 * r_t^2 A A^T by the model's own posterior covariance: p(x0 | x_t) ~ N(x0_hat, C_t) with
 * Tweedie's C_t = (sigma^2 / alpha) J, J = dx0_hat/dx, so
 * p(y | x_t) ~ N(y; A x0_hat, A C_t A^T + R) and the gradient is
 * J^T A^T (A C_t A^T + R)^{-1} (y - A x0_hat), R = sigma_n^2 I (the derivative of C_t with
 * respect to x, a second derivative of the model, is dropped: it is zero for Gaussian data,
 * where J does not depend on x). For Gaussian data this is the exact posterior score, so the
 * samples follow the exact posterior up to the sampler's discretisation, for any covariance.
 * Cost per evaluation: one model input VJP with m cotangents (the rows of A; J^T a_i gives
 * both A J A^T and the gradient) and an m x m Cholesky factorisation per row (O(m^3 + m^2 dim)
 * per row). A J A^T is symmetrised; when A C_t A^T + R is not positive definite (a network
 * whose Jacobian is far from symmetric positive) the evaluation fails with ::SCORE_E_NUMERIC.
 * ::SCORE_SDE_PARAM_OBS_VAR and ::SCORE_SDE_PARAM_OBS_ZETA must then be 0 (else
 * ::SCORE_E_INVAL at evaluation: their forms are the other method's). The same method serves a
 * sampler's known coordinates (score_sampler_set_known()): each row's mask is the observation
 * A = the rows of the identity at the known coordinates, y = the known values, R = 1e-6 times
 * the largest diagonal entry of A C_t A^T (a stated jitter, for the factorisation only); the
 * known coordinates are then sampled like the others and set to the known values exactly at
 * the end. The observation term (either method) is refused together with guidance
 * (classifier-free or classifier: ::SCORE_E_UNSUPPORTED at evaluation), and the divergences
 * and the latent maps (score_likelihood_to_latent(), score_likelihood_from_latent()) are
 * refused while it or a threshold is set: they alter the probability-flow drift.
 *
 * Both methods are approximations for non-Gaussian data. A sampler's twisted sequential Monte
 * Carlo (::SCORE_SAMPLER_PARAM_PARTICLES > 1, sampler.h) uses the term as its proposal's
 * guidance and the Gaussian likelihood the term differentiates (N(y; A x0_hat, A C_t A^T + R),
 * or N(y; A x0_hat, sigma_n^2 I + r_t^2 A A^T) for DPS / PiGDM) as its twist, and corrects the
 * approximation with importance weights: asymptotically exact in the number of particles. The
 * step-size form (::SCORE_SDE_PARAM_OBS_ZETA > 0) has no likelihood and is refused there.
 */
#ifndef LIBSCORE_SDE_H
#define LIBSCORE_SDE_H

#include "common.h"
#include "model.h"
#include "schedule.h"

SCORE_BEGIN_DECLS

/** @brief The null label: "no class" (the unconditional model of classifier-free guidance).
 *  score_sde_set_label() takes it to clear the label; label arrays of the loss and the
 *  trainer use it for rows without a class. The model sees it as label K. */
#define SCORE_LABEL_NULL (-1)

/** @brief Opaque handle of a schedule + model system (the "system" of the samplers). */
typedef struct score_sde score_sde;

/** @brief What a model's raw output F represents (pinned values); see the table in sde.h. */
enum score_output_kind {
    SCORE_OUTPUT_SCORE = 1,          /**< F is the score: s = F. */
    SCORE_OUTPUT_EPS = 2,            /**< F predicts the noise: s = -F / sigma. */
    SCORE_OUTPUT_X0 = 3,             /**< F predicts the data: s = (alpha F - x) / sigma^2. */
    SCORE_OUTPUT_V = 4,              /**< F predicts v = alpha eps - sigma x0. */
    SCORE_OUTPUT_EDM = 5,            /**< F is the raw network of an EDM-preconditioned denoiser (Karras et al. 2022), applied to x / alpha. */
    SCORE_OUTPUT_SCORE_OVER_SIGMA = 6 /**< s = F / sigma (NCSNv2's output F = sigma * s = -eps). */
};

/** @brief How the model's conditioning value c is computed from the time t (pinned values). */
enum score_cond_kind {
    SCORE_COND_DEFAULT = 0,    /**< ::SCORE_COND_LOG_SIGMA_4 for ::SCORE_OUTPUT_EDM, ::SCORE_COND_T otherwise. */
    SCORE_COND_T = 1,          /**< c = t. */
    SCORE_COND_T_SCALED = 2,   /**< c = COND_SCALE * t, e.g. 999 t for DDPM integer-like labels. */
    SCORE_COND_SIGMA = 3,      /**< c = sigma(t) / alpha(t) (the noise level of x / alpha; NCSN). */
    SCORE_COND_LOG_SIGMA_4 = 4 /**< c = ln(sigma / alpha) / 4, EDM's c_noise. */
};

/** @brief How an sde conditions on data (pinned values of ::SCORE_SDE_PARAM_OBS_METHOD). */
enum score_obs_method {
    SCORE_OBS_METHOD_DEFAULT = 0, /**< An observation: the DPS / PiGDM / step-size forms chosen by ::SCORE_SDE_PARAM_OBS_VAR and ::SCORE_SDE_PARAM_OBS_ZETA; known coordinates: replacement (score_sde's imputation). */
    SCORE_OBS_METHOD_MOMENT = 1   /**< Moment matching with the Tweedie covariance of x0 given x_t, for observations and known coordinates alike: exact for Gaussian data (see "Inverse problems" in sde.h). */
};

/** @brief Parameter ids of an sde (pinned; object kind ::SCORE_OBJECT_SDE, ids 800-899).
 *  They may be changed at any time and take effect at the next call (the sde derives nothing
 *  from them in advance). */
enum score_sde_param {
    SCORE_SDE_PARAM_OUTPUT = 800,     /**< i64: the ::score_output_kind of the model, 1..6; initialised by score_sde_new(). */
    SCORE_SDE_PARAM_COND = 801,       /**< i64: a ::score_cond_kind, 0..4, default 0 (::SCORE_COND_DEFAULT). */
    SCORE_SDE_PARAM_COND_SCALE = 802, /**< f64: factor of ::SCORE_COND_T_SCALED, [1e-12, 1e12], default 999. */
    SCORE_SDE_PARAM_SIGMA_DATA = 803, /**< f64: data standard deviation sd of the EDM preconditioning, [1e-6, 1e6], default 0.5. */
    SCORE_SDE_PARAM_GUIDANCE = 804,   /**< f64: classifier-free guidance weight w on one conditional model, s = (1 + w) s(x, y) - w s(x, null) (see "Conditions" in sde.h), [-1e6, 1e6], default 0 (no guidance: s(x, y)). w != 0 needs a label (score_sde_set_label()); evaluations without one fail with ::SCORE_E_INVAL. */
    SCORE_SDE_PARAM_THRESHOLD = 805,  /**< f64: dynamic-thresholding percentile p of the data prediction (see "Thresholding" in sde.h), [0, 1], default 0 (off); Imagen uses 0.995. */
    SCORE_SDE_PARAM_OBS_VAR = 806,    /**< f64: prior data variance v of the PiGDM form of the observation likelihood (see "Inverse problems" in sde.h), [0, 1e12], default 0 (the DPS form, r_t = 0). */
    SCORE_SDE_PARAM_OBS_ZETA = 807,   /**< f64: step size zeta of DPS's normalised form of the observation term, grad = zeta J^T A^T r / ||r|| (see "Inverse problems" in sde.h), [0, 1e12], default 0 (off: the Gaussian-likelihood gradient). */
    SCORE_SDE_PARAM_OBS_METHOD = 808  /**< i64: a ::score_obs_method, 0..1, default 0 (::SCORE_OBS_METHOD_DEFAULT): how an observation (score_sde_set_observation()) and a sampler's known coordinates (score_sampler_set_known()) condition the samples (see "Inverse problems" in sde.h). */
};

/**
 * @brief Creates an sde from a schedule and a model.
 * @param[out] out         the new sde; NULL on failure.
 * @param[in]  sched       the noise schedule; copied (may be freed after the call).
 * @param[in]  model       the model; borrowed: it must outlive the sde (or be replaced with
 *                         score_sde_set_model() before it is freed).
 * @param[in]  output_kind a ::score_output_kind: what the model's output represents.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or the schedule's parameters are
 *         inconsistent: it is prepared here); ::SCORE_E_RANGE (@p output_kind);
 *         ::SCORE_E_UNSUPPORTED (@p model is a ::SCORE_MODEL_CLASSIFIER: a classifier guides a
 *         score model through score_sde_set_classifier() and is not one); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the sde and frees it with score_sde_free(); the sde never frees
 * the model.
 * Thread-safety: safe (reads @p sched and @p model only); the sde keeps its own workspace, so
 *         any number of sdes, on different threads, may evaluate one prepared model.
 * @since 0.1
 * @see score_sde_free, score_sde_set_model
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_new(score_sde **out, const score_schedule *sched,
                                              score_model *model, int output_kind);

/**
 * @brief Frees an sde (not its model). NULL is a no-op.
 * @param[in] sde the sde.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_sde_free(score_sde *sde);

/**
 * @brief Sets a floating-point parameter (see ::score_sde_param).
 * @param[in,out] sde the sde. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or the parameter is an integer);
 *         ::SCORE_E_RANGE (value outside the bounds, or NaN); ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_f64(score_sde *sde, int param, double value);

/**
 * @brief Sets an integer parameter (see ::score_sde_param).
 * @param[in,out] sde the sde. @param[in] param the id. @param[in] value the value.
 * @return as score_sde_set_f64().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_i64(score_sde *sde, int param, int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] sde the sde. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or the parameter is an integer);
 *         ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_get_f64(const score_sde *sde, int param, double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] sde the sde. @param[in] param the id. @param[out] out the value.
 * @return as score_sde_get_f64().
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_get_i64(const score_sde *sde, int param, int64_t *out);

/**
 * @brief Replaces the model, e.g. by its EMA copy or by a guidance combination.
 * @param[in,out] sde the sde.
 * @param[in] model the new model, borrowed (must outlive the sde or the next replacement); it
 *            must have the same dimension as the current one.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL); ::SCORE_E_SHAPE (different dimension);
 *         ::SCORE_E_UNSUPPORTED (a classifier, as in score_sde_new()).
 * Ownership: the previous model is released by the sde, not freed.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_model(score_sde *sde, score_model *model);

/**
 * @brief Sets the class label of every later evaluation through the sde (all rows; see
 * "Conditions" in sde.h).
 *
 * The label stays set when the model is replaced (score_sde_set_model()); an evaluation with a
 * label the current model does not take fails (::SCORE_E_UNSUPPORTED without labels,
 * ::SCORE_E_RANGE out of its range).
 * @param[in,out] sde the sde.
 * @param[in] label a class in 0..K-1 (K = the model's ::SCORE_MODEL_PARAM_NUM_CLASSES, or the
 *            classifier's classes when one is set with score_sde_set_classifier()), or
 *            ::SCORE_LABEL_NULL for the null label (clears the label; the default).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p sde); ::SCORE_E_UNSUPPORTED (a class label for a
 *         model without labels and no classifier); ::SCORE_E_RANGE (@p label outside 0..K-1
 *         and not ::SCORE_LABEL_NULL).
 * Thread-safety: object-exclusive.
 * @since 0.1
 * @see score_sde_set_context, ::SCORE_SDE_PARAM_GUIDANCE
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_label(score_sde *sde, int64_t label);

/**
 * @brief Attaches (or with NULL removes) a noise-conditional classifier for classifier
 * guidance: every later evaluation uses s(x, t) + @p w grad_x log p(y | x_t, t) for the sde's
 * label y (see "Classifier guidance" in sde.h).
 *
 * The classifier must match the sde: same dimension, same schedule kind and parameters (those
 * it was made with, score_classifier_schedule()) and, when the model takes labels, as many
 * classes. A class label is needed when @p w != 0 (an evaluation without one fails with
 * ::SCORE_E_INVAL).
 * @param[in,out] sde the sde.
 * @param[in] clf a ::SCORE_MODEL_CLASSIFIER model (prepared here if needed), or NULL to
 *            remove the classifier; borrowed and only read: it must outlive its use by the sde.
 * @param[in] w guidance weight, [-1e6, 1e6] (ignored with NULL; 0 keeps the classifier for the
 *            label range but adds nothing).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p sde; the schedules differ or the class counts
 *         differ: the message names the first difference); ::SCORE_E_UNSUPPORTED (@p clf is
 *         not a classifier); ::SCORE_E_SHAPE (dimensions differ); ::SCORE_E_RANGE (@p w, also
 *         NaN); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive on @p sde; @p clf is only read.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_classifier(score_sde *sde, score_model *clf,
                                                         double w);

/**
 * @brief Sets (or with NULL bounds clears) the box of static clipping of the data prediction,
 * in model units (see "Thresholding" in sde.h).
 *
 * With ::SCORE_SDE_PARAM_THRESHOLD = p > 0 the box is also the range of dynamic thresholding.
 * For a saved generative model whose data transform differs from the identity, give the box in
 * data units to score_genmodel_sde_set_clip() instead, which converts it.
 * @param[in,out] sde the sde.
 * @param[in] n 1 (one bound pair for every dimension) or the sde's dim (ignored when @p lo
 *            and @p hi are NULL).
 * @param[in] lo n finite lower bounds, or NULL (together with @p hi) to clear the box.
 * @param[in] hi n finite upper bounds, hi[j] > lo[j].
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p sde, or only one of @p lo, @p hi NULL);
 *         ::SCORE_E_SHAPE (@p n neither 1 nor dim); ::SCORE_E_RANGE (a bound not finite, out
 *         of the float range, or hi[j] <= lo[j]; the message names it).
 * Ownership: the bounds are copied.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_clip(score_sde *sde, size_t n, const double *lo,
                                                   const double *hi);

/**
 * @brief Sets (or with NULL @p A clears) the linear observation y = A x0 + n,
 * n ~ N(0, sigma_n^2 I), of posterior sampling (see "Inverse problems" in sde.h).
 *
 * The model must provide input vector-Jacobian products (::SCORE_MODEL_CAP_VJP): the analytic
 * kinds, the MLP, and callback models with a VJP.
 * @param[in,out] sde the sde.
 * @param[in] m number of observations (>= 1; ignored when @p A is NULL).
 * @param[in] A m * dim finite values, row-major (row i is the i-th measurement), in model
 *            units; NULL clears the observation.
 * @param[in] y m finite observed values.
 * @param[in] sigma_n noise standard deviation, finite, > 0.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p sde, NULL @p y with @p A, @p m = 0);
 *         ::SCORE_E_RANGE (@p sigma_n not finite or <= 0; m * dim overflows the address
 *         space); ::SCORE_E_NUMERIC (a non-finite
 *         value in @p A or @p y); ::SCORE_E_UNSUPPORTED (the model has no input VJP);
 *         ::SCORE_E_NOMEM.
 * Ownership: @p A and @p y are copied.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_observation(score_sde *sde, size_t m,
                                                          const float *A, const float *y,
                                                          double sigma_n);

/**
 * @brief Sets the context vector of every later evaluation through the sde (the same vector
 * for all rows; see "Conditions" in sde.h).
 * @param[in,out] sde the sde.
 * @param[in] m number of values; must equal the model's ::SCORE_MODEL_PARAM_CONTEXT_DIM
 *            (ignored when @p values is NULL).
 * @param[in] values @p m finite values, copied; NULL clears the context (the default).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p sde); ::SCORE_E_UNSUPPORTED (the model takes no
 *         context); ::SCORE_E_SHAPE (@p m differs from the model's context dimension);
 *         ::SCORE_E_NUMERIC (a non-finite value); ::SCORE_E_NOMEM. An evaluation of a model
 *         that takes a context fails with ::SCORE_E_INVAL while none is set (and with
 *         ::SCORE_E_SHAPE when the model was replaced by one of another context dimension).
 * Ownership: the values are copied.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_set_context(score_sde *sde, size_t m,
                                                      const float *values);

/**
 * @brief The model currently used (borrowed), or NULL for NULL.
 * @param[in] sde the sde.
 * @return the model.
 * Ownership: owned by the caller of score_sde_new() / score_sde_set_model().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API score_model *score_sde_model(const score_sde *sde);

/**
 * @brief The sde's own copy of the schedule (borrowed, valid as long as the sde), or NULL.
 * @param[in] sde the sde.
 * @return the schedule.
 * Ownership: owned by the sde; do not free.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const score_schedule *score_sde_schedule(const score_sde *sde);

/**
 * @brief Data dimension (that of the model), or 0 for NULL.
 * @param[in] sde the sde.
 * @return dim.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_sde_dim(const score_sde *sde);

/**
 * @brief Per-row coefficients of the universal form s = a F(in_scale x, cond) + k x.
 *
 * Uses the current OUTPUT, COND, COND_SCALE and SIGMA_DATA parameters; does not evaluate the
 * model.
 * @param[in]  sde the sde. @param[in] n rows. @param[in] t n times (finite, > 0).
 * @param[out] a n values, or NULL. @param[out] k n values, or NULL.
 * @param[out] in_scale n values, or NULL. @param[out] cond n conditioning values c(t), or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p sde or @p t with n > 0);
 *         ::SCORE_E_NUMERIC (a non-finite time); ::SCORE_E_RANGE (a time <= 0, above T or
 *         with sigma(t) = 0).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_coefs(const score_sde *sde, size_t n, const double *t,
                                                double *a, double *k, double *in_scale,
                                                double *cond);

/**
 * @brief The score s(x, t) = grad_x log p_t(x) for n rows (one model evaluation).
 * @param[in,out] sde the sde (workspace, NFE counter).
 * @param[in] n rows (0 is a no-op). @param[in] t n times.
 * @param[in] x n * dim points. @param[out] out n * dim scores (must not alias @p x).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or @p out == @p x; guidance without a
 *         label; no context for a model that needs one); ::SCORE_E_RANGE (a time, see sde.h;
 *         a label the current model does not take); ::SCORE_E_UNSUPPORTED (a label set for a
 *         model without labels); ::SCORE_E_SHAPE (a context of another size than the model
 *         takes); ::SCORE_E_CALLBACK (the model's callback
 *         failed; see score_sde_last_callback_status()); ::SCORE_E_NUMERIC (a non-finite time,
 *         or a non-finite value in the result: the message names the first row);
 *         ::SCORE_E_NOMEM; or the model's own failure status.
 * Thread-safety: object-exclusive for @p sde; its model is only read (the evaluation writes in
 *         the sde's workspace), so the model may be shared with other threads' sdes,
 *         samplers and losses, but not with a call that changes it.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_score(score_sde *sde, size_t n, const double *t,
                                                const float *x, float *out);

/**
 * @brief The noise prediction eps = -sigma(t) s(x, t) for n rows.
 * @param[in,out] sde the sde. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim points. @param[out] out n * dim values (must not alias @p x).
 * @return as score_sde_score().
 * Thread-safety: object-exclusive for @p sde; its model is only read and may be shared (see
 *         score_sde_score()).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_eps(score_sde *sde, size_t n, const double *t,
                                              const float *x, float *out);

/**
 * @brief The data prediction (denoiser) x0 = (x + sigma^2 s) / alpha for n rows.
 * @param[in,out] sde the sde. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim points. @param[out] out n * dim values (must not alias @p x).
 * @return as score_sde_score().
 * Thread-safety: object-exclusive for @p sde; its model is only read and may be shared (see
 *         score_sde_score()).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_x0(score_sde *sde, size_t n, const double *t,
                                             const float *x, float *out);

/**
 * @brief Drift of the reverse-time SDE, f(x, t) - g(t)^2 s(x, t), for n rows.
 *
 * The reverse SDE is dx = [f - g^2 s] dt + g dw-bar with dt < 0.
 * @param[in,out] sde the sde. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim points. @param[out] out n * dim drifts (must not alias @p x).
 * @return as score_sde_score().
 * Thread-safety: object-exclusive for @p sde; its model is only read and may be shared (see
 *         score_sde_score()).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_reverse_drift(score_sde *sde, size_t n, const double *t,
                                                        const float *x, float *out);

/**
 * @brief Drift of the probability-flow ODE, dx/dt = f(x, t) - g(t)^2 s(x, t) / 2, for n rows.
 * @param[in,out] sde the sde. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim points. @param[out] out n * dim drifts (must not alias @p x).
 * @return as score_sde_score().
 * Thread-safety: object-exclusive for @p sde; its model is only read and may be shared (see
 *         score_sde_score()).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_pf_drift(score_sde *sde, size_t n, const double *t,
                                                   const float *x, float *out);

/**
 * @brief Exact divergence of the score, tr(ds/dx) = a in_scale tr(dF/dx) + k dim, per row.
 *
 * Uses score_model_trace() when the model provides it; otherwise dim Jacobian-vector (or
 * vector-Jacobian) products with the unit vectors (workspace n * dim * dim floats).
 * @param[in,out] sde the sde. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim points. @param[out] div n divergences (double).
 * @param[out] score_out n * dim scores s(x, t), or NULL.
 * @return as score_sde_score(); ::SCORE_E_UNSUPPORTED (the model provides neither trace, jvp
 *         nor vjp).
 * Thread-safety: object-exclusive for @p sde; its model is only read and may be shared (see
 *         score_sde_score()).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_divergence(score_sde *sde, size_t n, const double *t,
                                                     const float *x, double *div,
                                                     float *score_out);

/**
 * @brief Divergence of the probability-flow drift, f_coef dim - g^2 / 2 tr(ds/dx), per row,
 * exact or by Hutchinson's estimator (the log-density change of the PF-ODE).
 *
 * With @p probes, tr(ds/dx) is estimated per row b as
 * a in_scale (1/k) sum_p v_{b,p}^T (dF/dx) v_{b,p} + k_coef dim (the k x term is exact), which
 * is unbiased whenever the probes have E[v v^T] = I (Rademacher or standard normal). One
 * Jacobian-vector product pass with k probes per row (vector-Jacobian if the model lacks jvp).
 * @param[in,out] sde the sde. @param[in] n rows. @param[in] t n times.
 * @param[in] x n * dim points.
 * @param[in] k probes per row (>= 1; ignored when @p probes is NULL).
 * @param[in] probes NULL for the exact divergence (see score_sde_divergence()), else
 *            n * k * dim probes laid out as `probes[(row * k + p) * dim + j]`.
 * @param[out] div n divergences (double).
 * @param[out] drift_out n * dim probability-flow drifts, or NULL.
 * @return as score_sde_divergence(); ::SCORE_E_INVAL (k = 0 with probes).
 * Thread-safety: object-exclusive for @p sde; its model is only read and may be shared (see
 *         score_sde_score()).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_pf_divergence(score_sde *sde, size_t n, const double *t,
                                                        const float *x, size_t k,
                                                        const float *probes, double *div,
                                                        float *drift_out);

/**
 * @brief Converts values between output representations at the points (x, t), e.g. an eps
 * prediction into a data prediction: out = (a_from in + k_from x - k_to x) / a_to with the
 * coefficients of the two kinds (see the table in sde.h; ::SCORE_OUTPUT_EDM is the raw network
 * output F under the current SIGMA_DATA). Does not evaluate the model.
 * @param[in,out] sde the sde. @param[in] from_kind, to_kind ::score_output_kind values.
 * @param[in] n rows. @param[in] t n times. @param[in] x n * dim points.
 * @param[in] in n * dim values in the @p from_kind representation.
 * @param[out] out n * dim values in the @p to_kind representation (may alias @p in, not @p x).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, @p out == @p x or @p in == @p x);
 *         ::SCORE_E_RANGE (a kind or a time); ::SCORE_E_NUMERIC (a non-finite time or result).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_convert(score_sde *sde, int from_kind, int to_kind,
                                                  size_t n, const double *t, const float *x,
                                                  const float *in, float *out);

/**
 * @brief Number of batched model evaluations made through this sde since creation or the last
 * score_sde_reset_nfe() (one per model call, whatever n; 0 for NULL).
 * @param[in] sde the sde.
 * @return the count.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_sde_nfe(const score_sde *sde);

/**
 * @brief Sets the model-evaluation counter to 0. NULL is a no-op.
 * @param[in,out] sde the sde.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_sde_reset_nfe(score_sde *sde);

/**
 * @brief Status returned by the user function of a callback model (or a callback member of a
 *        combination) in the last model evaluation this sde made (0 when it succeeded, when the
 *        model has no callback, before the first evaluation and for NULL).
 *
 * Unlike score_model_last_callback_status(), which is the value of whichever caller evaluated
 * the (possibly shared) model last, this is the value of this sde's own last evaluation: read
 * it after a ::SCORE_E_CALLBACK of a score_sde_* call, a sampler or a likelihood that uses it.
 * @param[in] sde the sde.
 * @return the user status.
 * Thread-safety: safe for concurrent readers of @p sde.
 * @since 0.1
 */
SCORE_API int score_sde_last_callback_status(const score_sde *sde);

SCORE_END_DECLS

#endif /* LIBSCORE_SDE_H */
