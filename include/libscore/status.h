/**
 * @file status.h
 * @brief Status codes, their names and descriptions, and the per-thread last-error message.
 *
 * Every fallible libscore function returns an `int` status: ::SCORE_OK (0) on success, a
 * negative `SCORE_E_*` code on failure, or a positive informational code such as ::SCORE_DONE.
 * The numbers are pinned forever: new codes are only appended. Bindings must treat an unknown
 * negative value as a generic failure.
 */
#ifndef LIBSCORE_STATUS_H
#define LIBSCORE_STATUS_H

#include "common.h"

SCORE_BEGIN_DECLS

/** @brief Status codes returned by libscore functions (pinned values). */
enum score_status {
    SCORE_OK = 0,                /**< Success. */
    SCORE_DONE = 1,              /**< Success; an iteration (step loop, evolve) reached its end. */
    SCORE_E_GENERIC = -1,        /**< Generic failure. */
    SCORE_E_NOMEM = -2,          /**< Memory allocation failed. */
    SCORE_E_INVAL = -3,          /**< Invalid argument (including a NULL pointer or wrong parameter type). */
    SCORE_E_SHAPE = -4,          /**< Dimension or length mismatch. */
    SCORE_E_RANGE = -5,          /**< Value out of its documented bounds. */
    SCORE_E_UNSUPPORTED = -6,    /**< Unknown parameter, kind or operation not provided by this object. */
    SCORE_E_STAGE = -7,          /**< Call not allowed in the object's current lifecycle phase. */
    SCORE_E_CALLBACK = -8,       /**< A user callback reported failure. */
    SCORE_E_CANCELLED = -9,      /**< A progress callback asked to stop. */
    SCORE_E_NUMERIC = -10,       /**< A NaN or infinity was produced or given. */
    SCORE_E_NOPROGRESS = -11,    /**< Adaptive stepping failed: minimum step or step limit reached. */
    SCORE_E_MISUSE = -12,        /**< The API was called in an invalid way. */
    SCORE_E_BACKEND = -13,       /**< The BLAS backend failed. */
    SCORE_E_IO = -14,            /**< A file could not be read or written. */
    SCORE_E_FORMAT = -15         /**< A file or buffer is malformed or inconsistent. */
};

/**
 * @brief Returns a static English description of a status code.
 *
 * @param[in] status any integer; unknown values get a generic description.
 * @return a static, NUL-terminated string; never NULL.
 *
 * Ownership: the string is static; do not free it.
 * Thread-safety: safe.
 * @since 0.1
 * @see score_status_name
 */
SCORE_API const char *score_strerror(int status);

/**
 * @brief Returns the identifier of a status code, e.g. `"SCORE_E_RANGE"`, for logs.
 *
 * @param[in] status any integer; unknown values give `"SCORE_E_UNKNOWN"` (negative) or
 *                   `"SCORE_UNKNOWN"` (positive).
 * @return a static, NUL-terminated string; never NULL.
 *
 * Ownership: the string is static; do not free it.
 * Thread-safety: safe.
 * @since 0.1
 * @see score_strerror
 */
SCORE_API const char *score_status_name(int status);

/**
 * @brief Returns the detail message of the last failing libscore call on this thread.
 *
 * Every failure writes a message naming the function and the reason, for example
 * `"score_rng_new: unknown RNG kind 7"`. Do not use the message to detect errors: the returned
 * status is authoritative, and the message may be stale (it is only overwritten by the next
 * failure). Bindings must read it on the same OS thread, straight after the failing call.
 *
 * @return a NUL-terminated string, `""` when nothing has failed; never NULL.
 *
 * Ownership: owned by libscore; valid until the next failing libscore call on this thread.
 * Thread-safety: safe (the message is thread-local).
 * @since 0.1
 * @see score_last_error_clear
 */
SCORE_API const char *score_last_error_message(void);

/**
 * @brief Clears this thread's last-error message (score_last_error_message() then returns `""`).
 *
 * Thread-safety: safe (the message is thread-local).
 * @since 0.1
 */
SCORE_API void score_last_error_clear(void);

SCORE_END_DECLS

#endif /* LIBSCORE_STATUS_H */
