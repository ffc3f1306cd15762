/* Philox4x32-10 counter-based generator (Salmon, Moraes, Dror, Shaw, SC'11). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core-priv.h"
#include "rng-priv.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

#define SCORE__TWO_PI 6.283185307179586476925
#define SCORE__2POW32 4294967296.0
#define SCORE__MAX_ROWS ((uint64_t)1 << 32)
#define SCORE__MAX_COLS ((uint64_t)1 << 34)

void score__philox4x32_10(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

int score_rng_philox4x32_10(const uint32_t *key, const uint32_t *ctr, uint32_t *out)
{
    if (key == NULL || ctr == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "key, ctr or out is NULL");
    score__philox4x32_10(key, ctr, out);
    return SCORE_OK;
}

int score_rng_new(score_rng **out, int kind, uint64_t seed)
{
    score_rng *r;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (kind != SCORE_RNG_PHILOX4X32_10)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown RNG kind %d", kind);
    r = score__calloc(1, sizeof *r);
    if (r == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    r->kind = kind;
    r->seed = seed;
    *out = r;
    return SCORE_OK;
}

void score_rng_free(score_rng *rng)
{
    score__free(rng);
}

int score_rng_clone(score_rng **out, const score_rng *rng)
{
    score_rng *r;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (rng == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng is NULL");
    r = score__calloc(1, sizeof *r);
    if (r == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    *r = *rng;
    *out = r;
    return SCORE_OK;
}

const char *score_rng_name(const score_rng *rng)
{
    if (rng == NULL)
        return "(null)";
    return "philox4x32-10";
}

int score_rng_get_seed(const score_rng *rng, uint64_t *out)
{
    if (rng == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng or out is NULL");
    *out = rng->seed;
    return SCORE_OK;
}

int score_rng_set_stream(score_rng *rng, uint64_t stream)
{
    if (rng == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng is NULL");
    if (stream >= SCORE__MAX_ROWS)
        return score__error(SCORE_E_RANGE, __func__, "stream %llu >= 2^32", (unsigned long long)stream);
    rng->stream = (uint32_t)stream;
    return SCORE_OK;
}

int score_rng_get_stream(const score_rng *rng, uint64_t *out)
{
    if (rng == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng or out is NULL");
    *out = rng->stream;
    return SCORE_OK;
}

int score_rng_set_counter(score_rng *rng, uint64_t counter)
{
    if (rng == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng is NULL");
    if (counter >= SCORE__MAX_ROWS)
        return score__error(SCORE_E_RANGE, __func__, "counter %llu >= 2^32", (unsigned long long)counter);
    rng->counter = (uint32_t)counter;
    return SCORE_OK;
}

int score_rng_get_counter(const score_rng *rng, uint64_t *out)
{
    if (rng == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng or out is NULL");
    *out = rng->counter;
    return SCORE_OK;
}

int score_rng_advance(score_rng *rng, uint64_t delta)
{
    if (rng == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng is NULL");
    if (delta >= SCORE__MAX_ROWS - rng->counter)
        return score__error(SCORE_E_RANGE, __func__, "counter %u + %llu would reach 2^32",
                            rng->counter, (unsigned long long)delta);
    rng->counter += (uint32_t)delta;
    return SCORE_OK;
}

/* ---- block generation ---- */

static inline void block(const score_rng *rng, uint32_t counter, uint64_t row, uint64_t blk,
                         uint32_t w[4])
{
    uint32_t key[2] = {(uint32_t)rng->seed, (uint32_t)(rng->seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)row, counter, rng->stream};
    /* Columns above 2^34 are rejected, so blk < 2^32. */
    score__philox4x32_10(key, ctr, w);
}

static inline double u01(uint32_t w)
{
    return ((double)w + 0.5) / SCORE__2POW32;
}

/* Value of column c from the block words (normal transform). */
static inline double normal_of(const uint32_t w[4], unsigned lane)
{
    unsigned pair = lane >> 1;
    double u1 = u01(w[2 * pair]), u2 = u01(w[2 * pair + 1]);
    double r = sqrt(-2.0 * log(u1));
    return (lane & 1u) ? r * sin(SCORE__TWO_PI * u2) : r * cos(SCORE__TWO_PI * u2);
}

enum { GEN_NORMAL, GEN_UNIFORM, GEN_RADEMACHER, GEN_INDEX };

/* Generic block fill: out_f (float), out_d (double) or out_z (size_t); exactly one non-NULL. */
static void fill(const score_rng *rng, uint32_t counter, int gen, uint64_t m, size_t row0,
                 size_t nrows, size_t col0, size_t ncols, float *out_f, double *out_d,
                 size_t *out_z)
{
    for (size_t r = 0; r < nrows; r++) {
        uint64_t row = (uint64_t)row0 + r;
        uint64_t cur_blk = UINT64_MAX;
        uint32_t w[4] = {0, 0, 0, 0};
        for (size_t c = 0; c < ncols; c++) {
            uint64_t col = (uint64_t)col0 + c;
            uint64_t blk = col >> 2;
            unsigned lane = (unsigned)(col & 3u);
            double v = 0.0;
            size_t idx = r * ncols + c;
            if (blk != cur_blk) {
                block(rng, counter, row, blk, w);
                cur_blk = blk;
            }
            switch (gen) {
            case GEN_NORMAL: v = normal_of(w, lane); break;
            case GEN_UNIFORM: v = u01(w[lane]); break;
            case GEN_RADEMACHER: v = (w[lane] & 0x80000000u) ? 1.0 : -1.0; break;
            default:
                out_z[idx] = (size_t)(((uint64_t)w[lane] * m) >> 32);
                continue;
            }
            if (out_f)
                out_f[idx] = (float)v;
            else
                out_d[idx] = v;
        }
    }
}

static int check_block(const char *fn, const score_rng *rng, size_t row0, size_t nrows,
                       size_t col0, size_t ncols, const void *out)
{
    if (rng == NULL || (out == NULL && nrows != 0 && ncols != 0))
        return score__error(SCORE_E_INVAL, fn, "rng or out is NULL");
    if ((uint64_t)row0 > SCORE__MAX_ROWS || (uint64_t)nrows > SCORE__MAX_ROWS - (uint64_t)row0)
        return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, nrows);
    if ((uint64_t)col0 > SCORE__MAX_COLS || (uint64_t)ncols > SCORE__MAX_COLS - (uint64_t)col0)
        return score__error(SCORE_E_RANGE, fn, "columns %zu + %zu exceed 2^34", col0, ncols);
    if (nrows != 0 && ncols > SIZE_MAX / sizeof(double) / nrows)
        return score__error(SCORE_E_RANGE, fn, "block of %zu x %zu values is too large", nrows, ncols);
    return SCORE_OK;
}

int score_rng_fill_normal(const score_rng *rng, size_t row0, size_t nrows, size_t col0,
                          size_t ncols, float *out)
{
    int rc = check_block(__func__, rng, row0, nrows, col0, ncols, out);
    if (rc == SCORE_OK)
        fill(rng, rng->counter, GEN_NORMAL, 0, row0, nrows, col0, ncols, out, NULL, NULL);
    return rc;
}

int score_rng_fill_normal_f64(const score_rng *rng, size_t row0, size_t nrows, size_t col0,
                              size_t ncols, double *out)
{
    int rc = check_block(__func__, rng, row0, nrows, col0, ncols, out);
    if (rc == SCORE_OK)
        fill(rng, rng->counter, GEN_NORMAL, 0, row0, nrows, col0, ncols, NULL, out, NULL);
    return rc;
}

int score_rng_fill_uniform(const score_rng *rng, size_t row0, size_t nrows, size_t col0,
                           size_t ncols, float *out)
{
    int rc = check_block(__func__, rng, row0, nrows, col0, ncols, out);
    if (rc == SCORE_OK) {
        fill(rng, rng->counter, GEN_UNIFORM, 0, row0, nrows, col0, ncols, out, NULL, NULL);
        /* (w + 0.5) 2^-32 can round to 1.0f in float: keep the documented open interval. */
        for (size_t i = 0; i < nrows * ncols; i++)
            if (out[i] >= 1.0f)
                out[i] = 0x1.fffffep-1f;
    }
    return rc;
}

int score_rng_fill_uniform_f64(const score_rng *rng, size_t row0, size_t nrows, size_t col0,
                               size_t ncols, double *out)
{
    int rc = check_block(__func__, rng, row0, nrows, col0, ncols, out);
    if (rc == SCORE_OK)
        fill(rng, rng->counter, GEN_UNIFORM, 0, row0, nrows, col0, ncols, NULL, out, NULL);
    return rc;
}

int score_rng_fill_rademacher(const score_rng *rng, size_t row0, size_t nrows, size_t col0,
                              size_t ncols, float *out)
{
    int rc = check_block(__func__, rng, row0, nrows, col0, ncols, out);
    if (rc == SCORE_OK)
        fill(rng, rng->counter, GEN_RADEMACHER, 0, row0, nrows, col0, ncols, out, NULL, NULL);
    return rc;
}

int score_rng_fill_index(const score_rng *rng, size_t row0, size_t nrows, size_t col0,
                         size_t ncols, uint64_t m, size_t *out)
{
    int rc = check_block(__func__, rng, row0, nrows, col0, ncols, out);
    if (rc != SCORE_OK)
        return rc;
    if (m == 0 || m > SCORE__MAX_ROWS)
        return score__error(SCORE_E_RANGE, __func__, "upper bound %llu not in [1, 2^32]", (unsigned long long)m);
    fill(rng, rng->counter, GEN_INDEX, m, row0, nrows, col0, ncols, NULL, NULL, out);
    return SCORE_OK;
}

void score__rng_normal_at(const score_rng *rng, uint32_t counter, size_t row0, size_t nrows,
                          size_t col0, size_t ncols, float *out)
{
    fill(rng, counter, GEN_NORMAL, 0, row0, nrows, col0, ncols, out, NULL, NULL);
}

void score__rng_uniform_f64_at(const score_rng *rng, uint32_t counter, size_t row0,
                               size_t nrows, size_t col0, size_t ncols, double *out)
{
    fill(rng, counter, GEN_UNIFORM, 0, row0, nrows, col0, ncols, NULL, out, NULL);
}

void score__rng_rademacher_at(const score_rng *rng, uint32_t counter, size_t row0,
                              size_t nrows, size_t col0, size_t ncols, float *out)
{
    fill(rng, counter, GEN_RADEMACHER, 0, row0, nrows, col0, ncols, out, NULL, NULL);
}

/* ---- serialisation: "SRNG", version 1, kind, stream, seed, counter (32 bytes, LE) ---- */

#define STATE_SIZE 32u
static const unsigned char state_magic[4] = {'S', 'R', 'N', 'G'};

size_t score_rng_state_size(void)
{
    return STATE_SIZE;
}

int score_rng_state_get(const score_rng *rng, void *buf, size_t len)
{
    unsigned char *p = buf;
    if (rng == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng or buf is NULL");
    if (len < STATE_SIZE)
        return score__error(SCORE_E_SHAPE, __func__, "buffer of %zu bytes < %u", len, STATE_SIZE);
    memcpy(p, state_magic, 4);
    score__put_u32le(p + 4, 1u);
    score__put_u32le(p + 8, (uint32_t)rng->kind);
    score__put_u32le(p + 12, rng->stream);
    score__put_u64le(p + 16, rng->seed);
    score__put_u64le(p + 24, rng->counter);
    return SCORE_OK;
}

int score_rng_state_set(score_rng *rng, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t counter;
    if (rng == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "rng or buf is NULL");
    if (len != STATE_SIZE)
        return score__error(SCORE_E_SHAPE, __func__, "state of %zu bytes, expected %u", len, STATE_SIZE);
    if (memcmp(p, state_magic, 4) != 0 || score__get_u32le(p + 4) != 1u)
        return score__error(SCORE_E_FORMAT, __func__, "not a version-1 RNG state");
    if (score__get_u32le(p + 8) != SCORE_RNG_PHILOX4X32_10)
        return score__error(SCORE_E_FORMAT, __func__, "unknown RNG kind %u in state", score__get_u32le(p + 8));
    counter = score__get_u64le(p + 24);
    if (counter >= SCORE__MAX_ROWS)
        return score__error(SCORE_E_FORMAT, __func__, "counter %llu in state >= 2^32", (unsigned long long)counter);
    rng->kind = SCORE_RNG_PHILOX4X32_10;
    rng->stream = score__get_u32le(p + 12);
    rng->seed = score__get_u64le(p + 16);
    rng->counter = (uint32_t)counter;
    return SCORE_OK;
}
