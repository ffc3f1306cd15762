/* Internal helpers shared by every module: error reporting, checked allocation, parameter
 * tables. Never installed. */
#ifndef LIBSCORE_CORE_PRIV_H
#define LIBSCORE_CORE_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "libscore/common.h"
#include "libscore/param.h"
#include "libscore/status.h"

#if defined(__GNUC__)
#  define SCORE__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define SCORE__PRINTF(a, b)
#endif

/* Records "fn: message" as this thread's last error and returns status (which must be < 0).
 * Use as: return score__error(SCORE_E_INVAL, __func__, "x is NULL"); */
int score__error(int status, const char *fn, const char *fmt, ...) SCORE__PRINTF(3, 4);

/* Checked allocation: overflow-safe n * size, zero-filled; NULL on failure or n*size == 0. */
void *score__calloc(size_t n, size_t size);
void score__free(void *p);
/* Overflow-checked multiplication: returns 0 and sets *out, or -1 on overflow. */
int score__mul_size(size_t a, size_t b, size_t *out);

/* Largest data dimension of the objects that keep one (sde, steps, evolve, sampler,
 * likelihood, loss): 2^24 values per row keeps every n * dim product of a batch of up to 2^32
 * rows within 64 bits and every column index of the noise generator (dim * blocks) within its
 * 2^34 columns. */
#define SCORE__MAX_DIM ((size_t)1 << 24)
/* The dimension check of those objects' constructors: SCORE_E_RANGE with a message naming fn
 * unless dim is in [1, SCORE__MAX_DIM]. */
int score__check_dim(const char *fn, size_t dim);

/* Returns 1 if every value is finite. */
int score__all_finite_f32(size_t n, const float *x);
int score__all_finite_f64(size_t n, const double *x);

/* ---- parameter tables (STYLE C.6) ------------------------------------------------------ */
typedef struct score__param_desc {
    int id;            /* pinned id */
    const char *name;  /* "sigma_min" */
    int type;          /* SCORE_PARAM_F64 / SCORE_PARAM_I64 */
    double min, max;   /* inclusive bounds */
    double def;        /* default */
    const char *doc;   /* one line: unit and meaning */
} score__param_desc;

typedef union score__param_val {
    double f;
    int64_t i;
} score__param_val;

/* The one way to read a parameter value inside the library: the value of parameter `id` in
 * `vals`, an array laid out like a table whose ids run consecutively from `first`. */
#define SCORE__PARAM_F64(vals, first, id) ((vals)[(id) - (first)].f)
#define SCORE__PARAM_I64(vals, first, id) ((vals)[(id) - (first)].i)

/* Table lookup for an object kind (defined in param.c, which lists every module's table). */
const score__param_desc *score__param_table(int kind, size_t *n_out);
/* Index of id in table or -1. */
int score__param_index(const score__param_desc *tab, size_t n, int id);
/* Fill vals with the defaults of tab. */
void score__param_defaults(const score__param_desc *tab, size_t n, score__param_val *vals);
/* Typed, range-checked set/get on a value array laid out like tab. fn names the public caller
 * for the error message. */
int score__param_set_f64(const char *fn, const score__param_desc *tab, size_t n,
                         score__param_val *vals, int id, double value);
int score__param_set_i64(const char *fn, const score__param_desc *tab, size_t n,
                         score__param_val *vals, int id, int64_t value);
int score__param_get_f64(const char *fn, const score__param_desc *tab, size_t n,
                         const score__param_val *vals, int id, double *out);
int score__param_get_i64(const char *fn, const score__param_desc *tab, size_t n,
                         const score__param_val *vals, int id, int64_t *out);

/* Defines the four typed parameter accessors `PREFIX_set_f64`, `_set_i64`, `_get_f64` and
 * `_get_i64` of an object type whose values live in `obj->params`, laid out like `table`
 * (`count` entries), for objects without a stage rule. `what` names the handle in messages. */
#define SCORE__DEFINE_PARAM_ACCESSORS(prefix, type, what, table, count)                       \
    int prefix##_set_f64(type *obj, int param, double value)                                   \
    {                                                                                          \
        if (obj == NULL)                                                                       \
            return score__error(SCORE_E_INVAL, #prefix "_set_f64", what " is NULL");           \
        return score__param_set_f64(#prefix "_set_f64", table, count, obj->params, param,      \
                                    value);                                                    \
    }                                                                                          \
    int prefix##_set_i64(type *obj, int param, int64_t value)                                  \
    {                                                                                          \
        if (obj == NULL)                                                                       \
            return score__error(SCORE_E_INVAL, #prefix "_set_i64", what " is NULL");           \
        return score__param_set_i64(#prefix "_set_i64", table, count, obj->params, param,      \
                                    value);                                                    \
    }                                                                                          \
    int prefix##_get_f64(const type *obj, int param, double *out)                              \
    {                                                                                          \
        if (obj == NULL)                                                                       \
            return score__error(SCORE_E_INVAL, #prefix "_get_f64", what " is NULL");           \
        return score__param_get_f64(#prefix "_get_f64", table, count, obj->params, param,      \
                                    out);                                                      \
    }                                                                                          \
    int prefix##_get_i64(const type *obj, int param, int64_t *out)                             \
    {                                                                                          \
        if (obj == NULL)                                                                       \
            return score__error(SCORE_E_INVAL, #prefix "_get_i64", what " is NULL");           \
        return score__param_get_i64(#prefix "_get_i64", table, count, obj->params, param,      \
                                    out);                                                      \
    }

/* Little-endian byte helpers for serialisation. */
void score__put_u32le(unsigned char *p, uint32_t v);
void score__put_u64le(unsigned char *p, uint64_t v);
uint32_t score__get_u32le(const unsigned char *p);
uint64_t score__get_u64le(const unsigned char *p);

#endif /* LIBSCORE_CORE_PRIV_H */
