#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "core-priv.h"

#define SCORE__MSG_LEN 512

static _Thread_local char last_error[SCORE__MSG_LEN];

const char *score_strerror(int status)
{
    switch (status) {
    case SCORE_OK: return "success";
    case SCORE_DONE: return "iteration finished";
    case SCORE_E_GENERIC: return "generic failure";
    case SCORE_E_NOMEM: return "out of memory";
    case SCORE_E_INVAL: return "invalid argument";
    case SCORE_E_SHAPE: return "dimension or length mismatch";
    case SCORE_E_RANGE: return "value out of range";
    case SCORE_E_UNSUPPORTED: return "unsupported parameter, kind or operation";
    case SCORE_E_STAGE: return "not allowed in the object's current phase";
    case SCORE_E_CALLBACK: return "user callback failed";
    case SCORE_E_CANCELLED: return "cancelled by the progress callback";
    case SCORE_E_NUMERIC: return "non-finite value (NaN or infinity)";
    case SCORE_E_NOPROGRESS: return "adaptive stepping made no progress";
    case SCORE_E_MISUSE: return "API misuse";
    case SCORE_E_BACKEND: return "BLAS backend failure";
    case SCORE_E_IO: return "input/output error";
    case SCORE_E_FORMAT: return "malformed or inconsistent data";
    default: return status < 0 ? "unknown error" : "unknown informational status";
    }
}

const char *score_status_name(int status)
{
    switch (status) {
    case SCORE_OK: return "SCORE_OK";
    case SCORE_DONE: return "SCORE_DONE";
    case SCORE_E_GENERIC: return "SCORE_E_GENERIC";
    case SCORE_E_NOMEM: return "SCORE_E_NOMEM";
    case SCORE_E_INVAL: return "SCORE_E_INVAL";
    case SCORE_E_SHAPE: return "SCORE_E_SHAPE";
    case SCORE_E_RANGE: return "SCORE_E_RANGE";
    case SCORE_E_UNSUPPORTED: return "SCORE_E_UNSUPPORTED";
    case SCORE_E_STAGE: return "SCORE_E_STAGE";
    case SCORE_E_CALLBACK: return "SCORE_E_CALLBACK";
    case SCORE_E_CANCELLED: return "SCORE_E_CANCELLED";
    case SCORE_E_NUMERIC: return "SCORE_E_NUMERIC";
    case SCORE_E_NOPROGRESS: return "SCORE_E_NOPROGRESS";
    case SCORE_E_MISUSE: return "SCORE_E_MISUSE";
    case SCORE_E_BACKEND: return "SCORE_E_BACKEND";
    case SCORE_E_IO: return "SCORE_E_IO";
    case SCORE_E_FORMAT: return "SCORE_E_FORMAT";
    default: return status < 0 ? "SCORE_E_UNKNOWN" : "SCORE_UNKNOWN";
    }
}

const char *score_last_error_message(void)
{
    return last_error;
}

void score_last_error_clear(void)
{
    last_error[0] = '\0';
}

int score__error(int status, const char *fn, const char *fmt, ...)
{
    int k = snprintf(last_error, sizeof last_error, "%s: ", fn ? fn : "libscore");
    if (k < 0)
        k = 0;
    if ((size_t)k < sizeof last_error) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(last_error + k, sizeof last_error - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return status;
}

void score_free(void *ptr)
{
    free(ptr);
}

int score__mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

int score__check_dim(const char *fn, size_t dim)
{
    if (dim == 0 || dim > SCORE__MAX_DIM)
        return score__error(SCORE_E_RANGE, fn, "dim %zu not in [1, 2^24]", dim);
    return SCORE_OK;
}

void *score__calloc(size_t n, size_t size)
{
    size_t bytes;
    if (score__mul_size(n, size, &bytes) != 0 || bytes == 0)
        return NULL;
    return calloc(n, size);
}

void score__free(void *p)
{
    free(p);
}

int score__all_finite_f32(size_t n, const float *x)
{
    /* Branch-free over chunks (the exponent bits of NaN and infinity are all ones), so that
     * the compiler vectorizes the scan of large arrays (parameter vectors every step). */
    for (size_t i = 0; i < n;) {
        size_t m = n - i < 4096 ? n - i : 4096;
        unsigned bad = 0;
        for (size_t j = 0; j < m; j++) {
            uint32_t u;
            memcpy(&u, x + i + j, sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad)
            return 0;
        i += m;
    }
    return 1;
}

int score__all_finite_f64(size_t n, const double *x)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

void score__put_u32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void score__put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t score__get_u32le(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

uint64_t score__get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
