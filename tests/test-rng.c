/* Philox4x32-10: known-answer vectors, distribution checks, layout invariance, state. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"
#include "rng/rng-priv.h"

/* Known-answer vectors for Philox4x32-10 published with Random123 (kat_vectors):
 * counter (4 words), key (2 words), expected output (4 words). */
static const uint32_t kat[3][10] = {
    {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
     0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
     0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
     0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
};

START_TEST(known_answers)
{
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        ck_assert_ok(score_rng_philox4x32_10(kat[i] + 4, kat[i], out));
        for (int j = 0; j < 4; j++)
            ck_assert_uint_eq(out[j], kat[i][6 + j]);
    }
    ck_assert_fails_with(score_rng_philox4x32_10(NULL, kat[0], (uint32_t[4]){0}), SCORE_E_INVAL);
}
END_TEST

START_TEST(uniform_matches_documented_mapping)
{
    /* Column 4k + j of row r at counter c is word j of Philox(key = seed, ctr = (k, r, c, stream)). */
    score_rng *r;
    double u[8];
    uint64_t seed = 0x0123456789abcdefULL;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_rng_set_stream(r, 5));
    ck_assert_ok(score_rng_set_counter(r, 9));
    ck_assert_ok(score_rng_fill_uniform_f64(r, 3, 1, 0, 8, u));
    for (uint32_t k = 0; k < 2; k++) {
        uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        uint32_t ctr[4] = {k, 3, 9, 5}, w[4];
        ck_assert_ok(score_rng_philox4x32_10(key, ctr, w));
        for (int j = 0; j < 4; j++)
            ck_assert_double_eq(u[4 * k + j], ((double)w[j] + 0.5) / 4294967296.0);
    }
    score_rng_free(r);
}
END_TEST

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

START_TEST(normal_moments_and_ks)
{
    enum { ROWS = 1000, COLS = 200, N = ROWS * COLS };
    score_rng *r;
    double *z = malloc(N * sizeof *z);
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0, dmax = 0;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 42));
    ck_assert_ok(score_rng_fill_normal_f64(r, 0, ROWS, 0, COLS, z));
    for (int i = 0; i < N; i++) {
        m1 += z[i];
        m2 += z[i] * z[i];
        m3 += z[i] * z[i] * z[i];
        m4 += z[i] * z[i] * z[i] * z[i];
    }
    m1 /= N; m2 /= N; m3 /= N; m4 /= N;
    /* 5 standard errors: sd(mean) = 1/sqrt(N), sd(E z^2) = sqrt(2/N), sd(E z^3) = sqrt(15/N),
     * sd(E z^4) = sqrt(96/N). */
    ck_assert_double_le(fabs(m1), 5.0 / sqrt(N));
    ck_assert_double_le(fabs(m2 - 1.0), 5.0 * sqrt(2.0 / N));
    ck_assert_double_le(fabs(m3), 5.0 * sqrt(15.0 / N));
    ck_assert_double_le(fabs(m4 - 3.0), 5.0 * sqrt(96.0 / N));
    /* Kolmogorov-Smirnov against the normal CDF; critical value at alpha = 0.001 is 1.95/sqrt(N). */
    qsort(z, N, sizeof *z, cmp_double);
    for (int i = 0; i < N; i++) {
        double F = 0.5 * erfc(-z[i] / sqrt(2.0));
        double d1 = fabs(F - (double)i / N), d2 = fabs(F - (double)(i + 1) / N);
        dmax = fmax(dmax, fmax(d1, d2));
    }
    ck_assert_double_le(dmax, 1.95 / sqrt(N));
    free(z);
    score_rng_free(r);
}
END_TEST

/* ---- the normal transform ---- */

static double ulp_of(double x)
{
    return nextafter(fabs(x), INFINITY) - fabs(x);
}

/* Box-Muller on the words (w1, w2) in long double with libm: radius sqrt(-2 ln u1); the angle
 * 2 pi u2 reduced exactly in turns (u2 - q / 4, q = round(4 u2)) so that the reference stays
 * accurate near the zeros of cos and sin. */
static void box_muller_ref(uint32_t w1, uint32_t w2, long double *c_out, long double *s_out)
{
    const long double two_pi = 6.283185307179586476925286766559L;
    long double u1 = ((long double)w1 + 0.5L) / 4294967296.0L;
    long double u2 = ((long double)w2 + 0.5L) / 4294967296.0L;
    long double rad = sqrtl(-2.0L * logl(u1)), q = roundl(4.0L * u2), th = two_pi * (u2 - q / 4.0L);
    long double c = cosl(th), s = sinl(th), t;
    switch ((int)q & 3) {
    case 1: t = c; c = -s; s = t; break;
    case 2: c = -c; s = -s; break;
    case 3: t = c; c = s; s = -t; break;
    default: break;
    }
    *c_out = rad * c;
    *s_out = rad * s;
}

/* The transform is computed in double with errors of a few units in the last place (about 3
 * measured against long double); 8 ulp leaves margin for a double-only long double. */
#define TOL_NORMAL_ULP 8.0

START_TEST(normal_matches_documented_transform)
{
    /* Columns 4k + 2p and 4k + 2p + 1 are r cos(2 pi u2), r sin(2 pi u2), r = sqrt(-2 ln u1),
     * with u1, u2 from words 2p and 2p + 1 of Philox(key = seed, ctr = (k, row, counter,
     * stream)). A window with partial blocks at both ends. */
    enum { ROWS = 16, COL0 = 5, COLS = 300 };
    score_rng *r;
    uint64_t seed = 0xfedcba9876543210ULL;
    float *zf = malloc(ROWS * COLS * sizeof *zf);
    double *zd = malloc(ROWS * COLS * sizeof *zd);
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_rng_set_stream(r, 77));
    ck_assert_ok(score_rng_set_counter(r, 1234));
    ck_assert_ok(score_rng_fill_normal(r, 40, ROWS, COL0, COLS, zf));
    ck_assert_ok(score_rng_fill_normal_f64(r, 40, ROWS, COL0, COLS, zd));
    for (uint32_t i = 0; i < ROWS; i++)
        for (uint32_t c = COL0; c < COL0 + COLS; c++) {
            uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
            uint32_t ctr[4] = {c / 4, 40 + i, 1234, 77}, w[4];
            long double zc, zs, ref;
            double z = zd[i * COLS + c - COL0];
            float f = zf[i * COLS + c - COL0];
            ck_assert_ok(score_rng_philox4x32_10(key, ctr, w));
            box_muller_ref(w[c & 2u], w[(c & 2u) + 1], &zc, &zs);
            ref = (c & 1u) ? zs : zc;
            ck_assert_msg(fabsl((long double)z - ref) <= TOL_NORMAL_ULP * ulp_of((double)ref),
                          "row %u col %u: %.17g vs %.17Lg", 40 + i, c, z, ref);
            /* the float fill is the double value rounded */
            ck_assert(f == (float)z);
            /* hence within a float ulp of the exact value */
            ck_assert(fabsl((long double)f - ref) <= (long double)FLT_EPSILON * fabsl(ref));
        }
    free(zf);
    free(zd);
    score_rng_free(r);
}
END_TEST

START_TEST(normal_values_pinned)
{
    /* Values of the normal transform pinned bit for bit: every multi-versioned build must give
     * them, whatever CPU it runs on (the transform uses only +, -, *, /, sqrt, without
     * contraction). A change of the arithmetic changes these on purpose. */
    static const double expect[8] = {
        -0x1.2fbf755793396p-2, 0x1.1688a77831fe9p+0, 0x1.d840ae0b0a479p+0, 0x1.9146b2f870eeep-2,
        0x1.a9b8045c00413p+0,  -0x1.7a2c85704910ep-1, 0x1.226b342df0d6p-1, 0x1.595e22e07f2e1p-3,
    };
    score_rng *r;
    double z[8];
    if (FLT_EVAL_METHOD != 0)
        return; /* excess precision: the pinned values do not apply */
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 0x0123456789abcdefULL));
    ck_assert_ok(score_rng_set_stream(r, 5));
    ck_assert_ok(score_rng_set_counter(r, 9));
    ck_assert_ok(score_rng_fill_normal_f64(r, 3, 1, 0, 8, z));
    for (int j = 0; j < 8; j++)
        ck_assert_msg(z[j] == expect[j], "column %d: %a, expected %a", j, z[j], expect[j]);
    score_rng_free(r);
}
END_TEST

START_TEST(box_muller_tails)
{
    /* u1 = (w1 + 0.5) 2^-32 near 0 and near 1, and angles at the quadrant boundaries. */
    static const uint32_t w1s[] = {0u, 1u, 2u, 3u, 1000u, 0x00010000u, 0x3504f333u, 0x5a827999u,
                                   0x7fffffffu, 0x80000000u, 0xb504f333u, 0xfffefffeu,
                                   0xfffffff0u, 0xfffffffdu, 0xfffffffeu, 0xffffffffu};
    static const uint32_t w2s[] = {0u, 1u, 0x1fffffffu, 0x20000000u, 0x3fffffffu, 0x40000000u,
                                   0x5fffffffu, 0x7fffffffu, 0x80000000u, 0xbfffffffu,
                                   0xc0000000u, 0xdfffffffu, 0xe0000000u, 0xfffffffeu,
                                   0xffffffffu, 0x9e3779b9u};
    enum { N1 = sizeof w1s / sizeof w1s[0], N2 = sizeof w2s / sizeof w2s[0] };
    uint32_t a[N1 * N2], b[N1 * N2];
    double zc[N1 * N2], zs[N1 * N2];
    const double rmax = sqrt(66.0 * log(2.0)); /* u1 >= 2^-33 */
    for (int i = 0; i < N1; i++)
        for (int j = 0; j < N2; j++) {
            a[i * N2 + j] = w1s[i];
            b[i * N2 + j] = w2s[j];
        }
    score__rng_box_muller(N1 * N2, a, b, zc, zs);
    for (int k = 0; k < N1 * N2; k++) {
        long double rc, rs;
        box_muller_ref(a[k], b[k], &rc, &rs);
        ck_assert(isfinite(zc[k]) && isfinite(zs[k]));
        ck_assert_double_le(fabs(zc[k]), rmax * (1.0 + 4.0 * DBL_EPSILON));
        ck_assert_double_le(fabs(zs[k]), rmax * (1.0 + 4.0 * DBL_EPSILON));
        ck_assert_msg(fabsl(zc[k] - rc) <= TOL_NORMAL_ULP * ulp_of((double)rc) &&
                          fabsl(zs[k] - rs) <= TOL_NORMAL_ULP * ulp_of((double)rs),
                      "w1 %#x w2 %#x: (%.17g, %.17g) vs (%.17Lg, %.17Lg)", a[k], b[k], zc[k],
                      zs[k], rc, rs);
    }
    /* the largest radius (w1 = 0, angle 2 pi 2^-33: cos rounds to 1) and the smallest */
    ck_assert_double_eq_tol(zc[0], rmax, 2.0 * ulp_of(rmax));
    ck_assert_double_eq_tol(zc[(N1 - 1) * N2], sqrt(-2.0 * log1p(-0x1p-33)), 2.0 * ulp_of(0x1p-16));
    ck_assert_double_gt(zc[(N1 - 1) * N2], 0.0);
}
END_TEST

START_TEST(box_muller_radius_sweep)
{
    /* The radius over u1 in (0, 1): every 2^-12 of the range and the 4096 words at each end
     * (the angle word 0 makes cos 1 to double precision). */
    enum { N = 4096 };
    uint32_t a[N], b[N];
    double zc[N], zs[N];
    for (int part = 0; part < 3; part++) {
        for (uint32_t k = 0; k < N; k++) {
            a[k] = part == 0 ? k : part == 1 ? 0xffffffffu - k : k * (0xffffffffu / N) + 12345u;
            b[k] = 0;
        }
        score__rng_box_muller(N, a, b, zc, zs);
        for (uint32_t k = 0; k < N; k++) {
            long double u = ((long double)a[k] + 0.5L) / 4294967296.0L;
            long double ref = sqrtl(-2.0L * logl(u));
            ck_assert_msg(fabsl(zc[k] - ref) <= 2.0 * ulp_of((double)ref),
                          "w1 %#x: %.17g vs %.17Lg", a[k], zc[k], ref);
            ck_assert(fabs(zs[k]) < 1e-8 * zc[k]);
        }
    }
}
END_TEST

START_TEST(layout_invariance)
{
    /* Whatever the block shape (one column, rows shorter than a Philox block, rows longer than
     * a batch of blocks, windows starting anywhere), value (row, col) of every generator is the
     * same as drawn alone, and score__rng_normal_at at a counter equals the public fill at that
     * counter. */
    static const size_t shapes[][4] = {
        /* row0, nrows, col0, ncols */
        {0, 9, 0, 1},    {5, 70, 3, 1},  {2, 40, 2, 2},     {1, 33, 1, 3},   {7, 30, 6, 5},
        {0, 3, 0, 257},  {4, 2, 1, 301}, {9, 2, 255, 517},  {0, 130, 0, 2},  {3, 5, 1023, 9},
    };
    score_rng *r;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 2024));
    ck_assert_ok(score_rng_set_counter(r, 31));
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t row0 = shapes[s][0], nrows = shapes[s][1], col0 = shapes[s][2], ncols = shapes[s][3];
        float *x = malloc(nrows * ncols * sizeof *x), *y = malloc(nrows * ncols * sizeof *y);
        float *v = malloc(nrows * ncols * sizeof *v);
        double *xd = malloc(nrows * ncols * sizeof *xd), *ud = malloc(nrows * ncols * sizeof *ud);
        size_t *k = malloc(nrows * ncols * sizeof *k);
        ck_assert_ok(score_rng_fill_normal(r, row0, nrows, col0, ncols, x));
        ck_assert_ok(score_rng_fill_normal_f64(r, row0, nrows, col0, ncols, xd));
        score__rng_normal_at(r, 31, row0, nrows, col0, ncols, y);
        ck_assert_mem_eq(x, y, nrows * ncols * sizeof *x);
        ck_assert_ok(score_rng_fill_uniform_f64(r, row0, nrows, col0, ncols, ud));
        ck_assert_ok(score_rng_fill_rademacher(r, row0, nrows, col0, ncols, v));
        ck_assert_ok(score_rng_fill_index(r, row0, nrows, col0, ncols, 1000003, k));
        for (size_t i = 0; i < nrows; i++)
            for (size_t c = 0; c < ncols; c++) {
                size_t at = i * ncols + c, onek;
                float one, onev;
                double oned, oneu;
                ck_assert_ok(score_rng_fill_normal(r, row0 + i, 1, col0 + c, 1, &one));
                ck_assert_ok(score_rng_fill_normal_f64(r, row0 + i, 1, col0 + c, 1, &oned));
                ck_assert_msg(one == x[at] && oned == xd[at], "shape %zu: row %zu col %zu", s,
                              row0 + i, col0 + c);
                ck_assert(x[at] == (float)xd[at]);
                ck_assert_ok(score_rng_fill_uniform_f64(r, row0 + i, 1, col0 + c, 1, &oneu));
                ck_assert_ok(score_rng_fill_rademacher(r, row0 + i, 1, col0 + c, 1, &onev));
                ck_assert_ok(score_rng_fill_index(r, row0 + i, 1, col0 + c, 1, 1000003, &onek));
                ck_assert(oneu == ud[at] && onev == v[at] && onek == k[at]);
            }
        free(x);
        free(y);
        free(xd);
        free(ud);
        free(v);
        free(k);
    }
    score_rng_free(r);
}
END_TEST

START_TEST(uniform_rademacher_index)
{
    enum { N = 100000 };
    score_rng *r;
    float *u = malloc(N * sizeof *u), *v = malloc(N * sizeof *v);
    size_t *k = malloc(N * sizeof *k), hist[7] = {0};
    double mu = 0, mv = 0;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 7));
    ck_assert_ok(score_rng_fill_uniform(r, 0, 1000, 0, 100, u));
    ck_assert_ok(score_rng_fill_rademacher(r, 0, 1000, 0, 100, v));
    ck_assert_ok(score_rng_fill_index(r, 0, 1000, 0, 100, 7, k));
    for (int i = 0; i < N; i++) {
        ck_assert(u[i] > 0.0f && u[i] < 1.0f);
        ck_assert(v[i] == 1.0f || v[i] == -1.0f);
        ck_assert_uint_lt(k[i], 7);
        hist[k[i]]++;
        mu += u[i];
        mv += v[i];
    }
    ck_assert_double_le(fabs(mu / N - 0.5), 5.0 * sqrt(1.0 / 12.0 / N));
    ck_assert_double_le(fabs(mv / N), 5.0 / sqrt(N));
    for (int j = 0; j < 7; j++) /* binomial sd sqrt(N p (1-p)) ~ 111 */
        ck_assert_double_le(fabs((double)hist[j] - N / 7.0), 5.0 * sqrt(N / 7.0 * 6.0 / 7.0));
    free(u); free(v); free(k);
    score_rng_free(r);
}
END_TEST

START_TEST(batch_split_invariance)
{
    enum { ROWS = 37, COLS = 11 };
    score_rng *r;
    float whole[ROWS * COLS], part[ROWS * COLS];
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 99));
    ck_assert_ok(score_rng_fill_normal(r, 0, ROWS, 0, COLS, whole));
    /* rows in two calls */
    ck_assert_ok(score_rng_fill_normal(r, 0, 10, 0, COLS, part));
    ck_assert_ok(score_rng_fill_normal(r, 10, ROWS - 10, 0, COLS, part + 10 * COLS));
    ck_assert_mem_eq(whole, part, sizeof whole);
    /* one row at a time, and columns split at a position that is not a multiple of 4 */
    for (int i = 0; i < ROWS; i++) {
        float a[COLS];
        ck_assert_ok(score_rng_fill_normal(r, (size_t)i, 1, 0, 3, a));
        ck_assert_ok(score_rng_fill_normal(r, (size_t)i, 1, 3, COLS - 3, a + 3));
        ck_assert_mem_eq(a, whole + i * COLS, sizeof a);
    }
    /* a different counter or stream gives different numbers */
    ck_assert_ok(score_rng_advance(r, 1));
    ck_assert_ok(score_rng_fill_normal(r, 0, ROWS, 0, COLS, part));
    ck_assert(memcmp(whole, part, sizeof whole) != 0);
    ck_assert_ok(score_rng_set_counter(r, 0));
    ck_assert_ok(score_rng_set_stream(r, 1));
    ck_assert_ok(score_rng_fill_normal(r, 0, ROWS, 0, COLS, part));
    ck_assert(memcmp(whole, part, sizeof whole) != 0);
    score_rng_free(r);
}
END_TEST

START_TEST(state_and_clone)
{
    score_rng *a, *b, *c;
    unsigned char buf[64];
    float x[16], y[16];
    uint64_t v;
    ck_assert_uint_eq(score_rng_state_size(), 32);
    ck_assert_ok(score_rng_new(&a, SCORE_RNG_PHILOX4X32_10, 123456789ULL));
    ck_assert_ok(score_rng_set_stream(a, 3));
    ck_assert_ok(score_rng_advance(a, 17));
    ck_assert_ok(score_rng_state_get(a, buf, sizeof buf));
    ck_assert_ok(score_rng_new(&b, SCORE_RNG_PHILOX4X32_10, 0));
    ck_assert_ok(score_rng_state_set(b, buf, score_rng_state_size()));
    ck_assert_ok(score_rng_fill_normal(a, 5, 2, 0, 8, x));
    ck_assert_ok(score_rng_fill_normal(b, 5, 2, 0, 8, y));
    ck_assert_mem_eq(x, y, sizeof x);
    ck_assert_ok(score_rng_clone(&c, a));
    ck_assert_ok(score_rng_get_counter(c, &v));
    ck_assert_uint_eq(v, 17);
    ck_assert_ok(score_rng_get_stream(c, &v));
    ck_assert_uint_eq(v, 3);
    ck_assert_ok(score_rng_get_seed(c, &v));
    ck_assert_uint_eq(v, 123456789ULL);
    ck_assert_str_eq(score_rng_name(c), "philox4x32-10");
    /* corrupt states are rejected and leave the handle unchanged */
    ck_assert_fails_with(score_rng_state_set(b, buf, 31), SCORE_E_SHAPE);
    buf[0] ^= 1;
    ck_assert_fails_with(score_rng_state_set(b, buf, 32), SCORE_E_FORMAT);
    buf[0] ^= 1;
    buf[31] = 0xff; /* counter >= 2^32 */
    ck_assert_fails_with(score_rng_state_set(b, buf, 32), SCORE_E_FORMAT);
    ck_assert_ok(score_rng_get_counter(b, &v));
    ck_assert_uint_eq(v, 17);
    ck_assert_fails_with(score_rng_state_get(a, buf, 8), SCORE_E_SHAPE);
    score_rng_free(a);
    score_rng_free(b);
    score_rng_free(c);
}
END_TEST

START_TEST(bad_input)
{
    score_rng *r = (score_rng *)1;
    float x[4];
    size_t k[4];
    uint64_t v;
    ck_assert_fails_with(score_rng_new(NULL, SCORE_RNG_PHILOX4X32_10, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_new(&r, 0, 1), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_null(r);
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 1));
    ck_assert_fails_with(score_rng_fill_normal(NULL, 0, 1, 0, 4, x), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_fill_normal(r, 0, 1, 0, 4, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_fill_normal(r, (size_t)1 << 32, 1, 0, 4, x), SCORE_E_RANGE);
    ck_assert_fails_with(score_rng_fill_uniform(r, ((size_t)1 << 32) - 1, 2, 0, 1, x), SCORE_E_RANGE);
    ck_assert_fails_with(score_rng_fill_rademacher(r, 0, 1, (size_t)1 << 34, 1, x), SCORE_E_RANGE);
    ck_assert_fails_with(score_rng_fill_index(r, 0, 1, 0, 4, 0, k), SCORE_E_RANGE);
    ck_assert_fails_with(score_rng_fill_index(r, 0, 1, 0, 4, ((uint64_t)1 << 32) + 1, k), SCORE_E_RANGE);
    ck_assert_ok(score_rng_fill_index(r, 0, 1, 0, 4, (uint64_t)1 << 32, k));
    ck_assert_ok(score_rng_fill_normal(r, 0, 0, 0, 4, NULL)); /* empty block */
    ck_assert_fails_with(score_rng_set_stream(r, (uint64_t)1 << 32), SCORE_E_RANGE);
    ck_assert_fails_with(score_rng_set_counter(r, (uint64_t)1 << 32), SCORE_E_RANGE);
    ck_assert_ok(score_rng_set_counter(r, 0xfffffffeULL));
    ck_assert_ok(score_rng_advance(r, 1));
    ck_assert_fails_with(score_rng_advance(r, 1), SCORE_E_RANGE);
    ck_assert_ok(score_rng_get_counter(r, &v));
    ck_assert_uint_eq(v, 0xffffffffULL);
    ck_assert_fails_with(score_rng_get_counter(r, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_get_seed(NULL, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_get_stream(NULL, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_set_stream(NULL, 0), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_set_counter(NULL, 0), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_advance(NULL, 0), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_clone(NULL, r), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_state_get(NULL, x, 32), SCORE_E_INVAL);
    ck_assert_fails_with(score_rng_state_set(r, NULL, 32), SCORE_E_INVAL);
    {
        score_rng *c = (score_rng *)1;
        ck_assert_fails_with(score_rng_clone(&c, NULL), SCORE_E_INVAL);
        ck_assert_ptr_null(c);
    }
    ck_assert_str_eq(score_rng_name(NULL), "(null)");
    score_rng_free(r);
    score_rng_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, known_answers);
    tcase_add_test(tc, uniform_matches_documented_mapping);
    tcase_add_test(tc, normal_moments_and_ks);
    tcase_add_test(tc, normal_matches_documented_transform);
    tcase_add_test(tc, normal_values_pinned);
    tcase_add_test(tc, box_muller_tails);
    tcase_add_test(tc, box_muller_radius_sweep);
    tcase_add_test(tc, layout_invariance);
    tcase_add_test(tc, uniform_rademacher_index);
    tcase_add_test(tc, batch_split_invariance);
    tcase_add_test(tc, state_and_clone);
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
