/* Philox4x32-10 counter-based generator (Salmon, Moraes, Dror, Shaw, SC'11).
 *
 * DESIGN: written here on purpose, not taken from a library. It is counter-based: a value is a
 * pure function of (seed, stream, counter, lane), so rows can be regenerated, skipped to or split
 * across threads without state, and the samplers' noise is the same bit for bit on every CPU,
 * thread count and batch size. Known-answer tests against the published Random123 vectors
 * check the block function (tests/test-rng.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core-priv.h"
#include "rng-priv.h"

/* The normal fill runs Philox and Box-Muller over batches of counters in loops that vectorize;
 * they are compiled for several x86-64 levels and picked at load time (GCC function
 * multi-versioning), elsewhere plain C. Every version does the same IEEE double operations in
 * the same order (only +, -, *, / and the correctly rounded sqrt, besides integer operations;
 * no libm; ISO C mode, so no contraction into FMA), so the values never depend on the CPU. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* clang contracts a * b + c by default, even in ISO C mode */
#endif
#ifndef SCORE__SIMD_LEVEL /* the build's 'simd' option: 2 = up to AVX-512, 1 = up to AVX2, 0 = none */
#define SCORE__SIMD_LEVEL 2
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    SCORE__SIMD_LEVEL >= 2
#define SCORE__RNG_X86_VERSIONS 1
#define SCORE__RNG_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#define SCORE__RNG_CLONES_V3 __attribute__((target_clones("avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    SCORE__SIMD_LEVEL == 1
#define SCORE__RNG_X86_VERSIONS 0 /* no AVX-512 version of the 64-bit lane loop */
#define SCORE__RNG_CLONES __attribute__((target_clones("avx2", "default")))
#define SCORE__RNG_CLONES_V3 __attribute__((target_clones("avx2", "default")))
#else
#define SCORE__RNG_X86_VERSIONS 0
#define SCORE__RNG_CLONES
#define SCORE__RNG_CLONES_V3
#endif
/* Helpers of the multi-versioned loops are inlined into every version. */
#if defined(__GNUC__)
#define SCORE__RNG_INLINE static inline __attribute__((always_inline))
#else
#define SCORE__RNG_INLINE static inline
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

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

/* The getters of the seed (which 0), stream (1) and counter (2). */
static int get_word(const char *fn, const score_rng *rng, int which, uint64_t *out)
{
    if (rng == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, fn, "rng or out is NULL");
    *out = which == 0 ? rng->seed : which == 1 ? rng->stream : rng->counter;
    return SCORE_OK;
}

/* The checks of the stream and counter setters: both are 32-bit words of the Philox counter. */
static int check_word(const char *fn, const score_rng *rng, const char *what, uint64_t v)
{
    if (rng == NULL)
        return score__error(SCORE_E_INVAL, fn, "rng is NULL");
    if (v >= SCORE__MAX_ROWS)
        return score__error(SCORE_E_RANGE, fn, "%s %llu >= 2^32", what, (unsigned long long)v);
    return SCORE_OK;
}

int score_rng_get_seed(const score_rng *rng, uint64_t *out)
{
    return get_word(__func__, rng, 0, out);
}

int score_rng_set_stream(score_rng *rng, uint64_t stream)
{
    int rc = check_word(__func__, rng, "stream", stream);
    if (rc == SCORE_OK)
        rng->stream = (uint32_t)stream;
    return rc;
}

int score_rng_get_stream(const score_rng *rng, uint64_t *out)
{
    return get_word(__func__, rng, 1, out);
}

int score_rng_set_counter(score_rng *rng, uint64_t counter)
{
    int rc = check_word(__func__, rng, "counter", counter);
    if (rc == SCORE_OK)
        rng->counter = (uint32_t)counter;
    return rc;
}

int score_rng_get_counter(const score_rng *rng, uint64_t *out)
{
    return get_word(__func__, rng, 2, out);
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

static inline double u01(uint32_t w)
{
    return ((double)w + 0.5) / SCORE__2POW32;
}

/* ---- normal variates: batched Philox and Box-Muller ----
 *
 * Box-Muller on the word pair (w1, w2): u1, u2 = (w + 0.5) 2^-32, radius sqrt(-2 ln u1), angle
 * 2 pi u2. The logarithm, sine and cosine are computed here rather than by libm, in double
 * precision, in loops that vectorize; measured against long double, the radius is within
 * 1.2 ulp and r cos, r sin within 3.1 ulp (libm's cos and sin of the rounded 2 pi u2 are off by
 * up to 2 pi u2 2^-53 in absolute terms, which is many ulp near their zeros):
 *
 * - ln u1: u1 = 2^k m with m in [sqrt(1/2), sqrt(2)) taken from the bits of u1, f = m - 1
 *   (exact), s = f / (2 + f), ln(1 + f) = 2 atanh(s) = f - s (f - T(s^2)) with
 *   T(z) = sum_{j=1..9} 2 z^j / (2j + 1) (|s| < 0.172: truncation below 3e-17 relative), then
 *   ln u1 = k ln2_hi + (k ln2_lo + ln(1 + f)) with ln2_hi of 32 bits (k ln2_hi exact). f is
 *   exact, so u1 near 1 (ln u1 ~ -2^-33) keeps full relative precision; u1 >= 2^-33 bounds the
 *   radius by sqrt(66 ln 2) = 6.76.
 * - sin and cos of 2 pi u2: the reduction is exact in turns, since u2 is a multiple of 2^-33:
 *   q = round(4 u2) by the 1.5 * 2^52 shift, r = u2 - q / 4 in [-1/8, 1/8] (no rounding), then
 *   the Taylor series of sin(2 pi r) to degree 17 (with 2 pi split in a 21-bit head, so that
 *   the leading product is exact) and of cos(2 pi r) to degree 16 (truncation below 1e-18),
 *   and the quadrant's swap and signs.
 */

#define SCORE__RNG_BATCH 64 /* Philox blocks per batch of the normal fill */

SCORE__RNG_INLINE uint64_t bits_of(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

SCORE__RNG_INLINE double double_of(uint64_t b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* (w + 0.5) 2^-32 without an integer conversion: 2^52 + w has w in its low mantissa bits. */
SCORE__RNG_INLINE double u01_vec(uint32_t w)
{
    return (double_of(UINT64_C(0x4330000000000000) | w) - 0x1.fffffffffffffp+51) * 0x1p-32;
}

/* -2 ln u for u = (w + 0.5) 2^-32, as described above. */
SCORE__RNG_INLINE double minus2_log_u01(uint32_t w)
{
    const double ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33;
    double u = u01_vec(w), m, f, s, z, t, kd, lg;
    /* j = bits(u) + bits(1) - bits(sqrt(1/2)): its exponent field is k + 1023 */
    uint64_t b = bits_of(u), j = b + (UINT64_C(0x3ff0000000000000) - UINT64_C(0x3fe6a09e667f3bcd));
    uint64_t e = j >> 52;
    m = double_of(b - (j & UINT64_C(0xfff0000000000000)) + UINT64_C(0x3ff0000000000000));
    kd = double_of(UINT64_C(0x4330000000000000) | e) - (0x1p52 + 1023.0);
    f = m - 1.0;
    s = f / (2.0 + f);
    z = s * s;
    t = 2.0 / 19.0;
    t = t * z + 2.0 / 17.0;
    t = t * z + 2.0 / 15.0;
    t = t * z + 2.0 / 13.0;
    t = t * z + 2.0 / 11.0;
    t = t * z + 2.0 / 9.0;
    t = t * z + 2.0 / 7.0;
    t = t * z + 2.0 / 5.0;
    t = t * z + 2.0 / 3.0;
    t = t * z;
    lg = f - s * (f - t);
    return -2.0 * (kd * ln2_hi + (kd * ln2_lo + lg));
}

/* cos and sin of 2 pi u for u = (w + 0.5) 2^-32, as described above. */
SCORE__RNG_INLINE void cos_sin_turns(uint32_t w, double *c_out, double *s_out)
{
    const double shift = 0x1.8p52;
    const double two_pi_hi = 0x1.921fbp+2, two_pi_lo = 0x1.5110b4611a626p-20;
    double y = 4.0 * u01_vec(w), qs = y + shift, r = (y - (qs - shift)) * 0.25, r2 = r * r;
    double sp, cp, s, c, cs, sn;
    unsigned quad = (unsigned)(bits_of(qs) & 3u);
    /* (-1)^j (2 pi)^(2j+1) / (2j+1)!, j = 8 .. 1, rounded to double */
    sp = 0x1.aaec32af93359p-4;
    sp = sp * r2 - 0x1.6fadb9f155744p-1;
    sp = sp * r2 + 0x1.e8f434d018d63p+1;
    sp = sp * r2 - 0x1.e3074fde8871fp+3;
    sp = sp * r2 + 0x1.50783487ee782p+5;
    sp = sp * r2 - 0x1.32d2cce62bd86p+6;
    sp = sp * r2 + 0x1.466bc6775aae2p+6;
    sp = sp * r2 - 0x1.4abbce625be53p+5;
    s = two_pi_hi * r + (two_pi_lo * r + r * r2 * sp);
    /* (-1)^j (2 pi)^(2j) / (2j)!, j = 8 .. 1 */
    cp = 0x1.20c62c2f2d7f5p-2;
    cp = cp * r2 - 0x1.b6e24f44b128fp+0;
    cp = cp * r2 + 0x1.f9d38a3763cc3p+2;
    cp = cp * r2 - 0x1.a6d1f2a204a8cp+4;
    cp = cp * r2 + 0x1.e1f506891babbp+5;
    cp = cp * r2 - 0x1.55d3c7e3cbffap+6;
    cp = cp * r2 + 0x1.03c1f081b5ac4p+6;
    cp = cp * r2 - 0x1.3bd3cc9be45dep+4;
    c = 1.0 + r2 * cp;
    /* quadrant q: cos(2 pi r + q pi/2) = (c, -s, -c, s)[q], sin = (s, c, -s, -c)[q] */
    cs = (quad & 1u) ? s : c;
    sn = (quad & 1u) ? c : s;
    *c_out = ((quad + 1u) & 2u) ? -cs : cs;
    *s_out = (quad & 2u) ? -sn : sn;
}

SCORE__RNG_CLONES
void score__rng_box_muller(size_t n, const uint32_t *restrict w1, const uint32_t *restrict w2,
                           double *restrict zc, double *restrict zs)
{
    /* two short loops rather than one long one: more iterations fit in flight */
    for (size_t i = 0; i < n; i++)
        zs[i] = sqrt(minus2_log_u01(w1[i]));
    for (size_t i = 0; i < n; i++) {
        double rad = zs[i], c, s;
        cos_sin_turns(w2[i], &c, &s);
        zc[i] = rad * c;
        zs[i] = rad * s;
    }
}

/* One Philox round, as in score__philox4x32_10, with the round key computed from the round
 * number i; the words a0 .. a3 may sit in wider lanes (their values stay below 2^32). */
#define PHILOX_ROUND(i)                                                                    \
    do {                                                                                   \
        uint64_t p0 = (uint64_t)PHILOX_M0 * (uint32_t)a0;                                  \
        uint64_t p1 = (uint64_t)PHILOX_M1 * (uint32_t)a2;                                  \
        a0 = (uint32_t)(p1 >> 32) ^ (uint32_t)a1 ^ (uint32_t)(k0 + (i) * PHILOX_W0);       \
        a1 = (uint32_t)p1;                                                                 \
        a2 = (uint32_t)(p0 >> 32) ^ (uint32_t)a3 ^ (uint32_t)(k1 + (i) * PHILOX_W1);       \
        a3 = (uint32_t)p0;                                                                 \
    } while (0)

/* Philox4x32-10 for n counters (x0[i], x1[i], c2, c3) under the key (k0, k1), as
 * score__philox4x32_10, with the words in lanes of type lane_t. */
#define PHILOX_BATCH(lane_t)                                                               \
    for (size_t i = 0; i < n; i++) {                                                       \
        lane_t a0 = x0[i], a1 = x1[i], a2 = c2, a3 = c3;                                   \
        PHILOX_ROUND(0u);                                                                  \
        PHILOX_ROUND(1u);                                                                  \
        PHILOX_ROUND(2u);                                                                  \
        PHILOX_ROUND(3u);                                                                  \
        PHILOX_ROUND(4u);                                                                  \
        PHILOX_ROUND(5u);                                                                  \
        PHILOX_ROUND(6u);                                                                  \
        PHILOX_ROUND(7u);                                                                  \
        PHILOX_ROUND(8u);                                                                  \
        PHILOX_ROUND(9u);                                                                  \
        o0[i] = (uint32_t)a0;                                                              \
        o1[i] = (uint32_t)a1;                                                              \
        o2[i] = (uint32_t)a2;                                                              \
        o3[i] = (uint32_t)a3;                                                              \
    }

#define PHILOX_BATCH_ARGS                                                                  \
    size_t n, uint32_t k0, uint32_t k1, const uint32_t *restrict x0,                       \
        const uint32_t *restrict x1, uint32_t c2, uint32_t c3, uint32_t *restrict o0,      \
        uint32_t *restrict o1, uint32_t *restrict o2, uint32_t *restrict o3

/* 32-bit lanes: GCC vectorizes the 32 x 32 -> 64-bit products as even/odd lane multiplies
 * (restrict: without run-time alias checks). */
SCORE__RNG_CLONES_V3
static void philox_batch_w32(PHILOX_BATCH_ARGS)
{
    PHILOX_BATCH(uint32_t)
}

#if SCORE__RNG_X86_VERSIONS
/* 64-bit lanes: with AVX-512 (x86-64-v4) one 64-bit multiply per product is faster. */
__attribute__((target("arch=x86-64-v4")))
static void philox_batch_w64(PHILOX_BATCH_ARGS)
{
    PHILOX_BATCH(uint64_t)
}
#endif

static void philox_batch(PHILOX_BATCH_ARGS)
{
#if SCORE__RNG_X86_VERSIONS
    if (__builtin_cpu_supports("x86-64-v4")) {
        philox_batch_w64(n, k0, k1, x0, x1, c2, c3, o0, o1, o2, o3);
        return;
    }
#endif
    philox_batch_w32(n, k0, k1, x0, x1, c2, c3, o0, o1, o2, o3);
}

/* Workspace of the normal fill: a batch of Philox blocks (blk[j], row[j]); block j gives the
 * normals of columns 4 blk[j] .. 4 blk[j] + 3 of its row by Box-Muller on the word pairs
 * (w0, w1) (cos, sin: the first two columns) and (w2, w3) (the last two), z[0 .. 3][j], and
 * interleaved in t[4 j .. 4 j + 3]. */
struct normal_batch {
    uint32_t blk[SCORE__RNG_BATCH], row[SCORE__RNG_BATCH];
    uint32_t w[4][SCORE__RNG_BATCH];
    double z[4][SCORE__RNG_BATCH];
    double t[4 * SCORE__RNG_BATCH];
};

/* Normals of the first n blocks of the batch into z (column l of block j in z[l][j]), and into
 * t too if interleave; half h of each block (columns 2h, 2h + 1) only if need[h]. */
static void normal_blocks(struct normal_batch *b, size_t n, uint32_t k0, uint32_t k1,
                          uint32_t counter, uint32_t stream, const int need[2], int interleave)
{
    philox_batch(n, k0, k1, b->blk, b->row, counter, stream, b->w[0], b->w[1], b->w[2],
                 b->w[3]);
    for (unsigned h = 0; h < 2; h++) {
        if (!need[h])
            continue;
        score__rng_box_muller(n, b->w[2 * h], b->w[2 * h + 1], b->z[2 * h], b->z[2 * h + 1]);
        if (interleave)
            for (size_t j = 0; j < n; j++) {
                b->t[4 * j + 2 * h] = b->z[2 * h][j];
                b->t[4 * j + 2 * h + 1] = b->z[2 * h + 1][j];
            }
    }
}

static void copy_out(const double *src, size_t n, float *out_f, double *out_d, size_t at)
{
    if (out_f != NULL)
        for (size_t c = 0; c < n; c++)
            out_f[at + c] = (float)src[c];
    else
        memcpy(out_d + at, src, n * sizeof *src);
}

/* Rows of at most 4 columns within one block (columns off .. off + ncols - 1 of it): row i of
 * the batch from z[off .. off + ncols - 1][i]. */
static void copy_narrow(const struct normal_batch *b, size_t k, size_t off, size_t ncols,
                        float *out_f, double *out_d, size_t at)
{
    if (out_f != NULL && off == 0 && ncols == 2) {
        for (size_t i = 0; i < k; i++) {
            out_f[at + 2 * i] = (float)b->z[0][i];
            out_f[at + 2 * i + 1] = (float)b->z[1][i];
        }
    } else {
        for (size_t i = 0; i < k; i++)
            for (size_t c = 0; c < ncols; c++) {
                if (out_f != NULL)
                    out_f[at + i * ncols + c] = (float)b->z[off + c][i];
                else
                    out_d[at + i * ncols + c] = b->z[off + c][i];
            }
    }
}

/* Normal fill (float or double output, exactly one non-NULL); arguments already checked. */
static void fill_normal(const score_rng *rng, uint32_t counter, size_t row0, size_t nrows,
                        size_t col0, size_t ncols, float *out_f, double *out_d)
{
    struct normal_batch b;
    uint32_t k0 = (uint32_t)rng->seed, k1 = (uint32_t)(rng->seed >> 32);
    uint64_t first, last, per_row;
    int need[2];
    if (nrows == 0 || ncols == 0)
        return;
    /* columns < 2^34 and rows < 2^32 (checked): block and row indices fit in 32 bits */
    first = (uint64_t)col0 >> 2;
    last = ((uint64_t)col0 + ncols - 1) >> 2;
    per_row = last - first + 1;
    /* a row within one block may not need one of its halves */
    need[0] = per_row > 1 || (col0 & 3u) < 2;
    need[1] = per_row > 1 || ((col0 + ncols - 1) & 3u) >= 2;
    if (per_row <= SCORE__RNG_BATCH) {
        /* whole rows per batch */
        size_t rows_per = SCORE__RNG_BATCH / (size_t)per_row;
        for (size_t r = 0; r < nrows; r += rows_per) {
            size_t k = nrows - r < rows_per ? nrows - r : rows_per, n = 0;
            for (size_t i = 0; i < k; i++)
                for (uint64_t blk = first; blk <= last; blk++, n++) {
                    b.blk[n] = (uint32_t)blk;
                    b.row[n] = (uint32_t)((uint64_t)row0 + r + i);
                }
            normal_blocks(&b, n, k0, k1, counter, rng->stream, need, per_row > 1);
            if (per_row == 1)
                copy_narrow(&b, k, col0 & 3u, ncols, out_f, out_d, r * ncols);
            else
                for (size_t i = 0; i < k; i++)
                    copy_out(b.t + 4 * (size_t)per_row * i + (col0 & 3u), ncols, out_f, out_d,
                             (r + i) * ncols);
        }
    } else {
        /* long rows in segments of whole blocks */
        for (size_t r = 0; r < nrows; r++) {
            for (uint64_t bs = first; bs <= last; bs += SCORE__RNG_BATCH) {
                uint64_t be = last - bs < SCORE__RNG_BATCH ? last + 1 : bs + SCORE__RNG_BATCH;
                uint64_t c_lo = 4 * bs > col0 ? 4 * bs : col0;
                uint64_t c_hi = 4 * be < (uint64_t)col0 + ncols ? 4 * be : (uint64_t)col0 + ncols;
                size_t n = (size_t)(be - bs);
                for (size_t j = 0; j < n; j++) {
                    b.blk[j] = (uint32_t)(bs + j);
                    b.row[j] = (uint32_t)((uint64_t)row0 + r);
                }
                normal_blocks(&b, n, k0, k1, counter, rng->stream, need, 1);
                copy_out(b.t + (size_t)(c_lo - 4 * bs), (size_t)(c_hi - c_lo), out_f, out_d,
                         r * ncols + (size_t)(c_lo - col0));
            }
        }
    }
}

enum { GEN_UNIFORM, GEN_RADEMACHER, GEN_INDEX };

/* Value of one word for the generator gen into out_f, out_d or out_z (exactly one non-NULL). */
static inline void put_word(int gen, uint64_t m, uint32_t w, size_t idx, float *out_f,
                            double *out_d, size_t *out_z)
{
    double v;
    switch (gen) {
    case GEN_UNIFORM: v = u01(w); break;
    case GEN_RADEMACHER: v = (w & 0x80000000u) ? 1.0 : -1.0; break;
    default: out_z[idx] = (size_t)(((uint64_t)w * m) >> 32); return;
    }
    if (out_f != NULL)
        out_f[idx] = (float)v;
    else
        out_d[idx] = v;
}

/* put_word() for the n consecutive words w[0 .. n - 1] into indices at .. at + n - 1: the
 * generator and the output type chosen once, so that each loop vectorizes (the same values). */
static void put_words(int gen, uint64_t m, const uint32_t *w, size_t n, size_t at, float *out_f,
                      double *out_d, size_t *out_z)
{
    if (gen == GEN_RADEMACHER && out_f != NULL) {
        for (size_t c = 0; c < n; c++)
            out_f[at + c] = (w[c] & 0x80000000u) ? 1.0f : -1.0f;
    } else if (gen == GEN_UNIFORM && out_f != NULL) {
        for (size_t c = 0; c < n; c++)
            out_f[at + c] = (float)u01(w[c]);
    } else if (gen == GEN_UNIFORM) {
        for (size_t c = 0; c < n; c++)
            out_d[at + c] = u01(w[c]);
    } else {
        for (size_t c = 0; c < n; c++)
            put_word(gen, m, w[c], at + c, out_f, out_d, out_z);
    }
}

/* Generic block fill from the raw words (uniform, Rademacher, index), batched like
 * fill_normal(); arguments already checked. */
static void fill(const score_rng *rng, uint32_t counter, int gen, uint64_t m, size_t row0,
                 size_t nrows, size_t col0, size_t ncols, float *out_f, double *out_d,
                 size_t *out_z)
{
    uint32_t blk[SCORE__RNG_BATCH], row[SCORE__RNG_BATCH], w[4][SCORE__RNG_BATCH];
    uint32_t ws[4 * SCORE__RNG_BATCH];
    uint32_t k0 = (uint32_t)rng->seed, k1 = (uint32_t)(rng->seed >> 32);
    uint64_t first, last, per_row;
    if (nrows == 0 || ncols == 0)
        return;
    first = (uint64_t)col0 >> 2;
    last = ((uint64_t)col0 + ncols - 1) >> 2;
    per_row = last - first + 1;
    if (per_row <= SCORE__RNG_BATCH) {
        size_t rows_per = SCORE__RNG_BATCH / (size_t)per_row, off = col0 & 3u;
        for (size_t r = 0; r < nrows; r += rows_per) {
            size_t k = nrows - r < rows_per ? nrows - r : rows_per, n = 0;
            for (size_t i = 0; i < k; i++)
                for (uint64_t b = first; b <= last; b++, n++) {
                    blk[n] = (uint32_t)b;
                    row[n] = (uint32_t)((uint64_t)row0 + r + i);
                }
            philox_batch(n, k0, k1, blk, row, counter, rng->stream, w[0], w[1], w[2], w[3]);
            for (size_t j = 0; j < n; j++)
                for (unsigned l = 0; l < 4; l++)
                    ws[4 * j + l] = w[l][j];
            for (size_t i = 0; i < k; i++)
                put_words(gen, m, ws + 4 * (size_t)per_row * i + off, ncols, (r + i) * ncols,
                          out_f, out_d, out_z);
        }
    } else {
        for (size_t r = 0; r < nrows; r++)
            for (uint64_t bs = first; bs <= last; bs += SCORE__RNG_BATCH) {
                uint64_t be = last - bs < SCORE__RNG_BATCH ? last + 1 : bs + SCORE__RNG_BATCH;
                uint64_t c_lo = 4 * bs > col0 ? 4 * bs : col0;
                uint64_t c_hi = 4 * be < (uint64_t)col0 + ncols ? 4 * be : (uint64_t)col0 + ncols;
                size_t n = (size_t)(be - bs);
                for (size_t j = 0; j < n; j++) {
                    blk[j] = (uint32_t)(bs + j);
                    row[j] = (uint32_t)((uint64_t)row0 + r);
                }
                philox_batch(n, k0, k1, blk, row, counter, rng->stream, w[0], w[1], w[2], w[3]);
                for (uint64_t col = c_lo; col < c_hi; col++)
                    put_word(gen, m, w[col & 3u][(size_t)((col >> 2) - bs)],
                             r * ncols + (size_t)(col - col0), out_f, out_d, out_z);
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
        fill_normal(rng, rng->counter, row0, nrows, col0, ncols, out, NULL);
    return rc;
}

int score_rng_fill_normal_f64(const score_rng *rng, size_t row0, size_t nrows, size_t col0,
                              size_t ncols, double *out)
{
    int rc = check_block(__func__, rng, row0, nrows, col0, ncols, out);
    if (rc == SCORE_OK)
        fill_normal(rng, rng->counter, row0, nrows, col0, ncols, NULL, out);
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
    fill_normal(rng, counter, row0, nrows, col0, ncols, out, NULL);
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
