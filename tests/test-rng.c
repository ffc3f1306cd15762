/* Philox4x32-10: known-answer vectors, distribution checks, layout invariance, state. */
#include <math.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"

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
    tcase_add_test(tc, uniform_rademacher_index);
    tcase_add_test(tc, batch_split_invariance);
    tcase_add_test(tc, state_and_clone);
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
