/**
 * @file evolve.h
 * @brief Advancing a batch through time with a step type, with or without adaptive control
 * (the `gsl_odeiv2_evolve` layer, STYLE C.11).
 *
 * An evolve object keeps, per row, the current time t and the current step size h, plus
 * counters. It is started with score_evolve_init() (same start time for every row) or
 * score_evolve_init_ex() (per-row start times), then advanced by repeated calls:
 *
 *     score_evolve_init(e, t0, 0.0, n);
 *     while ((rc = score_evolve_apply(e, ctrl, step, sde, t1, n, x, NULL)) == SCORE_OK) {}
 *     if (rc != SCORE_DONE) handle the error;
 *
 * Adaptive stepping (score_evolve_apply()): step sizes are in units of the half log-SNR
 * lambda = log(alpha / sigma) (so one h serves every schedule, as DPM-Solver's adaptive
 * solver), each row has its own h and its own accept/reject decision, and rows that reached
 * t1 drop out of later model evaluations. A row's result therefore does not depend on the
 * other rows. One call makes one attempt for every unfinished row (one batched step).
 * Requires a deterministic step type with an error estimate (::SCORE_STEP_FLAG_ERROR_ESTIMATE).
 *
 * Fixed stepping (score_evolve_apply_fixed()): every row goes from its current time to the
 * given time; stochastic types draw their noise with counter = the number of fixed steps
 * since the last init, and global rows row0 + i.
 */
#ifndef LIBSCORE_EVOLVE_H
#define LIBSCORE_EVOLVE_H

#include "common.h"
#include "control.h"
#include "rng.h"
#include "sde.h"
#include "step.h"

SCORE_BEGIN_DECLS

/** @brief Opaque evolve state (per-row times and step sizes, counters, scratch). */
typedef struct score_evolve score_evolve;

/**
 * @brief Creates an evolve object for data of dimension @p dim.
 * @param[out] out the new object; NULL on failure. @param[in] dim dimension, 1 .. 2^24.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_RANGE (@p dim); ::SCORE_E_NOMEM.
 * Ownership: free with score_evolve_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_new(score_evolve **out, size_t dim);

/**
 * @brief Frees an evolve object. NULL is a no-op.
 * @param[in] e the object.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_evolve_free(score_evolve *e);

/**
 * @brief Starts a solve: every one of @p n rows at time @p t0 with step size @p h0.
 *
 * Resets the counters. Allocates only when @p n exceeds every earlier n.
 * @param[in,out] e the object.
 * @param[in] t0 start time (finite, > 0).
 * @param[in] h0 initial step size in lambda units (> 0), or 0 for the default 0.05
 *            (DPM-Solver's h_init).
 * @param[in] n rows (>= 1).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, n = 0); ::SCORE_E_RANGE (@p t0 or @p h0 not
 *         finite or negative); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_init(score_evolve *e, double t0, double h0,
                                                  size_t n);

/**
 * @brief Starts a solve with per-row start times and a global row offset for the noise.
 * @param[in,out] e the object.
 * @param[in] h0 initial step size (lambda units, 0 = default).
 * @param[in] row0 global index of row 0 (noise of stochastic fixed steps).
 * @param[in] n rows. @param[in] t0 n start times (> 0).
 * @return as score_evolve_init().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_init_ex(score_evolve *e, double h0, size_t row0,
                                                     size_t n, const double *t0);

/**
 * @brief Forgets the solve (rows, times, counters). The next call must be an init.
 * @param[in,out] e the object.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_reset(score_evolve *e);

/**
 * @brief One adaptive attempt for every row that has not reached @p t1.
 *
 * Each such row proposes a step of size h (lambda units) towards @p t1 (clipped to land
 * exactly on @p t1); the control accepts or rejects it row by row and adjusts h. Accepted rows
 * advance (their x is updated), rejected rows keep their x and retry at the next call.
 * @param[in,out] e the object (initialised with the same @p n).
 * @param[in] c the controller. @param[in,out] step a deterministic step with an error estimate.
 * @param[in,out] sde the system. @param[in] t1 end time (finite, > 0; either direction).
 * @param[in] n rows (as in the init). @param[in,out] x n * dim values.
 * @param[in] rng a generator or NULL (unused by the built-in adaptive types).
 * @return ::SCORE_OK (progress; call again); ::SCORE_DONE (every row is at @p t1);
 *         ::SCORE_E_INVAL (NULL pointer, not initialised, a stochastic step or one without
 *         error estimate); ::SCORE_E_SHAPE (@p n or dimension mismatch);
 *         ::SCORE_E_NOPROGRESS (a row's step size fell below the control's h_min; the message
 *         names the row and time); errors of score_step_apply_ex() (x of the rows that failed
 *         is restored).
 * Thread-safety: object-exclusive (and step, sde).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_apply(score_evolve *e, const score_control *c,
                                                   score_step *step, score_sde *sde, double t1,
                                                   size_t n, float *x, const score_rng *rng);

/**
 * @brief One fixed step of every row from its current time to @p t_next.
 * @param[in,out] e the object. @param[in,out] step any step.
 * @param[in,out] sde the system. @param[in] t_next end time (0 = the data).
 * @param[in] n rows (as in the init). @param[in,out] x n * dim values.
 * @param[in] rng the generator (stochastic types) or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, not initialised); ::SCORE_E_SHAPE;
 *         errors of score_step_apply_ex().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_apply_fixed(score_evolve *e, score_step *step,
                                                         score_sde *sde, double t_next,
                                                         size_t n, float *x,
                                                         const score_rng *rng);

/**
 * @brief score_evolve_apply() on a double-precision state: x (n * dim doubles) and the
 *        step's stages and error estimate are kept in double; the step must have
 *        ::SCORE_STEP_PARAM_PRECISION = 64.
 * @param[in,out] e the object. @param[in] c the controller.
 * @param[in,out] step a deterministic step with an error estimate and precision 64.
 * @param[in,out] sde the system. @param[in] t1 end time. @param[in] n rows.
 * @param[in,out] x n * dim doubles. @param[in] rng a generator or NULL.
 * @return as score_evolve_apply(); ::SCORE_E_MISUSE (the step's precision is 32).
 * Thread-safety: object-exclusive (and step, sde).
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_apply_f64(score_evolve *e, const score_control *c,
                                                       score_step *step, score_sde *sde,
                                                       double t1, size_t n, double *x,
                                                       const score_rng *rng);

/**
 * @brief score_evolve_apply_fixed() on a double-precision state (the step's
 *        ::SCORE_STEP_PARAM_PRECISION = 64).
 * @param[in,out] e the object. @param[in,out] step a step with precision 64.
 * @param[in,out] sde the system. @param[in] t_next end time (0 = the data).
 * @param[in] n rows. @param[in,out] x n * dim doubles. @param[in] rng the generator or NULL.
 * @return as score_evolve_apply_fixed(); ::SCORE_E_MISUSE (the step's precision is 32).
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_apply_fixed_f64(score_evolve *e, score_step *step,
                                                             score_sde *sde, double t_next,
                                                             size_t n, double *x,
                                                             const score_rng *rng);

/**
 * @brief Current time of every row.
 * @param[in] e the object. @param[in] n rows (as in the init). @param[out] t_out n times.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, not initialised); ::SCORE_E_SHAPE (@p n).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_get_t(const score_evolve *e, size_t n, double *t_out);

/**
 * @brief Current step size (lambda units) of every row.
 * @param[in] e the object. @param[in] n rows. @param[out] h_out n step sizes.
 * @return as score_evolve_get_t().
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_evolve_get_h(const score_evolve *e, size_t n, double *h_out);

/**
 * @brief Accepted steps since the init: for adaptive stepping the largest count of any row
 *        (the number of batched steps the slowest row needed); for fixed stepping the number
 *        of fixed steps.
 * @param[in] e the object.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_evolve_get_steps(const score_evolve *e);

/**
 * @brief Rejected row-steps since the init, summed over rows.
 * @param[in] e the object.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_evolve_get_failed_steps(const score_evolve *e);

/**
 * @brief Batched model evaluations made through this object since the init.
 * @param[in] e the object.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_evolve_get_nfe(const score_evolve *e);

SCORE_END_DECLS

#endif /* LIBSCORE_EVOLVE_H */
