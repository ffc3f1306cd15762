/**
 * @file rng.h
 * @brief Counter-based random numbers (Philox4x32-10) that do not depend on batch layout.
 *
 * A `score_rng` holds a 64-bit seed, a 32-bit stream id and a 32-bit counter (the "step").
 * Every value is a pure function of (seed, stream, counter, row, column): the fill functions
 * produce a block of rows x columns, and row `r`, column `c` of a block starting at
 * (`row0`, `col0`) is always value (`row0 + r`, `col0 + c`). Numbers for a row are therefore the
 * same whether rows are drawn in one call, several calls, or on several threads.
 *
 * Mapping to Philox4x32-10: key = (seed & 0xffffffff, seed >> 32); counter words
 * = (column / 4, row, counter, stream). Each Philox output block gives four 32-bit words w,
 * used for columns 4k .. 4k+3:
 * - uniform: `u = (w + 0.5) * 2^-32` in (0, 1) (computed in double, then rounded to float);
 * - normal: Box–Muller in double on word pairs (w0, w1) and (w2, w3): with u1, u2 uniform as
 *   above, `r = sqrt(-2 ln u1)`, columns 4k / 4k+2 get `r cos(2 pi u2)`, columns 4k+1 / 4k+3 get
 *   `r sin(2 pi u2)` (float fills round this double value). The logarithm, sine and cosine are
 *   the library's own, computed with IEEE double +, -, *, / and sqrt only, so the values are the
 *   same on every CPU: `ln u1` from the binary exponent of u1 and a series in `s = f / (2 + f)`
 *   (`f` = mantissa - 1, exact, so u1 near 1 keeps full relative precision); sin and cos after
 *   an exact reduction of the angle in turns (`u2 - q/4`, q the nearest quarter), by their
 *   Taylor series to degree 17 / 16. Each normal is within a few units in the last place
 *   (double; 3.1 at most, measured) of the exact value of the formula;
 *   `|z| <= sqrt(66 ln 2) = 6.76` (u1 >= 2^-33);
 * - Rademacher: +1 if the top bit of w is set, else -1;
 * - index in [0, m): `floor(w * m / 2^32)` (bias below m / 2^32).
 *
 * Limits: rows and the counter are 32-bit (< 2^32); a row has at most 2^34 columns.
 * The fill functions never change the handle; score_rng_advance() moves the counter.
 */
#ifndef LIBSCORE_RNG_H
#define LIBSCORE_RNG_H

#include "common.h"

SCORE_BEGIN_DECLS

/** @brief Opaque random-number generator handle. */
typedef struct score_rng score_rng;

/** @brief RNG algorithms (pinned values). */
enum score_rng_kind {
    SCORE_RNG_PHILOX4X32_10 = 1 /**< Philox4x32 with 10 rounds (Salmon et al., SC'11). */
};

/**
 * @brief Creates a generator with the given seed, stream 0 and counter 0.
 *
 * @param[out] out  the new handle; NULL on failure.
 * @param[in]  kind ::SCORE_RNG_PHILOX4X32_10.
 * @param[in]  seed any 64-bit value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if @p out is NULL; ::SCORE_E_UNSUPPORTED for an unknown
 *         kind; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the handle; release it with score_rng_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_new(score_rng **out, int kind, uint64_t seed);

/**
 * @brief Frees a generator. NULL is a no-op.
 * @param[in] rng the handle.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_rng_free(score_rng *rng);

/**
 * @brief Creates an independent copy of a generator (same seed, stream and counter).
 * @param[out] out the copy; NULL on failure.
 * @param[in]  rng the generator to copy.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the copy.
 * Thread-safety: safe for concurrent readers of @p rng.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_clone(score_rng **out, const score_rng *rng);

/**
 * @brief Name of the generator's algorithm, e.g. `"philox4x32-10"`.
 * @param[in] rng the handle (NULL gives `"(null)"`).
 * @return a static string; never NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_rng_name(const score_rng *rng);

/**
 * @brief Reads the seed.
 * @param[in] rng the handle.
 * @param[out] out the seed.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if an argument is NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_get_seed(const score_rng *rng, uint64_t *out);

/**
 * @brief Selects the stream (independent sequences for the same seed).
 * @param[in,out] rng the handle.
 * @param[in] stream 0 .. 2^32 - 1.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_RANGE if @p stream >= 2^32.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_set_stream(score_rng *rng, uint64_t stream);

/**
 * @brief Reads the stream id.
 * @param[in] rng the handle.
 * @param[out] out the stream.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_get_stream(const score_rng *rng, uint64_t *out);

/**
 * @brief Sets the counter (the "step" coordinate of every value).
 * @param[in,out] rng the handle.
 * @param[in] counter 0 .. 2^32 - 1.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_RANGE if @p counter >= 2^32.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_set_counter(score_rng *rng, uint64_t counter);

/**
 * @brief Reads the counter.
 * @param[in] rng the handle.
 * @param[out] out the counter.
 * @return ::SCORE_OK; ::SCORE_E_INVAL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_get_counter(const score_rng *rng, uint64_t *out);

/**
 * @brief Moves the counter forward by @p delta, so that later fills give fresh numbers.
 * @param[in,out] rng the handle.
 * @param[in] delta steps to advance.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_RANGE if the counter would reach 2^32
 *         (the counter is then unchanged).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_advance(score_rng *rng, uint64_t delta);

/**
 * @brief Fills a block of standard-normal float32 values at the current counter.
 *
 * `out[r * ncols + c]` = normal(row0 + r, col0 + c). Does not change @p rng.
 *
 * @param[in]  rng   the handle.
 * @param[in]  row0  first row index.
 * @param[in]  nrows number of rows; row0 + nrows must be <= 2^32.
 * @param[in]  col0  first column index.
 * @param[in]  ncols number of columns per row; col0 + ncols must be <= 2^34.
 * @param[out] out   nrows * ncols floats, row-major.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if a pointer is NULL; ::SCORE_E_RANGE if a limit is exceeded.
 * Thread-safety: safe for concurrent fills from one handle (it is only read).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_fill_normal(const score_rng *rng, size_t row0,
                                                      size_t nrows, size_t col0, size_t ncols,
                                                      float *out);

/**
 * @brief Fills a block of standard-normal values in double precision (same values as
 * score_rng_fill_normal() before rounding to float).
 * @param[in] rng the handle. @param[in] row0 first row. @param[in] nrows rows.
 * @param[in] col0 first column. @param[in] ncols columns. @param[out] out nrows * ncols doubles.
 * @return as score_rng_fill_normal().
 * Thread-safety: safe for concurrent fills.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_fill_normal_f64(const score_rng *rng, size_t row0,
                                                          size_t nrows, size_t col0,
                                                          size_t ncols, double *out);

/**
 * @brief Fills a block of uniform (0, 1) float32 values (0 and 1 excluded) at the current counter.
 * @param[in] rng the handle. @param[in] row0 first row. @param[in] nrows rows.
 * @param[in] col0 first column. @param[in] ncols columns. @param[out] out nrows * ncols floats.
 * @return as score_rng_fill_normal().
 * Thread-safety: safe for concurrent fills.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_fill_uniform(const score_rng *rng, size_t row0,
                                                       size_t nrows, size_t col0, size_t ncols,
                                                       float *out);

/**
 * @brief Fills a block of uniform (0, 1) doubles, `(w + 0.5) * 2^-32`.
 * @param[in] rng the handle. @param[in] row0 first row. @param[in] nrows rows.
 * @param[in] col0 first column. @param[in] ncols columns. @param[out] out nrows * ncols doubles.
 * @return as score_rng_fill_normal().
 * Thread-safety: safe for concurrent fills.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_fill_uniform_f64(const score_rng *rng, size_t row0,
                                                           size_t nrows, size_t col0,
                                                           size_t ncols, double *out);

/**
 * @brief Fills a block of Rademacher (+1 / -1, equal probability) float32 values.
 * @param[in] rng the handle. @param[in] row0 first row. @param[in] nrows rows.
 * @param[in] col0 first column. @param[in] ncols columns. @param[out] out nrows * ncols floats.
 * @return as score_rng_fill_normal().
 * Thread-safety: safe for concurrent fills.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_fill_rademacher(const score_rng *rng, size_t row0,
                                                          size_t nrows, size_t col0,
                                                          size_t ncols, float *out);

/**
 * @brief Fills a block of integers uniform in [0, @p m).
 * @param[in] rng the handle. @param[in] row0 first row. @param[in] nrows rows.
 * @param[in] col0 first column. @param[in] ncols columns.
 * @param[in] m upper bound, 1 .. 2^32.
 * @param[out] out nrows * ncols indices.
 * @return as score_rng_fill_normal(); ::SCORE_E_RANGE if @p m is 0 or above 2^32.
 * Thread-safety: safe for concurrent fills.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_fill_index(const score_rng *rng, size_t row0,
                                                     size_t nrows, size_t col0, size_t ncols,
                                                     uint64_t m, size_t *out);

/**
 * @brief Raw Philox4x32-10 block: the four output words for a key and a counter.
 *
 * Exposed for known-answer tests and for bindings that want the raw stream.
 *
 * @param[in]  key  2 words.
 * @param[in]  ctr  4 words.
 * @param[out] out  4 words.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if a pointer is NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_philox4x32_10(const uint32_t *key, const uint32_t *ctr,
                                                        uint32_t *out);

/**
 * @brief Size in bytes of a serialised generator state (for checkpoints).
 * @return the number of bytes score_rng_state_get() writes (currently 32).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_rng_state_size(void);

/**
 * @brief Serialises kind, seed, stream and counter into @p buf (little-endian, versioned).
 * @param[in]  rng the handle.
 * @param[out] buf destination.
 * @param[in]  len size of @p buf; must be at least score_rng_state_size().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE if @p len is too small.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_state_get(const score_rng *rng, void *buf, size_t len);

/**
 * @brief Restores a state written by score_rng_state_get().
 * @param[in,out] rng the handle.
 * @param[in] buf the serialised state.
 * @param[in] len its length; must equal score_rng_state_size().
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_SHAPE for a wrong length; ::SCORE_E_FORMAT if
 *         the bytes are not a valid state (the handle is then unchanged).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_rng_state_set(score_rng *rng, const void *buf, size_t len);

SCORE_END_DECLS

#endif /* LIBSCORE_RNG_H */
