/**
 * @file model.h
 * @brief Score models: a network or function F(x, c) of a batch of points x (n rows of dim
 * floats) and a per-row conditioning scalar c (usually a function of the time t; see sde.h).
 *
 * An MLP may also take a class label and / or a context vector per row
 * (::SCORE_MODEL_PARAM_NUM_CLASSES, ::SCORE_MODEL_PARAM_CONTEXT_DIM, score_model_forward_cond()).
 *
 * Kinds: a trainable MLP with exact Jacobian machinery, analytic Gaussian and Gaussian-mixture
 * models (the exact score of the noised data under a schedule: test oracles), a user callback
 * (an external network), and combinations (weighted sums for guidance). A noise-conditional
 * classifier (::SCORE_MODEL_CLASSIFIER) is the MLP's network with K logits; it has its own
 * compute calls (classifier.h) and answers ::SCORE_E_UNSUPPORTED to the ones below. A
 * convolutional U-Net on images (::SCORE_MODEL_UNET, unet.h) provides forward and backward.
 *
 * Shapes: `x`, `out` and cotangents are row-major float32 arrays of n * dim values; `c` is an
 * array of n doubles; probes `v` for k directions are n * k * dim floats laid out as
 * `v[(row * k + probe) * dim + j]`. Parameter gradients are float32 arrays of
 * score_model_param_count() values and are *accumulated* (added to), never overwritten.
 *
 * Reproducibility: for a fixed build and BLAS, results are bit-identical between runs and
 * between a model and its clone or its saved-and-loaded copy. A row's result may differ in the
 * last bits with the batch size (BLAS kernels change the summation order with the number of
 * rows, e.g. OpenBLAS for one-row products), and parameter gradients are sums over rows in
 * a blocked order.
 *
 * Non-finite results: the compute calls (score_model_forward(), score_model_backward(),
 * score_model_jvp(), score_model_vjp(), score_model_trace(), score_model_trace_grad(),
 * score_model_vjv_grad()) check what they wrote and return ::SCORE_E_NUMERIC, never ::SCORE_OK,
 * when an output holds NaN or infinity: from finite inputs this means the model overflows
 * there (e.g. huge weights); the message names the output and its first bad row and says
 * whether the inputs were finite. The outputs are written all the same.
 *
 * Lifecycle: a model is *configuring* after score_model_new() until score_model_prepare() or the
 * first compute call; from then on architecture setters fail with ::SCORE_E_STAGE.
 *
 * Threads: a prepared model is immutable, and every compute call except the training pair only
 * reads it. What an evaluation writes lives in the workspace of the calling object (an sde,
 * hence every sampler and the likelihood; a loss; a trainer) or of the call itself (the public
 * read-only functions below), so one prepared model may be shared by any number of threads at
 * the same time (see doc/threading.md). The training pair score_model_forward() /
 * score_model_backward() keeps its cache in a workspace of the model handle: those two calls
 * (and the setters, parameter writes and free) are object-exclusive. Workspaces grow to the
 * largest batch their owner has seen; the public read-only calls allocate theirs per call.
 * Prepare a model before sharing it (the first use of an unprepared model prepares it, which
 * writes it).
 */
#ifndef LIBSCORE_MODEL_H
#define LIBSCORE_MODEL_H

#include "common.h"
#include "rng.h"
#include "schedule.h"

SCORE_BEGIN_DECLS

/** @brief Opaque score-model handle. */
typedef struct score_model score_model;

/** @brief Model kinds (pinned values). */
enum score_model_kind {
    SCORE_MODEL_MLP = 1,         /**< Trainable multilayer perceptron with conditioning embedding. */
    SCORE_MODEL_GAUSSIAN = 2,    /**< Analytic Gaussian data N(mu, Sigma) noised by a schedule. */
    SCORE_MODEL_GMM = 3,         /**< Analytic Gaussian mixture (diagonal covariances) noised by a schedule. */
    SCORE_MODEL_CALLBACK = 4,    /**< User function (an external network). */
    SCORE_MODEL_COMBINATION = 5, /**< Weighted sum of other models (guidance, product of experts). */
    SCORE_MODEL_CLASSIFIER = 6,  /**< Noise-conditional classifier p(y | x_t, t): the MLP with K logits (classifier.h). */
    SCORE_MODEL_ENERGY = 7,      /**< Energy model: the MLP with one output E(x, c); its output is the score -grad_x E (energy.h). */
    SCORE_MODEL_UNET = 8         /**< Convolutional U-Net on images of C x H x W (unet.h): forward and backward, no Jacobian machinery. */
};

/** @brief Activation functions of the MLP (pinned values); all are smooth enough for the
 *  second derivatives Hyvärinen score matching needs (ELU is C1 with a bounded second derivative). */
enum score_activation {
    SCORE_ACT_SILU = 1,     /**< z * sigmoid(z). */
    SCORE_ACT_SOFTPLUS = 2, /**< log(1 + e^z). */
    SCORE_ACT_TANH = 3,     /**< tanh(z). */
    SCORE_ACT_ELU = 4,      /**< z for z > 0, e^z - 1 otherwise. */
    SCORE_ACT_GELU = 5      /**< z Phi(z), the exact (erf) form. */
};

/** @brief Conditioning embeddings of the MLP (pinned values). */
enum score_embedding {
    SCORE_EMBED_NONE = 0,       /**< c is appended to x as one extra input. */
    SCORE_EMBED_FOURIER = 1,    /**< Gaussian Fourier features [sin(2 pi W c), cos(2 pi W c)], W ~ N(0, scale^2) fixed by the seed. */
    SCORE_EMBED_SINUSOIDAL = 2  /**< Transformer-style sinusoidal features of c. */
};

/** @brief Capability flags returned by score_model_capabilities(). */
enum score_model_capability {
    SCORE_MODEL_CAP_PARAMS = 1u << 0,     /**< Has trainable parameters (get/set, gradients). */
    SCORE_MODEL_CAP_BACKWARD = 1u << 1,   /**< score_model_backward(). */
    SCORE_MODEL_CAP_JVP = 1u << 2,        /**< score_model_jvp(). */
    SCORE_MODEL_CAP_VJP = 1u << 3,        /**< score_model_vjp(). */
    SCORE_MODEL_CAP_TRACE = 1u << 4,      /**< score_model_trace() (exact divergence). */
    SCORE_MODEL_CAP_TRACE_GRAD = 1u << 5, /**< score_model_trace_grad(). */
    SCORE_MODEL_CAP_VJV_GRAD = 1u << 6,   /**< score_model_vjv_grad(). */
    SCORE_MODEL_CAP_SAVE = 1u << 7        /**< score_model_save() / score_model_save_buffer(). */
};

/** @brief Model parameter ids (pinned; object kind ::SCORE_OBJECT_MODEL, ids 300-399).
 *  Architecture parameters apply to ::SCORE_MODEL_MLP only, except SEED, EMBEDDING,
 *  EMBED_DIM, FOURIER_SCALE and NUM_CLASSES, which also configure a ::SCORE_MODEL_UNET, and the
 *  UNET_* ones, which apply to U-Nets only; other kinds answer ::SCORE_E_UNSUPPORTED. */
enum score_model_param {
    SCORE_MODEL_PARAM_HIDDEN = 300,        /**< i64: width of every hidden layer, 1..65536, default 128 (see also score_model_set_hidden_widths()). */
    SCORE_MODEL_PARAM_DEPTH = 301,         /**< i64: number of hidden layers, 1..64, default 3. */
    SCORE_MODEL_PARAM_ACTIVATION = 302,    /**< i64: a ::score_activation, default ::SCORE_ACT_SILU. */
    SCORE_MODEL_PARAM_EMBEDDING = 303,     /**< i64: a ::score_embedding, default ::SCORE_EMBED_FOURIER. */
    SCORE_MODEL_PARAM_EMBED_DIM = 304,     /**< i64: embedding size (even), 2..4096, default 32. */
    SCORE_MODEL_PARAM_FOURIER_SCALE = 305, /**< f64: standard deviation of the Fourier projection, (0, 1e4], default 16. */
    SCORE_MODEL_PARAM_RESIDUAL = 306,      /**< i64: 1 = residual hidden blocks h + phi(W h + b) where widths match, 0 = plain; default 1. */
    SCORE_MODEL_PARAM_SEED = 307,          /**< i64: seed of the initialisation and of the Fourier projection, 0..2^62, default 0. */
    SCORE_MODEL_PARAM_GUIDANCE = 308,      /**< f64: guidance weight w of a classifier-free-guidance combination, [-1e6, 1e6], default 0. */
    /** i64: threads that evaluate blocks of rows at the same time (libscore's own POSIX thread
     *  pool, made by the calling object: the sde, loss or optimizer), 1..1024, default 1.
     *  A run-time setting of any model kind, allowed before and after prepare, not saved in model
     *  files and copied by score_model_clone(). Honoured by MLP models in the cache-free
     *  evaluation that samplers, likelihood and the score_sde_* functions use, and in
     *  score_model_forward() / score_model_backward() (training with the denoising losses; the
     *  trainer's optimizer update too) when a forward is worth at least about 40 MFLOP; not by
     *  the Jacobian-trace / tangent paths; by energy models in every operation (row panels);
     *  the MLP's cache-free evaluation does not call the BLAS, so these threads are its only
     *  parallelism;
     *  by U-Net models in all their operations (blocks of images, see unet.h). A
     *  combination passes its value to its members for the
     *  duration of a call. Results are bit-identical for every value: rows and weight gradients
     *  are cut into the same blocks whatever the thread count; if the threads cannot be created
     *  the work runs on the calling thread with the same results. Set the BLAS to one thread
     *  (OPENBLAS_NUM_THREADS=1, BLIS_NUM_THREADS=1) when using it, otherwise each of these
     *  threads runs a BLAS thread pool of its own (see doc/threading.md). */
    SCORE_MODEL_PARAM_THREADS = 309,
    /** i64: number of classes K of a label input, 0..65535, default 0 (no label input). A model
     *  with K > 0 takes one label per row in 0..K-1, or the null label K (the unconditional
     *  model of classifier-free guidance), through the object that evaluates it (see
     *  score_sde_set_label(), the loss and the trainer) or score_model_forward_cond().
     *  Architecture (MLP): a learned (K + 1) x n_1 table whose row for the label is added to
     *  the first hidden layer's pre-activation (see score_model_params_get()); U-Net: a
     *  (K + 1) x T table whose row is added to the time embedding (unet.h). */
    SCORE_MODEL_PARAM_NUM_CLASSES = 310,
    /** i64: width m of a per-row context vector input, 0..4096, default 0 (none). Distinct from
     *  the scalar conditioning value c(t). Architecture (MLP): concatenated to the first
     *  layer's input (see score_model_params_get(), score_model_forward_cond()). */
    SCORE_MODEL_PARAM_CONTEXT_DIM = 311,
    /** i64: channels of the first level of a U-Net (::SCORE_MODEL_UNET), 1..4096, default 32;
     *  level l has base * mult[l] channels (score_model_set_unet_widths()). */
    SCORE_MODEL_PARAM_UNET_BASE_WIDTH = 312,
    /** i64: residual blocks per level of a U-Net's down path (the up path has one more),
     *  1..8, default 2. */
    SCORE_MODEL_PARAM_UNET_BLOCKS = 313,
    /** i64: GroupNorm groups of a U-Net, 1..1024, default 8; a layer of fewer channels uses
     *  one group per channel; every width (and every concatenated width of the up path) must
     *  be divisible by it (checked by score_model_prepare(): ::SCORE_E_SHAPE). */
    SCORE_MODEL_PARAM_UNET_GROUPS = 314,
    /** i64: 1 = single-head self-attention between the two residual blocks at the lowest
     *  resolution of a U-Net, 0 = none; default 1. */
    SCORE_MODEL_PARAM_UNET_ATTENTION = 315,
    /** i64: width T of a U-Net's time (and class) embedding, 0..65536, default 0 = 4 * base
     *  width. */
    SCORE_MODEL_PARAM_UNET_TEMB_DIM = 316
};

/**
 * @brief Creates a model of a kind that needs no further arguments (::SCORE_MODEL_MLP), in the
 * configuring phase with default parameters.
 * @param[out] out  the new model; NULL on failure.
 * @param[in]  kind ::SCORE_MODEL_MLP (other kinds have their own constructors).
 * @param[in]  dim  data dimension (input and output size), 1..2^20.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_UNSUPPORTED (kind);
 *         ::SCORE_E_RANGE (dim); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model; free it with score_model_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new(score_model **out, int kind, size_t dim);

/**
 * @brief Convenience constructor of an MLP with @p depth hidden layers of width @p hidden.
 *
 * Equivalent to score_model_new(::SCORE_MODEL_MLP) followed by setting HIDDEN, DEPTH,
 * ACTIVATION and SEED; the model is still configuring (the embedding may be changed).
 * @param[out] out the new model. @param[in] dim data dimension. @param[in] hidden width.
 * @param[in] depth hidden layers. @param[in] activation a ::score_activation.
 * @param[in] seed initialisation seed.
 * @return as score_model_new(); ::SCORE_E_RANGE for a bad width, depth or activation.
 * Ownership: the caller owns the model.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_mlp(score_model **out, size_t dim, size_t hidden,
                                                    size_t depth, int activation, uint64_t seed);

/**
 * @brief Frees a model. NULL is a no-op.
 * @param[in] model the model.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_model_free(score_model *model);

/**
 * @brief Deep copy (architecture, parameters, phase), e.g. one per thread or for EMA weights.
 *
 * Combination models copy their list of borrowed sub-models, not the sub-models.
 * @param[out] out the copy. @param[in] model the model.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the copy.
 * Thread-safety: safe for concurrent readers of @p model.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_clone(score_model **out, const score_model *model);

/**
 * @brief Ends the configuring phase: validates the architecture and initialises parameters.
 * Called implicitly by the first compute or parameter call. Idempotent.
 * @param[in,out] model the model.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (inconsistent settings, with a message); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_prepare(score_model *model);

/**
 * @brief Kind of a model (a ::score_model_kind), or 0 for NULL.
 * @param[in] model the model.
 * @return the kind.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_model_kind(const score_model *model);

/**
 * @brief Data dimension of a model, or 0 for NULL.
 * @param[in] model the model.
 * @return dim.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_model_dim(const score_model *model);

/**
 * @brief What the model can compute: an OR of ::score_model_capability flags (0 for NULL).
 * @param[in] model the model.
 * @return the flags.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API uint32_t score_model_capabilities(const score_model *model);

/**
 * @brief Sets a floating-point parameter (see ::score_model_param).
 * @param[in,out] model the model. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or the parameter is an integer);
 *         ::SCORE_E_RANGE; ::SCORE_E_UNSUPPORTED (unknown id, or not for this kind);
 *         ::SCORE_E_STAGE (architecture parameter after prepare).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_set_f64(score_model *model, int param, double value);

/**
 * @brief Sets an integer parameter (see ::score_model_param).
 * @param[in,out] model the model. @param[in] param the id. @param[in] value the value.
 * @return as score_model_set_f64().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_set_i64(score_model *model, int param, int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] model the model. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_get_f64(const score_model *model, int param, double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] model the model. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_get_i64(const score_model *model, int param, int64_t *out);

/**
 * @brief Sets individual hidden-layer widths of an MLP (overrides HIDDEN and DEPTH).
 * @param[in,out] model an MLP in the configuring phase.
 * @param[in] n_layers number of hidden layers, 1..64.
 * @param[in] widths @p n_layers widths, each 1..65536.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_RANGE; ::SCORE_E_UNSUPPORTED (not an MLP);
 *         ::SCORE_E_STAGE.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_set_hidden_widths(score_model *model, size_t n_layers,
                                                              const size_t *widths);

/**
 * @brief Number of trainable parameters (0 for kinds without parameters or NULL).
 *
 * Prepares the model if needed (a failure to prepare gives 0).
 * @param[in] model the model.
 * @return the count.
 * Thread-safety: object-exclusive (may prepare).
 * @since 0.1
 */
SCORE_API size_t score_model_param_count(score_model *model);

/**
 * @brief Copies all parameters into @p buf, in the documented flat layout.
 *
 * MLP layout: for each layer l = 1..L in order (the L - 1 hidden layers, then the output
 * layer), its weight matrix W_l (n_l x n_{l-1}, row-major: row = output unit) followed by its
 * bias b_l (n_l); then, with a label input (::SCORE_MODEL_PARAM_NUM_CLASSES = K > 0), the
 * label table A ((K + 1) x n_1, row-major: row y, for label y, is added to the first hidden
 * layer's pre-activation W_1 h_0 + b_1; row K is the null label's). The first layer's inputs
 * h_0 are [x (dim), embedding(c) (embed_dim, 1 for ::SCORE_EMBED_NONE), context
 * (::SCORE_MODEL_PARAM_CONTEXT_DIM values)], so the context weights are the last context_dim
 * columns of W_1. The Fourier projection is fixed by the seed and is not a parameter.
 * MLP initialisation (score_model_prepare()), like torch `nn.Linear`: W_l[i, j] and b_l[i]
 * uniform in (-1/sqrt(n_{l-1}), 1/sqrt(n_{l-1})) as bound * (2u - 1), with u the Philox uniform
 * (score_rng_fill_uniform_f64(), key = SEED) of stream 1, counter l, row i, column j for
 * weights and of stream 2, counter l, row 0, column i for biases; the Fourier projection is
 * W_i = (float)(FOURIER_SCALE * z_i) with z the float normals of stream 3, counter 0, row 0,
 * column i. The context columns of W_1 are initialised with the others (n_0 counts them); the
 * label table as A[y][i] = bound_1 * (2u - 1), bound_1 = 1/sqrt(n_0), u of stream 4, counter 0,
 * row y, column i. A model without label and context inputs (K = 0, context_dim = 0) has
 * exactly the parameters it had before these inputs existed.
 * @param[in] model the model. @param[out] buf destination. @param[in] len its length in floats;
 * must equal score_model_param_count().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE (len); ::SCORE_E_UNSUPPORTED (no params).
 * Thread-safety: object-exclusive (may prepare).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_params_get(score_model *model, float *buf, size_t len);

/**
 * @brief Replaces all parameters from @p buf (same layout as score_model_params_get()).
 * @param[in,out] model the model. @param[in] buf the values (must be finite).
 * @param[in] len must equal score_model_param_count().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE; ::SCORE_E_NUMERIC (non-finite value,
 *         model unchanged); ::SCORE_E_UNSUPPORTED.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_params_set(score_model *model, const float *buf, size_t len);

/**
 * @brief Evaluates the model: `out = F(x, c)` for n rows.
 *
 * Also caches what score_model_backward() needs, in a workspace of the model handle: the
 * weights are not changed, but the cache is, so this call is object-exclusive (concurrent
 * readers use an sde or a loss, each with a workspace of its own, or the read-only calls
 * below).
 *
 * A model with a label input (::SCORE_MODEL_PARAM_NUM_CLASSES > 0) is evaluated with the null
 * label on every row; a model with a context input (::SCORE_MODEL_PARAM_CONTEXT_DIM > 0) is
 * refused (::SCORE_E_INVAL): use score_model_forward_cond(). The same holds for
 * score_model_jvp(), score_model_vjp(), score_model_trace(), score_model_trace_grad() and
 * score_model_vjv_grad(), which have no label or context argument; the objects that evaluate
 * a model (sde, loss, trainer) pass the labels and context vectors they are given.
 * @param[in,out] model the model (its forward cache is replaced).
 * @param[in] n rows (0 is a no-op). @param[in] x n * dim inputs. @param[in] c n conditioning values.
 * @param[out] out n * dim outputs (must not alias @p x).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or a model with a context input);
 *         ::SCORE_E_NUMERIC (non-finite c, or a
 *         non-finite value in @p out); ::SCORE_E_NOMEM; ::SCORE_E_CALLBACK
 *         (callback kind: the user function failed; see score_model_last_callback_status()).
 * Thread-safety: object-exclusive for @p model (it writes the model's forward cache).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_forward(score_model *model, size_t n, const float *x,
                                                    const double *c, float *out);

/**
 * @brief Evaluates a model with a label and / or a context vector per row:
 * `out = F(x, c, label, context)` for n rows (an MLP with ::SCORE_MODEL_PARAM_NUM_CLASSES or
 * ::SCORE_MODEL_PARAM_CONTEXT_DIM set).
 *
 * Like score_model_forward() (which it equals with @p labels and @p context NULL), including
 * the cache: score_model_backward() then back-propagates through this call, with the
 * parameter gradients of the label table and of the context weights (the labels and context
 * vectors are kept in the cache; @p gx stays the gradient with respect to x). The label of a
 * row adds its row of the label table to the first hidden layer's pre-activation; the
 * context vector is concatenated to the first layer's input (see score_model_params_get()).
 * @param[in,out] model the model (its forward cache is replaced).
 * @param[in] n rows (0 is a no-op). @param[in] x n * dim inputs. @param[in] c n conditioning values.
 * @param[in] labels n labels, each in 0..K-1, or K for the null label (K =
 *            ::SCORE_MODEL_PARAM_NUM_CLASSES); NULL = the null label on every row. Only for a
 *            model with a label input.
 * @param[in] context n * m finite floats, row b at `context + b * m` (m =
 *            ::SCORE_MODEL_PARAM_CONTEXT_DIM); required when m > 0, must be NULL when m = 0.
 * @param[out] out n * dim outputs (must not alias @p x).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p x, @p c or @p out, or a NULL @p context for a
 *         model with a context input); ::SCORE_E_UNSUPPORTED (@p labels given to a model without
 *         a label input, or @p context to one without a context input); ::SCORE_E_RANGE (a
 *         label outside 0..K, or n too large); ::SCORE_E_NUMERIC (non-finite c or context, or a
 *         non-finite value in @p out); ::SCORE_E_NOMEM; ::SCORE_E_CALLBACK.
 * Thread-safety: object-exclusive for @p model (it writes the model's forward cache).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_forward_cond(score_model *model, size_t n,
                                                         const float *x, const double *c,
                                                         const int32_t *labels,
                                                         const float *context, float *out);

/**
 * @brief Back-propagates an output cotangent through the last score_model_forward() call.
 *
 * Accumulates `grad_params += (dF/dtheta)^T gout` (summed over rows) and, when @p gx is not
 * NULL, writes `gx = (dF/dx)^T gout` per row.
 * @param[in,out] model the model; its last public compute call must be score_model_forward()
 *                or score_model_forward_cond() with the same @p n and unchanged parameters (any other score_model_* compute
 *                call in between ends the pair; evaluations through sdes and losses do not).
 * @param[in] n rows. @param[in] gout n * dim cotangents.
 * @param[in,out] grad_params score_model_param_count() floats, accumulated (may be NULL when only
 *                @p gx is wanted).
 * @param[out] gx n * dim input gradients, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_MISUSE (no matching forward);
 *         ::SCORE_E_UNSUPPORTED (kind lacks it); ::SCORE_E_NUMERIC (a non-finite value in
 *         @p gx or @p grad_params).
 * Thread-safety: object-exclusive for @p model (it reads the forward cache of the model).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_backward(score_model *model, size_t n, const float *gout,
                                                     float *grad_params, float *gx);

/**
 * @brief Jacobian-vector products `out[b, p] = (dF/dx)(x_b, c_b) v[b, p]` for k probes per row.
 * @param[in] model the model (only read once prepared). @param[in] n rows. @param[in] x inputs. @param[in] c conditioning.
 * @param[in] k probes per row (>= 1). @param[in] v n * k * dim probes.
 * @param[out] out n * k * dim products. @param[out] fx n * dim values F(x, c), or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NUMERIC (non-finite c, or a non-finite value
 *         in @p out or @p fx); ::SCORE_E_UNSUPPORTED; ::SCORE_E_NOMEM; ::SCORE_E_CALLBACK.
 * Thread-safety: safe for concurrent readers of @p model: the model is only read (the call
 *         works in a workspace of its own, allocated and freed per call); it ends a pending
 *         score_model_forward() / score_model_backward() pair. Not concurrently with a call
 *         that changes the model (setters, parameter writes, the training pair, free).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_jvp(score_model *model, size_t n, const float *x,
                                                const double *c, size_t k, const float *v,
                                                float *out, float *fx);

/**
 * @brief Vector-Jacobian products `out[b, p] = (dF/dx)(x_b, c_b)^T u[b, p]` for k cotangents per row.
 * @param[in] model the model (only read once prepared). @param[in] n rows. @param[in] x inputs. @param[in] c conditioning.
 * @param[in] k cotangents per row. @param[in] u n * k * dim cotangents. @param[out] out n * k * dim.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED; ::SCORE_E_NOMEM;
 *         ::SCORE_E_NUMERIC (a non-finite value in @p out).
 * Thread-safety: safe for concurrent readers of @p model: the model is only read (the call
 *         works in a workspace of its own, allocated and freed per call); it ends a pending
 *         score_model_forward() / score_model_backward() pair. Not concurrently with a call
 *         that changes the model (setters, parameter writes, the training pair, free).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_vjp(score_model *model, size_t n, const float *x,
                                                const double *c, size_t k, const float *u, float *out);

/**
 * @brief Exact Jacobian trace (divergence) `tr(dF/dx)` per row, by forward-mode propagation of
 * the dim input tangents through the network as GEMMs (MLP), or in closed form (analytic kinds).
 * @param[in] model the model (only read once prepared). @param[in] n rows. @param[in] x inputs. @param[in] c conditioning.
 * @param[out] tr n traces (double). @param[out] fx n * dim values F(x, c), or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NUMERIC (non-finite c, or a non-finite value
 *         in @p tr or @p fx); ::SCORE_E_UNSUPPORTED; ::SCORE_E_NOMEM; ::SCORE_E_CALLBACK.
 * Thread-safety: safe for concurrent readers of @p model: the model is only read (the call
 *         works in a workspace of its own, allocated and freed per call); it ends a pending
 *         score_model_forward() / score_model_backward() pair. Not concurrently with a call
 *         that changes the model (setters, parameter writes, the training pair, free).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_trace(score_model *model, size_t n, const float *x,
                                                  const double *c, double *tr, float *fx);

/**
 * @brief Parameter gradient of `sum_b [ w_b tr_b + gout_b . F(x_b, c_b) ]` (second-order
 * terms of the activations included): the machinery of Hyvärinen score matching.
 * @param[in] model the model (only read once prepared). @param[in] n rows. @param[in] x inputs. @param[in] c conditioning.
 * @param[in] w n trace weights. @param[in] gout n * dim output cotangents, or NULL (= 0).
 * @param[in,out] grad_params score_model_param_count() floats, accumulated.
 * @param[out] tr n traces, or NULL. @param[out] fx n * dim outputs, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED; ::SCORE_E_NOMEM;
 *         ::SCORE_E_NUMERIC (a non-finite value in @p grad_params, @p tr or @p fx).
 * Thread-safety: safe for concurrent readers of @p model: the model is only read (the call
 *         works in a workspace of its own, allocated and freed per call); it ends a pending
 *         score_model_forward() / score_model_backward() pair. Not concurrently with a call
 *         that changes the model (setters, parameter writes, the training pair, free).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_trace_grad(score_model *model, size_t n, const float *x,
                                                       const double *c, const double *w,
                                                       const float *gout, float *grad_params,
                                                       double *tr, float *fx);

/**
 * @brief Parameter gradient of `sum_{b,p} w_{b,p} v_{b,p}^T (dF/dx) v_{b,p} + sum_b gout_b . F_b`
 * for k probes per row (sliced score matching).
 * @param[in] model the model (only read once prepared). @param[in] n rows. @param[in] x inputs. @param[in] c conditioning.
 * @param[in] k probes per row. @param[in] v n * k * dim probes. @param[in] w n * k weights, or NULL (= 1).
 * @param[in] gout n * dim output cotangents, or NULL. @param[in,out] grad_params accumulated.
 * @param[out] vjv n * k values v^T J v, or NULL. @param[out] fx n * dim outputs, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED; ::SCORE_E_NOMEM;
 *         ::SCORE_E_NUMERIC (a non-finite value in @p grad_params, @p vjv or @p fx).
 * Thread-safety: safe for concurrent readers of @p model: the model is only read (the call
 *         works in a workspace of its own, allocated and freed per call); it ends a pending
 *         score_model_forward() / score_model_backward() pair. Not concurrently with a call
 *         that changes the model (setters, parameter writes, the training pair, free).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_vjv_grad(score_model *model, size_t n, const float *x,
                                                     const double *c, size_t k, const float *v,
                                                     const double *w, const float *gout,
                                                     float *grad_params, double *vjv, float *fx);

/* ---- model files (src/model/model-io.c) ---------------------------------------------- */

/**
 * @brief Saves a model to a safetensors file, crash-safely.
 *
 * A model still configuring is saved as it will be once prepared (with its seeded
 * initialisation); @p model itself is not changed.
 *
 * The file is written to a temporary file in the same directory, flushed and fsync'ed, then
 * renamed over @p path, so @p path holds either the old or the complete new file. The temporary
 * file cannot outlive a crash: on Linux it is an anonymous file (`O_TMPFILE`) named only once
 * complete; elsewhere it is "<path>.tmp-<pid>-<n>", and a save removes such files of @p path
 * whose process no longer exists. Only regular files are replaced: a @p path that is a device,
 * FIFO, socket or directory, or a symbolic link to anything but an existing regular file, is
 * refused with ::SCORE_E_IO and left alone; a symbolic link to a regular file is followed (the
 * file it names is replaced, the link stays).
 *
 * Layout: the standard safetensors container (8-byte little-endian header length, a JSON
 * header, then the raw data). `__metadata__` holds strings: "format" = "libscore",
 * "version" = "1", "kind" ("mlp", ...), "library" (the writing library's version), and the
 * kind's settings. For ::SCORE_MODEL_MLP: "dim", "widths" (hidden widths, e.g. "64,64,64"),
 * "activation" ("silu", "softplus", "tanh", "elu", "gelu"), "embedding" ("none", "fourier",
 * "sinusoidal"), "embed_dim", "fourier_scale", "residual" ("0"/"1"), "seed", and for a
 * network with a label or context input "num_classes" and "context_dim" (absent: 0); tensors
 * (F32, little-endian) "layers.<i>.weight" of shape [n_{i+1}, n_i] (rows = output units,
 * like torch `nn.Linear`) and "layers.<i>.bias" [n_{i+1}] for i = 0 .. L-1, plus "embed.W"
 * [embed_dim / 2] (the Fourier projection W, so that a file fully determines the function)
 * and, with a label input, "label_embedding.weight" [num_classes + 1, n_1] (the label table).
 * The sinusoidal embedding uses frequencies f_i = exp(-ln(10000) i / max(half - 1, 1)),
 * i < half = embed_dim / 2, features [sin(f c), cos(f c)]; the Fourier one uses f_i = 2 pi W_i.
 * ::SCORE_MODEL_GAUSSIAN and ::SCORE_MODEL_GMM models are saved in their internal form (F64
 * tensors) together with their schedule (kind and every parameter, "schedule.*"), so that the
 * loaded model computes the same values bit for bit (see doc/model-format.md).
 * ::SCORE_MODEL_UNET models store one F32 tensor per parameter with PyTorch's names and shapes
 * (e.g. "down.0.res.0.conv1.weight" [co, ci, 3, 3]) and their architecture in "unet_*" entries
 * (doc/unet.md, "Files"). User metadata (score_model_set_metadata()) is stored as "user.<key>"
 * entries.
 * @param[in] model a model of a kind with ::SCORE_MODEL_CAP_SAVE (MLP, classifier, energy,
 *            U-Net, Gaussian, GMM).
 * @param[in] path destination file name (UTF-8 / native encoding); replaced if it exists.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL or empty argument, or a configuring model whose
 *         settings are inconsistent); ::SCORE_E_UNSUPPORTED (kind without save, e.g. callbacks
 *         and combinations); ::SCORE_E_IO (cannot create, write, sync or rename, or the
 *         destination is not a regular file; the destination is unchanged); ::SCORE_E_NOMEM.
 * Ownership: none transferred.
 * Thread-safety: safe for concurrent readers of @p model.
 * @since 0.1
 * @see score_model_load, score_model_save_buffer
 */
SCORE_API SCORE_WARN_UNUSED int score_model_save(const score_model *model, const char *path);

/**
 * @brief Loads a model saved by score_model_save() (or written by another tool in the same
 * layout, e.g. examples/python/export_torch.py or, for U-Nets, examples/python/unet_torch.py).
 *
 * The file is treated as untrusted: the header length, JSON (beginning with '{', unique keys
 * at every level, UTF-8 strings without NUL), dtypes, shapes and offsets (digits-only
 * integers, tiling the data section exactly, overflow-checked), the architecture (no unknown
 * tensor), the finiteness of every value and, for the analytic kinds, the parameters
 * (positive variances, normalised weights, an orthonormal basis, every schedule parameter)
 * are validated before the model is built, and so are the user metadata entries (the limits
 * of score_model_set_metadata()), which the loaded model carries. The built model is then
 * evaluated on a fixed probe batch of 3 rows and refused when an output is not finite (e.g.
 * huge finite weights). doc/model-format.md lists every check. The loaded model is prepared;
 * outputs equal those of the saved model bit for bit on the same build and BLAS.
 * @param[out] out the loaded model; NULL on failure.
 * @param[in] path file name.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL argument); ::SCORE_E_IO (missing or unreadable
 *         file); ::SCORE_E_FORMAT (malformed, inconsistent, unknown kind or version, non-finite
 *         values or probe outputs; the message says what); ::SCORE_E_NOMEM (any allocation
 *         failure, including while parsing the header).
 * Ownership: the caller owns the model (score_model_free()).
 * Thread-safety: safe.
 * @since 0.1
 * @see score_model_load_buffer
 */
SCORE_API SCORE_WARN_UNUSED int score_model_load(score_model **out, const char *path);

/**
 * @brief Serialises a model into a new memory buffer (the bytes score_model_save() would
 * write).
 * @param[in] model the model.
 * @param[out] buf_out the buffer; release it with score_free(). NULL on failure.
 * @param[out] len_out its length in bytes; 0 on failure.
 * @return as score_model_save() without ::SCORE_E_IO.
 * Ownership: the caller owns *@p buf_out.
 * Thread-safety: safe for concurrent readers of @p model.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_save_buffer(const score_model *model, void **buf_out,
                                                        size_t *len_out);

/**
 * @brief Loads a model from a memory buffer holding a model file (see score_model_load()).
 * @param[out] out the loaded model; NULL on failure.
 * @param[in] buf the bytes (not retained after the call). @param[in] len their number.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL argument); ::SCORE_E_FORMAT; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model; @p buf stays the caller's.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_load_buffer(score_model **out, const void *buf,
                                                        size_t len);

/* ---- user metadata (src/model/model-meta.c) ------------------------------------------- */

/**
 * @brief Sets, replaces or removes a user metadata entry of a model: a string map that
 * score_model_clone() copies, score_model_save() writes and score_model_load() restores
 * (in the file's `__metadata__` as `"user.<key>"`; see doc/model-format.md). Use it to record
 * how a network was trained (schedule, parameterization, data scaling, provenance).
 *
 * Limits: a key is 1 to 128 printable ASCII characters (0x20 to 0x7e) other than `"` and
 * `\`; a value is valid UTF-8 of at most 65536 bytes (no NUL); at most 256 entries.
 * Entries are kept in byte order of their keys. Changing metadata never changes the model's
 * function or phase.
 * @param[in,out] model the model (any kind, configuring or prepared).
 * @param[in] key the key (copied).
 * @param[in] value the value (copied), or NULL to remove the entry (removing an absent key is
 *            not an error).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p model or @p key, an invalid key, a value that is
 *         not UTF-8 or too long); ::SCORE_E_RANGE (a new key when 256 entries exist; the model
 *         is unchanged); ::SCORE_E_NOMEM.
 * Ownership: none transferred. Pointers from score_model_get_metadata() and
 * score_model_metadata_key() become invalid.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_set_metadata(score_model *model, const char *key,
                                                         const char *value);

/**
 * @brief Looks up a user metadata entry.
 * @param[in] model the model.
 * @param[in] key the key.
 * @param[out] value_out the value, or NULL when the key is absent (not an error); borrowed from
 *             @p model, valid until its metadata next changes or it is freed.
 * @return ::SCORE_OK (also when absent); ::SCORE_E_INVAL (a NULL argument; *@p value_out is
 *         then NULL if @p value_out is not NULL).
 * Ownership: none transferred.
 * Thread-safety: safe for concurrent readers of @p model.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_get_metadata(const score_model *model,
                                                         const char *key,
                                                         const char **value_out);

/**
 * @brief Number of user metadata entries.
 * @param[in] model the model.
 * @return the count; 0 when @p model is NULL.
 * Thread-safety: safe for concurrent readers of @p model.
 * @since 0.1
 */
SCORE_API size_t score_model_metadata_count(const score_model *model);

/**
 * @brief The key of the @p i-th user metadata entry (entries are in byte order of the keys),
 * to enumerate them with score_model_metadata_count().
 * @param[in] model the model.
 * @param[in] i index, below score_model_metadata_count().
 * @param[out] key_out the key; borrowed like score_model_get_metadata()'s value; NULL on
 *             failure.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL argument); ::SCORE_E_RANGE (@p i too large).
 * Ownership: none transferred.
 * Thread-safety: safe for concurrent readers of @p model.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_metadata_key(const score_model *model, size_t i,
                                                         const char **key_out);

/* ---- analytic models (src/model/analytic.c) ------------------------------------------- */

/**
 * @brief Creates the analytic model of Gaussian data N(mean, Sigma) noised by a schedule: its
 * output is the exact score of the noised marginal p_t = N(alpha mean, alpha^2 Sigma + sigma^2 I)
 * at t = c, with (alpha, sigma) from score_schedule_alpha_sigma().
 *
 * The conditioning value c of every row is the time t itself (use ::SCORE_COND_T in an sde);
 * compute calls fail with ::SCORE_E_NUMERIC for a non-finite c and ::SCORE_E_RANGE for a c
 * outside the schedule's [0, T] (t = 0 is valid: the data's own score).
 * A full covariance is eigendecomposed once here (Sigma = Q diag(l) Q^T, in double, by cyclic
 * Jacobi rotations: O(dim^3) per sweep, meant for moderate dimensions), so the noised
 * covariance of any t is diagonal in the same basis; each row then costs O(dim^2). Provides forward, jvp, vjp (the
 * Jacobian is the symmetric Hessian of log p_t) and trace (its Laplacian), all exact and
 * evaluated in double per row; no trainable parameters.
 * @param[out] out the new model (kind ::SCORE_MODEL_GAUSSIAN); NULL on failure.
 * @param[in] sched the schedule; copied.
 * @param[in] dim data dimension, 1..4096.
 * @param[in] mean dim finite values.
 * @param[in] cov dim * dim row-major symmetric positive-definite covariance, or NULL.
 * @param[in] var_diag dim positive variances (a diagonal covariance), or NULL; exactly one of
 *            @p cov and @p var_diag must be given.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, both / neither of @p cov, @p var_diag, or
 *         a schedule with inconsistent parameters: the copy is prepared here);
 *         ::SCORE_E_RANGE (dim; a non-finite value; a non-positive variance; @p cov not
 *         symmetric to 1e-9 relative or not positive definite: smallest eigenvalue
 *         <= 1e-13 times the largest); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model (score_model_free()); @p mean, @p cov and @p var_diag
 * are copied.
 * Thread-safety: safe.
 * @since 0.1
 * @see score_model_new_gmm, score_model_analytic_logp, score_model_analytic_sample
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_gaussian(score_model **out,
                                                         const score_schedule *sched, size_t dim,
                                                         const double *mean, const double *cov,
                                                         const double *var_diag);

/**
 * @brief Creates the analytic model of a Gaussian mixture with diagonal covariances,
 * sum_j pi_j N(mu_j, diag(v_j)), noised by a schedule: its output is the exact score of
 * p_t = sum_j pi_j N(alpha mu_j, alpha^2 diag(v_j) + sigma^2 I) at t = c.
 *
 * Responsibilities use a log-sum-exp in double, so far-away points are handled without
 * underflow. Provides forward, jvp, vjp and trace (exact Laplacian
 * sum_j r_j (-tr C_j^-1 + |s_j|^2) - |s|^2 with component scores s_j).
 *
 * Labels: the components are the classes. For k <= 65535, ::SCORE_MODEL_PARAM_NUM_CLASSES
 * reads k (score_model_get_i64(); fixed by the mixture: setting it is refused with
 * ::SCORE_E_UNSUPPORTED). A row evaluated with label y in 0..k-1 (score_sde_set_label(), the
 * loss's and the trainer's labels) gets the exact score of component y alone,
 * grad log N(x; alpha mu_y, alpha^2 diag(v_y) + sigma^2 I), i.e. of p_t(x | y); the null label
 * k, or no label, gives the whole mixture. Every operation (forward, jvp, vjp, trace) follows
 * the labels, so the model is an exact oracle for class-conditional sampling and guidance. A
 * mixture of more than 65535 components reports 0 classes and takes no labels.
 * @param[out] out the new model (kind ::SCORE_MODEL_GMM); NULL on failure.
 * @param[in] sched the schedule; copied.
 * @param[in] dim data dimension, 1..4096.
 * @param[in] k number of components, 1..65536.
 * @param[in] weights k positive finite weights, normalised internally.
 * @param[in] means k * dim component means (row j = mu_j).
 * @param[in] vars k * dim positive diagonal variances.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or an inconsistent schedule);
 *         ::SCORE_E_RANGE (dim, k, a non-finite value, a non-positive weight or variance);
 *         ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model; the arrays are copied.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_gmm(score_model **out, const score_schedule *sched,
                                                    size_t dim, size_t k, const double *weights,
                                                    const double *means, const double *vars);

/**
 * @brief Exact log-density log p_t(x) of an analytic model's noised marginal, per row.
 * @param[in] model a ::SCORE_MODEL_GAUSSIAN or ::SCORE_MODEL_GMM model.
 * @param[in] n rows. @param[in] t n times (valid times of the schedule).
 * @param[in] x n * dim points. @param[out] out n log-densities (double).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (not analytic);
 *         ::SCORE_E_NUMERIC (a non-finite time); ::SCORE_E_RANGE (a time outside [0, T], or
 *         n * dim does not fit in a size_t).
 * Thread-safety: safe for concurrent readers of @p model (a scratch of its own per call).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_analytic_logp(score_model *model, size_t n,
                                                          const double *t, const float *x,
                                                          double *out);

/**
 * @brief Exact samples of an analytic model's noised marginal p_t.
 *
 * Row i uses only the random numbers of row i at the generator's current counter (normals in
 * columns 0..dim-1; for a mixture, the component from a uniform in column 4 * ceil(dim / 4)),
 * so a sample does not depend on the batch it is drawn in. The generator is not advanced.
 * @param[in] model a ::SCORE_MODEL_GAUSSIAN or ::SCORE_MODEL_GMM model.
 * @param[in] rng the generator (only read). @param[in] t the time.
 * @param[in] n rows (< 2^32). @param[out] out n * dim samples.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (not analytic);
 *         ::SCORE_E_NUMERIC (non-finite @p t); ::SCORE_E_RANGE (@p t outside [0, T], or
 *         @p n too large).
 * Thread-safety: safe for concurrent readers of @p model (a scratch of its own per call) and
 *         of @p rng.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_analytic_sample(score_model *model,
                                                            const score_rng *rng, double t,
                                                            size_t n, float *out);

/**
 * @brief The exact probability-flow ODE map from time @p t_from to time @p t_to for Gaussian
 * data: x' = alpha' mu + A' A^-1 (x - alpha mu) with A = (alpha^2 Sigma + sigma^2 I)^(1/2) at
 * t_from and A' at t_to (the ODE is linear for Gaussian data). The identity when the times are
 * equal; maps samples of p_{t_from} to samples of p_{t_to}. A test oracle for ODE samplers.
 * @param[in] model a ::SCORE_MODEL_GAUSSIAN model.
 * @param[in] t_from start time. @param[in] t_to end time (either order).
 * @param[in] n rows. @param[in] x n * dim points at t_from.
 * @param[out] out n * dim points at t_to (may alias @p x).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (not a single
 *         Gaussian: the flow of a mixture has no closed form); ::SCORE_E_NUMERIC (a
 *         non-finite time); ::SCORE_E_RANGE (a time outside [0, T], or n * dim does not fit in
 *         a size_t).
 * Thread-safety: safe for concurrent readers of @p model (a scratch of its own per call).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_analytic_pf_map(score_model *model, double t_from,
                                                            double t_to, size_t n,
                                                            const float *x, float *out);

/* ---- callback models (src/model/callback.c) ------------------------------------------- */

/**
 * @brief User model function: writes F(x_b, c_b) for n rows into @p out.
 *
 * Must fully overwrite @p out (n * dim floats), must not keep the pointers after returning and
 * must not call back into the same model. Return 0 on success; a positive value is a
 * recoverable failure and a negative value a fatal one (both make the library call fail with
 * ::SCORE_E_CALLBACK; the value is kept for score_model_last_callback_status()).
 * @param n rows. @param dim dimension. @param x n * dim inputs. @param c n conditioning values.
 * @param out n * dim outputs. @param user_data the pointer given at registration.
 * @return 0, or the user's failure code.
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_model_fn)(size_t n, size_t dim, const float *x, const double *c,
                                           float *out, void *user_data);

/**
 * @brief Optional user Jacobian-vector product: out[b, p] = (dF/dx)(x_b, c_b) v[b, p] for k
 * probes per row (layout `v[(b * k + p) * dim + j]`). Same return convention as ::score_model_fn.
 * @param n rows. @param dim dimension. @param x n * dim inputs. @param c n conditioning values.
 * @param k probes per row. @param v n * k * dim probes. @param out n * k * dim products.
 * @param user_data the pointer given at registration.
 * @return 0, or the user's failure code.
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_model_jvp_fn)(size_t n, size_t dim, const float *x,
                                               const double *c, size_t k, const float *v,
                                               float *out, void *user_data);

/**
 * @brief Optional user divergence: div[b] = tr((dF/dx)(x_b, c_b)) in double. Same return
 * convention as ::score_model_fn.
 * @param n rows. @param dim dimension. @param x n * dim inputs. @param c n conditioning values.
 * @param div n traces. @param user_data the pointer given at registration.
 * @return 0, or the user's failure code.
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_model_divergence_fn)(size_t n, size_t dim, const float *x,
                                                      const double *c, double *div,
                                                      void *user_data);

/**
 * @brief Creates a model whose output is computed by a user function (e.g. an external network).
 *
 * Provides forward; jvp and trace once score_model_callback_set_jvp() /
 * score_model_callback_set_divergence() registered them; never backward or parameters. The
 * library does not check the callback's output for NaN or infinity (score_sde_score() does).
 * @param[out] out the new model (kind ::SCORE_MODEL_CALLBACK); NULL on failure.
 * @param[in] dim data dimension, 1..2^20.
 * @param[in] fn the function (not NULL).
 * @param[in] user_data passed to @p fn; borrowed: must outlive the model.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out or @p fn); ::SCORE_E_RANGE (dim);
 *         ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model and @p user_data.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_callback(score_model **out, size_t dim,
                                                         score_model_fn fn, void *user_data);

/**
 * @brief Registers (or with NULL removes) the Jacobian-vector product of a callback model,
 * which enables score_model_jvp() (::SCORE_MODEL_CAP_JVP).
 * @param[in,out] model a ::SCORE_MODEL_CALLBACK model.
 * @param[in] fn the function or NULL. @param[in] user_data passed to @p fn; must outlive the model.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL model); ::SCORE_E_UNSUPPORTED (not a callback model,
 *         or one with parameters: score_model_new_callback_params()).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_callback_set_jvp(score_model *model,
                                                             score_model_jvp_fn fn,
                                                             void *user_data);

/**
 * @brief Registers (or with NULL removes) the divergence of a callback model, which enables
 * score_model_trace() (::SCORE_MODEL_CAP_TRACE).
 * @param[in,out] model a ::SCORE_MODEL_CALLBACK model.
 * @param[in] fn the function or NULL. @param[in] user_data passed to @p fn; must outlive the model.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL model); ::SCORE_E_UNSUPPORTED (not a callback model,
 *         or one with parameters).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_callback_set_divergence(score_model *model,
                                                                    score_model_divergence_fn fn,
                                                                    void *user_data);

/**
 * @brief User network with parameters: writes F(x_b, c_b; theta) for n rows into @p out.
 *
 * Like ::score_model_fn, with the model's flat parameter vector theta passed in: the library
 * owns theta (score_model_params_get() / score_model_params_set(), updated in place by the
 * trainer; a clone, such as the trainer's EMA model, has its own copy), so the function keeps
 * no parameters of its own. It may be called from several threads at once (one model serves
 * any number of sdes and losses): it must be reentrant, reading @p user_data only.
 * @param n rows. @param dim dimension. @param x n * dim inputs. @param c n conditioning values.
 * @param params theta, @p n_params floats. @param n_params the parameter count.
 * @param out n * dim outputs (fully overwritten). @param user_data the pointer given at creation.
 * @return 0, or the user's failure code (positive recoverable, negative fatal).
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_model_param_fn)(size_t n, size_t dim, const float *x,
                                                 const double *c, const float *params,
                                                 size_t n_params, float *out, void *user_data);

/**
 * @brief Vector-Jacobian products of a user network with parameters, at the rows (x, c) of a
 * forward call: for the output cotangent g (n * dim), *adds* sum_b g_b^T dF(x_b)/dtheta to
 * @p grad and writes g_b^T dF(x_b)/dx_b to row b of @p gx.
 *
 * Either output may be NULL (then it is not wanted), never both. Same threading and return
 * convention as ::score_model_param_fn.
 * @param n rows. @param dim dimension. @param x n * dim inputs. @param c n conditioning values.
 * @param params theta. @param n_params the parameter count. @param gout n * dim cotangents.
 * @param grad n_params floats to add to, or NULL. @param gx n * dim input gradients, or NULL.
 * @param user_data the pointer given at creation.
 * @return 0, or the user's failure code.
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_model_param_vjp_fn)(size_t n, size_t dim, const float *x,
                                                     const double *c, const float *params,
                                                     size_t n_params, const float *gout,
                                                     float *grad, float *gx, void *user_data);

/**
 * @brief Creates a trainable callback model: a user network F(x, c; theta) whose parameters
 * theta the library holds, so that the denoising losses, the trainer (its optimizers, EMA,
 * checkpoints), samplers and likelihoods work with it as with an MLP.
 *
 * Capabilities: forward, ::SCORE_MODEL_CAP_PARAMS, ::SCORE_MODEL_CAP_BACKWARD (through @p vjp)
 * and ::SCORE_MODEL_CAP_VJP (input VJPs through @p vjp with @p grad NULL, which also give
 * likelihoods their divergence: exact, one VJP per dimension, or Hutchinson). Not: the exact trace and its parameter gradient, nor
 * Jacobian-vector products, so the Hyvärinen and sliced losses refuse it with
 * ::SCORE_E_UNSUPPORTED (score_model_callback_set_jvp() and
 * score_model_callback_set_divergence() refuse this kind too: their functions take no
 * parameters). The parameters start at 0: set them with score_model_params_set() before
 * training. No file format (score_model_save() gives ::SCORE_E_UNSUPPORTED); trainer
 * checkpoints store the parameter vector. backward() needs the forward's rows, so the forward
 * of a training step keeps a copy of x and c (n * (dim + 2) words) in the caller's workspace.
 * @param[out] out the new model (kind ::SCORE_MODEL_CALLBACK); NULL on failure.
 * @param[in] dim data dimension, 1..2^20.
 * @param[in] n_params the length of theta, 1..2^31.
 * @param[in] fn the forward (not NULL). @param[in] vjp the vector-Jacobian products (not NULL).
 * @param[in] user_data passed to both; borrowed: must outlive the model and its clones.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out, @p fn or @p vjp); ::SCORE_E_RANGE (dim,
 *         n_params); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the model and @p user_data.
 * Thread-safety: safe.
 * @since 0.1
 * @see score_model_new_callback(), doc/training.md ("Training a network of your own").
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_callback_params(score_model **out, size_t dim,
                                                                size_t n_params,
                                                                score_model_param_fn fn,
                                                                score_model_param_vjp_fn vjp,
                                                                void *user_data);

/**
 * @brief The value the user callback returned in the last call that failed with
 * ::SCORE_E_CALLBACK (0 if none failed since creation; reset to 0 by a successful call).
 * For a combination model: the status of the member that failed.
 *
 * "The last call" is the last compute call on this model by any caller: the public calls, and
 * the evaluations of every sde and loss that use it. With one thread using the model that is
 * simply its last call; when several threads share it, it is whichever finished last, and each
 * thread reads its own through score_sde_last_callback_status() or
 * score_loss_last_callback_status() (the value is stored atomically: no data race).
 * @param[in] model the model.
 * @return the user's status; 0 for NULL.
 * Thread-safety: safe (also concurrently with compute calls on @p model).
 * @since 0.1
 */
SCORE_API int score_model_last_callback_status(const score_model *model);

/* ---- combination models (src/model/combination.c) ------------------------------------- */

/**
 * @brief Creates the weighted sum F = sum_i w_i F_i of models of equal dimension (classifier
 * guidance: unconditional score + w * classifier gradient; product of experts: sum of scores).
 *
 * Every member receives the same x and c, and the same per-row labels and context vectors.
 * forward, jvp, vjp and trace are available when all members provide them at construction.
 * Member outputs go through a workspace that grows with the batch. The combination's
 * ::SCORE_MODEL_PARAM_NUM_CLASSES (and ::SCORE_MODEL_PARAM_CONTEXT_DIM) is the members' common
 * non-zero value, read at construction (members without the input ignore it), or 0 when no
 * member has it or two members differ.
 * @param[out] out the new model (kind ::SCORE_MODEL_COMBINATION); NULL on failure.
 * @param[in] k number of members, 1..1024.
 * @param[in] models k members; borrowed: each must outlive the combination.
 * @param[in] weights k finite weights, or NULL for all 1.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer or member); ::SCORE_E_RANGE (k, a weight);
 *         ::SCORE_E_SHAPE (members of different dimensions); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the combination and still owns the members.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_sum(score_model **out, size_t k,
                                                    score_model *const *models,
                                                    const double *weights);

/**
 * @brief Creates a classifier-free-guidance combination F = (1 + w) F_cond - w F_uncond.
 *
 * The guidance weight is the model parameter ::SCORE_MODEL_PARAM_GUIDANCE and may be changed
 * at any time with score_model_set_f64(); w = 0 is the conditional model alone.
 * @param[out] out the new model (kind ::SCORE_MODEL_COMBINATION); NULL on failure.
 * @param[in] cond conditional model; borrowed (must outlive the combination).
 * @param[in] uncond unconditional model of the same dimension; borrowed.
 * @param[in] w guidance weight, [-1e6, 1e6].
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_RANGE (@p w);
 *         ::SCORE_E_SHAPE (dimensions differ); ::SCORE_E_NOMEM.
 * Ownership: the caller owns the combination and the members.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_new_cfg(score_model **out, score_model *cond,
                                                    score_model *uncond, double w);

/**
 * @brief Sets the weight of member @p i of a weighted-sum combination.
 * @param[in,out] model a combination made by score_model_new_sum().
 * @param[in] i member index, < k. @param[in] w finite weight.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL); ::SCORE_E_UNSUPPORTED (not a sum combination;
 *         a guidance combination is set through ::SCORE_MODEL_PARAM_GUIDANCE);
 *         ::SCORE_E_RANGE (@p i or @p w).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_model_combination_set_weight(score_model *model, size_t i,
                                                                   double w);

SCORE_END_DECLS

#endif /* LIBSCORE_MODEL_H */
