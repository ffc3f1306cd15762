/**
 * @file param.h
 * @brief Introspection of the typed parameters that configure every libscore object.
 *
 * Every configurable object (schedule, model, loss, optimizer, trainer, sampler, ...) is
 * configured through `score_<object>_set_f64` / `_set_i64` and read back with `_get_f64` /
 * `_get_i64`, keyed by a pinned integer id. Ids of object kind `k` lie in `[100 k, 100 k + 99]`;
 * experimental ids start at 10000. The functions here describe those parameters (name, type,
 * bounds, default) so that bindings can build keyword arguments and range checks at load time.
 *
 * Setting an `i64` parameter with `_set_f64` (or the converse) fails with ::SCORE_E_INVAL;
 * a value outside the bounds fails with ::SCORE_E_RANGE; an unknown id with
 * ::SCORE_E_UNSUPPORTED.
 */
#ifndef LIBSCORE_PARAM_H
#define LIBSCORE_PARAM_H

#include "common.h"

SCORE_BEGIN_DECLS

/** @brief Kinds of configurable objects (pinned values); parameter ids of kind k are 100 k .. 100 k + 99. */
enum score_object_kind {
    SCORE_OBJECT_SAMPLER = 1,    /**< score_sampler (ids 100-199). */
    SCORE_OBJECT_SCHEDULE = 2,   /**< score_schedule (ids 200-299). */
    SCORE_OBJECT_MODEL = 3,      /**< score_model (ids 300-399). */
    SCORE_OBJECT_LOSS = 4,       /**< score_loss (ids 400-499). */
    SCORE_OBJECT_OPTIMIZER = 5,  /**< score_optimizer (ids 500-599). */
    SCORE_OBJECT_TRAINER = 6,    /**< score_trainer (ids 600-699). */
    SCORE_OBJECT_LIKELIHOOD = 7, /**< score_likelihood (ids 700-799). */
    SCORE_OBJECT_SDE = 8,        /**< score_sde (ids 800-899). */
    SCORE_OBJECT_EMA = 9,        /**< score_ema (ids 900-999). */
    SCORE_OBJECT_CONTROL = 10,   /**< score_control (ids 1000-1099). */
    SCORE_OBJECT_STEP = 11       /**< score_step (ids 1100-1199). */
};

/** @brief Value types of parameters (pinned values). */
enum score_param_type {
    SCORE_PARAM_F64 = 1, /**< double; set with `_set_f64`. */
    SCORE_PARAM_I64 = 2  /**< int64_t; set with `_set_i64` (also used for enumerations and flags). */
};

/**
 * @brief Number of parameters an object kind has.
 *
 * @param[in] kind a ::score_object_kind value.
 * @return the count; 0 for an unknown kind or a kind without parameters.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_param_count(int kind);

/**
 * @brief The id of the @p index-th parameter of an object kind (in increasing id order).
 *
 * @param[in]  kind  a ::score_object_kind value.
 * @param[in]  index 0 .. score_param_count(kind) - 1.
 * @param[out] out   the parameter id.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if @p out is NULL; ::SCORE_E_UNSUPPORTED for an unknown
 *         kind; ::SCORE_E_RANGE if @p index is too large.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_param_id_at(int kind, size_t index, int *out);

/**
 * @brief Type, bounds and default of one parameter.
 *
 * Bounds are inclusive. For ::SCORE_PARAM_I64 parameters the bounds and default are exact
 * integers stored in doubles. Any output pointer may be NULL.
 *
 * @param[in]  kind        a ::score_object_kind value.
 * @param[in]  param       the parameter id.
 * @param[out] type_out    ::SCORE_PARAM_F64 or ::SCORE_PARAM_I64.
 * @param[out] min_out     smallest accepted value.
 * @param[out] max_out     largest accepted value.
 * @param[out] default_out value an object starts with.
 * @return ::SCORE_OK; ::SCORE_E_UNSUPPORTED for an unknown kind or id.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_param_info(int kind, int param, int *type_out,
                                                 double *min_out, double *max_out,
                                                 double *default_out);

/**
 * @brief Name of a parameter, e.g. `"sigma_min"`.
 *
 * @param[in] kind  a ::score_object_kind value.
 * @param[in] param the parameter id.
 * @return a static string; NULL for an unknown kind or id.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_param_name(int kind, int param);

/**
 * @brief Looks a parameter up by name.
 *
 * @param[in]  kind a ::score_object_kind value.
 * @param[in]  name the parameter name (exact, case-sensitive).
 * @param[out] out  the parameter id.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if @p name or @p out is NULL; ::SCORE_E_UNSUPPORTED if
 *         the kind or the name is unknown.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_param_from_name(int kind, const char *name, int *out);

/**
 * @brief One-line description of a parameter (unit, meaning), for help texts.
 *
 * @param[in] kind  a ::score_object_kind value.
 * @param[in] param the parameter id.
 * @return a static string; NULL for an unknown kind or id.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_param_doc(int kind, int param);

SCORE_END_DECLS

#endif /* LIBSCORE_PARAM_H */
