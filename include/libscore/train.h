/**
 * @file train.h
 * @brief Training: optimizers (SGD with momentum, Adam, AdamW) with linear learning-rate
 * warm-up and gradient-norm clipping, an exponential moving average (EMA) of the weights, a
 * trainer that runs score-matching steps over an in-memory dataset with checkpoints that resume
 * bit for bit, and generators of the usual 2-D toy datasets.
 *
 * All three objects work on one flat float32 parameter vector: the layout of
 * score_model_params_get(). Gradients are those accumulated by score_loss_compute().
 *
 * Non-finite guard: an optimizer step whose gradient contains a NaN or an infinity (its norm is
 * not finite) is refused with ::SCORE_E_NUMERIC and changes nothing but a counter; the trainer
 * additionally refuses a step whose loss is not finite, and one whose update would overflow (a
 * new weight or moment not finite). Such a step is *skipped*: it is counted
 * (score_trainer_get_skipped()), reported by the status of score_trainer_step(), and leaves the
 * weights, the optimizer moments and the EMA bitwise unchanged.
 *
 * Reproducibility: for a fixed build, BLAS and thread count, a trainer's trajectory is a pure
 * function of the model's initial weights, the data, the configuration and the trainer's seed;
 * training N steps equals training k steps, saving a checkpoint, loading it into a freshly
 * configured trainer and training N - k more steps, bit for bit.
 */
#ifndef LIBSCORE_TRAIN_H
#define LIBSCORE_TRAIN_H

#include "common.h"
#include "comm.h"
#include "loss.h"
#include "model.h"
#include "rng.h"
#include "sde.h"

SCORE_BEGIN_DECLS

/* ==== optimizer ============================================================================ */

/** @brief Opaque optimizer handle: hyper-parameters plus per-parameter state (moments). */
typedef struct score_optimizer score_optimizer;

/** @brief Optimizer algorithms (pinned values). Update rules (g = gradient after clipping,
 *  lr_k = learning rate of the k-th applied update after warm-up, wd = WEIGHT_DECAY):
 *  the same as PyTorch's torch.optim.SGD / Adam / AdamW with default flags. */
enum score_optimizer_kind {
    SCORE_OPTIMIZER_SGD = 1,  /**< g += wd p; b = MOMENTUM b + g (b = g on the first update);
                                   p -= lr_k (NESTEROV ? g + MOMENTUM b : b). MOMENTUM 0 is plain SGD. */
    SCORE_OPTIMIZER_ADAM = 2, /**< g += wd p (L2 penalty); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
                                   p -= lr_k / (1 - b1^k) m / (sqrt(v) / sqrt(1 - b2^k) + EPS), k counted from 1. */
    SCORE_OPTIMIZER_ADAMW = 3 /**< Adam with decoupled weight decay: p *= 1 - lr_k wd, then the
                                   Adam update with the undecayed gradient. */
};

/** @brief Optimizer parameter ids (pinned; object kind ::SCORE_OBJECT_OPTIMIZER, ids 500-599).
 *  All may be changed between steps and take effect at the next step. */
enum score_optimizer_param {
    SCORE_OPTIMIZER_PARAM_LR = 500,           /**< f64: base learning rate, [0, 1e6], default 1e-3 (score_sde uses 2e-4, NCSNv2 1e-4). */
    SCORE_OPTIMIZER_PARAM_MOMENTUM = 501,     /**< f64: SGD momentum, [0, 1), default 0.9. */
    SCORE_OPTIMIZER_PARAM_NESTEROV = 502,     /**< i64: 1 = Nesterov momentum (SGD), 0..1, default 0. */
    SCORE_OPTIMIZER_PARAM_BETA1 = 503,        /**< f64: Adam first-moment decay b1, [0, 1), default 0.9. */
    SCORE_OPTIMIZER_PARAM_BETA2 = 504,        /**< f64: Adam second-moment decay b2, [0, 1), default 0.999. */
    SCORE_OPTIMIZER_PARAM_EPS = 505,          /**< f64: Adam denominator offset, [1e-30, 1], default 1e-8. */
    SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY = 506, /**< f64: weight decay wd (L2 for SGD/Adam, decoupled for AdamW), [0, 1e6], default 0 (PyTorch's AdamW default is 0.01). */
    SCORE_OPTIMIZER_PARAM_WARMUP = 507,       /**< i64: linear warm-up length W in updates: lr_k = LR min(1, (k + 1) / W) for the k-th update (k from 0); 0 = none; [0, 2^40], default 0.
                                                   (score_sde uses W = 5000 with LR k / W, i.e. its first update has rate 0; libscore starts at LR / W.) */
    SCORE_OPTIMIZER_PARAM_GRAD_CLIP = 508     /**< f64: maximum gradient 2-norm: when the norm N exceeds it the gradient is scaled by GRAD_CLIP / (N + 1e-6) (PyTorch's clip_grad_norm_); 0 = off; [0, 1e30], default 0 (score_sde: 1). */
};

/**
 * @brief Creates an optimizer for a parameter vector of @p n_params floats, with default
 * hyper-parameters and zero state.
 * @param[out] out      the new optimizer; NULL on failure.
 * @param[in]  kind     a ::score_optimizer_kind.
 * @param[in]  n_params length of the parameter vector, >= 1 (e.g. score_model_param_count()).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_UNSUPPORTED (unknown kind);
 *         ::SCORE_E_RANGE (@p n_params is 0); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the optimizer; free it with score_optimizer_free().
 * Thread-safety: safe.
 * @since 0.1
 * @see score_optimizer_step
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_new(score_optimizer **out, int kind,
                                                    size_t n_params);

/**
 * @brief Frees an optimizer. NULL is a no-op.
 * @param[in] opt the optimizer.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_optimizer_free(score_optimizer *opt);

/**
 * @brief Deep copy: hyper-parameters, moments and counters.
 * @param[out] out the copy; NULL on failure. @param[in] opt the optimizer.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the copy.
 * Thread-safety: safe for concurrent readers of @p opt.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_clone(score_optimizer **out,
                                                      const score_optimizer *opt);

/**
 * @brief Kind of an optimizer (a ::score_optimizer_kind), or 0 for NULL.
 * @param[in] opt the optimizer.
 * @return the kind.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_optimizer_kind(const score_optimizer *opt);

/**
 * @brief Name of the algorithm: `"sgd"`, `"adam"` or `"adamw"` (`"(null)"` for NULL).
 * @param[in] opt the optimizer.
 * @return a static string; never NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_optimizer_name(const score_optimizer *opt);

/**
 * @brief Length of the parameter vector the optimizer was made for (0 for NULL).
 * @param[in] opt the optimizer.
 * @return n_params.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_optimizer_size(const score_optimizer *opt);

/**
 * @brief Sets a floating-point hyper-parameter (see ::score_optimizer_param).
 * @param[in,out] opt the optimizer. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_RANGE
 *         (outside the bounds or NaN); ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_set_f64(score_optimizer *opt, int param,
                                                        double value);

/**
 * @brief Sets an integer hyper-parameter (see ::score_optimizer_param).
 * @param[in,out] opt the optimizer. @param[in] param the id. @param[in] value the value.
 * @return as score_optimizer_set_f64().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_set_i64(score_optimizer *opt, int param,
                                                        int64_t value);

/**
 * @brief Reads a floating-point hyper-parameter.
 * @param[in] opt the optimizer. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_get_f64(const score_optimizer *opt, int param,
                                                        double *out);

/**
 * @brief Reads an integer hyper-parameter.
 * @param[in] opt the optimizer. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_get_i64(const score_optimizer *opt, int param,
                                                        int64_t *out);

/**
 * @brief Applies one update to @p params from the gradient @p grad.
 *
 * In order: the gradient 2-norm N is computed in double; if N is not finite the step is
 * refused (nothing changes except the skipped counter); otherwise the gradient is clipped
 * (GRAD_CLIP), the learning rate of this update is computed (LR and WARMUP) and the
 * kind's update rule is applied. @p grad is not modified.
 * @param[in,out] opt    the optimizer (moments, counters).
 * @param[in]     n      length of both vectors; must equal score_optimizer_size().
 * @param[in,out] params the parameters, updated in place.
 * @param[in]     grad   the gradient (not modified; must not alias @p params).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_SHAPE (@p n);
 *         ::SCORE_E_NUMERIC (non-finite gradient: step skipped, @p params and the moments
 *         bitwise unchanged).
 * Thread-safety: object-exclusive.
 * @since 0.1
 * @see score_optimizer_get_step, score_optimizer_last_grad_norm
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_step(score_optimizer *opt, size_t n,
                                                     float *params, const float *grad);

/**
 * @brief Number of updates applied so far (skipped steps not included).
 * @param[in] opt the optimizer. @param[out] out the count.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_get_step(const score_optimizer *opt,
                                                         uint64_t *out);

/**
 * @brief Number of steps refused because the gradient was not finite.
 * @param[in] opt the optimizer. @param[out] out the count.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_get_skipped(const score_optimizer *opt,
                                                            uint64_t *out);

/**
 * @brief Learning rate the next update will use (LR after warm-up).
 * @param[in] opt the optimizer. @param[out] out the rate.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_current_lr(const score_optimizer *opt,
                                                           double *out);

/**
 * @brief Gradient 2-norm (before clipping) seen by the last score_optimizer_step() call,
 * skipped or not (NaN or infinity for a skipped step; 0 before the first call).
 * @param[in] opt the optimizer. @param[out] out the norm.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_last_grad_norm(const score_optimizer *opt,
                                                               double *out);

/**
 * @brief Zeroes the moments and the counters (hyper-parameters are kept).
 * @param[in,out] opt the optimizer.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_reset(score_optimizer *opt);

/**
 * @brief Size in bytes of the serialised state (counters and moments, not hyper-parameters).
 * @param[in] opt the optimizer.
 * @return the size; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_optimizer_state_size(const score_optimizer *opt);

/**
 * @brief Serialises the state: a versioned little-endian header (kind, n_params, update and
 * skip counters) followed by the moments as little-endian float32.
 * @param[in] opt the optimizer. @param[out] buf destination.
 * @param[in] len size of @p buf; at least score_optimizer_state_size().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE (@p len too small).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_state_get(const score_optimizer *opt, void *buf,
                                                          size_t len);

/**
 * @brief Restores a state written by score_optimizer_state_get() of an optimizer of the same
 * kind and size.
 * @param[in,out] opt the optimizer. @param[in] buf the bytes.
 * @param[in] len their number; must equal score_optimizer_state_size().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE (length); ::SCORE_E_FORMAT (bad
 *         header, other kind or size, non-finite moments; the optimizer is then unchanged).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_optimizer_state_set(score_optimizer *opt, const void *buf,
                                                          size_t len);

/* ==== EMA ================================================================================== */

/** @brief Opaque exponential-moving-average handle (a shadow copy of the parameters). */
typedef struct score_ema score_ema;

/** @brief EMA parameter ids (pinned; object kind ::SCORE_OBJECT_EMA, ids 900-999).
 *  The update is shadow -= (1 - d) (shadow - p) with d = DECAY, or, with WARMUP,
 *  d = min(DECAY, (1 + n) / (10 + n)) where n is the number of updates including this one
 *  (score_sde's ExponentialMovingAverage with num_updates). */
enum score_ema_param {
    SCORE_EMA_PARAM_DECAY = 900, /**< f64: decay rate, [0, 1], default 0.999 (score_sde VE; 0.9999 VP; NCSNv2 0.999). */
    SCORE_EMA_PARAM_WARMUP = 901 /**< i64: 1 = (1 + n) / (10 + n) warm-up, 0 = constant decay; default 1. */
};

/**
 * @brief Creates an EMA whose shadow starts as a copy of @p init.
 * @param[out] out the new EMA; NULL on failure.
 * @param[in] n_params length of the parameter vector, >= 1.
 * @param[in] init @p n_params initial values (finite), e.g. the model's initial parameters.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_RANGE (@p n_params is 0);
 *         ::SCORE_E_NUMERIC (non-finite @p init); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the EMA (free with score_ema_free()); @p init is copied.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_new(score_ema **out, size_t n_params,
                                              const float *init);

/**
 * @brief Frees an EMA. NULL is a no-op.
 * @param[in] ema the EMA.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_ema_free(score_ema *ema);

/**
 * @brief Deep copy.
 * @param[out] out the copy. @param[in] ema the EMA.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the copy.
 * Thread-safety: safe for concurrent readers of @p ema.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_clone(score_ema **out, const score_ema *ema);

/**
 * @brief Length of the parameter vector (0 for NULL).
 * @param[in] ema the EMA.
 * @return n_params.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_ema_size(const score_ema *ema);

/**
 * @brief Sets a floating-point parameter (see ::score_ema_param).
 * @param[in,out] ema the EMA. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_RANGE; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_set_f64(score_ema *ema, int param, double value);

/**
 * @brief Sets an integer parameter (see ::score_ema_param).
 * @param[in,out] ema the EMA. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_RANGE; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_set_i64(score_ema *ema, int param, int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] ema the EMA. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_get_f64(const score_ema *ema, int param, double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] ema the EMA. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_get_i64(const score_ema *ema, int param, int64_t *out);

/**
 * @brief Folds the current parameters into the average (one update, computed per element in
 * double).
 * @param[in,out] ema the EMA. @param[in] n must equal score_ema_size().
 * @param[in] params the current parameters.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE; ::SCORE_E_NUMERIC (non-finite
 *         @p params; the average is unchanged).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_update(score_ema *ema, size_t n, const float *params);

/**
 * @brief Copies the averaged parameters into @p out.
 * @param[in] ema the EMA. @param[out] out destination. @param[in] n must equal score_ema_size().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_get(const score_ema *ema, float *out, size_t n);

/**
 * @brief Writes the averaged parameters into a model (score_model_params_set()), e.g. a clone
 * used for sampling with score_sde_set_model().
 * @param[in] ema the EMA. @param[in,out] model a model with score_ema_size() parameters.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE (parameter count differs);
 *         ::SCORE_E_UNSUPPORTED (the model has no parameters).
 * Thread-safety: object-exclusive on @p model.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_copy_to_model(const score_ema *ema, score_model *model);

/**
 * @brief Restarts the average at @p params with the update counter at 0.
 * @param[in,out] ema the EMA. @param[in] n must equal score_ema_size().
 * @param[in] params the new shadow values (finite).
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE; ::SCORE_E_NUMERIC.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_reset(score_ema *ema, size_t n, const float *params);

/**
 * @brief Number of updates folded in since creation or the last reset.
 * @param[in] ema the EMA. @param[out] out the count.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_get_num_updates(const score_ema *ema, uint64_t *out);

/**
 * @brief Size in bytes of the serialised state (update counter and shadow).
 * @param[in] ema the EMA.
 * @return the size; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_ema_state_size(const score_ema *ema);

/**
 * @brief Serialises the state (versioned little-endian header, then the shadow as
 * little-endian float32).
 * @param[in] ema the EMA. @param[out] buf destination.
 * @param[in] len size of @p buf; at least score_ema_state_size().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_state_get(const score_ema *ema, void *buf, size_t len);

/**
 * @brief Restores a state written by score_ema_state_get() for the same size.
 * @param[in,out] ema the EMA. @param[in] buf the bytes.
 * @param[in] len their number; must equal score_ema_state_size().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE; ::SCORE_E_FORMAT (bad header, other
 *         size or non-finite values; the EMA is then unchanged).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_ema_state_set(score_ema *ema, const void *buf, size_t len);

/* ==== trainer ============================================================================== */

/** @brief Opaque trainer handle. */
typedef struct score_trainer score_trainer;

/**
 * @brief Progress / cancel callback of score_trainer_run().
 * @param step the number of steps the trainer has taken (its step counter after this step).
 * @param total the step counter the run will reach when it completes.
 * @param loss the loss of the latest step (not finite for a skipped step).
 * @param lr the learning rate the latest applied update used.
 * @param user_data the pointer given to score_trainer_run().
 * @return 0 to continue; any other value stops the run with ::SCORE_E_CANCELLED after this
 *         (complete) step.
 */
typedef int SCORE_CALLBACK(score_trainer_progress_fn)(size_t step, size_t total, double loss,
                                                      double lr, void *user_data);

/** @brief Trainer parameter ids (pinned; object kind ::SCORE_OBJECT_TRAINER, ids 600-699). */
enum score_trainer_param {
    SCORE_TRAINER_PARAM_BATCH_SIZE = 600,     /**< i64: minibatch size B, [1, 2^24], default 128; a dataset with fewer rows uses all rows per step. */
    SCORE_TRAINER_PARAM_SEED = 601,           /**< i64: seed of the shuffling and of the loss noise, [0, 2^62], default 0. */
    SCORE_TRAINER_PARAM_SHUFFLE = 602,        /**< i64: 1 = a fresh permutation per epoch, 0 = rows in order; default 1. */
    SCORE_TRAINER_PARAM_USE_EMA = 603,        /**< i64: 1 = maintain the EMA of the weights, 0 = not; default 1. */
    SCORE_TRAINER_PARAM_PROGRESS_EVERY = 604, /**< i64: the progress callback runs every this many steps and after the last step of a run, [1, 2^40], default 1. */
    SCORE_TRAINER_PARAM_MAX_SKIPS = 605,      /**< i64: score_trainer_run() stops with ::SCORE_E_NUMERIC after this many consecutive skipped steps, [1, 2^40], default 10. */
    SCORE_TRAINER_PARAM_P_UNCOND = 606,       /**< f64: label dropout p_uncond, [0, 1], default 0.1, used only when labels are set (score_trainer_set_labels()): at each step every minibatch row's label is replaced by the null label with probability p, which trains the unconditional model (classifier-free guidance) in the same network. The decision for (step s, minibatch position i) is u < p with u the uniform of the trainer's generator at (SEED, stream 2, counter s, row i): independent of the thread count and of every other draw (the loss noise and the permutations are those of a run without labels). Not applied with a ::SCORE_LOSS_CLASSIFIER loss (a classifier has no null label). */
    /* distributed training (communicator, comm.h) */
    SCORE_TRAINER_PARAM_REDUCE_ROWS = 607     /**< i64: rows per reduction block of a trainer with a communicator (score_trainer_set_comm()), [1, 2^24], default 64. The minibatch of B rows is cut into ceil(B / REDUCE_ROWS) blocks of equal size (the last may be shorter); each block's gradient is computed on its own and the blocks' gradients are summed in block order, so the result depends on B and REDUCE_ROWS, never on the rank count. The blocks are split over the ranks in contiguous ranges: more ranks than blocks leave some ranks idle. Unused without a communicator. */
};

/**
 * @brief Creates a trainer that optimises the parameters of @p model with @p loss.
 *
 * Each step: gathers a minibatch (epoch e uses a permutation of the rows that is a pure
 * function of (SEED, e); steps per epoch = max(1, floor(rows / B)), the remainder rows of an
 * epoch are not used in it), computes the loss and its gradient with score_loss_compute()
 * (noise from a Philox generator with seed SEED, stream 0 and counter = the step number, row
 * = position in the minibatch; with labels, the label dropout from stream 2, see
 * ::SCORE_TRAINER_PARAM_P_UNCOND), guards against non-finite values, applies the optimizer and
 * updates the EMA. The model's current parameters are read at every step, so they may be
 * changed between steps.
 * @param[out] out the new trainer; NULL on failure.
 * @param[in] model the trainable model (::SCORE_MODEL_CAP_PARAMS); borrowed: it must outlive
 *            the trainer. Its parameters are updated in place.
 * @param[in] sde the parameterization the loss goes through (score_loss_compute()), or NULL for
 *            a time-free loss on the bare model; borrowed: it must outlive the trainer. Only
 *            its schedule and coefficients are used: the trainer always evaluates @p model,
 *            whatever model the sde currently holds.
 * @param[in] loss the loss; copied (score_loss_clone()), so later changes to @p loss have no
 *            effect (use score_trainer_loss() to reach the copy).
 * @param[in] optimizer_kind a ::score_optimizer_kind (configure it through
 *            score_trainer_optimizer()).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer; no sde for a loss that needs one:
 *         NCSN, DDPM, SDE); ::SCORE_E_UNSUPPORTED (model without parameters, unknown optimizer
 *         kind); ::SCORE_E_SHAPE (sde and model dimensions differ); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the trainer; free it with score_trainer_free().
 * Thread-safety: object-exclusive on @p model.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_new(score_trainer **out, score_model *model,
                                                  const score_sde *sde, const score_loss *loss,
                                                  int optimizer_kind);

/**
 * @brief Frees a trainer (not the model or the sde). NULL is a no-op.
 * @param[in] tr the trainer.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_trainer_free(score_trainer *tr);

/**
 * @brief Sets a floating-point parameter (see ::score_trainer_param; ::SCORE_TRAINER_PARAM_P_UNCOND
 * is the only one).
 * @param[in,out] tr the trainer. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_RANGE;
 *         ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_set_f64(score_trainer *tr, int param, double value);

/**
 * @brief Sets an integer parameter (see ::score_trainer_param).
 *
 * BATCH_SIZE, SEED and SHUFFLE define the data order and noise of every step: changing them
 * after the first step changes the trajectory from that step on.
 * @param[in,out] tr the trainer. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or a floating-point parameter); ::SCORE_E_RANGE;
 *         ::SCORE_E_UNSUPPORTED.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_set_i64(score_trainer *tr, int param, int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] tr the trainer. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_get_f64(const score_trainer *tr, int param,
                                                      double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] tr the trainer. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_get_i64(const score_trainer *tr, int param,
                                                      int64_t *out);

/**
 * @brief Gives the trainer its dataset: @p n_rows rows of @p dim float32 values (copied).
 * @param[in,out] tr the trainer. @param[in] n_rows rows, >= 1.
 * @param[in] dim values per row; must equal the model's dimension.
 * @param[in] data n_rows * dim finite values, row-major.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, @p n_rows 0); ::SCORE_E_SHAPE (@p dim);
 *         ::SCORE_E_NUMERIC (a non-finite value; the message names its row); ::SCORE_E_RANGE
 *         (@p n_rows * @p dim does not fit in a size_t); ::SCORE_E_NOMEM.
 * Ownership: the data is copied; the caller keeps @p data.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_set_data(score_trainer *tr, size_t n_rows,
                                                       size_t dim, const float *data);

/**
 * @brief Gives the class label of every data row (copied), for a model with a label input
 * (::SCORE_MODEL_PARAM_NUM_CLASSES = K > 0).
 *
 * The minibatch rows carry their labels (the same row indices as the data: the permutation of
 * the epoch), after label dropout (::SCORE_TRAINER_PARAM_P_UNCOND); each step hands them to
 * the trainer's loss (score_loss_set_labels(), replacing any labels set there). Labels are
 * data, not training state: checkpoints do not store them but record their hash (give them
 * again before loading: score_trainer_load() checks them).
 * Replacing the dataset with one of another row count makes the next step fail with
 * ::SCORE_E_SHAPE until the labels are given again.
 * @param[in,out] tr the trainer (its dataset set).
 * @param[in] n_rows the number of data rows (ignored when @p labels is NULL).
 * @param[in] labels n_rows labels, each in 0..K-1 or ::SCORE_LABEL_NULL (a row without a class:
 *            always the null label); NULL removes the labels (every row then trains the null
 *            label).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p tr); ::SCORE_E_STAGE (no dataset yet);
 *         ::SCORE_E_SHAPE (@p n_rows differs from the dataset's rows); ::SCORE_E_UNSUPPORTED
 *         (the model takes no labels); ::SCORE_E_RANGE (a label outside 0..K-1 and not
 *         ::SCORE_LABEL_NULL; the message names the row); ::SCORE_E_NOMEM.
 * Ownership: copied.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_set_labels(score_trainer *tr, size_t n_rows,
                                                         const int32_t *labels);

/**
 * @brief Gives the context vector of every data row (copied), for a model with a context input
 * (::SCORE_MODEL_PARAM_CONTEXT_DIM = m > 0).
 *
 * The minibatch rows carry their context vectors (the same row indices as the data) to the
 * trainer's loss (score_loss_set_context()) at each step; there is no dropout of contexts.
 * Like labels, contexts are data, not checkpointed state (a checkpoint records their hash).
 * @param[in,out] tr the trainer (its dataset set).
 * @param[in] n_rows the number of data rows (ignored when @p values is NULL).
 * @param[in] m values per row; must equal the model's context dimension.
 * @param[in] values n_rows * m finite values, row-major; NULL removes the context.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p tr); ::SCORE_E_STAGE (no dataset yet);
 *         ::SCORE_E_SHAPE (@p n_rows or @p m); ::SCORE_E_UNSUPPORTED (the model takes no
 *         context); ::SCORE_E_NUMERIC (a non-finite value); ::SCORE_E_RANGE (@p n_rows * @p m
 *         overflows); ::SCORE_E_NOMEM.
 * Ownership: copied.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_set_context(score_trainer *tr, size_t n_rows,
                                                          size_t m, const float *values);

/**
 * @brief Takes one training step (see score_trainer_new()).
 * @param[in,out] tr the trainer (a dataset must be set).
 * @param[out] loss_out the minibatch loss (as score_loss_compute()), or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p tr); ::SCORE_E_STAGE (no dataset);
 *         ::SCORE_E_NUMERIC (the loss, the gradient or the update was not finite: the step was
 *         skipped and counted; weights, optimizer moments and EMA unchanged, step counter
 *         advanced);
 *         ::SCORE_E_CALLBACK (the model's callback failed; nothing changed); ::SCORE_E_SHAPE
 *         (labels or context vectors set for another row count than the dataset's);
 *         ::SCORE_E_NOMEM (first step or larger batch only).
 * Thread-safety: object-exclusive for @p tr and for its model (the step writes the weights:
 *         nobody may evaluate the model meanwhile, not even through an sde); the dataset and
 *         the sde the trainer borrows are only read.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_step(score_trainer *tr, double *loss_out);

/**
 * @brief Makes the trainer's steps data-parallel over the ranks of @p comm (comm.h).
 *
 * With a communicator (even of one rank) a step cuts the minibatch into fixed reduction blocks
 * (::SCORE_TRAINER_PARAM_REDUCE_ROWS); each rank computes the loss and gradient of its blocks
 * (block rows draw the noise of their minibatch positions), the blocks' gradients and losses
 * are all-gathered and every rank sums them in block order, then applies the same optimizer
 * and EMA update. So 1, 2 or N ranks give bit-identical weights, optimizer moments, EMA and
 * losses for a given seed, batch and REDUCE_ROWS. They equal a trainer without a communicator
 * when the batch is one block (B <= REDUCE_ROWS); otherwise the blocked sum rounds
 * differently from the one-call gradient.
 *
 * Every rank must hold the same dataset, conditions, parameters and trainer state (same
 * calls, or the same checkpoint loaded): the first step after a change compares fingerprints
 * and refuses (::SCORE_E_MISUSE on every rank) when they differ. Every step agrees on the
 * status: when a rank fails (bad input, non-finite loss, allocation), every rank returns an
 * error from the same step (a non-finite loss in any block is a skipped step everywhere).
 * score_trainer_save() writes on rank 0 only and returns rank 0's status on every rank; a
 * progress callback's cancellation on any rank stops score_trainer_run() on all.
 * Not supported with a ::SCORE_LOSS_CLASSIFIER loss (::SCORE_E_UNSUPPORTED at the first step).
 * @param[in,out] tr the trainer. @param[in] comm the communicator (borrowed: it must outlive
 *            its use by the trainer), or NULL for a single-process trainer.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL tr).
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_set_comm(score_trainer *tr, score_comm *comm);

/**
 * @brief Takes @p n_steps steps, calling @p progress along the way.
 *
 * Skipped (non-finite) steps do not stop the run unless MAX_SKIPS of them come in a row.
 * @param[in,out] tr the trainer. @param[in] n_steps number of steps (0 is a no-op).
 * @param[in] progress callback, or NULL. @param[in] user_data passed to @p progress.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_STAGE (no dataset); ::SCORE_E_CANCELLED
 *         (the callback returned non-zero; the trainer is consistent after the last complete
 *         step and may be run further); ::SCORE_E_NUMERIC (MAX_SKIPS consecutive skipped
 *         steps); the errors of score_trainer_step().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_run(score_trainer *tr, size_t n_steps,
                                                  score_trainer_progress_fn progress,
                                                  void *user_data);

/**
 * @brief Number of steps taken (applied and skipped) since creation, or restored by a checkpoint.
 * @param[in] tr the trainer. @param[out] out the count.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_get_step(const score_trainer *tr, uint64_t *out);

/**
 * @brief Number of skipped (non-finite) steps.
 * @param[in] tr the trainer. @param[out] out the count.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_get_skipped(const score_trainer *tr, uint64_t *out);

/**
 * @brief Loss of the latest step (NaN before the first step).
 * @param[in] tr the trainer. @param[out] out the loss.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_last_loss(const score_trainer *tr, double *out);

/**
 * @brief The trainer's optimizer, to set its hyper-parameters (borrowed).
 * @param[in] tr the trainer.
 * @return the optimizer; NULL for NULL.
 * Ownership: owned by the trainer; valid until score_trainer_free().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API score_optimizer *score_trainer_optimizer(score_trainer *tr);

/**
 * @brief The trainer's EMA, to set its parameters or read the average (borrowed).
 * @param[in] tr the trainer.
 * @return the EMA; NULL for NULL.
 * Ownership: owned by the trainer; valid until score_trainer_free().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API score_ema *score_trainer_ema(score_trainer *tr);

/**
 * @brief The trainer's copy of the loss, to change its parameters (borrowed).
 * @param[in] tr the trainer.
 * @return the loss; NULL for NULL.
 * Ownership: owned by the trainer; valid until score_trainer_free().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API score_loss *score_trainer_loss(score_trainer *tr);

/**
 * @brief The model being trained (the one given to score_trainer_new()), or NULL for NULL.
 * @param[in] tr the trainer.
 * @return the model (borrowed from the caller).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API score_model *score_trainer_model(const score_trainer *tr);

/**
 * @brief A model holding the current EMA weights, e.g. for score_sde_set_model() before
 * sampling.
 *
 * The first call clones the trained model; every call copies the current average into the
 * clone. With USE_EMA = 0 the clone holds the current (raw) weights.
 * @param[in,out] tr the trainer. @param[out] out the model (borrowed).
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NOMEM.
 * Ownership: owned by the trainer; valid until score_trainer_free(); refreshed (same handle)
 * by the next call.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_ema_model(score_trainer *tr, score_model **out);

/**
 * @brief Writes a checkpoint to a safetensors file: the model (as an embedded libscore model
 * file, see score_trainer_checkpoint_model()), the optimizer state, the EMA shadow and
 * counters, the step and skip counters, the generator state (seed), and as metadata the
 * configuration that decides the continuation, which score_trainer_load() checks: every
 * parameter of the optimizer, of the EMA and of the trainer's loss, the loss and optimizer
 * kinds, and the trainer's BATCH_SIZE, SHUFFLE, USE_EMA, P_UNCOND and its reduction blocks per
 * minibatch (ceil(BATCH_SIZE / REDUCE_ROWS) with a communicator, 1 without). Not recorded as
 * configuration: PROGRESS_EVERY and MAX_SKIPS (they change no value) and SEED (restored).
 * Also recorded, as the inputs that decide what the loss means: whether the trainer has an
 * sde, the sde's ::SCORE_SDE_PARAM_OUTPUT, COND, COND_SCALE and SIGMA_DATA, and its schedule
 * (kind and every parameter, as a generative model file stores it); and a fingerprint of the
 * dataset: rows, dim, label rows, context rows and values per row, and the 64-bit FNV-1a hash
 * of the little-endian bytes of the data, of the labels and of the contexts (computed at each
 * save: one pass over the data). The tensors and the `__metadata__` keys are listed in
 * doc/training.md.
 * The file is replaced crash-safely and only if it is a regular file (or a symbolic link to
 * one), exactly as by score_model_save().
 * With a communicator (score_trainer_set_comm()) only rank 0 writes, and every rank returns
 * rank 0's status (a collective: every rank calls it).
 * @param[in] tr the trainer. @param[in] path file name (overwritten).
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_IO (the file could not be written, or
 *         @p path is not a regular file; it is then unchanged); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive (reads the model's parameters).
 * @since 0.1
 * @see score_trainer_load
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_save(score_trainer *tr, const char *path);

/**
 * @brief Same as score_trainer_save() into a memory buffer.
 * @param[in] tr the trainer. @param[out] buf_out the bytes (release with score_free()).
 * @param[out] len_out their number.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NOMEM.
 * Ownership: the caller owns *@p buf_out and releases it with score_free().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_save_buffer(score_trainer *tr, void **buf_out,
                                                          size_t *len_out);

/**
 * @brief Restores a checkpoint into a trainer configured like the one that saved it.
 *
 * Restored: the model's parameters, the optimizer's moments and counters, the EMA, the step
 * and skip counters and the SEED. Not restored (configuration, set them as before) but
 * checked: the model's architecture (same kind and parameter count; for an MLP also the
 * widths, activation, embedding and Fourier projection, i.e. the model seed), the optimizer
 * kind and every optimizer parameter, the EMA's parameters, the loss kind and every loss
 * parameter, the trainer's BATCH_SIZE, SHUFFLE, USE_EMA, P_UNCOND and reduction blocks per
 * minibatch (see score_trainer_save()): values are compared exactly, also those the kind does
 * not read, and a difference is refused with ::SCORE_E_FORMAT and a message naming the
 * parameter and both values. Not restored but checked the same way (see score_trainer_save()):
 * the sde (present or not, its output kind, time conditioning, SIGMA_DATA and its schedule's
 * kind, parameters and levels) and the dataset with its labels and contexts (shape and hash:
 * give them before loading; a trainer without a dataset refuses a checkpoint that records
 * one). Neither restored nor checked: PROGRESS_EVERY, MAX_SKIPS (they change no value), the
 * sde's sampling-only parameters. A checkpoint written before the configuration was recorded
 * (no `config.` metadata key) is checked for its learning rate and batch size only; a missing
 * configuration key stands for that parameter's default; the sde, schedule and dataset are not
 * checked for a checkpoint that does not record them (written before they were), nor the
 * dataset for one written before the trainer had one; an unknown `config.` key (a newer
 * library) is refused. Training then continues bit for bit as if it had never stopped.
 * All-or-nothing: on failure the trainer and the model are unchanged.
 * With a communicator (score_trainer_set_comm()) a collective: every rank calls it, each
 * checks its own trainer and data, and when any rank fails every rank returns an error (the
 * others naming that rank) and no rank's trainer changes.
 * @param[in,out] tr the trainer. @param[in] path file name.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_IO (cannot read); ::SCORE_E_FORMAT (not a
 *         libscore checkpoint, tensors of the wrong size or kind, non-finite values, or a
 *         checkpoint of another model architecture, optimizer, loss, configuration, sde or
 *         dataset);
 *         ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_load(score_trainer *tr, const char *path);

/**
 * @brief Same as score_trainer_load() from memory.
 * @param[in,out] tr the trainer. @param[in] buf the bytes. @param[in] len their number.
 * @return as score_trainer_load() (no ::SCORE_E_IO).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_load_buffer(score_trainer *tr, const void *buf,
                                                          size_t len);

/**
 * @brief Reads the model stored in a checkpoint file written by score_trainer_save(), with its
 * trained weights or with the EMA average, e.g. to sample without building a trainer.
 * @param[out] out the new model (prepared); NULL on failure.
 * @param[in] path the checkpoint file.
 * @param[in] use_ema 1 = the EMA weights (the raw weights if the EMA was never started),
 *            0 = the weights being trained.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, @p use_ema neither 0 nor 1);
 *         ::SCORE_E_IO; ::SCORE_E_FORMAT (not a checkpoint, or a corrupt model inside);
 *         ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model (score_model_free()).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_checkpoint_model(score_model **out, const char *path,
                                                               int use_ema);

/**
 * @brief Same as score_trainer_checkpoint_model() from memory.
 * @param[out] out the new model. @param[in] buf the checkpoint bytes. @param[in] len their
 * number. @param[in] use_ema 1 = EMA weights, 0 = trained weights.
 * @return as score_trainer_checkpoint_model() (no ::SCORE_E_IO).
 * Ownership: the caller owns the model.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_trainer_checkpoint_model_buffer(score_model **out,
                                                                      const void *buf, size_t len,
                                                                      int use_ema);

/* ==== toy datasets ========================================================================= */

/**
 * @brief Draws @p n points of a named 2-D toy dataset (the common FFJORD-style definitions).
 *
 * Point i is a pure function of the generator's seed, stream and current counter and of i (it
 * uses row i, columns 0..7: four uniforms then four normals), so n points are a prefix of any
 * larger draw with the same generator. Names (u ~ U(0,1), z ~ N(0,1)):
 * - `"ring8"`: mixture of 8 equal-weight isotropic Gaussians, means at radius 2 sqrt(2) and
 *   angles 2 pi k / 8 (k = 0..7), standard deviation sqrt(2) / 4 (score_dataset_toy_mixture()
 *   gives these parameters);
 * - `"moons"`: two interleaved half circles, upper (cos a, sin a), lower (1 - cos a,
 *   1/2 - sin a) with a = pi u, each with probability 1/2, plus 0.1 z noise per coordinate,
 *   then scaled by 2 and shifted by (-1, -0.2);
 * - `"swissroll"`: r = 1.5 pi (1 + 2 u), point (r cos r, r sin r) / 5 plus 0.2 z noise per
 *   coordinate;
 * - `"checkerboard"`: x1 ~ U(-2, 2), x2 = v - 2 b + (floor(x1) mod 2) with v ~ U(0, 1) and a
 *   fair bit b, scaled by 2 (uniform on 8 of the 16 unit squares of [-4, 4]^2, scaled);
 * - `"gaussian"`: standard normal N(0, I_2).
 * @param[in] name the dataset name. @param[in] rng the generator (read only).
 * @param[in] n number of points. @param[out] out n * 2 floats, row-major.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (unknown name);
 *         ::SCORE_E_RANGE (n >= 2^32).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_dataset_toy(const char *name, const score_rng *rng,
                                                  size_t n, float *out);

/**
 * @brief Dimension of a named toy dataset (2 for all current ones; 0 for an unknown name).
 * @param[in] name the dataset name.
 * @return the dimension.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_dataset_toy_dim(const char *name);

/**
 * @brief Number of built-in toy datasets.
 * @return the count (names are listed by score_dataset_toy_name()).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_dataset_toy_count(void);

/**
 * @brief Name of the @p i-th built-in toy dataset, e.g. `"ring8"`.
 * @param[in] i 0 .. score_dataset_toy_count() - 1.
 * @return a static string, or NULL when @p i is out of range.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_dataset_toy_name(size_t i);

/**
 * @brief Exact mixture parameters of a toy dataset that is a Gaussian mixture (`"ring8"`,
 * `"gaussian"`), in the layout of score_model_new_gmm() (diagonal covariances), e.g. to build
 * the analytic score model that is the test oracle.
 * @param[in] name the dataset name.
 * @param[in] max_components capacity of the output arrays (in components).
 * @param[out] k_out number of components k.
 * @param[out] weights k weights (sum 1), or NULL.
 * @param[out] means k * 2 means, row-major, or NULL.
 * @param[out] vars k * 2 diagonal variances, row-major, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p name or @p k_out); ::SCORE_E_UNSUPPORTED
 *         (unknown name, or not a Gaussian mixture); ::SCORE_E_SHAPE (@p max_components too
 *         small; *@p k_out still receives the count).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_dataset_toy_mixture(const char *name, size_t max_components,
                                                          size_t *k_out, double *weights,
                                                          double *means, double *vars);

SCORE_END_DECLS

#endif /* LIBSCORE_TRAIN_H */
