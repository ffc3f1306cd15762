/**
 * @file genmodel.h
 * @brief The saved generative model: a network together with everything needed to interpret
 * it (schedule, output parameterization, conditioning, data transform, dequantization, column
 * names, condition spec), saved to and loaded from one file.
 *
 * A network's output F(x, c) becomes a score only through a schedule and a parameterization
 * (score_sde_new()), and samples become data only through the transform the network was
 * trained in. A ::score_genmodel owns all of it, so that a model written by one program is
 * sampled and evaluated in the same units by every other (C, C++, the Python binding, the
 * `score` tool):
 *
 * - the network: a copy (score_model_clone()) of the sde's model;
 * - the schedule: a copy of the sde's schedule;
 * - the sde settings: output kind, ::SCORE_SDE_PARAM_COND, ::SCORE_SDE_PARAM_COND_SCALE,
 *   ::SCORE_SDE_PARAM_SIGMA_DATA;
 * - the fixed time: 0 for a model trained over the whole time range; t > 0 for a model trained
 *   at that one time only (the one-noise-level losses ::SCORE_LOSS_DSM, ::SCORE_LOSS_HYVARINEN,
 *   ::SCORE_LOSS_SSM, ::SCORE_LOSS_SSM_VR): such a model is a score at one noise level, sampled
 *   by Langevin dynamics at that level (score_genmodel_sample_langevin()) and without a
 *   likelihood;
 * - the data transform, per dimension j: `x_model_j = (x_data_j - shift_j) / scale_j` with
 *   scale_j > 0 (identity by default), computed in double and rounded to float;
 * - the dequantization of likelihoods of integer data (see ::score_genmodel_dequant);
 * - optional names of the data columns;
 * - the condition spec: the network's ::SCORE_MODEL_PARAM_NUM_CLASSES and
 *   ::SCORE_MODEL_PARAM_CONTEXT_DIM, optional label names and context column names.
 *
 * Data units and model units: score_genmodel_sample() returns samples in data units (it
 * decodes the sampler's output), score_genmodel_logp() takes data in data units (it encodes
 * them and adds the log-determinant `-sum_j log scale_j` of the transform and the
 * dequantization term).
 *
 * Files: one safetensors file holding the network (the layout of score_model_save(), so that
 * score_model_load() still reads the network alone) plus `genmodel.*` metadata entries for the
 * rest (doc/model-format.md). Files written by the `score` tool of libscore 0.1 (whose meaning
 * lies in `user.score.*` entries) load with the same meaning; a plain network file is refused
 * with a message saying how to make a generative model of it.
 *
 * Classifiers: a noise-conditional classifier (classifier.h) trained for a generative model is
 * stored the same way (score_genmodel_new_classifier()): the classifier network with the data
 * side of its target (schedule, data transform, column names) and its own class names, so that
 * score_genmodel_set_classifier() can check that it sees the data as the score model does.
 *
 * Thread-safety: a generative model is immutable after its setters have been called and may
 * then be shared read-only between threads; each thread uses its own sde (score_genmodel_sde()),
 * sampler and likelihood evaluator.
 */
#ifndef LIBSCORE_GENMODEL_H
#define LIBSCORE_GENMODEL_H

#include "common.h"
#include "likelihood.h"
#include "model.h"
#include "rng.h"
#include "sampler.h"
#include "schedule.h"
#include "sde.h"
#include "step.h"

SCORE_BEGIN_DECLS

/** @brief Opaque handle of a generative model (network + meaning). */
typedef struct score_genmodel score_genmodel;

/** @brief Dequantization of likelihoods (pinned values). */
enum score_genmodel_dequant {
    /** The data are continuous: score_genmodel_logp() returns the density log p(x). */
    SCORE_GENMODEL_DEQUANT_NONE = 0,
    /** The data lie on a grid of width `bin` (integers: bin = 1): score_genmodel_logp()
     *  returns the uniform-dequantization estimate of the log-probability of the grid cell,
     *  `log p(x + bin u) + dim log(bin)` with u uniform in (0, 1)^dim (a lower bound of the
     *  log-probability in expectation over u). */
    SCORE_GENMODEL_DEQUANT_UNIFORM = 1
};

/**
 * @brief Creates a generative model from an sde: copies its model (score_model_clone()), its
 *        schedule and its settings (output kind, conditioning kind and scale, sigma_data).
 *        The transform is the identity, no dequantization, no names, fixed time 0.
 * @param[out] out the new generative model; NULL on failure.
 * @param[in] sde the sde (only read; the copies do not depend on it afterwards).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (the model cannot be
 *         cloned, e.g. a callback model, or the schedule is a user-array kind
 *         (::SCORE_SCHEDULE_SIGMAS, ::SCORE_SCHEDULE_BETAS), which the file format does not
 *         store bit for bit); ::SCORE_E_NOMEM.
 * Ownership: the caller frees the result with score_genmodel_free().
 * Thread-safety: safe for concurrent readers of @p sde's model.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_new(score_genmodel **out, const score_sde *sde);

/**
 * @brief Frees a generative model. NULL is a no-op.
 * @param[in] gm the generative model.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_genmodel_free(score_genmodel *gm);

/**
 * @brief Data dimension, or 0 for NULL.
 * @param[in] gm the generative model.
 * @return dim.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_genmodel_dim(const score_genmodel *gm);

/**
 * @brief The network (borrowed; owned by the generative model), or NULL for NULL. For a
 *        guidance combination (score_genmodel_new_cfg()) the combination model.
 * @param[in] gm the generative model.
 * @return the model. Do not free it or change its weights or architecture; its runtime
 *         parameters (::SCORE_MODEL_PARAM_THREADS) and user metadata may be set while no other
 *         thread uses the generative model.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API score_model *score_genmodel_model(const score_genmodel *gm);

/**
 * @brief The schedule (borrowed, prepared), or NULL for NULL.
 * @param[in] gm the generative model.
 * @return the schedule.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const score_schedule *score_genmodel_schedule(const score_genmodel *gm);

/**
 * @brief Reads an sde setting of the generative model (the values score_genmodel_sde() sets).
 * @param[in] gm the generative model.
 * @param[in] param ::SCORE_SDE_PARAM_OUTPUT or ::SCORE_SDE_PARAM_COND.
 * @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (another id).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_get_i64(const score_genmodel *gm, int param,
                                                       int64_t *out);

/**
 * @brief Reads a floating-point sde setting of the generative model.
 * @param[in] gm the generative model.
 * @param[in] param ::SCORE_SDE_PARAM_COND_SCALE or ::SCORE_SDE_PARAM_SIGMA_DATA.
 * @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (another id).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_get_f64(const score_genmodel *gm, int param,
                                                       double *out);

/**
 * @brief Sets the one time a model was trained at (see the file comment); 0 = the whole range.
 * @param[in,out] gm the generative model.
 * @param[in] t 0, or a time in [t_eps, T] of the schedule.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL); ::SCORE_E_RANGE (@p t outside, or NaN).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_set_fixed_t(score_genmodel *gm, double t);

/**
 * @brief The fixed time (0 for a model of the whole time range), or 0 for NULL.
 * @param[in] gm the generative model.
 * @return the time.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API double score_genmodel_fixed_t(const score_genmodel *gm);

/**
 * @brief Sets the data transform `x_model = (x_data - shift) / scale` (per dimension).
 * @param[in,out] gm the generative model.
 * @param[in] shift dim finite values, or NULL (together with @p scale) for the identity.
 * @param[in] scale dim finite values > 0, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p gm, or only one of @p shift, @p scale NULL);
 *         ::SCORE_E_RANGE (a value not finite, a scale not positive; the message names it);
 *         ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_set_transform(score_genmodel *gm,
                                                             const double *shift,
                                                             const double *scale);

/**
 * @brief Reads the data transform.
 * @param[in] gm the generative model.
 * @param[out] shift dim values (0 for the identity), or NULL.
 * @param[out] scale dim values (1 for the identity), or NULL.
 * @return 1 when a transform was set, 0 for the identity; ::SCORE_E_INVAL (negative) for NULL
 *         @p gm.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_genmodel_get_transform(const score_genmodel *gm, double *shift,
                                           double *scale);

/**
 * @brief Sets the dequantization of likelihoods (see ::score_genmodel_dequant).
 * @param[in,out] gm the generative model.
 * @param[in] kind a ::score_genmodel_dequant.
 * @param[in] bin the grid width in data units, finite and > 0 (ignored, but still checked to
 *            be finite and > 0, for ::SCORE_GENMODEL_DEQUANT_NONE; pass 1).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL); ::SCORE_E_RANGE (@p kind or @p bin).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_set_dequant(score_genmodel *gm, int kind,
                                                           double bin);

/**
 * @brief Reads the dequantization settings.
 * @param[in] gm the generative model.
 * @param[out] kind the ::score_genmodel_dequant, or NULL.
 * @param[out] bin the grid width, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p gm).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_get_dequant(const score_genmodel *gm, int *kind,
                                                           double *bin);

/** @brief Which list of names score_genmodel_set_names() sets (pinned values). */
enum score_genmodel_names {
    SCORE_GENMODEL_NAMES_COLUMNS = 1, /**< The dim data columns. */
    SCORE_GENMODEL_NAMES_LABELS = 2,  /**< The NUM_CLASSES class labels (label k = name k). */
    SCORE_GENMODEL_NAMES_CONTEXT = 3  /**< The CONTEXT_DIM columns of the context vector. */
};

/**
 * @brief Sets (or, with n = 0, removes) one list of names.
 * @param[in,out] gm the generative model.
 * @param[in] which a ::score_genmodel_names.
 * @param[in] n 0, or the length of the list: dim, NUM_CLASSES or CONTEXT_DIM.
 * @param[in] names n names (copied): each 1 to 256 bytes of valid UTF-8 without control
 *            characters; label names must be distinct.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p gm, NULL @p names with n > 0, a NULL or invalid
 *         name, repeated label names); ::SCORE_E_RANGE (@p which);
 *         ::SCORE_E_SHAPE (@p n is not the list's length); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_set_names(score_genmodel *gm, int which,
                                                         size_t n, const char *const *names);

/**
 * @brief Name @p i of a list, or NULL (NULL @p gm, no such list, or @p i out of range).
 * @param[in] gm the generative model. @param[in] which a ::score_genmodel_names.
 * @param[in] i the index.
 * @return the name, borrowed (valid until the list is set again or @p gm is freed).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_genmodel_name(const score_genmodel *gm, int which, size_t i);

/**
 * @brief The condition spec: the network's number of classes (0 = no label input).
 * @param[in] gm the generative model.
 * @return ::SCORE_MODEL_PARAM_NUM_CLASSES of the network; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_genmodel_num_classes(const score_genmodel *gm);

/**
 * @brief The condition spec: the width of the network's context vector (0 = none).
 * @param[in] gm the generative model.
 * @return ::SCORE_MODEL_PARAM_CONTEXT_DIM of the network; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_genmodel_context_dim(const score_genmodel *gm);

/**
 * @brief Creates an sde bound to the generative model's network and schedule with its
 *        settings: the system that score_genmodel_sample() and score_genmodel_logp() take.
 * @param[in] gm the generative model.
 * @param[out] out the new sde; NULL on failure. It borrows the network: free it before @p gm.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_UNSUPPORTED (@p gm is a
 *         classifier: see score_genmodel_set_classifier()); ::SCORE_E_NOMEM.
 * Ownership: the caller frees the sde with score_sde_free().
 * Thread-safety: safe (each thread makes its own).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_sde(const score_genmodel *gm, score_sde **out);

/**
 * @brief Sets (or with NULL bounds clears) the box of static clipping, and the range of
 *        dynamic thresholding, of the data prediction of an sde of this model, given in DATA
 *        units: the library converts it per dimension to the network's units,
 *        `(bound - shift_j) / scale_j` (see "Thresholding" in sde.h and score_sde_set_clip()).
 *
 * The bounds in model units are the floats whose decoded values (score_genmodel_decode(),
 * rounded to float) lie within [lo, hi]; so the samples of score_genmodel_sample() lie in the
 * box whenever the sampler's last step goes to t = 0 (its result is the clipped data
 * prediction).
 * @param[in] gm the generative model.
 * @param[in,out] sde an sde made by score_genmodel_sde() of @p gm.
 * @param[in] n 1 (the same bounds for every dimension) or dim.
 * @param[in] lo n lower bounds in data units, or NULL (with @p hi) to clear the box.
 * @param[in] hi n upper bounds in data units, hi[j] > lo[j].
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p gm or @p sde, only one of @p lo, @p hi NULL, or
 *         @p sde does not evaluate @p gm's network with its settings); ::SCORE_E_SHAPE (@p n);
 *         ::SCORE_E_RANGE (a bound not finite or hi <= lo); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive on @p sde; @p gm is only read.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_sde_set_clip(const score_genmodel *gm,
                                                            score_sde *sde, size_t n,
                                                            const double *lo,
                                                            const double *hi);

/**
 * @brief Data units to model units: `x_model = (x_data - shift) / scale`, in double per
 *        element, rounded to float (a copy for the identity).
 * @param[in] gm the generative model. @param[in] n rows.
 * @param[in] x_data n * dim values. @param[out] x_model n * dim values (may equal @p x_data).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_RANGE (n * dim floats
 *         overflow the address space).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_encode(const score_genmodel *gm, size_t n,
                                                      const float *x_data, float *x_model);

/**
 * @brief Model units to data units: `x_data = x_model * scale + shift`, in double per
 *        element, rounded to float.
 * @param[in] gm the generative model. @param[in] n rows.
 * @param[in] x_model n * dim values. @param[out] x_data n * dim values (may equal @p x_model).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_RANGE (n * dim floats
 *         overflow the address space).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_decode(const score_genmodel *gm, size_t n,
                                                      const float *x_model, float *x_data);

/**
 * @brief Draws rows row0 .. row0 + n - 1 of a sample in data units: score_sampler_run_ex()
 *        from the prior, then score_genmodel_decode().
 * @param[in] gm the generative model.
 * @param[in,out] smp any sampler of dimension dim.
 * @param[in,out] sde an sde made by score_genmodel_sde() of @p gm.
 * @param[in] row0 global index of the first row. @param[in] n rows.
 * @param[out] out n * dim samples in data units.
 * @param[in] rng the generator (see score_sampler_run()).
 * @param[in] progress progress / cancel callback or NULL. @param[in] user_data for @p progress.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or @p sde does not evaluate @p gm's
 *         network); ::SCORE_E_UNSUPPORTED (a model of one fixed time: use
 *         score_genmodel_sample_langevin()); the statuses of score_sampler_run_ex().
 * Thread-safety: object-exclusive for @p smp and @p sde; @p gm is only read.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_sample(const score_genmodel *gm, score_sampler *smp,
                                                      score_sde *sde, size_t row0, size_t n,
                                                      float *out, const score_rng *rng,
                                                      score_sampler_progress_fn progress,
                                                      void *user_data);

/**
 * @brief Samples a model of one fixed time by Langevin dynamics at that time, in data units.
 *
 * Starts from x = N(0, I) in model units (the generator's normals at its counter, rows
 * row0 .. row0 + n - 1, columns 0 .. dim - 1), applies @p step from the fixed time to itself
 * @p n_steps times with noise counter offsets 1, 2, ..., then decodes.
 * @param[in] gm the generative model (fixed time > 0).
 * @param[in,out] step a step of dimension dim, normally ::SCORE_STEP_LANGEVIN with its step
 *                size or SNR set.
 * @param[in,out] sde an sde made by score_genmodel_sde() of @p gm.
 * @param[in] n_steps number of steps (0: the start values), below 2^32 - 1.
 * @param[in] row0 global index of the first row. @param[in] n rows.
 * @param[out] out n * dim samples in data units.
 * @param[in] rng the generator.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, foreign @p sde);
 *         ::SCORE_E_UNSUPPORTED (the model has no fixed time); ::SCORE_E_RANGE (row0 + n >
 *         2^32, @p n_steps); the statuses of score_step_apply_ex(); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive for @p step and @p sde.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_sample_langevin(const score_genmodel *gm,
                                                               score_step *step, score_sde *sde,
                                                               size_t n_steps, size_t row0,
                                                               size_t n, float *out,
                                                               const score_rng *rng);

/**
 * @brief Log-likelihood of data in data units:
 *        `log p_data(x) = log p_model(encode(x)) - sum_j log scale_j`, plus, with
 *        ::SCORE_GENMODEL_DEQUANT_UNIFORM, the dequantization (x replaced by x + bin u, and
 *        `dim log(bin)` added).
 *
 * The dequantization offsets u are the uniforms of a copy of @p rng whose stream is the
 * generator's XOR 2^31 (so they are independent of the Hutchinson probes), at its counter,
 * rows row0 + i, columns 0 .. dim - 1.
 * @param[in] gm the generative model.
 * @param[in,out] lk the evaluator (dimension dim).
 * @param[in,out] sde an sde made by score_genmodel_sde() of @p gm.
 * @param[in] row0 global index of the first row. @param[in] n rows.
 * @param[in] x n * dim points in data units.
 * @param[out] logp n log-likelihoods in nats (data units).
 * @param[out] bpd n bits per dimension `-logp / (dim ln 2)`, or NULL.
 * @param[in] rng the generator: needed for Hutchinson's estimate and for dequantization,
 *            else may be NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, foreign @p sde, dequantization without
 *         generator); ::SCORE_E_UNSUPPORTED (a model of one fixed time has no likelihood);
 *         ::SCORE_E_RANGE (n * dim overflows);
 *         the statuses of score_likelihood_logp_ex(); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive for @p lk and @p sde.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_logp(const score_genmodel *gm,
                                                    score_likelihood *lk, score_sde *sde,
                                                    size_t row0, size_t n, const float *x,
                                                    double *logp, double *bpd,
                                                    const score_rng *rng);

/**
 * @brief Saves the generative model to a file (crash-safely, like score_model_save()).
 * @param[in] gm the generative model. @param[in] path the file.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, empty path); ::SCORE_E_UNSUPPORTED (a
 *         guidance combination, or a network kind that cannot be saved); ::SCORE_E_IO;
 *         ::SCORE_E_NOMEM.
 * Thread-safety: safe for concurrent readers of @p gm.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_save(const score_genmodel *gm, const char *path);

/**
 * @brief Serialises the generative model into a new buffer (the bytes of score_genmodel_save()).
 * @param[in] gm the generative model.
 * @param[out] buf_out the buffer; release it with score_free(). NULL on failure.
 * @param[out] len_out its length; 0 on failure.
 * @return as score_genmodel_save() without ::SCORE_E_IO.
 * Thread-safety: safe for concurrent readers of @p gm.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_save_buffer(const score_genmodel *gm,
                                                           void **buf_out, size_t *len_out);

/**
 * @brief Loads a generative model file, or a model file written by the `score` tool of
 *        libscore 0.1 (same meaning).
 *
 * The file is untrusted: everything score_model_load() checks, and every `genmodel.*` entry
 * (doc/model-format.md) is checked for presence, syntax, range and consistency with the
 * network. A plain network file (score_model_save()) is refused: it does not say how its
 * output becomes a score; make a generative model of it with score_model_load(),
 * score_sde_new() and score_genmodel_new(), then score_genmodel_save().
 * @param[out] out the generative model; NULL on failure.
 * @param[in] path the file.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_IO; ::SCORE_E_FORMAT (with a
 *         message naming the problem); ::SCORE_E_NOMEM.
 * Ownership: the caller frees the result with score_genmodel_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_load(score_genmodel **out, const char *path);

/**
 * @brief Loads a generative model from a buffer holding a file (see score_genmodel_load()).
 * @param[out] out the generative model; NULL on failure.
 * @param[in] buf the bytes (not retained). @param[in] len their number.
 * @return as score_genmodel_load() without ::SCORE_E_IO.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_load_buffer(score_genmodel **out, const void *buf,
                                                           size_t len);

/**
 * @brief Whether two generative models can be combined at the score level (guidance, sums):
 *        the same dimension, schedule kind and every schedule parameter, output kind,
 *        conditioning kind and scale, sigma_data, fixed time, data transform (shift and scale
 *        bit for bit), and condition spec (number of classes, label names, context width).
 * @param[in] a first model. @param[in] b second model.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or the models differ: the last-error
 *         message names the first difference and both values).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_check_compatible(const score_genmodel *a,
                                                                const score_genmodel *b);

/**
 * @brief Classifier-free guidance of two compatible generative models: a generative model
 *        whose network is F = (1 + w) F_cond - w F_uncond (score_model_new_cfg()) and whose
 *        meaning is that of @p cond (checked with score_genmodel_check_compatible() first).
 * @param[out] out the combination; NULL on failure. It holds its own copies of both networks.
 * @param[in] cond the conditional model. @param[in] uncond the unconditional model.
 * @param[in] w the guidance weight, [-1e6, 1e6].
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or incompatible models: the message of
 *         score_genmodel_check_compatible()); ::SCORE_E_RANGE (@p w); ::SCORE_E_NOMEM.
 *         The combination samples and evaluates like any generative model but cannot be
 *         saved (::SCORE_E_UNSUPPORTED).
 * Thread-safety: safe for concurrent readers of @p cond and @p uncond.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_new_cfg(score_genmodel **out,
                                                       const score_genmodel *cond,
                                                       const score_genmodel *uncond, double w);

/**
 * @brief The generative model of a noise-conditional classifier trained for @p target: a copy
 *        of the classifier network with the data side of @p target (schedule, data transform,
 *        column names; its sde settings are copied too but mean nothing for a classifier).
 *        Its class names are set with score_genmodel_set_names() (::SCORE_GENMODEL_NAMES_LABELS,
 *        as many as the classifier's classes); save and load it like any generative model.
 *        It has no sde (score_genmodel_sde() refuses it): it guides one, see
 *        score_genmodel_set_classifier().
 * @param[out] out the new generative model; NULL on failure.
 * @param[in] clf a ::SCORE_MODEL_CLASSIFIER model (copied; trained on data in @p target's model
 *            units, i.e. rows encoded with score_genmodel_encode()).
 * @param[in] target the score model's generative model (not a classifier, not a guidance
 *            combination, not of one fixed time).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer; @p target is a classifier or a guidance
 *         combination; the classifier's schedule differs from @p target's: the message names the
 *         first differing parameter); ::SCORE_E_UNSUPPORTED (@p clf is not a classifier, or
 *         @p target is a model of one fixed time); ::SCORE_E_SHAPE (dimensions differ);
 *         ::SCORE_E_NOMEM.
 * Thread-safety: safe for concurrent readers of @p clf and @p target.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_new_classifier(score_genmodel **out,
                                                              const score_model *clf,
                                                              const score_genmodel *target);

/**
 * @brief Whether the generative model holds a noise-conditional classifier.
 * @param[in] gm the generative model.
 * @return 1 for a classifier (score_genmodel_new_classifier(), or loaded from its file), 0 for a
 *         score network; ::SCORE_E_INVAL (negative) for NULL.
 * Thread-safety: safe.
 * @since 0.2
 */
SCORE_API int score_genmodel_is_classifier(const score_genmodel *gm);

/**
 * @brief Classifier guidance of @p gm's sde by a classifier's generative model, after checking
 *        that both see the data the same way: score_sde_set_classifier() on @p sde with the
 *        classifier network, so that every later evaluation is s + @p w grad_x log p(y | x_t)
 *        for the sde's label y (score_sde_set_label()).
 * @param[in] gm the score model's generative model.
 * @param[in,out] sde an sde made by score_genmodel_sde(@p gm).
 * @param[in] clf the classifier's generative model, or NULL to remove the classifier. Borrowed:
 *            it must outlive its use by @p sde.
 * @param[in] w guidance weight, [-1e6, 1e6].
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p gm or @p sde; @p sde does not evaluate @p gm's
 *         network; @p gm is a classifier; the two differ in schedule, data transform or column
 *         names: the message names the first difference; the classifier has another number of
 *         classes than a conditional @p gm); ::SCORE_E_UNSUPPORTED (@p clf is not a classifier,
 *         or @p gm is of one fixed time); ::SCORE_E_SHAPE (dimensions); ::SCORE_E_RANGE (@p w);
 *         ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive on @p sde; @p gm and @p clf are only read.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_genmodel_set_classifier(const score_genmodel *gm,
                                                              score_sde *sde,
                                                              const score_genmodel *clf,
                                                              double w);

SCORE_END_DECLS

#endif /* LIBSCORE_GENMODEL_H */
