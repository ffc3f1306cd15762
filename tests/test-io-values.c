/* Values of the model-file reader that the round-trip and truncation tests leave open: a
 * header length that reaches into the last 8 bytes of the file (past the bytes that follow
 * the length field) is refused by the length check itself, with its message. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"

START_TEST(header_length_past_the_data)
{
    static const double mean[2] = {1.0, -0.5}, cov[4] = {1.0, 0.3, 0.3, 0.5};
    score_schedule *sc;
    score_model *m, *l = NULL;
    void *buf;
    size_t len;
    ck_assert_ok(score_schedule_new(&sc, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(sc));
    ck_assert_ok(score_model_new_gaussian(&m, sc, 2, mean, cov, NULL));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_uint_gt(len, 16);
    /* the header may span at most len - 8 bytes: every length in (len - 8, len] is refused */
    for (uint64_t h = (uint64_t)len - 7; h <= (uint64_t)len; h++) {
        unsigned char *c = malloc(len);
        ck_assert_ptr_nonnull(c);
        memcpy(c, buf, len);
        for (int b = 0; b < 8; b++)
            c[b] = (unsigned char)(h >> (8 * b));
        ck_assert_fails_with(score_model_load_buffer(&l, c, len), SCORE_E_FORMAT);
        ck_assert_ptr_null(l);
        ck_assert_msg(strstr(score_last_error_message(), "header length") != NULL,
                      "header length %llu of a %zu-byte file: %s", (unsigned long long)h, len,
                      score_last_error_message());
        free(c);
    }
    score_free(buf);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io-values");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, header_length_past_the_data);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
