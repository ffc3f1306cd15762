/**
 * @file control.h
 * @brief Adaptive step-size control from an embedded error estimate (the
 * `gsl_odeiv2_control` layer, STYLE C.11).
 *
 * Error measure of one row (Hairer, Norsett & Wanner, "Solving ODEs I", II.4): with the
 * values x (start of the step), x' (proposed end) and the step's error estimate e,
 *
 *     err = sqrt( (1/dim) sum_j ( e_j / (atol + rtol max(|x_j|, |x'_j|)) )^2 )
 *
 * and the step is accepted when err <= 1. The new step size is
 * `h' = h min(fac_max, max(fac_min, safety err^(-1/(q+1))))` with q the order of the step's
 * error estimate (score_step_error_order()); after a rejection h' <= h. Step sizes are in
 * units of the independent variable of the caller; score_evolve uses the half log-SNR lambda.
 *
 * Rows are controlled independently (score_evolve keeps one step size per row), so an
 * adaptive solve of a row does not depend on the other rows of the batch.
 */
#ifndef LIBSCORE_CONTROL_H
#define LIBSCORE_CONTROL_H

#include "common.h"

SCORE_BEGIN_DECLS

/** @brief Opaque step-size controller (tolerances and factors). */
typedef struct score_control score_control;

/** @brief Decisions of score_control_hadjust() (pinned values). */
enum score_control_decision {
    SCORE_CONTROL_HADJ_NIL = 0, /**< Step accepted; step size not increased. */
    SCORE_CONTROL_HADJ_DEC = 1, /**< Step rejected (err > 1); step size decreased. */
    SCORE_CONTROL_HADJ_INC = 2  /**< Step accepted; step size increased. */
};

/** @brief Control parameters (pinned ids; object kind ::SCORE_OBJECT_CONTROL, 1000-1099).
 *  They may be changed at any time. */
enum score_control_param {
    SCORE_CONTROL_PARAM_RTOL = 1000,    /**< f64: relative tolerance, [0, 1], default 1e-5 (score_sde); rtol + atol must be > 0. */
    SCORE_CONTROL_PARAM_ATOL = 1001,    /**< f64: absolute tolerance, [0, 1e6], default 1e-5. */
    SCORE_CONTROL_PARAM_SAFETY = 1002,  /**< f64: safety factor, [0.01, 1], default 0.9. */
    SCORE_CONTROL_PARAM_FAC_MIN = 1003, /**< f64: smallest step-size factor, [1e-4, 1], default 0.2. */
    SCORE_CONTROL_PARAM_FAC_MAX = 1004, /**< f64: largest step-size factor, [1, 1000], default 10. */
    SCORE_CONTROL_PARAM_H_MIN = 1005,   /**< f64: smallest step size; a rejected step that would go below fails the solve with ::SCORE_E_NOPROGRESS, [0, 1e6], default 1e-10. */
    SCORE_CONTROL_PARAM_H_MAX = 1006,   /**< f64: largest step size, [0, 1e6], default 0 = unlimited. */
    /** i64: a ::score_control_norm: over what the error of an attempt is measured, 0..1,
     *  default 0 (::SCORE_CONTROL_NORM_ROW). @since 0.2 */
    SCORE_CONTROL_PARAM_NORM = 1007
};

/**
 * @brief What one error value of the adaptive engine (score_evolve, the sampler driver's
 * adaptive mode, the likelihood) measures (::SCORE_CONTROL_PARAM_NORM).
 *
 * Both are the scaled RMS `sqrt(mean (e / (atol + rtol max(|y|, |y'|)))^2)`; they differ in
 * the values the mean runs over and therefore in which rows share a step size.
 */
enum score_control_norm {
    /** Per row: each row is accepted or rejected on its own error and keeps its own step
     *  size, so a row's result does not depend on the other rows of the batch (any split of
     *  the rows gives the same bits). A batch costs the number of attempts of its slowest
     *  row in batched model calls, but each call evaluates only the rows still moving. */
    SCORE_CONTROL_NORM_ROW = 0,
    /** Over the whole batch: the mean runs over every value of every row still moving (the
     *  flattened state, as scipy's solve_ivp and score_sde's ODE sampler measure it), and
     *  every such row shares the accept decision and the next step size. Rows that start
     *  together stay together: fewer batched calls than ::SCORE_CONTROL_NORM_ROW at the same
     *  tolerance when the rows are alike, but a row's result then depends on the other rows
     *  (the batch split changes it). */
    SCORE_CONTROL_NORM_BATCH = 1
};

/**
 * @brief Creates a controller with default parameters.
 * @param[out] out the controller; NULL on failure.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_NOMEM.
 * Ownership: free with score_control_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_control_new(score_control **out);

/**
 * @brief Convenience constructor with tolerances (GSL's `control_y_new(eps_abs, eps_rel)`).
 * @param[out] out the controller. @param[in] atol absolute tolerance. @param[in] rtol relative tolerance.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_RANGE (a tolerance out of
 *         bounds, or both 0); ::SCORE_E_NOMEM.
 * Ownership: free with score_control_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_control_new_tol(score_control **out, double atol,
                                                      double rtol);

/**
 * @brief Frees a controller. NULL is a no-op.
 * @param[in] c the controller.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_control_free(score_control *c);

/**
 * @brief Sets a parameter (::score_control_param).
 * @param[in,out] c the controller. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL); ::SCORE_E_RANGE (out of bounds, NaN, or
 *         rtol = atol = 0); ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_control_set_f64(score_control *c, int param, double value);

/**
 * @brief Reads a parameter.
 * @param[in] c the controller. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL); ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_control_get_f64(const score_control *c, int param,
                                                      double *out);

/**
 * @brief Sets an integer parameter (::SCORE_CONTROL_PARAM_NORM).
 * @param[in,out] c the controller. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or a floating-point parameter);
 *         ::SCORE_E_RANGE (out of bounds); ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_control_set_i64(score_control *c, int param,
                                                      int64_t value);

/**
 * @brief Reads an integer parameter.
 * @param[in] c the controller. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or a floating-point parameter);
 *         ::SCORE_E_UNSUPPORTED (unknown id).
 * Thread-safety: safe for concurrent readers.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_control_get_i64(const score_control *c, int param,
                                                      int64_t *out);

/**
 * @brief Scaled error of each row (the formula in control.h), accumulated in double.
 * @param[in] c the controller. @param[in] n rows. @param[in] dim values per row.
 * @param[in] x n * dim values at the start of the step.
 * @param[in] x_new n * dim proposed values. @param[in] xerr n * dim error estimates.
 * @param[out] err n scaled errors (+infinity where a value is not finite).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, dim = 0); ::SCORE_E_RANGE (n * dim does
 *         not fit in a size_t).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_control_error(const score_control *c, size_t n, size_t dim,
                                                    const float *x, const float *x_new,
                                                    const float *xerr, double *err);

/**
 * @brief Accept/reject decision and new step size from a scaled error.
 * @param[in] c the controller.
 * @param[in] error_order order q of the error estimate (>= 1); the exponent is 1/(q+1).
 * @param[in] err scaled error (>= 0; NaN or infinity is a rejection with the smallest factor).
 * @param[in,out] h the step size (> 0), replaced by the proposal (clamped to h_max).
 * @param[out] decision_out a ::score_control_decision, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, @p h not finite and positive);
 *         ::SCORE_E_RANGE (@p error_order < 1).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_control_hadjust(const score_control *c, int error_order,
                                                      double err, double *h,
                                                      int *decision_out);

SCORE_END_DECLS

#endif /* LIBSCORE_CONTROL_H */
