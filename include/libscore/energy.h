/**
 * @file energy.h
 * @brief Energy-based models: a scalar energy E(x, c) whose negative gradient is the score.
 *
 * An energy model (::SCORE_MODEL_ENERGY) is the MLP of model.h (same hidden blocks,
 * activations, residual rule, conditioning embedding, initialisation and flat parameter layout)
 * whose output layer has one unit, the energy E(x, c); the unnormalised density is
 * p(x | c) ~ exp(-E(x, c)). As a score model its output is the score
 *
 *     F(x, c) = -grad_x E(x, c)
 *
 * computed by reverse mode through the network (GEMMs, in row panels of 48 aligned to the global
 * row numbers the samplers pass, so a row's score does not depend on how a batch is split). It
 * plugs in wherever a score model does: sde (output ::SCORE_OUTPUT_SCORE), samplers, likelihood,
 * losses, trainer, save / load (kind "energy", doc/model-format.md), clone, combinations. Its
 * Jacobian is minus the Hessian of E, symmetric, so score_model_vjp() equals score_model_jvp()
 * (Hessian-vector products, forward over reverse mode); score_model_trace() is the exact
 * Laplacian, -sum_i (H e_i)_i, by dim Hessian-vector products. score_model_backward() gives the
 * parameter gradient of gout . F by double back-propagation, so the DSM, NCSN and continuous-time
 * losses train an energy model. score_model_trace_grad() and score_model_vjv_grad() give the
 * parameter gradients of -laplacian E and -v^T H v (third derivatives of the network, by a
 * second-order forward pass and one reverse pass; refused with ::SCORE_E_UNSUPPORTED for the
 * ELU activation, whose second derivative jumps), so the Hyvärinen, sliced and SM-VR losses train
 * it too. Label and context inputs (::SCORE_MODEL_PARAM_NUM_CLASSES,
 * ::SCORE_MODEL_PARAM_CONTEXT_DIM) work as for the MLP; score_model_energy() evaluates the null
 * label and refuses a model with a context input, score_model_energy_cond() takes a label and / or
 * a context vector per row (as score_model_forward_cond() does for the score), and
 * score_sde_energy() uses the sde's labels / context.
 *
 * Energies: score_model_energy() evaluates E for an energy model, the exact negative
 * log-density -log p_t(x) (normalising constant included) for the analytic Gaussian and Gaussian
 * mixture models (c = t), and sum_i w_i E_i for a weighted sum (score_model_new_sum()) whose
 * members all have one: the product of experts prod_i p_i^{w_i}, a weight acting as an inverse
 * temperature. See doc/energy-models.md, and the "mala" step (step.h) that uses it.
 */
#ifndef LIBSCORE_ENERGY_H
#define LIBSCORE_ENERGY_H

#include "common.h"
#include "model.h"
#include "sde.h"
#include "step.h"

SCORE_BEGIN_DECLS

/**
 * @brief Creates an energy model (the MLP with a scalar output, see the file comment) in the
 * configuring phase, with the MLP's default architecture.
 *
 * Equivalent to score_model_new(::SCORE_MODEL_ENERGY, dim); the architecture parameters of
 * model.h (HIDDEN, DEPTH, ACTIVATION, EMBEDDING, EMBED_DIM, FOURIER_SCALE, RESIDUAL, SEED) and
 * score_model_set_hidden_widths() apply. The last layer has one output, so the flat parameters
 * end with W_L (1 x n_{L-1}) and b_L (1 value).
 * @param[out] out the new model; NULL on failure.
 * @param[in] dim data dimension, 1..2^20.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_RANGE (dim); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model; free it with score_model_free().
 * Thread-safety: safe.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_energy(score_model **out, size_t dim);

/**
 * @brief Evaluates the energy E(x, c) of n rows.
 *
 * Energy models: the network's output. Analytic models (::SCORE_MODEL_GAUSSIAN,
 * ::SCORE_MODEL_GMM): the exact -log p_t(x) including the normalising constant, with c the time
 * t. Weighted sums: sum_i w_i E_i (all members must have an energy). Other kinds (an MLP, a
 * callback, a classifier-free-guidance combination of them) have none.
 * @param[in] model the model (prepared here if needed).
 * @param[in] n rows (0 is a no-op). @param[in] x n * dim inputs. @param[in] c n conditioning values.
 * @param[out] E_out n energies.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (the model has no
 *         energy); ::SCORE_E_RANGE (n too large, or a time the schedule refuses);
 *         ::SCORE_E_NUMERIC (non-finite c, or a non-finite energy); ::SCORE_E_NOMEM.
 * Thread-safety: safe for concurrent readers of a prepared @p model.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_model_energy(score_model *model, size_t n, const float *x,
                                                   const double *c, double *E_out);

/**
 * @brief Evaluates the energy E(x, c, label, context) of n rows of a model with a label and / or
 * a context input (::SCORE_MODEL_PARAM_NUM_CLASSES, ::SCORE_MODEL_PARAM_CONTEXT_DIM).
 *
 * Like score_model_energy() (which it equals with @p labels and @p context NULL, for a model
 * without a context input), with the inputs of score_model_forward_cond(): the energy's
 * gradient in x is minus score_model_forward_cond() with the same arguments. A row's energy
 * depends on its own x, c, label and context only.
 * @param[in] model the model (prepared here if needed).
 * @param[in] n rows (0 is a no-op). @param[in] x n * dim inputs. @param[in] c n conditioning values.
 * @param[in] labels n labels, each in 0..K-1, or K for the null label (K =
 *            ::SCORE_MODEL_PARAM_NUM_CLASSES); NULL = the null label on every row. Only for a
 *            model with a label input.
 * @param[in] context n * m finite floats, row b at `context + b * m` (m =
 *            ::SCORE_MODEL_PARAM_CONTEXT_DIM); required for a model with a context input, NULL
 *            otherwise.
 * @param[out] E_out n energies.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or no context for a model with a context
 *         input); ::SCORE_E_UNSUPPORTED (the model has no energy; labels for a model without a
 *         label input; a context for a model without a context input); ::SCORE_E_RANGE (n too
 *         large, a label outside 0..K); ::SCORE_E_NUMERIC (non-finite c or context value, or a
 *         non-finite energy); ::SCORE_E_NOMEM.
 * Thread-safety: safe for concurrent readers of a prepared @p model.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_model_energy_cond(score_model *model, size_t n,
                                                        const float *x, const double *c,
                                                        const int32_t *labels,
                                                        const float *context, double *E_out);

/**
 * @brief 1 when score_model_energy() can evaluate @p model, else 0 (also for NULL).
 * @param[in] model the model.
 * @return 1 or 0.
 * Thread-safety: safe.
 * @since 0.2
 */
SCORE_API int score_model_has_energy(const score_model *model);

/**
 * @brief The energy U(x, t) of an sde's score, s(x, t) = -grad_x U: with the sde's universal
 * form s = a F(in x, cond) + k x (sde.h) and a model with an energy E,
 * U = (a / in) E(in x, cond(t)) - k |x|^2 / 2 per row. For ::SCORE_OUTPUT_SCORE (a = in = 1,
 * k = 0) this is E(x, cond(t)).
 *
 * The rows' labels of score_sde_set_label() apply as for the score (a mixture's component).
 * @param[in,out] sde the sde (workspace). @param[in] n rows (0 is a no-op).
 * @param[in] t n times, finite and > 0. @param[in] x n * dim points.
 * @param[out] E_out n energies.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (the model has no
 *         energy, or the sde guides: ::SCORE_SDE_PARAM_GUIDANCE != 0 or a classifier);
 *         ::SCORE_E_RANGE (a time the schedule refuses); ::SCORE_E_NUMERIC; ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive for @p sde.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_sde_energy(score_sde *sde, size_t n, const double *t,
                                                 const float *x, double *E_out);

/* ---- the "mala" step (::SCORE_STEP_MALA, step.h) ---------------------------------------- */

/**
 * @brief Sets the step-size adaptation of a "mala" step: each of its first @p warmup_calls calls
 * (since its creation or score_step_reset()) multiplies the step-size scale by
 * exp((rate - target) / sqrt(k + 1)), k the call's index and rate that call's acceptance rate
 * over its rows.
 *
 * Default: no warm-up (0 calls), target 0.574 (the optimal acceptance rate of MALA in high
 * dimension). The adapted scale depends on the rows of the warm-up calls, so samples are
 * batch-split invariant only without warm-up (or with the adapted step fixed afterwards:
 * ::SCORE_STEP_PARAM_STEP_SIZE = the scale times the step). score_step_reset() restarts the
 * adaptation from scale 1 (the settings stay).
 * @param[in,out] step a mala step.
 * @param[in] warmup_calls calls that adapt, 0..2^40.
 * @param[in] target acceptance rate, [0.01, 0.99].
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p step); ::SCORE_E_UNSUPPORTED (not a mala step);
 *         ::SCORE_E_RANGE.
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_step_mala_set_adaptation(score_step *step,
                                                               uint64_t warmup_calls,
                                                               double target);

/**
 * @brief Acceptance statistics of a "mala" step since its creation or score_step_reset().
 *
 * The mala step (a corrector: use it alone at a fixed time with score_step_apply(), or as the
 * corrector of the predictor-corrector and annealed-Langevin samplers) proposes
 * y = x + e s(x) + sqrt(2 e) z and accepts it with probability
 * min(1, exp(U(x) - U(y)) q(x | y) / q(y | x)) (U: score_sde_energy(); q: the Gaussian proposal),
 * with a per-row uniform from the counter generator, so that exp(-U) is its exact invariant law.
 * Step size e = ::SCORE_STEP_PARAM_STEP_SIZE when > 0, else 2 alpha_i (snr sigma(t))^2
 * (::SCORE_STEP_PARAM_SNR; alpha_i = alpha(t)^2 / alpha(t')^2 for the call's next time
 * 0 < t' < t, else 1, as for "langevin" and "ald"), times the scale (1 unless adapted during the warm-up,
 * score_step_mala_set_adaptation()). The sde's model must
 * have an energy (score_model_has_energy()); otherwise the step fails with
 * ::SCORE_E_UNSUPPORTED and leaves x unchanged.
 * @param[in] step a mala step.
 * @param[out] accepted accepted moves (row-steps), or NULL.
 * @param[out] proposed proposed moves, or NULL.
 * @param[out] scale the current step-size scale, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p step); ::SCORE_E_UNSUPPORTED (not a mala step).
 * Thread-safety: safe for concurrent readers of @p step.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_step_mala_acceptance(const score_step *step,
                                                           uint64_t *accepted,
                                                           uint64_t *proposed, double *scale);

/**
 * @brief Number of levels a mala step has recorded: runs of consecutive calls whose first row
 * has the same time t (a sampler's noise levels), 0 for NULL or another step type.
 * @param[in] step the step.
 * @return the count.
 * Thread-safety: safe for concurrent readers of @p step.
 * @since 0.2
 */
SCORE_API size_t score_step_mala_level_count(const score_step *step);

/**
 * @brief Acceptance counts of level @p i of a mala step (see score_step_mala_level_count()).
 * @param[in] step a mala step. @param[in] i the level, in order of first use.
 * @param[out] t the level's time, or NULL.
 * @param[out] accepted accepted moves, or NULL. @param[out] proposed proposed moves, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED (not a mala step);
 *         ::SCORE_E_RANGE (@p i past the last level).
 * Thread-safety: safe for concurrent readers of @p step.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_step_mala_level(const score_step *step, size_t i, double *t,
                                                      uint64_t *accepted, uint64_t *proposed);

SCORE_END_DECLS

#endif /* LIBSCORE_ENERGY_H */
