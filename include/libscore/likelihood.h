/**
 * @file likelihood.h
 * @brief Log-likelihood and bits per dimension through the probability-flow ODE (Song et al.
 * 2021, appendix D.2; Grathwohl et al. 2019).
 *
 * For a data point x (taken as a sample at time t_eps), the probability-flow ODE
 * `dx/dt = f(x, t) - g(t)^2 s(x, t) / 2` is solved from t_eps to T together with
 * `d delta/dt = div_x(f - g^2 s / 2)`, and
 *
 *     log p(x) = log p_T(z) + delta,   z = x(T),   delta = integral of the divergence,
 *
 * with p_T the schedule's prior (score_schedule_prior_logp()). The solve uses the adaptive
 * Dormand-Prince 5(4) pair in the half log-SNR lambda (where the integrand is smooth down to
 * t_eps), with one step size and one accept/reject decision per row, the state in double and
 * the error measured on x and delta together (rtol, atol). The divergence is exact
 * (score_sde_pf_divergence() without probes: the model's trace, dim passes for models without
 * one) or Hutchinson's estimate with k probes per row, Rademacher or Gaussian, drawn once per
 * solve (fixed along the trajectory, so the integrand is a smooth function of time) from the
 * generator at its current counter, row row0 + i, columns p * dim .. (p + 1) * dim - 1 for
 * probe p. Every row is solved with its own step sizes and probes, and the model is given the
 * rows' global numbers (an MLP evaluates its trace, its tangent products and its output in row
 * panels aligned to them), so a row's log p, like its latent (score_likelihood_to_latent()), is
 * bit-identical for any split of the rows into calls, model threads or ranks
 * (score_likelihood_set_comm()).
 *
 * Bits per dimension: `bpd = -log p(x) / (dim ln 2) + offset`, with the offset
 * ::SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET given in bits and **0 by default** (no hidden
 * constant). For K-level discrete data rescaled to an interval of width W and dequantized
 * with uniform noise of one level, the discrete model's bits/dim is obtained with offset
 * `log2(K / W)`: 8 for 8-bit data in [0, 1], 7 for 8-bit data in [-1, 1] (score_sde's
 * "7 - inverse_scaler(-1)"). Without dequantized evaluation data this is not a likelihood of
 * the discrete data.
 */
#ifndef LIBSCORE_LIKELIHOOD_H
#define LIBSCORE_LIKELIHOOD_H

#include "comm.h"
#include "common.h"
#include "rng.h"
#include "sde.h"

SCORE_BEGIN_DECLS

/** @brief Opaque likelihood evaluator (parameters, workspace, counters). */
typedef struct score_likelihood score_likelihood;

/** @brief Divergence computation (pinned values). */
enum score_likelihood_divergence {
    SCORE_LIKELIHOOD_DIV_AUTO = 0,       /**< Exact when dim <= 32, Hutchinson otherwise. */
    SCORE_LIKELIHOOD_DIV_EXACT = 1,      /**< Exact trace (score_sde_pf_divergence() without probes). */
    SCORE_LIKELIHOOD_DIV_HUTCHINSON = 2  /**< Hutchinson estimate with fixed probes. */
};

/** @brief Probe distributions of the Hutchinson estimate (pinned values). */
enum score_likelihood_probe {
    SCORE_LIKELIHOOD_PROBE_RADEMACHER = 1, /**< Entries +-1 with probability 1/2 (smallest variance). */
    SCORE_LIKELIHOOD_PROBE_GAUSSIAN = 2    /**< Standard normal entries. */
};

/** @brief Likelihood parameters (pinned ids; object kind ::SCORE_OBJECT_LIKELIHOOD, 700-799).
 *  They may be changed between calls. */
enum score_likelihood_param {
    SCORE_LIKELIHOOD_PARAM_RTOL = 700,       /**< f64: relative tolerance, [0, 1], default 1e-5 (score_sde). */
    SCORE_LIKELIHOOD_PARAM_ATOL = 701,       /**< f64: absolute tolerance, [0, 1e6], default 1e-5; rtol + atol > 0. */
    SCORE_LIKELIHOOD_PARAM_DIVERGENCE = 702, /**< i64: a ::score_likelihood_divergence, 0..2, default 0 (auto). */
    SCORE_LIKELIHOOD_PARAM_PROBE = 703,      /**< i64: a ::score_likelihood_probe, 1..2, default 1 (Rademacher). */
    SCORE_LIKELIHOOD_PARAM_N_PROBES = 704,   /**< i64: probes per row k (averaged), 1..4096, default 1. */
    SCORE_LIKELIHOOD_PARAM_T_EPS = 705,      /**< f64: start time, [0, 1e6], default 0 = the schedule's t_eps (score_sde's likelihood uses 1e-5). */
    SCORE_LIKELIHOOD_PARAM_T_END = 706,      /**< f64: end time, [0, 1e6], default 0 = the schedule's T. */
    SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET = 707, /**< f64: bits/dim offset added to -log p / (dim ln 2), [-1000, 1000], default 0 (see likelihood.h). */
    SCORE_LIKELIHOOD_PARAM_H_INIT = 708,     /**< f64: initial step in lambda, [0, 1e3], default 0 = 0.05. */
    SCORE_LIKELIHOOD_PARAM_H_MIN = 709,      /**< f64: smallest step in lambda, [0, 1e3], default 1e-10. */
    SCORE_LIKELIHOOD_PARAM_MAX_STEPS = 710,  /**< i64: largest number of attempts, 1..1000000000, default 100000. */
    SCORE_LIKELIHOOD_PARAM_ERROR_NORM = 711  /**< i64: a ::score_control_norm, 0..1, default 0 (per row: a row's log p does not depend on the other rows); 1 measures the error over the whole batch, as score_sde's likelihood (scipy's RK45 on the flattened state) does. @since 0.2 */
};

/**
 * @brief Creates a likelihood evaluator for data of dimension @p dim.
 * @param[out] out the evaluator; NULL on failure. @param[in] dim dimension, 1 .. 2^24.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_RANGE (@p dim); ::SCORE_E_NOMEM.
 * Ownership: free with score_likelihood_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_new(score_likelihood **out, size_t dim);

/**
 * @brief Frees an evaluator. NULL is a no-op.
 * @param[in] lk the evaluator.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_likelihood_free(score_likelihood *lk);

/**
 * @brief Sets a floating-point parameter (::score_likelihood_param).
 * @param[in,out] lk the evaluator. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_RANGE;
 *         ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_set_f64(score_likelihood *lk, int param,
                                                         double value);

/**
 * @brief Sets an integer parameter (::score_likelihood_param).
 * @param[in,out] lk the evaluator. @param[in] param the id. @param[in] value the value.
 * @return as score_likelihood_set_f64().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_set_i64(score_likelihood *lk, int param,
                                                         int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] lk the evaluator. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_get_f64(const score_likelihood *lk, int param,
                                                         double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] lk the evaluator. @param[in] param the id. @param[out] out the value.
 * @return as score_likelihood_get_f64().
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_get_i64(const score_likelihood *lk, int param,
                                                         int64_t *out);

/**
 * @brief log p(x) in nats (and optionally bits/dim) of @p n rows.
 *
 * Equivalent to score_likelihood_logp_ex() with row0 = 0 and no z / delta outputs.
 * @param[in,out] lk the evaluator. @param[in,out] sde the system.
 * @param[in] n rows. @param[in] x n * dim data points.
 * @param[out] logp_nats n log-likelihoods (nats). @param[out] bpd n bits/dim, or NULL.
 * @param[in] rng the generator for the Hutchinson probes (only read); may be NULL with the
 *            exact divergence.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, missing generator, t_eps >= T);
 *         ::SCORE_E_SHAPE (dimension mismatch); ::SCORE_E_RANGE (a time outside the schedule);
 *         ::SCORE_E_NUMERIC (non-finite input or intermediate value);
 *         ::SCORE_E_UNSUPPORTED (exact divergence of a model without trace, jvp or vjp);
 *         ::SCORE_E_CALLBACK (model callback failed); ::SCORE_E_NOPROGRESS (step size below
 *         h_min or max_steps reached); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive for @p lk and @p sde; the sde's model is only read and
 *         may be shared with other threads' evaluators and samplers (each with its own sde).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_logp(score_likelihood *lk, score_sde *sde,
                                                      size_t n, const float *x,
                                                      double *logp_nats, double *bpd,
                                                      const score_rng *rng);

/**
 * @brief log p(x) of rows row0 .. row0 + n - 1 of a larger set, with the ODE end point and the
 *        integrated divergence.
 * @param[in,out] lk the evaluator. @param[in,out] sde the system.
 * @param[in] row0 global index of row 0 (probes). @param[in] n rows. @param[in] x n * dim points.
 * @param[out] logp_nats n values. @param[out] bpd n values or NULL.
 * @param[out] z_out n * dim end points x(T), or NULL.
 * @param[out] delta_out n integrated divergences (log p(x) - log p_T(z)), or NULL.
 * @param[in] rng the generator.
 * @return as score_likelihood_logp().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_logp_ex(score_likelihood *lk, score_sde *sde,
                                                         size_t row0, size_t n,
                                                         const float *x, double *logp_nats,
                                                         double *bpd, float *z_out,
                                                         double *delta_out, const score_rng *rng);

/**
 * @brief Splits the rows of the evaluator's log-likelihoods over the ranks of @p comm
 *        (comm.h).
 *
 * With a communicator, score_likelihood_logp_ex() (and score_likelihood_logp(), and
 * score_genmodel_logp() through it) is a collective: every rank calls it with the same
 * arguments; rank r solves its contiguous share of the rows (score_comm_share()) with their
 * global row numbers (probes), so each value is bit-identical to a one-process solve; the
 * ranks agree on the status and every rank receives all n values of each requested output.
 * score_likelihood_to_latent() and score_likelihood_from_latent() are not split: they compute
 * every row in each process.
 * @param[in,out] lk the evaluator. @param[in] comm the communicator (borrowed: it must outlive
 *            its use), or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL lk).
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_set_comm(score_likelihood *lk,
                                                          score_comm *comm);

/**
 * @brief Data to latents: the probability-flow ODE map z = x(T) of rows x taken at
 * t_eps, without the divergence (the solve of score_likelihood_logp() for x alone).
 *
 * Deterministic and invertible up to the solver's error: score_likelihood_from_latent() maps z
 * back. In the model's units (a generative model's data transform is score_genmodel_encode()).
 * Same solver, tolerances (::SCORE_LIKELIHOOD_PARAM_RTOL, ::SCORE_LIKELIHOOD_PARAM_ATOL), time
 * range (::SCORE_LIKELIHOOD_PARAM_T_EPS, ::SCORE_LIKELIHOOD_PARAM_T_END) and step limits as
 * the likelihood. Every row is solved with its own step sizes and the model is told the rows'
 * global numbers row0 + i, so a row's latent is bit-identical however the rows are split into
 * calls (also for an MLP, whose products then run in row panels aligned to those numbers).
 * Counters: score_likelihood_get_nfe(), score_likelihood_get_steps().
 * @param[in,out] lk the evaluator. @param[in,out] sde the system (its model only read).
 * @param[in] row0 global number of row 0 (rows row0 .. row0 + n - 1 of a larger set).
 * @param[in] n rows (0: nothing to do). @param[in] x n * dim data points.
 * @param[out] z_out n * dim latents.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, t_eps >= T); ::SCORE_E_SHAPE (dimension
 *         mismatch); ::SCORE_E_RANGE (n > 2^32, a time outside the schedule);
 *         ::SCORE_E_NUMERIC (non-finite input or solution); ::SCORE_E_CALLBACK;
 *         ::SCORE_E_NOPROGRESS; ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive for @p lk and @p sde.
 * @since 0.1
 * @see score_likelihood_from_latent()
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_to_latent(score_likelihood *lk,
                                                           score_sde *sde, size_t row0,
                                                           size_t n, const float *x,
                                                           float *z_out);

/**
 * @brief Latents to data: the probability-flow ODE solved from z at T down to t_eps (the
 * inverse of score_likelihood_to_latent(), with the same adaptive solver and settings).
 *
 * With z drawn from the prior this is a deterministic sampler at the evaluator's tolerance.
 * @param[in,out] lk the evaluator. @param[in,out] sde the system.
 * @param[in] row0 global number of row 0. @param[in] n rows.
 * @param[in] z n * dim latents. @param[out] x_out n * dim points at t_eps.
 * @return as score_likelihood_to_latent().
 * Thread-safety: object-exclusive for @p lk and @p sde.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_likelihood_from_latent(score_likelihood *lk,
                                                             score_sde *sde, size_t row0,
                                                             size_t n, const float *z,
                                                             float *x_out);

/**
 * @brief Batched model evaluations of the last call.
 * @param[in] lk the evaluator.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_likelihood_get_nfe(const score_likelihood *lk);

/**
 * @brief Accepted steps of the slowest row in the last call.
 * @param[in] lk the evaluator.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_likelihood_get_steps(const score_likelihood *lk);

SCORE_END_DECLS

#endif /* LIBSCORE_LIKELIHOOD_H */
